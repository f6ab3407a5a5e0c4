"""The flow format as a JSON Schema (draft 2020-12), from the pydantic models: editor completion and
checks as you type, e.g. with the YAML language server's `# yaml-language-server: $schema=...` comment.

Only the shape: cross references (targets, tools, templates) are `flow check`'s job.
Imports this package's model only.
"""

from __future__ import annotations

import json

from orchestrator.flow.model import Flow

__all__ = ["flow_json_schema"]


def flow_json_schema() -> str:
    """The JSON Schema of a flow file, as indented JSON text."""
    schema = Flow.model_json_schema(by_alias=True, mode="validation")
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Sautikit orchestrator flow",
        **{key: value for key, value in schema.items() if key != "title"},
    }
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
