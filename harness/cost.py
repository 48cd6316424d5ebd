"""Kernel-side cost per packet with BPF_PROG_TEST_RUN, next to the empty program measured in the same run.

A figure is only meaningful against its floor on the same machine at the same moment, so both programs
are measured round by round, interleaved. Each round runs ``repeat`` times (the kernel reports the mean)
and then drains the ring buffer, so the extractor always pays for writing its event, as live traffic does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
from collections.abc import Iterator

from harness.bcc_loader import import_bcc
from harness.program import BPF_DIR, Program
from harness.testrun import test_run

EMPTY_SOURCE = BPF_DIR / "xdp_pass.c"


@dataclasses.dataclass(frozen=True)
class CostFigure:
    extractor_ns: float  # median over rounds of the kernel's mean per run
    empty_ns: float
    frame_bytes: int
    rounds: int

    @property
    def ratio(self) -> float:
        return self.extractor_ns / self.empty_ns if self.empty_ns else float("inf")

    def to_json(self) -> dict:
        return dataclasses.asdict(self) | {"ratio": round(self.ratio, 2)}


@contextlib.contextmanager
def empty_program_fd() -> Iterator[int]:
    """The floor, bpf/xdp_pass.c, loaded by BCC: its program fd, unloaded on exit."""
    bcc = import_bcc()
    empty = bcc.BPF(src_file=str(EMPTY_SOURCE).encode())
    try:
        yield empty.load_func(b"xdp_pass", bcc.BPF.XDP).fd
    finally:
        empty.cleanup()


def measure_cost(program: Program, frame: bytes, rounds: int = 40, repeat: int = 100) -> CostFigure:
    """Median cost of the extractor and of the empty program on one frame."""
    extractor, floor = [], []
    with empty_program_fd() as empty_fd:
        for _ in range(rounds):
            extractor.append(test_run(program.fd, frame, repeat).duration_ns)
            program.take_events()
            floor.append(test_run(empty_fd, frame, repeat).duration_ns)
    return CostFigure(statistics.median(extractor), statistics.median(floor), len(frame), rounds)
