"""Placing notification calls: one `POST /v1/calls` per order, retries per the flow, and the record of a
call nobody answered.

Used by `orchestrator calls place` (the first attempt of each row) and by the service (the retries, when
Sautikit reports a call not answered, or a voicemail the flow hangs up on). A placement's Idempotency-Key is
derived from the flow, order, number and attempt, so placing the same row again returns the call already
placed instead of ringing the customer twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog

from orchestrator.call.store import StoredCall
from orchestrator.call.transcript import Outcome, Transcript
from orchestrator.errors import ConfigError
from orchestrator.flow.model import Flow
from orchestrator.logging import mask_phone
from orchestrator.telephony.outbound import (
    NotAnswered,
    OutboundRequest,
    idempotency_key,
    outbound_callback_url,
)
from orchestrator.telephony.rest import SautikitClient, SautikitError

__all__ = ["Placement", "Redialer", "next_attempt", "not_answered_record", "place_notification"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    """A call Sautikit accepted: its ids, its first status, and the key that placed it."""

    request: OutboundRequest
    call_id: str
    session_id: str | None
    status: str
    idempotency_key: str


async def place_notification(
    rest: SautikitClient, *, flow: Flow, request: OutboundRequest, voice_url: str, secret: bytes
) -> Placement:
    """Ask Sautikit to call `request.to` about `request.order`; its webhook comes to `voice_url`."""
    if flow.outbound is None or flow.initial_outbound is None:
        raise ConfigError(f"flow {flow.name!r} has no `outbound:` section and `initial_outbound:` state")
    key = idempotency_key(request, flow=flow.name)
    created = await rest.create_call(
        from_=flow.outbound.caller_id,
        to=request.to,
        voice_callback_url=outbound_callback_url(voice_url, request, secret),
        client_request_id=key,
        idempotency_key=key,
    )
    return Placement(
        request=request,
        call_id=created.call_id,
        session_id=created.session_id,
        status=created.status,
        idempotency_key=key,
    )


def next_attempt(flow: Flow, request: OutboundRequest) -> tuple[OutboundRequest, float] | None:
    """The retry of a call not answered and how many seconds to wait for it; None when retries are spent."""
    if flow.outbound is None or request.attempt > flow.outbound.retries:
        return None
    return replace(request, attempt=request.attempt + 1), flow.outbound.retry_after


_OUTCOMES: dict[NotAnswered, Outcome] = {
    "no_answer": "no_answer",
    "busy": "busy",
    "failed": "failed",
    "canceled": "no_answer",
}


def not_answered_record(
    *,
    call_sid: str,
    flow: Flow,
    request: OutboundRequest,
    reason: NotAnswered,
    retry_in_s: float | None,
    now: datetime,
) -> StoredCall:
    """The call store's record of an attempt nobody answered, with what happens next."""
    transcript = Transcript(call_sid=call_sid)
    transcript.add(
        0,
        "call",
        f"{call_sid} to {mask_phone(request.to)} flow {flow.name} "
        f"(outbound: order {request.order}, attempt {request.attempt})",
    )
    transcript.add(0, "status", f"not answered: {reason}")
    if retry_in_s is None:
        transcript.add(0, "call", f"no retry left after attempt {request.attempt}")
    else:
        transcript.add(0, "call", f"attempt {request.attempt + 1} in {retry_in_s:g} s")
    transcript.outcome = _OUTCOMES[reason]
    transcript.add(0, "outcome", f"{transcript.outcome} (not answered)")
    return StoredCall(
        call_sid=call_sid,
        record_id=f"{call_sid}-not-answered",
        caller_masked=mask_phone(request.to),
        flow=flow.name,
        outcome=transcript.outcome,
        final_state=flow.initial_outbound or flow.initial,
        started_at=now.astimezone(UTC).isoformat(timespec="milliseconds"),
        duration_s=0.0,
        turns=0,
        barge_ins=0,
        escalation=None,
        platform_status=reason,
        transcript_text=transcript.render(),
        transcript_json=transcript.to_json(),
    )


class Redialer:
    """The service's side of outbound calls: write down an attempt nobody answered, place its retry later.

    Retries wait in the service's background tasks: a restart forgets the ones not yet placed (the record
    of the attempt says one was due).
    """

    def __init__(
        self,
        *,
        flow: Flow,
        rest: SautikitClient | None,
        secret: bytes,
        voice_url: Callable[[], str],
        keep: Callable[[StoredCall], None] | None,
        spawn: Callable[[Coroutine[object, object, None]], None],
        rest_timeout_s: float = 10.0,
    ) -> None:
        self._flow = flow
        self._rest = rest
        self._secret = secret
        self._voice_url = voice_url
        self._keep = keep
        self._spawn = spawn
        self._rest_timeout_s = rest_timeout_s

    def not_answered(self, *, call_sid: str, request: OutboundRequest, reason: NotAnswered) -> None:
        """Sautikit says nobody answered: record it, and retry if the flow allows another attempt."""
        retry = self._retry(request, reason=reason)
        if self._keep is not None:
            self._keep(
                not_answered_record(
                    call_sid=call_sid,
                    flow=self._flow,
                    request=request,
                    reason=reason,
                    retry_in_s=None if retry is None else retry[1],
                    now=datetime.now(UTC),
                )
            )

    def voicemail_hung_up(self, request: OutboundRequest) -> None:
        """A voicemail answered and the flow leaves no message: the call is tried again, like no answer."""
        self._retry(request, reason="voicemail")

    def _retry(self, request: OutboundRequest, *, reason: str) -> tuple[OutboundRequest, float] | None:
        retry = next_attempt(self._flow, request)
        log.info(
            "outbound_not_reached", reason=reason, attempt=request.attempt, retry=retry is not None
        )
        if retry is None:
            return None
        if self._rest is None:
            log.warning("outbound_retry_impossible", reason="no SAUTIKIT_API_KEY: the retry is not placed")
            return retry
        self._spawn(self._place_later(*retry))
        return retry

    async def _place_later(self, request: OutboundRequest, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        assert self._rest is not None
        try:
            async with asyncio.timeout(self._rest_timeout_s):
                placement = await place_notification(
                    self._rest,
                    flow=self._flow,
                    request=request,
                    voice_url=self._voice_url(),
                    secret=self._secret,
                )
        except (SautikitError, TimeoutError) as exc:
            reason = f"{exc.code or exc.status}" if isinstance(exc, SautikitError) else "timed out"
            log.warning("outbound_retry_failed", attempt=request.attempt, reason=reason)
            return
        log.info("outbound_retry_placed", attempt=request.attempt, call_id=placement.call_id)
