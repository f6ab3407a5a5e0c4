"""The offline brain and the keypad: speech that fails twice brings the keypad hint; typed digits are exact."""

import pytest

from orchestrator.brains.cascade import make_offline_brain_factory
from orchestrator.flow import load_flow
from orchestrator.simulator import SimulatorOptions
from orchestrator.speech.voices import caller_voice
from orchestrator.testing import run_scripted_call
from tests.flows import OFFLINE_SCRIPTS, TESTS

FLOW = load_flow(TESTS / "flows" / "keypad.yaml")


@pytest.mark.looptime
async def test_cascade_offers_the_keypad_after_two_misheard_turns_and_looks_up_the_typed_number():
    """Two turns not understood -> the keypad hint; "1042#" -> DX1042 looked up at once, no read-back."""
    record = await run_scripted_call(
        OFFLINE_SCRIPTS / "keypad_after_two_misheard.yaml",
        flow=FLOW,
        brain_factory=make_offline_brain_factory(FLOW),
        simulator=SimulatorOptions(voice=caller_voice("slt")),  # type: ignore[arg-type]
    )
    transcript = record.render()
    hint = transcript.index("You can also type your order number on your phone's keypad")
    typed = transcript.index("keypad    [caller pressed 1 0 4 2 #] -> order_number")
    looked_up = transcript.index('tool      lookup_order {"order_number": "DX1042"}')
    assert hint < typed < looked_up
    assert "is that right?" not in transcript  # typed digits are not read back
    assert "Order D X one zero four two is out for delivery" in transcript
    assert record.transcript.outcome == "resolved"
