"""Templates: `{{ name }}` placeholders found at load time, then filled (never failing) per call."""

import pytest

from orchestrator.errors import FlowError
from orchestrator.flow import load_flow_text, render
from orchestrator.flow.templates import (
    find_placeholders,
    known_variables,
    spoken_digits,
    spoken_eta,
    spoken_order_number,
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


def test_spoken_order_number_reads_each_letter_and_digit():
    """PK20931 is read "P K two zero nine three one", never "twenty thousand nine hundred..."."""
    assert spoken_order_number("PK20931") == "P K two zero nine three one"
    assert spoken_order_number("dx-1042") == "D X one zero four two"


def test_spoken_eta_says_an_iso_time_as_a_person_would():
    """An ISO date-time becomes weekday, day, month and "around" the hour in the flow's zone."""
    assert spoken_eta("2026-12-04T10:00:00+03:00") == "Friday 4 December, around 10 AM"
    assert spoken_eta("2026-12-04T07:30:00Z") == "Friday 4 December, around 10:30 AM"
    assert spoken_eta("2026-12-04T12:00:00+03:00") == "Friday 4 December, around midday"
    assert spoken_eta("2026-12-04") == "Friday 4 December"


def test_spoken_eta_follows_the_flows_time_zone_and_language():
    """A UTC time is moved to the caller's zone; Swahili says the day and the Swahili hour."""
    assert spoken_eta("2026-12-04T21:00:00Z", timezone="Africa/Nairobi") == (
        "Saturday 5 December, around midnight"
    )
    assert spoken_eta("2026-12-04T10:00:00+03:00", language="sw-KE") == (
        "Ijumaa tarehe 4 Desemba, karibu saa nne asubuhi"
    )


def test_spoken_eta_keeps_free_text_and_empty_values():
    """A shop's own words ("today between 4 and 6 PM") are kept; no ETA is nothing to say."""
    assert spoken_eta("today between 4 and 6 PM") == "today between 4 and 6 PM"
    assert spoken_eta("2026-13-45T99:00") == "2026-13-45T99:00"
    assert spoken_eta(None) == ""


def test_a_flow_with_an_unknown_time_zone_fails_its_check():
    """`voice.timezone` must be an IANA zone name."""
    text = "flow: f\nvoice: {timezone: Mars/Olympus}\ninitial: a\nstates:\n  a: {final: true}\n"
    with pytest.raises(FlowError, match="unknown time zone 'Mars/Olympus'"):
        load_flow_text(text)
