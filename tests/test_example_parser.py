"""The example parser, tests/objects/reqline.bpf.c, put through the harness the way a user's own parser is.

It is independent of the extractor (libbpf style, built with clang, its own record and ring buffer), so
everything here works from what a user has: the pytest plugin's fixtures for the cases a person writes down and
for a real link in both XDP modes; ``xhdr fuzz --object`` with the user's decoder and oracle
(tests/objects/reqline.py), or the reference, for the cases nobody writes down; ``xhdr bench --object`` for its
cost beside the empty program and the A/B gate between two builds of it. A wrong oracle is found and shrunk to
a minimal frame, and a slower build fails the gate: each can fail. Its run on Linux 5.10 is in
tests/test_kernel_matrix.py, in the same guest boot as the extractor's.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fuzz import foreign
from fuzz.differential import FUZZ_CONFIG
from harness.cli.main import SCRIPT as XHDR
from harness.cli.main import main
from harness.core.loader import LoadedXdp, load
from harness.core.program import ProgramError
from harness.core.rounds import PRIMING_RUNS
from harness.core.wait import wait_until
from harness.core.xdp import XdpMode
from netns.lab import Lab

pytestmark = pytest.mark.kernel

ORACLE_FILE = Path(__file__).with_name("objects") / "reqline.py"
SEED = 20261202


REQLINE = foreign.load_module(str(ORACLE_FILE), "the example's decoder and oracle")


@pytest.fixture
def parser(clang_object: Callable[..., Path]) -> Iterator[LoadedXdp]:
    with load(clang_object("reqline")) as loaded:
        yield loaded


def logged(parser: LoadedXdp, frame: bytes, xhdr_test_run: Callable[..., object]) -> list[object]:
    xhdr_test_run(parser, frame)
    return [REQLINE.decode(record) for record in parser.records("lines")]


CASES = {
    "a request line": (b"GET /search?q=1 HTTP/1.1\r\nHost: a\r\n\r\n", {}, [(b"GET", b"/search?q=1", False)]),
    "over IPv6": (b"DELETE /x HTTP/1.1\r\n\r\n", {"family": 6}, [(b"DELETE", b"/x", False)]),
    "a target longer than 64 bytes": (
        b"GET /" + b"a" * 80 + b" HTTP/1.1\r\n",
        {},
        [(b"GET", b"/" + b"a" * 63, True)],
    ),
    "a target cut by the payload's end": (b"PUT /up", {}, [(b"PUT", b"/up", False)]),
    "lower-case method: nothing": (b"get / HTTP/1.1\r\n\r\n", {}, []),
    "another port: nothing": (b"GET / HTTP/1.1\r\n\r\n", {"dport": 8080}, []),
    "a VLAN tag: nothing": (b"GET / HTTP/1.1\r\n\r\n", {"vlan_ids": (7,)}, []),
}


@pytest.mark.parametrize(("payload", "fields", "lines"), CASES.values(), ids=CASES.keys())
def test_what_it_logs(
    parser: LoadedXdp,
    xhdr_frame: Callable[..., bytes],
    xhdr_test_run: Callable[..., object],
    payload: bytes,
    fields: dict,
    lines: list[tuple[bytes, bytes, bool]],
) -> None:
    frame = xhdr_frame(payload, **fields)
    assert logged(parser, frame, xhdr_test_run) == [REQLINE.RequestLine(*line) for line in lines]
    assert REQLINE.expected(frame) == [REQLINE.RequestLine(*line) for line in lines]


def test_on_a_real_link_in_both_modes(
    parser: LoadedXdp, xhdr_lab: Lab, xhdr_mode: XdpMode, xhdr_frame: Callable[..., bytes]
) -> None:
    """Attached to the gateway's end of a veth pair, it logs what the frames sent over the link carry."""
    xhdr_lab.attach(parser.fd, xhdr_mode)
    xhdr_lab.send(
        [xhdr_frame(b"GET /over/the/link HTTP/1.1\r\n\r\n"), xhdr_frame(b"POST /two HTTP/1.1\r\n\r\n")]
    )
    lines: list[object] = []

    def both_logged() -> bool:
        lines.extend(REQLINE.decode(record) for record in parser.records("lines"))
        return len(lines) >= 2

    wait_until(both_logged, 5.0, "both request lines logged")
    assert lines == [
        REQLINE.RequestLine(b"GET", b"/over/the/link", False),
        REQLINE.RequestLine(b"POST", b"/two", False),
    ]


def test_the_fuzzer_holds_it_to_its_oracle(parser: LoadedXdp) -> None:
    checked = foreign.Parser(parser, "lines", REQLINE.decode, REQLINE.expected)
    examples = []
    assert foreign.run(checked, 150, FUZZ_CONFIG, seed=SEED, on_example=lambda: examples.append(1)) is None
    assert len(examples) >= 150


def test_the_fuzzer_finds_and_shrinks_a_wrong_oracle(parser: LoadedXdp, tmp_path: Path) -> None:
    """An oracle that forgets the Ethernet header when it adds up the IPv4 length, so it reads 14 bytes less
    of each payload: the fuzzer finds a frame where that matters and shrinks it to a short request."""

    def ethernet_forgotten(frame: bytes) -> list[object]:
        if frame[12:14] == b"\x08\x00" and len(frame) >= 18:
            frame = frame[: int.from_bytes(frame[16:18], "big")]
        return REQLINE.expected(frame)

    checked = foreign.Parser(parser, "lines", REQLINE.decode, ethernet_forgotten)
    found = foreign.run(checked, 200, FUZZ_CONFIG, seed=SEED)
    assert found is not None, "the fuzzer missed an oracle that reads 14 bytes too few"
    assert found.logged != found.expected and len(found.frame) < 100, found
    path = foreign.save(found, Path("reqline.bpf.o"), parser.name, tmp_path)
    assert bytes.fromhex(json.loads(path.read_text())["frame_hex"]) == found.frame
    assert path.with_suffix(".pcap").stat().st_size > len(found.frame)


def test_the_reference_is_cut_down_to_the_keys_a_parser_logs() -> None:
    expected = [
        {"method": "GET", "target": "/a", "headers": {"Host": {"value": "h", "length": 1}}, "flags": []}
    ]
    assert foreign.projected(expected, [{"method": "PUT"}]) == [{"method": "GET"}]
    assert foreign.projected(expected, [{"headers": {"Host": {"value": "x"}, "Via": {}}}]) == [
        {"headers": {"Host": {"value": "h"}, "Via": foreign.ABSENT}}
    ]
    assert foreign.projected(expected, []) == expected  # an event the parser did not log still shows
    assert (
        foreign.projected([], [{"method": "GET"}]) == []
    )  # ... and one it logged that the reference did not


def test_the_reference_is_the_default_oracle(parser: LoadedXdp, xhdr_frame: Callable[..., bytes]) -> None:
    """Held to the reference on the fields it logs, the example agrees on a whole request and is caught on a
    request line the reference does not log (its header section never ends), with the frames shrunk."""
    checked = foreign.Parser(parser, "lines", REQLINE.as_logged)
    checked.compare(xhdr_frame(b"GET /search?q=1 HTTP/1.1\r\nHost: a\r\n\r\n"))
    with pytest.raises(foreign.Mismatch) as cut:
        checked.compare(xhdr_frame(b"GET /search?q=1 HTTP/1.1\r\nHost: a\r\n"))
    assert (cut.value.logged, cut.value.expected) == ([{"method": "GET", "target": "/search?q=1"}], [])
    found = foreign.run(checked, 100, FUZZ_CONFIG, seed=SEED)
    assert found is not None and len(found.logged) != len(found.expected), found


def xhdr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(XHDR), *args], check=False, capture_output=True, text=True, timeout=300)


def test_decoder_and_oracle_by_entry_point(clang_object: Callable[..., Path], tmp_path: Path) -> None:
    """A package that declares its decoder and oracle as entry points (here a dist-info of its own on the
    path, as pip would install it) is named by them."""
    dist = tmp_path / "reqline_example-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: reqline-example\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[xhdr.decoders]\nreqline = reqline:decode\n\n[xhdr.oracles]\nreqline = reqline:expected\n"
    )
    done = subprocess.run(
        [str(XHDR), "fuzz", "--object", str(clang_object("reqline")), "--decoder", "reqline", "--oracle", "reqline",
         "--examples", "20", "--seed", "1", "--corpus", str(tmp_path)],
        env={**os.environ, "PYTHONPATH": f"{tmp_path}:{ORACLE_FILE.parent}"},
        check=False, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "20 examples, every frame logged what the oracle expected" in done.stderr


def test_xhdr_fuzz_object_as_users_run_it(clang_object: Callable[..., Path], tmp_path: Path) -> None:
    built = str(clang_object("reqline"))
    done = xhdr(
        "fuzz", "--object", built, "--decoder", f"{ORACLE_FILE}:decode",
        "--oracle", f"{ORACLE_FILE}:expected", "--examples", "50", "--seed", "1", "--corpus", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "50 examples, every frame logged what the oracle expected" in done.stderr


def test_xhdr_fuzz_object_against_the_reference(clang_object: Callable[..., Path], tmp_path: Path) -> None:
    """No --oracle: the reference. The example does not follow docs/EXTRACTION.md (it logs request lines whose
    header section never ends, not those on port 8080 or behind a VLAN tag...), so the command finds a frame
    they disagree on, says so against the reference, saves the repro and exits 1."""
    done = xhdr(
        "fuzz", "--object", str(clang_object("reqline")), "--decoder", f"{ORACLE_FILE}:as_logged",
        "--examples", "100", "--seed", "1", "--corpus", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "reqline.bpf.o disagrees with the reference: logged [" in done.stderr
    assert len(list(tmp_path.glob("foreign-*.json"))) == 1


# (command and options after --object FILE, the object, what follows, what the one line says)
FUZZ, BENCH = ["fuzz", "--examples", "1"], ["bench", "--quick"]
BAD_ARGS = {
    "fuzz: no ring buffer": (
        FUZZ,
        "pass_count",
        ["--decoder", f"{ORACLE_FILE}:decode", "--oracle", f"{ORACLE_FILE}:expected"],
        "has no ring buffer map; fuzzing",
    ),
    "fuzz: no decoder": (FUZZ, "reqline", ["--oracle", "m:f"], "--object needs --decoder too"),
    "fuzz: no such entry point": (
        FUZZ,
        "reqline",
        ["--decoder", "nothing-installed"],
        "an entry point of group xhdr.decoders",
    ),
    "fuzz: not a function": (
        FUZZ,
        "reqline",
        ["--decoder", ":f", "--oracle", "m:f"],
        "is not MODULE:FUNCTION",
    ),
    "fuzz: no such file": (FUZZ, "reqline", ["--decoder", "/nope.py:f", "--oracle", "m:f"], "does not exist"),
    "fuzz: no such map": (
        FUZZ,
        "reqline",
        ["--ring", "nope", "--decoder", f"{ORACLE_FILE}:decode", "--oracle", f"{ORACLE_FILE}:expected"],
        "has no ring buffer map named 'nope' (its ring buffers: lines)",
    ),
    "fuzz: an extractor option": (
        FUZZ,
        "reqline",
        ["--mutants", "3"],
        "--mutants is for the extractor's campaign",
    ),
    "bench: a suite of the extractor's": (
        BENCH,
        "reqline",
        ["--suite", "lab_throughput"],
        "--suite lab_throughput measures the extractor; with --object only kernel_cost and cache_cost run",
    ),
    "bench: the extractor's profile": (
        BENCH,
        "reqline",
        ["--profile", "standard"],
        "--profile is for the extractor's profile",
    ),
    "bench: a stored program that is not a file": (
        BENCH,
        "reqline",
        ["--compare", "HEAD"],
        "with --object, give the other build",
    ),
    "bench: no such map": (BENCH, "reqline", ["--ring", "nope"], "has no ring buffer map named 'nope'"),
}


@pytest.mark.parametrize(("command", "name", "extra", "message"), BAD_ARGS.values(), ids=BAD_ARGS.keys())
def test_bad_arguments_get_one_line(
    clang_object: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    command: list[str],
    name: str,
    extra: list[str],
    message: str,
) -> None:
    """In this process (the command's own entry, as the console script calls it): one line each, exit 1."""
    out = ["--out", str(tmp_path)] if command is BENCH else []
    assert main([command[0], "--object", str(clang_object(name)), *command[1:], *out, *extra]) == 1
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert len(error.strip().splitlines()) == 1, error


def test_a_ring_that_is_not_a_ring_buffer(clang_object: Callable[..., Path]) -> None:
    with (
        load(clang_object("pass_count")) as counter,
        pytest.raises(ProgramError, match="is not a ring buffer"),
    ):
        counter.records("packets")


def test_xhdr_bench_object_as_users_run_it(clang_object: Callable[..., Path], tmp_path: Path) -> None:
    """The cost benchmark of a user's program: each case beside the empty program, one record per run drained."""
    done = xhdr(
        "bench", "--object", str(clang_object("reqline")), "--quick", "-k", "standard or frame_1500",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("standard request: reqline "), done.stdout
    rows = json.loads((tmp_path / "kernel_cost.json").read_text())["rows"]
    assert {(row["method"], row["params"]["case"]) for row in rows if row["metric"] == "ns_per_packet"} == {
        (method, case) for method in ("reqline", "empty") for case in ("standard", "frame_1500")
    }
    # every run wrote its record (each round's drain counted them), within what the ring holds
    assert {row["params"]["events_per_run"] for row in rows} == {1}
    assert {row["params"]["repeat"] for row in rows} == {100}


def test_the_cache_suite_measures_your_program_into_its_own_results(
    clang_object: Callable[..., Path], tmp_path: Path
) -> None:
    """``--object FILE --suite cache_cost``: the user's program and the empty one in every cache state, written to
    --out only (the extractor's results in the working directory's reports/out/bench stay as they are)."""
    done = subprocess.run(
        [str(XHDR), "bench", "--object", str(clang_object("reqline")), "--suite", "cache_cost", "--quick",
         "--out", str(tmp_path / "out")],
        cwd=tmp_path, check=False, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "out" / "cache_cost.json").read_text())["rows"]
    assert {(row["method"], row["params"]["caches"]) for row in rows if row["metric"] == "ns_per_run"} == {
        (method, state) for method in ("reqline", "empty") for state in ("warm", "l2_evicted", "llc_evicted")
    }
    assert {row["method"] for row in rows if row["metric"] == "cache_penalty_ns"} == {"reqline"}
    assert "l2 evicted: reqline " in done.stderr
    assert not (tmp_path / "reports").exists(), "nothing written where the extractor's results go"


def test_a_small_ring_caps_the_repeat_count(clang_object: Callable[..., Path], tmp_path: Path) -> None:
    """A one-page ring holds 42 of its 96-byte records (84 bytes, and the kernel's 8-byte header): 41 runs may come
    between two drains, or the ring would fill and the figure be cheap, and one of them is the untimed priming
    run, so a stretch times at most 40; every round's drain counts them."""
    done = xhdr(
        "bench", "--object", str(clang_object("reqline", "RING_PAGES=1")), "--quick", "-k", "standard",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "kernel_cost.json").read_text())["rows"]
    assert {row["params"]["repeat"] for row in rows} == {4096 // 96 - 1 - PRIMING_RUNS}


def test_the_gate_between_two_builds_of_your_program(
    clang_object: Callable[..., Path], tmp_path: Path
) -> None:
    """``--compare OTHER --object FILE`` pairs two builds of a user's program; a plainly slower one fails."""
    plain, slower = clang_object("reqline"), clang_object("reqline", "PLANTED_SLOWDOWN=500")
    done = xhdr(
        "bench", "--compare", str(plain), "--object", str(slower), "--quick", "--rounds", "5", "--loads", "1",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    gate = json.loads((tmp_path / "gate.json").read_text())
    assert (gate["reference"]["label"], gate["current"]["label"]) == (f"file {plain}", f"file {slower}")
    assert gate["verdict"] == "fail"
    assert all(case["verdict"] == "fail" and case["interval"][0] > 1 for case in gate["cases"]), gate["cases"]
