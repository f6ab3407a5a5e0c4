"""Call ids as they may enter the service: one checked type, made at the edge.

A call id names files (transcripts), goes into URLs (the Stream URL, REST paths) and keys every
table, so it is checked once, where the platform hands it over (the voice webhook, the media
socket's query, status callbacks), and only a `CallId` goes further. Sautikit's live ids look like
``HD_xxxxxxxx`` and its REST API also takes UUIDs: letters, digits, ``_`` and ``-``, at most 64
characters. Nothing else gets in — no ``.``, ``/``, NUL, spaces or non-ASCII letters — so an id can
never leave a folder or change a URL's path.

>>> parse_call_id("HD_1a2b3c4d")
'HD_1a2b3c4d'
>>> parse_call_id("../x")
Traceback (most recent call last):
...
orchestrator.errors.WebhookError: call id may hold only letters, digits, '_' and '-' (got '../x')
"""

from __future__ import annotations

import re
from typing import NewType

from orchestrator.errors import WebhookError

__all__ = ["CALL_ID_MAX_LENGTH", "CallId", "is_call_id", "parse_call_id"]

CallId = NewType("CallId", str)

CALL_ID_MAX_LENGTH = 64
_CALL_ID = re.compile(r"[A-Za-z0-9_-]+")  # ASCII only: a str pattern's \w would take other scripts
_SHOWN = 40  # how much of a refused id the error repeats


def parse_call_id(value: str) -> CallId:
    """Return `value` as a `CallId`, or raise `WebhookError` (HTTP 400) saying what is wrong."""
    if not value:
        raise WebhookError("call id is empty")
    if len(value) > CALL_ID_MAX_LENGTH:
        raise WebhookError(
            f"call id is {len(value)} characters long; at most {CALL_ID_MAX_LENGTH} are accepted"
        )
    if not _CALL_ID.fullmatch(value):
        shown = value if len(value) <= _SHOWN else f"{value[:_SHOWN]}..."
        raise WebhookError(f"call id may hold only letters, digits, '_' and '-' (got {shown!r})")
    return CallId(value)


def is_call_id(value: str) -> bool:
    """Whether `value` would pass `parse_call_id` (for ids found in bodies we only log)."""
    return 0 < len(value) <= CALL_ID_MAX_LENGTH and _CALL_ID.fullmatch(value) is not None
