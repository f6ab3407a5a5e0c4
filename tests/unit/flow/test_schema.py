"""`orchestrator flow check --schema`: the flow format as JSON Schema, for editors."""

import json

from orchestrator.cli import main
from orchestrator.flow import Flow


def test_flow_check_schema_prints_the_json_schema_of_the_flow_format(capsys) -> None:
    """The schema names every top-level key, requires flow, initial and states, and forbids others."""
    assert main(["flow", "check", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == {field.alias or name for name, field in Flow.model_fields.items()}
    assert schema["required"] == ["flow", "initial", "states"]
    assert schema["additionalProperties"] is False


def test_flow_check_schema_accepts_every_spelling_of_a_route(capsys) -> None:
    """A route may be a state name, one mapping, a list of either, or null, and the schema says so."""
    main(["flow", "check", "--schema"])
    schema = json.loads(capsys.readouterr().out)

    route = schema["$defs"]["StateSpec"]["properties"]["on"]["additionalProperties"]
    kinds = [option.get("type") or option.get("$ref") for option in route["anyOf"]]
    assert kinds == ["string", "#/$defs/Transition", "array", "null"]


def test_flow_check_without_a_file_says_what_it_needs(capsys) -> None:
    """No flow file and no --schema is a usage error that says so."""
    assert main(["flow", "check"]) == 2
    assert "give a flow file (or --schema)" in capsys.readouterr().err
