"""The media WebSocket's first TEXT frame: stream metadata, parsed defensively.

Its schema is undocumented (reference/sautikit.md): it may be nested under ``metadata``, may
spell the call id several ways, and may carry our ``headerMetadata`` back as an object or as a
JSON string. Only a frame that is not a JSON object is an error; an unknown field is ignored and
a field of the wrong type reads as None, because the stream URL already names the call and
nothing here is required.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.errors import StreamError
from orchestrator.telephony.webhook import normalise_phone

__all__ = ["StreamMetadata", "parse_metadata"]

_CALL_ID_KEYS = ("callsid", "sessionid", "callid")
_STREAM_ID_KEYS = ("streamsid", "streamid")
_CALLER_KEYS = ("from", "caller", "callernumber")
_CALLEE_KEYS = ("to", "callee", "destinationnumber")
_SAMPLE_RATE_KEYS = ("samplerate", "samplingrate")
_STEREO_MIX_TYPES = frozenset({"stereo"})
_MAX_SAMPLE_RATE = 192_000
_MAX_RATE_DIGITS = len(str(_MAX_SAMPLE_RATE))


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamMetadata:
    """What the platform told us about a stream in its first text frame.

    >>> meta = parse_metadata('{"metadata": {"callSid": "HD_1", "mixType": "stereo"}}')
    >>> meta.call_sid, meta.channels
    ('HD_1', 2)
    """

    call_sid: str | None
    stream_sid: str | None
    caller: str | None
    callee: str | None
    sample_rate: int | None
    channels: int  # 2 only when mixType says stereo: caller first, interleaved
    headers: Mapping[str, str]  # our headerMetadata, echoed back
    raw: Mapping[str, object]  # the frame as decoded, for logging


def parse_metadata(text: str) -> StreamMetadata:
    """Parse the first text frame; raises `StreamError` only when it is not a JSON object."""
    try:
        decoded: object = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, huge ints, absurd nesting
        raise StreamError(f"stream metadata is not valid JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise StreamError(f"stream metadata must be a JSON object, got {type(decoded).__name__}")
    nested = decoded.get("metadata")
    # The nested object is the metadata proper; top-level fields fill only what it lacks.
    layers: tuple[Mapping[str, object], ...] = (decoded,)
    if isinstance(nested, Mapping):
        layers = (nested, decoded)
    fields: dict[str, object] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(key, str):
                fields.setdefault(_fold_key(key), value)

    mix_type = _text(fields, ("mixtype",))
    return StreamMetadata(
        call_sid=_text(fields, _CALL_ID_KEYS),
        stream_sid=_text(fields, _STREAM_ID_KEYS),
        caller=normalise_phone(_text(fields, _CALLER_KEYS)),
        callee=normalise_phone(_text(fields, _CALLEE_KEYS)),
        sample_rate=_sample_rate(fields),
        channels=2 if mix_type is not None and mix_type.lower() in _STEREO_MIX_TYPES else 1,
        headers=_headers(fields.get("headers")),
        raw=decoded,
    )


def _fold_key(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def _text(fields: Mapping[str, object], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = fields.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _sample_rate(fields: Mapping[str, object]) -> int | None:
    for key in _SAMPLE_RATE_KEYS:
        value = fields.get(key)
        if isinstance(value, bool):
            continue  # bool is an int subclass, never a rate
        rate = value if isinstance(value, int) else _digits(value)
        if rate is not None and 0 < rate <= _MAX_SAMPLE_RATE:
            return rate
    return None


def _digits(value: object) -> int | None:
    if isinstance(value, str):
        stripped = value.strip()
        # The length cap keeps int() away from huge digit strings.
        if stripped.isascii() and stripped.isdecimal() and len(stripped) <= _MAX_RATE_DIGITS:
            return int(stripped)
    return None


def _headers(value: object) -> dict[str, str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return {}
    if not isinstance(value, dict):
        return {}
    return {
        key: item if isinstance(item, str) else json.dumps(item)
        for key, item in value.items()
        if isinstance(item, str | int | float) and not isinstance(item, bool)
    }
