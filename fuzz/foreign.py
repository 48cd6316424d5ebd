"""Differential fuzzing of any XDP parser: a user's program against the user's own idea of what it logs.

The extractor's campaign (``fuzz.differential``) knows its events, counters and reference. A user's parser
brings two functions instead:

- a *decoder*: one record its ring buffer map holds, as bytes, to a value that compares with ``==`` (a named
  tuple, a dataclass, a dict of the fields it logs);
- an *oracle*: a frame's bytes to the list of such values the parser should write for it, in order.

xhdr supplies the rest: the frames (``fuzz.strategies``: HTTP requests, every transport variation, cuts and
byte-level mutants), the test runs, shrinking to a minimal frame, and a repro (JSON and pcap) of what was
found. Each frame runs alone, so the parser is held to what one frame says; state it keeps across frames (a
flow table) is the user's to reset between examples.

Both functions are named as ``module:function`` or ``path/to/file.py:function`` (``load_function``).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.database import ExampleDatabase

from fuzz.repro import write_pair
from fuzz.strategies import TARGETS
from harness.core.config import ExtractorConfig
from harness.core.errors import CommandError
from harness.core.loader import LoadedXdp
from harness.core.testrun import test_run

Decoder = Callable[[bytes], Any]
Oracle = Callable[[bytes], Sequence[Any]]
# The per-frame targets: requests over the ordinary transport, every transport variation, byte-level mutants.
FRAME_TARGETS = ("http", "transport", "mutation")


def load_module(where: str, role: str) -> ModuleType:
    """The module ``where`` names: ``package.module`` or ``path/to/file.py``."""
    try:
        if not where.endswith(".py"):
            return importlib.import_module(where)
        path = Path(where)
        loader_spec = importlib.util.spec_from_file_location(path.stem, path)
        if loader_spec is None or loader_spec.loader is None or not path.is_file():
            raise CommandError(f"{role} file {where} does not exist; give the path of a Python file")
        module = importlib.util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(module)
        return module
    except ImportError as error:
        raise CommandError(f"{role} module {where} cannot be imported: {error}") from error


def load_function(spec: str, role: str) -> Callable[..., Any]:
    """The function ``spec`` names: ``package.module:function`` or ``path/to/file.py:function``."""
    where, colon, name = spec.rpartition(":")
    if not colon or not where or not name:
        raise CommandError(f"{role} {spec!r} is not MODULE:FUNCTION or FILE.py:FUNCTION; name one like that")
    function = getattr(load_module(where, role), name, None)
    if not callable(function):
        raise CommandError(f"{role} {spec!r}: {where} has no function {name}")
    return function


@dataclasses.dataclass(frozen=True)
class Parser:
    """A loaded parser and how to read it: the ring buffer map it logs to, its decoder and its oracle."""

    program: LoadedXdp
    ring: str
    decode: Decoder
    expect: Oracle

    def logged(self, frame: bytes) -> list[Any]:
        """What the parser logs for ``frame``: one test run, then every record it wrote, decoded."""
        self.program.records(self.ring)  # anything left from before is not this frame's
        test_run(self.program.fd, frame)
        return [self.decode(record) for record in self.program.records(self.ring)]

    def compare(self, frame: bytes) -> None:
        """Raises Mismatch when what the parser logs for ``frame`` is not what the oracle expects, or when the
        decoder or the oracle fails on it (a traceback of the user's function would hide the frame)."""
        try:
            logged = self.logged(frame)
        except Exception as error:
            raise Mismatch(frame, [f"the decoder raised {error!r}"], []) from error
        try:
            expected = list(self.expect(frame))
        except Exception as error:
            raise Mismatch(frame, logged, [f"the oracle raised {error!r}"]) from error
        if logged != expected:
            raise Mismatch(frame, logged, expected)


@dataclasses.dataclass
class Mismatch(Exception):  # not frozen: Hypothesis adds notes to the exceptions it reports
    """A frame the parser and its oracle disagree on."""

    frame: bytes
    logged: list[Any]
    expected: list[Any]

    def __str__(self) -> str:
        return f"logged {self.logged!r}, the oracle expected {self.expected!r}"


def frames(config: ExtractorConfig) -> st.SearchStrategy[list[bytes]]:
    """What one example feeds the parser: the frames of one of ``FRAME_TARGETS``."""
    return st.one_of([TARGETS[name](config) for name in FRAME_TARGETS])


def run(
    parser: Parser,
    examples: int,
    config: ExtractorConfig,
    database: ExampleDatabase | None = None,
    seed: int | None = None,
    on_example: Callable[[], None] = lambda: None,
) -> Mismatch | None:
    """Draws ``examples`` examples and holds every frame's records to the oracle; the shrunk mismatch, or None.
    A ``seed`` makes the run reproducible (Hypothesis then keeps no database)."""

    @settings(
        max_examples=examples,
        database=database,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        report_multiple_bugs=False,
    )
    @given(frames(config))
    def agree(example: list[bytes]) -> None:
        on_example()
        for frame in example:
            parser.compare(frame)

    if seed is not None:
        agree = hypothesis.seed(seed)(agree)
    try:
        agree()
    except Mismatch as found:
        return found
    return None


def save(mismatch: Mismatch, object_path: Path, program: str, directory: Path) -> Path:
    """Writes ``foreign-<digest>.json`` (the frame, what was logged and expected) and its ``.pcap`` under
    ``directory`` (``fuzz.repro.write_pair``); returns the JSON's path."""
    record = {
        "kind": "foreign",
        "object": str(object_path),
        "program": program,
        "frame_hex": mismatch.frame.hex(),
        "logged": [repr(value) for value in mismatch.logged],
        "expected": [repr(value) for value in mismatch.expected],
    }
    return write_pair(directory, "foreign", [mismatch.frame], record)
