"""The offline dialogue policy: the flow's own states plus intents, an order-number slot and replies from YAML.

No model: what the caller said (already constrained by the recogniser's grammar) is matched against the
declared order-number shapes and intent phrases, and the answer is a tool call or a templated reply. It is
a `Dialogue` for the cascade brain: each method returns the steps of one agent turn — text to speak or a
`ToolCall` — and the brain voices them. A product team tunes it in the flow file, not in code.

A recognised order number is read back first (`confirm_say`) and looked up only after the caller's yes:
a small grammar-bound recogniser mishears digits in noise, and the conversation is what catches it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from itertools import count

from orchestrator.brains.base import CallInfo, JSONValue, StateBrief, ToolCall
from orchestrator.speech.grammar import (
    GrammarSpec,
    match_intent,
    parse_order_number,
    spoken_order_number,
)

__all__ = ["IntentRule", "PolicyConfig", "PolicyDialogue", "render_reply"]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
# A sentence ends at . ! or ? followed by a space: the dot inside `{{ order.eta }}` is not an end.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True, slots=True, kw_only=True)
class IntentRule:
    """An intent: its phrases, an optional reply and an optional tool call with fixed arguments."""

    name: str
    phrases: tuple[str, ...]
    say: str | None = None
    tool: str | None = None
    arguments: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyConfig:
    """Everything the policy knows, as plain data (the cascade module builds it from a flow)."""

    shapes: tuple[str, ...] = ()
    number_tool: str = "lookup_order"
    number_argument: str = "order_number"
    number_say: str | None = None
    # None: look a recognised number up at once; else read it back with this and wait for a yes.
    confirm_say: str | None = None
    yes_intent: str = "yes"
    no_intent: str = "no"
    intents: tuple[IntentRule, ...] = ()
    fillers: tuple[str, ...] = ()
    replies: Mapping[str, str] = field(default_factory=dict)
    shop: Mapping[str, str] = field(default_factory=dict)

    def grammar(self) -> GrammarSpec:
        return GrammarSpec(
            shapes=self.shapes,
            intents={rule.name: rule.phrases for rule in self.intents},
            fillers=self.fillers,
        )


def render_reply(template: str, context: Mapping[str, object]) -> str:
    """Fill `{{ dotted.names }}`; a sentence whose placeholders are all empty is left out.

    Orders often lack an ETA or a courier: "Expected delivery: ." is worse than saying nothing.
    """
    spoken: list[str] = []
    for sentence in _SENTENCE_BREAK.split(template.strip()):
        names = _PLACEHOLDER.findall(sentence)
        values = {name: _lookup(context, name) for name in names}
        if names and not any(values.values()):
            continue
        # The lambda runs inside sub(), within this iteration: the late binding is harmless.
        spoken.append(_PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), sentence))  # noqa: B023
    return " ".join(" ".join(spoken).split())


def _lookup(context: Mapping[str, object], name: str) -> str:
    value: object = context
    for part in name.split("."):
        if not isinstance(value, Mapping):
            return ""
        value = value.get(part)
    return "" if value is None else str(value)


class PolicyDialogue:
    """A Dialogue that follows the flow with declared phrases and replies."""

    def __init__(self, config: PolicyConfig) -> None:
        self._config = config
        self._intents = {rule.name: rule.phrases for rule in config.intents}
        self._rules = {rule.name: rule for rule in config.intents}
        self._state = StateBrief(name="", instructions=None, tools=())
        self._pending: set[str] = set()
        self._unconfirmed: str | None = None  # the number read back, waiting for the caller's yes
        self._ids = count(1)
        self._context: dict[str, object] = {
            "shop": dict(config.shop),
            "order": {},
            "orders": {"count": 0},
        }

    def begin(self, call: CallInfo) -> None:
        number = call.caller or ""
        self._context["caller"] = {
            "number": number,
            "number_spoken": " ".join(ch for ch in number if ch.isdigit()),
        }

    def expects_number(self) -> bool:
        """Whether the next caller utterance may carry an order number (picks the recogniser's grammar)."""
        return bool(self._config.shapes) and self._config.number_tool in self._state.tools

    async def on_state(self, state: StateBrief) -> AsyncIterator[str | ToolCall]:
        self._state = state
        self._unconfirmed = None  # a new state asks its own question: an old read-back is stale
        # After a tool call its result decides what to say; a `say` spoken on entry is the prompt.
        if not self._pending and state.say is None:
            reply = self._reply(state.name)
            if reply:
                yield reply

    async def on_caller(self, text: str) -> AsyncIterator[str | ToolCall]:
        number = parse_order_number(text, self._config.shapes) if self.expects_number() else None
        if number is not None:
            # A number said instead of yes or no replaces the one read back.
            self._context["request"] = {
                "order_number": number,
                "order_number_spoken": spoken_order_number(number),
            }
            if self._config.confirm_say:
                self._unconfirmed = number
                yield self._render(self._config.confirm_say)
                return
            for step in self._look_up(number):
                yield step
            return
        intent = match_intent(text, self._intents) if text else None
        unconfirmed, self._unconfirmed = self._unconfirmed, None
        answers = self._confirm_intents()
        if unconfirmed is not None and (intent is None or intent in answers):
            for step in self._answer_read_back(unconfirmed, intent):
                yield step
            return
        # Other intents act as in any turn; a yes or no that answers nothing is not understood.
        if intent is None or intent in answers:
            reply = self._reply("not_understood")
            if reply:
                yield reply
            return
        rule = self._rules[intent]
        if rule.tool is not None and rule.tool not in self._state.tools:
            reply = self._reply("refused")
            if reply:
                yield reply
            return
        if rule.say:
            yield self._render(rule.say)
        if rule.tool is not None:
            yield self._call(rule.tool, dict(rule.arguments))

    async def on_tool_result(
        self, call: ToolCall, result: Mapping[str, JSONValue]
    ) -> AsyncIterator[str | ToolCall]:
        self._pending.discard(call.call_id)
        if self._pending:
            return
        order = result.get("order")
        if isinstance(order, Mapping):
            self._context["order"] = dict(order)
            others = result.get("other_orders")
            self._context["orders"] = {
                "count": 1 + (len(others) if isinstance(others, list) else 0)
            }
        moment: str | None = None
        if "found" not in result and "error" in result:
            moment = "refused"  # the session refused a tool not allowed in this state
        elif result.get("found") is False:
            moment = "lookup_failed" if "error" in result else "order_not_found"
        # A moment's reply only makes sense where the caller can act on it (not while escalating).
        if moment is not None and moment in self._config.replies and self._state.tools:
            yield self._render(self._config.replies[moment])
            return
        reply = self._reply(self._state.name) if self._state.say is None else None
        if reply:
            yield reply

    def on_interrupted(self, heard: str) -> None:
        return None  # the policy keeps no transcript: nothing to truncate

    def _look_up(self, number: str) -> list[str | ToolCall]:
        steps: list[str | ToolCall] = []
        if self._config.number_say:
            steps.append(self._render(self._config.number_say))
        steps.append(self._call(self._config.number_tool, {self._config.number_argument: number}))
        return steps

    def _answer_read_back(self, number: str, intent: str | None) -> list[str | ToolCall]:
        """Yes looks the number up; no says its reply and waits for the number again."""
        if intent == self._config.yes_intent:
            return self._look_up(number)
        if intent == self._config.no_intent:
            rule = self._rules.get(intent)
            reply = self._render(rule.say) if rule and rule.say else self._reply(self._state.name)
            return [reply] if reply else []
        # Nothing understood: the read-back still stands, so ask it again.
        self._unconfirmed = number
        return [self._render(self._config.confirm_say)] if self._config.confirm_say else []

    def _confirm_intents(self) -> frozenset[str]:
        if not self._config.confirm_say:
            return frozenset()
        return frozenset((self._config.yes_intent, self._config.no_intent))

    def _reply(self, key: str) -> str:
        template = self._config.replies.get(key)
        return self._render(template) if template else ""

    def _render(self, template: str) -> str:
        return render_reply(template, self._context)

    def _call(self, name: str, arguments: dict[str, JSONValue]) -> ToolCall:
        call = ToolCall(call_id=f"policy-{next(self._ids)}", name=name, arguments=arguments)
        self._pending.add(call.call_id)
        return call
