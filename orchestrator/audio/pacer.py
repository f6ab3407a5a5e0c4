"""Outbound audio at real-time pace, so that a barge-in can silence the agent within one frame.

A brain produces speech faster than real time. Dumping it all on the socket would fill the
platform's playback buffer with seconds of audio that `killAudio` may or may not clear. Instead one
writer task sends fixed-size frames, staying at most `lead_frames` ahead of the far end's playout
(the platform prebuffers about that much anyway), and `flush()` drops everything not yet sent.

Time is the event loop's clock (`loop.time()`), never the wall clock, so a simulated call on a
fast-forwarded loop is paced exactly like a live one. Timers use `loop.call_at`, as aiohttp's
heartbeat does, rather than sleeping tasks.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from orchestrator.audio.frames import FrameSplitter, bytes_to_ms, ms_to_bytes

__all__ = ["PacedWriter", "PlayedSegment"]

# Timers may fire a hair early (asyncio rounds to the clock's resolution, and loop time is a float
# sum); sending up to this much early is inaudible and avoids re-sleeping for a rounding error.
_EARLY_OK_S = 0.0005


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayedSegment:
    """What the caller actually heard of one utterance."""

    utterance_id: str
    played_ms: int
    total_ms: int


class _Utterance:
    """Mutable bookkeeping for one utterance while it is queued, sent or playing out."""

    __slots__ = (
        "audio_bytes",
        "done_timer",
        "ended",
        "frames",
        "id",
        "play_start",
        "sent_frames",
        "splitter",
    )

    def __init__(self, utterance_id: str, frame_bytes: int) -> None:
        self.id = utterance_id
        self.splitter = FrameSplitter(frame_bytes)
        self.frames: deque[bytes] = deque()
        self.audio_bytes = 0  # real audio enqueued, excluding end padding
        self.ended = False
        self.sent_frames = 0
        self.play_start: float | None = None  # loop time its first frame starts playing far-end
        self.done_timer: asyncio.TimerHandle | None = None


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class PacedWriter:
    """The single writer of a call's outbound audio, paced to real time.

    Usage::

        writer = PacedWriter(ws.send_bytes, rate=16000, on_utterance_done=heard.append)
        task = task_group.create_task(writer.run())
        writer.enqueue(pcm, utterance_id="u1")   # as the brain streams audio
        writer.end_utterance("u1")
        ...
        heard = writer.flush()                    # barge-in: nothing more goes out

    Audio for an utterance may arrive in chunks of any length; it is cut into `frame_ms` frames
    and the last partial frame is padded with silence by `end_utterance`. Enqueueing audio under a
    new id ends the previous utterance. After `end_utterance`, an utterance is reported to
    `on_utterance_done` once its last frame has played out at the far end; utterances cut by
    `flush()` are reported by flush's return value instead. The callback must not raise.

    With `batch_frames` above 1, a frame due now takes along the frames of the same utterance due within
    the next `batch_frames - 1` frame times, in one `send`: fewer wake-ups and socket writes per call, for
    a lead that swings up to `lead_frames + batch_frames - 1` frames (audio `killAudio` drops anyway). The
    lead's floor, the far end's margin against a late wake-up, stays where it was.

    If `send` raises a `ConnectionError` (the socket closed), `run()` drops whatever is queued and
    returns normally: a closed socket ends the writer, it is not an error of the writer. Any later
    `enqueue` is ignored. Other exceptions from `send`, and cancellation, propagate out of `run()`
    after the same clean-up: the writer lives and dies with its socket.
    """

    __slots__ = (
        "_anchor",
        "_anchor_frames",
        "_batch",
        "_closed",
        "_frame_bytes",
        "_frame_ms",
        "_frame_s",
        "_frames_sent",
        "_idle",
        "_lead",
        "_loop",
        "_on_done",
        "_paused",
        "_playing",
        "_queue",
        "_rate",
        "_running",
        "_send",
        "_waiter",
    )

    def __init__(
        self,
        send: Callable[[bytes], Awaitable[None]],
        *,
        rate: int = 16000,
        frame_ms: int = 20,
        lead_frames: int = 3,
        batch_frames: int = 1,
        on_utterance_done: Callable[[PlayedSegment], None] | None = None,
    ) -> None:
        if frame_ms <= 0 or ms_to_bytes(frame_ms, rate) == 0:
            raise ValueError(f"frame_ms={frame_ms} at rate={rate} gives an empty frame")
        if lead_frames < 1:
            raise ValueError(f"lead_frames must be at least 1, got {lead_frames}")
        if batch_frames < 1:
            raise ValueError(f"batch_frames must be at least 1, got {batch_frames}")
        self._send = send
        self._rate = rate
        self._frame_ms = frame_ms
        self._frame_s = frame_ms / 1000
        self._frame_bytes = ms_to_bytes(frame_ms, rate)
        self._lead = lead_frames
        self._batch = batch_frames
        self._on_done = on_utterance_done
        self._queue: deque[_Utterance] = deque()  # not fully sent yet, oldest first
        self._playing: deque[_Utterance] = deque()  # fully sent, still playing out far-end
        # Far-end playout is modelled as a run of back-to-back frames that began at `_anchor`;
        # counting frames instead of adding floats keeps a long call free of drift.
        self._anchor = 0.0
        self._anchor_frames = 0
        self._frames_sent = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._closed = False
        self._paused = False

    # -- state -------------------------------------------------------------------------------

    @property
    def speaking(self) -> bool:
        """Audio is queued or still playing out at the far end."""
        return bool(self._queue or self._playing)

    @property
    def current_utterance(self) -> str | None:
        """The utterance the caller is hearing now (or about to hear)."""
        current = self._current()
        return current.id if current else None

    @property
    def frames_sent(self) -> int:
        """Frames handed to `send` since the writer was created."""
        return self._frames_sent

    def played_ms(self) -> int:
        """Milliseconds of the current utterance the caller has heard so far."""
        current = self._current()
        return self._heard_ms(current, self._now()) if current else 0

    async def wait_idle(self) -> None:
        """Return once nothing is queued or playing (at once if the writer has closed)."""
        await self._idle.wait()

    # -- producer side -----------------------------------------------------------------------

    def enqueue(self, pcm: bytes, *, utterance_id: str) -> None:
        """Queue audio for `utterance_id`; a different id than the last one ends that utterance."""
        if self._closed:
            return
        tail = self._queue[-1] if self._queue else None
        if tail is None or tail.id != utterance_id or tail.ended:
            if tail is not None and not tail.ended:
                self._end(tail)
            tail = _Utterance(utterance_id, self._frame_bytes)
            self._queue.append(tail)
            self._idle.clear()
        tail.audio_bytes += len(pcm)
        tail.frames.extend(tail.splitter.feed(pcm))
        self._wake()

    def end_utterance(self, utterance_id: str) -> None:
        """No more audio for `utterance_id`: pad its last frame with silence and let it finish."""
        for utterance in self._queue:
            if utterance.id == utterance_id and not utterance.ended:
                self._end(utterance)
                self._wake()
                return

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Hold: send nothing more until `resume()` or `flush()`; queued audio is kept.

        The caller may only be saying "mhmm": pausing (with `killAudio` for the platform's buffer) silences
        the agent at once without losing its place. What the platform had buffered (at most the lead) is
        not replayed on resume.
        """
        self._paused = True

    def resume(self) -> None:
        """Carry on sending after a `pause()`."""
        if self._paused:
            self._paused = False
            self._wake()

    def flush(self) -> list[PlayedSegment]:
        """Barge-in: drop all queued audio now and report what was heard of each cut utterance.

        Runs synchronously, so no frame goes out after it returns. Heard is the lesser of what was
        sent and the time since the utterance started playing; the platform's own prebuffer is
        cleared separately (`killAudio`).
        """
        if not self.speaking:
            return []
        now = self._now()
        cut = [*self._playing, *self._queue]
        heard = [
            PlayedSegment(
                utterance_id=u.id,
                played_ms=self._heard_ms(u, now),
                total_ms=bytes_to_ms(u.audio_bytes, self._rate),
            )
            for u in cut
        ]
        for utterance in cut:
            if utterance.done_timer is not None:
                utterance.done_timer.cancel()
        self._playing.clear()
        self._queue.clear()
        self._anchor, self._anchor_frames = now, 0  # far-end buffer is being killed too
        self._paused = False
        self._idle.set()
        self._wake()
        return heard

    # -- the writer task ---------------------------------------------------------------------

    async def run(self) -> None:
        """Send queued frames at real-time pace until cancelled or the socket closes."""
        if self._running:
            raise RuntimeError("PacedWriter.run() is already running: one writer per socket")
        self._running = True
        loop = self._loop = asyncio.get_running_loop()
        try:
            while True:
                head = None if self._paused else self._next_sendable()
                if head is None:
                    await self._sleep(None)
                    continue
                now = loop.time()
                if now > self._horizon():  # underrun: the far end went quiet; restart the run
                    self._anchor, self._anchor_frames = now, 0
                if self._due() - now > _EARLY_OK_S:
                    await self._sleep(self._due())
                    continue  # a flush or new audio may have changed everything meanwhile
                if head.play_start is None:
                    head.play_start = self._horizon()
                frame = self._take(head)
                if self._batch > 1:
                    # Frames due within the batch's reach ride along: one write instead of several.
                    reach = now + (self._batch - 1) * self._frame_s + _EARLY_OK_S
                    limit = self._lead + self._batch
                    frames = [frame]
                    while head.frames and len(frames) < limit and self._due() <= reach:
                        frames.append(self._take(head))
                    if len(frames) > 1:
                        frame = b"".join(frames)
                if head.ended and not head.frames:
                    self._queue.popleft()
                    self._retire(head, loop)
                await self._send(frame)
        except ConnectionError:
            self._close()
        except BaseException:
            self._close()
            raise
        finally:
            self._running = False

    # -- internals ---------------------------------------------------------------------------

    def _now(self) -> float:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop.time()

    def _due(self) -> float:
        """Loop time the next frame may leave: when the far end is `lead_frames` from running dry."""
        return self._anchor + (self._anchor_frames - self._lead + 1) * self._frame_s

    def _take(self, head: _Utterance) -> bytes:
        head.sent_frames += 1
        self._anchor_frames += 1
        self._frames_sent += 1
        return head.frames.popleft()

    def _horizon(self) -> float:
        """Loop time at which the far end finishes playing everything sent so far."""
        return self._anchor + self._anchor_frames * self._frame_s

    def _current(self) -> _Utterance | None:
        if self._playing:
            return self._playing[0]
        return self._queue[0] if self._queue else None

    def _heard_ms(self, utterance: _Utterance, now: float) -> int:
        if utterance.play_start is None or now <= utterance.play_start:
            return 0
        elapsed_ms = round((now - utterance.play_start) * 1000)
        sent_ms = utterance.sent_frames * self._frame_ms
        total_ms = bytes_to_ms(utterance.audio_bytes, self._rate)
        return min(sent_ms, elapsed_ms, total_ms)

    def _next_sendable(self) -> _Utterance | None:
        """The head utterance if it has a frame ready; retires ended, empty ones on the way."""
        while self._queue:
            head = self._queue[0]
            if head.frames:
                return head
            if not head.ended:
                return None  # waiting for more of this utterance's audio
            self._queue.popleft()  # ended with nothing left to send
            if head.play_start is None:
                head.play_start = max(self._horizon(), self._now())
            self._retire(head, asyncio.get_running_loop())
        return None

    def _end(self, utterance: _Utterance) -> None:
        rest = utterance.splitter.flush()
        if rest:
            utterance.frames.append(rest + bytes(self._frame_bytes - len(rest)))
        utterance.ended = True

    def _retire(self, utterance: _Utterance, loop: asyncio.AbstractEventLoop) -> None:
        """Fully sent: report it once the far end has played its last frame."""
        self._playing.append(utterance)
        utterance.done_timer = loop.call_at(self._horizon(), self._finish, utterance)

    def _finish(self, utterance: _Utterance) -> None:
        utterance.done_timer = None
        if utterance in self._playing:
            self._playing.remove(utterance)
        if not self.speaking:
            self._idle.set()
        if self._on_done is not None:
            total_ms = bytes_to_ms(utterance.audio_bytes, self._rate)
            self._on_done(
                PlayedSegment(utterance_id=utterance.id, played_ms=total_ms, total_ms=total_ms)
            )

    async def _sleep(self, deadline: float | None) -> None:
        """Wait until `deadline` (loop time), or indefinitely, or until `_wake()`."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        timer = loop.call_at(deadline, _resolve, waiter) if deadline is not None else None
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter)

    def _close(self) -> None:
        self.flush()
        self._closed = True
        self._idle.set()
