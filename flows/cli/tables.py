"""Result tables that stay readable in a terminal of any width.

rich fits a table to the terminal by wrapping every column, which at 80-120 columns broke skill
names mid-word ("Collect_Coa" / "l") and spread one expert version over eight lines.  Here names,
numbers and ids never wrap; when the terminal is too narrow for all columns, the least useful
ones are left out and the caption says which.  A pipe or file has no width limit (see
``app._console``), so ``flowrl status | cat`` still shows everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Col:
    header: str  # "\n" breaks it (a column that does not wrap does not wrap its header either)
    keep: int = 9  # when columns must go, the lowest keep goes first; 9: never left out
    wrap: bool = False  # free text may wrap at spaces; names, numbers and ids never do
    right: bool = False  # numbers


def fitted_table(console: Console, columns: Sequence[Col], rows: Sequence[Sequence[str]], *, title: str = "",
                 caption: str = "") -> Table:
    """The table with as many columns as ``console`` has room for, dropped ones named in the caption."""
    shown = list(range(len(columns)))
    while True:
        table = _table([columns[i] for i in shown], [[row[i] for i in shown] for row in rows], title,
                       _caption(caption, [columns[i].header for i in range(len(columns)) if i not in shown]))
        droppable = [i for i in shown if columns[i].keep < 9]
        if _least_width(columns, rows, shown) <= console.width or not droppable:
            return table
        shown.remove(min(droppable, key=lambda i: (columns[i].keep, -i)))


def _least_width(columns: Sequence[Col], rows: Sequence[Sequence[str]], shown: list[int]) -> int:
    """Borders and padding (3 a column, 1 more), plus each column's narrowest: its widest cell
    where it does not wrap, else its longest word (rich's own measure lets it crop cells instead)."""
    def words(text: str) -> list[int]:
        return [cell_len(w) for w in text.split()] or [0]

    total = 1
    for i in shown:
        cells = [row[i] for row in rows]
        widest = max((max(words(c)) if columns[i].wrap else cell_len(c) for c in cells), default=0)
        header = words(columns[i].header) if columns[i].wrap else [cell_len(h) for h in columns[i].header.split("\n")]
        total += 3 + max(widest, *header)
    return total


def _table(columns: Sequence[Col], rows: Sequence[Sequence[str]], title: str, caption: str) -> Table:
    table = Table(title=title or None, caption=caption or None)
    for col in columns:
        table.add_column(col.header, no_wrap=not col.wrap, overflow="fold",
                         justify="right" if col.right else "left")
    for row in rows:
        table.add_row(*row)
    return table


def _caption(caption: str, hidden: list[str]) -> str:
    if not hidden:
        return caption
    names = ", ".join(h.replace("\n", " ") for h in hidden)
    note = f"not shown at this width: {names} (a wider terminal, `| cat` or --json show them)"
    return f"{caption}; {note}" if caption else note
