"""A fast table renderable for rich: pre-formatted cells laid out in one pass, fitted to the console width.

rich's `Table` measures every cell of every row and needs about a second per thousand rows; `nnlab runs` and
`nnlab compare` must list 1,000 runs in less. A `Grid` takes text cells, sizes each column once, cuts long
text with an ellipsis (lowest-priority columns first, never a number), then leaves out the least important
columns (named in a note), and never wraps a row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

GAP = 2
UNBOUNDED = 10_000  # a console this wide (output to a pipe or a file) shows every cell whole


@dataclass
class Col:
    """One column of a Grid: a header, its cells as text, and how it may shrink."""

    header: str
    cells: list[str]
    styles: list[str | None] | None = None
    right: bool = False  # right-justify (numbers)
    keep_end: bool = False  # cut the start of long values (run ids: their end is what tells them apart)
    min_width: int = 6
    max_width: int = 40
    priority: int = 1  # when the shrunk columns still do not fit, the lowest priority goes first
    group: str = ""  # a label over consecutive columns of the same group


@dataclass
class Grid:
    """A table of pre-formatted cells that fits the console width; optional heading lines between rows."""

    columns: list[Col]
    title: str = ""
    notes: list[str] = field(default_factory=list)
    sections: dict[int, list[tuple[str, str | None]]] = field(default_factory=dict)  # a heading line before row i

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        widths, hidden = layout(self.columns, options.max_width)
        shown = [(c, w) for c, w in zip(self.columns, widths) if w]
        styles: dict[str | None, Style | None] = {None: None}
        if self.title:
            yield from (Segment(self.title, Style(bold=True)), Segment.line())
        if any(c.group for c, _ in shown):
            yield from _line([(_group_labels(shown), None)])
        yield from _line([(cut(c.header, w, c.keep_end).rjust(w) if c.right else cut(c.header, w, c.keep_end).ljust(w),
                           "bold") for c, w in shown], styles)
        yield from _line([("─" * (sum(w for _, w in shown) + GAP * (len(shown) - 1)), "dim")], styles)
        for i in range(len(self.columns[0].cells) if self.columns else 0):
            if i in self.sections:
                yield from _line(_fit(self.sections[i], options.max_width), styles)
            cells = []
            for col, width in shown:
                text = cut(col.cells[i], width, col.keep_end)
                cells.append((text.rjust(width) if col.right else text.ljust(width),
                              col.styles[i] if col.styles else None))
            yield from _line(cells, styles)
        notes = list(self.notes)
        if hidden:
            notes.append(f"left out to fit {options.max_width} columns: {', '.join(hidden)} (see --format csv)")
        for note in notes:
            yield Text(note, style="dim")  # notes may wrap; rows never do


def _line(cells: list[tuple[str, str | None]], styles: dict[str | None, Style | None] | None = None
          ) -> Iterable[Segment]:
    """One line of cells: runs of unstyled text become one segment (rich renders per segment), styled cells
    are segments of their own, without the gap after them."""
    styles = styles if styles is not None else {None: None}
    last = len(cells) - 1
    while last >= 0 and not cells[last][0].strip():
        last -= 1
    plain: list[str] = []
    for i, (text, style) in enumerate(cells[:last + 1]):
        text = text.rstrip() if i == last else text
        # rich measures a segment with any non-ASCII character (an ellipsis) one character at a time
        if style is None and text.isascii():
            plain.append(text)
        else:
            if plain:
                yield Segment("".join(plain))
                plain = []
            yield Segment(text, _style(styles, style))
        if i < last:
            plain.append(" " * GAP)
    if plain:
        yield Segment("".join(plain))
    yield Segment.line()


def _fit(parts: list[tuple[str, str | None]], width: int) -> list[tuple[str, str | None]]:
    """The styled pieces of a heading line (shown two spaces apart), cut to `width`."""
    fitted, room = [], width
    for text, style in parts:
        if room <= 0:
            break
        fitted.append((cut(text, room), style))
        room -= len(fitted[-1][0]) + GAP
    return fitted


def _style(styles: dict[str | None, Style | None], name: str | None) -> Style | None:
    if name not in styles:
        styles[name] = Style.parse(name)
    return styles[name]


def _group_labels(shown: list[tuple[Col, int]]) -> str:
    """The line above the headers: each group's label centred over its consecutive columns."""
    spans: list[tuple[str, int]] = []  # (group, width), consecutive columns of one group merged
    for col, width in shown:
        if spans and spans[-1][0] == col.group:
            spans[-1] = (col.group, spans[-1][1] + GAP + width)
        else:
            spans.append((col.group, width))
    return (" " * GAP).join(cut(group, width).center(width) for group, width in spans)


def cut(text: str, width: int, keep_end: bool = False) -> str:
    """`text` in at most `width` characters, an ellipsis marking the cut."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    return "…" + text[-(width - 1):] if keep_end else text[:width - 1] + "…"


def layout(columns: list[Col], width: int) -> tuple[list[int], list[str]]:
    """Column widths that fit `width` (0 = left out), and the headers of the columns left out. Columns shrink
    lowest priority first (the widest of a priority first), down to their minimum; if that is not enough,
    the lowest-priority column is left out and the rest start again from their natural widths."""
    whole = [max([len(c.header), *map(len, c.cells)]) for c in columns]
    if sum(whole) + GAP * len(columns) <= width and width >= UNBOUNDED:
        return whole, []  # piped output: every cell whole, however long
    natural = [min(c.max_width, w) for c, w in zip(columns, whole)]
    # numbers are never cut: a truncated number is a wrong number
    floor = [n if c.right else min(n, c.min_width) for n, c in zip(natural, columns)]
    live = list(range(len(columns)))
    hidden: list[str] = []
    while True:
        widths = [natural[i] if i in live else 0 for i in range(len(columns))]
        excess = sum(widths) + GAP * (len(live) - 1) - width
        if excess <= sum(widths[i] - floor[i] for i in live) or len(live) <= 1:
            _shrink(widths, floor, [columns[i].priority if i in live else None for i in range(len(columns))], excess)
            return widths, hidden
        drop = min(live, key=lambda i: (columns[i].priority, -i))
        live.remove(drop)
        hidden.append(columns[drop].header or "?")


def _shrink(widths: list[int], floor: list[int], priorities: list[int | None], excess: int) -> None:
    """Take `excess` characters off the columns, lowest priority first, the widest of a priority first."""
    for priority in sorted({p for p in priorities if p is not None}):
        group = [i for i, p in enumerate(priorities) if p == priority]
        while excess > 0 and any(widths[i] > floor[i] for i in group):
            i = max((i for i in group if widths[i] > floor[i]), key=lambda i: widths[i] - floor[i])
            widths[i] -= 1
            excess -= 1
