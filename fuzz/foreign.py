"""Differential fuzzing of any XDP parser: a user's program against an oracle of what it should log.

The extractor's campaign (``fuzz.differential``) knows its events, counters and reference. A user's parser
brings a *decoder*: one record its ring buffer map holds, as bytes, to a value that compares with ``==`` (a
named tuple, a dataclass, a dict of the fields it logs). The *oracle* says, for a frame's bytes, the list of
such values the parser should write for it, in order. It is either the user's own function, or by default our
reference (``REFERENCE``): docs/EXTRACTION.md as ``harness.oracle.reference`` implements it, each event as
``xhdr log --json`` writes it, cut down to the keys the decoder's dicts have (``projected``), so a parser that
logs the method and two headers is held to those and nothing else. The reference reads a frame as right after
the SYN that opened its flow, so with it each frame is sent after that SYN to the parser too.

xhdr supplies the rest: the frames (``fuzz.strategies``: HTTP requests, every transport variation, cuts and
byte-level mutants), the test runs, shrinking to a minimal frame, and a repro (JSON and pcap) of what was
found. Each frame runs alone, so the parser is held to what one frame says; state it keeps across frames (a
flow table) is the user's to reset between examples.

Functions are named as ``module:function``, ``path/to/file.py:function``, or by the name of a Python entry
point in the group ``xhdr.decoders`` or ``xhdr.oracles`` that an installed package declares (``load_function``).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
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
from harness.oracle import reference
from harness.oracle.frames import opening

Decoder = Callable[[bytes], Any]
Oracle = Callable[[bytes], Sequence[Any]]
REFERENCE = "reference"  # --oracle's default
ENTRY_POINT_GROUPS = {"--decoder": "xhdr.decoders", "--oracle": "xhdr.oracles"}
ABSENT = (
    "<not in the reference's event>"  # what a decoded key the reference has no value for is compared with
)
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
    """The function ``spec`` names: ``package.module:function``, ``path/to/file.py:function``, or the name of an
    entry point in ``role``'s group (``ENTRY_POINT_GROUPS``)."""
    where, colon, name = spec.rpartition(":")
    if not colon:
        return _entry_point(spec, role)
    if not where or not name:
        raise CommandError(f"{role} {spec!r} is not MODULE:FUNCTION or FILE.py:FUNCTION; name one like that")
    function = getattr(load_module(where, role), name, None)
    if not callable(function):
        raise CommandError(f"{role} {spec!r}: {where} has no function {name}")
    return function


def _entry_point(name: str, role: str) -> Callable[..., Any]:
    """The function an installed package declares as entry point ``name`` of ``role``'s group."""
    group = ENTRY_POINT_GROUPS[role]
    found = importlib.metadata.entry_points(group=group)
    if name not in found.names:
        known = ", ".join(sorted(found.names)) or "none installed"
        raise CommandError(
            f"{role} {name!r} is not MODULE:FUNCTION, FILE.py:FUNCTION or an entry point of group {group} "
            f"(known: {known}); name one of those"
        )
    try:
        function = found[name].load()
    except (ImportError, AttributeError) as error:
        raise CommandError(
            f"{role} {name!r}: entry point {found[name].value} cannot be loaded: {error}"
        ) from error
    if not callable(function):
        raise CommandError(f"{role} {name!r}: entry point {found[name].value} is not a function")
    return function


def reference_events(frame: bytes) -> list[dict[str, Any]]:
    """The reference's events for ``frame`` as ``xhdr log --json`` writes them (read as right after the SYN that
    opened its flow, under the default configuration and key)."""
    return [event.to_json() for event in reference.extract(frame).events]


def projected(expected: Any, logged: Any) -> Any:
    """``expected`` cut down to what ``logged`` has: a dict to ``logged``'s keys (a key the reference lacks becomes
    ``ABSENT``), a list item by item, anything else as it is. Lengths are kept, so a missing or extra event still
    shows."""
    if isinstance(expected, dict) and isinstance(logged, dict):
        return {key: projected(expected.get(key, ABSENT), value) for key, value in logged.items()}
    if isinstance(expected, list) and isinstance(logged, list):
        return [projected(e, item) for e, item in zip(expected, logged)] + expected[len(logged) :]
    return expected


@dataclasses.dataclass(frozen=True)
class Parser:
    """A loaded parser and how to read it: the ring buffer map it logs to, its decoder and its oracle (None: the
    reference, ``REFERENCE``)."""

    program: LoadedXdp
    ring: str
    decode: Decoder
    expect: Oracle | None = None

    def logged(self, frame: bytes) -> list[Any]:
        """What the parser logs for ``frame``: one test run, then every record it wrote, decoded. Held to the
        reference, the parser sees the SYN that opens ``frame``'s flow first, as the reference assumes."""
        set_up = opening(frame) if self.expect is None else None
        if set_up is not None:
            test_run(self.program.fd, set_up)
        self.program.records(self.ring)  # anything left from before is not this frame's
        test_run(self.program.fd, frame)
        return [self.decode(record) for record in self.program.records(self.ring)]

    def expected(self, frame: bytes, logged: list[Any]) -> list[Any]:
        if self.expect is None:
            return projected(reference_events(frame), logged)
        return list(self.expect(frame))

    def compare(self, frame: bytes) -> None:
        """Raises Mismatch when what the parser logs for ``frame`` is not what the oracle expects, or when the
        decoder or the oracle fails on it (a traceback of the user's function would hide the frame)."""
        try:
            logged = self.logged(frame)
        except Exception as error:
            raise Mismatch(frame, [f"the decoder raised {error!r}"], []) from error
        try:
            expected = self.expected(frame, logged)
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
        return f"logged {self.logged!r}, expected {self.expected!r}"


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
