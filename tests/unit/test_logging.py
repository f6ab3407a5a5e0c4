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
