"""Branch coverage of the extractor: the labels of bpf/xhdr_cover.h and the reader of a coverage build's map.

A build compiled with ``-DXHDR_COVERAGE`` (``Program(..., coverage=True)``) counts every labelled branch of
bpf/xhdr.c it runs in the per-CPU array ``coverage``; every other build has neither the map nor the counting.
The labels are read from the C enum, the one place they are declared, so a label added there is known here
without a Python edit; tests/test_layout.py checks what was read against the compiler.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.cbuild import BPF_DIR
from harness.core.percpu import PerCpuTotals

if TYPE_CHECKING:
    from harness.core.program import Program

COVER_HEADER = BPF_DIR / "xhdr_cover.h"
COVERAGE_DEFINE = "XHDR_COVERAGE"
MAP_NAME = b"coverage"
_MEMBER = re.compile(r"^\s*XHDR_COV_([A-Z0-9_]+),", re.MULTILINE)


def _labels(header: Path) -> list[str]:
    """The member names of enum xhdr_cover, in order, without XHDR_COV_ and without the final COUNT."""
    text = header.read_text(encoding="utf-8")
    body = text[text.index("enum xhdr_cover {") : text.index("};", text.index("enum xhdr_cover {"))]
    names = _MEMBER.findall(body)
    if not names or names[-1] != "COUNT":
        raise RuntimeError(f"{header}: enum xhdr_cover must end with XHDR_COV_COUNT")
    return names[:-1]


# Member values are their positions, as in the C enum (no explicit values there).
Cover = enum.IntEnum("Cover", [(name, index) for index, name in enumerate(_labels(COVER_HEADER))])
Cover.__doc__ = "A labelled branch of bpf/xhdr.c (enum xhdr_cover in bpf/xhdr_cover.h)."

Hits = dict[str, int]


class CoverageReader:
    """Reads a coverage build's counters (cheap enough per example: one lookup)."""

    def __init__(self, program: Program) -> None:
        try:
            self._totals = PerCpuTotals(program.bpf[MAP_NAME].map_fd, MAP_NAME.decode(), len(Cover))
        except KeyError:
            raise ValueError(f"the program was not built with -D{COVERAGE_DEFINE}") from None

    def read(self) -> Hits:
        """Hits per label name, summed over CPUs; they only grow."""
        return {label.name: hits for label, hits in zip(Cover, self._totals.read(), strict=True)}


def has_coverage_map(program: Program) -> bool:
    return MAP_NAME in program.bpf
