"""Guards: a small safe expression language over counters and call variables."""

import pytest

from orchestrator.flow.guards import GuardError, compile_guard

COUNTERS = ["failed_lookups", "silences"]
VARIABLES = ["order.status", "orders.count", "counters.failed_lookups"]


def test_guard_compares_counters_with_integers() -> None:
    """A bare name is a counter; comparisons and boolean operators combine them."""
    guard = compile_guard(
        "failed_lookups < 3 and not (silences >= 2)", counters=COUNTERS, variables=VARIABLES
    )

    assert guard.names == {"failed_lookups", "silences"}
    assert guard.evaluate({"failed_lookups": 2, "silences": 1}, {}) is True
    assert guard.evaluate({"failed_lookups": 3, "silences": 1}, {}) is False
    assert guard.evaluate({"failed_lookups": 0, "silences": 2}, {}) is False


def test_guard_reads_dotted_call_variables() -> None:
    """Dotted names read the call context, including chained comparisons and `or`."""
    guard = compile_guard(
        "order.status == 'delivered' or 1 < orders.count <= 3",
        counters=COUNTERS,
        variables=VARIABLES,
    )

    assert guard.evaluate({}, {"order": {"status": "delivered"}}) is True
    assert guard.evaluate({}, {"orders": {"count": 2}}) is True
    assert guard.evaluate({}, {"orders": {"count": 4}}) is False


def test_guard_missing_or_mismatched_values_fail_without_raising() -> None:
    """A missing value compared with a number is simply false at run time."""
    guard = compile_guard("orders.count > 1", counters=COUNTERS, variables=VARIABLES)

    assert guard.evaluate({}, {}) is False
    assert guard.evaluate({}, {"orders": {"count": "many"}}) is False


def test_guard_negative_literals_are_allowed() -> None:
    """A negative integer literal is a literal, not an arbitrary expression."""
    guard = compile_guard("silences > -1", counters=COUNTERS, variables=VARIABLES)

    assert guard.evaluate({"silences": 0}, {}) is True


@pytest.mark.parametrize(
    ("source", "message", "column"),
    [
        ("retries < 3", "unknown counter 'retries' (declared: failed_lookups, silences)", 0),
        (
            "silences < 3 and order.colour == 'red'",
            "unknown variable 'order.colour' (declared: order.status)",
            17,
        ),
        ("open('x')", "Call is not allowed; use counters, variables, integer or string literals, "
         "comparisons, and/or/not", 0),
        ("silences[0] == 1", "Subscript is not allowed; use counters, variables, integer or string "
         "literals, comparisons, and/or/not", 0),
        ("silences + 1 > 2", "BinOp is not allowed; use counters, variables, integer or string "
         "literals, comparisons, and/or/not", 0),
        ("silences in (1, 2)", "operator In is not allowed", 0),
        ("silences < 1.5", "Constant is not allowed; use counters, variables, integer or string "
         "literals, comparisons, and/or/not", 11),
        ("silences <", "invalid syntax", 10),
        ("   ", "empty guard", 0),
    ],
)
def test_guard_rejects_anything_outside_the_language(
    source: str, message: str, column: int
) -> None:
    """Unknown names, calls, arithmetic, floats and bad syntax are GuardErrors with a column."""
    with pytest.raises(GuardError) as caught:
        compile_guard(source, counters=COUNTERS, variables=VARIABLES)

    assert (caught.value.message, caught.value.column) == (message, column)
