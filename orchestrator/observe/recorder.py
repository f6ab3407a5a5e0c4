"""Two-track call recordings on the service side: the caller on the left, the agent on the right.

The caller's track is what the session heard, sample by sample from the stream's start. The agent's track places
each frame where it plays: the pacer hands frames to the socket a few frames early, back to back, so a frame goes
at the later of "now" and the end of the previous one. Both tracks grow in memory (about 64 KB a second of call
at 16 kHz) and are written once, as `<call_sid>.wav`, from a worker thread when the stream ends. The audio hooks
only append bytes: nothing on the call's hot path waits on the disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from orchestrator.audio.frames import SAMPLE_WIDTH
from orchestrator.audio.wav import interleave, write_wav
from orchestrator.call.observer import NullObserver
from orchestrator.telephony.call_id import is_call_id

__all__ = ["CallRecorder", "recording_path"]

log = structlog.get_logger(__name__)

# A recording stops growing past this (memory is bounded); the call itself goes on.
MAX_RECORDING_S = 30 * 60


def recording_path(directory: Path, call_sid: str) -> Path | None:
    """Where a call's recording lives; None for anything but a call id (which can never leave the folder)."""
    if not is_call_id(call_sid):
        return None
    return directory / f"{call_sid}.wav"


class CallRecorder(NullObserver):
    """Records one call's two tracks; `spawn` runs the write once the stream has ended."""

    def __init__(
        self,
        *,
        path: Path,
        rate: int,
        spawn: Callable[[Awaitable[None]], None],
    ) -> None:
        self._path = path
        self._rate = rate
        self._spawn = spawn
        self._limit = MAX_RECORDING_S * rate * SAMPLE_WIDTH
        self._caller = bytearray()
        self._agent = bytearray()
        self._t0: float | None = None

    def stream_started(self, *, at: float) -> None:
        self._t0 = at

    def caller_audio(self, pcm: bytes) -> None:
        if len(self._caller) < self._limit:
            self._caller += pcm

    def agent_audio(self, frame: bytes, *, at: float) -> None:
        if self._t0 is None:
            return
        position = round((at - self._t0) * self._rate) * SAMPLE_WIDTH
        if position > self._limit:
            return
        if position > len(self._agent):
            self._agent += bytes(position - len(self._agent))
        self._agent += frame

    def stream_ended(self, *, at: float) -> None:
        if self._t0 is None:
            return
        caller, agent = bytes(self._caller), bytes(self._agent)
        self._caller, self._agent = bytearray(), bytearray()
        self._spawn(self._write(caller, agent))

    async def _write(self, caller: bytes, agent: bytes) -> None:
        path, rate = self._path, self._rate

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".wav.partial")
            write_wav(partial, interleave(caller, agent), rate, channels=2)
            partial.replace(path)  # a reader never sees half a file

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            log.error("recording_not_saved", path=str(path), error=str(exc))
        else:
            log.info("recording_saved", path=str(path), seconds=len(caller) / (2 * rate))
