"""Kernel-side cost per packet with BPF_PROG_TEST_RUN, next to the empty program measured in the same run.

A figure is only meaningful against its floor on the same machine at the same moment, so both programs
are measured round by round, interleaved, both held by the XDP dispatcher as attached programs are
(harness/core/dispatcher.py says why). Each round runs ``repeat`` times (the kernel reports the mean)
and then drains the ring buffer, so the extractor always pays for writing its event, as live traffic does.
That holds only for a frame every repetition reads as a request start: see ``fast_open``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
from collections.abc import Callable, Iterator

from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether

from harness.core.bcc_loader import import_bcc
from harness.core.dispatcher import held_by_dispatcher
from harness.core.program import BPF_DIR, Program
from harness.core.testrun import test_run

EMPTY_SOURCE = BPF_DIR / "xdp_pass.c"


@dataclasses.dataclass(frozen=True)
class CostFigure:
    extractor_ns: float  # median over rounds of the kernel's mean per run (the program measured, any program)
    empty_ns: float
    frame_bytes: int
    rounds: int

    @property
    def ratio(self) -> float:
        return self.extractor_ns / self.empty_ns if self.empty_ns else float("inf")

    def to_json(self) -> dict:
        return dataclasses.asdict(self) | {"ratio": round(self.ratio, 2)}


def fast_open(frame: bytes) -> bytes:
    """``frame`` with its TCP flags set to a lone SYN (checksum recomputed): a TCP Fast Open SYN with data.

    Why: benchmarks repeat one frame with BPF_PROG_TEST_RUN, and the extractor keeps state per flow
    (docs/EXTRACTION.md R15, R16). A data segment repeated would be read once and then be ``retransmitted``
    (or ``mid_stream`` without its SYN), so the figure would time the cheap path. A SYN opens its flow on
    every run, with the payload at seq + 1, so every repetition is a request start that is parsed and logged.
    """
    packet = Ether(frame)
    packet[TCP].flags = "S"
    del packet[TCP].chksum
    return bytes(packet)


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
    """Median cost of the extractor and of the empty program on one frame (a ``fast_open`` one, so every
    repetition is parsed); the ring buffer is drained after each round."""
    return measure_fd_cost(program.fd, frame, rounds, repeat, after_round=program.take_events)


def measure_fd_cost(
    fd: int,
    frame: bytes,
    rounds: int = 40,
    repeat: int = 100,
    after_round: Callable[[], object] = lambda: None,
) -> CostFigure:
    """Median cost of any loaded XDP program (its fd) and of the empty program on one frame, interleaved round
    by round; ``after_round`` runs after each of the program's rounds (to drain what it wrote)."""
    measured, floor = [], []
    with empty_program_fd() as empty_fd, held_by_dispatcher([fd, empty_fd]):
        for _ in range(rounds):
            measured.append(test_run(fd, frame, repeat).duration_ns)
            after_round()
            floor.append(test_run(empty_fd, frame, repeat).duration_ns)
    return CostFigure(statistics.median(measured), statistics.median(floor), len(frame), rounds)
