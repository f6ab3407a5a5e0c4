"""What the service observes, wired into one aiohttp app: metrics and `GET /metrics`, traces, recordings.

`Observability.attach(app, ...)` is called once by `add_routes`; for each call, `observer(start, brain)` gives the
session one `CallObserver` that fans out to the per-call metrics, the call's trace (when OTLP is configured)
and its recorder (when a recordings directory is set).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import structlog
from aiohttp import web

from orchestrator.brains.base import Brain
from orchestrator.call.observer import CallObserver, CallObservers
from orchestrator.flow import Flow
from orchestrator.flow.model import BUILTIN_TOOLS
from orchestrator.observe.metrics import ServiceMetrics, metrics_response
from orchestrator.observe.recorder import CallRecorder, recording_path
from orchestrator.observe.tracing import ServiceTracing, tracing_configured
from orchestrator.telephony.webhook import CallStart

__all__ = ["OBSERVABILITY", "Observability", "brain_kind"]

log = structlog.get_logger(__name__)

# Recordings still being written when the app stops get this long to finish.
WRITE_GRACE_S = 10.0


def brain_kind(brain: Brain) -> str:
    """A short, bounded label for a brain: its class name without 'Brain' (scripted, geminilive, ...)."""
    name = type(brain).__name__
    return (name.removesuffix("Brain") or name).lower()


class Observability:
    """The app's metrics, tracing and recordings; makes each call's observer."""

    def __init__(
        self,
        *,
        flow: Flow,
        active_calls: Callable[[], int],
        sample_rate: int,
        recordings_dir: Path | None = None,
        metrics_token: str | None = None,
        tracing: ServiceTracing | None = None,
    ) -> None:
        self.flow = flow
        strategies = flow.escalation.strategies if flow.escalation is not None else ()
        self.metrics = ServiceMetrics(
            active_calls=active_calls,
            tools=flow.tools.keys(),
            # Tools that are not built-in act (`http:` or a code handler): their action series start at zero.
            action_tools=[name for name in flow.tools if name not in BUILTIN_TOOLS],
            strategies=strategies,
        )
        self.metrics_token = metrics_token
        self.metrics_path = "/metrics"
        self.tracing = tracing
        self.recordings_dir = recordings_dir
        self._sample_rate = sample_rate
        self._writes: set[asyncio.Task[None]] = set()

    @classmethod
    def attach(
        cls,
        app: web.Application,
        *,
        flow: Flow,
        active_calls: Callable[[], int],
        sample_rate: int,
        recordings_dir: Path | None,
        metrics_token: str | None,
        metrics_path: str = "/metrics",
    ) -> Observability:
        """Make the app's observability, add `GET /metrics`, and start/stop it with the app."""
        observability = cls(
            flow=flow,
            active_calls=active_calls,
            sample_rate=sample_rate,
            recordings_dir=recordings_dir,
            metrics_token=metrics_token,
            tracing=ServiceTracing() if tracing_configured() else None,
        )
        app[OBSERVABILITY] = observability
        observability.metrics_path = metrics_path
        app.router.add_get(metrics_path, _metrics)
        app.cleanup_ctx.append(observability._lifetime)
        return observability

    def observer(self, start: CallStart, brain: Brain, *, started: float) -> CallObserver:
        """One call's observer; `started` is the loop time the call's clock starts at."""
        kind = brain_kind(brain)
        observers: list[CallObserver] = [self.metrics.observer(brain=kind)]
        if self.tracing is not None:
            observers.append(
                self.tracing.observer(
                    call_sid=start.call_sid,
                    caller=start.caller,
                    flow=self.flow.name,
                    brain=kind,
                    started=started,
                )
            )
        if self.recordings_dir is not None:
            path = recording_path(self.recordings_dir, start.call_sid)
            if path is not None:
                observers.append(
                    CallRecorder(path=path, rate=self._sample_rate, spawn=self._spawn_write)
                )
        return observers[0] if len(observers) == 1 else CallObservers(observers)

    def metrics_app(self) -> web.Application:
        """An app answering only `GET /metrics` with these figures: one worker's own scrape target."""
        app = web.Application()
        app[OBSERVABILITY] = self
        app.router.add_get(self.metrics_path, _metrics)
        return app

    def store_write_failed(self) -> None:
        self.metrics.store_write_failures.inc()

    def _spawn_write(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _lifetime(self, app: web.Application) -> AsyncIterator[None]:
        lag = asyncio.get_running_loop().create_task(self.metrics.watch_loop_lag())
        try:
            yield
        finally:
            lag.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lag
            if self._writes:
                _done, pending = await asyncio.wait(self._writes, timeout=WRITE_GRACE_S)
                for task in pending:
                    log.warning("recording_write_abandoned")
                    task.cancel()
            if self.tracing is not None:
                await self.tracing.shutdown()


OBSERVABILITY = web.AppKey("observability", Observability)


async def _metrics(request: web.Request) -> web.Response:
    observability = request.app[OBSERVABILITY]
    return metrics_response(request, observability.metrics, observability.metrics_token)
