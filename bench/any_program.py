"""Any XDP program under measurement: ``xhdr bench --object FILE`` and ``xhdr bench --compare REF --object FILE``.

The extractor's benchmark knows its configuration, its largest event and its lost-event counter. A user's
program is a file, the XDP program in it and, if it logs, a ring buffer map; that is enough for the same
measurement. The cap on the repeat count, which keeps the ring from filling during a test run (a full ring makes
the program's output fail early, and the figure cheap), comes from the ring's size and the bytes one run of the
case's frame is seen to write. A ring that does fill anyway is caught by the drain after every round.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench.kernel_cost import Case, repeat_cap_by_records
from harness.core.loader import LoadedXdp, load
from harness.core.native import map_info

UNCAPPED = 2**31 - 1  # the largest repeat count BPF_PROG_TEST_RUN takes: a program that writes nothing


@dataclasses.dataclass
class AnyProgram:
    """A loaded program and the ring buffer it logs to (None: it logs nothing a drain could count)."""

    loaded: LoadedXdp
    ring: str | None
    capacity: int  # the ring's bytes; 0 without a ring

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def fd(self) -> int:
        return self.loaded.fd

    def take_events(self) -> Sequence[object]:
        return self.loaded.records(self.ring) if self.ring else []

    def repeat_cap(self, frame: bytes, per_run: int) -> int:
        """From the bytes one run of ``frame`` writes, measured here: its records may vary with the frame."""
        if self.ring is None or per_run == 0:
            return UNCAPPED
        ring = self.ring
        return repeat_cap_by_records(self.fd, lambda: self.loaded.records(ring), self.capacity, frame)

    def lost(self) -> int:
        return 0  # no counter of its own that xhdr knows; the drains check every round's count instead

    def prepare(self, case: Case) -> None:
        """Nothing to set up: a user's program has no configuration xhdr writes."""


@contextlib.contextmanager
def any_program(path: Path, program: str | None = None, ring: str | None = None) -> Iterator[AnyProgram]:
    """``path`` (a .bpf.o or a BCC .c) loaded, with ``ring`` or else its only ring buffer map; unloaded on exit."""
    with load(path, program) as loaded:
        chosen = loaded.ring_named(ring)
        capacity = map_info(loaded.map_fd(chosen)).max_entries if chosen else 0
        yield AnyProgram(loaded, chosen, capacity)


def frame_cases(cases: Sequence[Case]) -> list[Case]:
    """The cases that differ by their frame: a user's program has no header configuration or rules to vary."""
    return [case for case in cases if case.group not in ("configured", "rules")]
