"""Signatures on Sautikit's wire: stream tokens we mint, webhook signatures Sautikit sends.

A stream token binds one WebSocket to one call: the `<Stream>` url carries
``?call_sid=...&token=...`` and the socket handler checks the token against the call id before
accepting audio. Webhook signatures come in two forms (reference/sautikit.md):
``t=<unix>,v1=<hex>`` with v1 = HMAC-SHA256(secret, body + "." + t), and a plain hex HMAC-SHA256
of the body. Only the timestamped form is accepted unless the plain one is asked for: a timestamped
v1 is also a valid plain signature of the body ``body + "." + t``, so accepting both would let anyone
replay a captured request forever. Every check uses a constant-time compare and raises
`SignatureError` with a reason that says which check failed; an accepted signature comes back as an
`AcceptedSignature`, which the caller puts in a replay cache (`telephony.replay`) until it expires.
Time is passed in (``now``) so callers use their own clock.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from orchestrator.errors import SignatureError

__all__ = [
    "PLAIN_SIGNATURE_REPLAY_S",
    "AcceptedSignature",
    "make_stream_token",
    "sign_webhook",
    "stream_url",
    "verify_stream_token",
    "verify_webhook_signature",
]

_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_EXPIRY = re.compile(r"[0-9]{1,12}")
_TIMESTAMP = re.compile(r"-?[0-9]{1,12}")
_WS_SCHEMES = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}
# A plain signature carries no time: when it is allowed, its replay is refused for this long.
PLAIN_SIGNATURE_REPLAY_S = 24 * 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptedSignature:
    """A signature that verified: what identifies it, and until when a replay of it would verify too."""

    mac: str  # the lower-case hex digest that matched
    expires_at: float  # Unix time after which the signature is refused anyway (stale)


def make_stream_token(secret: bytes, call_sid: str, *, now: float, ttl: float = 300) -> str:
    """Mint a URL-safe token, ``<expiry>.<hex mac>``: one socket may join `call_sid` until expiry.

    >>> token = make_stream_token(b"s3cret", "HD_1", now=1000)
    >>> token.split(".")[0]
    '1300'
    """
    _require_secret(secret)
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    expiry = int(now + ttl)
    return f"{expiry}.{_stream_mac(secret, call_sid, str(expiry))}"


def verify_stream_token(secret: bytes, call_sid: str, token: str, *, now: float) -> None:
    """Accept the token only if it was minted for `call_sid` with `secret` and has not expired."""
    _require_secret(secret)
    expiry, dot, mac = token.partition(".")
    if not dot or not _EXPIRY.fullmatch(expiry) or not _HEX_DIGEST.fullmatch(mac):
        raise SignatureError("malformed stream token")
    expected = _stream_mac(secret, call_sid, expiry)
    if not hmac.compare_digest(expected.encode(), mac.lower().encode()):
        # A token for another call and a tampered token look the same from here, by design.
        raise SignatureError("stream token does not match this call")
    if now > int(expiry):
        raise SignatureError("stream token expired")


def stream_url(public_ws_base: str, path: str, call_sid: str, token: str) -> str:
    """Build the `<Stream>` url: the public base as ws/wss, `path`, the call id and token as query.

    >>> stream_url("https://agent.example.com", "/audio", "HD_1", "1300.ab")
    'wss://agent.example.com/audio?call_sid=HD_1&token=1300.ab'
    """
    parts = urlsplit(public_ws_base)
    scheme = _WS_SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(
            f"public base must be an absolute http(s) or ws(s) URL, got {public_ws_base!r}"
        )
    if parts.query or parts.fragment:
        raise ValueError("public base must not carry a query or fragment")
    full_path = f"{parts.path.rstrip('/')}/{path.lstrip('/')}"
    query = urlencode({"call_sid": call_sid, "token": token})
    return urlunsplit((scheme, parts.netloc, full_path, query, ""))


def sign_webhook(secret: bytes, raw_body: bytes, *, now: float) -> str:
    """Sign a body the way Sautikit does, ``t=<unix>,v1=<hex>``: for tests and the simulator."""
    _require_secret(secret)
    timestamp = str(int(now))
    return f"t={timestamp},v1={_webhook_mac(secret, raw_body, timestamp)}"


def verify_webhook_signature(
    secret: bytes,
    raw_body: bytes,
    header: str | None,
    *,
    now: float,
    tolerance: float = 300,
    allow_plain: bool = False,
) -> AcceptedSignature:
    """Check an ``X-Sautikit-Signature`` header; raise `SignatureError` saying why it is refused.

    The ``t=,v1=`` form may list several v1 values (secret rotation) and must be within
    `tolerance` seconds of `now`. The plain form (hex, optionally ``sha256=``) carries no time and
    is refused unless `allow_plain` (``ORCHESTRATOR_WEBHOOK_PLAIN_SIGNATURES=1``); then only a
    replay cache stops a replay, for `PLAIN_SIGNATURE_REPLAY_S`.
    """
    _require_secret(secret)
    if header is None or not header.strip():
        raise SignatureError("missing webhook signature")
    value = header.strip()
    if "=" in value and not value.lower().startswith("sha256="):
        return _verify_timestamped(secret, raw_body, value, now=now, tolerance=tolerance)
    digest = value[len("sha256=") :] if value.lower().startswith("sha256=") else value
    if not _HEX_DIGEST.fullmatch(digest):
        raise SignatureError("malformed webhook signature")
    if not allow_plain:
        raise SignatureError(
            "plain webhook signature refused: only t=<unix>,v1=<hex> is accepted "
            "(ORCHESTRATOR_WEBHOOK_PLAIN_SIGNATURES=1 allows the plain form)"
        )
    expected = hmac.new(secret, raw_body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), digest.lower().encode()):
        raise SignatureError("webhook signature mismatch")
    return AcceptedSignature(mac=expected, expires_at=now + PLAIN_SIGNATURE_REPLAY_S)


def _verify_timestamped(
    secret: bytes, raw_body: bytes, header: str, *, now: float, tolerance: float
) -> AcceptedSignature:
    timestamp: str | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, eq, item_value = (part.strip() for part in item.partition("="))
        if not eq:
            raise SignatureError("malformed webhook signature")
        if key == "t":
            timestamp = item_value
        elif key == "v1":
            candidates.append(item_value)
        # Other schemes (v0, future versions) are ignored, as signers expect of verifiers.
    if timestamp is None or not _TIMESTAMP.fullmatch(timestamp):
        raise SignatureError("malformed webhook signature: no valid t=")
    if not candidates:
        raise SignatureError("malformed webhook signature: no v1=")
    age = now - int(timestamp)
    if age > tolerance:
        raise SignatureError(
            f"stale webhook signature ({age:.0f} s old, tolerance {tolerance:g} s)"
        )
    if -age > tolerance:
        raise SignatureError(f"webhook signature from the future ({-age:.0f} s ahead)")
    expected = _webhook_mac(secret, raw_body, timestamp)
    # Check every candidate, no early exit, so timing does not reveal which one matched.
    matched = False
    for candidate in candidates:
        if _HEX_DIGEST.fullmatch(candidate):
            matched |= hmac.compare_digest(expected.encode(), candidate.lower().encode())
    if not matched:
        raise SignatureError("webhook signature mismatch")
    return AcceptedSignature(mac=expected, expires_at=int(timestamp) + tolerance)


def _stream_mac(secret: bytes, call_sid: str, expiry: str) -> str:
    return hmac.new(secret, f"{call_sid}.{expiry}".encode(), hashlib.sha256).hexdigest()


def _webhook_mac(secret: bytes, raw_body: bytes, timestamp: str) -> str:
    return hmac.new(secret, raw_body + b"." + timestamp.encode(), hashlib.sha256).hexdigest()


def _require_secret(secret: bytes) -> None:
    if not secret:
        raise ValueError("signing secret must not be empty")
