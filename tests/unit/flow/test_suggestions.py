"""Unknown names are reported with the likely fix, or with what is declared."""

from orchestrator.flow.suggestions import did_you_mean, unknown_name


def test_did_you_mean_finds_misspellings_case_slips_and_parts() -> None:
    """A typo, a wrong case and a shortened name each point at the declared name."""
    states = ["greeting", "identifying", "looking_up", "narrating"]
    assert did_you_mean("lookingup", states) == "looking_up"
    assert did_you_mean("Narrating", states) == "narrating"
    assert did_you_mean("looking", states) == "looking_up"
    assert did_you_mean("escalate_now", states) is None


def test_unknown_name_lists_the_declared_names_when_nothing_is_close() -> None:
    """With no close name the message lists what is declared, or says nothing is."""
    assert unknown_name("tool", "lookup", ["lookup_order"]) == (
        "unknown tool 'lookup' (did you mean `lookup_order`?)"
    )
    assert unknown_name("tool", "send_sms", ["lookup_order", "end_call"]) == (
        "unknown tool 'send_sms' (declared: lookup_order, end_call)"
    )
    assert unknown_name("counter", "tries", []) == "unknown counter 'tries' (none is declared)"
