"""How an unknown name is reported: the likely fix first, else what is declared.

    unknown_name("tool", "lookup", ["lookup_order", "end_call"])
    # "unknown tool 'lookup' (did you mean `lookup_order`?)"

Imports nothing from the orchestrator.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean", "name_hint", "unknown_dotted_name", "unknown_name"]

# More names than this are not listed: a long list reads worse than none.
_MAX_LISTED = 12


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """The declared name `name` most likely misspells, if one is close enough."""
    names = list(choices)
    folded = {choice.lower(): choice for choice in names}
    if name.lower() in folded:
        return folded[name.lower()]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return close[0]
    # A prefix or a part ("lookup" for "lookup_order") is a likely slip too.
    containing = [choice for choice in names if name and (name in choice or choice in name)]
    return containing[0] if len(containing) == 1 else None


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> str:
    """`unknown <kind> '<name>'`, with the likely fix or the list of declared names."""
    return f"unknown {kind} {name!r}{name_hint(name, choices)}"


def unknown_dotted_name(kind: str, name: str, choices: Iterable[str]) -> str:
    """Like `unknown_name`, for dotted names: the likely fix is looked for in the same group first."""
    names = sorted(choices)
    group = name.partition(".")[0]
    same_group = [choice for choice in names if choice.partition(".")[0] == group]
    return unknown_name(kind, name, same_group or names)


def name_hint(name: str, choices: Iterable[str]) -> str:
    """` (did you mean `x`?)`, or ` (declared: a, b)`, or ` (none is declared)`."""
    names = list(choices)
    guess = did_you_mean(name, names)
    if guess is not None:
        return f" (did you mean `{guess}`?)"
    if not names:
        return " (none is declared)"
    listed = ", ".join(names[:_MAX_LISTED]) + (", …" if len(names) > _MAX_LISTED else "")
    return f" (declared: {listed})"
