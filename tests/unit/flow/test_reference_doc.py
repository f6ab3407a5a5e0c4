"""docs/flow-reference.md stays true: its example loads, and every key, event and variable is documented."""

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from orchestrator.flow import KNOWN_EVENTS, Flow, load_flow_text
from orchestrator.flow.templates import FIXED_VARIABLES

REFERENCE = Path(__file__).parents[3] / "docs" / "flow-reference.md"
TEXT = REFERENCE.read_text(encoding="utf-8")
# Everything written `like this` on the page, split at dots and slashes so `vad.detector` names both keys.
DOCUMENTED = {
    part
    for quoted in re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", TEXT, flags=re.DOTALL))
    for part in [quoted, *re.split(r"[./ ]+", quoted)]
}


def _keys(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    """Every YAML key of `model` and of the models nested in it."""
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        keys.add(field.alias or name)
        for nested in _models_in(field.annotation):
            keys |= _keys(nested, seen)
    return keys


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def test_reference_example_flow_loads_clean() -> None:
    """The page's complete example is a flow the loader accepts as it stands."""
    example = TEXT.split("## A complete example", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", example, re.DOTALL)
    assert block is not None
    flow = load_flow_text(block.group(1), path="flow-reference.md")
    assert flow.initial in flow.states


@pytest.mark.parametrize("key", sorted(_keys(Flow)))
def test_reference_documents_every_flow_key(key: str) -> None:
    """Each key the flow format accepts is named on the page."""
    assert key in DOCUMENTED


@pytest.mark.parametrize("event", [*KNOWN_EVENTS, "tool:<name>"])
def test_reference_documents_every_event(event: str) -> None:
    """Each built-in event is named on the page."""
    assert event in DOCUMENTED


@pytest.mark.parametrize("variable", sorted(FIXED_VARIABLES))
def test_reference_documents_every_template_variable(variable: str) -> None:
    """Each template variable a call provides is named on the page."""
    assert variable in DOCUMENTED
