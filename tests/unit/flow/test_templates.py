"""Templates: `{{ name }}` placeholders found at load time, then filled (never failing) per call."""

from orchestrator.flow import render
from orchestrator.flow.templates import (
    find_placeholders,
    known_variables,
    spoken_digits,
    status_words,
)


def test_render_fills_dotted_names_whitespace_tolerant() -> None:
    """Placeholders with or without inner spaces are filled from nested mappings."""
    context = {"shop": {"name": "Duka Express"}, "order": {"eta": "today by 6 PM"}}

    assert render("{{shop.name}}: {{  order.eta }}", context) == "Duka Express: today by 6 PM"


def test_render_missing_values_become_empty_strings() -> None:
    """A name the call does not have yet, or a malformed placeholder, renders as nothing."""
    assert render("ETA: {{ order.eta }}.", {}) == "ETA: ."
    assert render("ETA: {{ order.eta.hour }}.", {"order": {"eta": "soon"}}) == "ETA: ."
    assert render("[{{ 1 + 1 }}]", {}) == "[]"


def test_render_non_string_values_are_written_plainly() -> None:
    """Numbers are rendered with str(), so `orders.count` reads as a number."""
    assert render("{{ orders.count }} orders", {"orders": {"count": 2}}) == "2 orders"


def test_find_placeholders_reports_raw_text_name_and_offset() -> None:
    """Each placeholder keeps its raw text and offset so the loader can locate it in the YAML."""
    found = find_placeholders("Hi {{ shop.name }} {{ 42 }}")

    assert [(p.raw, p.name, p.offset) for p in found] == [
        ("{{ shop.name }}", "shop.name", 3),
        ("{{ 42 }}", None, 19),
    ]


def test_known_variables_add_shop_keys_and_counters() -> None:
    """The flow's shop keys and counters extend the fixed call variables."""
    names = known_variables(shop_keys=["name"], counters=["failed_lookups"])

    assert {"shop.name", "counters.failed_lookups", "order.eta", "caller.number_spoken"} <= names
    assert "shop.hours" not in names


def test_spoken_digits_and_status_words_read_well_aloud() -> None:
    """Phone numbers are read digit by digit and statuses in plain words."""
    assert spoken_digits("+254 711-000") == "2 5 4 7 1 1 0 0 0"
    assert status_words("out_for_delivery") == "out for delivery"
    assert status_words("held_at_depot") == "held at depot"
