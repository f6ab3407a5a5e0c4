"""The service's garbage-collector policy: freeze what start-up built, report long pauses.

A full collection walks every tracked object while the event loop waits, and every live call's audio
waits with it (the paced writer leads by only 60 ms). What start-up builds — modules, the flow, the
app, the brains' shared clients — lives as long as the process, so `freeze_startup_heap` moves it
out of the collector's sight (`gc.freeze`): later full collections walk only what calls allocate.
`GcPauseWatch` times every collection through `gc.callbacks` and logs those that stalled the loop,
so the policy is judged on measured pauses (bench/load.py counts them), not guessed.

`orchestrator serve` applies both (`gc_policy`); an embedding application may do the same.
"""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog

__all__ = ["GcPauseWatch", "freeze_startup_heap", "gc_policy"]

log = structlog.get_logger(__name__)


def freeze_startup_heap() -> int:
    """Collect once, then exempt every survivor from future collections; returns how many."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def gc_policy(*, freeze: bool) -> Callable[[object], AsyncIterator[None]]:
    """An aiohttp `cleanup_ctx` entry: once the app's start-up has run, freeze the heap (if
    `freeze`) and time collections; stop timing them at shut-down.

    Append it after the app's own contexts: they run in order, so the freeze sees what they built.
    """

    async def context(_app: object) -> AsyncIterator[None]:
        if freeze:
            log.info("gc_frozen", objects=freeze_startup_heap())
        # After the freeze: its own collection is start-up's, not a call's.
        watch = GcPauseWatch().install()
        try:
            yield
        finally:
            watch.uninstall()

    return context


class GcPauseWatch:
    """Times each collection; logs a `gc_pause` warning for any at or above `log_over_ms`."""

    __slots__ = ("_began", "_began_cpu", "collections", "log_over_ms", "longest_ms")

    def __init__(self, *, log_over_ms: float = 20.0) -> None:
        self.log_over_ms = log_over_ms
        self.collections = [0, 0, 0]  # per generation, since installed
        self.longest_ms = [0.0, 0.0, 0.0]
        self._began = 0.0
        self._began_cpu = 0.0

    def install(self) -> GcPauseWatch:
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)
        return self

    def uninstall(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            self._began_cpu = time.thread_time()
            return
        generation = int(info.get("generation", 0))
        pause_ms = (time.perf_counter() - self._began) * 1000
        self.collections[generation] += 1
        self.longest_ms[generation] = max(self.longest_ms[generation], pause_ms)
        if pause_ms >= self.log_over_ms:
            log.warning(
                "gc_pause",
                pause_ms=round(pause_ms, 1),
                # The collector's own work; the rest of the pause was the machine doing other work.
                cpu_ms=round((time.thread_time() - self._began_cpu) * 1000, 1),
                generation=generation,
                collected=info.get("collected"),
            )
