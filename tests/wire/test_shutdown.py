"""`orchestrator serve` as a real process, stopped by real signals while simulated calls are live.

Regression: SIGTERM with live calls took 122 s (aiohttp's shutdown timeout twice), dropped every socket
with 1006, said no goodbye, hung nobody up through REST, and lost every record ("call store is closed").
Now: /healthz says draining (503), each caller hears the flow's `shutdown` goodbye and is hung up through
REST, every record is written, and the process exits within its grace. A second signal exits at once and
still writes the records. A SIGKILL leaves the records `live`, and the next start marks them `interrupted`.

The scenarios are bench/durability.py's, with fewer calls; the bench prints the figures for 20. The flow
decides what a caller hears: the shipped goodbye, a transfer, nothing (unrouted), or the call goes on (ignored)
until the grace is spent.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from ruamel.yaml import YAML

from bench.durability import (
    FLOW,
    LONG_CALL,
    fake_rest,
    place_calls,
    rows,
    scenario_sigkill,
    scenario_sigterm,
    serve,
    wait_live,
)


async def test_shutdown_sigterm_says_goodbye_hangs_up_and_keeps_every_record(tmp_path):
    """Three live calls, one SIGTERM: exit 0 within the grace, three goodbyes, three REST hang-ups, no loss."""
    figures = await scenario_sigterm(tmp_path, calls=3)

    assert figures["exit_code"] == 0
    assert figures["exit_s"] < 20
    assert figures["healthz_after_sigterm"] == "draining"
    assert figures["records_lost"] == 0
    assert figures["callers_heard_goodbye"] == 3
    assert figures["rest_hangups"] == 3


async def test_shutdown_second_signal_exits_at_once_and_still_writes_the_records(tmp_path):
    """SIGTERM then SIGINT: no waiting for goodbyes, yet every call has a record that is not `live`."""
    async with fake_rest() as (state, rest_url), serve(tmp_path, rest_url, script=LONG_CALL) as service:
        tasks = place_calls(service, state, LONG_CALL, 3, "twice")
        await wait_live(service, 3)
        signalled = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        service.process.send_signal(signal.SIGINT)
        code = await service.process.wait()
        exit_s = time.monotonic() - signalled
        await asyncio.gather(*tasks, return_exceptions=True)

    records = await rows(service.db)
    assert code == 0
    assert exit_s < 8  # the grace is 20 s; the second signal does not wait for it
    assert len(records) == 3
    assert not any(outcome == "live" for _, outcome, _ in records)


async def test_shutdown_sigkill_leaves_live_records_that_the_next_start_marks_interrupted(tmp_path):
    """Killed outright, the calls are still on record (`live`); the restarted service marks them."""
    figures = await scenario_sigkill(tmp_path, calls=3)

    assert figures["records_after_kill"] == {"live": 3}
    assert figures["records_after_restart"] == {"interrupted": 3}
    assert figures["records_lost"] == 0


def _flow_with(tmp_path: Path, shutdown: str | None) -> Path:
    """The shipped flow with its global `shutdown` route sent to another state (None: removed), written
    beside the test's database."""
    yaml = YAML()
    data = yaml.load(FLOW.read_text(encoding="utf-8"))
    if shutdown is None:
        del data["on"]["shutdown"]
    else:
        data["on"]["shutdown"] = shutdown
    path = tmp_path / "flow.yaml"
    with path.open("w", encoding="utf-8") as out:
        yaml.dump(data, out)
    return path


def _env(flow: Path, grace_s: int = 20) -> dict[str, str]:
    return {"ORCHESTRATOR_FLOW": str(flow), "ORCHESTRATOR_SHUTDOWN_GRACE_S": str(grace_s)}


async def test_shutdown_routed_to_a_transfer_hands_each_caller_to_the_desk(tmp_path):
    """`shutdown: escalating`: no goodbye, each caller is put through to a person and recorded escalated."""
    flow = _flow_with(tmp_path, "escalating")

    figures = await scenario_sigterm(tmp_path, calls=2, extra_env=_env(flow))

    assert (figures["exit_code"], figures["calls_transferred"], figures["rest_hangups"]) == (0, 2, 0)
    assert figures["exit_s"] < 20
    assert figures["outcomes"] == {"escalated": 2}
    assert figures["callers_heard_goodbye"] == 0


async def test_shutdown_a_flow_that_does_not_route_it_hangs_up_without_a_goodbye(tmp_path):
    """No `shutdown` route anywhere: each call is hung up through REST at once, and still recorded."""
    flow = _flow_with(tmp_path, None)

    figures = await scenario_sigterm(tmp_path, calls=2, extra_env=_env(flow))

    assert (figures["exit_code"], figures["rest_hangups"], figures["records"]) == (0, 2, 2)
    assert figures["exit_s"] < 20
    assert "live" not in figures["outcomes"]
    assert figures["callers_heard_goodbye"] == 0


async def test_shutdown_calls_still_going_when_the_grace_is_spent_are_cut_and_still_recorded(tmp_path):
    """A flow that routes `shutdown` back to `identifying` keeps its calls talking: they are cut when the
    grace (8 s, less the few seconds kept for writing records) is spent, and still recorded (`interrupted`,
    or `abandoned` when the cut socket is noticed first), never left `live`."""
    flow = _flow_with(tmp_path, "identifying")

    figures = await scenario_sigterm(tmp_path, calls=2, extra_env=_env(flow, grace_s=8))

    assert figures["exit_code"] == 0
    assert 4 < figures["exit_s"] < 12  # about the grace: not the calls' own length (a minute) nor aiohttp's 60 s
    assert figures["records"] == 2
    assert "live" not in figures["outcomes"]
