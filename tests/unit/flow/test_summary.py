"""The human summary printed by `orchestrator flow check FILE`."""


from orchestrator.flow import check_flow, load_flow, summarize
from tests.flows import ORDER_STATUS


def test_summarize_lists_states_events_tools_counters_and_escalation() -> None:
    """The order-status flow summarises to the exact text a product person reads."""
    text = summarize(load_flow(ORDER_STATUS))

    assert text == (
        "flow order_status v1: 6 states, initial greeting\n"
        "states:\n"
        "  greeting     no tools; no timeout; not interruptible\n"
        "  identifying  lookup_order, transfer_to_human, end_call; timeout 8s; interruptible\n"
        "  looking_up   no tools; no timeout; interruptible\n"
        "  narrating    lookup_order, transfer_to_human, end_call; timeout 10s; interruptible\n"
        "  escalating   no tools; no timeout; not interruptible\n"
        "  ended        final\n"
        "events: brain_failed, escalation_failed, hangup, lookup_failed, order_found,"
        " order_not_found, silence_timeout, stream_started, stream_stopped, tool:end_call,"
        " tool:lookup_order, tool:transfer_to_human\n"
        "tools: lookup_order, transfer_to_human, end_call\n"
        "counters: failed_lookups <- order_not_found; silence_reprompts <- silence_timeout\n"
        "escalation: dial -> callback"
    )


def test_check_flow_returns_a_structured_summary() -> None:
    """check_flow loads the file and returns the summary's fields for programs, not only text."""
    summary = check_flow(ORDER_STATUS)

    assert summary.initial == "greeting"
    assert [state.name for state in summary.states if state.final] == ["ended"]
    assert summary.strategies == ("dial", "callback")
