"""Request rules (docs/EXTRACTION.md R27-R29): how a configuration states them, and the kernel against the reference.

Rules are checked where they are read (one-line errors for every way a rule can be wrong) and where they act:
random rule sets are loaded into one program at runtime, as ``xhdr log`` does on SIGHUP, and random conversations
of pipelined requests run through it by BPF_PROG_TEST_RUN; each frame's verdict, events and counters must equal
the reference's. The sample action counts per CPU, so the tests run on one CPU.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.core.config import METHOD_MAX_LEN, ConfigError, ExtractorConfig, load_config
from harness.core.counters import Counter
from harness.core.driver import TestRunDriver
from harness.core.event import EventFlag
from harness.core.program import Program
from harness.core.rules import (
    CONDITIONS_MAX,
    CONTAINS_MAX,
    CONTAINS_PATTERN_MAX,
    CONTAINS_SPAN,
    COUNT_BY_MAX,
    MAX_CONDITIONS,
    MAX_RULES,
    PATTERN_MAX,
    Action,
    Condition,
    Match,
    Rule,
)
from harness.core.testrun import XDP_DROP, XDP_PASS, on_one_cpu
from harness.log.command import counter_line
from harness.oracle.frames import FrameSpec, build
from harness.oracle.reference import FlowTracker, siphash24

ISSUE_EXAMPLE = """
[[rules]]
name = "block-scanner"
action = "drop"                      # log | drop | count | sample
[rules.when]
"User-Agent" = { contains = "EvilScanner" }
Referer = { prefix = "http://exploit." }
[[rules]]
name = "search-endpoint"
action = "sample"
every = 10
[rules.when]
target = { prefix = "/api/v2/products/search" }
"""


def loaded(tmp_path: Path, text: str) -> ExtractorConfig:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return load_config(path)


def test_the_documented_example_reads_as_two_rules(tmp_path: Path) -> None:
    assert loaded(tmp_path, ISSUE_EXAMPLE).rules == (
        Rule(
            "block-scanner",
            Action.DROP,
            1,
            (
                Condition("User-Agent", Match.CONTAINS, b"EvilScanner"),
                Condition("Referer", Match.PREFIX, b"http://exploit."),
            ),
        ),
        Rule(
            "search-endpoint",
            Action.SAMPLE,
            10,
            (Condition("target", Match.PREFIX, b"/api/v2/products/search"),),
        ),
    )


def rule(
    name: str = "r", action: str = "log", when: str = "target = { prefix = '/' }", extra: str = ""
) -> str:
    return f"[[rules]]\nname = '{name}'\naction = '{action}'\n{extra}\n[rules.when]\n{when}\n"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (rule(when="X-Nope = { exact = 'a' }"), "'X-Nope', which is not logged by value"),
        (rule(when="Cookie = { exact = 'a' }"), "'Cookie', which is not logged by value"),
        (rule(when=f"target = {{ prefix = '{'a' * (PATTERN_MAX + 1)}' }}"), f"holds at most {PATTERN_MAX}"),
        (
            rule(when=f"Host = {{ contains = '{'a' * (CONTAINS_PATTERN_MAX + 1)}' }}"),
            f"holds at most {CONTAINS_PATTERN_MAX}",
        ),
        (rule(when="method = { prefix = 'SEVENTEEN-LETTERS' }"), "longer than the 16 bytes an event holds"),
        (rule(action="block"), "action 'block' is unknown; use one of log | drop | count | sample"),
        (rule(action="sample"), "action sample needs every = N"),
        (rule(extra="every = 3"), "every applies to action sample only"),
        (rule(action="sample", extra="every = 0"), "every = 0 must be an integer from 1 to 65535"),
        (rule(when="target = { suffix = '/x' }"), "test 'suffix' is unknown"),
        (rule(when="target = { prefix = '' }"), "needs a non-empty ASCII string"),
        (rule(when="target = { prefix = 'é' }"), "needs a non-empty ASCII string"),
        (rule(when="target = { prefix = '/a', exact = '/b' }"), "needs one test"),
        (rule() + rule(), 'rule "r" is named twice'),
        ("".join(rule(f"r{n}") for n in range(MAX_RULES + 1)), f"give at most {MAX_RULES}"),
        (
            rule(
                when="\n".join(
                    f"{field} = {{ prefix = 'a' }}"
                    for field in ("method", "target", "Host", "Referer", "User-Agent")
                )
            ),
            f"5 conditions; give at most {MAX_CONDITIONS}",
        ),
        (
            "".join(rule(f"r{n}", when="Host = { contains = 'a' }") for n in range(CONTAINS_MAX + 1)),
            f"give at most {CONTAINS_MAX} in all",
        ),
        (
            "".join(
                rule(
                    f"r{n}",
                    when="method = { prefix = 'G' }\ntarget = { prefix = '/' }\nHost = { exact = 'a' }",
                )
                for n in range(CONDITIONS_MAX // 3 + 1)
            ),
            f"conditions; give at most {CONDITIONS_MAX} in all",
        ),
        (rule(extra="count_by = ['Cookie']"), "count_by 'Cookie' is no header logged by value"),
        (rule(extra="count_by = ['target']"), "count_by 'target' is no header logged by value"),
        (rule(extra="count_by = ['Host', 'Referer', 'User-Agent']"), "give 1 to 2 different ones"),
        (rule(extra="count_by = 'Host'"), "count_by must be a list of header names"),
        ("[[rules]]\naction = 'log'\n", "rule 1 needs a name"),
        ("[[rules]]\nname = 'r'\ncolour = 'red'\n", "unknown key 'colour'"),
        ("rules = 3\n", "rules must be a list"),
    ],
)
def test_a_bad_rule_is_one_line_naming_it(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as raised:
        loaded(tmp_path, text)
    message = str(raised.value)
    assert "\n" not in message and needle in message, message


# --- the kernel against the reference --------------------------------------------------------------------

# Values longer than CONTAINS_SPAN are kept, so a contains test sees only part of what the event holds.
CONFIG = ExtractorConfig(max_value_len=CONTAINS_SPAN + 32, max_target_len=CONTAINS_SPAN + 32)
CLIENT_PORTS = (40001, 40002, 40003)
COUNTED = ("User-Agent", "Referer", "X-API-Version", "Host")  # R30: headers a rule may count by
PATTERNS = ("EvilScanner", "curl", "/api/v2", "search", "exploit", "GET", "POST", "a.example", "x" * 20)


@pytest.fixture(scope="module")
def program() -> Iterator[Program]:
    """The rules' program, run on one CPU: the sample action counts per CPU (R28)."""
    with on_one_cpu(), Program(CONFIG) as loaded_program:
        yield loaded_program


@st.composite
def conditions(draw: st.DrawFn) -> Condition:
    field = draw(st.sampled_from(("method", "target", "Host", "User-Agent", "Referer", "X-API-Version")))
    match = draw(st.sampled_from(Match))
    limit = CONTAINS_PATTERN_MAX if match is Match.CONTAINS else PATTERN_MAX
    limit = min(limit, METHOD_MAX_LEN) if field == "method" else limit
    pattern = draw(st.one_of(st.sampled_from(PATTERNS), st.text("aex/", min_size=1, max_size=limit)))
    return Condition(field, match, pattern.encode()[:limit])


@st.composite
def rule_sets(draw: st.DrawFn) -> tuple[Rule, ...]:
    rules = []
    for number in range(draw(st.integers(1, MAX_RULES))):
        action = draw(st.sampled_from(Action))
        every = draw(st.integers(1, 4)) if action is Action.SAMPLE else 1
        count_by = tuple(draw(st.lists(st.sampled_from(COUNTED), max_size=COUNT_BY_MAX, unique=True)))
        when = tuple(draw(st.lists(conditions(), max_size=MAX_CONDITIONS)))
        rules.append(Rule(f"rule-{number}", action, every, when, count_by))
    while (
        sum(c.match is Match.CONTAINS for r in rules for c in r.conditions) > CONTAINS_MAX
        or sum(len(r.conditions) for r in rules) > CONDITIONS_MAX
    ):
        rules = [dataclasses.replace(r, conditions=r.conditions[:-1]) for r in rules]
    return tuple(rules)


def filler(draw: st.DrawFn) -> str:
    """Text around the patterns, long enough now and then to cross CONTAINS_SPAN."""
    return draw(
        st.one_of(st.text("ax/", max_size=8), st.integers(0, CONTAINS_SPAN + 8).map(lambda n: "x" * n))
    )


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(("GET", "POST", "GETTING")))
    target = "/" + filler(draw) + draw(st.sampled_from(("", "api/v2/products/search?q=1", "search", "ex")))
    fields = [("Host", draw(st.sampled_from(("a.example", "b.example"))))]
    for name in ("User-Agent", "Referer"):
        if draw(st.booleans()):
            fields.append((name, filler(draw) + draw(st.sampled_from(PATTERNS)) + filler(draw)))
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in fields)
    return (head + "\r\n").encode()


@dataclasses.dataclass(frozen=True)
class Segment:
    payload: bytes
    port: int
    flags: str = "PA"


@st.composite
def conversations(draw: st.DrawFn) -> list[Segment]:
    """Segments of a few client connections, interleaved: pipelined requests, then a FIN or RST now and then."""
    segments = []
    for _ in range(draw(st.integers(1, 8))):
        port = draw(st.sampled_from(CLIENT_PORTS))
        flags = draw(st.sampled_from(("PA", "PA", "PA", "FA", "R", "S")))
        count = 0 if flags in ("R", "S") else draw(st.integers(0 if flags == "FA" else 1, 2))
        segments.append(Segment(b"".join(draw(requests()) for _ in range(count)), port, flags))
    return segments


def frames_of(segments: Sequence[Segment]) -> list[bytes]:
    """Each connection opened by a SYN first; sequence numbers run on per connection, a SYN restarting them."""
    sequence: dict[int, int] = {}
    frames = []
    for segment in [Segment(b"", port, "S") for port in CLIENT_PORTS] + list(segments):
        seq = 1000 if segment.flags == "S" else sequence[segment.port]
        frames.append(
            build(FrameSpec(payload=segment.payload, sport=segment.port, flags=segment.flags, seq=seq))
        )
        sequence[segment.port] = seq + len(segment.payload) + (segment.flags in ("S", "FA"))
    return frames


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rules=rule_sets(), segments=conversations())
def test_rules_judge_requests_as_the_reference_does(
    program: Program, rules: tuple[Rule, ...], segments: list[Segment]
) -> None:
    config = CONFIG.with_changes(rules=rules)
    program.configure(config)  # as xhdr log on SIGHUP: the hit counters start again from zero
    before = aggregate_counts(program)  # R30: counts go on across reloads
    tracker, driver = FlowTracker(config, program.key), TestRunDriver(program)
    for index, (frame, outcome) in enumerate(
        zip(frames := frames_of(segments), driver.feed(frames), strict=True)
    ):
        expected = tracker.feed(frame)
        assert (outcome.verdict, outcome.events, outcome.counters) == (
            expected.verdict,
            expected.events,
            expected.counters,
        ), f"frame {index}"
    assert program.rule_hits.read()[: len(rules)] == tracker.rule_hits
    counted = aggregate_counts(program) - before
    expected = collections.Counter(
        {
            (
                key.rule,
                key.endpoint,
                key.header,
                siphash24(program.key, key.value) if key.value is not None else 0,
            ): n
            for key, n in tracker.aggregates.items()
        }
    )
    assert counted == expected


def aggregate_counts(program: Program) -> collections.Counter[tuple[str, bytes, str, int]]:
    """R30: the aggregates map's counts, by rule, endpoint, header and value hash."""
    return collections.Counter(
        {(a.rule, a.endpoint, a.header, a.value_hash): a.count for a in program.aggregates()}
    )


def test_each_action_and_a_blocked_flow(program: Program) -> None:
    """One request per action, then the blocked flow's next segments, a FIN among them, and a SYN afresh."""
    when = (Condition("target", Match.PREFIX, b"/drop"),)
    rules = (
        Rule("dropper", Action.DROP, 1, when),
        Rule("counter", Action.COUNT, 1, (Condition("target", Match.EXACT, b"/count"),), ("User-Agent",)),
        Rule(
            "sampler", Action.SAMPLE, 2, (Condition("Host", Match.CONTAINS, b"sample"),), ("Host", "Referer")
        ),
        Rule("logger", Action.LOG),
    )
    program.configure(CONFIG.with_changes(rules=rules))
    before = aggregate_counts(program)
    get = "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n".format
    segments = [
        Segment(get("/count", "a").encode(), 40001),
        Segment((get("/", "sample") + get("/", "sample") + get("/", "sample")).encode(), 40001),
        Segment((get("/log", "a") + get("/drop", "a")).encode(), 40002),
        Segment(get("/after", "a").encode(), 40002),
        Segment(b"", 40002, "FA"),
        Segment(get("/after-fin", "a").encode(), 40002),
        Segment(b"", 40002, "S"),
        Segment(get("/afresh", "a").encode(), 40002),
    ]
    outcomes = TestRunDriver(program).feed(frames_of(segments))[len(CLIENT_PORTS) :]
    seen = [[(e.target.decode(), e.rule, e.action) for e in outcome.events] for outcome in outcomes]
    assert seen == [
        [],
        [("/", "sampler", Action.SAMPLE), ("/", "sampler", Action.SAMPLE)],
        [("/log", "logger", Action.LOG), ("/drop", "dropper", Action.DROP)],
        [],
        [],
        [],
        [],
        [("/afresh", "logger", Action.LOG)],
    ]
    assert all(e.flags & EventFlag.DROPPED for e in outcomes[2].events)
    assert [o.verdict for o in outcomes] == [
        XDP_PASS,
        XDP_PASS,
        XDP_DROP,
        XDP_DROP,
        XDP_PASS,
        XDP_DROP,
        XDP_PASS,
        XDP_PASS,
    ]
    assert [o.counters[Counter.EVENTS_WITHHELD] for o in outcomes[:2]] == [1, 1]
    assert [o.counters[Counter.BLOCKED] for o in outcomes] == [0, 0, 0, 1, 0, 1, 0, 0]
    assert program.rule_hits.read()[:4] == [1, 1, 3, 2]
    # R30: every match counts, withheld ones too; an absent header counts as absent (hash 0)
    sample = siphash24(program.key, b"sample")
    assert aggregate_counts(program) - before == collections.Counter(
        {
            ("counter", b"/count", "User-Agent", 0): 1,
            ("sampler", b"/", "Host", sample): 3,
            ("sampler", b"/", "Referer", 0): 3,
        }
    )
    shown = {(a.rule, a.header): (a.shown, a.length, a.present) for a in program.aggregates()}
    assert shown[("sampler", "Host")] == (b"sample", 6, True)
    assert shown[("sampler", "Referer")] == (b"", 0, False)


def test_the_counter_line_ends_with_each_rules_hits() -> None:
    moved = dict.fromkeys(Counter, 0) | {
        Counter.EVENTS: 20,
        Counter.HTTP_REQUEST: 30,
        Counter.EVENTS_WITHHELD: 10,
    }
    assert counter_line(moved, 2.0, {"block-scanner": 3, "search": 27}) == (
        "xhdr log: 10 events/s, 0 lost; http_request 30, events_withheld 10; rule hits block-scanner 3, search 27"
    )
    assert (
        counter_line(moved, 2.0, {}) == "xhdr log: 10 events/s, 0 lost; http_request 30, events_withheld 10"
    )


def test_the_longest_judging_of_the_most_requests_ends_in_time(program: Program) -> None:
    """The kernel's loop has steps for the worst rule set and no more (XHDR_JUDGE_STEPS): four requests in one
    segment, each tried against four rules whose three tests hold and whose contains test reads all of its 128
    positions in vain (the most conditions and contains tests a set may hold), must each still reach the last
    rule."""
    holding = (
        Condition("Host", Match.EXACT, b"a.example"),
        Condition("method", Match.EXACT, b"GET"),
        Condition("target", Match.PREFIX, b"/"),
    )
    scans = [
        Rule(f"scan-{n}", Action.DROP, 1, (*holding, Condition("User-Agent", Match.CONTAINS, b"ZZZZ")))
        for n in range(4)
    ]
    rules = (*scans, Rule("last", Action.LOG))
    assert sum(len(rule.conditions) for rule in rules) == CONDITIONS_MAX
    config = CONFIG.with_changes(rules=rules)
    program.configure(config)
    one = f"GET /{'x' * 20} HTTP/1.1\r\nHost: a.example\r\nUser-Agent: {'a' * (CONTAINS_SPAN + 20)}\r\n\r\n"
    frames = frames_of([Segment((one * CONFIG.max_requests_per_packet).encode(), CLIENT_PORTS[0])])
    tracker = FlowTracker(config, program.key)
    expected = [tracker.feed(frame) for frame in frames][-1]
    outcome = TestRunDriver(program).feed(frames)[-1]
    assert [event.rule for event in outcome.events] == ["last"] * CONFIG.max_requests_per_packet
    assert outcome.events == expected.events
