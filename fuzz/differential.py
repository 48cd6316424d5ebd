"""The differential property and the campaign that runs it: every frame's kernel outcome equals the reference's.

For each frame Hypothesis draws, the kernel program (through BPF_PROG_TEST_RUN) must write exactly the events
and move exactly the counters the reference predicts, and the verdict must be XDP_PASS (so never XDP_ABORTED).
The kernel keeps state per TCP flow (docs/EXTRACTION.md R15), so what the reference predicts depends on what
came before, and an example is made of two kinds of items (``fuzz.strategies.Item``):

- a frame alone is sent right after the SYN that opens its flow (``harness.core.driver.with_openings``), the state
  ``reference.extract`` assumes;
- a ``Flow`` is sent after its reset (an RST for its tuple, which clears what earlier examples left in the
  kernel's flow map), and its frames are compared one by one with a fresh ``reference.FlowTracker`` fed the
  same frames.

A mismatch raises ``Disagreement``, which Hypothesis shrinks to a minimal example; the campaign hands the shrunk
ones back so ``fuzz.repro`` can save them (a frame, or a whole flow).

``FUZZ_CONFIG`` has small limits on purpose: with a 16-byte value limit and a 320-byte view, random requests
cross every truncation and cut rule (R7, R9, R11, R13) all the time, where the default limits would need long
inputs that Hypothesis rarely draws. A part of a line reads at most 64 bytes per scan step and one scan
invocation runs 16 steps (bpf/xhdr.c), so requests also cross step boundaries and the tail call between two
scan invocations. The same limits cut TLS events (R22): a 24-byte SNI, 16 bytes of ALPN list and a 320-byte
view are all within reach of the hellos ``fuzz.strategies`` builds for ``tls_ports``.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Iterator, Sequence

import hypothesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.database import ExampleDatabase

from fuzz.runner import BatchTestRunDriver, Clock
from fuzz.strategies import Flow, Item, batches
from harness.core.config import ExtractorConfig
from harness.core.coverage import CoverageReader, Hits
from harness.core.driver import Driver, Outcome, with_openings
from harness.core.event import EventFlag, HeaderEvent, HttpResponse, SlotFlag, TlsFlag
from harness.core.program import Program
from harness.core.rules import Action, Condition, Match, Rule
from harness.oracle import reference
from harness.oracle.differences import outcome_differences
from harness.oracle.reference import Expected

FUZZ_CONFIG = ExtractorConfig(
    tls_ports=(443, 8443),
    responses=True,  # R24: requests wait for the responses the ``responses`` target sends
    max_header_lines=6,
    max_value_len=16,
    max_target_len=24,
    max_scan_bytes=320,
    max_requests_per_packet=3,
)
FUZZ_KEY = bytes(range(0x40, 0x50))  # fixed, so a repro's hashes are reproducible

# R27-R30: rules the fuzzed flows match now and then, one per action but sample, whose choice depends on how many
# matches each CPU counted before (tests/test_rules.py holds sample to the reference, counts reset per example).
FUZZ_RULES_CONFIG = FUZZ_CONFIG.with_changes(
    rules=(
        Rule("drop-deletes", Action.DROP, 1, (Condition("method", Match.EXACT, b"DELETE"),)),
        Rule("count-posts", Action.COUNT, 1, (Condition("method", Match.EXACT, b"POST"),), ("Host",)),
        Rule("log-a", Action.LOG, 1, (Condition("target", Match.PREFIX, b"/a"),)),
        Rule(
            "log-e",
            Action.LOG,
            1,
            (Condition("Host", Match.CONTAINS, b"e"), Condition("method", Match.PREFIX, b"G")),
        ),
    )
)


def frames_of(item: Item) -> tuple[bytes, ...]:
    """The frames of an item that are compared with the reference (a flow's reset is not)."""
    return item.frames if isinstance(item, Flow) else (item,)


def arriving(item: Item) -> tuple[bytes, ...]:
    """Of those, the ones the client sends (a flow's server frames leave the interface instead)."""
    return item.arriving if isinstance(item, Flow) else (item,)


def expectations(item: Item, config: ExtractorConfig, key: bytes) -> list[Expected]:
    """What the reference expects of each of the item's frames: a frame alone as right after its SYN, a flow's
    frames from one fresh FlowTracker fed them in order (the reset would change nothing in it, R15), the
    server's frames as leaving (R24, R25)."""
    if isinstance(item, Flow):
        tracker = reference.FlowTracker(config, key)
        return [
            tracker.respond(frame) if index in item.leaving else tracker.feed(frame)
            for index, frame in enumerate(item.frames)
        ]
    return [reference.extract(item, config, key)]


def _set_up(item: Item) -> list[bytes]:
    """What goes before the item so that the kernel's state is what ``expectations`` assumes."""
    if isinstance(item, Flow):
        return [item.reset]
    sent, positions = with_openings([[item]])
    return sent[: positions[0]]


def feed_items(driver: Driver, items: Sequence[Item]) -> list[list[Outcome]]:
    """Sends every item after its set-up, all in one ``feed``; the outcomes of each item's own frames."""
    sent: list[bytes] = []
    spans: list[range] = []
    leaving: set[int] = set()
    for item in items:
        sent.extend(_set_up(item))
        frames = frames_of(item)
        if isinstance(item, Flow):
            leaving.update(len(sent) + index for index in item.leaving)
        spans.append(range(len(sent), len(sent) + len(frames)))
        sent.extend(frames)
    outcomes = driver.feed(sent, leaving) if leaving else driver.feed(sent)
    return [[outcomes[position] for position in span] for span in spans]


def _differing(outcomes: Sequence[Outcome], expected: Sequence[Expected]) -> Iterator[tuple[int, list[str]]]:
    """(index, differences) of each frame whose kernel outcome is not the reference's, in order."""
    for index, (outcome, want) in enumerate(zip(outcomes, expected, strict=True)):
        differences = outcome_differences(outcome, want)
        if differences:
            yield index, differences


def replay(driver: Driver, item: Item, config: ExtractorConfig, key: bytes) -> list[str]:
    """Every difference between the kernel and the reference on one item, each line naming its frame."""
    (outcomes,) = feed_items(driver, [item])
    differing = _differing(outcomes, expectations(item, config, key))
    return [f"frame {index}: {line}" for index, lines in differing for line in lines]


# Bytes a mutant's edits favour: the ones the parser's branches turn on, then any byte.
SPECIAL_BYTES = b"\r\n \t:;,/()\x00\x7f\x800Az-_"
ETH_P_IP, ETH_P_IPV6, VLAN_TPIDS = 0x0800, 0x86DD, (0x8100, 0x88A8)


def payload_offset(frame: bytes) -> int:
    """Where the TCP payload of an Ethernet frame starts (VLAN tags, IPv4 options, TCP options skipped); the
    frame's length when there is no readable payload, so mutants then edit anywhere."""
    at, proto = 14, int.from_bytes(frame[12:14], "big") if len(frame) >= 14 else 0
    while proto in VLAN_TPIDS and len(frame) >= at + 4:
        proto, at = int.from_bytes(frame[at + 2 : at + 4], "big"), at + 4
    if proto == ETH_P_IP and len(frame) > at:
        at += (frame[at] & 0x0F) * 4
    elif proto == ETH_P_IPV6:
        at += 40
    else:
        return len(frame)
    return at + (frame[at + 12] >> 4) * 4 if len(frame) > at + 12 else len(frame)


def mutants(frame: bytes, rng: random.Random, count: int) -> list[bytes]:
    """``count`` cheap byte-level mutants of a frame: 1-3 edits each, in its payload when it has one (a byte
    replaced by a special or any byte, its ASCII case flipped, a byte inserted or deleted). Unlike
    ``strategies.mutated`` they cost no Hypothesis draws: the campaign makes many per example from one seed."""
    start = payload_offset(frame)
    if start >= len(frame):
        start = 0
    made = []
    for _ in range(count):
        data = bytearray(frame)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(start, len(data)) if len(data) > start else len(data) - 1
            kind = rng.random()
            if kind < 0.45:
                data[at] = SPECIAL_BYTES[rng.randrange(len(SPECIAL_BYTES))]
            elif kind < 0.6:
                data[at] ^= 0x20
            elif kind < 0.75:
                data[at] = rng.randrange(256)
            elif kind < 0.9:
                data.insert(at, SPECIAL_BYTES[rng.randrange(len(SPECIAL_BYTES))])
            elif len(data) > 64:
                del data[at]
        made.append(bytes(data))
    return made


class Disagreement(AssertionError):
    """The kernel and the reference disagree on frame ``index`` of an item; carries what the repro file needs:
    the item, and the kernel's and the reference's outcomes of all its frames."""

    def __init__(
        self,
        item: Item,
        outcomes: Sequence[Outcome],
        expected: Sequence[Expected],
        differences: list[str],
        index: int = 0,
    ) -> None:
        frame = frames_of(item)[index]
        where = f"{len(frame)}-byte frame {frame.hex()}"
        if isinstance(item, Flow):
            sent = " ".join(each.hex() for each in item.sent)
            where = f"frame {index} of a {len(item.frames)}-frame flow (its reset, then its frames: {sent})"
        super().__init__(f"{where}: " + "; ".join(differences))
        self.item = item
        self.index = index
        self.outcomes = tuple(outcomes)
        self.expectations = tuple(expected)
        self.differences = differences

    @property
    def frame(self) -> bytes:
        """The frame the two sides disagree on."""
        return frames_of(self.item)[self.index]

    @property
    def outcome(self) -> Outcome:
        return self.outcomes[self.index]

    @property
    def expected(self) -> Expected:
        return self.expectations[self.index]


def flag_names(flags: EventFlag | SlotFlag | TlsFlag) -> str:
    """The names of the set flags joined by ``+`` (``-`` for none): readable where a bitmask is not, and
    free of ``|`` so it can stand in a markdown table."""
    return "+".join(flag.name for flag in type(flags) if flags & flag) or "-"


def outcome_class(expected: Expected) -> str:
    """A coarse name for what a frame exercised: its outcome counter, the event and slot flags it set, and how
    many events it wrote, as ``outcome/event flags/slot flags/events``. A TLS event's flags (R22) are its
    event flags; it has no slots.

    The campaign counts distinct classes to show whether a run still reaches new behaviour.
    """
    event_flags: EventFlag | TlsFlag = EventFlag(0)
    slot_flags = SlotFlag(0)
    for event in expected.events:
        if isinstance(event, HttpResponse):
            continue  # a response has no flags; its class is its counter's
        if not isinstance(event, HeaderEvent):
            event_flags = event.flags  # one TLS event a frame, and no request beside it
            continue
        event_flags |= event.flags
        for slot in event.headers:
            slot_flags |= slot.flags
    events = str(len(expected.events))
    return "/".join((expected.outcome_label, flag_names(event_flags), flag_names(slot_flags), events))


class CoverageTrack:
    """The labelled branches of a coverage build (harness/core/coverage.py) that the campaign's examples ran.

    Read once per example (one map lookup). With ``feedback``, each example reports one score to Hypothesis's
    ``target()``, which then mutates the examples that score best: the rarity of the rarest label it hit
    (1 / (1 + that label's earlier hits)), so an example reaching a branch few others reach scores high
    whatever its size. (A score that grows with the labels hit steered Hypothesis to ever larger examples:
    four times fewer examples per second, and fewer labels reached.) ``over_time`` has a sample each time
    a label is hit first.
    """

    def __init__(self, program: Program, feedback: bool) -> None:
        self.reader = CoverageReader(program)
        self.feedback = feedback
        self.start = self.reader.read()
        self.last = self.start
        self.covered = {label for label, count in self.start.items() if count}
        self.over_time: list[tuple[float, int, int]] = [(0.0, 0, len(self.covered))]

    def totals(self) -> Hits:
        """Hits per label since the campaign started."""
        return {label: self.last[label] - self.start[label] for label in self.last}

    def example_ran(self, progress: CampaignProgress) -> None:
        now = self.reader.read()
        hit = [label for label, count in now.items() if count != self.last[label]]
        if self.feedback and hit:
            rarest = min(self.last[label] - self.start[label] for label in hit)
            hypothesis.target(1.0 / (1 + rarest), label="rarest label hit")
        self.last = now
        new = set(hit) - self.covered
        if new:
            self.covered |= new
            self.over_time.append((round(progress.elapsed, 3), progress.examples, len(self.covered)))


@dataclasses.dataclass
class CampaignProgress:
    """What the live progress line shows."""

    examples: int = 0
    frames: int = 0
    compared: int = 0  # items compared with the reference: the examples' own, and the mutants made of them
    failing_examples: int = 0
    classes: set[str] = dataclasses.field(default_factory=set)
    first_failure: tuple[int, float] | None = None  # (examples run, seconds) when the first failure was seen
    labels: tuple[int, int] | None = None  # (labels hit, labels) of a coverage build
    started: float = dataclasses.field(default_factory=time.perf_counter)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def line(self, failures: int) -> str:
        rate = self.examples / self.elapsed if self.elapsed > 0 else 0.0
        compared = self.compared / self.elapsed if self.elapsed > 0 else 0.0
        return (
            f"examples {self.examples} | {rate:.0f}/s | compared {compared:.0f}/s | frames {self.frames} | "
            f"outcome classes {len(self.classes)} | "
            + (f"labels {self.labels[0]}/{self.labels[1]} | " if self.labels else "")
            + f"failures {failures}"
        )


class Campaign:
    """Runs the differential property on one loaded Program; keeps progress and the time split across runs."""

    def __init__(
        self,
        program: Program,
        *,
        target: str = "all",
        on_example: Callable[[CampaignProgress], None] | None = None,
        on_frames: Callable[[list[bytes]], None] | None = None,
        coverage: bool = False,
        feedback: bool = True,
        mutants: int = 0,
    ) -> None:
        """``coverage`` needs a coverage build (``Program(coverage=True)``); ``feedback`` then steers Hypothesis
        by it (CoverageTrack), else coverage is only reported. ``mutants`` > 0 also runs that many byte-level
        mutants of each frame of an example (``mutants()``, from a seed the example draws), in the same batch:
        a failing mutant is reported, and saved, as the frame it is."""
        self.program = program
        self.on_frames = on_frames  # sees every example's frames, e.g. to keep a sample for the lab
        self.driver = BatchTestRunDriver(program)
        self.strategy = batches(program.config, target)
        self.target = target
        self.clock = Clock()
        self.progress = CampaignProgress()
        self.on_example = on_example
        self.coverage = CoverageTrack(program, feedback) if coverage else None
        self.mutants = mutants

    def check(self, items: list[Item], seed: int = 0) -> None:
        """The property: every frame's kernel outcome equals the reference's; raises Disagreement if not."""
        progress = self.progress
        progress.examples += 1
        if self.mutants:
            with self.clock.timing("generation"):
                rng = random.Random(seed)
                frames_alone = [item for item in items if not isinstance(item, Flow)]
                items = items + [
                    mutant for frame in frames_alone for mutant in mutants(frame, rng, self.mutants)
                ]
        progress.compared += len(items)
        frames = [frame for item in items for frame in frames_of(item)]
        progress.frames += len(frames)
        if (
            self.on_frames is not None
        ):  # each alone is valid after its own SYN too, as the lab sample sends them
            self.on_frames([frame for item in items for frame in arriving(item)])
        try:
            with self.clock.timing("test_run"):
                outcomes = feed_items(self.driver, items)
                if self.coverage is not None:
                    self.coverage.example_ran(progress)
                    progress.labels = (len(self.coverage.covered), len(self.coverage.last))
            for item, got in zip(items, outcomes, strict=True):
                with self.clock.timing("reference"):
                    expected = expectations(item, self.program.config, self.program.key)
                with self.clock.timing("compare"):
                    found = next(_differing(got, expected), None)
                progress.classes.update(outcome_class(want) for want in expected)
                if found is not None:
                    progress.failing_examples += 1
                    if progress.first_failure is None:
                        progress.first_failure = (progress.examples, progress.elapsed)
                    index, differences = found
                    raise Disagreement(item, got, expected, differences, index)
        finally:
            if self.on_example is not None:
                self.on_example(progress)

    def _check_with_seed(self, drawn: tuple[list[Item], int]) -> None:
        self.check(*drawn)

    def run(
        self,
        max_examples: int,
        *,
        seed: int | None = None,
        database: ExampleDatabase | None = None,
        derandomize: bool = False,
        quiet: bool = True,
    ) -> list[Disagreement]:
        """One Hypothesis run of up to ``max_examples`` examples; the shrunk disagreements it ends with.

        With a ``database`` the run first replays the failures saved there (Hypothesis's reuse phase) and saves
        the ones it finds; a ``seed`` or ``derandomize`` turns the database off, as Hypothesis always does.
        """
        # The body of differential() below must not change: with derandomize, Hypothesis seeds from its
        # source, and tests/test_fuzz.py's planted-bug budget holds for that seed. So mutants come in through
        # the strategy (the seed drawn with the items) and a check that unpacks them.
        check: Callable[..., None] = self.check
        clock = self.clock
        strategy: st.SearchStrategy = self.strategy
        if self.mutants:
            strategy = st.tuples(strategy, st.integers(0, 2**32 - 1))
            check = self._check_with_seed

        @settings(
            max_examples=max_examples,
            database=database,
            derandomize=derandomize and seed is None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet if quiet else Verbosity.normal,
            print_blob=False,
            report_multiple_bugs=True,
            # No explain phase: it reruns the shrunk example many times to annotate it, and the repro file
            # (kernel output, reference output, the diff) already says what went wrong.
            phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink),
        )
        @given(st.data())
        def differential(data: st.DataObject) -> None:
            with clock.timing("generation"):  # drawn here, not by @given, so that it can be timed alone
                items = data.draw(strategy)
            check(items)

        if seed is not None:
            differential = hypothesis.seed(seed)(differential)
        try:
            differential()
        except Disagreement as found:
            return [found]
        except BaseExceptionGroup as group:
            matched, rest = group.split(Disagreement)
            if rest is not None:
                raise rest from group
            return _leaves(matched)
        return []


def _leaves(group: BaseExceptionGroup | None) -> list[Disagreement]:
    """The Disagreements inside a (nested) exception group, in order."""
    if group is None:
        return []
    found: list[Disagreement] = []
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            found.extend(_leaves(error))
        elif isinstance(error, Disagreement):
            found.append(error)
    return found
