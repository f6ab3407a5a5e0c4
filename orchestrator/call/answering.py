"""Who answered an outbound call: a person, or a voicemail greeting (answering-machine detection).

A person answers with a word or two ("Hello?") and waits; a greeting talks on ("Hi, you've reached…") and
ends with a beep. So, from the callee's first sound: speech that stops before `greeting_ms` is a person,
silence for `quiet_answer_ms` is a person waiting for us, and speech that goes on for `greeting_ms`, or a beep,
is a voicemail. For a voicemail the greeting's end matters too (the message must start after the beep): a
moment of quiet after a beep, or a pause of `beep_wait_ms` after the greeting with no beep. Pure bookkeeping
on audio time; the session feeds it each frame's VAD state and the beep detector's verdict.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["AnsweringDetector", "AnsweringEvent"]

# "person": answered by someone; "voicemail": a greeting is playing; "greeting_over": leave the message now.
AnsweringEvent = Literal["person", "voicemail", "greeting_over"]

_BEEP_WAIT_MS = 1500
_AFTER_BEEP_MS = 200  # quiet after the beep before the message starts


class AnsweringDetector:
    """Step it with each frame's audio time; it returns each decision once."""

    __slots__ = (
        "_beep_wait_ms",
        "_beeped",
        "_greeting_ms",
        "_quiet_ms",
        "_speech_since",
        "_stopped_at",
        "greeting_over",
        "verdict",
    )

    def __init__(
        self, *, greeting_ms: int, quiet_answer_ms: int, beep_wait_ms: int = _BEEP_WAIT_MS
    ) -> None:
        self._greeting_ms = greeting_ms
        self._quiet_ms = quiet_answer_ms
        self._beep_wait_ms = beep_wait_ms
        self._speech_since: int | None = None
        self._stopped_at: int | None = None
        self._beeped = False
        self.verdict: Literal["person", "voicemail"] | None = None
        self.greeting_over = False

    def step(self, *, at_ms: int, speaking: bool, beep: bool = False) -> AnsweringEvent | None:
        """`speaking`: the callee's line is not quiet (speech, or a tone still sounding)."""
        if self.greeting_over or self.verdict == "person":
            return None
        if beep:  # the greeting's last sound: a voicemail for sure; the message starts once it is over
            first = self.verdict is None
            self.verdict = "voicemail"
            self._beeped = True
            self._stopped_at = None
            return "voicemail" if first else None
        if self.verdict is None:
            return self._first_words(at_ms, speaking)
        # A greeting is playing: wait for it to stop, then a moment for its beep.
        if speaking:
            self._stopped_at = None
            return None
        wait_ms = _AFTER_BEEP_MS if self._beeped else self._beep_wait_ms
        if self._stopped_at is None:
            self._stopped_at = at_ms
        elif at_ms - self._stopped_at >= wait_ms:
            self.greeting_over = True
            return "greeting_over"
        return None

    def _first_words(self, at_ms: int, speaking: bool) -> AnsweringEvent | None:
        if speaking:
            if self._speech_since is None:
                self._speech_since = at_ms
            elif at_ms - self._speech_since >= self._greeting_ms:
                self.verdict = "voicemail"
                return "voicemail"
            return None
        if self._speech_since is not None or at_ms >= self._quiet_ms:
            self.verdict = "person"
            return "person"
        return None
