"""The keypad of one call: key presses gathered into entries by what the current state listens for.

A state's `listen:` says which answer collects digits (`keypad: true`, ended by its `end` key, its
`max_digits`, or `digit_timeout` seconds without a key) and which single keys are answers by themselves
(`key: "0"`). A state that declares neither still hears the keypad: digits up to `#` or a pause become
an entry that answers nothing in particular. Pure bookkeeping: the session owns the timer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestrator.brains.base import Keypad
from orchestrator.flow.model import StateSpec

__all__ = ["DEFAULT_DIGIT_TIMEOUT_S", "KeypadCollector", "KeypadPlan", "keypad_plan"]

# A pause this long after a key ends an entry where the state sets no `digit_timeout`.
DEFAULT_DIGIT_TIMEOUT_S = 4.0


@dataclass(frozen=True, slots=True, kw_only=True)
class KeypadPlan:
    """What one state does with keys."""

    collect: str | None = None  # the answer digits are collected for
    end: str = "#"
    max_digits: int | None = None
    digit_timeout_s: float = DEFAULT_DIGIT_TIMEOUT_S
    keys: Mapping[str, str] = field(default_factory=dict)  # key -> answer


def keypad_plan(spec: StateSpec) -> KeypadPlan:
    """The keypad plan of a state, from its `listen:` (the loader has checked it is consistent)."""
    keys = {entry.key: name for name, entry in spec.listen.items() if entry.key is not None}
    collecting = next(((n, e) for n, e in spec.listen.items() if e.keypad), None)
    if collecting is None:
        return KeypadPlan(keys=keys)
    name, entry = collecting
    return KeypadPlan(
        collect=name,
        end=entry.end,
        max_digits=entry.max_digits,
        digit_timeout_s=entry.digit_timeout,
        keys=keys,
    )


class KeypadCollector:
    """Feed it keys; it hands back a `Keypad` entry when one is complete.

        collector = KeypadCollector(KeypadPlan(collect="order_number", keys={"*": "human"}))
        collector.press("1"), collector.press("0")   # -> None, None: collecting
        collector.press("#")                        # -> Keypad(digits="10", intent="order_number", end="#")
        collector.press("*")                        # -> Keypad(digits="*", intent="human")
    """

    __slots__ = ("_digits", "_plan")

    def __init__(self, plan: KeypadPlan) -> None:
        self._plan = plan
        self._digits = ""

    def use(self, plan: KeypadPlan) -> None:
        """The call entered another state; digits typed so far are kept for its entry."""
        self._plan = plan

    @property
    def collecting(self) -> bool:
        """Digits are waiting for the end key or the timeout."""
        return bool(self._digits)

    @property
    def digit_timeout_s(self) -> float:
        return self._plan.digit_timeout_s

    def press(self, key: str) -> Keypad | None:
        plan = self._plan
        if not self._digits and key in plan.keys:
            return Keypad(digits=key, intent=plan.keys[key])
        if key == plan.end:
            return self._finish(end=key)
        self._digits += key
        if plan.max_digits is not None and len(self._digits) >= plan.max_digits:
            return self._finish(end="")
        return None

    def timeout(self) -> Keypad | None:
        """No key for `digit_timeout_s`: what was typed is the entry (None if nothing was)."""
        return self._finish(end="") if self._digits else None

    def _finish(self, *, end: str) -> Keypad:
        entry = Keypad(digits=self._digits, intent=self._plan.collect, end=end)
        self._digits = ""
        return entry
