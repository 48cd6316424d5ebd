"""The example parser, tests/objects/reqline.bpf.c, put through the harness the way a user's own parser is.

It is independent of the extractor (libbpf style, built with clang, its own record and ring buffer), so
everything here works from what a user has: the pytest plugin's fixtures for the cases a person writes down,
and ``xhdr fuzz --object`` with the user's decoder and oracle (tests/objects/reqline.py) for the cases nobody
writes down, in CI. A wrong oracle is found and shrunk to a minimal frame: the fuzzer can fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fuzz import foreign
from fuzz.differential import FUZZ_CONFIG
from harness.cli.main import main
from harness.core.loader import LoadedXdp, load
from harness.core.program import ProgramError

pytestmark = pytest.mark.kernel

ORACLE_FILE = Path(__file__).with_name("objects") / "reqline.py"
SEED = 20261202


REQLINE = foreign.load_module(str(ORACLE_FILE), "the example's decoder and oracle")


@pytest.fixture
def parser(clang_object: Callable[[str], Path]) -> Iterator[LoadedXdp]:
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


XHDR = Path(sys.executable).parent / "xhdr"  # the console script, as users run it


def xhdr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(XHDR), *args], check=False, capture_output=True, text=True, timeout=300)


def test_xhdr_fuzz_object_as_users_run_it(clang_object: Callable[[str], Path], tmp_path: Path) -> None:
    built = str(clang_object("reqline"))
    done = xhdr(
        "fuzz", "--object", built, "--ring", "lines", "--decoder", f"{ORACLE_FILE}:decode",
        "--oracle", f"{ORACLE_FILE}:expected", "--examples", "50", "--seed", "1", "--corpus", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "50 examples, every frame logged what the oracle expected" in done.stderr


BAD_ARGS = {
    "no ring": (["--decoder", "m:f", "--oracle", "m:f"], "--object needs --ring too"),
    "not a function": (
        ["--ring", "lines", "--decoder", "nofunction", "--oracle", "m:f"],
        "is not MODULE:FUNCTION",
    ),
    "no such file": (["--ring", "lines", "--decoder", "/nope.py:f", "--oracle", "m:f"], "does not exist"),
    "no such map": (
        ["--ring", "nope", "--decoder", f"{ORACLE_FILE}:decode", "--oracle", f"{ORACLE_FILE}:expected"],
        "has no map named 'nope'",
    ),
    "an extractor option": (["--mutants", "3"], "--mutants is for the extractor's campaign"),
}


@pytest.mark.parametrize(("extra", "message"), BAD_ARGS.values(), ids=BAD_ARGS.keys())
def test_bad_arguments_get_one_line(
    clang_object: Callable[[str], Path], capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    """In this process (the command's own entry, as the console script calls it): one line each, exit 1."""
    assert main(["fuzz", "--object", str(clang_object("reqline")), "--examples", "1", *extra]) == 1
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert len(error.strip().splitlines()) == 1, error


def test_a_ring_that_is_not_a_ring_buffer(clang_object: Callable[[str], Path]) -> None:
    with (
        load(clang_object("pass_count")) as counter,
        pytest.raises(ProgramError, match="is not a ring buffer"),
    ):
        counter.records("packets")
