"""A brain that cannot start or dies mid-call never leaves the caller in silence."""

from collections.abc import AsyncIterator, Mapping

import pytest

from orchestrator.brains.base import (
    BrainEvent,
    CallInfo,
    Heard,
    JSONValue,
    Keypad,
    StateBrief,
    ToolCall,
)
from orchestrator.testing import run_scripted_call
from tests.flows import CARE_DESK, SCRIPTS


class _BrokenBrain:
    """A brain whose start() raises, as an adapter with a bad install might."""

    async def start(self, call: CallInfo) -> None:
        raise RuntimeError("model files missing")

    async def push_audio(self, pcm: bytes) -> None: ...

    async def enter_state(self, state: StateBrief) -> None: ...

    async def say(self, text: str, *, utterance_id: str) -> None: ...

    async def tool_result(self, call: ToolCall, result: Mapping[str, JSONValue]) -> None: ...

    async def interrupt(self, heard: Heard | None) -> None: ...

    async def keypad(self, keys: Keypad) -> None: ...

    async def events(self) -> AsyncIterator[BrainEvent]:
        return
        yield

    async def close(self) -> None: ...


@pytest.mark.looptime
async def test_brain_that_cannot_start_apologises_and_escalates_in_the_sessions_own_voice():
    """brain_failed routes to escalating; the hold line is spoken by the session, then the Dial."""
    record = await run_scripted_call(SCRIPTS / "asks_for_human.yaml", brain_factory=lambda start: _BrokenBrain())
    assert any("brain could not start" in line for line in record.transcript.of_kind("error"))
    assert "identifying -> escalating (brain_failed)" in record.transcript.of_kind("state")
    assert any("Please hold" in line for line in record.transcript.of_kind("agent"))
    assert record.platform.dialed == CARE_DESK
