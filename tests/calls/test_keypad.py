"""Keypad entries over the real stack: DTMF text frames on the media socket and the webhook's `Digits`."""

import pytest

from orchestrator.script import CallScript
from orchestrator.testing import run_scripted_call
from tests.flows import TESTS

KEYPAD_FLOW = TESTS / "flows" / "keypad.yaml"


def _script(*turns: dict[str, object], title: str = "keypad") -> CallScript:
    return CallScript.model_validate({"title": title, "turns": list(turns)})


PROMPT = {"agent": [{"say": "Please type your order number, then press the hash key."}]}
LOOKUP = {
    "agent": [
        {"tool": "lookup_order", "args": {"order_number": "DX1042"}},
        {"say": "Order {{ result.order.order_number }} is {{ result.order.status_text }}."},
        {"tool": "end_call"},
    ]
}


@pytest.mark.looptime
async def test_keypad_entry_on_the_media_socket_reaches_machine_and_brain() -> None:
    """Keys sent as DTMF text frames end at `#` and become one entry for the state's order number."""
    record = await run_scripted_call(
        _script(PROMPT, {"press": "1042#"}, LOOKUP), flow=KEYPAD_FLOW
    )
    transcript = record.render()
    entry = transcript.index("keypad    [caller pressed 1 0 4 2 #] -> order_number")
    assert entry < transcript.index('tool      lookup_order {"order_number": "DX1042"}')
    assert "caller presses 1042#" in "\n".join(record.platform.log)
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_keypad_entry_in_the_webhook_digits_field_is_the_same_entry() -> None:
    """`Digits` on a lifecycle re-POST of the voice webhook is handled like keys on the socket."""
    record = await run_scripted_call(
        _script(PROMPT, {"press": "1042#", "via": "webhook"}, LOOKUP), flow=KEYPAD_FLOW
    )
    assert "keypad    [caller pressed 1 0 4 2 #] -> order_number" in record.render()
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_keypad_entry_without_the_end_key_ends_after_the_digit_timeout() -> None:
    """Digits and then nothing: after `digit_timeout` the digits typed so far are the entry."""
    record = await run_scripted_call(
        _script(PROMPT, {"press": "1042"}, LOOKUP), flow=KEYPAD_FLOW
    )
    assert "keypad    [caller pressed 1 0 4 2] -> order_number" in record.render()


@pytest.mark.looptime
async def test_keypad_star_key_is_routed_by_the_machine_as_dtmf() -> None:
    """`*` answers `human`; the flow's `dtmf` route with `keypad.intent` guard takes the call to a person."""
    record = await run_scripted_call(_script(PROMPT, {"press": "*"}), flow=KEYPAD_FLOW)
    transcript = record.render()
    assert "keypad    [caller pressed *] -> human" in transcript
    assert "state     identifying -> escalating (dtmf)" in transcript
    assert '"Connecting you to a colleague."' in transcript
    assert record.transcript.outcome == "escalated"


@pytest.mark.looptime
async def test_keypad_key_press_over_the_agent_stops_its_audio() -> None:
    """A key pressed while the agent speaks is a barge-in: the agent is cut and killAudio is sent."""
    long_prompt = {
        "agent": [
            {
                "say": "Please type your order number on your phone's keypad. It is on the SMS we "
                "sent you when you placed the order, and it has four digits. Then press hash."
            }
        ]
    }
    record = await run_scripted_call(
        _script(long_prompt, {"press": "1042#", "barge_in_after_ms": 1500}, LOOKUP),
        flow=KEYPAD_FLOW,
    )
    transcript = record.render()
    assert "barge-in  the caller pressed a key; agent cut at" in transcript
    assert record.platform.kill_audio >= 1
    assert transcript.index("barge-in  the caller pressed a key") < transcript.index("keypad    ")
