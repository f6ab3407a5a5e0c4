"""What an order lookup returns: the `Order` edge model, `LookupResult`, spoken order numbers.

`Order` is a pydantic model because it is parsed from the shop's bytes; what it offers the rest of
the program (`status_text`, `eta_text`, `as_context()`) is plain strings, ready for templates and
the LLM.
This module knows nothing of HTTP, flows or calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = [
    "KNOWN_STATUSES",
    "LookupResult",
    "Order",
    "normalise_order_number",
    "phone_key",
]

# Phrased to follow "Your order is ...", which is how flows read them out.
_STATUS_PHRASES: dict[str, str] = {
    "pending": "pending confirmation",
    "confirmed": "confirmed",
    "packed": "packed and waiting for the courier",
    "dispatched": "dispatched",
    "out_for_delivery": "out for delivery",
    "delivered": "delivered",
    "failed_delivery": "not delivered yet, because the last delivery attempt failed",
    "cancelled": "cancelled",
    "returned": "returned to the shop",
}
KNOWN_STATUSES: frozenset[str] = frozenset(_STATUS_PHRASES)

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
# Only text that starts like a calendar date is read as ISO 8601; "today 4-6 PM" stays free text.
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


class Order(BaseModel):
    """One order as the shop's API describes it; unknown fields ignored, unknown statuses kept."""

    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)

    order_number: str
    status: str
    eta: str | None = None
    courier: str | None = None
    placed_at: str | None = None
    items: list[str] = []
    delivery_area: str | None = None
    customer_phone: str | None = None

    @field_validator("items", mode="before")
    @classmethod
    def _item_names(cls, value: object) -> object:
        # Many shops send items as objects; the agent only ever says their names.
        if value is None:
            return []
        if isinstance(value, list):
            return [_item_name(item) for item in value]
        return value

    @property
    def status_text(self) -> str:
        """The status as a phrase after "Your order is": out_for_delivery -> "out for delivery"."""
        known = _STATUS_PHRASES.get(self.status.strip().lower())
        return known if known is not None else self.status.replace("_", " ").strip()

    @property
    def eta_text(self) -> str:
        """The ETA to speak: ISO 8601 -> "Friday 28 November, around 4 PM"; free text is kept."""
        return _speakable_eta(self.eta)

    def redacted(self) -> Order:
        """A copy holding only what any caller may hear: number, status, ETA and courier."""
        return Order(
            order_number=self.order_number, status=self.status, eta=self.eta, courier=self.courier
        )

    def as_context(self) -> dict[str, str]:
        """Template variables (`{{ order.status_text }}`, ...); absent values are empty strings."""
        return {
            "order_number": self.order_number,
            "status": self.status,
            "status_text": self.status_text,
            "eta": self.eta_text,
            "courier": self.courier or "",
            "delivery_area": self.delivery_area or "",
        }


def _item_name(item: object) -> object:
    if isinstance(item, dict):
        for key in ("name", "title", "description"):
            if isinstance(item.get(key), str):
                return item[key]
    return item


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupResult:
    """The outcome of a lookup the shop answered (failures raise OrdersError instead)."""

    kind: Literal["found", "not_found"]
    orders: tuple[Order, ...]
    query: Literal["order_number", "phone"]

    @property
    def order(self) -> Order | None:
        """The first (most recent) order, if any."""
        return self.orders[0] if self.orders else None


def _speakable_eta(eta: str | None) -> str:
    """ISO 8601 dates and date-times as a person says them; anything else unchanged, None as ""."""
    if not eta:
        return ""
    text = eta.strip()
    if not _ISO_DATE.match(text):
        return text
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return text
    # The shop writes its ETA in its local time, which is the caller's: say the time as written.
    day = _speakable_day(moment.date())
    if len(text) <= len("2026-11-28"):
        return day
    return f"{day}, around {_speakable_time(moment)}"


def _speakable_day(day: date) -> str:
    return f"{_WEEKDAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]}"


def _speakable_time(moment: datetime) -> str:
    if moment.hour == 12 and moment.minute == 0:
        return "midday"
    if moment.hour == 0 and moment.minute == 0:
        return "midnight"
    hour = moment.hour % 12 or 12
    suffix = "AM" if moment.hour < 12 else "PM"
    if moment.minute == 0:
        return f"{hour} {suffix}"
    return f"{hour}:{moment.minute:02d} {suffix}"


def phone_key(phone: str) -> str:
    """The last 9 digits of a phone number: +254712345678, 0712345678 and 712 345 678 agree."""
    digits = "".join(c for c in phone if c.isdigit())
    return digits[-9:]


_DIGITS: dict[str, str] = {
    "zero": "0", "oh": "0", "nought": "0", "nil": "0",
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
}
_TEENS: dict[str, str] = {
    "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
    "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
}
_TENS: dict[str, str] = {
    "twenty": "2", "thirty": "3", "forty": "4", "fifty": "5",
    "sixty": "6", "seventy": "7", "eighty": "8", "ninety": "9",
}
_REPEATS: dict[str, int] = {"double": 2, "triple": 3}
_NATO: dict[str, str] = {
    "alpha": "A", "alfa": "A", "bravo": "B", "charlie": "C", "delta": "D", "echo": "E",
    "foxtrot": "F", "golf": "G", "hotel": "H", "india": "I", "juliet": "J", "juliett": "J",
    "kilo": "K", "lima": "L", "mike": "M", "november": "N", "oscar": "O", "papa": "P",
    "quebec": "Q", "romeo": "R", "sierra": "S", "tango": "T", "uniform": "U", "victor": "V",
    "whiskey": "W", "whisky": "W", "xray": "X", "yankee": "Y", "zulu": "Z",
}
# Words callers and transcribers wrap around an order number; none can be part of one.
_FILLER: frozenset[str] = frozenset({
    "dash", "hyphen", "minus", "hash", "hashtag", "pound", "slash", "dot", "point", "space",
    "underscore", "and", "number", "order", "is", "it", "its", "my", "the",
})


def normalise_order_number(spoken: str) -> str:
    """A spoken or transcribed order number -> the shop's form: "dx one oh four two" -> "DX1042".

    Keeps letters and digits only, uppercased; drops filler words ("dash", "hash", "number");
    reads digit words ("four two" -> "42", "oh" -> "0", "forty two" -> "42"), "double"/"triple"
    ("double five" -> "55") and the NATO alphabet ("delta xray" -> "DX").
    """
    words = re.findall(r"[a-z0-9]+", spoken.lower().replace("x-ray", "xray"))
    out: list[str] = []
    repeat = 1
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word in _FILLER:
            continue
        if word in _REPEATS:
            repeat = _REPEATS[word]
            continue
        if word in _TENS:
            unit = words[index] if index < len(words) else ""
            if unit in _DIGITS and _DIGITS[unit] != "0":
                piece = _TENS[word] + _DIGITS[unit]
                index += 1
            else:
                piece = _TENS[word] + "0"
        else:
            piece = _DIGITS.get(word) or _TEENS.get(word) or _NATO.get(word) or word.upper()
        out.append(piece * repeat)
        repeat = 1
    return "".join(out)
