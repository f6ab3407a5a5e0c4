"""The loader: the pinned order-status flow loads clean, the YAML spellings it accepts, the errors it raises."""

from pathlib import Path

import pytest

from orchestrator.errors import FlowError
from orchestrator.flow import KNOWN_EVENTS, Transition, load_flow, load_flow_text
from tests.flows import ORDER_STATUS

MINIMAL = """\
flow: minimal
initial: greeting
states:
  greeting:
    on: {hangup: ended}
  ended: {final: true}
"""


def test_load_flow_order_status_loads_clean() -> None:
    """The order-status flow (pinned in tests/flows/) loads without a problem, with its states and tools."""
    flow = load_flow(ORDER_STATUS)

    assert flow.name == "order_status"
    assert list(flow.states) == [
        "greeting",
        "identifying",
        "looking_up",
        "narrating",
        "escalating",
        "ended",
    ]
    assert list(flow.tools) == ["lookup_order", "transfer_to_human", "end_call"]
    assert flow.initial == "greeting"
    assert flow.escalation is not None
    assert flow.escalation.strategies == ("dial", "callback")


def test_load_flow_order_status_routes_match_the_product() -> None:
    """The order-status flow routes lookups, failures and retries the way the product describes."""
    flow = load_flow(ORDER_STATUS)

    assert flow.transitions("greeting", "stream_started") == (Transition(target="identifying"),)
    assert flow.transitions("narrating", "tool:lookup_order") == (Transition(target="looking_up"),)
    (failed,) = flow.transitions("looking_up", "lookup_failed")
    assert failed.target == "escalating"
    assert failed.say is not None
    assert "sorry" in failed.say
    assert flow.transitions("looking_up", "order_not_found") == (
        Transition(target="identifying", when="failed_lookups < 3"),
        Transition(target="escalating"),
    )
    assert flow.states["looking_up"].tools == ()
    assert flow.states["greeting"].interruptible is False


def test_load_flow_text_accepts_the_three_transition_spellings() -> None:
    """A target string, one mapping and a list (with a bare fallback) all become Transitions."""
    flow = load_flow_text(
        MINIMAL.replace("{hangup: ended}", "{hangup: ended, stream_started: waiting}")
        + """\
  waiting:
    on:
      hangup: ended
      silence_timeout: {target: waiting, when: "silences < 2"}
      speech_started:
        - {target: waiting, when: "silences == 0"}
        - ended
counters:
  silences: [silence_timeout]
"""
    )

    assert flow.states["waiting"].on == {
        "hangup": (Transition(target="ended"),),
        "silence_timeout": (Transition(target="waiting", when="silences < 2"),),
        "speech_started": (
            Transition(target="waiting", when="silences == 0"),
            Transition(target="ended"),
        ),
    }


def test_load_flow_text_null_route_opts_out_of_a_global_route() -> None:
    """`event: null` in a state ignores that event there even though a global route exists."""
    flow = load_flow_text(
        """\
flow: opt_out
initial: escalating
on: {brain_failed: ended, hangup: ended}
states:
  escalating:
    on: {brain_failed: null}
  ended: {final: true}
"""
    )

    assert flow.transitions("escalating", "brain_failed") == ()
    assert flow.transitions("escalating", "hangup") == (Transition(target="ended"),)


def test_load_flow_text_custom_events_are_allowed_once_declared() -> None:
    """An event listed under `events:` may be routed; the known events need no declaration."""
    flow = load_flow_text(
        """\
flow: custom
events: [caller_said_thanks]
initial: greeting
states:
  greeting:
    on: {caller_said_thanks: ended, turn_complete: ended}
  ended: {final: true}
"""
    )

    assert flow.events == ("caller_said_thanks",)
    assert "turn_complete" in KNOWN_EVENTS


def test_load_flow_text_reads_bare_on_as_a_string_key() -> None:
    """`on:` stays the string "on" (YAML 1.2), not the boolean True of YAML 1.1 loaders."""
    flow = load_flow_text(MINIMAL)

    assert flow.states["greeting"].on == {"hangup": (Transition(target="ended"),)}


def test_load_flow_unreadable_path_is_a_located_flow_error(tmp_path: Path) -> None:
    """A missing file is reported like any other problem, at line 1, column 1."""
    path = tmp_path / "nowhere.yaml"

    with pytest.raises(FlowError) as caught:
        load_flow(path)

    assert [str(p) for p in caught.value.problems] == [
        f"{path}:1:1: cannot read the flow file: No such file or directory"
    ]


def test_load_flow_non_utf8_file_is_a_located_flow_error(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 give a FlowError, not a UnicodeDecodeError."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes("flow: caf\xe9\n".encode("latin-1"))

    with pytest.raises(FlowError) as caught:
        load_flow(path)

    assert [str(p) for p in caught.value.problems] == [
        f"{path}:1:1: the flow file is not UTF-8 text"
    ]


def test_load_flow_text_labels_problems_with_the_given_path() -> None:
    """The `path` argument only labels problems; the default label is <string>."""
    with pytest.raises(FlowError) as caught:
        load_flow_text("flow: x\ninitial: a\nstates:\n  a: {final: true, sya: hi}\n")

    assert [str(p) for p in caught.value.problems] == [
        "<string>:4:20: states.a.sya: Extra inputs are not permitted"
    ]


def test_load_flow_text_placeholder_in_block_scalar_is_located_on_its_own_line() -> None:
    """An unknown template variable in a `|` block points at the placeholder's line and column."""
    text = MINIMAL.replace(
        "    on: {hangup: ended}\n",
        "    instructions: |\n      First line.\n      Then say {{ order.etaa }} clearly.\n"
        "    on: {hangup: ended}\n",
    )

    with pytest.raises(FlowError) as caught:
        load_flow_text(text, path="f.yaml")

    assert [str(p) for p in caught.value.problems] == [
        "f.yaml:7:16: states.greeting.instructions: unknown template variable 'order.etaa' (did you mean `order.eta`?)"
    ]
