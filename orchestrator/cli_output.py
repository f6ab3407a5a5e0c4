"""How the command groups talk to people and scripts: aligned tables, JSON, money, and sub-command parsers."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

__all__ = ["add_leaf", "format_money", "format_table", "or_dash", "print_json"]


def add_leaf(
    group: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_: str,
    *,
    common: argparse.ArgumentParser,
    epilog: str,
) -> argparse.ArgumentParser:
    """One sub-command: its one-line help is also its description, shared options come from `common`."""
    return group.add_parser(
        name,
        help=help_,
        description=help_[0].upper() + help_[1:] + ".",
        parents=[common],
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, headers first."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *rows]
    )


def or_dash(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def format_money(minor: int | None, currency: str | None) -> str:
    """KES 2.50 from 250 minor units; a dash when unknown."""
    if minor is None:
        return "-"
    return f"{currency or ''} {minor / 100:,.2f}".strip()


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))
