"""Helpers for testing flows and call scripts, importable by users' own test suites.

    record = await run_scripted_call("fixtures/calls/returning_caller_by_phone.yaml")
    assert record.transcript.outcome == "resolved"
    assert record.render() == snapshot(extension_class=TranscriptSnapshotExtension)

`run_scripted_call` starts the real aiohttp application on a loopback port, places the call with the fake
Sautikit over real HTTP and WebSocket connections, and returns both sides' records. Run it on a fast-forwarded
loop clock (`@pytest.mark.looptime`) to make a minute-long call take milliseconds and its timings exact.
"""

from __future__ import annotations

from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.harness import PUBLIC_URL, CallRecord
from orchestrator.harness import place_call as run_scripted_call

__all__ = [
    "CallRecord",
    "PUBLIC_URL",
    "ScriptedBrain",
    "TranscriptSnapshotExtension",
    "run_scripted_call",
]


class TranscriptSnapshotExtension(SingleFileSnapshotExtension):
    """Snapshots as plain `.txt` files, so a changed prompt is a readable diff."""

    file_extension = "txt"
    _write_mode = WriteMode.TEXT
