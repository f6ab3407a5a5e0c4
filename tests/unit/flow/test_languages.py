"""Flows in several languages: per-language texts, where a call's language comes from, and what `flow check` says."""

import pytest

from orchestrator.errors import FlowError
from orchestrator.flow import CallMachine, load_flow, load_flow_text
from orchestrator.flow.languages import missing_languages, text_for
from orchestrator.flow.templates import spoken_eta, spoken_order_number, status_words
from tests.flows import BILINGUAL

TWO_LANGUAGES = """\
flow: two
languages: [en-KE, sw-KE]
language:
  by_number: {"+254711000001": sw-KE}
initial: greeting
states:
  greeting:
    say: {en-KE: "Hello.", sw-KE: "Habari."}
    on: {stream_started: asking}
  asking:
    instructions: Ask for the order number.
    say: {en-KE: "Your order number?", sw-KE: "Namba ya oda yako?"}
    on: {language_changed: asking, hangup: ended}
  ended:
    final: true
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(FlowError) as caught:
        load_flow_text(text, path="two.yaml")
    return [str(problem) for problem in caught.value.problems]


def test_flow_check_reports_a_text_missing_a_declared_language():
    """A per-language text without sw-KE is located and named; so is a plain string in a two-language flow."""
    text = TWO_LANGUAGES.replace('say: {en-KE: "Hello.", sw-KE: "Habari."}', 'say: "Hello."').replace(
        ', sw-KE: "Namba ya oda yako?"', ""
    )
    assert _problems(text) == [
        "two.yaml:8:10: states.greeting.say: no sw-KE text (languages: en-KE, sw-KE); write one version per language",
        "two.yaml:12:10: states.asking.say: no sw-KE text (languages: en-KE, sw-KE); add it",
    ]


def test_flow_check_reports_a_language_that_is_not_declared():
    """A text in fr-FR and a number routed to it are both errors while only en-KE and sw-KE are declared."""
    text = TWO_LANGUAGES.replace('"+254711000001": sw-KE', '"+254711000001": fr-FR').replace(
        'sw-KE: "Habari."}', 'sw-KE: "Habari.", fr-FR: "Bonjour."}'
    )
    assert _problems(text) == [
        "two.yaml:4:32: language.by_number.+254711000001: language 'fr-FR' is not declared "
        "(languages: en-KE, sw-KE)",
        "two.yaml:8:46: states.greeting.say.fr-FR: language 'fr-FR' is not declared (languages: en-KE, sw-KE)",
    ]


def test_shipped_two_language_flow_has_every_text_in_both_languages():
    """The pinned copy of the shipped flow loads clean: every spoken text in en-KE and sw-KE."""
    flow = load_flow(BILINGUAL)
    assert flow.call_languages == ("en-KE", "sw-KE")
    assert flow.language_for_number("+254711000001") == "sw-KE"
    assert flow.language_for_number("+254711000000") == "en-KE"


def test_machine_speaks_the_language_of_the_call_and_switches_on_language_changed():
    """The context's language picks each text; `language_changed` re-enters the state in the new language."""
    flow = load_flow_text(TWO_LANGUAGES)
    context: dict[str, object] = {"language": flow.language_for_number("+254711000001")}
    machine = CallMachine(flow, context)
    assert machine.start().say == "Habari."
    asking = machine.send("stream_started")
    assert asking is not None
    assert asking.say == "Namba ya oda yako?"
    assert asking.instructions == "Ask for the order number.\nSpeak Swahili (sw-KE)."
    context["language"] = "en-KE"
    again = machine.send("language_changed")
    assert again is not None
    assert (again.state, again.say, again.language) == ("asking", "Your order number?", "en-KE")


def test_text_for_falls_back_to_the_default_then_the_first_written():
    """A text lacking the call's language is said in the flow's default, else in whatever it has."""
    assert text_for({"en-KE": "Hello", "sw-KE": "Habari"}, "sw-KE", "en-KE") == "Habari"
    assert text_for({"en-KE": "Hello"}, "sw-KE", "en-KE") == "Hello"
    assert text_for({"sw-KE": "Habari"}, "fr-FR", "en-KE") == "Habari"
    assert missing_languages("Hello", ["en-KE", "sw-KE"]) == ["sw-KE"]
    assert missing_languages("Hello", ["en-KE"]) == []


def test_order_words_are_spoken_in_swahili():
    """Digits, status and ETA of an order read the Swahili way (half past ten: "saa nne na nusu asubuhi")."""
    assert spoken_order_number("PK21002", "sw-KE") == "P K mbili moja sifuri sifuri mbili"
    assert spoken_order_number("PK21002") == "P K two one zero zero two"
    assert status_words("out_for_delivery", "sw-KE") == "iko njiani kukufikia"
    assert spoken_eta("2026-11-29T10:30:00+03:00", language="sw-KE") == (
        "Jumapili tarehe 29 Novemba, karibu saa nne na nusu asubuhi"
    )
