"""Pydantic models of a flow file: the edge where YAML becomes typed, immutable objects.

Every model forbids unknown keys so a typo in the YAML is an error, not a silently ignored setting.
Only shape is checked here; cross references (targets, tools, template names, guards, reachability)
are the loader's job, because they need the whole file and its line numbers.
Imports only pydantic (and zoneinfo, to check a time zone's name).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Annotated, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "BUILTIN_TOOLS",
    "DONE_EVENT_PREFIX",
    "FAILED_EVENT_PREFIX",
    "BUILTIN_INTENTS",
    "KNOWN_EVENTS",
    "ORDER_FIELDS",
    "POLICY_MOMENTS",
    "Escalation",
    "EscalationStrategy",
    "Flow",
    "HttpAction",
    "LanguageTag",
    "Languages",
    "ListenEntry",
    "LocalizedPhrases",
    "LocalizedText",
    "MultipleOrders",
    "OrderNumber",
    "OrdersSettings",
    "Outbound",
    "Policy",
    "PolicyConfidence",
    "PolicyIntent",
    "PolicyOrderNumber",
    "StateSpec",
    "ToolSpec",
    "Transition",
    "Vad",
    "Voice",
]

EscalationStrategy = Literal["dial", "supervise", "callback"]

# Events the call session sends; `tool:<name>` per declared tool and the flow's `events:` add more.
KNOWN_EVENTS: tuple[str, ...] = (
    "stream_started",
    "stream_stopped",
    "hangup",
    "speech_started",
    "speech_stopped",
    "silence_timeout",
    "order_found",
    "order_not_found",
    "lookup_failed",
    "turn_complete",
    "brain_failed",
    "escalation_failed",
    "answered",  # an outbound call was answered by a person (the order's lookup is in `order.*`)
    "voicemail",  # an outbound call reached a voicemail greeting, which has ended (leave the message now)
    "dtmf",  # the caller typed on the keypad (an entry finished, or a mapped key): keypad.digits, keypad.intent
    "shutdown",  # the service is stopping (SIGTERM): say goodbye or transfer, then the call ends
    "language_changed",  # the call's language changed (the caller asked, or the model heard it)
)
TOOL_EVENT_PREFIX = "tool:"
# A tool's action (`http:` or a code handler) finished: `done:<tool>` or `failed:<tool>`.
DONE_EVENT_PREFIX = "done:"
FAILED_EVENT_PREFIX = "failed:"
# Tools the call session itself gives a meaning: a lookup, and the routes to a person or to the end.
BUILTIN_TOOLS: frozenset[str] = frozenset({"lookup_order", "transfer_to_human", "end_call"})


# BCP-47 as Sautikit's <Say language=> takes it: a language, and optionally a region (en-KE, sw-KE, sw).
LanguageTag = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Z]{2}|-[0-9]{3})?$")]
_Words = Annotated[str, Field(min_length=1)]
# A spoken text: the same words in every language, or one version per language (`{en-KE: ..., sw-KE: ...}`).
LocalizedText = str | Annotated[dict[LanguageTag, _Words], Field(min_length=1)]
_PhraseList = tuple[_Words, ...]
# What callers say: the same phrases in every language, or a list per language.
LocalizedPhrases = _PhraseList | dict[LanguageTag, _PhraseList]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_alias=True, validate_by_name=True
    )


def _as_transitions(value: object) -> object:
    """Accept the spellings of a transition: a target, one `{target, when}`, or a list of either.

    `null` (or an empty list) means "ignore this event here": a state opts out of a global route.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        return ({"target": value},)
    if isinstance(value, Mapping):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple({"target": item} if isinstance(item, str) else item for item in value)
    raise ValueError(
        "a transition must be a state name, a {target, when} mapping, or a list of them"
    )


class Transition(_Model):
    """Go to `target` when the event arrives and the optional `when` guard passes.

    `say` is spoken when this transition is taken, instead of the target state's own `say`: a reprompt on
    a silence timeout, an apology on a failed lookup.
    """

    target: str
    when: str | None = None
    say: LocalizedText | None = None


# The schema shows every spelling `_as_transitions` accepts, for editors that complete from it.
Transitions = Annotated[
    tuple[Transition, ...],
    BeforeValidator(
        _as_transitions, json_schema_input_type=str | Transition | list[str | Transition] | None
    ),
]


# Intents every flow may name in `listen:` without declaring phrases (they have default phrases, or, for
# `order_number`, the policy's order-number shapes).
BUILTIN_INTENTS: tuple[str, ...] = ("yes", "no", "goodbye", "human", "order_number", "by_phone")


# One DTMF key, as a phone sends it.
_KEY = r"^[0-9*#]$"


class ListenEntry(_Model):
    """One answer a state expects: an intent, and what the offline policy does when it hears it.

    A built-in intent (`BUILTIN_INTENTS`) or one under `policy.intents` needs no phrases here; a state's own
    intent must have them. `say`, `tool` and `arguments` replace the flow-wide intent's for this state.

    The keypad (docs/keypad.md): `keypad: true` collects digits for this answer (an order number) until
    the `end` key, `max_digits` or `digit_timeout` seconds without a key; `key: "0"` makes one key press
    this answer ("press 0 for a person").
    """

    phrases: LocalizedPhrases = ()
    say: LocalizedText | None = None
    tool: str | None = None
    arguments: dict[str, str] = Field(default_factory=dict)
    keypad: bool = False
    end: Annotated[str, Field(pattern=_KEY)] = "#"
    max_digits: Annotated[int, Field(ge=1, le=32)] | None = None
    digit_timeout: Annotated[float, Field(gt=0, le=30)] = 4.0
    key: Annotated[str, Field(pattern=_KEY)] | None = None


def _as_listen(value: object) -> object:
    """`listen: [yes, no]` is short for `listen: {yes: {}, no: {}}`; `yes: null` for `yes: {}`."""
    if isinstance(value, list | tuple):
        return {name: {} for name in value}
    if isinstance(value, Mapping):
        return {name: {} if entry is None else entry for name, entry in value.items()}
    return value


Listen = Annotated[dict[str, ListenEntry], BeforeValidator(_as_listen)]


class StateSpec(_Model):
    """One state of the call: what is said, what the LLM is told and may do, where events lead."""

    say: LocalizedText | None = None
    instructions: LocalizedText | None = None
    tools: tuple[str, ...] = ()
    # The answers this state expects (the offline brain's grammar and actions; a hint to LLM brains).
    listen: Listen = Field(default_factory=dict)
    interruptible: bool = True
    timeout: Annotated[float, Field(gt=0)] | None = None
    final: bool = False
    on: dict[str, Transitions] = Field(default_factory=dict)


def _no_parameters() -> dict[str, object]:
    return {"type": "object", "properties": {}}


HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


class HttpAction(_Model):
    """What a tool does: one HTTP request, its texts templated (`{{ env.NAME }}` reads the environment).

    The JSON answer is the tool's result (`result.<tool>.*` in templates); the machine then gets
    `done:<tool>`, or `failed:<tool>` on an HTTP error, a timeout or an answer that is not JSON.
    """

    method: HttpMethod = "POST"
    url: Annotated[str, Field(min_length=1)]
    headers: dict[str, str] = Field(default_factory=dict)
    # Any JSON; strings in it are templates, and a string that is one placeholder keeps its value's type.
    body: object = Field(default=None, alias="json")
    timeout: Annotated[float, Field(gt=0, le=60)] = 5.0


class ToolSpec(_Model):
    """A tool offered to the LLM: a description, the JSON schema of its arguments, and what it does.

    A tool is a built-in (`BUILTIN_TOOLS`), performs its `http:` action, or is handled by code the host
    application registers (`add_routes(..., tools={name: handler})`); `timeout` bounds a code handler.
    """

    description: str
    parameters: dict[str, object] = Field(default_factory=_no_parameters)
    http: HttpAction | None = None
    timeout: Annotated[float, Field(gt=0, le=60)] = 10.0


class Vad(_Model):
    """Voice-activity detection on the caller's audio: when the caller speaks, and when it is a barge-in."""

    detector: Literal["webrtc", "energy"] = "webrtc"
    aggressiveness: Annotated[int, Field(ge=0, le=3)] = 2  # webrtc mode: higher rejects more noise
    # Speech this long before it counts at all: clicks and coughs are shorter.
    min_speech_ms: Annotated[int, Field(ge=20, le=2000)] = 120
    # Silence this long ends the caller's turn.
    end_of_turn_ms: Annotated[int, Field(ge=100, le=5000)] = 400
    # A sound over the agent pauses it at once; if the caller is still talking this long after they began,
    # the agent is cut off, else ("mhmm", a cough) it carries on.
    barge_in_confirm_ms: Annotated[int, Field(ge=0, le=5000)] = 600
    # Silence this long means a sound over the agent has stopped.
    backchannel_silence_ms: Annotated[int, Field(ge=60, le=2000)] = 160


def _known_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name like Africa/Nairobi") from None
    return name


class Voice(_Model):
    """The agent's voice and language."""

    name: str = "en-us"
    language: str = "en-KE"
    speed: Annotated[float, Field(gt=0, le=4)] = 1.0
    # Where the callers are: delivery times are spoken in this zone's local time (IANA name).
    timezone: Annotated[str, AfterValidator(_known_timezone)] = "Africa/Nairobi"


class OrderNumber(_Model):
    """The shape of an order number on normalised text, used to recognise it in speech."""

    pattern: str
    example: str | None = None


# A shape is the order number as the caller says it: letters are spoken one by one, `#` is one digit.
_SHAPE = r"^[A-Z]*#+$"


class PolicyOrderNumber(_Model):
    """How callers say order numbers, for the offline recogniser's grammar and the policy's slot.

    With `confirm` (the default) a recognised number is read back with `confirm_say` and looked up only
    after the caller's `yes_intent`; their `no_intent` says its reply and asks again. A recogniser
    mishears digits in noise: the conversation, not the grammar, has to catch it.
    """

    shapes: Annotated[tuple[Annotated[str, Field(pattern=_SHAPE)], ...], Field(min_length=1)]
    tool: str = "lookup_order"
    argument: str = "order_number"
    say: LocalizedText | None = None
    confirm: bool = True
    confirm_say: LocalizedText = "Order {{ request.order_number_spoken }}, is that right?"
    yes_intent: str = "yes"
    no_intent: str = "no"


class PolicyIntent(_Model):
    """Something a caller may want, the phrases that say it, and what the offline policy does."""

    phrases: Annotated[_PhraseList, Field(min_length=1)] | dict[LanguageTag, _PhraseList]
    say: LocalizedText | None = None
    tool: str | None = None
    arguments: dict[str, str] = Field(default_factory=dict)


class PolicyConfidence(_Model):
    """How sure the recogniser must be (its `confidence`, 0 to 1) before the policy acts on what it heard.

    Below `understood` a result is "not understood" (a reprompt, then the offer of a person), never an
    action. Ending the call or transferring it on one turn needs `sure`; between the two the policy asks
    first ("Would you like to end the call?"). Acting on one turn also needs `sure_whole` over every word
    heard: a key word that fits inside speech the grammar forced onto carrier phrases is not sure.
    """

    understood: Annotated[float, Field(ge=0, le=1)] = 0.5
    sure: Annotated[float, Field(ge=0, le=1)] = 0.7
    sure_whole: Annotated[float, Field(ge=0, le=1)] = 0.6


# What the policy does when a lookup by phone finds several orders: ask which one, read them all briefly,
# or narrate only the newest.
MultipleOrders = Literal["ask", "all", "newest"]


class Policy(_Model):
    """The offline dialogue policy: intents, the order-number slot, carrier phrases and replies.

    Replies are keyed by state name (spoken when the state is entered) or by a policy moment
    (`POLICY_MOMENTS`).
    """

    order_number: PolicyOrderNumber | None = None
    intents: dict[str, PolicyIntent] = Field(default_factory=dict)
    fillers: LocalizedPhrases = ()
    replies: dict[str, LocalizedText] = Field(default_factory=dict)
    confidence: PolicyConfidence = PolicyConfidence()
    multiple_orders: MultipleOrders = "ask"


POLICY_MOMENTS: tuple[str, ...] = (
    "order_not_found",  # a number the shop does not know
    "order_not_found_by_phone",  # a lookup by the caller's number found nothing
    "no_orders_for_number",  # asked to check by phone, but no order was placed from this number
    "known_caller",  # a question offering the orders placed from the caller's number
    "several_orders",  # `multiple_orders: ask`: name them and ask which one
    "order_brief",  # `multiple_orders: all`: one order, briefly (said for each)
    "lookup_failed",
    "not_understood",
    "offer_human",  # a question, after two turns not understood
    "keypad_hint",  # after two turns not understood where the state takes a keypad entry: type it instead
    "confirm_end",  # a question: a merely plausible goodbye
    "confirm_human",  # a question: a merely plausible request for a person
    "confirm_answer",  # a question: a merely plausible yes or no that would end or hand over the call
    "carry_on",  # the caller said no to one of those questions
    "anything_else",  # after `multiple_orders: all` has read them
    "refused",
)


class Escalation(_Model):
    """How a call reaches a human: strategies tried in order, and who to call."""

    strategies: Annotated[tuple[EscalationStrategy, ...], Field(min_length=1)] = ("dial",)
    number: str
    caller_id: str | None = None
    timeout: Annotated[float, Field(gt=0)] = 30.0
    # dial: how long to wait for Sautikit's next request (answered with the Dial) once the stream is closed.
    dial_request_timeout: Annotated[float, Field(gt=0)] = 15.0
    # supervise: how the person joins through the REST supervision API.
    supervise_mode: Literal["barge", "whisper", "listen"] = "barge"
    supervise_say: LocalizedText = "A colleague is joining this call now."
    # callback: what the caller hears, and where the request is POSTed (none: only recorded).
    callback_say: LocalizedText = (
        "A colleague from {{ shop.name }} will call you back on this number shortly. Thank you, goodbye."
    )
    callback_url: str | None = None
    # The warm hand-off: before `dial` or `supervise`, the call's brief is POSTed here as JSON (none: the
    # brief is only kept with the call record). Signed when the service has a webhook secret.
    brief_url: str | None = None
    brief_timeout: Annotated[float, Field(gt=0, le=30)] = 3.0
    # Said when a strategy fails and the next one is tried, and when every one has failed.
    failed_say: LocalizedText = "I'm sorry, I couldn't reach a colleague that way."
    unavailable_say: LocalizedText = (
        "I'm sorry, no one is available right now. Please call {{ shop.name }} again later. Goodbye."
    )


# The fields of an order as the orchestrator reads it (docs/orders-api.md).
OrderField = Literal[
    "order_number", "status", "eta", "courier", "placed_at", "items", "delivery_area", "customer_phone"
]
ORDER_FIELDS: tuple[str, ...] = get_args(OrderField)


class OrdersSettings(_Model):
    """How to read the shop's orders API (docs/orders-api.md); None keeps the service's setting.

    `fields` maps our field to the shop's (dotted) field, `statuses` the shop's status value to ours,
    `envelope` is the dotted path to the order(s) in an answer; `headers` are templated (`{{ env.NAME }}`).
    """

    base_url: str | None = None
    path: str | None = None
    timeout: Annotated[float, Field(gt=0)] | None = None
    require_phone_match: bool = False
    order_param: Annotated[str, Field(min_length=1)] | None = None
    phone_param: Annotated[str, Field(min_length=1)] | None = None
    envelope: Annotated[str, Field(min_length=1)] | None = None
    fields: dict[OrderField, Annotated[str, Field(min_length=1)]] = Field(default_factory=dict)
    statuses: dict[str, Annotated[str, Field(min_length=1)]] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)


class Languages(_Model):
    """How a call of a several-language flow gets its language, and the agent's voice in each.

    The call starts in the language of the number called (`by_number`), else the flow's default; the caller
    switches by saying one of `switch_phrases` (offline brain) or in their own words (a model calls
    `set_language`).
    """

    by_number: dict[str, LanguageTag] = Field(default_factory=dict)  # E.164 number called -> language
    switch_phrases: dict[LanguageTag, _PhraseList] = Field(default_factory=dict)
    voices: dict[LanguageTag, str] = Field(default_factory=dict)  # the offline voice (espeak-ng name)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(value: object) -> object:
    """`10m`, `90s`, `1h`, `500ms` or a plain number of seconds."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"a duration is a number with ms, s, m or h (like 10m), not {value!r}")
        return float(match[1]) * _UNIT_S[match[2] or "s"]
    return value


Duration = Annotated[float, BeforeValidator(_seconds, json_schema_input_type=str | float), Field(gt=0)]


class Outbound(_Model):
    """Notification calls the shop places (`orchestrator calls place`): from which number, retries, voicemail.

    A call not answered (no answer, busy, failed) is placed again `retry_after` later, up to `retries` more
    times. A voicemail greeting is told from a person by the callee's first words: speech that goes on for
    `greeting_ms` without a pause, or a beep. Then `voicemail: leave_message` waits for the greeting to end
    and takes the `voicemail` route (its `say` is the message); `hang_up` hangs up and retries.
    """

    caller_id: str
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    retry_after: Duration = 600.0
    voicemail: Literal["leave_message", "hang_up"] = "hang_up"
    greeting_ms: Annotated[int, Field(ge=1000, le=20000)] = 4000
    # Nobody speaks this long after the call connects: a person waiting for us to speak.
    quiet_answer_ms: Annotated[int, Field(ge=500, le=10000)] = 2500


class Flow(_Model):
    """A whole flow file: global settings, tools, counters, global routes and the states."""

    name: str = Field(alias="flow")
    version: int = 1
    # The languages callers may use, the default first; none: only `voice.language`.
    languages: tuple[LanguageTag, ...] = ()
    language: Languages = Languages()
    voice: Voice = Voice()
    vad: Vad = Vad()
    shop: dict[str, str] = Field(default_factory=dict)
    system_prompt: str = ""
    order_number: OrderNumber | None = None
    policy: Policy | None = None
    tools: dict[str, ToolSpec] = Field(default_factory=dict)
    escalation: Escalation | None = None
    orders: OrdersSettings = OrdersSettings()
    counters: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    events: tuple[str, ...] = ()
    on: dict[str, Transitions] = Field(default_factory=dict)
    initial: str
    # Where an outbound call (one the shop places) starts; `outbound:` says how such calls are placed.
    initial_outbound: str | None = None
    outbound: Outbound | None = None
    states: Annotated[dict[str, StateSpec], Field(min_length=1)]

    @property
    def call_languages(self) -> tuple[str, ...]:
        """The languages a call may be in, the default first."""
        return self.languages or (self.voice.language,)

    @property
    def default_language(self) -> str:
        return self.call_languages[0]

    def language_for_number(self, called: str | None) -> str:
        """The language a call to `called` starts in."""
        return self.language.by_number.get(called or "", self.default_language)

    def transitions(self, state: str, event: str) -> tuple[Transition, ...]:
        """The routes of `event` from `state`: its own, else the global ones (none when final)."""
        spec = self.states[state]
        if event in spec.on:
            return spec.on[event]
        if spec.final:
            return ()
        return self.on.get(event, ())

    def tools_without_action(self, handlers: Collection[str]) -> list[str]:
        """Declared tools that would do nothing: not built-in, no `http:` action, no code handler."""
        return [
            name
            for name, spec in self.tools.items()
            if name not in BUILTIN_TOOLS and spec.http is None and name not in handlers
        ]

    def routes(self, state: str) -> dict[str, tuple[Transition, ...]]:
        """Every event handled in `state` with its transitions: own events first, then global."""
        spec = self.states[state]
        routes = dict(spec.on)
        if not spec.final:
            for event, transitions in self.on.items():
                routes.setdefault(event, transitions)
        return routes
