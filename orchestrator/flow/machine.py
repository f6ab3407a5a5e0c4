"""The run-time engine of one call: the flow's routes, compiled once per flow, driven by event names.

`machine_class(flow)` compiles the flow into a real `StateChart` subclass (so python-statemachine
can check, draw and run it; a flow that loads is a flow that builds). `CallMachine` runs one call on
the same routes, compiled once per flow with their guards: it keeps the call's counters and reports
each state it enters as a `StateEntered` with its texts already rendered. It does not instantiate
the chart per call — python-statemachine resolves every callback of the chart for each instance,
milliseconds per call that buy nothing for a flat chart of guarded routes — and a parity test holds
the two to the same decisions (decision 0011). Everything here is synchronous and quick: the session
calls it from the event loop. Imports python-statemachine and this package only.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from statemachine import StateChart
from statemachine.io import create_machine_class_from_definition

from orchestrator.flow.guards import Guard, compile_guard
from orchestrator.flow.languages import LocalText, language_name, text_for
from orchestrator.flow.listen import listen_hint
from orchestrator.flow.model import Flow, StateSpec, Transition
from orchestrator.flow.templates import known_variables, render, spoken_digits, status_words

__all__ = ["CallMachine", "StateEntered", "call_view", "compile_transition_guard", "machine_class"]

_START_EVENT = "start"
# In the python-statemachine chart only: how the initial state "reaches" `initial_outbound`.
_OUTBOUND_START_EVENT = "outbound_call"


@dataclass(frozen=True, slots=True, kw_only=True)
class StateEntered:
    """The call entered `state`: what to say, what the LLM is told, and how the state behaves."""

    state: str
    previous: str | None  # None for the initial state
    event: str  # "start" for the initial state
    say: str | None  # rendered with the context at entry time
    instructions: str | None  # rendered
    tools: tuple[str, ...]
    interruptible: bool
    timeout: float | None
    final: bool
    language: str = ""  # the call's language the texts were picked in


class _CallModel:
    """The per-call object python-statemachine passes to guards and entry callbacks."""

    def __init__(self, flow: Flow, context: MutableMapping[str, object]) -> None:
        self.flow = flow
        self.context = context
        self.counters: dict[str, int] = dict.fromkeys(flow.counters, 0)
        # (state, previous) for each state entered during the current step.
        self.entered: list[tuple[str, str | None]] = []
        self.state: object = None  # python-statemachine keeps the configuration here

    def view(self) -> dict[str, object]:
        return call_view(self.flow, self.context, self.counters)


def call_view(
    flow: Flow, context: Mapping[str, object], counters: Mapping[str, int]
) -> dict[str, object]:
    """What templates and guards see: the live context over the flow's defaults, and derivations."""
    view = dict(context)
    escalation = {"number": flow.escalation.number} if flow.escalation else {}
    view["shop"] = {**flow.shop, **_mapping(context.get("shop"))}
    view["flow"] = {"name": flow.name, **_mapping(context.get("flow"))}
    view["escalation"] = {**escalation, **_mapping(context.get("escalation"))}
    view["counters"] = dict(counters)
    caller = dict(_mapping(context.get("caller")))
    number = caller.get("number")
    if isinstance(number, str) and caller.get("number_spoken") is None:
        caller["number_spoken"] = spoken_digits(number)
    view["caller"] = caller
    order = dict(_mapping(context.get("order")))
    status = order.get("status")
    if isinstance(status, str) and order.get("status_text") is None:
        language = context.get("language")
        order["status_text"] = status_words(
            status, language if isinstance(language, str) else flow.default_language
        )
    view["order"] = order
    return view


def _instructions(flow: Flow, spec: StateSpec, language: str) -> str | None:
    """The state's instructions, what it listens for (the hint LLM brains get from `listen:`), and, in a
    flow of several languages, the one to speak."""
    parts = [
        text_for(spec.instructions, language, flow.default_language),
        listen_hint(spec.listen, language=language),
    ]
    if len(flow.call_languages) > 1 and any(parts):
        parts.append(f"Speak {language_name(language)}.")
    kept = [part.rstrip() for part in parts if part]
    return "\n".join(kept) if kept else None


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def compile_transition_guard(flow: Flow, transition: Transition) -> Guard | None:
    """The compiled `when:` of a transition of `flow` (raises GuardError when it is invalid)."""
    if transition.when is None:
        return None
    variables = known_variables(shop_keys=flow.shop, counters=flow.counters, tools=flow.tools)
    return compile_guard(transition.when, counters=flow.counters.keys(), variables=variables)


def _guard_callback(guard: Guard) -> Callable[[_CallModel], bool]:
    def passes(model: _CallModel) -> bool:
        return guard.evaluate(model.counters, model.view())

    # python-statemachine names a condition after its callable in diagrams and errors.
    passes.__name__ = passes.__qualname__ = guard.source
    return passes


def _record_entry(source: Any, target: Any, model: _CallModel) -> None:
    previous = getattr(source, "id", None) or None
    model.entered.append((target.id, previous))


def _class_name(flow_name: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", flow_name) if w]
    return "".join(w[:1].upper() + w[1:] for w in words) + "Flow"


def _build_class(flow: Flow) -> type[StateChart[Any]]:
    states: dict[str, Any] = {}
    for name, spec in flow.states.items():
        on: dict[str, list[dict[str, Any]]] = {}
        for event, transitions in flow.routes(name).items():
            if not transitions:
                continue
            on[event] = []
            for transition in transitions:
                item: dict[str, Any] = {"target": transition.target}
                guard = compile_transition_guard(flow, transition)
                if guard is not None:
                    item["cond"] = _guard_callback(guard)
                on[event].append(item)
        definition: dict[str, Any] = {"enter": [_record_entry], "final": spec.final}
        if name == flow.initial:
            definition["initial"] = True
            if flow.initial_outbound is not None and flow.initial_outbound in flow.states:
                # The chart has one initial state: an outbound call's start is drawn as a route from it.
                on.setdefault(_OUTBOUND_START_EVENT, []).append({"target": flow.initial_outbound})
        if on:
            definition["on"] = on
        states[name] = definition
    return create_machine_class_from_definition(
        _class_name(flow.name),
        states=states,
        # A fault in our own callbacks is a bug to surface, not an `error.execution` event to route.
        catch_errors_as_events=False,
    )


_classes: dict[int, tuple[weakref.ref[Flow], type[StateChart[Any]]]] = {}


def machine_class(flow: Flow) -> type[StateChart[Any]]:
    """The python-statemachine class of `flow`, built on first use, cached while the flow lives."""
    key = id(flow)
    cached = _classes.get(key)
    if cached is not None and cached[0]() is flow:
        return cached[1]
    cls = _build_class(flow)
    _classes[key] = (weakref.ref(flow, lambda _ref: _classes.pop(key, None)), cls)
    return cls


_Route = tuple[Transition, Guard | None]


@dataclass(frozen=True, slots=True)
class _CompiledFlow:
    """What every call of a flow shares: its routes with compiled guards, and which events count."""

    routes: Mapping[tuple[str, str], tuple[_Route, ...]]
    counted: Mapping[str, tuple[str, ...]]


_compiled: dict[int, tuple[weakref.ref[Flow], _CompiledFlow]] = {}


def _compile(flow: Flow) -> _CompiledFlow:
    """`flow`'s routes and counters, compiled on first use and cached while the flow lives."""
    key = id(flow)
    cached = _compiled.get(key)
    if cached is not None and cached[0]() is flow:
        return cached[1]
    machine_class(flow)  # the chart must build: its checks are the flow's
    routes = {
        (state, event): tuple((t, compile_transition_guard(flow, t)) for t in transitions)
        for state in flow.states
        for event, transitions in flow.routes(state).items()
        if transitions
    }
    counted: dict[str, list[str]] = {}
    for counter, events in flow.counters.items():
        for event in events:
            counted.setdefault(event, []).append(counter)
    compiled = _CompiledFlow(
        routes=routes, counted={e: tuple(c) for e, c in counted.items()}
    )
    _compiled[key] = (weakref.ref(flow, lambda _ref: _compiled.pop(key, None)), compiled)
    return compiled


class CallMachine:
    """One call's state machine: send event names in, get the entered states out.

        machine = CallMachine(flow, context={"caller": {"number": "+254711000001"}})
        greeting = machine.start()
        machine.send("stream_started")  # -> StateEntered(state="identifying", ...)
        machine.send("speech_started")  # -> None: no route for it here, ignored
    """

    __slots__ = ("_compiled", "_flow", "_model", "_started", "_state")

    def __init__(self, flow: Flow, context: MutableMapping[str, object]) -> None:
        self._flow = flow
        self._compiled = _compile(flow)
        self._model = _CallModel(flow, context)
        self._state = flow.initial
        self._started = False

    def start(self, *, outbound: bool = False) -> StateEntered:
        """Enter the initial state, or `initial_outbound` for a call the shop placed (once per call)."""
        if self._started:
            raise RuntimeError("the call machine has already started")
        self._started = True
        initial = self._flow.initial
        if outbound:
            if self._flow.initial_outbound is None:
                raise RuntimeError(f"flow {self._flow.name!r} declares no initial_outbound state")
            initial = self._flow.initial_outbound
        return self._entered(initial, None, _START_EVENT)

    def send(self, event: str) -> StateEntered | None:
        """Count `event`, then take its first route whose guard passes; None if none applies."""
        if not self._started:
            raise RuntimeError("start() the call machine before sending events")
        if self.is_final:
            return None
        counters = self._model.counters
        for counter in self._compiled.counted.get(event, ()):
            counters[counter] += 1
        routes = self._compiled.routes.get((self._state, event))
        if not routes:
            return None
        view: dict[str, object] | None = None
        for transition, guard in routes:
            if guard is not None:
                view = view if view is not None else self._model.view()
                if not guard.evaluate(counters, view):
                    continue
            return self._entered(transition.target, self._state, event, say=transition.say)
        return None  # every guard failed

    @property
    def state(self) -> str:
        """The current state's name."""
        return self._state

    @property
    def counters(self) -> Mapping[str, int]:
        """A read-only view of the call's counters."""
        return MappingProxyType(self._model.counters)

    @property
    def is_final(self) -> bool:
        """True once the call reached a final state."""
        return self._flow.states[self._state].final

    def allows_tool(self, name: str) -> bool:
        """Whether the LLM may call tool `name` in the current state."""
        return name in self.state_spec().tools

    @property
    def language(self) -> str:
        """The call's language: the context's `language`, else the flow's default."""
        language = self._model.context.get("language")
        return language if isinstance(language, str) else self._flow.default_language

    def state_spec(self, name: str | None = None) -> StateSpec:
        """The model of state `name` (the current state by default)."""
        return self._flow.states[self._state if name is None else name]

    def _entered(
        self, state: str, previous: str | None, event: str, *, say: LocalText | None = None
    ) -> StateEntered:
        self._state = state
        spec = self._flow.states[state]
        view = self._model.view()
        language = self.language
        say = text_for(say if say is not None else spec.say, language, self._flow.default_language)
        instructions = _instructions(self._flow, spec, language)
        return StateEntered(
            state=state,
            previous=previous,
            event=event,
            say=None if say is None else render(say, view),
            instructions=None if instructions is None else render(instructions, view),
            tools=spec.tools,
            interruptible=spec.interruptible,
            timeout=spec.timeout,
            final=spec.final,
            language=language,
        )
