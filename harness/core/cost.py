"""Kernel-side cost per packet with BPF_PROG_TEST_RUN, next to the empty program measured in the same run.

A figure is only meaningful against its floor on the same machine at the same moment, so both programs
are measured round by round, interleaved, both held by the XDP dispatcher as attached programs are
(harness/core/dispatcher.py says why), with the procedure every kernel figure of xhdr uses
(harness/core/rounds.py): after each visit of the measured program its ring buffer is drained, so the
extractor always pays for writing its event, as live traffic does. That holds only for a frame every
repetition reads as a request start: see ``fast_open``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
from collections.abc import Callable, Iterator

from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether

from harness.core.bcc_loader import import_bcc
from harness.core.counters import Counter
from harness.core.dispatcher import held_by_dispatcher
from harness.core.paired import median_ratio
from harness.core.program import BPF_DIR, Program
from harness.core.rounds import RingFull, Subject, interleaved_round

EMPTY_SOURCE = BPF_DIR / "xdp_pass.c"


@dataclasses.dataclass(frozen=True)
class PairedFigures:
    """The kernel's mean ns per run of a program and of the empty program, round by round (paired), and the
    figures every report of a kernel cost gives from them."""

    measured: tuple[float, ...]  # the program measured: the extractor, or any program
    empty: tuple[float, ...]

    @property
    def rounds(self) -> int:
        return len(self.measured)

    @property
    def measured_ns(self) -> float:
        return statistics.median(self.measured)

    @property
    def empty_ns(self) -> float:
        return statistics.median(self.empty)

    @property
    def ratio(self) -> float:
        """The median of the rounds' ratios (harness/core/paired.py): a noisy round on one side moves it
        little."""
        return median_ratio(self.measured, self.empty)

    @property
    def spread_pct(self) -> float:
        """Interquartile range of the measured program's rounds, as a percentage of their median."""
        q1, _, q3 = statistics.quantiles(self.measured, n=4)
        return 100 * (q3 - q1) / self.measured_ns


@dataclasses.dataclass(frozen=True)
class CostFigure(PairedFigures):
    """A program's figure on one frame, as the demo, ``xhdr_cost`` and the baselines suite give it."""

    frame_bytes: int

    @property
    def extractor_ns(self) -> float:
        """The measured program's median, by the name the ``xhdr_cost`` fixture gave it from the start."""
        return self.measured_ns

    def to_json(self) -> dict:
        return {
            "extractor_ns": self.extractor_ns,
            "empty_ns": self.empty_ns,
            "frame_bytes": self.frame_bytes,
            "rounds": self.rounds,
            "ratio": round(self.ratio, 2),
        }


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
    """The extractor's cost and the empty program's on one frame (a ``fast_open`` one, so every repetition is
    parsed), its ring buffer drained after each visit; fails if the extractor lost an event meanwhile, which
    would make the figure too cheap."""
    lost_before = program.counters()[Counter.EVENTS_LOST]
    figure = measure_fd_cost(program.fd, frame, rounds, repeat, drain=lambda: len(program.take_events()))
    if program.counters()[Counter.EVENTS_LOST] != lost_before:
        raise RingFull(f"the extractor lost events while timed (repeat {repeat}); lower the repeat count")
    return figure


def measure_fd_cost(
    fd: int,
    frame: bytes,
    rounds: int = 40,
    repeat: int = 100,
    drain: Callable[[], int] | None = None,
) -> CostFigure:
    """The cost of any loaded XDP program (its fd) and of the empty program on one frame: ``rounds`` rounds
    of ``interleaved_round``, each ``2 * repeat`` runs a program; ``drain`` empties the program's ring buffer
    after each of its visits."""
    with empty_program_fd() as empty_fd, held_by_dispatcher([fd, empty_fd]):
        subjects = [Subject("measured", fd, drain), Subject("empty", empty_fd)]
        taken = [interleaved_round(subjects, frame, repeat, events=None) for _ in range(rounds)]
    return CostFigure(tuple(x for x, _ in taken), tuple(e for _, e in taken), frame_bytes=len(frame))
