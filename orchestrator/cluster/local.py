"""`LocalLiveCalls`: one process holds every call, so there is nobody else to tell (the embedded default).

Only the pending `<Dial>` answers are kept, so the app answers a re-POST the same way whichever
implementation it has.
"""

from __future__ import annotations

from orchestrator.cluster.live import (
    CallMessage,
    Delivery,
    MessageHandler,
    OrphanHandler,
    SharedCall,
    new_worker_id,
)
from orchestrator.orders import LookupResult
from orchestrator.telephony.call_id import CallId
from orchestrator.telephony.xml import DialVerb

__all__ = ["LocalLiveCalls"]

_UNKNOWN = Delivery(outcome="unknown")


class LocalLiveCalls:
    """Live calls of one process: its own sessions are all there is."""

    def __init__(self) -> None:
        self.worker_id = new_worker_id()
        self._dials: dict[CallId, DialVerb] = {}

    async def answered(self, call: SharedCall) -> None:
        return None

    async def orders_prefetched(self, call_sid: CallId, result: LookupResult) -> None:
        return None

    async def find(self, call_sid: CallId) -> SharedCall | None:
        return None

    async def claim(self, call_sid: CallId) -> bool:
        return True  # the session itself refuses a second socket

    async def finished(self, call_sid: CallId) -> None:
        self._dials.pop(call_sid, None)

    async def escalating(self, call_sid: CallId) -> None:
        return None

    async def offer_dial(self, call_sid: CallId, dial: DialVerb, *, ttl_s: float) -> None:
        self._dials[call_sid] = dial

    async def take_dial(self, call_sid: CallId) -> DialVerb | None:
        return self._dials.pop(call_sid, None)

    async def send(self, message: CallMessage) -> Delivery:
        return _UNKNOWN

    async def start(self, on_message: MessageHandler, on_orphaned: OrphanHandler) -> None:
        return None

    async def close(self) -> None:
        self._dials.clear()
