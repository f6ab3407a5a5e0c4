"""The capability table: which row a model name gets, and which strategy carries a state change."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from orchestrator.brains.capabilities import ROWS, capabilities_for, choose_delivery
from orchestrator.brains.gemini import DEFAULT_MODEL


@pytest.mark.parametrize(
    ("model", "row"),
    [
        ("gemini-2.5-flash-native-audio-preview-12-2025", "gemini-2.5"),
        ("gemini-live-2.5-flash-native-audio", "gemini-2.5"),
        ("models/gemini-3.1-flash-live-preview", "gemini-3.1"),
        ("gemini-3.8-live", "gemini-3.8"),
        ("gemini-3.8-live-extended-thinking", "gemini-3.8"),
    ],
)
def test_gemini_model_names_find_their_row(model: str, row: str):
    """Known Live model names, with or without the `models/` prefix, map to their generation's row."""
    assert capabilities_for("gemini", model).name == row


def test_openai_realtime_models_find_their_row():
    """gpt-realtime and its dated/mini variants share one row, delivered by session.update."""
    for model in ("gpt-realtime", "gpt-realtime-2025-08-28", "gpt-4o-mini-realtime-preview"):
        caps = capabilities_for("openai", model)
        assert caps.name == "gpt-realtime"
        assert choose_delivery(caps, call_waiting=True) == "context_update"


def test_unknown_model_gets_the_conservative_row_and_a_log_line():
    """A name no row knows: every restriction of the family, and one warning that says so."""
    with capture_logs() as logs:
        caps = capabilities_for("gemini", "gemini-9-live-experimental")
    assert caps.known is False
    assert caps.client_content_mid_session is False
    assert caps.history_needs_config is True
    assert caps.instructions_mid_session is False
    assert [entry["event"] for entry in logs] == ["model_capabilities_unknown"]
    assert logs[0]["model"] == "gemini-9-live-experimental"


def test_known_models_log_nothing():
    """The table's own models are matched silently."""
    with capture_logs() as logs:
        capabilities_for("gemini", DEFAULT_MODEL)
    assert logs == []


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_every_row_delivers_a_state_change_with_or_without_a_waiting_call(row):
    """Each row names a strategy for both moments: a tool call waiting for its answer, and none."""
    waiting = choose_delivery(row, call_waiting=True)
    idle = choose_delivery(row, call_waiting=False)
    assert waiting in row.delivery
    assert idle != "tool_result"
    if row.family == "gemini":
        assert waiting == "tool_result"
        assert idle == ("client_content" if row.client_content_mid_session and row.name == "gemini-2.5"
                        else "realtime_text")


def test_gemini_rows_never_send_client_content_where_it_closes_the_socket():
    """A row whose model refuses late client content never delivers a state by client content."""
    for row in ROWS:
        if not row.client_content_mid_session:
            assert "client_content" not in row.delivery
