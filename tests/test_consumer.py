"""The compiled consumer of ``xhdr log`` (harness/log/consumer) against the Python renderings, byte for byte.

The Python side is the oracle: ``harness.log.format.event_json`` and ``event_line``, applied to the reference's events (harness/oracle/reference.py). The consumer
reads the real ring buffer of a real extractor fed by BPF_PROG_TEST_RUN; nothing here reads the ring in
Python, so every line compared went through consumer.c.

The program is built with limits other than the defaults (target, value, ring size) to show that the
consumer depends on none of them, and with a small ring so that records wrap around its end.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

import harness.log.consumer
from harness.cli.main import SCRIPT
from harness.core.cbuild import BuildError
from harness.core.config import TCHARS, ExtractorConfig, HeaderMode, HeaderRule
from harness.core.cost import fast_open
from harness.core.counters import Counter, counts_difference
from harness.core.driver import with_openings
from harness.core.event import (
    TLS_SLOT_ALPN,
    TLS_SLOT_SNI,
    Event,
    EventKind,
    HeaderEvent,
    HttpResponse,
    TlsFlag,
    TlsHello,
    _Slot,
    alpn_names,
    decode_event,
    event_struct,
)
from harness.core.program import RESPONSES, Program
from harness.core.rules import Action, Condition, Match, Rule
from harness.core.testrun import test_run
from harness.core.wait import wait_until
from harness.log.audit import AuditError, AuditSummary, new_key, read_key, verify
from harness.log.consumer import (
    SOURCE,
    LogFormat,
    build_consumer,
    compile_command,
    consumer_argv,
    decoder_argv,
)
from harness.log.format import JsonLines, event_json, event_line
from harness.log.records import MAGIC, RecordCounter, RecordsError, read_events
from harness.oracle import tls
from harness.oracle.corpus import load_corpus
from harness.oracle.frames import FrameSpec, build
from harness.oracle.reference import TARGET_BYTES, FlowTracker, extract

CONFIG = ExtractorConfig(
    max_target_len=40,
    max_value_len=24,
    ringbuf_pages=32,  # 128 KiB: the --count test sends about twice that, so records wrap
    headers=(
        HeaderRule("Host"),
        HeaderRule("User-Agent"),
        HeaderRule("X-Request-ID"),
        HeaderRule("Referer"),
        HeaderRule("X-Forwarded-For", HeaderMode.PRESENCE),
        HeaderRule("Authorization", HeaderMode.AUTH),
        HeaderRule("Cookie", HeaderMode.HASH),
        HeaderRule("X-API-Version", HeaderMode.PRESENCE),
    ),
)
KEY = bytes(range(16))
CASES = load_corpus()
EXIT_TIMEOUT = 10.0
SIMPLE_REQUEST = b"GET /simple HTTP/1.1\r\nHost: example.test\r\nCookie: a=1\r\n\r\n"


@pytest.fixture(scope="module")
def program() -> Iterator[Program]:
    with Program(CONFIG, key=KEY) as loaded:
        yield loaded


def ring_fd(program: Program) -> int:
    """The fd of the extractor's ring buffer map, as BCC opened it."""
    table = program.bpf[b"events"]
    assert type(table).__name__ == "RingBuf", f"events is a {type(table).__name__}, not BCC's RingBuf"
    assert isinstance(table.map_fd, int) and table.map_fd >= 0
    return table.map_fd


def start(
    program: Program,
    *,
    fmt: LogFormat,
    count: int | None = None,
    output: Path | None = None,
    audit_key: Path | None = None,
    stdout: int = subprocess.PIPE,
    config: ExtractorConfig | None = None,
) -> subprocess.Popen[bytes]:
    """Starts the consumer on the program's ring buffer (told ``config``'s rules, by default the program's) and
    returns once it says ``ready``."""
    fd = ring_fd(program)
    rules = config or program.config
    argv = consumer_argv(rules, fd, fmt=fmt, count=count, output=output, audit_key=audit_key)
    proc = subprocess.Popen(argv, pass_fds=(fd,), stdout=stdout, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    said = proc.stderr.readline()
    if said != b"ready\n":
        proc.kill()
        _, rest = proc.communicate(timeout=EXIT_TIMEOUT)
        pytest.fail(f"the consumer did not get ready: {(said + rest).decode(errors='replace')}")
    return proc


def stop(proc: subprocess.Popen[bytes], events: int, signum: int = signal.SIGTERM) -> str:
    """Stops the consumer with ``signum``; checks the exit and the events line; returns its stdout."""
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=EXIT_TIMEOUT)
    assert proc.returncode == 0, err.decode(errors="replace")
    assert err.decode() == f"consumer events={events}\n"
    return out.decode("utf-8")


def feed(program: Program, frames: Sequence[bytes], events: int) -> None:
    """Runs the frames through the program; they must log exactly ``events`` events and lose none."""
    before = program.counters()
    for frame in frames:
        test_run(program.fd, frame)
    delta = counts_difference(program.counters(), before)
    assert delta[Counter.EVENTS_LOST] == 0, "the ring buffer overflowed; the test sends too much at once"
    assert delta[Counter.EVENTS] == events, (
        f"the kernel logged {delta[Counter.EVENTS]} events, expected {events}"
    )


def lines_of(text: str) -> list[str]:
    """Lines split at LF only: str.splitlines() would also split at the separators latin-1 holds (0x85...)."""
    assert text.endswith("\n") or not text, "the last line is not complete"
    return text.split("\n")[:-1]


def assert_json_lines(text: str, expected: Sequence[Event]) -> None:
    """Each line equals the Python rendering of its event, given the kernel's timestamp and ifindex."""
    lines = lines_of(text)
    assert len(lines) == len(expected), f"{len(lines)} lines for {len(expected)} events:\n{text}"
    for index, (line, event) in enumerate(zip(lines, expected, strict=True)):
        parsed = json.loads(line)
        assert parsed["timestamp_ns"] > 0, f"line {index} has no kernel timestamp: {line}"
        stamped = dataclasses.replace(event, timestamp_ns=parsed["timestamp_ns"], ifindex=parsed["ifindex"])
        assert line == event_json(stamped), f"line {index}"


def assert_text_lines(text: str, expected: Sequence[Event]) -> None:
    assert lines_of(text) == [event_line(event) for event in expected]


def corpus_run() -> tuple[list[bytes], list[HeaderEvent]]:
    """Every corpus case's flow after its opening, and the events one FlowTracker expects of the sequence."""
    frames = [frame for case in CASES for frame in with_openings([case.frames])[0]]
    tracker = FlowTracker(CONFIG, KEY)
    return frames, [event for frame in frames for event in tracker.feed(frame).events]


# --- the corpus ------------------------------------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.parametrize(
    ("as_json", "signum"), [(True, signal.SIGTERM), (False, signal.SIGINT)], ids=["json", "text"]
)
def test_corpus_lines_equal_the_python_renderings(program: Program, as_json: bool, signum: int) -> None:
    frames, expected = corpus_run()
    assert len(expected) > 50, "the corpus should log many events"
    proc = start(program, fmt=LogFormat.JSON if as_json else LogFormat.TEXT)
    feed(program, frames, len(expected))
    # Events reach the ring before test_run returns, so the drain after the stop signal finds them all.
    out = stop(proc, len(expected), signum)
    if as_json:
        assert_json_lines(out, expected)
    else:
        assert_text_lines(out, expected)


# R27, R28: rule names with the bytes JSON escapes, every action that writes an event, and the DROPPED flag.
NAMED_RULES = (
    Rule('say "drop" \\ here', Action.DROP, 1, (Condition("target", Match.PREFIX, b"/drop"),)),
    Rule("sample/2", Action.SAMPLE, 2, (Condition("Host", Match.CONTAINS, b"sample"),)),
    Rule("everything else", Action.LOG),
)


@pytest.mark.kernel
@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_rule_names_and_actions_render_as_python_does(program: Program, as_json: bool) -> None:
    config = dataclasses.replace(CONFIG, rules=NAMED_RULES)
    payloads = [b"GET /drop HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n"]
    payloads += [b"GET /s HTTP/1.1\r\nHost: sample\r\n\r\n"] * 3 + [b"GET / HTTP/1.1\r\n\r\n"]
    frames, _ = with_openings(
        [[build(FrameSpec(payload=p, sport=42000 + n))] for n, p in enumerate(payloads)]
    )
    tracker = FlowTracker(config, KEY)
    expected = [event for frame in frames for event in tracker.feed(frame).events]
    assert len(expected) == 5 and {e.action for e in expected} == {Action.DROP, Action.SAMPLE, Action.LOG}
    program.configure(config)
    try:
        proc = start(program, fmt=LogFormat.JSON if as_json else LogFormat.TEXT)
        feed(program, frames, len(expected))
        out = stop(proc, len(expected))
    finally:
        program.configure(CONFIG)
    if as_json:
        assert_json_lines(out, expected)
    else:
        assert_text_lines(out, expected)


# --- arbitrary bytes, addresses and VLAN tags -----------------------------------------------------------

SPECIAL_BYTES = b'\x00\x01\x08\x09\x0c\x0d\x1f "\\\x7f\x80\x9f\xa0\xa1\xad\xe9\xff'
value_byte = st.one_of(st.sampled_from(SPECIAL_BYTES), st.integers(0, 255)).filter(lambda b: b != 0x0A)
raw_values = st.lists(value_byte, max_size=40).map(bytes)
schemes = st.lists(st.sampled_from(sorted(TCHARS)), min_size=1, max_size=17).map(bytes)
values = st.one_of(raw_values, st.tuples(schemes, raw_values).map(b" ".join))
target_byte = st.one_of(st.sampled_from(b'"\\%\x80\xa0\xad\xff'), st.sampled_from(TARGET_BYTES))
targets = st.lists(target_byte, min_size=1, max_size=60).map(bytes)
methods = st.one_of(
    st.sampled_from([b"GET", b"POST", b"M-SEARCH"]),
    st.lists(st.sampled_from(sorted(TCHARS)), min_size=1, max_size=16).map(bytes),
)
names = st.sampled_from([*(rule.name for rule in CONFIG.headers), "X-Other"]).flatmap(
    lambda name: st.sampled_from([name, name.lower(), name.upper()])
)
# Lines that set event flags, so their names are rendered too.
odd_lines = st.sampled_from(
    [b"Transfer-Encoding: chunked", b"Content-Length: zz", b"Bad Name: v", b" folded", b"NoColon"]
)
endings = st.sampled_from([b"\r\n", b"\r\n", b"\n"])


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    line = b" ".join([draw(methods), draw(targets), draw(st.sampled_from([b"HTTP/1.0", b"HTTP/1.1"]))])
    fields = draw(
        st.lists(
            st.one_of(
                st.tuples(names, st.sampled_from([b"", b" ", b"\t "]), values).map(
                    lambda f: f[0].encode() + b":" + f[1] + f[2]
                ),
                odd_lines,
            ),
            max_size=6,
        )
    )
    return b"".join(part + draw(endings) for part in [line, *fields, b""])


ipv4_addresses = st.binary(min_size=4, max_size=4)
hextets = st.one_of(st.just(0), st.just(0), st.sampled_from([1, 0xFFFF, 0xABCD]), st.integers(0, 0xFFFF))
ipv6_addresses = st.one_of(
    st.lists(hextets, min_size=8, max_size=8).map(lambda h: b"".join(x.to_bytes(2, "big") for x in h)),
    ipv4_addresses.map(lambda v4: bytes(10) + b"\xff\xff" + v4),  # IPv4-mapped: no dotted quad in 3.11
)


@st.composite
def syn_frames(draw: st.DrawFn) -> bytes:
    """A SYN with data (``fast_open``): its flow opens on the spot, so its requests are read (R15, R16)."""
    family = draw(st.sampled_from([4, 6]))
    spec = FrameSpec(
        payload=b"".join(draw(st.lists(requests(), min_size=1, max_size=2))),
        family=family,
        sport=draw(st.integers(1, 65535)),
        dport=draw(st.sampled_from(CONFIG.ports)),
        vlan_ids=tuple(draw(st.lists(st.integers(0, 4095), max_size=2))),
    )
    addresses = ipv4_addresses if family == 4 else ipv6_addresses
    return addressed(spec, draw(addresses), draw(addresses))


def addressed(spec: FrameSpec, saddr: bytes, daddr: bytes) -> bytes:
    """``spec`` as a SYN with data (``fast_open``) between these addresses (harness.oracle.frames has fixed ones)."""
    packet = Ether(build(spec))
    layer = packet[IP] if spec.family == 4 else packet[IPv6]
    layer.src = str(ipaddress.ip_address(saddr))
    layer.dst = str(ipaddress.ip_address(daddr))
    if spec.family == 4:
        del packet[IP].chksum
    del packet[TCP].chksum
    return fast_open(bytes(packet))


@pytest.mark.kernel
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(frame=syn_frames())
def test_arbitrary_requests_render_as_python_does(program: Program, frame: bytes) -> None:
    expected = list(extract(frame, CONFIG, KEY).events)
    proc = start(program, fmt=LogFormat.JSON)
    feed(program, [frame], len(expected))
    assert_json_lines(stop(proc, len(expected)), expected)
    proc = start(program, fmt=LogFormat.TEXT)
    feed(program, [frame], len(expected))
    assert_text_lines(stop(proc, len(expected)), expected)


# --- every byte and the address forms, each for sure --------------------------------------------------------

VALUE_RULES = [rule.name for rule in CONFIG.headers if rule.mode is HeaderMode.VALUE]
# Each shape of RFC 5952 compression, ties (the first run wins) and IPv4-mapped and -compatible addresses.
IPV6_FORMS = [
    "::",
    "::1",
    "1::",
    "1:0:0:1:0:0:0:1",
    "1:0:0:2:0:0:3:4",
    "1:0:1:0:1:0:1:0",
    "0:1:0:0:0:1:0:0",
    "2001:db8::1:0:0:1",
    "fe80::abcd:ef01:2345:6789",
    "::ffff:1.2.3.4",
    "::1.2.3.4",
    "64:ff9b::c000:221",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
]


def every_byte_frames() -> list[bytes]:
    """Frames whose targets hold every target byte and whose values every byte but LF, in small chunks.

    Chunks fit max_value_len and max_target_len, so nothing is cut off, and each value is bracketed, so
    that no byte of it is trimmed as whitespace (R13).
    """
    target_chunks = [TARGET_BYTES[at : at + 30] for at in range(0, len(TARGET_BYTES), 30)]
    value_bytes = bytes(byte for byte in range(256) if byte != 0x0A)
    value_chunks = [b"<" + value_bytes[at : at + 20] + b">" for at in range(0, len(value_bytes), 20)]
    frames = []
    for index, target in enumerate(target_chunks):
        chunk = value_chunks[index * len(VALUE_RULES) : (index + 1) * len(VALUE_RULES)]
        fields = b"".join(f"{name}: ".encode() + value + b"\r\n" for name, value in zip(VALUE_RULES, chunk))
        payload = b"GET /" + target + b" HTTP/1.1\r\n" + fields + b"\r\n"
        frames.append(addressed(FrameSpec(payload=payload, sport=42000 + index), bytes(4), b"\xff" * 4))
    assert len(target_chunks) * len(VALUE_RULES) >= len(value_chunks)
    return frames


def address_frames() -> list[bytes]:
    frames = []
    for index, text in enumerate(IPV6_FORMS):
        spec = FrameSpec(
            payload=SIMPLE_REQUEST, family=6, sport=43000 + index, vlan_ids=(index, 4095)[: index % 3]
        )
        packed = ipaddress.IPv6Address(text).packed
        frames.append(addressed(spec, packed, ipaddress.IPv6Address(IPV6_FORMS[-1 - index]).packed))
    return frames


@pytest.mark.kernel
@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_every_byte_and_address_form_renders_as_python_does(program: Program, as_json: bool) -> None:
    frames = every_byte_frames() + address_frames()
    expected = [event for frame in frames for event in extract(frame, CONFIG, KEY).events]
    shown = set()
    for event in expected:
        shown |= set(event.target) | {byte for value in event.headers for byte in value.value}
    assert shown == set(range(256)) - {0x0A}, "the frames must put every byte but LF in a line"
    addresses = {event.saddr for event in expected} | {event.daddr for event in expected}
    assert {str(ipaddress.IPv6Address(text)) for text in IPV6_FORMS} <= addresses
    proc = start(program, fmt=LogFormat.JSON if as_json else LogFormat.TEXT)
    feed(program, frames, len(expected))
    out = stop(proc, len(expected))
    if as_json:
        assert_json_lines(out, expected)
    else:
        assert_text_lines(out, expected)


# --- --count, --output, a reader that leaves ------------------------------------------------------------


def simple_frame(sport: int = 41000) -> tuple[bytes, HeaderEvent]:
    frame = fast_open(build(FrameSpec(payload=SIMPLE_REQUEST, sport=sport)))
    (event,) = extract(frame, CONFIG, KEY).events
    return frame, event


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n")


@pytest.mark.kernel
def test_count_exits_after_exactly_that_many_events(program: Program, tmp_path: Path) -> None:
    """The batches add up to about twice the ring, so records wrap around its end on the way."""
    frame, event = simple_frame()
    batch, batches, extra = 250, 4, 70
    count = batch * batches
    output = tmp_path / "events.txt"
    proc = start(program, fmt=LogFormat.TEXT, count=count, output=output)
    for index in range(batches):
        before = program.counters()
        test_run(program.fd, frame, batch + (extra if index == batches - 1 else 0))
        assert counts_difference(program.counters(), before)[Counter.EVENTS_LOST] == 0
        if index < batches - 1:
            written = batch * (index + 1)
            wait_until(lambda n=written: line_count(output) >= n, 5.0, f"{written} lines from the consumer")
    _, err = proc.communicate(timeout=EXIT_TIMEOUT)
    assert proc.returncode == 0, err.decode(errors="replace")
    assert err.decode() == f"consumer events={count}\n"
    assert output.read_text("utf-8") == f"{event_line(event)}\n" * count
    # What it did not take stays in the ring for the next reader.
    rest = start(program, fmt=LogFormat.TEXT)
    assert stop(rest, extra) == f"{event_line(event)}\n" * extra


@pytest.mark.kernel
def test_output_file_is_created_then_appended_to(program: Program, tmp_path: Path) -> None:
    frame, event = simple_frame(41001)
    output = tmp_path / "log" / "events.jsonl"
    output.parent.mkdir()
    written: list[HeaderEvent] = []
    for events in (2, 3):
        proc = start(program, fmt=LogFormat.JSON, output=output)
        feed(program, [frame] * events, events)
        assert stop(proc, events) == "", "with --output nothing goes to stdout"
        written += [event] * events
        assert_json_lines(output.read_text("utf-8"), written)
    umask = os.umask(0)
    os.umask(umask)
    assert output.stat().st_mode & 0o777 == 0o644 & ~umask


@pytest.mark.kernel
def test_a_reader_that_leaves_ends_the_consumer_quietly(program: Program) -> None:
    frame, _ = simple_frame(41002)
    proc = start(program, fmt=LogFormat.TEXT)
    assert proc.stdout is not None
    proc.stdout.close()
    feed(program, [frame], 1)
    # No stop signal: the write fails with EPIPE at the next drain (within the 100 ms wait) and ends it.
    _, err = proc.communicate(timeout=EXIT_TIMEOUT)
    assert proc.returncode == 0
    assert err.decode() == "consumer events=0\n"


# --- the audit chain (xhdr log --audit) ---------------------------------------------------------------


def audited_log(program: Program, tmp_path: Path, runs: tuple[int, ...]) -> tuple[Path, Path, list[bytes]]:
    """A log of real events sealed by the consumer, one run per entry of ``runs`` (its event count)."""
    key, log = tmp_path / "audit.key", tmp_path / "audit.jsonl"
    new_key(key)
    frame, _ = simple_frame(41003)
    for events in runs:
        proc = start(program, fmt=LogFormat.JSON, output=log, audit_key=key)
        feed(program, [frame] * events, events)
        stop(proc, events)
    return key, log, log.read_bytes().splitlines(keepends=True)


def audit_problem(lines: Sequence[bytes], key: Path) -> str:
    with pytest.raises(AuditError) as raised:
        verify(lines, read_key(key))
    return str(raised.value)


@pytest.mark.kernel
def test_an_audited_log_verifies_and_each_kind_of_tampering_is_named(
    program: Program, tmp_path: Path
) -> None:
    key, log, lines = audited_log(program, tmp_path, (4, 2))
    assert len(lines) == 4 + 1 + 2 + 1  # two runs, each closed by its end record
    assert verify(lines, read_key(key)) == AuditSummary(lines=8, events=6, runs=2)
    # The seal is HMAC-SHA256 over the zero MAC and the line up to "seq", as docs/AUDIT.md says.
    first = json.loads(lines[0])
    body = lines[0][: lines[0].index(b',"mac":')] + b"}"
    assert first["mac"] == hmac.new(read_key(key), bytes(32) + body, hashlib.sha256).hexdigest()
    assert first["seq"] == 1 and json.loads(lines[4]) == {**json.loads(lines[4]), "audit": "end", "events": 4}

    changed = [*lines]
    changed[2] = changed[2].replace(b'"example.test"', b'"example.evil"')
    assert audit_problem(changed, key) == "line 3 was changed (its MAC does not match)"
    assert "line 3 has seq 4 where 3 was due: lines were removed" in audit_problem(lines[:2] + lines[3:], key)
    swapped = [lines[0], lines[2], lines[1], *lines[3:]]
    assert "line 2 has seq 3 where 2 was due: lines were removed" in audit_problem(swapped, key)
    repeated = [lines[0], lines[1], *lines[1:]]
    assert "line 3 has seq 2 where 3 was due: lines were moved or repeated" in audit_problem(repeated, key)
    assert "ends at line 7 without its end record" in audit_problem(lines[:-1], key)
    assert "line 6 has seq 2 where 1 was due" in audit_problem(lines[:5] + lines[6:], key)
    assert "line 5 starts a run, but the run before it has no end record" in audit_problem(
        lines[:4] + lines[5:], key
    )
    assert "line 1 is not sealed" in audit_problem([b'{"family":4}\n', *lines], key)
    other = tmp_path / "other.key"
    new_key(other)
    assert audit_problem(lines, other) == "line 1 was changed (its MAC does not match)"

    # The command a person runs: one line either way, exit 0 when intact and 1 otherwise.
    xhdr = [str(SCRIPT), "audit", "verify", str(log), "--key", str(key)]
    intact = subprocess.run(xhdr, capture_output=True, text=True, check=False, timeout=EXIT_TIMEOUT)
    assert (intact.returncode, intact.stdout, intact.stderr) == (
        0,
        f"{log}: intact: 6 events in 2 runs (8 lines)\n",
        "",
    )
    log.write_bytes(b"".join(changed))
    broken = subprocess.run(xhdr, capture_output=True, text=True, check=False, timeout=EXIT_TIMEOUT)
    assert (broken.returncode, broken.stdout) == (1, "")
    assert broken.stderr == f"xhdr audit: error: {log}: line 3 was changed (its MAC does not match)\n"


def test_a_key_is_made_private_and_never_overwritten(tmp_path: Path) -> None:
    key = tmp_path / "audit.key"
    new_key(key)
    assert len(read_key(key)) == 32 and key.stat().st_mode & 0o777 == 0o600
    before = key.read_bytes()
    with pytest.raises(AuditError, match="exists"):
        new_key(key)
    assert key.read_bytes() == before
    short = tmp_path / "short.key"
    short.write_bytes(b"x" * 15)
    with pytest.raises(AuditError, match="has 15 bytes; it needs 16"):
        read_key(short)


# --- records files (xhdr log --records, xhdr decode) ----------------------------------------------------


def write_records(
    program: Program, path: Path, frames: Sequence[bytes], events: int, config: ExtractorConfig
) -> None:
    """One consumer run appending the records of ``frames`` to ``path``, its section header naming ``config``'s
    rules (the records are the program's, whatever the header says)."""
    proc = start(program, fmt=LogFormat.RECORDS, output=path, config=config)
    feed(program, frames, events)
    assert stop(proc, events) == ""


def decode(path: Path, *options: str, stdin: bool = False) -> subprocess.CompletedProcess[bytes]:
    """``xhdr decode PATH OPTIONS``, as a user runs it; with ``stdin``, ``xhdr decode - OPTIONS < PATH``."""
    with path.open("rb") as source:
        return subprocess.run(
            [str(SCRIPT), "decode", "-" if stdin else str(path), *options],
            stdin=source if stdin else subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )


@pytest.mark.kernel
@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_records_decode_to_the_lines_written_directly(
    program: Program, tmp_path: Path, as_json: bool
) -> None:
    """The corpus through --records, then ``xhdr decode``: each line equals the Python rendering, as the lines
    the consumer writes from the ring do; the Python reader gives the same events."""
    frames, expected = corpus_run()
    records = tmp_path / "events.records"
    write_records(program, records, frames, len(expected), CONFIG)
    assert records.read_bytes().startswith(section_header(CONFIG)), "the section header of docs/RECORDS.md"
    done = decode(records, "--json" if as_json else "--text", "-")
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode() == f"xhdr decode: {len(expected)} events from {records}\n"
    (assert_json_lines if as_json else assert_text_lines)(done.stdout.decode(), expected)
    read = list(read_events(records))
    stamped = [
        dataclasses.replace(e, timestamp_ns=r.timestamp_ns, ifindex=r.ifindex) for e, r in zip(expected, read)
    ]
    assert read == stamped
    assert RecordCounter(records).count() == len(expected)


@pytest.mark.kernel
def test_each_run_appends_a_section_read_with_its_own_rules(program: Program, tmp_path: Path) -> None:
    """A second run with other header rules appends a section of its own; each record is named by its section."""
    renamed = CONFIG.with_changes(
        headers=tuple(HeaderRule(f"X-Slot-{index}", rule.mode) for index, rule in enumerate(CONFIG.headers))
    )
    records = tmp_path / "events.records"
    write_records(program, records, [simple_frame(41000)[0]], 1, CONFIG)
    write_records(program, records, [simple_frame(41001)[0], simple_frame(41002)[0]], 2, renamed)
    done = decode(records, "--json", "-")
    assert done.returncode == 0, done.stderr
    first, *rest = [json.loads(line) for line in done.stdout.splitlines()]
    assert list(first["headers"]) == ["Host", "Cookie"]
    assert [list(event["headers"]) for event in rest] == [["X-Slot-0", "X-Slot-6"]] * 2
    assert [event["sport"] for event in (first, *rest)] == [41000, 41001, 41002]


@pytest.mark.kernel
@pytest.mark.parametrize("stdin", [False, True], ids=["file", "stdin"])
def test_a_cut_records_file_decodes_its_whole_records_then_says_where(
    program: Program, tmp_path: Path, stdin: bool
) -> None:
    records = tmp_path / "events.records"
    write_records(program, records, [simple_frame(41000 + n)[0] for n in range(3)], 3, CONFIG)
    whole = records.read_bytes()
    records.write_bytes(whole[:-12])
    done = decode(records, "--text", "-", stdin=stdin)
    assert done.returncode == 1
    assert len(done.stdout.splitlines()) == 2
    [line] = done.stderr.decode().splitlines()
    assert line.startswith("xhdr decode: error: ") and "ends inside a record at byte" in line, line
    assert ("standard input" in line) == stdin, line
    with pytest.raises(RecordsError, match="cut short"):
        list(read_events(records))


def first_record_end(records: bytes) -> int:
    """Where the first record of a records file ends, its padding included (docs/RECORDS.md)."""
    header = -(-(records.index(b"\n\n") + 2) // 8) * 8
    length = int.from_bytes(records[header : header + 4], "little")
    return header + 8 + -(-length // 8) * 8


@pytest.mark.kernel
def test_decode_of_standard_input_writes_each_line_as_its_record_arrives(
    program: Program, tmp_path: Path
) -> None:
    """``xhdr log --records - | xhdr decode -``: a line is written when its record comes, not at the pipe's end,
    and the whole stream decodes as the file does."""
    records = tmp_path / "events.records"
    write_records(program, records, [simple_frame(41000 + n)[0] for n in range(3)], 3, CONFIG)
    whole = records.read_bytes()
    split = first_record_end(whole)
    proc = subprocess.Popen(
        [str(SCRIPT), "decode", "-", "--json", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdin and proc.stdout
        proc.stdin.write(whole[:split] + whole[split : split + 8])  # the second record's length only
        proc.stdin.flush()
        os.set_blocking(proc.stdout.fileno(), False)
        first: list[bytes] = []
        wait_until(lambda: first.append(proc.stdout.read() or b"") or b"\n" in b"".join(first), 20, "a line")
        assert json.loads(b"".join(first))["sport"] == 41000
        proc.stdin.write(whole[split + 8 :])
        proc.stdin.close()
        assert proc.wait(timeout=20) == 0
        os.set_blocking(proc.stdout.fileno(), True)
        rest = proc.stdout.read()
        stderr = proc.stderr.read() if proc.stderr else b""
    finally:
        proc.kill()
        proc.wait()
    assert b"".join(first) + rest == decode(records, "--json", "-").stdout
    assert stderr == b"xhdr decode: 3 events from standard input\n"


@pytest.mark.kernel
def test_decode_reopens_its_output_on_sigusr1_for_log_rotation(program: Program, tmp_path: Path) -> None:
    """``xhdr log --records - | xhdr decode - --json FILE`` runs as long as the logger: renamed, then SIGUSR1 to
    xhdr decode, FILE is opened again while it waits for records, and the lines after go to the new file."""
    records, output, rotated = (
        tmp_path / "events.records",
        tmp_path / "events.jsonl",
        tmp_path / "events.jsonl.1",
    )
    write_records(program, records, [simple_frame(41000 + n)[0] for n in range(3)], 3, CONFIG)
    whole = records.read_bytes()
    split = first_record_end(whole)
    proc = subprocess.Popen(
        [str(SCRIPT), "decode", "-", "--json", str(output)], stdin=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdin
        proc.stdin.write(whole[:split])
        proc.stdin.flush()
        wait_until(lambda: output.exists() and output.read_bytes().endswith(b"\n"), 20, "the first line")
        output.rename(rotated)
        proc.send_signal(signal.SIGUSR1)
        wait_until(output.exists, 20, "the output opened again")
        proc.stdin.write(whole[split:])
        proc.stdin.close()
        assert proc.wait(timeout=20) == 0
        stderr = proc.stderr.read() if proc.stderr else b""
    finally:
        proc.kill()
        proc.wait()
    assert stderr == b"xhdr decode: 3 events from standard input\n"
    assert [json.loads(line)["sport"] for line in rotated.read_bytes().splitlines()] == [41000]
    assert [json.loads(line)["sport"] for line in output.read_bytes().splitlines()] == [41001, 41002]
    assert rotated.read_bytes() + output.read_bytes() == decode(records, "--json", "-").stdout


def test_standard_input_that_is_no_records_file_is_one_line(tmp_path: Path) -> None:
    lines = tmp_path / "events.jsonl"
    lines.write_text('{"kind":"http"}\n')
    done = decode(lines, "--json", "-", stdin=True)
    assert done.returncode == 1
    assert done.stdout == b""
    said = (
        "xhdr decode: error: standard input is not an xhdr records file (it does not start with "
        f"{MAGIC[:14].decode()}); pass a file that xhdr log --records wrote"
    )
    assert done.stderr.decode().splitlines() == [said]


# --- TLS ClientHello events (docs/EXTRACTION.md R21, R22) --------------------------------------------------
#
# A TLS event holds the first max_target_len bytes of its SNI and the first max_value_len bytes of its ALPN
# list in data[], in either order, where its slots 0 and 1 say. Records made here, as the kernel lays them out, go to the consumer through a records file
# (``consumer --input``, the path ``xhdr decode`` takes), so every byte, version, flag word and malformed list
# is rendered by consumer.c without the kernel having to be led there.


def section_header(config: ExtractorConfig) -> bytes:
    """A records section header as docs/RECORDS.md lays it out (the consumer writes the same bytes)."""
    lines = [f"max-target-len {config.max_target_len}", f"max-value-len {config.max_value_len}"]
    lines += [f"header {rule.name}:{rule.mode.name.lower()}" for rule in config.headers]
    header = MAGIC + "".join(f"{line}\n" for line in lines).encode() + b"\n"
    return header.ljust(-(-len(header) // 8) * 8, b"\0")


def records_file(path: Path, records: Sequence[bytes], config: ExtractorConfig = CONFIG) -> Path:
    """One section of ``records``, each behind its length and padded to 8 bytes (docs/RECORDS.md)."""
    entries = [
        len(raw).to_bytes(4, "little") + bytes(4) + raw.ljust(-(-len(raw) // 8) * 8, b"\0") for raw in records
    ]
    path.write_bytes(section_header(config) + b"".join(entries))
    return path


@dataclasses.dataclass(frozen=True)
class Hello:
    """A TLS event as the kernel writes it: the whole SNI and ALPN list, of which the record keeps the first
    max_target_len and max_value_len bytes, and the event ``decode_event`` must make of it."""

    saddr: bytes
    daddr: bytes
    sni: bytes
    alpn_list: bytes
    expected: TlsHello
    alpn_first: bool = False  # a hello over two segments can have its ALPN list before its SNI (R23)

    def record(self, config: ExtractorConfig = CONFIG, cut: int = 0) -> bytes:
        """The record, its data short of its last ``cut`` bytes (a record no kernel writes, read all the same)."""
        struct_type = event_struct(config.max_target_len, config.max_value_len)
        record = struct_type()
        event = self.expected
        record.kind = EventKind.TLS
        record.timestamp_ns, record.ifindex = event.timestamp_ns, event.ifindex
        record.family, record.sport, record.dport = event.family, event.sport, event.dport
        ctypes.memmove(record.saddr, self.saddr, len(self.saddr))
        ctypes.memmove(record.daddr, self.daddr, len(self.daddr))
        record.vlan_count = len(event.vlan_ids)
        record.vlan_ids[: len(event.vlan_ids)] = event.vlan_ids
        record.target_length, record.alpn_length = len(self.sni), len(self.alpn_list)
        record.tls_version, record.flags = event.tls_version, int(event.flags)
        sni, alpn = self.sni[: config.max_target_len], self.alpn_list[: config.max_value_len]
        parts = [(TLS_SLOT_SNI, sni), (TLS_SLOT_ALPN, alpn)]
        if self.alpn_first:
            parts.reverse()
        data = b""
        for slot, kept in parts:
            record.slots[slot].value_off, record.slots[slot].value_len = len(data), len(kept)
            data += kept
        data = data[: max(len(data) - cut, 0)]
        ctypes.memmove(record.data, data, len(data))
        record.data_len = len(data)
        return bytes(record)[: struct_type.data.offset + len(data)]


def hello(
    sni: bytes,
    alpn_list: bytes,
    names: tuple[bytes, ...],
    *,
    version: int = tls.TLS_1_3,
    flags: int = 0,
    family: int = 4,
    saddr: bytes = bytes([198, 18, 0, 1]),
    daddr: bytes = bytes([198, 18, 0, 2]),
    sport: int = 40000,
    dport: int = 443,
    vlan_ids: tuple[int, ...] = (),
    timestamp_ns: int = 1,
    ifindex: int = 1,
    alpn_first: bool = False,
) -> Hello:
    """``names`` are the protocol names the kept bytes of ``alpn_list`` must give."""
    expected = TlsHello(
        family=family,
        saddr=str(ipaddress.ip_address(saddr)),
        daddr=str(ipaddress.ip_address(daddr)),
        sport=sport,
        dport=dport,
        vlan_ids=vlan_ids,
        sni=sni[: CONFIG.max_target_len],
        sni_length=len(sni),
        alpn=names,
        alpn_length=len(alpn_list),
        tls_version=version,
        flags=TlsFlag(flags),
        timestamp_ns=timestamp_ns,
        ifindex=ifindex,
    )
    return Hello(saddr, daddr, sni, alpn_list, expected, alpn_first)


def rendered(path: Path, fmt: LogFormat, events: int) -> str:
    """What ``consumer --input`` makes of a records file of ``events`` events."""
    done = subprocess.run(decoder_argv(path, fmt=fmt), capture_output=True, timeout=EXIT_TIMEOUT, check=False)
    assert (done.returncode, done.stderr.decode()) == (0, f"consumer events={events}\n")
    return done.stdout.decode("utf-8")


def assert_rendered_as_python_does(path: Path, expected: Sequence[Event]) -> None:
    """consumer.c's JSON and text lines of the file equal format.py's, and Python reads the events back."""
    lines = JsonLines(CONFIG)
    assert rendered(path, LogFormat.JSON, len(expected)) == "".join(f"{lines.line(e)}\n" for e in expected)
    assert rendered(path, LogFormat.TEXT, len(expected)) == "".join(f"{event_line(e)}\n" for e in expected)
    read = list(read_events(path))
    assert read == list(expected)
    assert [(e.timestamp_ns, e.ifindex) for e in read] == [(e.timestamp_ns, e.ifindex) for e in expected]


any_byte = st.one_of(st.sampled_from(SPECIAL_BYTES + b"\n"), st.integers(0, 255))
snis = st.one_of(st.just(b""), st.lists(any_byte, min_size=1, max_size=60).map(bytes))  # max_target_len 40
protocols = st.lists(any_byte, min_size=1, max_size=10).map(bytes)
# What may end a list of names: nothing, a zero length, or a length that runs past the list's end.
alpn_tails = st.one_of(
    st.just(b""),
    st.binary(max_size=3).map(b"\0".__add__),
    st.integers(1, 255).flatmap(lambda n: st.binary(max_size=min(n - 1, 6)).map(bytes([n]).__add__)),
)
TLS_VERSIONS = [0x0300, tls.TLS_1_0, tls.TLS_1_1, tls.TLS_1_2, tls.TLS_1_3, 0x7F1C, 0x0A0A, 0x02FF, 0x0305, 0]


def names_that_fit(names: Sequence[bytes], kept: int) -> tuple[bytes, ...]:
    """The names whose length byte and bytes lie within the first ``kept`` bytes of their list."""
    ends = [sum(1 + len(name) for name in names[: index + 1]) for index in range(len(names))]
    return tuple(name for name, end in zip(names, ends) if end <= kept)


@st.composite
def alpn_lists(draw: st.DrawFn) -> tuple[bytes, tuple[bytes, ...]]:
    """An ALPN list and the names its first max_value_len bytes give: names and a malformed tail, whose names
    are known without R22's reading, or any bytes at all (then the names are alpn_names()')."""
    if draw(st.booleans()):
        names = draw(st.lists(protocols, max_size=5))
        listed = b"".join(bytes([len(name)]) + name for name in names) + draw(alpn_tails)
        return listed, names_that_fit(names, min(len(listed), CONFIG.max_value_len))
    listed = draw(st.binary(max_size=40))
    return listed, alpn_names(listed[: CONFIG.max_value_len])


@st.composite
def hellos(draw: st.DrawFn) -> Hello:
    family = draw(st.sampled_from([4, 6]))
    addresses = ipv4_addresses if family == 4 else ipv6_addresses
    alpn_list, names = draw(alpn_lists())
    return hello(
        draw(snis),
        alpn_list,
        names,
        version=draw(st.one_of(st.sampled_from(TLS_VERSIONS), st.integers(0, 0xFFFF))),
        flags=draw(st.one_of(st.integers(0, (1 << len(TlsFlag)) - 1), st.integers(0, 0xFFFF))),
        family=family,
        saddr=draw(addresses),
        daddr=draw(addresses),
        sport=draw(st.integers(0, 65535)),
        dport=draw(st.integers(0, 65535)),
        vlan_ids=tuple(draw(st.lists(st.integers(0, 0xFFFF), max_size=2))),
        timestamp_ns=draw(st.integers(0, 2**64 - 1)),
        ifindex=draw(st.integers(0, 2**32 - 1)),
        alpn_first=draw(st.booleans()),
    )


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=st.lists(hellos(), min_size=1, max_size=4))
def test_arbitrary_tls_events_render_as_python_does(
    tmp_path_factory: pytest.TempPathFactory, drawn: list[Hello]
) -> None:
    path = records_file(tmp_path_factory.mktemp("tls") / "hellos.records", [h.record() for h in drawn])
    assert_rendered_as_python_does(path, [h.expected for h in drawn])


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=hellos(), cut=st.integers(1, 80))
def test_tls_events_cut_short_render_as_python_reads_them(
    tmp_path_factory: pytest.TempPathFactory, drawn: Hello, cut: int
) -> None:
    """Lengths that claim more than the record holds: both sides read what is there, as Python slices clamp."""
    raw = drawn.record(cut=cut)
    event = decode_event(raw, CONFIG)
    assert isinstance(event, TlsHello) and event.sni_length == len(drawn.sni)
    path = records_file(tmp_path_factory.mktemp("tls") / "cut.records", [raw])
    assert rendered(path, LogFormat.JSON, 1) == f"{event_json(event)}\n"
    assert rendered(path, LogFormat.TEXT, 1) == f"{event_line(event)}\n"


@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, HttpResponse]:
    """A response event's record (R25) as the kernel lays it out, and the event it must decode to. Any times:
    a record that says its response left before its request came has a latency of 0."""
    family = draw(st.sampled_from([4, 6]))
    addresses = ipv4_addresses if family == 4 else ipv6_addresses
    saddr, daddr = draw(addresses), draw(addresses)
    expected = HttpResponse(
        family=family,
        saddr=str(ipaddress.ip_address(saddr)),
        daddr=str(ipaddress.ip_address(daddr)),
        sport=draw(st.integers(0, 65535)),
        dport=draw(st.integers(0, 65535)),
        vlan_ids=tuple(draw(st.lists(st.integers(0, 0xFFFF), max_size=2))),
        status=draw(st.one_of(st.sampled_from([101, 200, 204, 304, 404, 503]), st.integers(0, 0xFFFF))),
        version=draw(st.sampled_from([10, 11, 0, 255])),
        timestamp_ns=draw(st.integers(0, 2**64 - 1)),
        request_ns=draw(st.integers(0, 2**64 - 1)),
        ifindex=draw(st.integers(0, 2**32 - 1)),
    )
    record = event_struct(CONFIG.max_target_len, CONFIG.max_value_len)()
    record.kind = EventKind.RESPONSE
    record.family, record.sport, record.dport = family, expected.sport, expected.dport
    ctypes.memmove(record.saddr, saddr, len(saddr))
    ctypes.memmove(record.daddr, daddr, len(daddr))
    record.vlan_count = len(expected.vlan_ids)
    record.vlan_ids[: len(expected.vlan_ids)] = expected.vlan_ids
    record.status, record.version = expected.status, expected.version
    record.timestamp_ns, record.request_ns, record.ifindex = (
        expected.timestamp_ns,
        expected.request_ns,
        expected.ifindex,
    )
    return bytes(record)[: type(record).data.offset], expected


@pytest.mark.kernel
def test_a_response_line_names_the_x_request_id_of_the_request_it_answers(
    program: Program, tmp_path: Path
) -> None:
    """R25: of two flows answered, the one whose request sent X-Request-ID gets it on its response's line, the
    other null, as JsonLines says of the kernel's records, byte for byte."""
    with_id, without = (
        build(FrameSpec(payload=f"GET /{port} HTTP/1.1\r\n{header}\r\n".encode(), sport=port))
        for port, header in ((41100, "X-Request-ID: abc-1\r\n"), (41101, "Host: b\r\n"))
    )
    answers = [
        build(FrameSpec(payload=b"HTTP/1.1 404 Not Found\r\n\r\n", sport=port, reply=True))
        for port in (41100, 41101)
    ]
    program.configure(CONFIG.with_changes(responses=True))
    program.take_events()
    program.keep_records = True
    try:
        for frame in with_openings([[with_id], [without]])[0]:
            test_run(program.fd, frame)
        for frame in answers:
            test_run(program.functions[RESPONSES].fd, frame)
        program.take_events()
        records = program.take_records()
    finally:
        program.keep_records = False
        program.configure(CONFIG)
    assert len(records) == 4
    path = records_file(tmp_path / "answered.records", records)
    expected = [decode_event(raw, CONFIG) for raw in records]
    assert_rendered_as_python_does(path, expected)
    lines = [json.loads(line) for line in rendered(path, LogFormat.JSON, 4).splitlines()]
    assert [line["request_id"] for line in lines if line["kind"] == "response"] == ["abc-1", None]


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=st.lists(responses(), min_size=1, max_size=4))
def test_arbitrary_response_events_render_as_python_does(
    tmp_path_factory: pytest.TempPathFactory, drawn: list[tuple[bytes, HttpResponse]]
) -> None:
    path = records_file(tmp_path_factory.mktemp("responses") / "responses.records", [raw for raw, _ in drawn])
    assert_rendered_as_python_does(path, [expected for _, expected in drawn])


def test_every_byte_version_and_flag_of_tls_events_renders_as_python_does(tmp_path: Path) -> None:
    """SNIs and protocol names hold every byte, LF included (R22 reads them as they come); every version name,
    every flag alone, no SNI and no ALPN, truncations and malformed lists, each for sure."""
    every = bytes(range(256))
    made = []
    for index, at in enumerate(range(0, 256, 20)):
        first, second = every[at : at + 10], every[at + 10 : at + 20]
        listed = bytes([len(first)]) + first + (bytes([len(second)]) + second if second else b"")
        made.append(
            hello(
                every[at : at + 20],
                listed,
                tuple(name for name in (first, second) if name),
                version=TLS_VERSIONS[index % len(TLS_VERSIONS)],
                flags=1 << index % len(TlsFlag),
                sport=42000 + index,
            )
        )
    h2, http11 = b"h2", b"http/1.1"
    loopback = ipaddress.IPv6Address("::1").packed
    made += [
        # Neither SNI nor ALPN; an SNI one byte past max_target_len; a name past max_value_len.
        hello(b"", b"", ()),
        hello(b"s" * 41, b"\x02h2", (h2,), flags=TlsFlag.SNI_TRUNCATED),
        hello(b"example.com", b"\x02h2" + b"\x1e" + b"x" * 30, (h2,), flags=TlsFlag.ALPN_TRUNCATED),
        # Malformed lists: a zero length ends the names, and so does a name that runs past the list.
        hello(b"example.com", b"\x02h2\x00\x08http/1.1", (h2,)),
        hello(b"example.com", b"\x02h2\x09http/1.1", (h2,)),
        hello(b"example.com", b"\x00\x02h2", ()),
        # Every flag bit, named or not.
        hello(
            b"", b"\x02h2\x08http/1.1", (h2, http11), flags=0xFFFF, family=6, saddr=loopback, daddr=bytes(16)
        ),
    ]
    expected = [h.expected for h in made]
    assert {byte for e in expected for byte in e.sni} == set(every)
    assert {byte for e in expected for name in e.alpn for byte in name} == set(every)
    path = records_file(tmp_path / "hellos.records", [h.record() for h in made])
    assert_rendered_as_python_does(path, expected)
    # The text line itself, as a person reads it.
    text = rendered(path, LogFormat.TEXT, len(made)).split("\n")
    assert text[-8:-2] == [
        "198.18.0.1:40000 -> 198.18.0.2:443 TLS 1.3 sni=- alpn=-",
        f"198.18.0.1:40000 -> 198.18.0.2:443 TLS 1.3 sni={'s' * 40}... alpn=h2 [sni_truncated]",
        "198.18.0.1:40000 -> 198.18.0.2:443 TLS 1.3 sni=example.com alpn=h2 [alpn_truncated]",
        "198.18.0.1:40000 -> 198.18.0.2:443 TLS 1.3 sni=example.com alpn=h2",
        "198.18.0.1:40000 -> 198.18.0.2:443 TLS 1.3 sni=example.com alpn=h2",
        "198.18.0.1:40000 -> 198.18.0.2:443 TLS 1.3 sni=example.com alpn=-",
    ]
    assert rendered(path, LogFormat.TEXT, len(made)).endswith(
        "[::1]:40000 -> [::]:443 TLS 1.3 sni=- alpn=h2,http/1.1 "
        "[sni_truncated,alpn_truncated,hello_cut,scan_limit,too_many_extensions,bad_extensions,split_extension]\n"
    )


TLS_FRAMES = [
    (tls.curl_like(), 443),
    # An SNI of odd bytes past max_target_len, odd protocol names and more of them than max_value_len keeps.
    (
        tls.curl_like(b'\x00\x01\x7f\x80\xa0\xad\xff"\\\n' + b"x" * 40, (b"h2", b"\x00\xff\n", b"p" * 20)),
        8443,
    ),
    (tls.with_extensions([]), 443),  # no SNI, no ALPN: the legacy version
    (tls.with_extensions([(tls.ALPN, tls.u16_prefixed(b"\x02h2\x00\x08http/1.1"))]), 443),
    (tls.with_extensions([(tls.SUPPORTED_VERSIONS, tls.supported_versions(0x0A0A, 0x7F1C))]), 443),
]


def tls_frames() -> list[bytes]:
    """ClientHellos on the TLS ports, each in a SYN that opens its flow, and a request between them."""
    specs = [
        FrameSpec(payload=hello.to_bytes(), sport=44000 + index, dport=dport, family=4 + 2 * (index % 2))
        for index, (hello, dport) in enumerate(TLS_FRAMES)
    ]
    frames = [fast_open(build(spec)) for spec in specs]
    return [*frames[:2], fast_open(build(FrameSpec(payload=SIMPLE_REQUEST, sport=44100))), *frames[2:]]


@pytest.mark.kernel
@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_tls_events_of_the_kernel_render_as_python_does(
    program: Program, tmp_path: Path, as_json: bool
) -> None:
    """The kernel's own TLS records: the lines the consumer writes from the ring equal format.py's rendering of
    the events Python decodes from the same records (written with --records)."""
    frames = tls_frames()
    records = tmp_path / "events.records"
    write_records(program, records, frames, len(frames), CONFIG)
    expected = list(read_events(records))
    seen = [event for event in expected if isinstance(event, TlsHello)]
    assert len(seen) == len(TLS_FRAMES) and len(expected) == len(frames)
    assert seen[1].flags & TlsFlag.SNI_TRUNCATED and seen[1].flags & TlsFlag.ALPN_TRUNCATED
    assert [e.sni_length == 0 for e in seen] == [False, False, True, True, True]
    assert [e.alpn for e in seen][2:4] == [(), (b"h2",)]
    assert seen[-1].tls_version == 0x7F1C
    proc = start(program, fmt=LogFormat.JSON if as_json else LogFormat.TEXT)
    feed(program, frames, len(frames))
    out = stop(proc, len(frames))
    if as_json:
        assert_json_lines(out, expected)
        kinds = [json.loads(line)["kind"] for line in lines_of(out)]
        assert kinds == ["tls", "tls", "http", "tls", "tls", "tls"]
    else:
        assert_text_lines(out, expected)


def test_a_records_file_of_an_older_version_is_refused(tmp_path: Path) -> None:
    """Version 1 records have another head: a file of them is refused, never read wrongly."""
    old = records_file(tmp_path / "old.records", [bytes(120)])
    old.write_bytes(b"XHDR-RECORDS 1\n" + old.read_bytes()[len(MAGIC) :])
    done = subprocess.run(
        decoder_argv(old, fmt=LogFormat.TEXT), capture_output=True, timeout=EXIT_TIMEOUT, check=False
    )
    assert (done.returncode, done.stdout) == (1, b"")
    assert done.stderr.decode() == (
        f"xhdr log: {old} is not an xhdr records file (it does not start with {MAGIC.decode().strip()}); "
        "pass a file that xhdr log --records wrote\n"
    )
    with pytest.raises(RecordsError, match="is not an xhdr records file"):
        list(read_events(old))
    # A section header without the value limit that a TLS event's ALPN bytes need is refused too.
    unlimited = tmp_path / "unlimited.records"
    unlimited.write_bytes(section_header(CONFIG).replace(b"max-value-len 24\n", b""))
    done = subprocess.run(
        decoder_argv(unlimited, fmt=LogFormat.TEXT), capture_output=True, timeout=EXIT_TIMEOUT, check=False
    )
    assert done.returncode == 1
    assert "a section header without max-value-len at byte 0" in done.stderr.decode()


# What the records format's version number stands for: the head of struct xhdr_event as the Python mirror has it
# (tests/test_layout.py holds the mirror to the C header), with the slot struct inside it.
RECORDS_HEADS = {
    b"XHDR-RECORDS 1\n": "39999219428b9496",
    b"XHDR-RECORDS 2\n": "3cd06094f49e5689",  # tls_version, alpn_length, kind (TLS events)
    b"XHDR-RECORDS 3\n": "90c4575967bb3cef",  # status, request_ns (response events)
    b"XHDR-RECORDS 4\n": "ddabac277522eebc",  # rule_off, rule_len, action (request rules)
}


def _layout(struct: type[ctypes.Structure]) -> list[tuple[str, int, int]]:
    return [(name, getattr(struct, name).offset, getattr(struct, name).size) for name, _ in struct._fields_]


def test_the_records_version_changes_with_the_event_head() -> None:
    """A records file holds the event head as the kernel wrote it: a changed head needs a new version, or files
    written before would be read wrongly. The C writer and the Python reader name the same version."""
    head = [field for field in _layout(event_struct(1, 1)) if field[0] != "data"]
    fingerprint = hashlib.sha256(repr((head, _layout(_Slot))).encode()).hexdigest()[:16]
    assert RECORDS_HEADS.get(MAGIC) == fingerprint, (
        f"struct xhdr_event's head changed (fingerprint {fingerprint}): raise the version in RECORDS_MAGIC "
        "(harness/log/consumer/consumer.c) and harness/log/records.py's MAGIC, then add it here"
    )
    c_magic = MAGIC.decode().replace("\n", "\\n")
    assert f'#define RECORDS_MAGIC\t"{c_magic}"' in SOURCE.read_text()


# --- errors and the build --------------------------------------------------------------------------------


@pytest.mark.kernel
def test_a_wrong_ring_size_is_one_line_naming_the_right_one(program: Program) -> None:
    fd = ring_fd(program)
    argv = consumer_argv(CONFIG.with_changes(ringbuf_pages=64), fd, fmt=LogFormat.JSON)
    done = subprocess.run(argv, pass_fds=(fd,), capture_output=True, timeout=EXIT_TIMEOUT, check=False)
    assert done.returncode == 1
    assert done.stdout == b""
    assert done.stderr.decode() == (
        f"xhdr log: the ring buffer of --ring-fd {fd} holds {CONFIG.ringbuf_pages * 4096} bytes, not "
        f"--ring-bytes {64 * 4096}; pass {CONFIG.ringbuf_pages * 4096}\n"
    )


def test_a_descriptor_that_is_not_a_ring_buffer_is_refused() -> None:
    read_end, write_end = os.pipe()
    try:
        argv = consumer_argv(CONFIG, read_end, fmt=LogFormat.TEXT)
        done = subprocess.run(
            argv, pass_fds=(read_end,), capture_output=True, timeout=EXIT_TIMEOUT, check=False
        )
    finally:
        os.close(read_end)
        os.close(write_end)
    assert done.returncode == 1
    message = done.stderr.decode()
    assert message.startswith(f"xhdr log: --ring-fd {read_end} is not a BPF ring buffer map")
    assert message.count("\n") == 1


def test_the_consumer_builds_without_warnings(tmp_path: Path) -> None:
    done = subprocess.run(
        compile_command(tmp_path / "consumer", ("-Werror",)), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    binary = build_consumer()
    built_at = binary.stat().st_mtime_ns
    assert build_consumer() == binary, "the same source must give the same cached binary"
    assert binary.stat().st_mtime_ns == built_at, "a cached binary is not built again"
    assert os.access(binary, os.X_OK)


def test_a_compile_error_is_one_line_from_gcc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "consumer.c"
    broken.write_text("int main(void) { return missing; }\n")
    monkeypatch.setattr(harness.log.consumer, "SOURCE", broken)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(BuildError) as raised:
        build_consumer()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("gcc could not build consumer.c: ")
    assert "missing" in message and "error" in message
    assert not list((tmp_path / "cache" / "bin").iterdir()), "a failed build leaves no file behind"
