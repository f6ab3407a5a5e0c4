"""Flow file -> `Flow`, or one `FlowError` listing every problem as `path:line:col: message`.

Three layers, each reporting located problems: ruamel's round-trip loader (which keeps line numbers
and reads a bare `on:` as a string), the pydantic models (shape, unknown keys), then cross-reference
checks that need the whole file (targets, tools, events, template names, guards, reachability).
Finally the python-statemachine class is built once, so a flow that loads is a flow that runs.
When the shape is wrong, only the shape problems are reported: cross references need a valid model.
Imports only `orchestrator.errors`, this package, pydantic and python-statemachine.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError
from statemachine import StateChart
from statemachine.exceptions import InvalidDefinition

from orchestrator.errors import FlowError, FlowProblem
from orchestrator.flow.guards import GuardError
from orchestrator.flow.languages import (
    LocalText,
    Phrases,
    missing_languages,
    phrases_for,
    text_variants,
)
from orchestrator.flow.machine import compile_transition_guard, machine_class
from orchestrator.flow.model import (
    BUILTIN_INTENTS,
    DONE_EVENT_PREFIX,
    FAILED_EVENT_PREFIX,
    KNOWN_EVENTS,
    POLICY_MOMENTS,
    TOOL_EVENT_PREFIX,
    Flow,
    Policy,
    PolicyOrderNumber,
    StateSpec,
    Transition,
)
from orchestrator.flow.suggestions import (
    did_you_mean,
    name_hint,
    unknown_dotted_name,
    unknown_name,
)
from orchestrator.flow.templates import find_brace_problems, find_placeholders, known_variables
from orchestrator.flow.yamlsource import Loc, parse_yaml, read_yaml_text
from orchestrator.flow.yamlsource import YamlSource as _Source
from orchestrator.flow.yamlsource import dotted as _dotted
from orchestrator.flow.yamlsource import plain as _plain
from orchestrator.flow.yamlsource import problem_at as _problem_at
from orchestrator.flow.yamlsource import sorted_problems as _sorted

__all__ = ["load_flow", "load_flow_text"]


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# State and event names become attributes of the generated StateChart class and its instances.
_RESERVED_NAMES = frozenset(n for n in dir(StateChart) if not n.startswith("_")) | {
    "history_values",
    "model",
    "start",
    "state_field",
}


def load_flow(path: str | Path, *, handlers: Collection[str] | None = None) -> Flow:
    """Load and check the flow file at `path`; raise FlowError with every located problem.

    `handlers` names the tools the host application handles in code: given, every other tool must be
    built-in or have an `http:` action (None leaves that check to `add_routes`, which knows them).
    """
    name = str(path)
    text = read_yaml_text(path, what="the flow file")
    return load_flow_text(text, path=name, handlers=handlers)


def load_flow_text(
    text: str, path: str = "<string>", *, handlers: Collection[str] | None = None
) -> Flow:
    """Load and check a flow from YAML `text`; `path` only labels the problems."""
    data = parse_yaml(text, path=path, what="the flow file")
    source = _Source(path=path, text=text, root=data)
    try:
        flow = Flow.model_validate(_plain(data))
    except ValidationError as exc:
        raise FlowError(_sorted(_validation_problems(exc, source))) from None
    problems = list(_cross_check(flow, source))
    problems.extend(_check_tool_actions(flow, source, handlers))
    if not problems:
        try:
            machine_class(flow)
        except InvalidDefinition as exc:
            message = f"cannot build the state machine: {exc}"
            problems.append(source.problem(("states",), message, key=True))
    if problems:
        raise FlowError(_sorted(problems))
    return flow


def _validation_problems(exc: ValidationError, source: _Source) -> Iterator[FlowProblem]:
    for error in exc.errors(include_url=False):
        loc: Loc = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        yield source.problem(loc, message, key=error["type"] == "extra_forbidden")


def _cross_check(flow: Flow, source: _Source) -> Iterator[FlowProblem]:
    yield from _check_names(flow, source)
    yield from _check_counters(flow, source)
    yield from _check_templates(flow, source)
    if flow.policy is not None:
        yield from _check_policy(flow, flow.policy, source)
    yield from _check_listen(flow, source)
    yield from _check_languages(flow, source)
    if flow.order_number is not None:
        try:
            re.compile(flow.order_number.pattern)
        except re.error as exc:
            yield source.problem(("order_number", "pattern"), f"invalid regular expression: {exc}")
    if flow.initial not in flow.states:
        yield source.problem(("initial",), unknown_name("state", flow.initial, flow.states))
    yield from _check_outbound(flow, source)
    yield from _check_routes(flow, ("on",), flow.on, source)
    for name, spec in flow.states.items():
        loc: Loc = ("states", name)
        if spec.final and any(spec.on.values()):
            yield source.problem((*loc, "on"), "a final state cannot have transitions", key=True)
        yield from _check_routes(flow, (*loc, "on"), spec.on, source)
        for index, tool in enumerate(spec.tools):
            if tool not in flow.tools:
                yield source.problem((*loc, "tools", index), unknown_name("tool", tool, flow.tools))
        if not spec.final and not any(flow.routes(name).values()):
            message = "non-final state has no transitions; add `on:` or mark it `final: true`"
            yield source.problem(loc, message, key=True)
    yield from _check_speech_and_tools(flow, source)
    yield from _check_phone_numbers(flow, source)
    # A target that is only misspelt counts as the state it names, so its states are not also
    # reported unreachable; with a target that names nothing, reachability would only mislead.
    if flow.initial in flow.states and not _unresolved_targets(flow):
        reachable = _reachable(flow)
        for name in flow.states:
            if name not in reachable:
                message = f"unreachable from the initial state {flow.initial!r}"
                yield source.problem(("states", name), message, key=True)


def _check_names(flow: Flow, source: _Source) -> Iterator[FlowProblem]:
    events = {*KNOWN_EVENTS, *flow.events}
    for name in flow.states:
        if not _IDENTIFIER.fullmatch(name) or keyword.iskeyword(name):
            message = "a state name must be an identifier"
        elif name in _RESERVED_NAMES:
            message = f"{name!r} is reserved; rename the state"
        elif name in events:
            message = "a state cannot share its name with an event"
        else:
            continue
        yield source.problem(("states", name), message, key=True)
    for name in flow.tools:
        if not _IDENTIFIER.fullmatch(name):
            yield source.problem(("tools", name), "a tool name must be an identifier", key=True)
    for index, event in enumerate(flow.events):
        loc: Loc = ("events", index)
        if event in KNOWN_EVENTS:
            yield source.problem(loc, f"{event!r} is already a known event")
        elif not _IDENTIFIER.fullmatch(event) or event in _RESERVED_NAMES:
            yield source.problem(loc, f"{event!r} is not a valid event name")


def _check_counters(flow: Flow, source: _Source) -> Iterator[FlowProblem]:
    for name, events in flow.counters.items():
        if not _IDENTIFIER.fullmatch(name) or keyword.iskeyword(name):
            message = "a counter name must be an identifier"
            yield source.problem(("counters", name), message, key=True)
        for index, event in enumerate(events):
            problem = _event_problem(flow, event)
            if problem is not None:
                yield source.problem(("counters", name, index), problem)


def _event_problem(flow: Flow, event: str) -> str | None:
    if event in KNOWN_EVENTS or event in flow.events:
        return None
    for prefix in (TOOL_EVENT_PREFIX, DONE_EVENT_PREFIX, FAILED_EVENT_PREFIX):
        if event.startswith(prefix):
            tool = event.removeprefix(prefix)
            if tool in flow.tools:
                return None
            hint = name_hint(tool, flow.tools)
            return f"event {event!r} names an undeclared tool {tool!r}{hint}"
    tool_events = [
        f"{prefix}{tool}"
        for prefix in (TOOL_EVENT_PREFIX, DONE_EVENT_PREFIX, FAILED_EVENT_PREFIX)
        for tool in flow.tools
    ]
    guess = did_you_mean(event, [*KNOWN_EVENTS, *flow.events, *tool_events])
    if guess is not None:
        return f"unknown event {event!r} (did you mean `{guess}`?)"
    return f"unknown event {event!r}; declare custom events under `events:`"


def _check_routes(
    flow: Flow, loc: Loc, routes: Mapping[str, Sequence[Transition]], source: _Source
) -> Iterator[FlowProblem]:
    for event, transitions in routes.items():
        problem = _event_problem(flow, event)
        if problem is not None:
            yield source.problem((*loc, event), problem, key=True)
        unguarded_before = False
        for index, transition in enumerate(transitions):
            item: Loc = (*loc, event, index)
            if unguarded_before:
                yield source.problem(item, "never taken: an earlier transition has no `when`")
            unguarded_before = unguarded_before or transition.when is None
            if transition.target not in flow.states:
                message = unknown_name("target state", transition.target, flow.states)
                yield source.problem((*item, "target"), message)
            try:
                compile_transition_guard(flow, transition)
            except GuardError as exc:
                yield _guard_problem(source, (*item, "when"), transition.when or "", exc)


def _guard_problem(source: _Source, loc: Loc, expression: str, exc: GuardError) -> FlowProblem:
    line, column = source.position(loc)
    quoted = source.text.splitlines()[line][column : column + 1] in {'"', "'"}
    stripped = len(expression) - len(expression.lstrip())
    column += int(quoted) + stripped + exc.column
    message = f"{_dotted(loc)}: bad guard: {exc.message}"
    return _problem_at(source.path, line + 1, column + 1, message)


def _check_templates(flow: Flow, source: _Source) -> Iterator[FlowProblem]:
    variables = known_variables(shop_keys=flow.shop, counters=flow.counters, tools=flow.tools)
    templates: list[tuple[Loc, LocalText]] = [(("system_prompt",), flow.system_prompt)]
    templates.extend(_escalation_texts(flow))
    for name, spec in flow.states.items():
        if spec.instructions is not None:
            templates.append((("states", name, "instructions"), spec.instructions))
        if spec.say is not None:
            templates.append((("states", name, "say"), spec.say))
        templates.extend(_transition_texts(("states", name, "on"), spec.on))
    for loc, text in _each_variant(templates):
        yield from _template_problems(source, loc, text, variables)


def _escalation_texts(flow: Flow) -> Iterator[tuple[Loc, LocalText]]:
    """The escalation texts the author wrote: a default that reads `shop.name` is no error of theirs."""
    if flow.escalation is None:
        return
    for field in ("supervise_say", "callback_say", "failed_say", "unavailable_say"):
        if field in flow.escalation.model_fields_set:
            yield ("escalation", field), getattr(flow.escalation, field)


def _transition_texts(
    loc: Loc, routes: Mapping[str, Sequence[Transition]]
) -> Iterator[tuple[Loc, LocalText]]:
    for event, transitions in routes.items():
        for index, transition in enumerate(transitions):
            if transition.say is not None:
                yield (*loc, event, index, "say"), transition.say


def _each_variant(texts: Iterable[tuple[Loc, LocalText]]) -> Iterator[tuple[Loc, str]]:
    """Each written version of each text, located at its language's key when it has one."""
    for loc, text in texts:
        for language, words in text_variants(text):
            yield ((*loc, language) if language else loc), words


def _template_problems(
    source: _Source, loc: Loc, text: str, variables: frozenset[str]
) -> Iterator[FlowProblem]:
    """Unbalanced braces, then each placeholder that is not a known dotted name."""
    for brace in find_brace_problems(text):
        yield source.problem_inside(loc, brace.braces, brace.occurrence, brace.message)
    seen: dict[str, int] = {}
    for placeholder in find_placeholders(text):
        occurrence = seen.get(placeholder.raw, 0)
        seen[placeholder.raw] = occurrence + 1
        if "{{" in placeholder.raw[2:]:
            continue  # an unclosed `{{` before it, reported above
        if placeholder.name is None:
            message = f"bad placeholder {placeholder.raw!r}: use a dotted name like " + (
                "{{ order.eta }}"
            )
        elif placeholder.name not in variables:
            message = _unknown_variable(placeholder.name, variables)
        else:
            continue
        yield source.problem_inside(loc, placeholder.raw, occurrence, message)


def _unknown_variable(name: str, variables: frozenset[str]) -> str:
    """The likely fix: a close name of the same group (`caller.…`), or how to declare a new one."""
    group, _, key = name.partition(".")
    close = did_you_mean(name, sorted(v for v in variables if v.partition(".")[0] == group))
    if close is None and group == "shop":
        return f"unknown template variable {name!r}: declare `{key}:` under `shop:`"
    if close is None and group == "counters":
        return f"unknown template variable {name!r}: declare the counter under `counters:`"
    return unknown_dotted_name("template variable", name, variables)


def _check_tool_actions(
    flow: Flow, source: _Source, handlers: Collection[str] | None
) -> Iterator[FlowProblem]:
    """Each tool does something, and the templates of its `http:` action (and the orders headers) are known.

    An action's texts may also read `env.*` (the environment) and `arguments.*` (what the model passed);
    nothing else may, so a secret cannot reach the caller or the model through `say` or `instructions`.
    """
    if handlers is not None:
        for name in flow.tools_without_action(handlers):
            message = (
                f"tool {name!r} does nothing: add an `http:` action, register a code handler "
                f"(add_routes(..., tools={{...}}); check with `flow check --handler {name}`), "
                "or use a built-in (end_call, lookup_order, transfer_to_human)"
            )
            yield source.problem(("tools", name), message, key=True)
    base = known_variables(shop_keys=flow.shop, counters=flow.counters, tools=flow.tools)
    texts: list[tuple[Loc, str]] = []
    for name, spec in flow.tools.items():
        if spec.http is None:
            continue
        loc: Loc = ("tools", name, "http")
        texts.append(((*loc, "url"), spec.http.url))
        texts.extend(((*loc, "headers", key), value) for key, value in spec.http.headers.items())
        texts.extend(_json_strings((*loc, "json"), spec.http.body))
    texts.extend((("orders", "headers", key), value) for key, value in flow.orders.headers.items())
    variables = base.with_namespaces("env.", "arguments.")
    for loc, text in texts:
        seen: dict[str, int] = {}
        for placeholder in find_placeholders(text):
            occurrence = seen.get(placeholder.raw, 0)
            seen[placeholder.raw] = occurrence + 1
            if placeholder.name is None or placeholder.name not in variables:
                message = f"unknown template variable {placeholder.raw!r}"
                yield source.problem_inside(loc, placeholder.raw, occurrence, message)


def _json_strings(loc: Loc, value: object) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _json_strings((*loc, str(key)), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_strings((*loc, index), item)


# Policy phrases become grammar words: plain lowercase words the recogniser's dictionary can hold.
_PHRASE = re.compile(r"[a-z']+( [a-z']+)*")
# What the offline policy adds to a flow's template variables: the order number it asked about.
POLICY_VARIABLES = frozenset({"request.order_number", "request.order_number_spoken"})


def _check_policy(flow: Flow, policy: Policy, source: _Source) -> Iterator[FlowProblem]:
    base: Loc = ("policy",)
    templates: list[tuple[Loc, LocalText]] = []
    slot = policy.order_number
    if slot is not None:
        if slot.tool not in flow.tools:
            message = unknown_name("tool", slot.tool, flow.tools)
            yield source.problem((*base, "order_number", "tool"), message)
        if slot.say is not None:
            templates.append(((*base, "order_number", "say"), slot.say))
        if slot.confirm:
            templates.append(((*base, "order_number", "confirm_say"), slot.confirm_say))
            yield from _check_confirm_intents(policy, slot, source)
        pattern = flow.order_number.pattern if flow.order_number is not None else None
        for index, shape in enumerate(slot.shapes):
            example = shape.replace("#", "1")
            if pattern is not None and _safe_match(pattern, example) is False:
                message = f"shape {shape!r} does not fit order_number.pattern {pattern!r}"
                yield source.problem((*base, "order_number", "shapes", index), message)
    for name, intent in policy.intents.items():
        loc: Loc = (*base, "intents", name)
        if intent.tool is not None and intent.tool not in flow.tools:
            yield source.problem((*loc, "tool"), unknown_name("tool", intent.tool, flow.tools))
        if intent.say is not None:
            templates.append(((*loc, "say"), intent.say))
        yield from _phrase_problems(source, (*loc, "phrases"), intent.phrases, "phrase")
    yield from _phrase_problems(source, (*base, "fillers"), policy.fillers, "filler")
    for key, text in policy.replies.items():
        if key not in flow.states and key not in POLICY_MOMENTS:
            known = ", ".join(POLICY_MOMENTS)
            message = f"{key!r} is neither a state nor a policy moment ({known})"
            yield source.problem((*base, "replies", key), message, key=True)
        templates.append(((*base, "replies", key), text))
    variables = known_variables(shop_keys=flow.shop, counters=flow.counters) | POLICY_VARIABLES
    for loc, text in _each_variant(templates):
        yield from _template_problems(source, loc, text, variables)


def _phrase_problems(source: _Source, loc: Loc, phrases: Phrases, what: str) -> Iterator[FlowProblem]:
    """Each phrase (of each language) must be lowercase words the recogniser's grammar can hold."""
    lists = phrases.items() if isinstance(phrases, Mapping) else [(None, phrases)]
    for language, listed in lists:
        at: Loc = (*loc, language) if language else loc
        for index, phrase in enumerate(listed):
            if not _PHRASE.fullmatch(phrase):
                message = f"a {what} is lowercase words separated by single spaces"
                yield source.problem((*at, index), message)


def _check_confirm_intents(
    policy: Policy, slot: PolicyOrderNumber, source: _Source
) -> Iterator[FlowProblem]:
    """A read-back needs the intents that answer it, and they must not act on their own."""
    for key, name in (("yes_intent", slot.yes_intent), ("no_intent", slot.no_intent)):
        loc: Loc = ("policy", "order_number", key)
        intent = policy.intents.get(name)
        if intent is None:
            message = f"confirm needs a {name!r} intent under policy.intents (or confirm: false)"
            yield source.problem(loc, message)
        elif intent.tool is not None:
            message = f"intent {name!r} answers a read-back and cannot call a tool"
            yield source.problem(("policy", "intents", name, "tool"), message)


def _safe_match(pattern: str, text: str) -> bool | None:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return None  # the pattern itself is reported elsewhere


def _reachable(flow: Flow) -> set[str]:
    starts = [flow.initial]
    if flow.initial_outbound in flow.states:
        starts.append(flow.initial_outbound)
    seen = set(starts)
    pending = list(starts)
    while pending:
        state = pending.pop()
        for transitions in flow.routes(state).values():
            for transition in transitions:
                target = _resolved(transition.target, flow.states)
                if target is not None and target not in seen:
                    seen.add(target)
                    pending.append(target)
    return seen


def _resolved(name: str, declared: Mapping[str, object]) -> str | None:
    """`name` if declared, else the declared name it most likely misspells, else None."""
    return name if name in declared else did_you_mean(name, declared)


def _unresolved_targets(flow: Flow) -> bool:
    """Whether some route targets a name that is not even a misspelt state."""
    routes = [flow.on, *(spec.on for spec in flow.states.values())]
    return any(
        _resolved(transition.target, flow.states) is None
        for on in routes
        for transitions in on.values()
        for transition in transitions
    )


def _check_speech_and_tools(flow: Flow, source: _Source) -> Iterator[FlowProblem]:
    """A final state that speaks, and routes for tool calls the state can never receive."""
    for name, spec in flow.states.items():
        loc: Loc = ("states", name)
        if spec.final and spec.say is not None:
            message = (
                "a final state has no `say`: the call hangs up on entering it, and the caller may "
                "be gone already; put the goodbye on the route into it (a transition's `say:`)"
            )
            yield source.problem((*loc, "say"), message, key=True)
        # A misspelt tool in `tools:` is reported once, as unknown; here it counts as what it names.
        allowed = {_resolved(tool, flow.tools) for tool in spec.tools}
        for event, transitions in spec.on.items():
            tool = _routed_tool(flow, event, transitions)
            if tool is not None and tool not in allowed:
                tools = ", ".join(spec.tools) or "none"
                message = (
                    f"never taken: this state cannot call `{tool}`; add it to the state's "
                    f"`tools:` (now {tools}) or remove the route"
                )
                yield source.problem((*loc, "on", event), message, key=True)
    for event, transitions in flow.on.items():
        tool = _routed_tool(flow, event, transitions)
        if tool is None:
            continue
        users = [spec for spec in flow.states.values() if not spec.final and event not in spec.on]
        if not any(tool in {_resolved(t, flow.tools) for t in spec.tools} for spec in users):
            message = (
                f"never taken: no state that uses this global route lists `{tool}` in its `tools:`"
            )
            yield source.problem(("on", event), message, key=True)


def _routed_tool(flow: Flow, event: str, transitions: Sequence[Transition]) -> str | None:
    """The declared tool whose call `event` routes somewhere, if it is such a route."""
    tool = event.removeprefix(TOOL_EVENT_PREFIX)
    routed = event.startswith(TOOL_EVENT_PREFIX) and tool in flow.tools and bool(transitions)
    return tool if routed else None


# E.164: a plus, the country code and the number, 8 to 15 digits in all, nothing else.
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_PHONE_PUNCTUATION = re.compile(r"[\s().-]")


def _check_phone_numbers(flow: Flow, source: _Source) -> Iterator[FlowProblem]:
    numbers: list[tuple[str, str, str | None]] = []
    if flow.escalation is not None:
        numbers += [("escalation", f, getattr(flow.escalation, f)) for f in ("number", "caller_id")]
    if flow.outbound is not None:
        numbers.append(("outbound", "caller_id", flow.outbound.caller_id))
    for section, field, number in numbers:
        if number is None or _E164.fullmatch(number):
            continue
        message = f"{number!r} is not an E.164 phone number (a `+`, the country code, digits only)"
        guess = _e164_guess(number)
        if guess is not None:
            message += f"; did you mean `{guess}`?"
        yield source.problem((section, field), message)


def _e164_guess(number: str) -> str | None:
    """The E.164 form a number most likely means; a national 0… number is read as Kenyan."""
    digits = _PHONE_PUNCTUATION.sub("", number)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    elif digits.startswith("0") and len(digits) == 10:
        digits = "+254" + digits[1:]
    elif digits.startswith("254"):
        digits = "+" + digits
    return digits if _E164.fullmatch(digits) else None


def _check_listen(flow: Flow, source: _Source) -> Iterator[FlowProblem]:
    """A state's `listen:` entries: their tools are allowed there, their intents have phrases."""
    declared = flow.policy.intents if flow.policy is not None else {}
    has_shapes = flow.policy is not None and flow.policy.order_number is not None
    variables = known_variables(shop_keys=flow.shop, counters=flow.counters) | POLICY_VARIABLES
    for state, spec in flow.states.items():
        for intent, entry in spec.listen.items():
            loc: Loc = ("states", state, "listen", intent)
            if intent == "order_number":
                if not has_shapes:
                    message = "listening for order_number needs `policy.order_number.shapes`"
                    yield source.problem(loc, message, key=True)
            elif not entry.phrases and intent not in BUILTIN_INTENTS and intent not in declared:
                message = (
                    f"intent {intent!r} has no phrases: add `phrases:` here or declare it under "
                    f"policy.intents (built-in: {', '.join(BUILTIN_INTENTS)})"
                )
                yield source.problem(loc, message, key=True)
            yield from _phrase_problems(source, (*loc, "phrases"), entry.phrases, "phrase")
            # A misspelt tool in the state's `tools:` is reported once, as unknown; here it is what it names.
            allowed = {_resolved(tool, flow.tools) for tool in spec.tools}
            if entry.tool is not None and entry.tool not in flow.tools:
                message = unknown_name("tool", entry.tool, flow.tools)
                yield source.problem((*loc, "tool"), message)
            elif entry.tool is not None and entry.tool not in allowed:
                tools = ", ".join(spec.tools) or "none"
                message = f"tool {entry.tool!r} is not allowed in state {state!r} (its tools: {tools})"
                yield source.problem((*loc, "tool"), message)
            if entry.say is None:
                continue
            for at, words in _each_variant([((*loc, "say"), entry.say)]):
                for placeholder in find_placeholders(words):
                    if placeholder.name is None or placeholder.name not in variables:
                        message = f"unknown template variable {placeholder.raw!r}"
                        yield source.problem_inside(at, placeholder.raw, 0, message)
        yield from _check_keypad(state, spec, source)
        yield from _check_listen_reachable(flow, state, spec, source)


def _check_listen_reachable(
    flow: Flow, state: str, spec: StateSpec, source: _Source
) -> Iterator[FlowProblem]:
    """`listen:` entries the caller can reach: not on a final state, and no phrase another intent wins.

    The offline policy matches the longest phrase heard; of two intents with the same phrase, the one
    first in its grammar wins: the flow-wide intents in `policy.intents` order (a state's entry of the
    same name takes that place), then the state's new intents in the order it lists them.
    """
    if not spec.listen:
        return
    if spec.final:
        message = "a final state hears nothing: the call hangs up on entering it; listen in the state before"
        yield source.problem(("states", state, "listen"), message, key=True)
        return
    declared = flow.policy.intents if flow.policy is not None else {}
    order: dict[str, Phrases] = {name: intent.phrases for name, intent in declared.items()}
    for name, entry in spec.listen.items():
        if entry.phrases:
            order[name] = entry.phrases
    names = list(order)
    for name, entry in spec.listen.items():
        earlier = names[: names.index(name)] if entry.phrases else []
        for language in flow.call_languages:
            winners = {p: other for other in earlier for p in phrases_for(order[other], language)}
            for index, phrase in enumerate(phrases_for(entry.phrases, language)):
                if phrase in winners:
                    at: Loc = ("states", state, "listen", name, "phrases")
                    if isinstance(entry.phrases, Mapping):
                        at = (*at, language)
                    message = (
                        f"never heard as {name!r}: {phrase!r} is also a phrase of {winners[phrase]!r}, "
                        "which is matched first; give this answer words of its own"
                    )
                    yield source.problem((*at, index), message)


def _check_outbound(flow: Flow, source: _Source) -> Iterator[FlowProblem]:
    """An outbound entry state exists, listens first (no `say`), and routes what the call may bring."""
    start = flow.initial_outbound
    if start is None:
        if flow.outbound is not None:
            message = "`outbound:` needs `initial_outbound:`, the state an outbound call starts in"
            yield source.problem(("outbound",), message, key=True)
        return
    if flow.outbound is None:
        message = "`initial_outbound:` needs an `outbound:` section (at least its `caller_id`)"
        yield source.problem(("initial_outbound",), message)
    if start not in flow.states:
        yield source.problem(("initial_outbound",), unknown_name("state", start, flow.states))
        return
    spec = flow.states[start]
    if spec.say is not None:
        message = (
            "an outbound call listens first (a person or a voicemail greeting?): put the words on "
            "its `answered` route instead"
        )
        yield source.problem(("states", start, "say"), message)
    needed = ["answered"]
    if flow.outbound is not None and flow.outbound.voicemail == "leave_message":
        needed.append("voicemail")
    for event in needed:
        if not flow.transitions(start, event):
            message = f"the outbound entry state must route `{event}`"
            yield source.problem(("states", start), message, key=True)


def _check_keypad(state: str, spec: StateSpec, source: _Source) -> Iterator[FlowProblem]:
    """A state collects digits for one answer at most, and no key means two things there."""
    collecting = [name for name, entry in spec.listen.items() if entry.keypad]
    for name in collecting[1:]:
        message = (
            f"only one answer per state may collect digits (`keypad: true`); "
            f"{collecting[0]!r} already does"
        )
        yield source.problem(("states", state, "listen", name, "keypad"), message)
    end = spec.listen[collecting[0]].end if collecting else None
    keys: dict[str, str] = {}
    for name, entry in spec.listen.items():
        if entry.key is None:
            continue
        loc: Loc = ("states", state, "listen", name, "key")
        if entry.keypad:
            message = "an answer either collects digits (`keypad: true`) or is one `key`, not both"
            yield source.problem(loc, message)
        elif entry.key in keys:
            message = f"key {entry.key!r} already answers {keys[entry.key]!r} in this state"
            yield source.problem(loc, message)
        elif entry.key == end:
            message = f"key {entry.key!r} ends the {collecting[0]!r} entry in this state"
            yield source.problem(loc, message)
        elif collecting and entry.key.isdigit():
            message = (
                f"digit key {entry.key!r} would cut {collecting[0]!r} short: use * or # "
                "for a single key in a state that collects digits"
            )
            yield source.problem(loc, message)
        keys.setdefault(entry.key, name)


def _spoken_texts(flow: Flow) -> Iterator[tuple[Loc, LocalText]]:
    """Every text a caller hears that the author wrote (instructions and the system prompt are the model's)."""
    yield from _escalation_texts(flow)
    yield from _transition_texts(("on",), flow.on)
    for name, spec in flow.states.items():
        if spec.say is not None and not spec.final:  # a final state's say is an error of its own
            yield ("states", name, "say"), spec.say
        yield from _transition_texts(("states", name, "on"), spec.on)
        for answer, entry in spec.listen.items():
            if entry.say is not None:
                yield ("states", name, "listen", answer, "say"), entry.say
    policy = flow.policy
    if policy is None:
        return
    slot = policy.order_number
    if slot is not None:
        if slot.say is not None:
            yield ("policy", "order_number", "say"), slot.say
        if slot.confirm:
            yield ("policy", "order_number", "confirm_say"), slot.confirm_say
    for name, intent in policy.intents.items():
        if intent.say is not None:
            yield ("policy", "intents", name, "say"), intent.say
    for key, text in policy.replies.items():
        yield ("policy", "replies", key), text


def _phrase_lists(flow: Flow) -> Iterator[tuple[Loc, Phrases]]:
    policy = flow.policy
    if policy is not None:
        yield ("policy", "fillers"), policy.fillers
        for name, intent in policy.intents.items():
            yield ("policy", "intents", name, "phrases"), intent.phrases
    for state, spec in flow.states.items():
        for answer, entry in spec.listen.items():
            yield ("states", state, "listen", answer, "phrases"), entry.phrases


def _check_languages(flow: Flow, source: _Source) -> Iterator[FlowProblem]:
    """Declared languages only, and every spoken text (and per-language phrase list) in each of them."""
    declared = flow.call_languages
    listed = ", ".join(declared)
    for index, language in enumerate(flow.languages):
        if language in flow.languages[:index]:
            yield source.problem(("languages", index), f"{language!r} is listed twice")
    choice = flow.language
    for number, language in choice.by_number.items():
        loc: Loc = ("language", "by_number", number)
        if not _E164.fullmatch(number):
            yield source.problem(loc, f"{number!r} is not an E.164 phone number", key=True)
        if language not in declared:
            yield source.problem(loc, f"language {language!r} is not declared (languages: {listed})")
    for section in ("switch_phrases", "voices"):
        for language in getattr(choice, section):
            if language not in declared:
                message = f"language {language!r} is not declared (languages: {listed})"
                yield source.problem(("language", section, language), message, key=True)
    yield from _phrase_problems(source, ("language", "switch_phrases"), choice.switch_phrases, "phrase")
    for loc, text in _spoken_texts(flow):
        for written, _ in text_variants(text):
            if written is not None and written not in declared:
                message = f"language {written!r} is not declared (languages: {listed})"
                yield source.problem((*loc, written), message, key=True)
        for language in missing_languages(text, declared):
            how = "write one version per language" if isinstance(text, str) else "add it"
            yield source.problem(loc, f"no {language} text (languages: {listed}); {how}")
    for loc, phrases in _phrase_lists(flow):
        if not isinstance(phrases, Mapping):
            continue  # one list serves every language
        for language in phrases:
            if language not in declared:
                message = f"language {language!r} is not declared (languages: {listed})"
                yield source.problem((*loc, language), message, key=True)
        for language in declared:
            if language not in phrases:
                yield source.problem(loc, f"no {language} phrases (languages: {listed})")
