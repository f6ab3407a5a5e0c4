"""Escalation to a person: the flow's strategies, tried in order until one works.

- `dial`: close the media stream and answer Sautikit's next request for the call with `<Dial>` (the documented
  path; a production integrator found it unreliable on staging, hence the chain). It fails when no request comes
  within `dial_request_timeout`; by then the stream is closed, so what follows can no longer speak.
- `supervise`: ask the REST API to bring a phone supervisor into the call (`mode: barge` by default); once it
  accepts, the agent is muted and the stream stays open for the person. Fails without an API key, on an API
  error, or when the request times out.
- `callback`: tell the caller a person will call back, record the request and POST it to `callback_url`.

Each failure is said to the caller (`failed_say`) while the stream is open, and noted in the transcript.
Before the first strategy that brings a person in (`dial`, `supervise`), the call's brief (call/handoff.py)
is POSTed to `brief_url` once; whatever that webhook does, the hand-off goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import httpx
import structlog

from orchestrator.call.handoff import HandoffBrief, deliver_brief
from orchestrator.call.observer import NULL_OBSERVER, CallObserver
from orchestrator.call.transcript import EntryKind
from orchestrator.flow.languages import LocalText
from orchestrator.flow.model import Escalation
from orchestrator.logging import mask_phone
from orchestrator.telephony.rest import SautikitClient, SautikitError
from orchestrator.telephony.xml import DialVerb

__all__ = ["CallbackRequest", "EscalationHost", "EscalationResult", "escalate"]

log = structlog.get_logger(__name__)

EscalationResult = Literal["dialled", "supervised", "callback", "failed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackRequest:
    """What the callback webhook receives (and the call record keeps)."""

    call_sid: str
    caller: str | None
    reason: str
    requested_at: str  # ISO 8601, UTC
    brief: Mapping[str, object] | None = None  # the hand-off brief, for whoever calls back

    def as_json(self) -> Mapping[str, object]:
        return {
            "type": "callback_request",
            "call_sid": self.call_sid,
            "caller": self.caller,
            "reason": self.reason,
            "requested_at": self.requested_at,
            "brief": self.brief,
        }


class EscalationHost(Protocol):
    """What a strategy needs from the live call (CallSession provides it)."""

    @property
    def call_sid(self) -> str: ...  # read-only, so a session's CallId fits

    caller: str | None

    async def speak(self, text: str) -> None:
        """Say this to the caller and return once it has been heard (or could not be)."""

    def render(self, template: LocalText) -> str:
        """A flow text in the call's language, filled from the call's context."""

    def note(self, kind: EntryKind, text: str) -> None: ...

    async def close_stream(self, reason: str) -> None: ...

    def offer_dial(self, dial: DialVerb) -> asyncio.Future[None]:
        """Answer Sautikit's next request with `dial`; the future resolves when that happens."""

    def mute_agent(self) -> None: ...

    @property
    def stream_open(self) -> bool: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class _Tools:
    rest: SautikitClient | None
    http: httpx.AsyncClient
    reason: str
    now_iso: Callable[[], str]
    callback_timeout_s: float
    brief: HandoffBrief | None


# Strategies after which a person is on the line with the caller: they get the brief first.
_PERSON_STRATEGIES = frozenset({"dial", "supervise"})


async def escalate(
    host: EscalationHost,
    settings: Escalation,
    *,
    rest: SautikitClient | None,
    http: httpx.AsyncClient,
    reason: str,
    now_iso: Callable[[], str],
    callback_timeout_s: float = 5.0,
    observer: CallObserver = NULL_OBSERVER,
    brief: HandoffBrief | None = None,
    brief_secret: bytes | None = None,
) -> EscalationResult:
    """Run the strategies in order; the first that works wins. Never raises for a failed strategy."""
    tools = _Tools(
        rest=rest,
        http=http,
        reason=reason,
        now_iso=now_iso,
        callback_timeout_s=callback_timeout_s,
        brief=brief,
    )
    runners: Mapping[
        str, Callable[[EscalationHost, Escalation, _Tools], Awaitable[EscalationResult | None]]
    ] = {
        "dial": _dial,
        "supervise": _supervise,
        "callback": _callback,
    }
    strategies = settings.strategies
    loop = asyncio.get_running_loop()
    brief_sent = False
    for index, name in enumerate(strategies):
        host.note("escalate", f"trying {name}")
        if name in _PERSON_STRATEGIES and brief is not None and not brief_sent:
            brief_sent = True
            if settings.brief_url:
                outcome = await deliver_brief(
                    http,
                    settings.brief_url,
                    brief,
                    secret=brief_secret,
                    timeout_s=settings.brief_timeout,
                )
                host.note("escalate", outcome)
        started = loop.time()
        result = await runners[name](host, settings, tools)
        observer.escalation_step(
            strategy=name, succeeded=result is not None, started=started, ended=loop.time()
        )
        if result is not None:
            return result
        if index + 1 < len(strategies) and host.stream_open:
            await host.speak(host.render(settings.failed_say))
    host.note("escalate", "every strategy failed")
    return "failed"


async def _dial(
    host: EscalationHost, settings: Escalation, tools: _Tools
) -> EscalationResult | None:
    dial = DialVerb(
        number=settings.number, caller_id=settings.caller_id, timeout=int(settings.timeout)
    )
    answered = host.offer_dial(dial)
    host.note(
        "escalate",
        f"dial {mask_phone(settings.number)}: closing the stream for Sautikit's next request",
    )
    await host.close_stream("escalating")
    try:
        async with asyncio.timeout(settings.dial_request_timeout):
            await asyncio.shield(answered)
    except TimeoutError:
        host.note(
            "escalate",
            f"dial failed: Sautikit asked for no instructions within {settings.dial_request_timeout:g} s",
        )
        answered.cancel()
        return None
    return "dialled"


async def _supervise(
    host: EscalationHost, settings: Escalation, tools: _Tools
) -> EscalationResult | None:
    if tools.rest is None:
        host.note("escalate", "supervise unavailable: no Sautikit API key configured")
        return None
    try:
        async with asyncio.timeout(settings.timeout):
            await tools.rest.supervise(host.call_sid, settings.supervise_mode, settings.number)
    except (SautikitError, TimeoutError) as exc:
        reason = f"{exc.code} ({exc.request_id})" if isinstance(exc, SautikitError) else "timed out"
        host.note("escalate", f"supervise failed: {reason}")
        log.warning("supervise_failed", reason=reason)
        return None
    host.note(
        "escalate",
        f"supervisor {mask_phone(settings.number)} joining ({settings.supervise_mode}); agent muted",
    )
    await host.speak(host.render(settings.supervise_say))
    host.mute_agent()
    return "supervised"


async def _callback(
    host: EscalationHost, settings: Escalation, tools: _Tools
) -> EscalationResult | None:
    request = CallbackRequest(
        call_sid=host.call_sid,
        caller=host.caller,
        reason=tools.reason,
        requested_at=tools.now_iso(),
        brief=None if tools.brief is None else tools.brief.as_json(),
    )
    caller = mask_phone(request.caller) if request.caller else "unknown"
    host.note("escalate", f"callback requested for {caller} ({request.reason})")
    if settings.callback_url:
        try:
            response = await tools.http.post(
                settings.callback_url,
                json=dict(request.as_json()),
                timeout=tools.callback_timeout_s,
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            host.note("escalate", f"callback webhook failed: {type(exc).__name__}")
            log.warning("callback_webhook_failed", error=str(exc))
            return None
        host.note("escalate", f"callback webhook answered {response.status_code}")
    if host.stream_open:
        await host.speak(host.render(settings.callback_say))
    return "callback"
