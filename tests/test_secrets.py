"""Secrets stay in the kernel, checked on raw bytes (issue 9: S1, S3, docs/EXTRACTION.md R13).

Every Cookie and Authorization token here is drawn fresh and unique, so any run of RUN of its bytes found in a
ring-buffer record (padding and unused space included) or in any map after the packet is a leak. Requests are
split at random points (a segment that starts inside a secret), cut short and pipelined, the shapes that
leaked before, and sent as flows whose header sections go on in the next segment (R18: the request's record
waits in the `pending` map between them). Every event must also equal the reference's, so the property cannot
pass by logging nothing. Maps are read whole, the hash maps (flows, pending) key and value.
"""

from __future__ import annotations

import ctypes
import random
import signal
import string
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.core.config import ExtractorConfig
from harness.core.counters import Counter
from harness.core.driver import TestRunDriver, feed_flows, feed_opened, with_openings
from harness.core.event import SLOTS, event_struct
from harness.core.native import libbpf
from harness.core.program import Program
from harness.core.rules import Action, Condition, Match, Rule
from harness.core.testrun import test_run
from harness.kernels.guest import bcc_maps
from harness.log.consumer import LogFormat, consumer_argv
from harness.log.records import RecordCounter
from harness.oracle.corpus import flow_expectations
from harness.oracle.differences import event_differences
from harness.oracle.frames import FrameSpec, build, split

pytestmark = pytest.mark.kernel

KEY = bytes(range(0x10, 0x20))
# Rules (R27-R30) too: every record then carries a rule's name, and the aggregates map values, which must be
# the only new bytes in either.
CONFIG = ExtractorConfig(
    rules=(
        Rule("scan", Action.LOG, 1, (Condition("User-Agent", Match.CONTAINS, b"zz"),)),
        Rule("every request", Action.LOG, 1, (), ("Host", "User-Agent")),
    )
)
RUN = 6  # the shortest run of a secret's bytes that counts as a leak
TOKEN_BYTES = (string.ascii_letters + string.digits + "-._~").encode()
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_HASH = 9


def token(rng: random.Random) -> bytes:
    return bytes(rng.choice(TOKEN_BYTES) for _ in range(rng.randint(16, 72)))


def request(rng: random.Random, secrets: list[bytes], target: bytes = b"/api/v2/items") -> bytes:
    """A request with a Cookie and an Authorization value made of fresh tokens (recorded in ``secrets``)."""
    cookie, bearer = token(rng), token(rng)
    secrets += [cookie, bearer]
    fields = [
        b"Host: api.shop.example",
        b"User-Agent: okhttp/4.12.0",
        b"Cookie: sid=" + cookie,
        b"Authorization: Bearer " + bearer,
        b"X-Filler-%d: %s" % (rng.randint(0, 99), b"f" * rng.randint(0, 40)),
    ]
    rng.shuffle(fields)
    return b"GET " + target + b" HTTP/1.1\r\n" + b"\r\n".join(fields) + b"\r\n\r\n"


def flows(rng: random.Random, secrets: list[bytes]) -> Iterator[list[bytes]]:
    """Flows of one frame each (split, cut short, pipelined) and of two segments, each then a clean request."""
    for _ in range(40):
        whole = request(rng, secrets)
        cut = rng.randint(1, len(whole) - 1)
        yield [build(FrameSpec(payload=whole[:cut]))]  # cut short, alone in its flow (R10, R11, R13 CUT)
        yield [build(FrameSpec(payload=whole[cut:]))]  # a segment that starts anywhere, inside a secret too
        yield [build(FrameSpec(payload=request(rng, secrets) * rng.randint(2, 4)))]  # pipelined (R14)
        whole = request(rng, secrets)
        segments = split(FrameSpec(payload=whole), rng.randint(1, len(whole) - 1))
        yield [build(segment) for segment in segments]  # the first kept in `pending` (R18)
        yield [build(FrameSpec(payload=request(rng, secrets, b"/next")))]  # reuses the scratch used above


def leaks(blob: bytes, secrets: list[bytes]) -> list[str]:
    """Every secret with a run of RUN bytes inside ``blob``."""
    found = []
    for secret in secrets:
        runs = {secret[i : i + RUN] for i in range(len(secret) - RUN + 1)}
        hits = [run for run in runs if run in blob]
        if hits:
            found.append(f"{secret!r} (e.g. {hits[0]!r})")
    return found


def map_contents(program: Program) -> dict[str, bytes]:
    """The bytes of every array and hash map of the program, per-CPU maps on every CPU (the ring buffer aside)."""
    lib = libbpf()
    contents = {}
    for spec in bcc_maps(program.bpf.module):
        if spec.kind not in (
            BPF_MAP_TYPE_ARRAY,
            BPF_MAP_TYPE_PERCPU_ARRAY,
            BPF_MAP_TYPE_HASH,
            BPF_MAP_TYPE_LRU_HASH,
        ):
            continue
        leaf = spec.value_size
        size = (leaf + 7) // 8 * 8 * _possible_cpus() if spec.kind == BPF_MAP_TYPE_PERCPU_ARRAY else leaf
        chunks = []
        for key in _keys(lib, spec.fd, spec.key_size):
            value = ctypes.create_string_buffer(size)
            assert lib.bpf_map_lookup_elem(spec.fd, key, value) == 0
            chunks += [key.raw, value.raw]
        contents[spec.name] = b"".join(chunks)
    return contents


def _keys(lib: ctypes.CDLL, fd: int, key_size: int) -> Iterator[ctypes.Array[ctypes.c_char]]:
    """Every key of a map, in the kernel's order (for an array, 0 to max_entries - 1)."""
    key = None
    while True:
        following = ctypes.create_string_buffer(key_size)
        if lib.bpf_map_get_next_key(fd, key, following) != 0:
            return
        yield following
        key = following


def _possible_cpus() -> int:
    with open("/sys/devices/system/cpu/possible") as possible:
        return max(int(part.split("-")[-1]) for part in possible.read().strip().split(",")) + 1


def record_problems(raw: bytes) -> list[str]:
    """What a record holds beyond its fields: bytes past data_len, after the method, or in reserved space."""
    struct_type = event_struct(CONFIG.max_target_len, CONFIG.max_value_len)
    data_at = struct_type.data.offset
    record = struct_type.from_buffer_copy(
        raw[: ctypes.sizeof(struct_type)].ljust(ctypes.sizeof(struct_type), b"\0")
    )
    problems = []
    if len(raw) != data_at + record.data_len:
        problems.append(f"record of {len(raw)} bytes for a data_len of {record.data_len}")
    if any(bytes(record.method)[record.method_len :]):
        problems.append(f"method[] holds bytes after its {record.method_len}: {bytes(record.method)!r}")
    used = min(record.target_length, CONFIG.max_target_len) + sum(slot.value_len for slot in record.slots)
    used += record.rule_len
    if any(record.unused):
        problems.append(f"the head's unused bytes hold {bytes(record.unused)!r}")
    if used != record.data_len:
        problems.append(f"data_len {record.data_len} but the target and values use {used}")
    for index in range(SLOTS):
        slot = record.slots[index]
        if slot.reserved or (not slot.flags and (slot.hash or slot.length or slot.value_len)):
            problems.append(f"slot {index} holds bytes it does not use")
    return problems


@pytest.fixture(scope="module")
def keyed_program() -> Iterator[Program]:
    with Program(CONFIG, key=KEY) as loaded:
        loaded.keep_records = True
        yield loaded


@pytest.mark.parametrize("seed", range(3))
def test_no_secret_byte_in_any_record_or_map(keyed_program: Program, seed: int) -> None:
    rng, secrets = random.Random(seed), []
    checked = 0
    driver = TestRunDriver(keyed_program)
    kept = 0
    for flow in flows(rng, secrets):
        outcomes = feed_flows(driver, [flow])
        records = keyed_program.take_records()  # the SYN before the flow logs nothing
        events = [event for outcome in outcomes for event in outcome.events]
        expected = [event for one in flow_expectations([flow], CONFIG, KEY) for event in one.events]
        assert len(events) == len(expected) == len(records), flow
        for event, want, raw in zip(events, expected, records, strict=True):
            assert not event_differences(event, want), (flow, event_differences(event, want))
            assert not record_problems(raw), (flow, record_problems(raw))
            assert not leaks(raw, secrets), (flow, leaks(raw, secrets))
            checked += 1
        kept += sum(outcome.counters[Counter.CONTINUED] for outcome in outcomes)
    assert checked > 150  # the property saw records, not only frames that were not requests
    assert kept > 10  # and requests whose record waited in `pending` for the next segment
    contents = map_contents(keyed_program)
    assert contents["pending"] and contents["flows"], "the flow maps were not read"
    for name, blob in contents.items():
        assert not leaks(blob, secrets), f"map {name} still holds {leaks(blob, secrets)}"


def test_segment_starting_in_a_cookie_leaves_nothing_in_the_next_record(keyed_program: Program) -> None:
    """S1 as reported: a segment beginning two bytes before `T0ken`, then `GET /next` on the same CPU."""
    whole = b"GET /a HTTP/1.1\r\nHost: a\r\nCookie: sid=s3cr3tT0kenValue42\r\n\r\n"
    split = whole.index(b"T0ken") - 2
    payloads = (whole[:split], whole[split:], b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    # Each segment opened as its own flow, so the one starting in the cookie is read from its first byte.
    feed_opened(TestRunDriver(keyed_program), [build(FrameSpec(payload=payload)) for payload in payloads])
    last = keyed_program.take_records()[-1]
    struct_type = event_struct(CONFIG.max_target_len, CONFIG.max_value_len)
    method = last[struct_type.method.offset : struct_type.method.offset + struct_type.method.size]
    assert method == b"GET".ljust(16, b"\0")
    assert not leaks(last, [b"s3cr3tT0kenValue42"])


def test_a_records_file_holds_no_secret_byte(keyed_program: Program, tmp_path: Path) -> None:
    """``xhdr log --records`` keeps the ring's records on disk: the file, headers and padding included, holds
    no run of a secret either."""
    rng, secrets = random.Random(7), []
    frames = [frame for flow in flows(rng, secrets) for frame in with_openings([flow])[0]]
    records, fd = tmp_path / "events.records", keyed_program.bpf[b"events"].map_fd
    argv = consumer_argv(CONFIG, fd, fmt=LogFormat.RECORDS, output=records)
    consumer = subprocess.Popen(argv, pass_fds=(fd,), stderr=subprocess.PIPE)
    assert consumer.stderr is not None and consumer.stderr.readline() == b"ready\n"
    before = keyed_program.counters()[Counter.EVENTS]
    for frame in frames:
        test_run(keyed_program.fd, frame)
    consumer.send_signal(signal.SIGTERM)
    assert consumer.wait(timeout=10) == 0
    logged = keyed_program.counters()[Counter.EVENTS] - before
    assert logged > 150 and RecordCounter(records).count() == logged
    assert not leaks(records.read_bytes(), secrets)
