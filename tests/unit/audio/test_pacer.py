"""PacedWriter on a fast-forwarded loop clock: pace, lead, flush on barge-in, completion reports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import numpy as np
import pytest

from orchestrator.audio import PacedWriter, PlayedSegment, ms_to_bytes

FRAME = ms_to_bytes(20, 16000)


def _speech(ms: int) -> bytes:
    """Non-silent audio, so padding (zeros) can be told apart from it."""
    return np.full(ms * 16, 1000, dtype="<i2").tobytes()


class _Line:
    """The far side of the socket: records each frame with the loop time it was sent."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, bytes]] = []

    async def send(self, frame: bytes) -> None:
        self.frames.append((asyncio.get_running_loop().time(), frame))

    @property
    def times(self) -> list[float]:
        return [t for t, _ in self.frames]


@contextlib.asynccontextmanager
async def _running(writer: PacedWriter) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(writer.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.looptime
async def test_pacer_sends_20ms_frames_at_real_time_pace() -> None:
    """200 ms of audio goes out as ten 640-byte frames: three at once, then one every 20 ms."""
    line = _Line()
    writer = PacedWriter(line.send, rate=16000, frame_ms=20, lead_frames=3)
    async with _running(writer):
        writer.enqueue(_speech(200), utterance_id="u1")
        writer.end_utterance("u1")
        await writer.wait_idle()
        idle_at = asyncio.get_running_loop().time()
    assert [len(f) for _, f in line.frames] == [FRAME] * 10
    assert line.times == pytest.approx([0, 0, 0, 0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.14])
    assert idle_at == pytest.approx(0.2)
    assert writer.frames_sent == 10


@pytest.mark.looptime
@pytest.mark.parametrize("lead", [1, 3, 5])
async def test_pacer_never_runs_more_than_lead_frames_ahead(lead: int) -> None:
    """At every send, audio sent but not yet played at the far end is at most lead_frames long."""
    line = _Line()
    writer = PacedWriter(line.send, lead_frames=lead)
    async with _running(writer):
        writer.enqueue(_speech(1000), utterance_id="u1")
        writer.end_utterance("u1")
        await writer.wait_idle()
    ahead = [(i + 1) * 0.02 - t for i, (t, _) in enumerate(line.frames)]
    assert max(ahead) == pytest.approx(lead * 0.02)
    assert len(line.frames) == 50


@pytest.mark.looptime
async def test_pacer_pads_the_last_partial_frame_with_silence() -> None:
    """A 30 ms utterance becomes two frames, the second half audio and half zeros."""
    line = _Line()
    writer = PacedWriter(line.send)
    async with _running(writer):
        writer.enqueue(_speech(30), utterance_id="u1")
        writer.end_utterance("u1")
        await writer.wait_idle()
    assert [f for _, f in line.frames] == [_speech(20), _speech(10) + bytes(FRAME // 2)]


@pytest.mark.looptime
async def test_pacer_flush_stops_output_at_once_and_reports_heard_ms() -> None:
    """A barge-in at 510 ms sends nothing more and reports 510 ms heard of a 1000 ms utterance."""
    line = _Line()
    done: list[PlayedSegment] = []
    writer = PacedWriter(line.send, on_utterance_done=done.append)
    async with _running(writer):
        writer.enqueue(_speech(1000), utterance_id="u1")
        writer.end_utterance("u1")
        await asyncio.sleep(0.51)
        heard = writer.flush()
        sent_at_flush = writer.frames_sent
        await asyncio.sleep(2)
    assert heard == [PlayedSegment(utterance_id="u1", played_ms=510, total_ms=1000)]
    assert sent_at_flush == 28  # three lead frames at 0 ms, then one per 20 ms up to 500 ms
    assert len(line.frames) == 28
    assert not writer.speaking
    assert done == []


@pytest.mark.looptime
async def test_pacer_flush_reports_only_what_was_sent_when_the_producer_is_slow() -> None:
    """Heard is capped by what was sent: 100 ms trickled in is at most 100 ms heard."""
    line = _Line()
    writer = PacedWriter(line.send)
    async with _running(writer):
        writer.enqueue(_speech(100), utterance_id="u1")  # the brain has not ended it yet
        await asyncio.sleep(0.3)
        assert writer.speaking
        heard = writer.flush()
    assert heard == [PlayedSegment(utterance_id="u1", played_ms=100, total_ms=100)]


@pytest.mark.looptime
async def test_pacer_flush_reports_queued_utterances_as_unheard() -> None:
    """An utterance queued behind the one playing is cut with 0 ms heard."""
    line = _Line()
    writer = PacedWriter(line.send)
    async with _running(writer):
        writer.enqueue(_speech(400), utterance_id="u1")
        writer.enqueue(_speech(400), utterance_id="u2")
        writer.end_utterance("u2")
        await asyncio.sleep(0.1)
        heard = writer.flush()
    assert heard == [
        PlayedSegment(utterance_id="u1", played_ms=100, total_ms=400),
        PlayedSegment(utterance_id="u2", played_ms=0, total_ms=400),
    ]


@pytest.mark.looptime
async def test_pacer_starts_new_audio_right_after_a_flush() -> None:
    """Audio enqueued after a barge-in goes out immediately, not after the cut audio's schedule."""
    line = _Line()
    writer = PacedWriter(line.send)
    async with _running(writer):
        writer.enqueue(_speech(1000), utterance_id="u1")
        await asyncio.sleep(0.205)
        writer.flush()
        writer.enqueue(_speech(100), utterance_id="u2")
        writer.end_utterance("u2")
        await writer.wait_idle()
        idle_at = asyncio.get_running_loop().time()
    after = [t for t in line.times if t > 0.2]
    assert after[:3] == pytest.approx([0.205] * 3)
    assert idle_at == pytest.approx(0.305)


@pytest.mark.looptime
async def test_pacer_reports_each_utterance_when_it_has_played_out() -> None:
    """on_utterance_done fires at the far end's playout time of each utterance's last frame."""
    line = _Line()
    done: list[tuple[float, PlayedSegment]] = []
    loop = asyncio.get_running_loop()
    writer = PacedWriter(line.send, on_utterance_done=lambda seg: done.append((loop.time(), seg)))
    async with _running(writer):
        writer.enqueue(_speech(100), utterance_id="u1")
        writer.enqueue(_speech(50), utterance_id="u2")  # a new id ends u1
        writer.end_utterance("u2")
        await writer.wait_idle()
    assert [seg for _, seg in done] == [
        PlayedSegment(utterance_id="u1", played_ms=100, total_ms=100),
        PlayedSegment(utterance_id="u2", played_ms=50, total_ms=50),
    ]
    assert [t for t, _ in done] == pytest.approx([0.1, 0.16])
    assert line.times == pytest.approx([0, 0, 0, 0.02, 0.04, 0.06, 0.08, 0.10])


@pytest.mark.looptime
async def test_pacer_tracks_the_current_utterance_and_its_played_ms() -> None:
    """Mid-playout the writer names the utterance being heard and how much of it was heard."""
    line = _Line()
    writer = PacedWriter(line.send)
    assert writer.current_utterance is None
    async with _running(writer):
        writer.enqueue(_speech(300), utterance_id="u1")
        writer.end_utterance("u1")
        await asyncio.sleep(0.13)
        assert writer.speaking
        assert writer.current_utterance == "u1"
        assert writer.played_ms() == 130
        await writer.wait_idle()
    assert writer.current_utterance is None
    assert not writer.speaking


@pytest.mark.looptime
async def test_pacer_restarts_the_clock_after_an_idle_gap() -> None:
    """Audio arriving after silence is sent from now, with a fresh lead, not to catch up."""
    line = _Line()
    writer = PacedWriter(line.send)
    async with _running(writer):
        await asyncio.sleep(5)
        writer.enqueue(_speech(80), utterance_id="u1")
        writer.end_utterance("u1")
        await writer.wait_idle()
    assert line.times == pytest.approx([5, 5, 5, 5.02])


@pytest.mark.looptime
async def test_pacer_run_returns_when_the_socket_closes() -> None:
    """A ConnectionResetError from send ends run() normally and leaves the writer idle."""
    sent: list[bytes] = []

    async def send(frame: bytes) -> None:
        if len(sent) == 5:
            raise ConnectionResetError("socket closed")
        sent.append(frame)

    writer = PacedWriter(send)
    writer.enqueue(_speech(1000), utterance_id="u1")
    await writer.run()
    writer.enqueue(_speech(100), utterance_id="u2")
    await writer.wait_idle()
    assert len(sent) == 5
    assert not writer.speaking


@pytest.mark.looptime
async def test_pacer_run_propagates_other_send_errors() -> None:
    """An unexpected error from send is not swallowed: run() raises it after dropping the queue."""

    async def send(frame: bytes) -> None:
        raise RuntimeError("encoder broke")

    writer = PacedWriter(send)
    writer.enqueue(_speech(100), utterance_id="u1")
    with pytest.raises(RuntimeError, match="encoder broke"):
        await writer.run()
    assert not writer.speaking


@pytest.mark.looptime
async def test_pacer_refuses_a_second_writer_task() -> None:
    """One writer per socket: a concurrent run() is a programming error."""
    writer = PacedWriter(_Line().send)
    async with _running(writer):
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="one writer"):
            await writer.run()


@pytest.mark.looptime
async def test_pacer_waits_for_backpressure_from_send() -> None:
    """A send that takes 50 ms per frame slows output down rather than queueing up frames."""
    line = _Line()

    async def slow_send(frame: bytes) -> None:
        await line.send(frame)
        await asyncio.sleep(0.05)

    writer = PacedWriter(slow_send)
    async with _running(writer):
        writer.enqueue(_speech(100), utterance_id="u1")
        writer.end_utterance("u1")
        await writer.wait_idle()
    assert line.times == pytest.approx([0, 0.05, 0.10, 0.15, 0.20])


@pytest.mark.looptime
async def test_pacer_pause_holds_frames_and_resume_carries_on():
    """pause() sends nothing more but keeps the queue; resume() sends the rest of the same utterance."""
    import asyncio

    sent: list[bytes] = []

    async def send(frame: bytes) -> None:
        sent.append(frame)

    writer = PacedWriter(send, rate=16000, lead_frames=1)
    task = asyncio.get_running_loop().create_task(writer.run())
    writer.enqueue(b"\x01\x00" * 16000, utterance_id="u1")  # one second
    writer.end_utterance("u1")
    await asyncio.sleep(0.2)
    writer.pause()
    paused_at = len(sent)
    await asyncio.sleep(0.5)
    assert len(sent) == paused_at
    assert writer.speaking
    assert writer.paused
    writer.resume()
    await writer.wait_idle()
    assert len(sent) == 50  # every frame of the second went out, none lost to the pause
    task.cancel()


@pytest.mark.looptime
async def test_pacer_batches_frames_due_within_the_batch_into_one_send() -> None:
    """With batch_frames=2, 200 ms of audio goes out in five writes: the lead and its next frame at once,
    then two frames every 40 ms."""
    line = _Line()
    writer = PacedWriter(line.send, rate=16000, frame_ms=20, lead_frames=3, batch_frames=2)
    async with _running(writer):
        writer.enqueue(_speech(200), utterance_id="u1")
        writer.end_utterance("u1")
        await writer.wait_idle()
        idle_at = asyncio.get_running_loop().time()
    assert [len(f) // FRAME for _, f in line.frames] == [4, 2, 2, 2]
    assert line.times == pytest.approx([0, 0.04, 0.08, 0.12])
    assert b"".join(f for _, f in line.frames) == _speech(200)
    assert idle_at == pytest.approx(0.2)
    assert writer.frames_sent == 10


@pytest.mark.looptime
async def test_pacer_batching_keeps_the_lead_floor_and_caps_its_ceiling() -> None:
    """Batched, the far end is never closer than lead-1 frames to running dry, nor more than lead+batch-1 ahead."""
    line = _Line()
    writer = PacedWriter(line.send, lead_frames=3, batch_frames=2)
    async with _running(writer):
        writer.enqueue(_speech(1000), utterance_id="u1")
        writer.end_utterance("u1")
        await writer.wait_idle()
    sent_ms = 0.0
    ahead = []
    for t, frame in line.frames:
        before = sent_ms / 1000 - t  # audio queued at the far end just before this write
        sent_ms += len(frame) / 32
        ahead.append((before, sent_ms / 1000 - t))
    assert min(before for before, _ in ahead[1:]) == pytest.approx(0.04)
    assert max(after for _, after in ahead) == pytest.approx(0.08)
    assert sum(len(f) for _, f in line.frames) == 50 * FRAME


@pytest.mark.looptime
async def test_pacer_batched_flush_still_stops_output_at_once() -> None:
    """A barge-in while batching sends nothing more and counts only frames written."""
    line = _Line()
    writer = PacedWriter(line.send, batch_frames=2)
    async with _running(writer):
        writer.enqueue(_speech(1000), utterance_id="u1")
        writer.end_utterance("u1")
        await asyncio.sleep(0.51)
        heard = writer.flush()
        written = sum(len(f) for _, f in line.frames) // FRAME
        await asyncio.sleep(2)
    assert heard[0].played_ms == 510
    assert sum(len(f) for _, f in line.frames) // FRAME == written == writer.frames_sent
