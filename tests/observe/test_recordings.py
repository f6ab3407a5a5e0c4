"""Two-track recordings on the service side: what the caller said on the left, what the agent said on the right.

Whole calls through the real service and the fake Sautikit on a fast-forwarded clock, with
ORCHESTRATOR_RECORDINGS_DIR set; the file is read back with the stdlib's wave module.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.harness import serve_line
from orchestrator.observe.recorder import recording_path
from orchestrator.script import load_script
from orchestrator.settings import Settings
from tests.flows import SCRIPTS

CALLS = SCRIPTS  # the engine tests' pinned call scripts


def _tracks(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 2
        assert wav.getsampwidth() == 2
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    return samples[:, 0], samples[:, 1], rate


def _loud_seconds(track: np.ndarray, rate: int) -> list[int]:
    """The whole seconds of the track that carry sound."""
    seconds = len(track) // rate
    return [s for s in range(seconds) if np.abs(track[s * rate : (s + 1) * rate]).max() > 500]


@pytest.mark.looptime
async def test_recordings_keep_caller_left_and_agent_right_on_one_timeline(tmp_path):
    """The WAV is stereo at the call's rate, as long as the stream, with each voice on its own side."""
    script = load_script(CALLS / "order_number_read_out.yaml")
    settings = Settings(fallback_voice="synthetic", recordings_dir=tmp_path)
    async with serve_line(settings=settings, brain_factory=lambda start: ScriptedBrain(script)) as line:
        record = await line.call(script, call_sid="HD_record01")
    # Leaving serve_line waited for the recording's write to finish.
    path = tmp_path / "HD_record01.wav"
    caller, agent, rate = _tracks(path)
    assert rate == settings.sample_rate
    stream = next(e for e in record.transcript.entries if e.text == "connected")
    last = record.transcript.entries[-1]
    assert abs(len(caller) / rate - (last.at_ms - stream.at_ms) / 1000) < 2.0
    caller_loud, agent_loud = _loud_seconds(caller, rate), _loud_seconds(agent, rate)
    assert caller_loud, "the caller spoke"
    assert agent_loud, "the agent spoke"
    # They take turns: most seconds with the caller talking have the agent quiet.
    overlap = set(caller_loud) & set(agent_loud)
    assert len(overlap) < len(caller_loud) / 2


def test_recordings_never_leave_the_directory_for_a_hostile_call_id(tmp_path):
    """A call id that is not a plain file name gets no recording rather than a path outside the directory."""
    assert recording_path(tmp_path, "HD_ok-12") == tmp_path / "HD_ok-12.wav"
    assert recording_path(tmp_path, "../etc/passwd") is None
    assert recording_path(tmp_path, "a/b") is None
    assert recording_path(tmp_path, "") is None
    assert recording_path(tmp_path, "x..y") is None
