"""YAML text -> a round-trip tree whose nodes know their line and column: located problems for the
flow loader and the call-script loader alike.

ruamel's round-trip loader keeps positions (and reads a bare `on:` as a string, not a boolean);
`YamlSource` turns a location such as `("states", "identifying", "tools", 2)` into `path:line:col`.
Imports only `orchestrator.errors` and ruamel.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarbool import ScalarBoolean

from orchestrator.errors import FlowError, FlowProblem

__all__ = [
    "Loc",
    "YamlSource",
    "dotted",
    "parse_yaml",
    "plain",
    "problem_at",
    "read_yaml_text",
    "sorted_problems",
]

Loc = tuple[str | int, ...]


def read_yaml_text(path: str | Path, *, what: str) -> str:
    """The UTF-8 text of the file at `path`, or a FlowError naming `what` could not be read."""
    name = str(path)
    try:
        return Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        message = f"cannot read {what}: {exc.strerror}"
        raise FlowError([problem_at(name, 1, 1, message)]) from None
    except UnicodeDecodeError:
        raise FlowError([problem_at(name, 1, 1, f"{what} is not UTF-8 text")]) from None


def parse_yaml(text: str, *, path: str, what: str) -> CommentedMap:
    """The round-trip mapping in `text`, or a FlowError at the syntax error (or: not a mapping)."""
    try:
        data = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context and exc.context_mark is not None:
            where = f"{exc.context_mark.line + 1}:{exc.context_mark.column + 1}"
            problem = f"{problem} ({exc.context} at {where})"
        message = f"YAML syntax error: {problem}"
        raise FlowError([problem_at(path, line, column, message)]) from None
    except (YAMLError, ValueError) as exc:
        raise FlowError([problem_at(path, 1, 1, f"YAML syntax error: {exc}")]) from None
    if data is None:
        raise FlowError([problem_at(path, 1, 1, f"{what} is empty")])
    if not isinstance(data, CommentedMap):
        message = f"{what} must be a mapping of keys to values"
        raise FlowError([problem_at(path, 1, 1, message)])
    return data


def problem_at(path: str, line: int, column: int, message: str) -> FlowProblem:
    return FlowProblem(path=path, line=line, column=column, message=message)


def sorted_problems(problems: Iterable[FlowProblem]) -> list[FlowProblem]:
    return sorted(problems, key=lambda p: (p.line, p.column, p.message))


def plain(node: object) -> object:
    """ruamel's round-trip types as plain Python, so pydantic sees what the author wrote."""
    if isinstance(node, CommentedMap):
        return {plain(k): plain(v) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [plain(v) for v in node]
    if isinstance(node, ScalarBoolean):  # an int subclass in ruamel
        return bool(node)
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass(frozen=True, slots=True, kw_only=True)
class YamlSource:
    """The YAML text and its round-trip tree: turns a location path into line and column."""

    path: str
    text: str
    root: CommentedMap

    def position(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        """0-based (line, column) of the value at `loc`, or of its key; its parent if absent."""
        return self._walk(loc, key=key)[0]

    def _walk(self, loc: Loc, *, key: bool) -> tuple[tuple[int, int], Loc]:
        """The position for `loc` and the part of `loc` actually written in the file."""
        node: object = self.root
        key_pos = value_pos = (0, 0)
        written: Loc = ()
        for index, part in enumerate(loc):
            if isinstance(node, CommentedMap):
                if isinstance(part, int):
                    continue  # a single mapping stands for a one-item list of transitions
                if part not in node:
                    return key_pos, loc  # a missing key: point at its parent
                key_pos, value_pos = _entry_position(node, part, key_pos)
                node = node[part]
            elif isinstance(node, CommentedSeq):
                if not isinstance(part, int) or part >= len(node):
                    return key_pos, loc
                key_pos = value_pos = _entry_position(node, part, key_pos)[0]
                node = node[part]
            else:
                # A scalar standing for a whole structure, e.g. `hangup: ended` for a transition.
                return value_pos, loc[:index]
            written = loc[: index + 1]
        return (key_pos if key else value_pos), written

    def problem(self, loc: Loc, message: str, *, key: bool = False) -> FlowProblem:
        (line, column), written = self._walk(loc, key=key)
        text = f"{dotted(written)}: {message}" if written else message
        return problem_at(self.path, line + 1, column + 1, text)

    def problem_inside(self, loc: Loc, needle: str, occurrence: int, message: str) -> FlowProblem:
        """A problem located at the `occurrence`-th `needle` written inside the scalar at `loc`."""
        line, column = self.position(loc)
        offset = self._offset(line, column)
        for _ in range(occurrence + 1):
            found = self.text.find(needle, offset)
            if found < 0:
                return self.problem(loc, message)
            offset = found + 1
        before = self.text[: offset - 1]
        found_line = before.count("\n")
        found_column = len(before) - (before.rfind("\n") + 1)
        text = f"{dotted(loc)}: {message}"
        return problem_at(self.path, found_line + 1, found_column + 1, text)

    def _offset(self, line: int, column: int) -> int:
        lines = self.text.splitlines(keepends=True)
        return sum(len(text) for text in lines[:line]) + column


def _entry_position(
    node: CommentedMap | CommentedSeq, part: str | int, fallback: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(key, value) positions of one entry; keys merged in with `<<:` have none: `fallback`."""
    try:
        if isinstance(node, CommentedSeq):
            item: tuple[int, int] = node.lc.item(part)
            return item, item
        key: tuple[int, int] = node.lc.key(part)
        value: tuple[int, int] = node.lc.value(part)
    except (KeyError, IndexError, TypeError):
        return fallback, fallback
    return key, value


