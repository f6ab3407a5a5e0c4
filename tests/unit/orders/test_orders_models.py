"""Order, LookupResult and spoken order numbers: what the agent will say and send."""

from __future__ import annotations

import pytest

from orchestrator.orders import (
    KNOWN_STATUSES,
    LookupResult,
    Order,
    normalise_order_number,
    phone_key,
)


@pytest.mark.parametrize(
    ("spoken", "expected"),
    [
        ("DX1042", "DX1042"),
        ("dx1042", "DX1042"),
        ("DX-1042", "DX1042"),
        ("D X 1 0 4 2", "DX1042"),
        ("dx one oh four two", "DX1042"),
        ("D X dash one zero four two", "DX1042"),
        ("hash 55555", "55555"),
        ("#55555", "55555"),
        ("double five five five five", "55555"),
        ("five double five double five", "55555"),
        ("triple oh seven", "0007"),
        ("P K two oh nine three one", "PK20931"),
        ("my order number is PK 2 0 9 3 1", "PK20931"),
        ("delta x-ray ten forty two", "DX1042"),
        ("papa kilo twenty ninety three one", "PK20931"),
        ("  pk20931.  ", "PK20931"),
        ("", ""),
        ("dash hash", ""),
    ],
)
def test_normalise_order_number_reads_spoken_forms(spoken: str, expected: str) -> None:
    """Spoken or transcribed order numbers become the shop's uppercase letters-and-digits form."""
    assert normalise_order_number(spoken) == expected


@pytest.mark.parametrize(
    ("status", "text"),
    [
        ("out_for_delivery", "out for delivery"),
        ("delivered", "delivered"),
        ("failed_delivery", "not delivered yet, because the last delivery attempt failed"),
        ("packed", "packed and waiting for the courier"),
        ("awaiting_pickup", "awaiting pickup"),
        ("On_Hold", "On Hold"),
    ],
)
def test_order_status_text_phrases_status(status: str, text: str) -> None:
    """Known statuses get a human phrase; unknown ones are kept, underscores turned to spaces."""
    assert Order(order_number="DX1042", status=status).status_text == text


def test_order_status_text_covers_every_known_status() -> None:
    """Every status in the contract has its own phrase, without underscores."""
    assert len(KNOWN_STATUSES) == 9
    for status in KNOWN_STATUSES:
        assert "_" not in Order(order_number="DX1042", status=status).status_text


@pytest.mark.parametrize(
    ("eta", "text"),
    [
        ("2026-11-28T16:00:00+03:00", "Saturday 28 November, around 4 PM"),
        ("2026-11-29T10:30:00+03:00", "Sunday 29 November, around 10:30 AM"),
        ("2026-11-27T12:00:00Z", "Friday 27 November, around midday"),
        ("2026-11-27", "Friday 27 November"),
        ("today between 4 and 6 PM", "today between 4 and 6 PM"),
        ("2026-99-99 sometime", "2026-99-99 sometime"),
        (None, ""),
    ],
)
def test_order_eta_text_speaks_iso_and_keeps_free_text(eta: str | None, text: str) -> None:
    """ISO 8601 ETAs become speakable dates and times; the shop's free text is kept as written."""
    assert Order(order_number="DX1042", status="dispatched", eta=eta).eta_text == text


def test_order_ignores_extra_fields_and_coerces_numbers() -> None:
    """Fields outside the contract are dropped, and a numeric order number is read as text."""
    order = Order.model_validate(
        {"order_number": 55555, "status": "failed_delivery", "warehouse": "Mlolongo", "items": None}
    )
    assert order.order_number == "55555"
    assert order.items == []
    assert "warehouse" not in order.model_dump()


def test_order_items_accept_objects_with_names() -> None:
    """Items sent as objects are reduced to the names the agent can say."""
    order = Order.model_validate(
        {"order_number": "DX1042", "status": "packed", "items": [{"name": "Charger", "qty": 2}]}
    )
    assert order.items == ["Charger"]


def test_order_redacted_keeps_only_public_fields() -> None:
    """A redacted order keeps number, status, ETA and courier: nothing about the customer."""
    order = Order(
        order_number="DX1042",
        status="out_for_delivery",
        eta="today between 4 and 6 PM",
        courier="PikiPiki",
        placed_at="2026-11-24T09:15:00+03:00",
        items=["USB-C charger"],
        delivery_area="Westlands",
        customer_phone="+254712345678",
    )
    assert order.redacted().model_dump() == {
        "order_number": "DX1042",
        "status": "out_for_delivery",
        "eta": "today between 4 and 6 PM",
        "courier": "PikiPiki",
        "placed_at": None,
        "items": [],
        "delivery_area": None,
        "customer_phone": None,
    }


def test_order_as_context_gives_template_strings() -> None:
    """Template context is all strings: the speakable ETA, and empty text for absent values."""
    order = Order(order_number="DX1055", status="confirmed", eta="2026-11-28T16:00:00+03:00")
    assert order.as_context() == {
        "order_number": "DX1055",
        "status": "confirmed",
        "status_text": "confirmed",
        "eta": "Saturday 28 November, around 4 PM",
        "courier": "",
        "delivery_area": "",
    }


def test_lookup_result_order_is_the_first() -> None:
    """`LookupResult.order` is the most recent order, or None when nothing was found."""
    first = Order(order_number="DX1042", status="out_for_delivery")
    second = Order(order_number="DX1043", status="delivered")
    found = LookupResult(kind="found", orders=(first, second), query="phone")
    assert found.order == first
    assert LookupResult(kind="not_found", orders=(), query="phone").order is None


@pytest.mark.parametrize(
    "phone", ["+254712345678", "0712345678", "254 712 345 678", "+254-712-345-678"]
)
def test_phone_key_agrees_across_formats(phone: str) -> None:
    """Local and international spellings of one number share a key: its last 9 digits."""
    assert phone_key(phone) == "712345678"
