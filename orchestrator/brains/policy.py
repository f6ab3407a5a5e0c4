"""The offline dialogue policy: the flow's states plus intents, an order-number slot and replies from YAML.

No model: what the caller said (a `Recognition`: words constrained by the recogniser's grammar, and how sure
the recogniser is of them) is matched against the declared order-number shapes and intent phrases, and the
answer is a tool call or a templated reply. It is a `Dialogue` for the cascade brain: each method returns the
steps of one agent turn — text to speak or a `ToolCall` — and the brain voices them. A product team tunes
it in the flow file, not in code.

What keeps a grammar-bound recogniser from acting on a mishearing:
- a result below `understood` confidence is "not understood": a reprompt, then the offer of a person, never an
  action; ending the call or handing it over on one turn needs `sure` confidence, else the policy asks first;
- a recognised order number is read back (`confirm_say`) and looked up only after the caller's yes;
- a caller whose number has recent orders (prefetched at the webhook) is offered those, and a first turn the
  policy did not understand becomes a lookup by phone rather than a question they cannot answer;
- open-vocabulary words (the recogniser's second look, or a Whisper transcript) are read for intents by the
  flow's phrases, then by the words only one intent's phrases use (`speech.keywords`); an intent found by
  keywords alone, or in the second look's open decode (`Recognition.rescued`, a language model's guess), is
  never decisive on one turn: ending or handing over is asked first.

Each state may declare what it listens for (`listen:`); what it does not list falls back to the flow-wide
intents. The grammar of each turn follows: `grammars()` names one recogniser search per state.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from itertools import count
from typing import Final, Literal

from orchestrator.brains.base import CallInfo, JSONValue, Keypad, StateBrief, ToolCall
from orchestrator.speech.asr import MIN_WHOLE_CONFIDENCE, Recognition
from orchestrator.speech.grammar import (
    DIGIT_WORDS,
    GrammarSpec,
    match_intent,
    parse_order_number,
    spoken_order_number,
)
from orchestrator.speech.keywords import (
    intent_keywords,
    keywords_heard,
    match_keywords,
    words_after_last,
)

__all__ = [
    "BUILTIN_PHRASES",
    "DEFAULT_REPLIES",
    "SEARCH_CHOOSE_ORDER",
    "SEARCH_DEFAULT_INTENTS",
    "SEARCH_DEFAULT_NUMBERS",
    "IntentRule",
    "PolicyConfig",
    "PolicyDialogue",
    "StateListen",
    "keypad_order_number",
    "render_reply",
]

Step = str | ToolCall
Decisive = Literal["end", "human"]
MultipleOrders = Literal["ask", "all", "newest"]

# Recogniser searches (grammars) the policy names; states with a `listen:` get `state_<name>`.
SEARCH_DEFAULT_NUMBERS: Final = "numbers"  # order numbers and every intent (a state without `listen:`)
SEARCH_DEFAULT_INTENTS: Final = "intents"  # every intent, no numbers
SEARCH_CHOOSE_ORDER: Final = "choose_order"  # "which one?": ordinals, numbers and every intent

# Moments whose words a flow may leave out: these are said instead.
DEFAULT_REPLIES: Mapping[str, str] = {
    "order_not_found_by_phone": (
        "I could not find a recent order placed from this number. Please tell me your order number."
    ),
    "no_orders_for_number": (
        "I cannot see any recent order placed from this number. Please tell me your order number."
    ),
    "known_caller": (
        "I can see an order placed from this number. Would you like me to check it? "
        "Or tell me another order number."
    ),
    "several_orders": (
        "I can see {{ orders.count }} recent orders from this number: {{ orders.numbers_spoken }}. "
        "Which one would you like to hear about?"
    ),
    "order_brief": (
        "Order {{ order.order_number_spoken }} is {{ order.status_text }}, expected {{ order.eta }}."
    ),
    "anything_else": "Is there anything else?",
    "lookup_failed": "I'm sorry, I cannot reach our order system right now.",
    "not_understood": "Sorry, I did not catch that.",
    "offer_human": "Sorry, I still did not understand. Would you like me to connect you to a colleague?",
    "confirm_end": "Would you like to end the call?",
    "confirm_human": "Would you like me to connect you to a colleague?",
    "confirm_answer": "Sorry, was that a yes or a no?",
    "carry_on": "Alright. What else can I help you with?",
    "refused": "Sorry, I cannot do that right now.",
    "keypad_hint": (
        "Sorry, I still did not catch that. You can also type your order number on your phone's keypad, "
        "then press the hash key."
    ),
}

# Phrases of the built-in intents a flow may name without declaring them.
BUILTIN_PHRASES: Mapping[str, tuple[str, ...]] = {
    "yes": ("yes", "yes please", "yeah", "that's right", "that is right", "correct", "sure", "okay"),
    "no": ("no", "no thanks", "no thank you", "not now", "that's wrong", "wrong"),
    "goodbye": ("bye", "goodbye", "that is all", "nothing else"),
    "human": ("speak to a person", "talk to a person", "a real person", "an agent", "customer care"),
    "by_phone": ("check my number", "check my phone number", "use my phone number"),
}

# Answers to "which one?" when several orders were found: position in the list (newest first), or all.
_ORDINALS: Mapping[str, tuple[str, ...]] = {
    "pick_1": ("the first one", "the first", "first one", "the newest", "the newest one",
                "the latest", "the latest one", "the new one", "the recent one"),
    "pick_2": ("the second one", "the second", "second one", "the older one", "the old one",
                "the other one"),
    "pick_3": ("the third one", "the third", "third one"),
    "pick_all": ("both", "both of them", "all of them", "all", "all of them please"),
}

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
# A sentence ends at . ! or ? followed by a space: the dot inside `{{ order.eta }}` is not an end.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")
# A goodbye is the last thing said: "bye bye", "goodbye then", "bye, thank you" end a call; more words do not.
_WORDS_AFTER_A_GOODBYE: Final = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class IntentRule:
    """An intent: its phrases, an optional reply and an optional tool call with fixed arguments."""

    name: str
    phrases: tuple[str, ...]
    say: str | None = None
    tool: str | None = None
    arguments: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class StateListen:
    """What one state listens for: its own rules (over the flow-wide ones) and whether it takes numbers."""

    rules: tuple[IntentRule, ...] = ()
    numbers: bool = False
    keypad: bool = False  # an answer here is typed on the keypad: say so when speech keeps failing


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
    human_intent: str = "human"
    intents: tuple[IntentRule, ...] = ()
    fillers: tuple[str, ...] = ()
    replies: Mapping[str, str] = field(default_factory=dict)
    shop: Mapping[str, str] = field(default_factory=dict)
    # States that declare `listen:`; the others hear every intent, and numbers where the tool is allowed.
    listen: Mapping[str, StateListen] = field(default_factory=dict)
    understood: float = 0.5  # below: not understood
    sure: float = 0.7  # at or above: a decisive tool runs on one turn; between: asked first
    # ...and the whole utterance at least this well explained. "Hi, any update on my delivery?" forced onto
    # "hi an agent the number is" scored 0.94 on its key words and 0.35 whole; every goodbye and request
    # for a person in our own natural lines (four flite voices) that was heard right scored 0.63 or more.
    sure_whole: float = 0.6
    # Tools after which the agent is gone: the call ends, or a person takes it.
    decisive: Mapping[str, Decisive] = field(default_factory=dict)
    multiple_orders: MultipleOrders = "ask"
    # One config per language in a flow of several: its searches are named with this suffix ("@sw-KE"),
    # its digits may be spoken as these words, its own words pronounced so, numbers read back with these.
    search_suffix: str = ""
    digits: Mapping[str, str] = field(default_factory=lambda: DIGIT_WORDS)
    pronunciations: Mapping[str, str] = field(default_factory=dict)
    digit_names: tuple[str, ...] = ()  # "zero" to "nine" in the reply language; none: English
    and_word: str = " and "  # joins the last of several order numbers

    def grammars(self) -> dict[str, GrammarSpec]:
        """One recogniser search per name `PolicyDialogue.listening()` may return."""
        every = {rule.name: rule.phrases for rule in self.intents if rule.phrases}

        def spec(intents: Mapping[str, tuple[str, ...]], *, numbers: bool) -> GrammarSpec:
            return GrammarSpec(
                shapes=self.shapes if numbers else (),
                intents=intents,
                fillers=self.fillers,
                digits=self.digits,
                pronunciations=self.pronunciations,
            )

        searches = {SEARCH_DEFAULT_INTENTS: spec(every, numbers=False)}
        if self.shapes:
            searches[SEARCH_DEFAULT_NUMBERS] = spec(every, numbers=True)
            searches[SEARCH_CHOOSE_ORDER] = spec({**every, **_ORDINALS}, numbers=True)
        for state, listen in self.listen.items():
            own = {rule.name: rule.phrases for rule in listen.rules if rule.phrases}
            searches[_state_search(state)] = spec({**every, **own}, numbers=listen.numbers)
        return {name + self.search_suffix: each for name, each in searches.items()}

    def grammar(self) -> GrammarSpec:
        """Every phrase and shape in one spec (the widest search)."""
        return GrammarSpec(
            shapes=self.shapes,
            intents={rule.name: rule.phrases for rule in self.intents if rule.phrases},
            fillers=self.fillers,
            digits=self.digits,
            pronunciations=self.pronunciations,
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


def keypad_order_number(digits: str, shapes: tuple[str, ...]) -> str | None:
    """The order number typed as `digits`: the first shape with that many digits, its letters kept.

    A keypad has no letters, so callers type only the digits ("1042" for DX1042); shapes are tried in the
    order the flow declares them.

    >>> keypad_order_number("1042", ("DX####", "PK#####"))
    'DX1042'
    >>> keypad_order_number("12", ("DX####",)) is None
    True
    """
    if not digits.isdigit():
        return None
    for shape in shapes:
        if shape.count("#") == len(digits):
            return shape.rstrip("#") + digits
    return None


def _state_search(state: str) -> str:
    return f"state_{state}"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Question:
    """A yes/no question the agent asked and the caller has not answered yet."""

    text: str  # asked again when the answer is not understood
    yes: Callable[[], list[Step]]
    no: Callable[[], list[Step]]


class PolicyDialogue:
    """A Dialogue that follows the flow with declared phrases and replies.

    In a flow of several languages, `languages` holds one config per language; the call's language (on each
    state, and in a `set_language` result) picks the phrases heard and the words said.
    """

    def __init__(
        self, config: PolicyConfig, *, languages: Mapping[str, PolicyConfig] | None = None
    ) -> None:
        self._config = config
        self._languages = dict(languages or {})
        self._rules = {rule.name: rule for rule in config.intents}
        self._state = StateBrief(name="", instructions=None, tools=())
        self._pending: set[str] = set()
        self._question: _Question | None = None
        self._choices: tuple[Mapping[str, JSONValue], ...] = ()  # orders to pick from ("which one?")
        self._misses = 0  # turns in a row not understood
        self._lookups = 0
        self._by_phone: set[str] = set()  # pending lookups by the caller's number
        self._caller_orders: int | None = None
        self._caller_number = ""  # the caller's number (`From`); "" when withheld
        self._keypad_offered = False
        # The pending tool's outcome led into a state whose route spoke its own `say`: that line answers it.
        self._outcome_spoken = False
        self._keyword_cache: dict[tuple[object, ...], dict[str, frozenset[str]]] = {}
        self._ids = count(1)
        self._context: dict[str, object] = {
            "shop": dict(config.shop),
            "order": {},
            "orders": {"count": 0},
        }

    def begin(self, call: CallInfo) -> None:
        number = call.caller or ""
        self._caller_orders = call.caller_orders
        self._caller_number = number
        self._context["caller"] = {
            "number": number,
            "number_spoken": " ".join(ch for ch in number if ch.isdigit()),
        }

    def listening(self) -> str:
        """The recogniser search for the caller's next turn (a key of `PolicyConfig.grammars()`)."""
        if self._choices and self._config.shapes:
            search = SEARCH_CHOOSE_ORDER
        elif self._state.name in self._config.listen:
            search = _state_search(self._state.name)
        else:
            search = SEARCH_DEFAULT_NUMBERS if self._takes_numbers() else SEARCH_DEFAULT_INTENTS
        return search + self._config.search_suffix

    def _use_language(self, language: object) -> None:
        """Follow the call's language (in a flow of several)."""
        config = self._languages.get(language) if isinstance(language, str) else None
        if config is not None and config is not self._config:
            self._config = config
            self._rules = {rule.name: rule for rule in config.intents}

    async def on_state(self, state: StateBrief) -> AsyncIterator[Step]:
        self._use_language(state.language)
        self._state = state
        # A new state asks its own question: an old one (a read-back, "which one?") is stale.
        self._question = None
        self._choices = ()
        self._misses = 0
        self._outcome_spoken = bool(self._pending) and state.say is not None
        # After a tool call its result decides what to say; a `say` spoken on entry is the prompt.
        if self._pending or state.say is not None:
            return
        if self._offers_known_orders():
            by_phone = self._by_phone_rule()
            assert by_phone is not None
            self._ask(
                self._moment("known_caller"),
                yes=lambda: self._perform(by_phone),
                no=lambda: self._say_reply(state.name),
            )
            yield self._moment("known_caller")
            return
        reply = self._reply(state.name)
        if reply:
            yield reply

    async def on_caller(self, heard: Recognition) -> AsyncIterator[Step]:
        for step in self._answer(heard):
            yield step

    async def on_tool_result(
        self, call: ToolCall, result: Mapping[str, JSONValue]
    ) -> AsyncIterator[Step]:
        self._pending.discard(call.call_id)
        by_phone = call.call_id in self._by_phone
        self._by_phone.discard(call.call_id)
        # A set_language result: the state's words again, in the new language (it may re-enter the state).
        switched = isinstance(result.get("language"), str)
        if switched:
            self._use_language(result.get("language"))
            self._respoken(result.get("orders"))
        if self._pending:
            return
        spoken, self._outcome_spoken = self._outcome_spoken, False
        steps = self._say_reply(self._state.name) if switched else self._after_result(
            result, by_phone=by_phone, spoken=spoken
        )
        for step in steps:
            yield step

    def _respoken(self, orders: JSONValue) -> None:
        """After a language switch: the order being talked about, in the new language's words."""
        current = self._context.get("order")
        number = current.get("order_number") if isinstance(current, Mapping) else None
        for order in orders if isinstance(orders, list) else []:
            if isinstance(order, Mapping) and order.get("order_number") == number:
                self._context["order"] = dict(order)

    def on_interrupted(self, heard: str) -> None:
        return None  # the policy keeps no transcript: nothing to truncate

    # --- one caller turn --------------------------------------------------------------------

    def _answer(self, heard: Recognition) -> list[Step]:
        text = heard.text
        if not text:
            # A cough, a click, a breath: no words at all. Not a turn the caller took, and not a miss that
            # should bring the offer of a person closer; the question, or the reprompt, is said again.
            return self._not_understood(counts=False)
        if heard.confidence < self._config.understood:
            return self._not_understood()
        number = parse_order_number(text, self._config.shapes) if self._takes_numbers() else None
        asked = self._known_callers_question(heard) if number is not None else None
        if asked is not None:
            self._misses = 0
            self._question = None
            return self._perform(asked)
        if number is not None:
            self._misses = 0
            self._question = None
            return self._on_number(number)
        phrases = self._phrases()
        if heard.open_vocabulary:
            phrases = self._open_words_phrases(text, phrases)
        intent = match_intent(text, phrases)
        by_keywords = False
        if intent is None and heard.open_vocabulary:
            intent = match_keywords(text, self._keywords(phrases))
            by_keywords = intent is not None
        if intent is None:
            return self._not_understood()
        if intent in _ORDINALS and self._choices:
            self._misses = 0
            return self._choose(intent)
        question = self._question
        rule = self._rule(intent)
        answers_question = question is not None and intent in (
            self._config.yes_intent,
            self._config.no_intent,
        )
        if not answers_question and (rule is None or (rule.say is None and rule.tool is None)):
            # A yes or no that answers nothing, or an intent with nothing to do in this state.
            return self._not_understood()
        if (
            by_keywords
            and heard.confidence < self._config.sure
            and self._is_decisive(rule)
            and keywords_heard(text, self._keywords(phrases).get(intent, frozenset())) < 2
        ):
            # One key word in loosely heard open words is not enough to raise ending or handing over: slt's
            # "the number on my receipt is P K ..." at 30 dB came back "yeah someone her and my receive if
            # he gave..." (0.69), "someone" asked about a colleague, and the caller's "Yes." (meant for a
            # read-back) transferred the call. "can i talk to real person about it" (two) is still asked.
            return self._not_understood()
        self._misses = 0
        self._question = None
        if question is not None and intent == self._config.yes_intent:
            return question.yes()
        if question is not None and intent == self._config.no_intent:
            return question.no()
        assert rule is not None
        whole = heard.confidence if heard.whole_confidence is None else heard.whole_confidence
        # A language model's guess at what the grammar could not explain (`rescued`) is never decisive.
        sure = (
            heard.confidence >= self._config.sure
            and whole >= max(MIN_WHOLE_CONFIDENCE, self._config.sure_whole)
            and not by_keywords
            and not heard.rescued
        )
        return self._act(rule, sure=sure)

    def _open_words_phrases(
        self, text: str, phrases: dict[str, tuple[str, ...]]
    ) -> dict[str, tuple[str, ...]]:
        """The phrases a caller's own words (open vocabulary) are matched against.

        Open words are whole sentences, where a short phrase is rarely the point: "Yes, I'm waiting on
        some groceries, is your rider coming soon?" answers no question, so yes and no are left out unless
        one is asked. A goodbye followed by more than a couple of words is not how calls end (a greeting
        misheard as "bye": Whisper's "bye i am calling about my shoes can i pick them up" for slt's "Hi,
        I'm calling about my shoes..."): it is left out, and words that ask nothing else are not understood
        (a known caller's are a lookup by phone, anyone else is asked again).
        """
        kept = dict(phrases)
        listen = self._config.listen.get(self._state.name)
        own = {rule.name for rule in listen.rules} if listen is not None else set()
        for answer in (self._config.yes_intent, self._config.no_intent):
            if self._question is None and answer not in own:  # the state's own question gives them a meaning
                kept.pop(answer, None)
        for name, said in phrases.items():
            rule = self._rule(name)
            if rule is None or rule.tool is None or self._config.decisive.get(rule.tool) != "end":
                continue
            after = words_after_last(text, said)
            if after is not None and after > _WORDS_AFTER_A_GOODBYE:
                kept.pop(name, None)
        return kept

    def _known_callers_question(self, heard: Recognition) -> IntentRule | None:
        """A lookup by phone a known caller asked for, in words the recogniser fitted a number to.

        The second look found the number among open words with no digit heard (`heard_as_words`): rms's
        "Sorry about that. Is my parcel on the way?" came back "...is my parcel oh one two one eight". When
        those words hold a phrase of an intent that looks orders up by phone, and the caller has orders on
        record (or may have: `_may_know_caller`), nothing looked up and no number said yet, that is what
        they asked (by a phrase, or by the words only that intent uses: "where" in kal16's "...find out
        where my stuff is", heard at 30 dB as "hello five oh one two five the number is"); a number is
        read back to anyone else, and to a caller whose words name a number ("my order number is the
        excellence era...").
        """
        words = heard.heard_as_words
        if not words or not self._may_know_caller() or "request" in self._context:
            return None
        if "number" in words.split():  # "my order number is the excellence era...": giving one
            return None
        phrases = self._phrases()
        intent = match_intent(words, phrases) or match_keywords(words, self._keywords(phrases))
        rule = self._rule(intent) if intent is not None else None
        return rule if rule is not None and self._is_by_phone(rule) else None

    def _on_number(self, number: str) -> list[Step]:
        for order in self._choices:
            if order.get("order_number") == number:
                return self._narrate_chosen(order)
        # A number said instead of yes or no replaces the one read back.
        self._context["request"] = {
            "order_number": number,
            "order_number_spoken": self._spell(number),
        }
        if not self._config.confirm_say:
            return self._look_up(number)
        read_back = self._render(self._config.confirm_say)
        self._ask(read_back, yes=lambda: self._look_up(number), no=self._wrong_number)
        return [read_back]

    def _wrong_number(self) -> list[Step]:
        """The caller said no to the number read back: ask again, or offer a known caller their orders.

        A known caller's words fitted to a number by the grammar ("thanks yes seven nine oh three nine" for
        "I'm just checking on the thing I ordered last week", at 30 dB) were read back; asked for the number
        again, they could not give one, and the offer of their orders had been made only once, at the start.
        """
        self._context.pop("request", None)  # not the number they meant: no longer working by number
        if self._offers_known_orders():
            by_phone = self._by_phone_rule()
            assert by_phone is not None
            offer = self._moment("known_caller")
            self._ask(offer, yes=lambda: self._perform(by_phone), no=lambda: self._say_reply(self._state.name))
            return [offer]
        no_rule = self._rules.get(self._config.no_intent)
        if no_rule is not None and no_rule.say:
            return [self._render(no_rule.say)]
        return self._say_reply(self._state.name)

    def _act(self, rule: IntentRule, *, sure: bool) -> list[Step]:
        """Do what an understood intent asks: a decisive tool heard without certainty is asked first."""
        tool = rule.tool
        if tool is not None and tool not in self._state.tools:
            return [self._moment("refused")]
        if self._is_by_phone(rule) and self._caller_orders == 0:
            return [self._moment("no_orders_for_number")]
        decisive = self._config.decisive.get(tool) if tool is not None else None
        if decisive is None or sure:
            return self._perform(rule)
        if rule.name in (self._config.yes_intent, self._config.no_intent):
            # An unsure answer to the state's own question: ask it as a plain yes or no, then act on it.
            text = self._moment("confirm_answer")
            self._ask(
                text,
                yes=lambda: self._answer_with(self._config.yes_intent),
                no=lambda: self._answer_with(self._config.no_intent),
            )
            return [text]
        text = self._moment("confirm_end" if decisive == "end" else "confirm_human")
        self._ask(text, yes=lambda: self._perform(rule), no=lambda: [self._moment("carry_on")])
        return [text]

    def _answer_with(self, intent: str) -> list[Step]:
        """What the state's own `yes` or `no` does (its reply again when it does nothing)."""
        rule = self._rule(intent)
        if rule is None or (rule.say is None and rule.tool is None):
            return self._say_reply(self._state.name)
        return self._perform(rule)

    def _not_understood(self, *, counts: bool = True) -> list[Step]:
        """A reprompt, then the offer of a person; a known caller (or one not known yet) not understood
        before any lookup hears the orders placed from their number.

        `counts=False` (no words at all: noise) repeats the prompt without counting towards the offer.
        """
        if not counts:
            return [self._question.text] if self._question is not None else [self._moment("not_understood")]
        by_phone = self._by_phone_rule()
        # Not only the first turn: "Am I talking to a machine?" heard as a wish for a person, then "Okay.
        # Where's my fridge?" not understood, was asked about a colleague again and again. Before anything
        # was looked up, what a known caller wants is most likely the order on record, and a lookup by
        # phone costs them nothing (a caller who wanted a person can still ask). A caller who has said an
        # order number is working by number: their turns are read back and asked again instead.
        if by_phone is not None and self._may_know_caller() and "request" not in self._context:
            self._question = None
            return self._perform(by_phone)
        self._misses += 1
        if self._misses >= 2 and self._offers_keypad():
            self._misses = 0
            self._keypad_offered = True
            return [self._moment("keypad_hint")]
        human = self._rules.get(self._config.human_intent)
        if (
            self._misses >= 2
            and human is not None
            and human.tool is not None
            and human.tool in self._state.tools
        ):
            self._misses = 0
            text = self._moment("offer_human")
            self._ask(text, yes=lambda: self._perform(human), no=lambda: self._say_reply(self._state.name))
            return [text]
        if self._question is not None:
            return [self._question.text]
        return [self._moment("not_understood")]

    # --- the keypad -------------------------------------------------------------------------

    async def on_keypad(self, keys: Keypad) -> AsyncIterator[Step]:
        for step in self._typed(keys):
            yield step

    def _typed(self, keys: Keypad) -> list[Step]:
        """A keypad entry: exact, so a typed order number is looked up without a read-back."""
        if keys.intent is not None and keys.intent != "order_number":
            rule = self._rule(keys.intent)
            if rule is None or (rule.say is None and rule.tool is None):
                return self._not_understood()
            self._misses = 0
            self._question = None
            return self._act(rule, sure=True)
        number = keypad_order_number(keys.digits, self._config.shapes)
        if number is None or not (keys.intent == "order_number" or self._takes_numbers()):
            return self._not_understood()
        self._misses = 0
        self._question = None
        self._context["request"] = {
            "order_number": number,
            "order_number_spoken": spoken_order_number(number),
        }
        return self._look_up(number)

    def _offers_keypad(self) -> bool:
        listen = self._config.listen.get(self._state.name)
        return listen is not None and listen.keypad and not self._keypad_offered

    # --- results ----------------------------------------------------------------------------

    def _after_result(
        self, result: Mapping[str, JSONValue], *, by_phone: bool, spoken: bool = False
    ) -> list[Step]:
        """What to say once a tool has answered; `spoken`: the route it took already said it."""
        order = result.get("order")
        if isinstance(order, Mapping):
            found = result.get("orders")
            orders = tuple(o for o in found if isinstance(o, Mapping)) if isinstance(found, list) else ()
            self._remember(order, orders or (order,))
            if len(orders) > 1 and self._state.tools:
                return self._several(orders)
        moment: str | None = None
        if "found" not in result and "error" in result:
            moment = "refused"  # the session refused a tool not allowed in this state
        elif result.get("found") is False and "error" in result:
            moment = "lookup_failed"
        elif result.get("found") is False:
            moment = "order_not_found_by_phone" if by_phone else "order_not_found"
        # A moment's words only make sense where the caller can act on them (not while escalating), and
        # a route's own `say` replaces them ("I could not find that one" is not followed by the moment).
        if moment is not None and self._state.tools and not spoken:
            words = self._moment(moment)
            if words:
                return [words]
        return self._say_reply(self._state.name) if self._state.say is None else []

    def _remember(self, order: Mapping[str, JSONValue], orders: tuple[Mapping[str, JSONValue], ...]) -> None:
        self._context["order"] = dict(order)
        numbers = [str(o.get("order_number_spoken") or o.get("order_number") or "") for o in orders]
        joiner = self._config.and_word
        listed = numbers[0] if len(numbers) == 1 else ", ".join(numbers[:-1]) + joiner + numbers[-1]
        self._context["orders"] = {"count": len(orders), "numbers_spoken": listed}

    def _several(self, orders: tuple[Mapping[str, JSONValue], ...]) -> list[Step]:
        mode = self._config.multiple_orders
        if mode == "newest":
            return self._say_reply(self._state.name)
        if mode == "all":
            return self._brief_all(orders)
        self._choices = orders
        return [self._moment("several_orders")]

    def _choose(self, intent: str) -> list[Step]:
        orders, self._choices = self._choices, ()
        if intent == "pick_all":
            return self._brief_all(orders)
        index = int(intent.removeprefix("pick_")) - 1
        if index >= len(orders):
            self._choices = orders
            return [self._moment("several_orders")]
        return self._narrate_chosen(orders[index])

    def _narrate_chosen(self, order: Mapping[str, JSONValue]) -> list[Step]:
        self._choices = ()
        self._context["order"] = dict(order)
        return self._say_reply(self._state.name)

    def _brief_all(self, orders: tuple[Mapping[str, JSONValue], ...]) -> list[Step]:
        template = self._config.replies.get("order_brief", DEFAULT_REPLIES["order_brief"])
        briefs = [render_reply(template, {**self._context, "order": dict(o)}) for o in orders]
        return [" ".join([*briefs, self._moment("anything_else")])]

    # --- helpers ----------------------------------------------------------------------------

    def _takes_numbers(self) -> bool:
        if not self._config.shapes:
            return False
        listen = self._config.listen.get(self._state.name)
        if listen is not None:
            return listen.numbers
        return self._config.number_tool in self._state.tools

    def _phrases(self) -> dict[str, tuple[str, ...]]:
        phrases = {rule.name: rule.phrases for rule in self._config.intents}
        listen = self._config.listen.get(self._state.name)
        if listen is not None:
            phrases.update({rule.name: rule.phrases for rule in listen.rules if rule.phrases})
        if self._choices:
            phrases.update(_ORDINALS)
        return phrases

    def _keywords(self, phrases: Mapping[str, tuple[str, ...]]) -> dict[str, frozenset[str]]:
        """Words only one intent's phrases use (yes and no must be said in their own words)."""
        key = tuple(sorted(phrases.items()))
        cached = self._keyword_cache.get(key)
        if cached is None:
            cached = intent_keywords(phrases, exclude=(self._config.yes_intent, self._config.no_intent))
            self._keyword_cache[key] = cached
        return cached

    def _rule(self, intent: str) -> IntentRule | None:
        """The state's own rule for an intent, filled in from the flow-wide one."""
        overall = self._rules.get(intent)
        listen = self._config.listen.get(self._state.name)
        own = next((r for r in listen.rules if r.name == intent), None) if listen else None
        if own is None:
            return overall
        if own.say is None and own.tool is None and overall is not None:
            return overall
        return own

    def _is_decisive(self, rule: IntentRule | None) -> bool:
        """Whether acting on `rule` ends the call or hands it over."""
        return rule is not None and rule.tool is not None and rule.tool in self._config.decisive

    def _by_phone_rule(self) -> IntentRule | None:
        """The intent that looks the caller's orders up by their number (the number tool, no number)."""
        return next((rule for rule in self._config.intents if self._is_by_phone(rule)), None)

    def _is_by_phone(self, rule: IntentRule) -> bool:
        return rule.tool == self._config.number_tool and self._config.number_argument not in rule.arguments

    def _offers_known_orders(self) -> bool:
        """The caller's number has orders on record and nothing has been looked up yet: offer them."""
        return bool(self._caller_orders) and self._may_know_caller()

    def _may_know_caller(self) -> bool:
        """A lookup by the caller's number may find their orders: they have some on record, or it is not
        known yet (the webhook's prefetch had not answered when the call began, or failed with the orders
        API down or slow), and nothing has been looked up yet.

        Only a caller known to have orders is *offered* them; one not known yet is looked up by phone when
        their question is heard that way, and the lookup's own outcome speaks (their orders, no orders for
        this number, or the apology and a person when the API is down).
        """
        by_phone = self._by_phone_rule()
        return (
            self._caller_orders != 0
            and (self._caller_orders is not None or bool(self._caller_number))
            and self._lookups == 0
            and by_phone is not None
            and by_phone.tool in self._state.tools
            and self._takes_numbers()
        )

    def _ask(self, text: str, *, yes: Callable[[], list[Step]], no: Callable[[], list[Step]]) -> None:
        self._question = _Question(text=text, yes=yes, no=no)

    def _perform(self, rule: IntentRule) -> list[Step]:
        steps: list[Step] = []
        if rule.say:
            steps.append(self._render(rule.say))
        if rule.tool is not None:
            steps.append(self._call(rule.tool, dict(rule.arguments)))
        return steps

    def _look_up(self, number: str) -> list[Step]:
        steps: list[Step] = []
        if self._config.number_say:
            steps.append(self._render(self._config.number_say))
        steps.append(self._call(self._config.number_tool, {self._config.number_argument: number}))
        return steps

    def _say_reply(self, key: str) -> list[Step]:
        reply = self._reply(key)
        return [reply] if reply else []

    def _reply(self, key: str) -> str:
        template = self._config.replies.get(key)
        return self._render(template) if template else ""

    def _moment(self, key: str) -> str:
        """A moment's words: the flow's reply, else the built-in default."""
        template = self._config.replies.get(key, DEFAULT_REPLIES.get(key, ""))
        return self._render(template) if template else ""

    def _spell(self, number: str) -> str:
        names = self._config.digit_names
        if not names:
            return spoken_order_number(number)
        return " ".join(names[int(ch)] if ch.isdigit() else ch for ch in number)

    def _render(self, template: str) -> str:
        return render_reply(template, self._context)

    def _call(self, name: str, arguments: dict[str, JSONValue]) -> ToolCall:
        call = ToolCall(call_id=f"policy-{next(self._ids)}", name=name, arguments=arguments)
        self._pending.add(call.call_id)
        if name == self._config.number_tool:
            self._lookups += 1
            if self._config.number_argument not in arguments:
                self._by_phone.add(call.call_id)
        return call
