"""Any XDP program, loaded for a test: a BCC source or an ELF object that clang and libbpf built.

The extractor has its own class (harness/core/program.py), which knows its maps and stages. A user's parser
needs less: one loaded XDP program (its fd, for a test run or an attachment) and its maps by name (their
fds, to read what it counted or logged). Both loaders return that, and unload everything on close. What
finds the XDP programs of a file is here too, for `xhdr verify` and the kernel matrix.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Self

from harness.core.bcc_loader import bcc_tables, import_bcc
from harness.core.native import (
    BPF_MAP_TYPE_RINGBUF,
    BPF_PROG_TYPE_SCHED_CLS,
    BPF_PROG_TYPE_XDP,
    libbpf,
    map_info,
    strerror,
)
from harness.core.program import ProgramError
from harness.core.ringbuf import RingRecords

_XDP_SIGNATURE = re.compile(r"\b([A-Za-z_]\w*)\s*\(\s*struct\s+xdp_md\s*\*")
_TC_SIGNATURE = re.compile(r"\b([A-Za-z_]\w*)\s*\(\s*struct\s+__sk_buff\s*\*")
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Collects what C code (clang, libbcc, libbpf) writes to fd 2 while inside; the list gets the text at exit.

    libbcc prints the whole verifier log of a failed load and clang its diagnostics straight to fd 2; the
    report shows the relevant lines once, in its own words, instead of that flood.
    """
    collected: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield collected
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            collected.append(sink.read().decode(errors="replace"))


# -- BCC sources ---------------------------------------------------------------------------------------


def xdp_functions(source_text: str) -> list[str]:
    """Names of functions taking ``struct xdp_md *``, in source order; BCC then keeps the non-static ones.

    A program's type is not in BCC's dialect (no SEC("xdp")), so the signature is the only convention
    that tells an XDP program from a kprobe in the same file.
    """
    return _taking(_XDP_SIGNATURE, source_text)


def program_functions(source_text: str) -> dict[str, int]:
    """Every function BCC can load as a program, in source order, with its type: XDP for ``struct xdp_md *``
    and a TC classifier (SCHED_CLS) for ``struct __sk_buff *``, such as the extractor's responses program."""
    found = dict.fromkeys(_taking(_XDP_SIGNATURE, source_text), BPF_PROG_TYPE_XDP)
    for name in _taking(_TC_SIGNATURE, source_text):
        found.setdefault(name, BPF_PROG_TYPE_SCHED_CLS)
    return found


def _taking(signature: re.Pattern[str], source_text: str) -> list[str]:
    """Names of the functions whose first parameter ``signature`` matches, in source order, once each."""
    names: list[str] = []
    for match in signature.finditer(_COMMENT.sub(" ", source_text)):
        if match.group(1) not in names:
            names.append(match.group(1))
    return names


def compile_error_line(source: Path, stderr: str, error: Exception) -> str:
    """The compiler's first error line of a BCC build, BCC's virtual file name replaced by the source's."""
    for line in stderr.splitlines():
        if "error:" in line:
            return line.replace("/virtual/main.c", source.name).strip()
    return str(error).splitlines()[0]


# -- ELF objects built with clang and libbpf -------------------------------------------------------------


def is_object(path: Path) -> bool:
    """An ELF file (what ``clang -target bpf -c`` writes), told by its magic rather than its name."""
    try:
        with path.open("rb") as file:
            return file.read(4) == b"\x7fELF"
    except OSError:
        return False


@contextlib.contextmanager
def opened_object(path: Path) -> Iterator[int]:
    """libbpf's ``struct bpf_object *`` of an ELF file (parsed, nothing loaded yet), closed at exit."""
    lib = libbpf()
    with captured_stderr():  # libbpf's own warnings: the one line below says it
        handle = lib.bpf_object__open_file(str(path).encode(), None)
    if not handle:
        raise ProgramError(f"{path} is not a BPF object libbpf can open: {strerror(ctypes.get_errno())}")
    try:
        yield handle
    finally:
        lib.bpf_object__close(handle)


def _chain(handle: int, next_of: Callable[[int, int | None], int | None]) -> Iterator[int]:
    """The items libbpf chains in an object (``bpf_object__next_program``, ``..._next_map``), in ELF order."""
    item = next_of(handle, None)
    while item:
        yield item
        item = next_of(handle, item)


def object_programs(handle: int) -> Iterator[int]:
    """The ``struct bpf_program *`` of an opened object."""
    return _chain(handle, libbpf().bpf_object__next_program)


def object_maps(handle: int) -> Iterator[int]:
    """The ``struct bpf_map *`` of an opened object."""
    return _chain(handle, libbpf().bpf_object__next_map)


def xdp_programs_of(handle: int) -> dict[str, int]:
    """The XDP programs of an opened object: name -> ``struct bpf_program *``, in ELF order."""
    lib = libbpf()
    return {
        lib.bpf_program__name(program).decode(): program
        for program in object_programs(handle)
        if lib.bpf_program__type(program) == BPF_PROG_TYPE_XDP
    }


def select_only(handle: int, name: str) -> int | None:
    """Turns autoload off for every program of the object but ``name``, which it returns (None if absent),
    so that loading the object loads that program and the maps only."""
    lib = libbpf()
    chosen = None
    for program in object_programs(handle):
        wanted = lib.bpf_program__name(program).decode() == name
        lib.bpf_program__set_autoload(program, wanted)
        chosen = program if wanted else chosen
    return chosen


def object_xdp_programs(path: Path) -> list[str]:
    """Names of the object's XDP programs (``SEC("xdp")``, ``SEC("xdp.frags")``...), in ELF order."""
    with opened_object(path) as handle:
        return list(xdp_programs_of(handle))


# -- loaded for a test ---------------------------------------------------------------------------------


class LoadedXdp:
    """One XDP program in the kernel and the maps it came with; ``close()`` unloads them all.

    ``fd`` is the program's, for ``harness.core.testrun.test_run`` or ``netns.lab.Lab.attach``;
    ``map_fd(name)`` gives a map's, for ``bpf_map_lookup_elem`` and the like; ``records(name)`` what it wrote
    to a ring buffer map.
    """

    def __init__(self, name: str, fd: int, maps: dict[str, int], closer: contextlib.ExitStack) -> None:
        self.name = name
        self.fd = fd
        self._maps = maps
        self._closer = closer
        self._rings: dict[str, RingRecords] = {}

    def map_fd(self, name: str) -> int:
        if name not in self._maps:
            known = ", ".join(sorted(self._maps)) or "none"
            raise ProgramError(f"program {self.name} has no map named {name!r}; it has: {known}")
        return self._maps[name]

    def lookup(self, map_name: str, key: bytes, value_size: int) -> bytes | None:
        """The value stored under ``key`` in the map, as ``value_size`` raw bytes; None when there is none.
        (A per-CPU map's value is one ``value_size`` slot per possible CPU.)"""
        value = ctypes.create_string_buffer(value_size)
        if libbpf().bpf_map_lookup_elem(self.map_fd(map_name), key, value) != 0:
            return None
        return value.raw

    def ring_buffers(self) -> list[str]:
        """The names of its ring buffer maps, in name order."""
        return sorted(
            name for name, fd in self._maps.items() if fd >= 0 and map_info(fd).type == BPF_MAP_TYPE_RINGBUF
        )

    def ring_named(self, wanted: str | None) -> str | None:
        """The ring buffer map it logs to: ``wanted`` (checked), or else its only one; None if it has none."""
        rings = self.ring_buffers()
        if wanted is not None and wanted not in rings:
            raise ProgramError(
                f"{self.name} has no ring buffer map named {wanted!r} (its ring buffers: {', '.join(rings) or 'none'}); "
                "name one of those"
            )
        if wanted is None and len(rings) > 1:
            raise ProgramError(
                f"{self.name} has {len(rings)} ring buffer maps ({', '.join(rings)}); name the one it logs to"
            )
        return wanted or (rings[0] if rings else None)

    def records(self, map_name: str) -> list[bytes]:
        """The records the program wrote to its ring buffer map ``map_name`` since the last call, oldest first
        (the map is opened for reading on the first call, so what came before that is read then too)."""
        if map_name not in self._rings:
            try:
                ring = RingRecords(self.map_fd(map_name))
            except OSError as error:
                raise ProgramError(
                    f"map {map_name!r} of {self.name} is not a ring buffer: {error.strerror}"
                ) from error
            self._rings[map_name] = self._closer.enter_context(ring)
        return self._rings[map_name].take()

    def close(self) -> None:
        self._closer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _chosen(path: Path, names: Sequence[str], wanted: str | None) -> str:
    """The XDP program to load: ``wanted``, or the only one there is."""
    if wanted is not None:
        if wanted not in names:
            raise ProgramError(
                f"{path} has no XDP program named {wanted}; it has: {', '.join(names) or 'none'}"
            )
        return wanted
    if len(names) != 1:
        raise ProgramError(f"{path} has {len(names)} XDP programs ({', '.join(names)}); name the one to load")
    return names[0]


def load_object(path: Path, program: str | None = None) -> LoadedXdp:
    """An ELF object through libbpf: the chosen XDP program loaded (every other one's autoload off), and the
    object's maps."""
    lib = libbpf()
    closer = contextlib.ExitStack()
    try:
        handle = closer.enter_context(opened_object(path))
        name = _chosen(path, list(xdp_programs_of(handle)), program)
        target = select_only(handle, name)
        with captured_stderr():
            error = lib.bpf_object__load(handle)
        if error:
            raise ProgramError(
                f"the kernel refused {name} of {path}: {strerror(-error)}; `xhdr verify {path}` says why"
            )
        maps = {lib.bpf_map__name(m).decode(): lib.bpf_map__fd(m) for m in object_maps(handle)}
        return LoadedXdp(name, lib.bpf_program__fd(target), maps, closer)
    except BaseException:
        closer.close()
        raise


def load_source(path: Path, program: str | None = None, cflags: Sequence[str] = ()) -> LoadedXdp:
    """A BCC-dialect source: compiled by BCC, the chosen XDP function loaded, its tables' maps by name."""
    bcc = import_bcc()
    name = _chosen(path, xdp_functions(path.read_text()), program)
    diagnostics: list[str] = []
    try:
        with captured_stderr() as diagnostics:
            bpf = bcc.BPF(src_file=str(path).encode(), cflags=list(cflags))
    except Exception as error:  # BCC raises bare Exception for compile errors
        raise ProgramError(
            f"{path.name} did not compile: {compile_error_line(path, ''.join(diagnostics), error)}"
        ) from error
    closer = contextlib.ExitStack()
    closer.callback(bpf.cleanup)
    try:
        with captured_stderr():
            function = bpf.load_func(name.encode(), bcc.BPF.XDP)
        maps = bcc_tables(bpf.module)
    except Exception as error:
        closer.close()
        raise ProgramError(f"the kernel refused {name} of {path}; `xhdr verify {path}` says why") from error
    return LoadedXdp(name, function.fd, maps, closer)


def load(path: Path, program: str | None = None, cflags: Sequence[str] = ()) -> LoadedXdp:
    """Either loader, told by the file: an ELF object through libbpf, anything else as a BCC source."""
    if not path.is_file():
        raise ProgramError(f"{path} is not a file; give a .c source or a .bpf.o object")
    if is_object(path):
        if cflags:
            raise ProgramError(f"{path} is an object already built; cflags apply to sources only")
        return load_object(path, program)
    return load_source(path, program, cflags)
