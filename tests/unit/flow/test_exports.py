"""orchestrator.flow's public names: `__all__` is sorted and matches what the package exports."""

import orchestrator.flow as flow_package


def test_flow_exports_are_sorted_and_real() -> None:
    """Every name in __all__ exists, the list is sorted, and the brief's API is all there."""
    exported = flow_package.__all__

    assert exported == sorted(exported)
    assert all(hasattr(flow_package, name) for name in exported)
    assert {
        "Flow",
        "StateSpec",
        "ToolSpec",
        "Transition",
        "load_flow",
        "load_flow_text",
        "summarize",
        "to_mermaid",
        "CallMachine",
        "StateEntered",
        "render",
        "KNOWN_EVENTS",
    } <= set(exported)


def test_flow_package_imports_nothing_async_or_networked() -> None:
    """The flow layer stays free of asyncio, sockets and the other rooms of the orchestrator."""
    import ast
    from pathlib import Path

    package = Path(flow_package.__file__).parent
    imported: set[str] = set()
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)

    ours = {name for name in imported if name.startswith("orchestrator.")}
    assert ours <= {"orchestrator.errors"} | {n for n in ours if n.startswith("orchestrator.flow")}
    assert not {"asyncio", "socket", "aiohttp", "httpx"} & imported
