"""A table that fits the terminal it is printed on, rather than one rich squeezes until names are
cut to "a1…" (the members table at 80 columns).

Each column says how it may give way when room runs out: `whole` cells (names, statuses, short
numbers, bars) are never wrapped or cut; `words` cells wrap at spaces, never inside a word;
`fold` cells (URLs, images) wrap anywhere, down to `FOLD_MIN` wide. A column may have a narrower
stand-in (a short capacity bar instead of a long one), tried first; then droppable columns go,
the least useful first (`drop`: higher goes earlier). The choice is made at render time from the
width rich offers, so one call prints the full table on a wide terminal and a readable one at
80 columns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import attrs
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

FOLD_MIN = 14  # a folded URL or image still reads in pieces this long
Fit = Literal["whole", "words", "fold"]


@attrs.frozen
class Column:
    header: str
    cells: Sequence[RenderableType]
    fit: Fit = "whole"
    drop: int = 0  # 0: always shown; otherwise dropped when room runs out, highest first
    narrow: Column | None = None  # a narrower stand-in, tried before anything is dropped

    def plain(self) -> list[str]:
        return [c.plain if isinstance(c, Text) else str(c) for c in self.cells]

    def need(self) -> int:
        """The narrowest this column may be drawn without breaking its promise."""
        texts = self.plain()
        if self.fit == "whole":
            widest = max((cell_len(t) for t in texts), default=0)
        elif self.fit == "words":
            widest = max((cell_len(w) for t in texts for w in t.split()), default=0)
        else:
            widest = min(FOLD_MIN, max((cell_len(t) for t in texts), default=0))
        return max(cell_len(self.header), widest)


def table_width(cols: Sequence[Column]) -> int:
    """Width of rich's default box: one space of padding each side plus a rule per column."""
    return sum(c.need() + 3 for c in cols) + 1


@attrs.frozen
class FittedTable:
    title: str
    columns: Sequence[Column]
    caption: str | None = None

    def layouts(self) -> Iterator[list[Column]]:
        """Widest first: everything; with narrow stand-ins; then fewer and fewer columns."""
        cols = list(self.columns)
        yield cols
        if any(c.narrow for c in cols):
            cols = [c.narrow or c for c in cols]
            yield cols
        for level in sorted({c.drop for c in cols if c.drop}, reverse=True):
            cols = [c for c in cols if c.drop != level]
            yield cols

    def build(self, cols: Sequence[Column]) -> Table:
        table = Table(title=self.title, title_justify="left", caption=self.caption)
        for c in cols:
            table.add_column(
                c.header,
                no_wrap=c.fit == "whole",
                overflow="fold" if c.fit == "fold" else "ellipsis",
                min_width=c.need(),
            )
        rows = max((len(c.cells) for c in cols), default=0)
        for i in range(rows):
            table.add_row(*(c.cells[i] if i < len(c.cells) else "" for c in cols))
        return table

    def fitting(self, max_width: int) -> Table:
        """The widest layout that fits `max_width` (the narrowest one if none does)."""
        chosen: list[Column] = []
        for cols in self.layouts():
            chosen = cols
            if table_width(cols) <= max_width:
                break
        return self.build(chosen)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.fitting(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.fitting(options.max_width))
