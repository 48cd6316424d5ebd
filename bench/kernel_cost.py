"""Benchmark 1: the extractor's in-kernel cost per packet (BPF_PROG_TEST_RUN) against the empty XDP program.

Why it is measured this way:

- The floor (bpf/xdp_pass.c) is measured in the same run, round by round, interleaved with the extractor,
  so a ratio compares two figures taken under the same load; on a shared 2-core machine the absolute
  figures drift by tens of percent between runs while the paired ratio barely moves.
- Each round runs every subject ``2 * repeat`` times (the kernel reports the mean per run of a test run,
  excluding time the task was scheduled out) in short test runs visited in ABBA order, several passes, and
  takes the median of each subject's visits (``interleaved_round``, harness/core/rounds.py): a drift within
  a round hits both sides alike, and a burst of interference that slows a few visits does not move the
  round's figure.
- After every extractor run the ring buffer is drained, and the number of events is checked: a full ring
  makes ``bpf_ringbuf_output`` fail early, which would make the figure cheaper than live traffic and
  dishonest. ``repeat`` is therefore capped by the ring's capacity.

The matrix is a table of cases (``cases(profile)``); a new variant is one more entry. ``bench/test_kernel_cost.py``
runs it under pytest-benchmark; ``bench/ab_gate.py`` times the A/B gate's rounds with the same
``interleaved_round``.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Literal, Protocol

from bench.results import Row
from harness.core.config import DEFAULT_HEADERS, ExtractorConfig
from harness.core.cost import PairedFigures, empty_program_fd, fast_open
from harness.core.counters import Counter
from harness.core.event import event_struct
from harness.core.program import Program
from harness.core.rounds import RingFull, Subject, interleaved_round, timed_repeat
from harness.core.rules import MAX_RULES, Action, Condition, Match, Rule
from harness.core.testrun import test_run
from harness.oracle.corpus import standard_frame
from harness.oracle.frames import FrameSpec, build
from harness.oracle.tls import curl_like

FRAME_OVERHEAD = 54  # Ethernet 14 + IPv4 20 + TCP 20: the bytes of a frame that are not payload

Profile = Literal["quick", "full"]


@dataclasses.dataclass(frozen=True)
class ProfileSettings:
    """How long each case is measured: rounds of interleaved test runs, and runs per test run."""

    rounds: int
    warmup: int
    repeat: int  # capped by the ring buffer's capacity, see max_repeat()


PROFILES: dict[str, ProfileSettings] = {
    "quick": ProfileSettings(rounds=15, warmup=2, repeat=100),
    "full": ProfileSettings(rounds=41, warmup=3, repeat=100),
}

# Sweeps: which values each profile measures. The full profile is the matrix.
FRAME_SIZES = {"quick": (64, 512, 1500), "full": (64, 128, 256, 512, 768, 1024, 1280, 1500)}
HEADER_COUNTS = {"quick": (0, 8, 32), "full": (0, 1, 2, 4, 8, 12, 16, 24, 32)}
CONFIGURED = {"quick": (1, 8), "full": (1, 2, 3, 4, 5, 6, 7, 8)}
# R27: rule sets on the standard request, by size: one rule, eight, and the most a set may hold.
RULE_SETS = {"quick": ("1", "max"), "full": ("1", "8", "max")}


@dataclasses.dataclass(frozen=True)
class Case:
    """One frame under one configuration; ``group`` names the sweep it belongs to (the plot it feeds)."""

    name: str
    group: str  # "standard", "frame_size", "header_count", "configured", "rules", "worst", "tls"
    frame: bytes
    config: ExtractorConfig
    params: dict[str, int | str]
    description: str = ""

    @property
    def payload_bytes(self) -> int:
        return len(self.frame) - FRAME_OVERHEAD


# Every benchmark frame is a SYN carrying its request (harness.core.cost.fast_open): a case runs the same frame
# many times in a row, and a repeated data segment would be read once, then be `retransmitted` (R16).


def benchmark_frame() -> bytes:
    """The standard request of the corpus (the realistic 8-header API call the targets are set on) as a
    SYN with data (``fast_open``), so every repetition is parsed."""
    return fast_open(standard_frame())


def _frame(payload: bytes) -> bytes:
    return fast_open(build(FrameSpec(payload=payload)))


def tls_hello_frame() -> bytes:
    """curl's ClientHello to port 443 (R22), as a SYN with data: what each TLS connection costs."""
    return fast_open(build(FrameSpec(payload=curl_like(b"api.shop.example").to_bytes(), dport=443)))


def sized_request(frame_bytes: int) -> bytes:
    """A request whose frame is exactly ``frame_bytes`` long: a filler header grows it, a cut shrinks it."""
    head = b"GET /api/v2/items HTTP/1.1\r\nHost: api.shop.example\r\nX-Fill: "
    tail = b"\r\n\r\n"
    payload_len = frame_bytes - FRAME_OVERHEAD
    filler = max(0, payload_len - len(head) - len(tail))
    payload = (head + b"f" * filler + tail)[:payload_len]
    return _frame(payload)


def request_with_headers(count: int, value_len: int = 20) -> bytes:
    """A request with ``count`` header lines, none of them configured: pure scanning and name matching."""
    lines = b"".join(b"X-Filler-%02d: %s\r\n" % (i, b"v" * value_len) for i in range(count))
    return _frame(b"GET /api/v2/items HTTP/1.1\r\n" + lines + b"\r\n")


def _fill_to(head: bytes, tail_line: bytes, lines_left: int, size: int) -> bytes:
    """``head``, then ``lines_left`` filler lines, then ``tail_line`` and the empty line, ``size`` bytes."""
    room = size - len(head) - len(tail_line) - 2
    per_line = room // lines_left
    lines = []
    for i in range(lines_left):
        width = per_line + (room - per_line * lines_left if i == lines_left - 1 else 0)
        prefix = b"X-F%02d: " % i
        lines.append(prefix + b"w" * (width - len(prefix) - 2) + b"\r\n")
    payload = head + b"".join(lines) + tail_line + b"\r\n"
    assert len(payload) == size, (len(payload), size)
    return payload


def worst_scan_limit(config: ExtractorConfig) -> bytes:
    """Header lines up to both limits at once: max_header_lines lines filling exactly max_scan_bytes."""
    head = b"GET /api/v2/items HTTP/1.1\r\n"
    last = b"X-Filler-last: " + b"w" * 8 + b"\r\n"
    return _frame(_fill_to(head, last, config.max_header_lines - 1, config.max_scan_bytes))


def worst_last_header_last(config: ExtractorConfig) -> bytes:
    """Every configured header present with long values, secrets to hash, and the last one on the last line.

    The last configured header (Cookie) ends exactly at the scan limit and the header-line limit, so the
    scan, the name matching of every line and both hash passes all run to their bounds.
    """
    long = b"a" * config.max_value_len
    head = (
        b"POST /api/v2/orders/81723?include=items HTTP/1.1\r\n"
        b"Host: api.shop.example\r\nUser-Agent: " + long[:64] + b"\r\nX-Request-ID: " + long[:36] + b"\r\n"
        b"X-Forwarded-For: 203.0.113.7\r\nReferer: https://shop.example/" + long[:64] + b"\r\n"
        b"X-API-Version: 2024-06-01\r\nAuthorization: Bearer " + long + b"\r\n"
    )
    last = b"Cookie: " + b"c" * 96 + b"\r\n"
    return _frame(_fill_to(head, last, config.max_header_lines - 8, config.max_scan_bytes))


def rule_set(size: str) -> tuple[Rule, ...]:
    """R27: rules the standard request is judged by, every one tried before the last matches it (log).

    ``1``: that one rule; ``8``: seven rules before it whose second condition fails; ``max``: as many
    conditions and contains tests as a set may hold (16 and 4), each contains test running over the whole
    of one of the request's longest fields without finding its pattern.
    """
    host = Condition("Host", Match.EXACT, b"api.shop.example")
    last = Rule("orders", Action.LOG, 1, (Condition("target", Match.PREFIX, b"/api/v2/orders"),))
    if size == "1":
        return (last,)
    misses = [(host, Condition("method", Match.EXACT, b"DELETE"))] * (MAX_RULES - 1)
    if size == "max":
        fields = ("X-Request-ID", "Referer", "target", "User-Agent")
        misses[: len(fields)] = [(host, Condition(field, Match.CONTAINS, b"EvilScanner")) for field in fields]
        last = dataclasses.replace(last, conditions=(*last.conditions, host))
    return (*(Rule(f"miss-{n}", Action.DROP, 1, conditions) for n, conditions in enumerate(misses)), last)


def cases(profile: Profile = "full", config: ExtractorConfig | None = None) -> list[Case]:
    """The matrix of benchmark 1 for a profile: standard request, the three sweeps, the worst cases."""
    config = config or ExtractorConfig()
    standard = benchmark_frame()
    found: list[Case] = [
        Case("standard", "standard", standard, config, {}, "the standard API request (corpus fixture)")
    ]
    for size in FRAME_SIZES[profile]:
        found.append(
            Case(f"frame_{size}", "frame_size", sized_request(size), config, {"frame_bytes_target": size})
        )
    for count in HEADER_COUNTS[profile]:
        found.append(
            Case(f"headers_{count}", "header_count", request_with_headers(count), config, {"headers": count})
        )
    for configured in CONFIGURED[profile]:
        subset = config.with_changes(headers=DEFAULT_HEADERS[:configured])
        found.append(
            Case(
                f"configured_{configured}",
                "configured",
                standard,
                subset,
                {"configured_headers": configured},
            )
        )
    for size in RULE_SETS[profile]:
        rules = rule_set(size)
        found.append(
            Case(
                f"rules_{size}",
                "rules",
                standard,
                config.with_changes(rules=rules),
                {"rules": len(rules), "conditions": sum(len(rule.conditions) for rule in rules)},
                f"the standard request judged by {len(rules)} rules (R27)",
            )
        )
    found.append(
        Case("worst_scan_limit", "worst", worst_scan_limit(config), config, {}, "header lines to both limits")
    )
    found.append(
        Case(
            "worst_last_header_last",
            "worst",
            worst_last_header_last(config),
            config,
            {},
            "all configured headers, long values, the last one last at the scan limit",
        )
    )
    found.append(Case("tls_hello", "tls", tls_hello_frame(), config, {}, "a TLS ClientHello like curl's"))
    return found


# -- measuring ---------------------------------------------------------------------------------------


RING_HEADER = 8  # the kernel's header before each ring-buffer record


def ring_bytes(record_size: int) -> int:
    """What one record of ``record_size`` bytes takes in a ring buffer: header, record, padding to 8."""
    return (RING_HEADER + record_size + 7) // 8 * 8


def repeat_within(capacity: int, bytes_per_run: int) -> int:
    """The most runs one test run may make before what they write could fill a ring of ``capacity`` bytes."""
    return max(1, capacity // max(1, bytes_per_run) - 1)


def max_repeat(config: ExtractorConfig, events_per_run: int = 1) -> int:
    """The most runs one test run of the extractor may make before its events could fill the ring buffer
    (every event counted at the largest record size)."""
    record = ring_bytes(ctypes.sizeof(event_struct(config.max_target_len, config.max_value_len)))
    return repeat_within(config.ring_bytes, record * max(1, events_per_run))


def repeat_cap_by_records(fd: int, take: Callable[[], Sequence[bytes]], capacity: int, frame: bytes) -> int:
    """The repeat cap of a program whose records are raw bytes: one run of ``frame``, and what it wrote."""
    take()
    test_run(fd, frame, 1)
    return repeat_within(capacity, sum(ring_bytes(len(record)) for record in take()))


class Measured(Protocol):
    """A loaded program under measurement, whichever it is: the extractor (``ExtractorUnderTest``), a build the
    gate loaded in a helper process (bench/foreign.py), or a user's program (bench/any_program.py)."""

    name: str

    @property
    def fd(self) -> int: ...

    def take_events(self) -> Sequence[object]:
        """Everything it wrote since the last call (the ring is drained)."""
        ...

    def repeat_cap(self, frame: bytes, per_run: int) -> int:
        """How many runs of ``frame`` one test run may make without filling its ring buffer."""
        ...

    def lost(self) -> int:
        """Events it has lost so far, by its own count (0 when it keeps none)."""
        ...

    def prepare(self, case: Case) -> None:
        """Set up for ``case`` before its first round (maps only, no reload)."""
        ...


@dataclasses.dataclass
class ExtractorUnderTest:
    """The extractor as a :class:`Measured`: reconfigured per case, capped by its largest event, counting its
    own lost events."""

    program: Program
    name: str = "extractor"

    @property
    def fd(self) -> int:
        return self.program.fd

    def take_events(self) -> Sequence[object]:
        return self.program.take_events()

    def repeat_cap(self, frame: bytes, per_run: int) -> int:
        return max_repeat(self.program.config, per_run)

    def lost(self) -> int:
        return self.program.counters()[Counter.EVENTS_LOST]

    def prepare(self, case: Case) -> None:
        """The case's headers and rules, in the maps (the limits are the program's)."""
        wanted = self.program.config.with_changes(headers=case.config.headers, rules=case.config.rules)
        if wanted != self.program.config:
            self.program.configure(wanted)


@contextlib.contextmanager
def empty_program() -> Iterator[Subject]:
    """The floor: bpf/xdp_pass.c loaded by BCC, closed on exit."""
    with empty_program_fd() as fd:
        yield Subject("empty", fd)


def program_subject(name: str, program: Measured) -> Subject:
    return Subject(name, program.fd, lambda: len(program.take_events()))


def events_per_run(program: Measured, frame: bytes) -> int:
    """How many events one run of ``frame`` emits (the expectation every later drain is checked against)."""
    program.take_events()
    test_run(program.fd, frame, 1)
    return len(program.take_events())


@dataclasses.dataclass(frozen=True)
class CaseResult(PairedFigures):
    """The paired rounds of one case, and its result rows; ``method`` names the program in them
    ("extractor", or a user's program's name)."""

    case: Case
    repeat: int
    events_per_run: int
    method: str = "extractor"

    def rows(self) -> list[Row]:
        """The result rows of this case; the metric names are those of reports/metrics.py."""
        params = {
            "case": self.case.name,
            "group": self.case.group,
            "frame_bytes": len(self.case.frame),
            "payload_bytes": self.case.payload_bytes,
            "bytes_scanned": min(self.case.payload_bytes, self.case.config.max_scan_bytes),
            "configured_headers": len(self.case.config.headers),
            "rounds": len(self.measured),
            "repeat": self.repeat,
            "events_per_run": self.events_per_run,
            **self.case.params,
        }
        payload = max(1, self.case.payload_bytes)
        return [
            Row(self.method, "ns_per_packet", round(self.measured_ns, 2), "ns", params),
            Row("empty", "ns_per_packet", round(self.empty_ns, 2), "ns", params),
            Row(self.method, "ns_per_byte", round(self.measured_ns / payload, 3), "ns/B", params),
            Row(self.method, "ratio_to_empty", round(self.ratio, 2), "x", params),
            Row(self.method, "spread_pct", round(self.spread_pct, 1), "%", params),
        ]


class CaseMeasurement:
    """Rounds of one case, one at a time, so pytest-benchmark can time each round it asks for.

    The program is prepared for the case first (the extractor: its headers written to the maps), and the
    number of events one run emits is taken as the expectation every drain is checked against.
    """

    def __init__(self, program: Measured, empty: Subject, case: Case, repeat: int = 100) -> None:
        program.prepare(case)
        self.program = program
        self.case = case
        self.per_run = events_per_run(program, case.frame)
        self.repeat = timed_repeat(repeat, program.repeat_cap(case.frame, self.per_run))
        self.subjects = [program_subject(program.name, program), empty]
        self.lost_before = program.lost()
        self.measured: list[float] = []
        self.empty: list[float] = []

    def round(self) -> None:
        x, e = interleaved_round(self.subjects, self.case.frame, self.repeat, self.per_run)
        self.measured.append(x)
        self.empty.append(e)

    def result(self, rounds: int) -> CaseResult:
        """The last ``rounds`` rounds (earlier ones were warm-up); fails if any event was lost."""
        if self.program.lost() != self.lost_before:
            raise RingFull(f"{self.case.name}: {self.program.name} lost events during the measurement")
        return CaseResult(
            measured=tuple(self.measured[-rounds:]),
            empty=tuple(self.empty[-rounds:]),
            case=self.case,
            repeat=self.repeat,
            events_per_run=self.per_run,
            method=self.program.name,
        )
