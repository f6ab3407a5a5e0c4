"""Whose live calls are whose, when several hosts write one call store without Redis.

Every record names its owner: this host (`ORCHESTRATOR_HOST_ID`, else the machine's hostname), with the
worker's slot under `serve --workers N` ("db-2/1"). A service starting again marks only its own
leftovers `interrupted` (CallRecords.start); another host's live calls are left alone. A host that never
comes back is found by its silence: each service beats in the store (`calls_hosts`) every
`heartbeat_s`, and each beat also marks the live calls of any owner silent for longer than `silent_after_s`.

    owner = owner_id(settings.host_id, os.environ.get(WORKER_INDEX_VARIABLE))
    beat = HostHeartbeat(store, owner, heartbeat_s=10, silent_after_s=60)
    await beat.start()   # the first beat now: silent hosts' calls are marked at start too
    ...
    await beat.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import structlog

from orchestrator.call.store import CallStore, CallStoreError

__all__ = ["HostHeartbeat", "owner_id"]

log = structlog.get_logger(__name__)


def owner_id(host_id: str | None = None, slot: str | None = None) -> str:
    """This host's name for its records: `host_id`, else the hostname; "/slot" for a supervised worker.

    A hostname that changes with every start (a container's) still works: the old name falls silent and
    its calls are marked after the silence; a stable `host_id` has them marked at the restart itself."""
    host = (host_id or "").strip() or socket.gethostname()
    return f"{host}/{slot}" if slot else host


class HostHeartbeat:
    """Beats for `owner` in the store and marks the calls of owners gone silent. See the module docstring."""

    def __init__(
        self, store: CallStore, owner: str, *, heartbeat_s: float, silent_after_s: float
    ) -> None:
        self.store = store
        self.owner = owner
        self._heartbeat_s = heartbeat_s
        self._silent_after_s = silent_after_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Beat once now (so hosts gone while nobody ran are swept at once), then every `heartbeat_s`."""
        await self.beat()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def beat(self) -> int:
        """One beat; how many calls of silent owners it marked. A store that refuses is logged, not raised:
        the calls go on, and the next beat tries again."""
        try:
            marked = await self.store.heartbeat(self.owner, self._silent_after_s)
        except CallStoreError as exc:
            log.error("host_heartbeat_failed", owner=self.owner, error=str(exc))
            return 0
        if marked:
            log.warning("silent_hosts_calls_marked", records=marked, silent_after_s=self._silent_after_s)
        return marked

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            await self.beat()
