"""Key presses (DTMF) on Sautikit's media socket, parsed liberally from its text frames.

Sautikit documents only the voice webhook's `Digits` field; the media socket is a mod_audio_fork stream,
and platforms built on the fork report a key press as a text frame in one of a few shapes. Every shape
below is accepted (docs/keypad.md lists them); anything else is not a key press.

    >>> parse_dtmf('{"event": "dtmf", "dtmf": "5"}')
    '5'
    >>> parse_dtmf('{"event": "dtmf", "dtmf": {"digit": "#"}}')
    '#'
    >>> parse_dtmf('{"type": "dtmf", "data": {"digits": "42"}}')
    '42'
    >>> parse_dtmf('{"type": "mark", "data": {"name": "a"}}') is None
    True
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

__all__ = ["KEYS", "clean_keys", "parse_dtmf"]

# The sixteen DTMF tones; A-D exist on the wire though phones rarely have them.
KEYS = frozenset("0123456789*#ABCD")
_EVENT_NAMES = frozenset({"dtmf", "digit", "digits", "keypress", "dtmf_received"})
_KEY_FIELDS = ("dtmf", "digit", "digits", "key")
_SEPARATORS = re.compile(r"[\s,]")


def clean_keys(value: str) -> str | None:
    """The keys in `value` (spaces and commas dropped, letters upper-cased), or None if any is not a key."""
    keys = _SEPARATORS.sub("", value).upper()
    if not keys or any(key not in KEYS for key in keys):
        return None
    return keys


def parse_dtmf(text: str | bytes) -> str | None:
    """The key(s) a text frame reports, or None when the frame is not a key press."""
    try:
        message: object = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, Mapping):
        return None
    kind = message.get("event", message.get("type"))
    if not (isinstance(kind, str) and kind.lower() in _EVENT_NAMES):
        return None  # metadata and fork notices (marks) may carry a field of the same name
    for scope in (message, message.get("data"), message.get("payload")):
        if not isinstance(scope, Mapping):
            continue
        for name in _KEY_FIELDS:
            value = scope.get(name)
            if isinstance(value, Mapping):  # {"dtmf": {"digit": "5", "duration": 100}}
                value = next((value[k] for k in _KEY_FIELDS[1:] if k in value), None)
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if isinstance(value, str):
                keys = clean_keys(value)
                if keys is not None:
                    return keys
    return None
