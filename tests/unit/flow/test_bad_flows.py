"""Golden tests: each bad/NAME.yaml is one kind of authoring mistake, and bad/NAME.expected
holds the exact `path:line:col: message` lines the author sees (paths relative to bad/)."""

from pathlib import Path

import pytest

from orchestrator.errors import FlowError
from orchestrator.flow import load_flow

BAD = Path(__file__).parent / "bad"
CASES = sorted(path.name for path in BAD.glob("*.yaml"))


@pytest.mark.parametrize("name", CASES)
def test_bad_flow_reports_exact_located_problems(name: str) -> None:
    """Loading a bad flow raises one FlowError whose lines are exactly the golden ones, in order."""
    path = BAD / name
    expected = (BAD / name).with_suffix(".expected").read_text().splitlines()

    with pytest.raises(FlowError) as caught:
        load_flow(path)

    assert [str(problem) for problem in caught.value.problems] == [
        f"{BAD}/{line}" for line in expected
    ]
    assert str(caught.value) == "\n".join(f"{BAD}/{line}" for line in expected)


def test_bad_flow_every_golden_file_has_an_expectation() -> None:
    """Each bad/*.yaml has a bad/*.expected and vice versa, so no golden file goes unchecked."""
    expectations = sorted(path.with_suffix(".yaml").name for path in BAD.glob("*.expected"))

    assert expectations == CASES
    assert len(CASES) >= 20
