"""The natural-callers benchmark's scenario file parses, and covers what issue 10 asks it to measure."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _bench():
    if "natural_callers" in sys.modules:
        return sys.modules["natural_callers"]
    spec = importlib.util.spec_from_file_location("natural_callers", ROOT / "bench" / "natural_callers.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["natural_callers"] = module  # pydantic looks the module up while the file runs
    spec.loader.exec_module(module)
    return module


def test_natural_callers_scenarios_are_forty_or_more_in_every_class():
    """At least 40 scenarios, unique names, in each class the benchmark reports."""
    scenarios = _bench().load_scenarios()
    assert len(scenarios) >= 40
    kinds = {s.kind for s in scenarios}
    assert {"known_no_number", "number_lead_in", "correction", "two_orders", "outcomes", "api_trouble",
            "asks_for_person", "off_topic", "silence_and_noise"} <= kinds


def test_natural_callers_scenarios_become_valid_call_scripts():
    """Each scenario turns into a call script with its caller, orders fault and turns."""
    for scenario in _bench().load_scenarios():
        script = scenario.script()
        assert script.caller == scenario.caller
        assert script.orders == scenario.orders
        assert len(script.turns) == len(scenario.turns)


def test_natural_callers_known_caller_questions_carry_no_order_number():
    """Known callers ask in their own words: no digits said in that class."""
    digits = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
    for scenario in _bench().load_scenarios():
        if scenario.kind == "known_no_number":
            words = {w.strip(",.?!").lower() for t in scenario.turns if isinstance(t, str) for w in t.split()}
            assert not words & digits, scenario.name
