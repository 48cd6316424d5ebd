"""Text tables and progress lines for every command, drawn one way.

``table`` aligns columns to their widest cell (text left, numbers right). ``Progress`` keeps one status line
that is rewritten in place on a terminal and writes permanent lines for what is finished; on anything that
is not a terminal (a log file, a pipe, CI) it writes plain lines only, never a terminal code.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Sequence
from typing import TextIO

CLEAR_LINE = "\r\x1b[K"


def _is_number(text: str) -> bool:
    stripped = text.replace(",", "").replace("%", "").replace("x", "").strip()
    try:
        float(stripped)
    except ValueError:
        return False
    return True


def table(
    header: Sequence[object],
    rows: Sequence[Sequence[object]],
    *,
    rule: bool = True,
    indent: str = "",
    right: Collection[int] | None = None,
) -> str:
    """Rows under a header, each column as wide as its widest cell: the first column and text cells flush
    left, numbers (and "-") flush right. ``right`` names the columns flush right instead, for figures with
    words among them ("REJECTED", "+12 (+0.5%)"). ``rule`` draws dashes under the header."""
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    count = max(len(row) for row in cells)
    cells = [row + [""] * (count - len(row)) for row in cells]
    widths = [max(len(row[i]) for row in cells) for i in range(count)]
    flush_right = [
        i in right
        if right is not None
        else i > 0 and all(_is_number(row[i]) or row[i] in ("", "-") for row in cells[1:])
        for i in range(count)
    ]

    def line(row: list[str]) -> str:
        parts = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, flush_right, strict=True)]
        return (indent + "  ".join(parts)).rstrip()

    lines = [line(row) for row in cells]
    if rule:
        lines.insert(1, indent + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


class Progress:
    """A status line for what is under way and permanent lines for what is done, on ``stream``.

    ``status``: shown in place on a terminal, nothing elsewhere. ``note``: a permanent line (the status line
    is cleared first). ``tick``: a status on a terminal, a permanent line elsewhere (periodic reports that a
    log should keep). Every line starts with ``prefix``.
    """

    def __init__(self, prefix: str = "", stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.prefix = prefix
        self.tty = self.stream.isatty()
        self.shown = False  # a status line is on the terminal

    def status(self, text: str) -> None:
        if self.tty:
            self.stream.write(CLEAR_LINE + self.prefix + text)
            self.stream.flush()
            self.shown = True

    def note(self, text: str) -> None:
        self.stream.write((CLEAR_LINE if self.shown else "") + self.prefix + text + "\n")
        self.stream.flush()
        self.shown = False

    def tick(self, text: str) -> None:
        if self.tty:
            self.status(text)
        else:
            self.note(text)

    def close(self) -> None:
        """Clears a status line left on the terminal."""
        if self.shown:
            self.stream.write(CLEAR_LINE)
            self.stream.flush()
            self.shown = False
