"""`orchestrator serve --workers N`: N worker processes sharing one port, kept running, restarted in turn.

Each worker is a whole `orchestrator serve` listening with SO_REUSEPORT, so the kernel spreads new
connections over them; the workers share live calls through Redis (orchestrator/cluster/), so a call's
requests may reach any of them. The supervisor holds no calls and serves nothing:

- it starts the workers and waits for each to say it is serving (a line on an inherited pipe);
- a worker that exits on its own is started again (after 1 s, longer if it keeps dying young);
- SIGTERM or SIGINT is passed to every worker, which drains as a single `serve` does; the supervisor
  exits once they all have (0 if every worker exited 0). A second signal is passed on too;
- SIGHUP restarts the workers one at a time: a new worker starts and is serving before the old one is
  told to drain, so the port never lacks a listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

__all__ = [
    "READY_FD_VARIABLE",
    "WORKER_INDEX_VARIABLE",
    "Supervisor",
    "announce_ready",
    "leave_with_the_supervisor",
    "worker_command",
]

log = structlog.get_logger(__name__)

# Set in each worker's environment: the pipe to write "ready" to, and the worker's slot (0..N-1).
READY_FD_VARIABLE = "ORCHESTRATOR_SUPERVISED_READY_FD"
WORKER_INDEX_VARIABLE = "ORCHESTRATOR_SUPERVISED_WORKER"
RESTART_DELAY_S = 1.0
RESTART_DELAY_MAX_S = 30.0
# A worker that exits sooner than this after starting is dying young: its restarts back off.
YOUNG_S = 10.0


async def leave_with_the_supervisor(_app: object, interval_s: float = 1.0) -> AsyncIterator[None]:
    """A worker's cleanup context: drain (SIGTERM to itself) if its supervisor is gone (SIGKILL, OOM),
    rather than serve on with nobody to restart or stop it."""
    parent = os.getppid()

    async def watch() -> None:
        while os.getppid() == parent:  # noqa: ASYNC110 - no event says a parent died: poll it
            await asyncio.sleep(interval_s)
        log.error("supervisor_gone", parent=parent)
        os.kill(os.getpid(), signal.SIGTERM)

    task = asyncio.get_running_loop().create_task(watch())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def announce_ready() -> None:
    """In a worker: tell the supervisor this worker is serving (nothing when not supervised)."""
    fd = os.environ.pop(READY_FD_VARIABLE, None)
    if fd is None:
        return
    with contextlib.suppress(OSError, ValueError):
        os.write(int(fd), b"ready\n")
        os.close(int(fd))


@dataclass(slots=True)
class _Worker:
    slot: int
    process: asyncio.subprocess.Process
    started: float
    retiring: bool = False  # told to drain by a rolling restart: its exit is not a crash


@dataclass(slots=True)
class _State:
    workers: dict[int, _Worker] = field(default_factory=dict)
    stopping: bool = False
    codes: list[int] = field(default_factory=list)


class Supervisor:
    """Runs `command` as `workers` processes until told to stop; see the module docstring."""

    def __init__(
        self,
        *,
        workers: int,
        command: Sequence[str],
        env: Mapping[str, str],
        slot_env: Callable[[int], Mapping[str, str]] = lambda slot: {},
        ready_timeout_s: float = 120.0,
        drain_timeout_s: float = 60.0,
    ) -> None:
        if workers < 1:
            raise ValueError("at least one worker")
        self._count = workers
        self._command = list(command)
        self._env = dict(env)
        self._slot_env = slot_env
        self._ready_timeout_s = ready_timeout_s
        self._drain_timeout_s = drain_timeout_s
        self._state = _State()
        self._exits: asyncio.Queue[_Worker] = asyncio.Queue()
        self._signals: asyncio.Queue[signal.Signals] = asyncio.Queue()
        self._delays: dict[int, float] = {}
        self._restarts: set[asyncio.Task[None]] = set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        for signum in handled:
            loop.add_signal_handler(signum, self._signals.put_nowait, signum)
        try:
            for slot in range(self._count):
                if await self._start(slot) is None:
                    self._state.stopping = True
                    self._forward(signal.SIGTERM)
                    break
            else:
                log.warning("workers_started", workers=self._count, pids=self.pids())
            await self._supervise()
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)
            for worker in self._state.workers.values():
                if worker.process.returncode is None:
                    worker.process.kill()
        return 0 if all(code == 0 for code in self._state.codes) else 1

    def pids(self) -> list[int]:
        return [w.process.pid for w in sorted(self._state.workers.values(), key=lambda w: w.slot)]

    async def _supervise(self) -> None:
        rolling: asyncio.Task[None] | None = None
        while self._state.workers or self._restarts:
            exited = asyncio.ensure_future(self._exits.get())
            signalled = asyncio.ensure_future(self._signals.get())
            await asyncio.wait({exited, signalled}, return_when=asyncio.FIRST_COMPLETED)
            for waiter in (exited, signalled):
                if not waiter.done():
                    waiter.cancel()
            if signalled.done() and not signalled.cancelled():
                signum = signalled.result()
                if signum == signal.SIGHUP:
                    if self._state.stopping or (rolling is not None and not rolling.done()):
                        log.warning("restart_ignored", reason="stopping or restarting already")
                    else:
                        rolling = asyncio.get_running_loop().create_task(self._roll())
                else:
                    log.warning(
                        "workers_stopping", signal=signum.name, workers=len(self._state.workers)
                    )
                    self._state.stopping = True
                    self._stop_restarts()
                    self._forward(signum)
                    # A worker stuck past its own grace must not keep the whole service up.
                    asyncio.get_running_loop().call_later(
                        self._drain_timeout_s, self._kill_stragglers
                    )
            if exited.done() and not exited.cancelled():
                await self._exited(exited.result())
        if rolling is not None:
            rolling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rolling

    def _kill_stragglers(self) -> None:
        stragglers = [w for w in self._state.workers.values() if w.process.returncode is None]
        for worker in stragglers:
            log.error(
                "worker_killed",
                slot=worker.slot,
                pid=worker.process.pid,
                reason=f"still draining {self._drain_timeout_s:g} s after the signal",
            )
        self._forward(signal.SIGKILL)

    def _stop_restarts(self) -> None:
        for task in self._restarts:
            task.cancel()

    async def _exited(self, worker: _Worker) -> None:
        code = worker.process.returncode if worker.process.returncode is not None else -1
        if self._state.workers.get(worker.slot) is worker:
            del self._state.workers[worker.slot]
        if self._state.stopping:
            self._state.codes.append(code)
            log.warning("worker_stopped", slot=worker.slot, pid=worker.process.pid, code=code)
            return
        if worker.retiring:
            return
        young = time.monotonic() - worker.started < YOUNG_S
        delay = min(
            self._delays.get(worker.slot, RESTART_DELAY_S) * (2 if young else 1),
            RESTART_DELAY_MAX_S,
        )
        self._delays[worker.slot] = delay if young else RESTART_DELAY_S
        log.error(
            "worker_died", slot=worker.slot, pid=worker.process.pid, code=code, restart_in_s=delay
        )
        task = asyncio.get_running_loop().create_task(self._restart(worker.slot, delay))
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _restart(self, slot: int, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self._state.stopping:
            await self._start(
                slot
            )  # one that does not come up is reported exited: tried again later

    async def _roll(self) -> None:
        """Replace each worker in turn: the new one serving before the old one drains."""
        log.warning("rolling_restart", workers=len(self._state.workers))
        for slot in sorted(self._state.workers):
            if self._state.stopping:
                return
            old = self._state.workers[slot]
            old.retiring = True
            fresh = await self._start(slot)
            if fresh is None:
                old.retiring = False
                self._state.workers[slot] = old
                log.error(
                    "rolling_restart_stopped", slot=slot, reason="the new worker did not start"
                )
                return
            old.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._drain_timeout_s):
                    await old.process.wait()
            if old.process.returncode is None:
                old.process.kill()
                await old.process.wait()
            log.warning("worker_replaced", slot=slot, old=old.process.pid, new=fresh.process.pid)
        log.warning("rolling_restart_done", pids=self.pids())

    async def _start(self, slot: int) -> _Worker | None:
        """Start the worker for `slot` and wait until it serves; None if it never does."""
        read_fd, write_fd = os.pipe()
        env = {
            **self._env,
            **self._slot_env(slot),
            READY_FD_VARIABLE: str(write_fd),
            WORKER_INDEX_VARIABLE: str(slot),
        }
        try:
            process = await asyncio.create_subprocess_exec(
                *self._command, env=env, pass_fds=(write_fd,), stdin=asyncio.subprocess.DEVNULL
            )
        finally:
            os.close(write_fd)
        worker = _Worker(slot=slot, process=process, started=time.monotonic())
        self._state.workers[slot] = worker
        ready = await self._wait_ready(read_fd, process)
        asyncio.get_running_loop().create_task(self._watch(worker))
        if not ready:
            log.error("worker_not_ready", slot=slot, pid=process.pid)
            if process.returncode is None:
                process.kill()
            return None
        log.info("worker_ready", slot=slot, pid=process.pid)
        return worker

    async def _wait_ready(self, read_fd: int, process: asyncio.subprocess.Process) -> bool:
        def read_line() -> bytes:
            with os.fdopen(read_fd, "rb") as pipe:
                return pipe.readline()  # "" once the worker exits without a word

        try:
            async with asyncio.timeout(self._ready_timeout_s):
                line = await asyncio.to_thread(read_line)
        except TimeoutError:
            return False
        return line.strip() == b"ready" and process.returncode is None

    async def _watch(self, worker: _Worker) -> None:
        await worker.process.wait()
        self._exits.put_nowait(worker)

    def _forward(self, signum: signal.Signals) -> None:
        for worker in self._state.workers.values():
            if worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signum)


def worker_command() -> list[str]:
    """How a worker is started: this Python, the `orchestrator` command line, `serve` as given."""
    return [sys.executable, "-m", "orchestrator.cli"]
