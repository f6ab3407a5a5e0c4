"""CallMachine: one call's state machine, driven by event names, reporting each state it enters."""


import pytest
from statemachine import StateChart

from orchestrator.flow import CallMachine, StateEntered, load_flow, load_flow_text, machine_class
from tests.flows import ORDER_STATUS


def test_call_machine_start_enters_the_initial_state() -> None:
    """start() returns the initial state with previous None, event "start" and its say rendered."""
    machine = CallMachine(load_flow(ORDER_STATUS), {})

    entered = machine.start()

    assert entered == StateEntered(
        state="greeting",
        previous=None,
        event="start",
        say="Hello, thank you for calling Duka Express. I can check on your order for you.",
        instructions=None,
        tools=(),
        interruptible=False,
        timeout=None,
        final=False,
        language="en-KE",
    )
    assert machine.state == "greeting"
    assert machine.counters == {"failed_lookups": 0, "silence_reprompts": 0}


def test_call_machine_send_follows_the_flow() -> None:
    """Events move the call through identifying, looking_up and narrating as the flow declares."""
    machine = CallMachine(load_flow(ORDER_STATUS), {})
    machine.start()

    identifying = machine.send("stream_started")
    looking_up = machine.send("tool:lookup_order")
    narrating = machine.send("order_found")

    assert identifying is not None
    assert (identifying.state, identifying.previous, identifying.event) == (
        "identifying",
        "greeting",
        "stream_started",
    )
    assert identifying.tools == ("lookup_order", "transfer_to_human", "end_call")
    assert identifying.timeout == 8.0
    assert looking_up is not None
    assert looking_up.state == "looking_up"
    assert narrating is not None
    assert narrating.state == "narrating"
    assert machine.state == "narrating"


def test_call_machine_three_failed_lookups_escalate() -> None:
    """order_not_found twice returns to identifying; the third time the call escalates."""
    machine = CallMachine(load_flow(ORDER_STATUS), {})
    machine.start()
    machine.send("stream_started")
    states = []

    for _ in range(3):
        machine.send("tool:lookup_order")
        entered = machine.send("order_not_found")
        assert entered is not None
        states.append(entered.state)

    assert states == ["identifying", "identifying", "escalating"]
    assert machine.counters["failed_lookups"] == 3
    escalating = machine.state_spec()
    assert escalating.say == "Please hold while I connect you to a colleague at {{ shop.name }}."


def test_call_machine_counts_events_even_when_ignored() -> None:
    """Counters go up when the event arrives, before guards, whether or not a route applies."""
    machine = CallMachine(load_flow(ORDER_STATUS), {})
    machine.start()

    assert machine.send("order_not_found") is None

    assert machine.counters["failed_lookups"] == 1
    assert machine.state == "greeting"


def test_call_machine_global_routes_apply_in_every_non_final_state() -> None:
    """hangup from any non-final state ends the call through the global `on`."""
    machine = CallMachine(load_flow(ORDER_STATUS), {})
    machine.start()
    machine.send("stream_started")
    machine.send("tool:lookup_order")

    ended = machine.send("hangup")

    assert ended is not None
    assert (ended.state, ended.previous, ended.final) == ("ended", "looking_up", True)
    assert machine.is_final


def test_call_machine_state_route_overrides_global_route() -> None:
    """escalating opts out of the global brain_failed route, so the event is ignored there."""
    machine = CallMachine(load_flow(ORDER_STATUS), {})
    machine.start()
    assert machine.send("brain_failed") is not None  # global: greeting -> escalating

    assert machine.send("brain_failed") is None
    assert machine.state == "escalating"


def test_call_machine_ignored_events_return_none() -> None:
    """An event with no route in the current state, or an unknown name, changes nothing."""
    machine = CallMachine(load_flow(ORDER_STATUS), {})
    machine.start()

    assert machine.send("speech_started") is None
    assert machine.send("no_such_event") is None
    assert machine.state == "greeting"


def test_call_machine_events_after_the_final_state_are_ignored() -> None:
    """Once the call has ended, every event returns None."""
    machine = CallMachine(load_flow(ORDER_STATUS), {})
    machine.start()
    machine.send("hangup")

    assert machine.send("stream_started") is None
    assert machine.send("hangup") is None
    assert machine.state == "ended"


def test_call_machine_self_transition_re_enters_the_state() -> None:
    """A silence reprompt re-enters identifying and is reported; the third silence escalates."""
    machine = CallMachine(load_flow(ORDER_STATUS), {})
    machine.start()
    machine.send("stream_started")

    first = machine.send("silence_timeout")
    second = machine.send("silence_timeout")
    third = machine.send("silence_timeout")

    assert first is not None
    assert (first.state, first.previous, first.event) == (
        "identifying",
        "identifying",
        "silence_timeout",
    )
    assert second is not None
    assert second.state == "identifying"
    assert third is not None
    assert third.state == "escalating"


def test_call_machine_renders_templates_with_the_live_context() -> None:
    """Instructions are rendered on entry from the context the session mutated."""
    context: dict[str, object] = {"caller": {"number": "+254711000001"}}
    machine = CallMachine(load_flow(ORDER_STATUS), context)
    machine.start()
    identifying = machine.send("stream_started")
    machine.send("tool:lookup_order")
    context["order"] = {
        "order_number": "DX1042",
        "status": "out_for_delivery",
        "eta": "today between 4 and 6 PM",
        "courier": "PikiPiki",
        "delivery_area": "Westlands",
    }
    context["orders"] = {"count": 1}

    narrating = machine.send("order_found")

    assert identifying is not None
    assert identifying.instructions is not None
    assert "2 5 4 7 1 1 0 0 0 0 0 1" in identifying.instructions
    assert narrating is not None
    assert narrating.instructions is not None
    assert "order DX1042 is out for delivery" in narrating.instructions
    assert "today between 4 and 6 PM" in narrating.instructions
    assert "PikiPiki" in narrating.instructions


def test_call_machine_guards_read_the_call_context() -> None:
    """A guard on a call variable routes by the order the session put in the context."""
    flow = load_flow_text(
        """\
flow: by_status
initial: looking_up
states:
  looking_up:
    on:
      order_found:
        - {target: delivered, when: "order.status == 'delivered'"}
        - {target: narrating}
  delivered: {final: true}
  narrating: {final: true}
"""
    )
    delivered = CallMachine(flow, {"order": {"status": "delivered"}})
    pending = CallMachine(flow, {"order": {"status": "pending"}})
    delivered.start()
    pending.start()

    first = delivered.send("order_found")
    second = pending.send("order_found")

    assert first is not None
    assert first.state == "delivered"
    assert second is not None
    assert second.state == "narrating"


def test_call_machine_all_guards_failing_returns_none() -> None:
    """When every guarded route of an event fails, the event is ignored."""
    flow = load_flow_text(
        """\
flow: guarded
counters: {silences: [silence_timeout]}
initial: waiting
states:
  waiting:
    on:
      silence_timeout: {target: ended, when: "silences >= 2"}
  ended: {final: true}
"""
    )
    machine = CallMachine(flow, {})
    machine.start()

    assert machine.send("silence_timeout") is None
    entered = machine.send("silence_timeout")
    assert entered is not None
    assert entered.state == "ended"


def test_call_machine_allows_tool_follows_the_current_state() -> None:
    """The LLM may call a tool only in states that list it."""
    machine = CallMachine(load_flow(ORDER_STATUS), {})
    machine.start()
    allowed_in_greeting = machine.allows_tool("lookup_order")
    machine.send("stream_started")
    allowed_in_identifying = machine.allows_tool("lookup_order")
    machine.send("tool:lookup_order")

    assert (allowed_in_greeting, allowed_in_identifying) == (False, True)
    assert machine.allows_tool("lookup_order") is False
    narrating = machine.state_spec("narrating")
    assert narrating.tools == ("lookup_order", "transfer_to_human", "end_call")


def test_call_machine_requires_start_once_before_send() -> None:
    """send() before start(), or a second start(), is a programming error."""
    machine = CallMachine(load_flow(ORDER_STATUS), {})

    with pytest.raises(RuntimeError):
        machine.send("stream_started")
    machine.start()
    with pytest.raises(RuntimeError):
        machine.start()


def test_machine_class_is_a_cached_python_statemachine_class() -> None:
    """One StateChart class per Flow, shared by every call and drawable by python-statemachine."""
    flow = load_flow(ORDER_STATUS)

    cls = machine_class(flow)

    assert issubclass(cls, StateChart)
    assert machine_class(flow) is cls
    assert cls.__name__ == "OrderStatusFlow"
    assert "identifying --> looking_up" in format(cls, "mermaid")
