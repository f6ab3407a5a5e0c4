"""Sautikit's voice webhook, parsed liberally into a `CallStart`.

Sautikit's docs and its live traffic disagree on encodings and field names
(reference/sautikit.md), so this module accepts form (urlencoded or multipart) and JSON bodies,
every known spelling of each field, and a call nested under a top-level ``call`` or ``data``
object. It knows nothing of flows, calls or sockets: the aiohttp handler on top calls
`parse_webhook` and answers with XML.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qsl

from aiohttp import web

from orchestrator.errors import WebhookError
from orchestrator.telephony.call_id import CallId, parse_call_id

__all__ = [
    "CallStart",
    "normalise_phone",
    "parse_webhook",
    "parse_webhook_body",
    "parse_webhook_fields",
]

# Each field's spellings as Sautikit sends them; compared after `_fold_key`, so case, "_", "-" vary.
_CALL_ID_NAMES = ("CallSid", "callSid", "call_sid", "CallId", "call_id", "sessionId")
_CALLER_NAMES = ("From", "from", "callerNumber")
_CALLEE_NAMES = ("To", "to", "destinationNumber")
_STATE_NAMES = ("callSessionState",)
_ACTIVE_NAMES = ("isActive",)
_DIRECTION_NAMES = ("direction",)
_DIGITS_NAMES = ("Digits",)

# The call may sit one or two objects down, e.g. an envelope {"kind": ..., "data": {"call": {...}}}.
_NESTING_KEYS = ("call", "data")
_MAX_NESTING = 2

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})

_PHONE_SEPARATORS = re.compile(r"[\s\-.()]")
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: \d would accept other scripts
_KENYA = "254"
_KENYA_NATIONAL_DIGITS = 9
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")  # ITU-T E.164: a country code and at most 15 digits in all


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStart:
    """What one voice webhook POST tells us about a call.

    >>> start = parse_webhook_fields({"CallSid": "HD_1", "From": "0712345678"})
    >>> start.call_sid, start.caller
    ('HD_1', '+254712345678')
    """

    call_sid: CallId
    caller: str | None  # E.164, or None when withheld: absent, empty, "anonymous" or not a number
    callee: str | None
    state: str | None  # callSessionState, lower-case: "ringing", "completed", ...
    is_active: bool | None
    direction: str | None
    digits: str | None
    raw: Mapping[str, str]  # every field as received, as strings, for logging and debugging


async def parse_webhook(request: web.Request) -> CallStart:
    """Read the body once and parse it; `request.read()` stays usable for signature checks."""
    body = await request.read()
    content_type = request.headers.get("Content-Type")
    return parse_webhook_body(body, content_type)


def parse_webhook_body(body: bytes, content_type: str | None) -> CallStart:
    """Parse a raw body: JSON (by content type or a leading '{'), multipart, or urlencoded."""
    media_type, _, _ = (content_type or "").partition(";")
    media_type = media_type.strip().lower()
    is_json = media_type == "application/json" or media_type.endswith("+json")
    if is_json or body.lstrip()[:1] == b"{":
        return parse_webhook_fields(_decode_json(body))
    if media_type == "multipart/form-data":
        return parse_webhook_fields(_decode_multipart(body, content_type or ""))
    text = body.decode("utf-8", errors="replace")
    return parse_webhook_fields(_first_wins(parse_qsl(text, keep_blank_values=True)))


def parse_webhook_fields(fields: Mapping[str, object]) -> CallStart:
    """Turn decoded webhook fields (form strings or JSON values) into a `CallStart`."""
    flat = _flatten(fields)
    folded = {_fold_key(key): value for key, value in reversed(flat.items())}

    raw_call_id = _lookup(folded, _CALL_ID_NAMES)
    if not raw_call_id:
        raise WebhookError("missing call id (CallSid/callSid/call_sid/CallId/sessionId)")
    # A missing From is a withheld caller: answered, and never looked up by phone.
    return CallStart(
        call_sid=parse_call_id(raw_call_id),
        caller=normalise_phone(_lookup(folded, _CALLER_NAMES)),
        callee=normalise_phone(_lookup(folded, _CALLEE_NAMES)),
        state=_lower_or_none(_lookup(folded, _STATE_NAMES)),
        is_active=_parse_bool(_lookup(folded, _ACTIVE_NAMES)),
        direction=_lower_or_none(_lookup(folded, _DIRECTION_NAMES)),
        digits=_lookup(folded, _DIGITS_NAMES) or None,
        raw=flat,
    )


def normalise_phone(number: str | None) -> str | None:
    """Return the number in E.164, reading Kenyan national forms, or None: anything else is withheld.

    Only an E.164 number is ever used to look a caller up, so junk ("anonymous", "1; DROP", a SIP
    URI) never reaches the shop's API.

    >>> numbers = ("0712 345 678", "254712345678", "+254.711.848.716", "anonymous")
    >>> [normalise_phone(n) for n in numbers]
    ['+254712345678', '+254712345678', '+254711848716', None]
    """
    if number is None:
        return None
    compact = _PHONE_SEPARATORS.sub("", number.strip())
    plus, digits = compact.startswith("+"), compact[1:] if compact.startswith("+") else compact
    if not _DIGITS.fullmatch(digits):
        return None
    if plus:
        candidate = f"+{digits}"
    elif digits.startswith("00"):  # international dialling prefix
        candidate = f"+{digits[2:]}"
    elif digits.startswith(_KENYA) and len(digits) == len(_KENYA) + _KENYA_NATIONAL_DIGITS:
        candidate = f"+{digits}"
    elif digits.startswith("0") and len(digits) == 1 + _KENYA_NATIONAL_DIGITS:
        candidate = f"+{_KENYA}{digits[1:]}"
    else:
        return None
    return candidate if _E164.fullmatch(candidate) else None


def _decode_json(body: bytes) -> Mapping[str, object]:
    try:
        decoded: object = json.loads(body)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, huge ints, absurd nesting
        raise WebhookError(f"malformed JSON body: {exc}") from exc
    if not isinstance(decoded, dict):
        raise WebhookError(f"JSON body must be an object, got {type(decoded).__name__}")
    return decoded


def _decode_multipart(body: bytes, content_type: str) -> Mapping[str, str]:
    # The stdlib email parser reads multipart/form-data from bytes already in hand, so the body is
    # read once and stays available for signature verification.
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    parser = email.parser.BytesParser(EmailMessage, policy=email.policy.HTTP)
    message = parser.parsebytes(head + body)
    if not message.is_multipart():
        raise WebhookError("malformed multipart body (missing or wrong boundary)")
    pairs: list[tuple[str, str]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_filename() is not None:
            continue  # files and nameless parts carry no webhook fields
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            pairs.append((name, _decode_text(payload, part.get_content_charset())))
    return _first_wins(pairs)


def _decode_text(payload: bytes, charset: str | None) -> str:
    try:
        return payload.decode(charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset is the sender's typo, not a reason to drop the field
        return payload.decode("utf-8", errors="replace")


def _first_wins(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    return fields


def _flatten(fields: Mapping[str, object]) -> dict[str, str]:
    """Lift a nested call object to the top and render every value as a string."""
    layers: list[Mapping[str, object]] = [fields]
    for _ in range(_MAX_NESTING):
        inner = next(
            (v for k in _NESTING_KEYS if isinstance(v := layers[-1].get(k), Mapping)), None
        )
        if inner is None:
            break
        layers.append(inner)
    flat: dict[str, str] = {}
    for layer in reversed(layers):  # the innermost object, the call itself, wins
        for key, value in layer.items():
            if isinstance(key, str) and not (isinstance(value, Mapping) and key in _NESTING_KEYS):
                flat.setdefault(key, _as_text(value))
    return flat


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool | int | float | list | dict):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _fold_key(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def _lookup(folded: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = folded.get(_fold_key(name))
        if value is not None:
            return value.strip()
    return None


def _lower_or_none(value: str | None) -> str | None:
    return value.lower() if value else None


def _parse_bool(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None
