"""Phone numbers never reach a log line in full, whatever form they take."""

import pytest

from orchestrator.logging import mask_phone, mask_phone_numbers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+254712345678", "+2547*****678"),
        ("0712345678", "071****678"),
        ("GET /api/orders?phone=%2B254712345678", "GET /api/orders?phone=+2547*****678"),
        ("caller +254 712 345 678 called", "caller +2547*****678 called"),
        ("order DX1042 and 55555", "order DX1042 and 55555"),
        ("+254.711.848.716", "+2547*****716"),
        ("+254-711-848-716", "+2547*****716"),
        ("call (0712) 345-678.", "call 071****678."),
        ("tel:+254711848716", "tel:+2547*****716"),
        ("two 0712345678 0722345678", "two 071**************678"),
        ("on 2026-11-24 call 0712345678", "on 2026-11-24 call 071****678"),
    ],
    ids=[
        "e164", "national", "url-encoded", "spaced", "order-id", "dotted", "dashed", "parens", "tel-uri",
        "two-numbers", "date-then-number",
    ],
)
def test_logging_masks_numbers_in_any_field(text, expected):
    """The processor masks numbers inside free text, URL-encoded ones included, and leaves order ids."""
    event = mask_phone_numbers(None, "info", {"event": "x", "detail": text})
    assert event["detail"] == expected


def test_logging_masks_nested_values():
    """Numbers in nested mappings and lists are masked too."""
    event = mask_phone_numbers(None, "info", {"fields": {"From": "+254712345678"}, "to": ["+254711000000"]})
    assert event["fields"] == {"From": "+2547*****678"}
    assert event["to"] == ["+2547*****000"]


def test_logging_mask_phone_keeps_short_values():
    """Anything too short to be a phone number is left alone."""
    assert mask_phone("12345") == "12345"


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-24",
        "24.11.2026",
        "2026/11/24",
        "2026-11-24T10:30:00.123456789Z",
        "HD_123456789012",
        "550e8400-e29b-41d4-a716-446655440000",
        "stream token 1760000300.3fa9b2",
        "id 12345678901234567890",
    ],
)
def test_logging_never_masks_dates_or_ids(text):
    """Regression: `2026-11-24` became `202**124`; dates, ids, tokens and versions are left as they are."""
    event = mask_phone_numbers(None, "info", {"event": "x", "detail": text})
    assert event["detail"] == text
