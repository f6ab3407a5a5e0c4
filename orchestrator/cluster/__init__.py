"""Live calls shared between workers: which worker holds a call, and how the others reach it.

`LiveCalls` is the plug point (`live.py`); `LocalLiveCalls` is the embedded default — one process, nobody
else to tell (`local.py`) — and `RedisLiveCalls` lets several workers (processes or hosts) share calls on
one Redis (`redis_calls.py`, `ORCHESTRATOR_REDIS_URL`). Neither knows of sessions or aiohttp: the app turns
what arrives here into calls to its own sessions.
"""

from orchestrator.cluster.live import (
    CallMessage,
    Delivery,
    LiveCalls,
    MessageKind,
    SharedCall,
    new_worker_id,
)
from orchestrator.cluster.local import LocalLiveCalls

__all__ = [
    "CallMessage",
    "Delivery",
    "LiveCalls",
    "LocalLiveCalls",
    "MessageKind",
    "SharedCall",
    "new_worker_id",
]
