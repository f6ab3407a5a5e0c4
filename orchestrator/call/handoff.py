"""The warm hand-off: what the person taking over a call is told before they speak to the caller.

A `HandoffBrief` is built from the live call when it escalates (the caller's masked number, the order and its
status, the caller's last words, why the agent gave up) and goes three ways: into the call record (the
transcript's JSON), as a short text the desk hears or reads (`whisper`), and as JSON POSTed to the flow's
`escalation.brief_url`, signed like Sautikit signs its webhooks when a secret is set. Delivery is bounded by
a timeout and never stops the hand-off: a desk whose webhook is down still gets the call.

Sautikit documents no whisper for `<Dial>` (no attribute, no `<Number>` URL played to the callee), so the
`whisper` text is not sent in the XML; decision 0017 says why and what the desk gets instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import httpx
import structlog

from orchestrator.flow.languages import language_name
from orchestrator.flow.templates import status_words
from orchestrator.logging import mask_phone
from orchestrator.telephony.signing import sign_webhook

__all__ = ["BRIEF_SIGNATURE_HEADER", "HandoffBrief", "build_brief", "deliver_brief"]

log = structlog.get_logger(__name__)

# The same `t=<unix>,v1=<hex>` scheme as Sautikit's own webhooks (telephony/signing.py), under our name.
BRIEF_SIGNATURE_HEADER = "X-Orchestrator-Signature"
# How many of the caller's last utterances the brief quotes.
_ASKED = 3

# Why a call escalated, in the words a person at the desk reads; keyed by the event that led there.
_REASONS: Mapping[str, str] = {
    "tool:transfer_to_human": "the caller asked for a person",
    "silence_timeout": "the caller went quiet",
    "lookup_failed": "the order system did not answer",
    "order_not_found": "the order could not be found",
    "brain_failed": "the voice agent failed",
    "shutdown": "the service was restarting",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class HandoffBrief:
    """The call's summary for the person taking over; phone numbers are masked."""

    call_sid: str
    caller: str  # masked, e.g. +2547*****888
    order_number: str | None
    order_status: str | None  # the orders API's status, e.g. dispatched
    status_text: str | None  # the same in words
    eta: str | None
    asked: tuple[str, ...]  # the caller's last words, oldest first
    reason: str  # why the call escalated, in words
    trigger: str  # the event that led to the escalation
    language: str
    escalated_at: str  # ISO 8601, UTC

    def whisper(self) -> str:
        """One short paragraph to hear or read before speaking to the caller."""
        parts = [f"Call from {self.caller}."]
        if self.order_number:
            status = f" is {self.status_text}" if self.status_text else ""
            eta = f", expected {self.eta}" if self.eta else ""
            parts.append(f"Order {self.order_number}{status}{eta}.")
        else:
            parts.append("No order found yet.")
        if self.asked:
            parts.append("The caller said: " + " / ".join(f'"{text}"' for text in self.asked))
        parts.append(f"Handed over because {self.reason}.")
        if not self.language.lower().startswith("en"):
            parts.append(f"The caller speaks {language_name(self.language)}.")
        return " ".join(parts)

    def as_json(self) -> dict[str, object]:
        return {
            "type": "handoff_brief",
            "call_sid": self.call_sid,
            "caller": self.caller,
            "order": {
                "order_number": self.order_number,
                "status": self.order_status,
                "status_text": self.status_text,
                "eta": self.eta,
            },
            "asked": list(self.asked),
            "reason": self.reason,
            "trigger": self.trigger,
            "language": self.language,
            "escalated_at": self.escalated_at,
            "whisper": self.whisper(),
        }


def build_brief(
    *,
    call_sid: str,
    caller: str | None,
    order: Mapping[str, object],
    caller_lines: Iterable[str],
    trigger: str,
    detail: str | None,
    language: str,
    escalated_at: str,
) -> HandoffBrief:
    """The brief from what the call knows; `detail` is the model's own reason (transfer_to_human's)."""
    reason = _REASONS.get(trigger, trigger.replace("_", " "))
    if detail and detail.strip().lower() != reason:
        reason = f"{reason} ({detail.strip()})"
    asked = tuple(line.strip().strip('"') for line in caller_lines)[-_ASKED:]
    status = _text(order.get("status"))
    return HandoffBrief(
        call_sid=call_sid,
        caller=mask_phone(caller) if caller else "an unknown number",
        order_number=_text(order.get("order_number")),
        order_status=status,
        # The desk reads English, whatever language the caller heard the status in.
        status_text=status_words(status) if status else None,
        eta=_text(order.get("eta")),
        asked=asked,
        reason=reason,
        trigger=trigger,
        language=language,
        escalated_at=escalated_at,
    )


async def deliver_brief(
    http: httpx.AsyncClient,
    url: str,
    brief: HandoffBrief,
    *,
    secret: bytes | None,
    timeout_s: float,
) -> str:
    """POST the brief; what happened, in a few words for the transcript. Never raises for the webhook."""
    body = json.dumps(brief.as_json(), ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if secret:
        headers[BRIEF_SIGNATURE_HEADER] = sign_webhook(secret, body, now=time.time())
    try:
        response = await http.post(url, content=body, headers=headers, timeout=timeout_s)
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        log.warning("handoff_brief_failed", status=exc.response.status_code)
        return f"brief webhook answered {exc.response.status_code}; handing over anyway"
    except httpx.HTTPError as exc:
        log.warning("handoff_brief_failed", error=type(exc).__name__)
        return f"brief webhook failed ({type(exc).__name__}); handing over anyway"
    return f"brief delivered (HTTP {response.status_code})" + (", signed" if secret else "")


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None
