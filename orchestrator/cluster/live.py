"""The `LiveCalls` protocol and what crosses it: a call's start as the webhook saw it, and messages for a call.

A call belongs to the worker holding its session: the one that answered its webhook until its media socket
connects, then the one holding the socket (which may be another worker: it builds the session from the
`SharedCall` the webhook wrote). Whatever else arrives for the call — a lifecycle re-POST, a stream status, an
event, a `<Dial>` answered elsewhere — is sent to that worker as a `CallMessage`; `Delivery` says what
became of it, so the worker that received the request can answer it correctly.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from orchestrator.orders import LookupResult
from orchestrator.telephony.call_id import CallId
from orchestrator.telephony.webhook import CallStart
from orchestrator.telephony.xml import DialVerb

__all__ = ["CallMessage", "Delivery", "LiveCalls", "MessageKind", "SharedCall", "new_worker_id"]

# again: a lifecycle re-POST of the voice webhook (`state`, `signed`, `dial_taken`); status: a stream-status
# callback (`fields`); event: an event webhook (`event_kind`, `data`); moved: the call's socket was taken by
# the sender, so the receiver lets its unconnected session go.
MessageKind = Literal["again", "status", "event", "moved"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedCall:
    """What the webhook's worker wrote about a call: enough for any worker to accept its socket."""

    start: CallStart
    token: str  # the stream token in the answered `<Stream>` URL
    answered_by: str  # the worker that answered the webhook
    record_id: str  # the call's record in the store, so one call keeps one record whoever holds it
    started_at: float  # Unix time of the webhook
    orders: LookupResult | None = (
        None  # the caller's orders, once the webhook's prefetch has answered
    )
    escalating: bool = False
    interrupted: bool = False  # its worker died with the call live


@dataclass(frozen=True, slots=True, kw_only=True)
class CallMessage:
    """Something that reached one worker about a call another worker holds."""

    call_sid: CallId
    kind: MessageKind
    state: str | None = None
    signed: bool = False
    dial_taken: bool = False  # the receiving worker answered the call's pending `<Dial>`
    digits: str | None = None  # keys the caller typed (the re-POST's `Digits`)
    fields: Mapping[str, str] = field(default_factory=dict)
    event_kind: str = ""
    data: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """delivered: its live worker has it; orphaned: the call's worker died; unknown: no worker holds it."""

    outcome: Literal["delivered", "orphaned", "unknown"]
    escalating: bool = False


MessageHandler = Callable[[CallMessage], None]
OrphanHandler = Callable[[list[CallId]], Awaitable[None]]


class LiveCalls(Protocol):
    """Which worker holds each live call, and the way to reach it."""

    worker_id: str

    async def answered(self, call: SharedCall) -> None:
        """The webhook answered `call` here: its session is here until a socket is claimed elsewhere."""

    async def orders_prefetched(self, call_sid: CallId, result: LookupResult) -> None:
        """The webhook's lookup of the caller's orders answered: a worker taking the socket reuses it."""

    async def find(self, call_sid: CallId) -> SharedCall | None:
        """The call as its webhook wrote it, if it is answered and not finished."""

    async def claim(self, call_sid: CallId) -> bool:
        """Take the call's media socket here; False if another socket (here or elsewhere) has it."""

    async def finished(self, call_sid: CallId) -> None:
        """The call ended here: forget it (a late request for it is a past call)."""

    async def escalating(self, call_sid: CallId) -> None:
        """The call is being handed to a person: if its worker dies, a re-POST gets the `<Dial>`."""

    async def offer_dial(self, call_sid: CallId, dial: DialVerb, *, ttl_s: float) -> None:
        """Answer the call's next request, on any worker, with `dial`."""

    async def take_dial(self, call_sid: CallId) -> DialVerb | None:
        """The pending `<Dial>` for the call, once: whoever takes it answers the platform with it."""

    async def send(self, message: CallMessage) -> Delivery:
        """Hand `message` to the worker holding the call."""

    async def start(self, on_message: MessageHandler, on_orphaned: OrphanHandler) -> None:
        """Messages for calls held here go to `on_message`; calls of a dead worker to `on_orphaned`."""

    async def close(self) -> None:
        """This worker leaves (its calls have ended, or are left for the others to mark)."""


def new_worker_id() -> str:
    """Host, process and a random tail: unique across hosts and restarts, readable in logs."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
