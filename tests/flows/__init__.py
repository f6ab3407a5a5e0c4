"""The flow and call scripts the engine's own tests run against: pinned copies, not the shipped ones.

`flows/order_status.yaml` and `fixtures/calls/` belong to the product team: they change the greeting, the
escalation number or add a state, and only the shipped scripts' snapshots (checked by `orchestrator test`)
follow. The engine's tests pin the behaviour they test here instead, so such an edit breaks none of them.
tests/conftest.py points `Settings.flow` (ORCHESTRATOR_FLOW) at `ORDER_STATUS` for every test.
"""

from pathlib import Path

from orchestrator.flow import Flow, load_flow

TESTS = Path(__file__).resolve().parents[1]
ORDER_STATUS = TESTS / "flows" / "order_status.yaml"
# The order-status flow in English and Swahili (a pinned copy of the shipped two-language flow).
BILINGUAL = TESTS / "flows" / "bilingual.yaml"
SCRIPTS = TESTS / "calls" / "scripts"
OFFLINE_SCRIPTS = SCRIPTS / "offline"

# The care desk escalations dial in the pinned flow (its `escalation.number`).
_escalation = load_flow(ORDER_STATUS).escalation
assert _escalation is not None
CARE_DESK = _escalation.number


def with_escalation(**escalation: object) -> Flow:
    """The pinned flow with some `escalation:` settings replaced (strategies, URLs, timeouts)."""
    flow = load_flow(ORDER_STATUS)
    assert flow.escalation is not None
    return flow.model_copy(update={"escalation": flow.escalation.model_copy(update=escalation)})
