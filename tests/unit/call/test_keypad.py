"""The keypad collector groups key presses into entries the way the current state's `listen:` says."""

from orchestrator.brains.base import Keypad
from orchestrator.call.keypad import KeypadCollector, KeypadPlan, keypad_plan
from orchestrator.flow.model import StateSpec


def test_keypad_plan_reads_the_collecting_answer_and_single_keys() -> None:
    """`keypad: true` names the collected answer with its end key and timeout; `key:` maps one key."""
    spec = StateSpec.model_validate(
        {
            "listen": {
                "order_number": {"keypad": True, "end": "#", "digit_timeout": 3, "max_digits": 6},
                "human": {"key": "*"},
            },
            "on": {"hangup": "ended"},
        }
    )
    plan = keypad_plan(spec)
    assert plan == KeypadPlan(
        collect="order_number", end="#", max_digits=6, digit_timeout_s=3, keys={"*": "human"}
    )


def test_keypad_collector_ends_an_entry_at_the_end_key() -> None:
    """Digits accumulate until the end key, which is not part of the digits."""
    collector = KeypadCollector(KeypadPlan(collect="order_number"))
    assert [collector.press(k) for k in "1042"] == [None] * 4
    assert collector.collecting
    assert collector.press("#") == Keypad(digits="1042", intent="order_number", end="#")
    assert not collector.collecting


def test_keypad_collector_single_key_answers_only_as_the_first_key() -> None:
    """A mapped key is an answer by itself before any digit, and a digit inside an entry after one."""
    collector = KeypadCollector(KeypadPlan(keys={"0": "human"}))
    assert collector.press("0") == Keypad(digits="0", intent="human")
    collector.press("1")
    assert collector.press("0") is None
    assert collector.press("#") == Keypad(digits="10", intent=None, end="#")


def test_keypad_collector_timeout_and_max_digits_end_an_entry() -> None:
    """A pause ends what was typed; `max_digits` ends the entry at once."""
    collector = KeypadCollector(KeypadPlan(collect="pin", max_digits=3))
    assert collector.timeout() is None
    collector.press("1")
    assert collector.timeout() == Keypad(digits="1", intent="pin")
    collector.press("4")
    collector.press("2")
    assert collector.press("7") == Keypad(digits="427", intent="pin")


def test_keypad_text_is_the_line_a_model_reads() -> None:
    """LLM brains get the keys as the caller's line, one key at a time."""
    assert Keypad(digits="1042", end="#").text == "[caller pressed 1 0 4 2 #]"
