"""The package's front door: `orchestrator.__all__` is sorted, real, and names the documented API."""

import orchestrator
import orchestrator.testing


def test_exports_are_sorted_and_resolve():
    """Every exported name exists, once, in sorted order."""
    assert orchestrator.__all__ == sorted(set(orchestrator.__all__))
    assert [name for name in orchestrator.__all__ if not hasattr(orchestrator, name)] == []


def test_exports_cover_the_documented_entry_points():
    """The README's embedding example only needs names from the front door."""
    for name in ("Settings", "Routes", "add_routes", "create_app", "load_flow", "make_brain_factory", "Brain"):
        assert name in orchestrator.__all__
    for name in ("ToolCallContext", "ToolError", "ToolHandler"):  # code tools (docs/flow-reference.md)
        assert name in orchestrator.__all__


def test_testing_helpers_are_exported():
    """Users' own snapshot tests import these from orchestrator.testing."""
    assert orchestrator.testing.__all__ == sorted(orchestrator.testing.__all__)
    for name in orchestrator.testing.__all__:
        assert hasattr(orchestrator.testing, name)
