"""Barge-in decisions for one call: when the caller's voice pauses the agent, cuts it off, or lets it go on.

Two steps. Speech over the agent (the barge-in detector's `speech_started`, i.e. `min_speech_ms` of voice) in
an interruptible state pauses the paced writer at once — no agent frame leaves after that line — and the session
sends `killAudio` for what the platform buffered. `barge_in_confirm_ms` after the speech began, the decision is
final: still talking means an interruption (the reply is flushed and the brain told what was heard); quiet again
means a backchannel or a cough, and the agent resumes where it paused.

The deadline is on audio time, the detector's own clock: the decision is taken at the frame that reaches it,
with what the detector knew at that frame. A wall-clock timer got this wrong under load: when inbound audio
arrives in bursts, a whole utterance (and its end) can be read before a timer fires, and a real interruption
was taken for a backchannel. Only if the caller's audio stops arriving altogether does the session decide on
wall time (`confirm`).

This module decides and keeps the record; the session carries out what it returns (messages, `killAudio`,
telling the brain), so the rules read in one place and are tested without a socket.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from orchestrator.audio.pacer import PacedWriter, PlayedSegment
from orchestrator.audio.vad import VadEvent

__all__ = ["BargeIn", "BargeInRecord", "Interruption", "Onset"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BargeInRecord:
    """One time the caller spoke over the agent: what was decided and how fast."""

    onset_ms: int  # stream position where the caller's speech began
    decided_at: float  # loop time of the VAD decision (the agent paused, killAudio sent)
    frames_after_decision: int  # agent frames that still left after the decision (0 is the goal)
    silent_after_s: float  # from the decision to the last agent frame written (0 when none followed it)
    outcome: Literal["interrupted", "backchannel", "ignored"]
    heard_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Onset:
    """The agent was just paused: kill the platform's buffer; the decision falls at audio `confirm_at_ms`."""

    generation: int
    confirm_at_ms: int
    confirm_after_s: float  # the same deadline as a delay from now, if audio flowed in real time


@dataclass(frozen=True, slots=True, kw_only=True)
class Interruption:
    """The caller cut the agent off: these utterances were dropped; `heard` is what the caller heard."""

    onset_ms: int
    cut: tuple[PlayedSegment, ...]
    heard: PlayedSegment | None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Pending:
    onset: VadEvent
    decided_at: float
    frames_then: int
    generation: int
    paused_utterance: str | None
    heard_at_pause: int
    confirm_at_ms: int


class BargeIn:
    """The barge-in state of one call, fed by the barge-in detector, frame by frame, on audio time."""

    def __init__(self, *, min_speech_ms: int, confirm_ms: int) -> None:
        self._confirm_ms = confirm_ms
        self._confirm_after_s = max(0, confirm_ms - min_speech_ms) / 1000
        self._pending: _Pending | None = None
        self._speaking = False
        self._stopped_at_ms = 0
        self._generation = 0
        self.records: list[BargeInRecord] = []

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def waiting(self, generation: int) -> bool:
        """Whether the barge-in of `generation` is still undecided."""
        return self._pending is not None and self._pending.generation == generation

    @property
    def confirm_at_ms(self) -> int | None:
        """The audio position at which the pending barge-in is decided (None when none is pending)."""
        return self._pending.confirm_at_ms if self._pending is not None else None

    def on_vad(
        self,
        event: VadEvent,
        *,
        pacer: PacedWriter,
        interruptible: bool,
        now: float,
        frames_out: int,
        position_ms: int | None = None,
    ) -> Onset | Literal["ignored"] | None:
        """A decision of the barge-in detector, taken at audio `position_ms` (where the detector became sure).
        Pauses the agent (synchronously) when it is an onset."""
        self._speaking = event.kind == "speech_started"
        if event.kind == "speech_stopped":
            self._stopped_at_ms = event.at_ms
            return None
        if not pacer.speaking or self._pending is not None:
            return None
        if not interruptible:
            self.records.append(
                BargeInRecord(
                    onset_ms=event.at_ms,
                    decided_at=now,
                    frames_after_decision=0,
                    silent_after_s=0.0,
                    outcome="ignored",
                )
            )
            return "ignored"
        pacer.pause()  # no further agent frame leaves after this line
        self._generation += 1
        # The deadline counts from the decision, as the detector's confirmation window (min_speech_ms plus its
        # hangover) takes the first part of barge_in_confirm_ms.
        confirm_at_ms = (
            event.at_ms + self._confirm_ms
            if position_ms is None
            else position_ms + round(self._confirm_after_s * 1000)
        )
        # What the caller has heard stops growing here: the platform's buffer is being killed.
        self._pending = _Pending(
            onset=event, decided_at=now, frames_then=frames_out, generation=self._generation,
            paused_utterance=pacer.current_utterance, heard_at_pause=pacer.played_ms(),
            confirm_at_ms=confirm_at_ms,
        )
        return Onset(
            generation=self._generation,
            confirm_at_ms=confirm_at_ms,
            confirm_after_s=self._confirm_after_s,
        )

    def at_audio(
        self, position_ms: int, *, pacer: PacedWriter, frames_out: int, last_frame_at: float
    ) -> Interruption | int | None:
        """The detector has heard audio up to `position_ms`: decide if that reaches the deadline (see
        `confirm`); None while nothing is pending or the deadline is still ahead."""
        pending = self._pending
        if pending is None or position_ms < pending.confirm_at_ms:
            return None
        return self.confirm(
            pending.generation, pacer=pacer, frames_out=frames_out, last_frame_at=last_frame_at
        )

    def confirm(
        self, generation: int, *, pacer: PacedWriter, frames_out: int, last_frame_at: float
    ) -> Interruption | int | None:
        """Decide now: an Interruption if the caller still talks, else resume and return the backchannel's
        length in ms (None when `generation` is not the pending barge-in's)."""
        pending = self._pending
        if pending is None or pending.generation != generation:
            return None
        if self._speaking:
            return self.interrupt(pacer=pacer, frames_out=frames_out, last_frame_at=last_frame_at)
        self._pending = None
        pacer.resume()
        self._record(pending, "backchannel", frames_out, last_frame_at)
        return self._stopped_at_ms - pending.onset.at_ms

    def interrupt(
        self, *, pacer: PacedWriter, frames_out: int, last_frame_at: float
    ) -> Interruption | None:
        """Cut the agent off now (at the deadline, or when the model itself heard the caller)."""
        pending = self._pending
        if pending is None:
            return None
        self._pending = None
        cut = tuple(
            replace(segment, played_ms=min(segment.played_ms, pending.heard_at_pause))
            if segment.utterance_id == pending.paused_utterance
            else segment
            for segment in pacer.flush()
        )
        heard = next((s for s in cut if s.played_ms > 0), cut[0] if cut else None)
        self._record(
            pending,
            "interrupted",
            frames_out,
            last_frame_at,
            heard_ms=heard.played_ms if heard else None,
        )
        return Interruption(onset_ms=pending.onset.at_ms, cut=cut, heard=heard)

    def _record(
        self,
        pending: _Pending,
        outcome: Literal["interrupted", "backchannel"],
        frames_out: int,
        last_frame_at: float,
        *,
        heard_ms: int | None = None,
    ) -> None:
        self.records.append(
            BargeInRecord(
                onset_ms=pending.onset.at_ms,
                decided_at=pending.decided_at,
                frames_after_decision=frames_out - pending.frames_then,
                silent_after_s=max(0.0, last_frame_at - pending.decided_at),
                outcome=outcome,
                heard_ms=heard_ms,
            )
        )
