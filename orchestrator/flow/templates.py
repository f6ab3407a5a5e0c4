"""`{{ a.b }}` placeholders in spoken text and LLM instructions: found at load time, filled at run
time.

Deliberately tiny (no Jinja): a placeholder is a dotted name and nothing else, so a flow author
cannot put logic in a prompt, and the loader can check every name against the variables a call will
really have.
Imports nothing from the orchestrator.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

__all__ = [
    "BraceProblem",
    "FIXED_VARIABLES",
    "Placeholder",
    "VariableNames",
    "find_brace_problems",
    "find_placeholders",
    "known_variables",
    "lookup",
    "render",
    "spoken_digits",
    "spoken_eta",
    "spoken_order_number",
    "status_words",
]

# The names a call context provides besides `shop.*` and `counters.*`, which depend on the flow.
FIXED_VARIABLES: frozenset[str] = frozenset(
    {
        "caller.number",
        "caller.number_spoken",
        "order.order_number",
        "order.order_number_spoken",
        "order.status",
        "order.status_text",
        "order.eta",
        "order.courier",
        "order.delivery_area",
        "orders.count",
        "orders.numbers_spoken",
        "escalation.number",
        "flow.name",
        "keypad.digits",  # the caller's last keypad entry (docs/keypad.md)
        "keypad.digits_spoken",
        "keypad.intent",
    }
)

_PLACEHOLDER = re.compile(r"\{\{(?P<body>.*?)\}\}", re.DOTALL)
_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")

# Human words for the statuses of the orders API contract; unknown statuses are read with spaces.
_STATUS_WORDS: Mapping[str, str] = {
    "pending": "received and waiting to be confirmed",
    "confirmed": "confirmed",
    "packed": "packed and waiting for the courier",
    "dispatched": "dispatched",
    "out_for_delivery": "out for delivery",
    "delivered": "delivered",
    "failed_delivery": "not delivered after a failed delivery attempt",
    "cancelled": "cancelled",
    "returned": "returned to the shop",
}
# The same in Swahili, as a predicate: "Oda D X ... imetumwa" (the English reads "is dispatched").
_SWAHILI_STATUS_WORDS: Mapping[str, str] = {
    "pending": "imepokelewa na inasubiri kuthibitishwa",
    "confirmed": "imethibitishwa",
    "packed": "imefungashwa na inasubiri msafirishaji",
    "dispatched": "imetumwa",
    "out_for_delivery": "iko njiani kukufikia",
    "delivered": "imefikishwa",
    "failed_delivery": "haikufikishwa, jaribio la kuifikisha halikufaulu",
    "cancelled": "imeghairiwa",
    "returned": "imerudishwa dukani",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Placeholder:
    """One `{{ ... }}` in a template; `name` is None when the body is not a dotted name."""

    raw: str  # exactly as written, braces included
    name: str | None
    offset: int  # index of the first brace in the template


def find_placeholders(template: str) -> tuple[Placeholder, ...]:
    """Every placeholder in `template`, in order."""
    found: list[Placeholder] = []
    for match in _PLACEHOLDER.finditer(template):
        body = match.group("body").strip()
        name = body if _DOTTED_NAME.fullmatch(body) else None
        found.append(Placeholder(raw=match.group(0), name=name, offset=match.start()))
    return tuple(found)


@dataclass(frozen=True, slots=True, kw_only=True)
class BraceProblem:
    """An unclosed `{{` or a stray `}}`: the `occurrence`-th `braces` of the template (0-based)."""

    braces: str
    occurrence: int
    message: str


_STRAY = "stray `}}` closes no `{{`: remove it, or open the placeholder with `{{`"
_UNCLOSED = "unclosed `{{`: close the placeholder with `}}`"


def find_brace_problems(template: str) -> tuple[BraceProblem, ...]:
    """Every `{{` left open (before the next `{{`, or at the end) and every `}}` closing nothing."""
    found: list[BraceProblem] = []
    index = 0
    while True:
        opening, closing = template.find("{{", index), template.find("}}", index)
        if opening < 0 and closing < 0:
            return tuple(found)
        if opening < 0 or 0 <= closing < opening:
            problem, at = ("}}", _STRAY), closing
        else:
            end, next_opening = template.find("}}", opening + 2), template.find("{{", opening + 2)
            if end >= 0 and not 0 <= next_opening < end:
                index = end + 2  # a whole placeholder
                continue
            problem, at = ("{{", _UNCLOSED), opening
        braces, message = problem
        occurrence = template.count(braces, 0, at)
        found.append(BraceProblem(braces=braces, occurrence=occurrence, message=message))
        index = at + 2


class VariableNames(frozenset[str]):
    """Known template names, plus open namespaces whose members are only known at run time.

    `result.<tool>.` holds whatever a tool's action answered, so `result.send_sms.id` is known
    as soon as `send_sms` is a declared tool.
    """

    prefixes: tuple[str, ...]

    def __new__(cls, names: Iterable[str], prefixes: Iterable[str] = ()) -> VariableNames:
        made = super().__new__(cls, names)
        made.prefixes = tuple(prefixes)
        return made

    def __contains__(self, name: object) -> bool:
        if super().__contains__(name):
            return True
        return isinstance(name, str) and any(
            name.startswith(prefix) and len(name) > len(prefix) for prefix in self.prefixes
        )

    def with_namespaces(self, *prefixes: str) -> VariableNames:
        """These names with more open namespaces, e.g. `env.` where the environment may be read."""
        return VariableNames(self, (*self.prefixes, *prefixes))


def known_variables(
    *, shop_keys: Iterable[str], counters: Iterable[str], tools: Iterable[str] = ()
) -> VariableNames:
    """The template names a call of a flow with these shop keys, counters and tools can fill."""
    return VariableNames(
        FIXED_VARIABLES
        | {f"shop.{key}" for key in shop_keys}
        | {f"counters.{name}" for name in counters},
        prefixes=[f"result.{tool}." for tool in tools],
    )


def lookup(context: Mapping[str, object], name: str) -> object | None:
    """The value at dotted `name` in nested mappings, or None when any part is missing."""
    value: object = context
    for part in name.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
        if value is None:
            return None
    return value


def render(template: str, context: Mapping[str, object]) -> str:
    """Fill every placeholder from `context`; anything missing becomes "", never an error."""

    def fill(match: re.Match[str]) -> str:
        body = match.group("body").strip()
        if not _DOTTED_NAME.fullmatch(body):
            return ""
        value = lookup(context, body)
        return "" if value is None else str(value)

    return _PLACEHOLDER.sub(fill, template)


def spoken_digits(number: str) -> str:
    """A phone number as separate digits, so text-to-speech reads it digit by digit."""
    return " ".join(ch for ch in number if ch.isdigit())


def status_words(status: str, language: str = "en") -> str:
    """Words a caller understands for an orders API status, e.g. "out for delivery" (Swahili for `sw`)."""
    words = _SWAHILI_STATUS_WORDS if _is_swahili(language) else _STATUS_WORDS
    return words.get(status, status.replace("_", " "))


_DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_SWAHILI_DIGIT_NAMES = ("sifuri", "moja", "mbili", "tatu", "nne", "tano", "sita", "saba", "nane", "tisa")


def spoken_order_number(number: str, language: str = "en") -> str:
    """An order number as a caller hears it read out: "PK20931" -> "P K two zero nine three one".

    Read as a figure, text-to-speech says "P K twenty thousand nine hundred thirty one". In Swahili the
    digits are Swahili words ("P K mbili sifuri tisa tatu moja"); letters keep their names.
    """
    names = _SWAHILI_DIGIT_NAMES if _is_swahili(language) else _DIGIT_NAMES
    return " ".join(names[int(ch)] if ch.isdigit() else ch.upper() for ch in number if ch.isalnum())


def _is_swahili(language: str) -> bool:
    return language.lower().split("-")[0] == "sw"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Calendar:
    weekdays: tuple[str, ...]  # Monday first
    months: tuple[str, ...]
    day: str  # "{weekday} {day} {month}"
    around: str  # "{day}, around {time}"


_ENGLISH = _Calendar(
    weekdays=("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    months=("January", "February", "March", "April", "May", "June", "July", "August",
            "September", "October", "November", "December"),
    day="{weekday} {day} {month}",
    around="{day}, around {time}",
)
_SWAHILI = _Calendar(
    weekdays=("Jumatatu", "Jumanne", "Jumatano", "Alhamisi", "Ijumaa", "Jumamosi", "Jumapili"),
    months=("Januari", "Februari", "Machi", "Aprili", "Mei", "Juni", "Julai", "Agosti",
            "Septemba", "Oktoba", "Novemba", "Desemba"),
    day="{weekday} tarehe {day} {month}",
    around="{day}, karibu {time}",
)
# Swahili counts the hours from 6 in the morning: 7 AM is "saa moja asubuhi".
_SWAHILI_HOURS = ("sita", "saba", "nane", "tisa", "kumi", "kumi na moja", "kumi na mbili",
                  "moja", "mbili", "tatu", "nne", "tano")
_ISO_START = re.compile(r"^\d{4}-\d{2}-\d{2}")


def spoken_eta(eta: str | None, *, language: str = "en", timezone: str = "Africa/Nairobi") -> str:
    """A delivery time as a person says it, in the caller's language and local time.

    ISO 8601 "2026-12-04T10:00:00+03:00" -> "Friday 4 December, around 10 AM" (a date alone: "Friday
    4 December"); a time with an offset is moved to `timezone` first. Free text ("today between 4 and
    6 PM") is kept as written; None is "". Languages: English, and Swahili for `sw`/`sw-KE`.
    """
    if not eta:
        return ""
    text = eta.strip()
    if not _ISO_START.match(text):
        return text
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return text
    if moment.tzinfo is not None:
        moment = moment.astimezone(ZoneInfo(timezone))
    calendar = _SWAHILI if _is_swahili(language) else _ENGLISH
    day = calendar.day.format(
        weekday=calendar.weekdays[moment.weekday()],
        day=moment.day,
        month=calendar.months[moment.month - 1],
    )
    if len(text) <= len("2026-12-04"):
        return day
    clock = _swahili_time(moment) if calendar is _SWAHILI else _english_time(moment)
    return calendar.around.format(day=day, time=clock)


def _english_time(moment: datetime) -> str:
    if (moment.hour, moment.minute) == (12, 0):
        return "midday"
    if (moment.hour, moment.minute) == (0, 0):
        return "midnight"
    hour = moment.hour % 12 or 12
    suffix = "AM" if moment.hour < 12 else "PM"
    return f"{hour} {suffix}" if moment.minute == 0 else f"{hour}:{moment.minute:02d} {suffix}"


# Quarter and half hours are said as such: 10:30 is "saa nne na nusu".
_SWAHILI_MINUTES: Mapping[int, str] = {0: "", 15: " na robo", 30: " na nusu"}


def _swahili_time(moment: datetime) -> str:
    hour = _SWAHILI_HOURS[moment.hour % 12]
    if 6 <= moment.hour < 12:
        part = "asubuhi"
    elif 12 <= moment.hour < 16:
        part = "mchana"
    elif 16 <= moment.hour < 19:
        part = "jioni"
    else:
        part = "usiku"
    minutes = _SWAHILI_MINUTES.get(moment.minute, f" na dakika {moment.minute}")
    return f"saa {hour}{minutes} {part}"
