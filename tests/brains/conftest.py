"""Fixtures shared by the brain adapters' whole-call tests."""

from __future__ import annotations

import pytest

from orchestrator.flow import Flow, load_flow
from tests.flows import ORDER_STATUS


@pytest.fixture(scope="session")
def steady_narration(tmp_path_factory: pytest.TempPathFactory) -> Flow:
    """The pinned flow with `narrating` made non-interruptible: nothing the caller does may cut the status."""
    text = ORDER_STATUS.read_text()
    marker = "  narrating:\n    instructions:"
    assert marker in text
    path = tmp_path_factory.mktemp("flow") / "steady.yaml"
    path.write_text(text.replace(marker, "  narrating:\n    interruptible: false\n    instructions:"))
    return load_flow(path)
