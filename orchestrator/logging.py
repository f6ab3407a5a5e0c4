"""structlog configuration and our processors: JSON or console lines, phone numbers masked.

`configure_logging()` is called once by the CLI (or by an embedding application that wants our format); library
code only calls `structlog.get_logger(__name__)`. Each call's task binds `call_sid` with
`structlog.contextvars.bound_contextvars`, so every line of a call carries it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

__all__ = ["configure_logging", "mask_phone", "mask_phone_numbers", "mask_phone_numbers_in"]

# A phone number is found by its digits, whatever separates them: an optional + (or URL-encoded %2B), then
# digit groups joined by at most two of space . - ( ). It is masked when it holds 9 or more digits. Dates
# (2026-11-24, 24.11.2026) are matched first and left alone, and a run glued to letters, `_` or another
# `.digit` (ids, versions, tokens like 1760000300.3fa9) is not a phone number at all.
_PHONE = re.compile(
    r"(?P<date>(?<![\w.])\d{4}[-./]\d{1,2}[-./]\d{1,2}(?![\w])(?![.\-]\w)"
    r"|(?<![\w.])\d{1,2}[-./]\d{1,2}[-./]\d{4}(?![\w])(?![.\-]\w))"
    r"|(?<![\w+%])(?<![\w][.\-])"
    r"(?P<phone>(?:\+|%2[Bb])?\(?\d+(?:[ .\-()]{1,2}\d+)*\)?)"
    r"(?![\w])(?![.\-]\w)"
)
_MASKED_DIGITS = 9  # fewer digits are order numbers, counts, years
_E164_DIGITS = 15  # more, with no separator at all, is a numeric id rather than a phone number


def mask_phone(value: str) -> str:
    """Keep a number recognisable to its owner and useless to anyone else: +2547******678."""
    if value[:3] in ("%2B", "%2b"):
        value = "+" + value[3:]
    digits = [c for c in value if c.isdigit()]
    if len(digits) < 7:
        return value
    keep_head = 4 if value.startswith("+") else 3
    head = "".join(digits[:keep_head])
    tail = "".join(digits[-3:])
    return (
        ("+" if value.startswith("+") else "") + head + "*" * (len(digits) - keep_head - 3) + tail
    )


def _mask_text(text: str) -> str:
    return _PHONE.sub(_mask_match, text)


def _mask_match(match: re.Match[str]) -> str:
    phone = match.group("phone")
    if phone is None:  # a date
        return match.group(0)
    digits = sum(c.isdigit() for c in phone)
    if digits < _MASKED_DIGITS or (digits > _E164_DIGITS and phone.isdigit()):
        return phone
    return mask_phone(phone)


def _mask(value: object) -> object:
    if isinstance(value, str):
        return _mask_text(value)
    if isinstance(value, Mapping):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


def mask_phone_numbers_in(fields: Mapping[str, str]) -> dict[str, object]:
    """Mask numbers in raw fields before they are logged, whatever logging setup the embedding app has."""
    return {key: _mask(value) for key, value in fields.items()}


def mask_phone_numbers(
    logger: object, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask anything that looks like a phone number, in any field."""
    for key, value in event_dict.items():
        if key not in ("timestamp", "level", "logger"):
            event_dict[key] = _mask(value)
    return event_dict


def configure_logging(*, json: bool = True, level: int = logging.INFO) -> None:
    """Configure structlog (and stdlib logging, e.g. aiohttp's) to write one line per event to stderr."""
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_phone_numbers,
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer,
        ])
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request line at INFO, URL and query included: keep it to warnings.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
