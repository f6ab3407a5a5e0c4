"""Mermaid diagrams of a flow: every route labelled by its event and guard, deterministic."""

from orchestrator.flow import load_flow_text, to_mermaid


def test_to_mermaid_draws_routes_guards_globals_and_final_states() -> None:
    """Own routes, inherited global routes, guards and [*] markers are drawn in file order."""
    flow = load_flow_text(
        """\
flow: small
tools: {lookup_order: {description: Find an order.}}
counters: {failed_lookups: [order_not_found]}
on: {hangup: ended}
initial: identifying
states:
  identifying:
    tools: [lookup_order]
    on:
      "tool:lookup_order": looking_up
  looking_up:
    on:
      order_found: ended
      order_not_found:
        - {target: identifying, when: "failed_lookups < 3"}
        - ended
      hangup: null
  ended: {final: true}
"""
    )

    assert to_mermaid(flow) == (
        "stateDiagram-v2\n"
        "    [*] --> identifying\n"
        "    identifying --> looking_up : tool:lookup_order\n"
        "    identifying --> ended : hangup\n"
        "    looking_up --> ended : order_found\n"
        "    looking_up --> identifying : order_not_found [failed_lookups < 3]\n"
        "    looking_up --> ended : order_not_found\n"
        "    ended --> [*]\n"
    )


def test_to_mermaid_without_global_routes_notes_them_once() -> None:
    """`--no-global` draws each state's own routes only, and lists the shared ones in one note."""
    flow = load_flow_text(
        """\
flow: small
on: {hangup: ended, stream_stopped: ended}
initial: identifying
states:
  identifying:
    on: {order_found: ended}
  ended: {final: true}
"""
    )

    assert to_mermaid(flow, include_global=False) == (
        "stateDiagram-v2\n"
        "    [*] --> identifying\n"
        "    identifying --> ended : order_found\n"
        "    ended --> [*]\n"
        "    note right of identifying\n"
        "        global routes, from any state:\n"
        "        hangup → ended\n"
        "        stream_stopped → ended\n"
        "    end note\n"
    )
