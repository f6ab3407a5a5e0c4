"""Every scripted call in tests/calls/scripts/ runs through the real stack and matches its reviewed transcript."""

from pathlib import Path

import pytest

from orchestrator.testing import TranscriptSnapshotExtension, run_scripted_call
from tests.flows import SCRIPTS

CALLS = sorted(SCRIPTS.glob("*.yaml"))


@pytest.fixture
def transcript_snapshot(snapshot):
    return snapshot.use_extension(TranscriptSnapshotExtension)


@pytest.mark.looptime
@pytest.mark.parametrize("script", CALLS, ids=[p.stem for p in CALLS])
async def test_scripted_call_transcript(script: Path, transcript_snapshot):
    """The call's transcript (service and platform views) is exactly the reviewed snapshot."""
    record = await run_scripted_call(script)
    assert record.render() == transcript_snapshot
