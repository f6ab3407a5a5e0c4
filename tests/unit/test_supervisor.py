"""The `serve --workers` supervisor with stand-in workers: real child processes, real signals.

A worker that ignores SIGTERM (stuck in a drain) must not keep the service up forever: the supervisor
kills it once the drain timeout has passed, and says so in its exit code.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from orchestrator.supervisor import READY_FD_VARIABLE, Supervisor

STUCK_WORKER = f"""
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a drain that never ends
os.write(int(os.environ["{READY_FD_VARIABLE}"]), b"ready\\n")
time.sleep(120)
"""


async def test_supervisor_kills_a_worker_still_draining_after_the_timeout():
    supervisor = Supervisor(
        workers=1,
        command=[sys.executable, "-c", STUCK_WORKER],
        env=dict(os.environ),
        ready_timeout_s=30,
        drain_timeout_s=0.5,
    )
    running = asyncio.create_task(supervisor.run())
    async with asyncio.timeout(30):
        while not supervisor.pids():  # noqa: ASYNC110 - the supervisor's own view
            await asyncio.sleep(0.05)
        [pid] = supervisor.pids()
        await asyncio.sleep(0.2)  # its signal handlers are in place once a worker runs
        os.kill(os.getpid(), signal.SIGTERM)  # caught by the supervisor's handler, as `serve` is
        code = await running

    assert code == 1  # a worker had to be killed: not a clean stop
    assert supervisor.pids() == []
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError(f"worker {pid} still alive")
