"""Unbalanced `{{ }}` in a template: found at load time, each at its own brace."""

from orchestrator.flow.templates import find_brace_problems


def test_find_brace_problems_accepts_balanced_templates() -> None:
    """Whole placeholders and plain text have no problem."""
    assert find_brace_problems("Order {{ order.order_number }} is {{ order.status_text }}.") == ()


def test_find_brace_problems_reports_unclosed_and_stray_braces_by_occurrence() -> None:
    """An unclosed `{{` (at the end, or before another `{{`) and a stray `}}` are each reported once."""
    problems = find_brace_problems("{{ a.b }} }} {{ c.d {{ e.f }} and {{ g.h")
    assert [(p.braces, p.occurrence) for p in problems] == [("}}", 1), ("{{", 1), ("{{", 3)]
    assert problems[0].message.startswith("stray `}}`")
    assert problems[1].message.startswith("unclosed `{{`")
