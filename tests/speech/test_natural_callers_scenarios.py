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


HOLDOUT = ROOT / "bench" / "natural_callers_holdout.yaml"


def test_held_out_scenarios_are_twenty_or_more_in_every_class():
    """The held-out set has the main set's classes, at least 20 scenarios, and parses the same way."""
    bench = _bench()
    held_out = bench.load_scenarios(HOLDOUT)
    assert len(held_out) >= 20
    assert {s.kind for s in held_out} == {s.kind for s in bench.load_scenarios()}
    for scenario in held_out:
        assert len(scenario.script().turns) == len(scenario.turns)


def test_held_out_scenarios_share_no_line_and_no_name_with_the_main_set():
    """Other wording: no caller line of the held-out set is said in the main set (short answers and bare
    order numbers aside)."""
    bench = _bench()
    main, held_out = bench.load_scenarios(), bench.load_scenarios(HOLDOUT)
    number_words = {"zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                    "d", "x", "p", "k", "please"}

    def lines(scenarios):
        said = {t.lower() for s in scenarios for t in s.turns if isinstance(t, str) and len(t.split()) > 3}
        return {line for line in said if {w.strip(",.?!") for w in line.split()} - number_words}

    assert not lines(main) & lines(held_out)
    assert not {s.name for s in main} & {s.name for s in held_out}


MORE = ROOT / "bench" / "natural_callers_more.yaml"


def test_more_scenarios_parse_and_share_no_line_or_name_with_the_other_sets():
    """The later set (lead-ins, corrections) parses like the others and repeats none of their lines."""
    bench = _bench()
    more = bench.load_scenarios(MORE)
    assert len(more) >= 10
    for scenario in more:
        assert len(scenario.script().turns) == len(scenario.turns)
    others = [*bench.load_scenarios(), *bench.load_scenarios(HOLDOUT)]

    def lines(scenarios):
        return {t.lower() for s in scenarios for t in s.turns if isinstance(t, str) and len(t.split()) > 3}

    assert not lines(more) & lines(others)
    assert not {s.name for s in more} & {s.name for s in others}


FRESH = ROOT / "bench" / "natural_callers_fresh.yaml"


def test_fresh_scenarios_cover_every_class_and_share_no_line_or_name_with_the_other_sets():
    """The set written after decision 0031 by another hand: every class, none of the earlier sets' lines,
    and its known callers say no digit."""
    bench = _bench()
    fresh = bench.load_scenarios(FRESH)
    assert len(fresh) >= 30
    assert {s.kind for s in fresh} == {s.kind for s in bench.load_scenarios()}
    others = [*bench.load_scenarios(), *bench.load_scenarios(HOLDOUT), *bench.load_scenarios(MORE)]

    def lines(scenarios):
        return {t.lower() for s in scenarios for t in s.turns if isinstance(t, str) and len(t.split()) > 3}

    assert not lines(fresh) & lines(others)
    assert not {s.name for s in fresh} & {s.name for s in others}
    digits = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
    for scenario in fresh:
        if scenario.kind == "known_no_number":
            words = {w.strip(",.?!").lower() for t in scenario.turns if isinstance(t, str) for w in t.split()}
            assert not words & digits, scenario.name
