"""Outbound calls on Sautikit's wire: the signed callback URL that carries the order, the idempotency key,
and the liberal reading of an outbound call's direction and final status.

`POST /v1/calls` takes a `voice_callback_url` and Sautikit POSTs the voice webhook there when the callee
answers (and, we assume, with a final `callSessionState` when they do not: docs/outbound.md). The body does
not say which order the call is about, so the URL does: `?outbound=DX1042&attempt=1&sig=…`, signed with the
service's stream secret so that nobody can start a flow about another order by calling the webhook.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

__all__ = [
    "NotAnswered",
    "OutboundRequest",
    "idempotency_key",
    "is_outbound",
    "kept_query",
    "not_answered",
    "outbound_callback_url",
    "read_outbound_query",
    "with_query",
]

_QUERY_FIELDS = ("outbound", "to", "attempt", "sig")
# In a CallStart's `raw` fields, the webhook URL's query is kept under these names ("?outbound"...).
_QUERY_MARK = "?"

NotAnswered = Literal["no_answer", "busy", "failed", "canceled"]

_ORDER = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# Final states of a call nobody answered, as Sautikit's pages and traffic spell them, folded.
_NOT_ANSWERED: Mapping[str, NotAnswered] = {
    "noanswer": "no_answer",
    "unanswered": "no_answer",
    "timeout": "no_answer",
    "busy": "busy",
    "failed": "failed",
    "rejected": "busy",
    "declined": "busy",
    "canceled": "canceled",
    "cancelled": "canceled",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundRequest:
    """One notification call: the order it is about, the customer, and which attempt this is (1 first)."""

    order: str
    to: str  # E.164
    attempt: int = 1


def _mac(secret: bytes, order: str, to: str, attempt: int) -> str:
    message = f"outbound.{order}.{to}.{attempt}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]


def outbound_callback_url(voice_url: str, request: OutboundRequest, secret: bytes) -> str:
    """The voice webhook URL for this call, carrying the order and attempt, signed."""
    query = urlencode(
        {
            "outbound": request.order,
            "to": request.to,
            "attempt": request.attempt,
            "sig": _mac(secret, request.order, request.to, request.attempt),
        }
    )
    return f"{voice_url}{'&' if '?' in voice_url else '?'}{query}"


def read_outbound_query(query: Mapping[str, str], secret: bytes) -> OutboundRequest | None:
    """The outbound request a webhook URL carries, or None when it carries none or its signature is wrong."""
    order, to, attempt, sig = (query.get(k, "") for k in ("outbound", "to", "attempt", "sig"))
    if not order or not _ORDER.fullmatch(order) or not attempt.isdigit() or not to:
        return None
    number = int(attempt)
    if not hmac.compare_digest(_mac(secret, order, to, number).encode(), sig.encode()):
        return None
    return OutboundRequest(order=order, to=to, attempt=number)


def idempotency_key(request: OutboundRequest, *, flow: str) -> str:
    """The same order, number and attempt always give the same key: a re-run never calls twice.

    >>> idempotency_key(OutboundRequest(order="DX1042", to="+254712345678"), flow="order_status")
    'notify-order_status-DX1042-a1-e46743018101'
    """
    digest = hashlib.sha256(f"{flow}|{request.order}|{request.to}".encode()).hexdigest()[:12]
    return f"notify-{flow}-{request.order}-a{request.attempt}-{digest}"


def is_outbound(direction: str | None) -> bool:
    """`outbound`, `outbound-api`, `Outbound_Dial`…: any direction that starts with "out"."""
    return direction is not None and direction.strip().lower().startswith("out")


def not_answered(state: str | None) -> NotAnswered | None:
    """The reason a call was not answered, from a final `callSessionState`/status; None for anything else."""
    if state is None:
        return None
    return _NOT_ANSWERED.get(re.sub(r"[\s_-]", "", state.lower()))


def with_query(raw: Mapping[str, str], query: Mapping[str, str]) -> dict[str, str]:
    """`raw` webhook fields plus the URL's outbound query, so the call's start carries its order along
    (a worker that takes the call's socket over reads it back with `kept_query`)."""
    return {**raw, **{_QUERY_MARK + name: query[name] for name in _QUERY_FIELDS if name in query}}


def kept_query(raw: Mapping[str, str]) -> dict[str, str]:
    """The outbound query `with_query` kept in `raw` (empty for an inbound call)."""
    mark = len(_QUERY_MARK)
    return {key[mark:]: value for key, value in raw.items() if key.startswith(_QUERY_MARK)}
