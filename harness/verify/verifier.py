"""Compile one variant of an XDP program with BCC, put every XDP function through the kernel verifier, and
read what the verifier says about it.

BCC's own ``load_func`` only prints the verifier log to stderr, and only on failure; the statistics we want
(processed instructions, peak states, stack depth) are in the log of accepted programs too. So each function
is loaded through libbcc's ``bcc_func_load`` with our own log buffer: the same call BCC makes (same map
relocations, same BTF line info), at log level 4 (statistics only, cheap). A rejected function is loaded a
second time at level 1, which adds the instruction trace with ``; <source> @ main.c:NN`` annotations, and the
tail of that log explains the rejection. Every program fd is closed as soon as its ``bpf_prog_info`` is read,
and the BCC module (maps) is destroyed before returning, so nothing stays loaded.

An ELF object built with clang and libbpf is verified the same way through libbpf (harness/core/native.py):
opened once per XDP program with only that program set to load (as veristat does), the same log levels and
buffers through ``bpf_program__set_log_level``/``set_log_buf``, the same statistics, then closed.

Every statistic is declared once in ``STATS``; reading, totals, the table, JSON and the baseline gate all
walk that table, so a new statistic is one line there.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import functools
import os
import re
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Literal

from harness.core.bcc_loader import bcc_tables, import_bcc
from harness.core.loader import (
    captured_stderr,
    compile_error_line,
    object_maps,
    object_xdp_programs,
    opened_object,
    program_functions,
    select_only,
)
from harness.core.native import BPF_PROG_TYPE_XDP, libbpf, strerror
from harness.core.program import ProgramError

# -- the statistics ----------------------------------------------------------------------------------


def _stack_depth(text: str) -> int:
    """``stack depth 32+0+16``: one number per subprogram; their sum is what the program can use at once."""
    return sum(int(part) for part in text.split("+") if part)


@dataclasses.dataclass(frozen=True)
class Stat:
    """One verifier statistic: where it is read, how programs add up to a variant, how a baseline compares.

    ``source`` is ``log`` (``read`` is a regex over the verifier log, its group parsed by ``parse``), ``info``
    (``read`` is a field of struct bpf_prog_info) or ``measured`` (filled in by this module: timers, maps).
    ``scope`` is ``program`` (per program, then totalled with ``total``) or ``variant`` (once per build).
    ``compare`` is ``gate`` (a growth past the threshold fails the baseline gate), ``delta`` (its change is
    shown next to the gated one) or empty (machine-dependent, never compared: times).
    """

    name: str
    header: str
    source: Literal["log", "info", "measured"]
    read: str
    scope: Literal["program", "variant"]
    compare: Literal["gate", "delta", ""]
    doc: str
    total: Callable[[Iterable[int]], int] = sum
    parse: Callable[[str], int] = int
    shown: bool = True  # a column of the terminal and markdown tables (JSON always has every statistic)


STATS: tuple[Stat, ...] = (
    Stat("verified_insns", "verified", "info", "verified_insns", "program", "gate",
         "instructions the verifier processed, from bpf_prog_info (deterministic: the gate's measure)"),
    Stat("processed_insns", "processed", "log", r"^processed (\d+) insns", "program", "",
         "the log's 'processed N insns' (equals verified_insns when accepted; also given for a rejection)",
         shown=False),
    Stat("peak_states", "peak st", "log", r"peak_states (\d+)", "program", "",
         "most verifier states alive at once"),
    Stat("total_states", "states", "log", r"total_states (\d+)", "program", "",
         "verifier states created", shown=False),
    Stat("max_states_per_insn", "st/insn", "log", r"max_states_per_insn (\d+)", "program", "",
         "most states kept for one instruction", total=max),
    Stat("stack_depth", "stack", "log", r"^stack depth ([\d+]+)", "program", "delta",
         "stack bytes, summed over subprograms; the variant shows its deepest program", total=max,
         parse=_stack_depth),
    Stat("xlated_bytes", "xlated", "info", "xlated_prog_len", "program", "delta",
         "size of the translated (post-verifier) program, from bpf_prog_info"),
    Stat("jited_bytes", "jited", "info", "jited_prog_len", "program", "delta",
         "size of the JIT-compiled program, from bpf_prog_info"),
    Stat("verify_us", "verify us", "log", r"^verification time (\d+) usec", "program", "",
         "time the verifier spent, by its own clock", shown=False),
    Stat("load_ms", "load ms", "measured", "", "program", "",
         "wall time of the BPF_PROG_LOAD call"),
    Stat("compile_ms", "compile ms", "measured", "", "variant", "",
         "wall time of BCC's compile (clang) and map creation"),
    Stat("map_bytes", "map bytes", "measured", "", "variant", "delta",
         "memory the kernel charges for the variant's maps (memlock in /proc/self/fdinfo)"),
)  # fmt: skip


# -- results -----------------------------------------------------------------------------------------


@dataclasses.dataclass
class ProgramResult:
    """One XDP function of a variant after the verifier has seen it."""

    name: str
    accepted: bool
    stats: dict[str, int | None]
    error: str | None = None  # the verifier's message for a rejection
    source_line: str | None = None  # "file.c:NN: <text>" of the last instruction it checked
    log_tail: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class VariantResult:
    """One build (a source and its -D flags) and each of its XDP functions."""

    key: str  # "<source file name>/<variant name>", what a baseline matches on
    source: str
    variant: str
    cflags: list[str]
    programs: list[ProgramResult]
    measured: dict[str, int]  # the variant-scope statistics

    @property
    def accepted(self) -> bool:
        return all(program.accepted for program in self.programs)

    def totals(self) -> dict[str, int | None]:
        """Program statistics totalled per STATS; None when no program gave that number (all rejected)."""
        totals: dict[str, int | None] = {}
        for stat in STATS:
            if stat.scope == "variant":
                totals[stat.name] = self.measured.get(stat.name)
                continue
            values = [p.stats[stat.name] for p in self.programs if p.stats.get(stat.name) is not None]
            totals[stat.name] = stat.total(values) if values else None  # type: ignore[arg-type]
        return totals

    def to_json(self) -> dict[str, object]:
        rejected = next((p for p in self.programs if not p.accepted), None)
        return {
            "key": self.key,
            "source": self.source,
            "variant": self.variant,
            "cflags": self.cflags,
            "accepted": self.accepted,
            "stats": self.totals(),
            "rejection": None
            if rejected is None
            else {
                "program": rejected.name,
                "error": rejected.error,
                "source_line": rejected.source_line,
                "log_tail": rejected.log_tail,
            },
            "programs": [program.to_json() for program in self.programs],
        }


# -- kernel interfaces -------------------------------------------------------------------------------

LOG_LEVEL_TRACE = 1  # BPF_LOG_LEVEL1: every instruction checked, with source annotations
LOG_LEVEL_STATS = 4  # BPF_LOG_STATS: verification time, stack depth, processed insns
STATS_LOG_BYTES = 1 << 16
TRACE_LOG_BYTES = 1 << 24  # the kernel keeps the tail when the trace is longer (rotating log)
LOG_TAIL_LINES = 10

CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 12, 21, 38, 39
_CAPABILITY_VERSION_3 = 0x20080522


class BpfProgInfo(ctypes.Structure):
    """struct bpf_prog_info of linux/bpf.h, up to verified_insns (the kernel fills what the size covers)."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", ctypes.c_uint32),
        ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64),
        ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64),
        ("created_by_uid", ctypes.c_uint32),
        ("nr_map_ids", ctypes.c_uint32),
        ("map_ids", ctypes.c_uint64),
        ("name", ctypes.c_char * 16),
        ("ifindex", ctypes.c_uint32),
        ("gpl_compatible", ctypes.c_uint32),
        ("netns_dev", ctypes.c_uint64),
        ("netns_ino", ctypes.c_uint64),
        ("nr_jited_ksyms", ctypes.c_uint32),
        ("nr_jited_func_lens", ctypes.c_uint32),
        ("jited_ksyms", ctypes.c_uint64),
        ("jited_func_lens", ctypes.c_uint64),
        ("btf_id", ctypes.c_uint32),
        ("func_info_rec_size", ctypes.c_uint32),
        ("func_info", ctypes.c_uint64),
        ("nr_func_info", ctypes.c_uint32),
        ("nr_line_info", ctypes.c_uint32),
        ("line_info", ctypes.c_uint64),
        ("jited_line_info", ctypes.c_uint64),
        ("nr_jited_line_info", ctypes.c_uint32),
        ("line_info_rec_size", ctypes.c_uint32),
        ("jited_line_info_rec_size", ctypes.c_uint32),
        ("nr_prog_tags", ctypes.c_uint32),
        ("prog_tags", ctypes.c_uint64),
        ("run_time_ns", ctypes.c_uint64),
        ("run_cnt", ctypes.c_uint64),
        ("recursion_misses", ctypes.c_uint64),
        ("verified_insns", ctypes.c_uint32),
        ("attach_btf_obj_id", ctypes.c_uint32),
        ("attach_btf_id", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
    ]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def object_info(fd: int, info: ctypes.Structure) -> None:
    """Fills ``info`` (a bpf_prog_info or bpf_map_info, with any buffers it points to) for a BPF object's fd."""
    size = ctypes.c_uint32(ctypes.sizeof(info))
    if libbpf().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)):
        errno = ctypes.get_errno()
        raise ProgramError(f"cannot read the info of a loaded BPF object: {os.strerror(errno)}")


def prog_info(fd: int) -> BpfProgInfo:
    info = BpfProgInfo()
    object_info(fd, info)
    return info


@dataclasses.dataclass(frozen=True)
class JitedLine:
    """Where one line of a loaded program's C source begins in its JIT image (BTF line info)."""

    address: int  # kernel address of the line's first machine instruction
    source: str  # the line's text (its number is BCC's rewritten file's, so it is not kept)


def jited_lines(fd: int) -> list[JitedLine]:
    """The program's source lines by JIT address, in address order: what a sample's address was running.

    The kernel keeps, per line-info record, the instruction it starts at and the address the JIT put it at;
    the line's text and number come from the program's BTF. Empty for a program loaded without BTF.
    """
    first = prog_info(fd)
    records, size = first.nr_line_info, first.line_info_rec_size
    if not records or first.nr_jited_line_info != records or not first.btf_id:
        return []
    raw = ctypes.create_string_buffer(records * size)
    addresses = (ctypes.c_uint64 * records)()
    info = BpfProgInfo(
        nr_line_info=records,
        line_info_rec_size=size,
        line_info=ctypes.addressof(raw),
        nr_jited_line_info=records,
        jited_line_info_rec_size=ctypes.sizeof(ctypes.c_uint64),
        jited_line_info=ctypes.addressof(addresses),
    )
    object_info(fd, info)
    btf = libbpf().btf__load_from_kernel_by_id(first.btf_id)
    if not btf:
        raise ProgramError(f"cannot read the BTF of a loaded program: {os.strerror(ctypes.get_errno())}")
    try:
        lines = []
        for index in range(records):
            # struct bpf_line_info: insn_off, file_name_off, line_off, line_col (line << 10 | column)
            _, _, line_off, _ = struct.unpack_from("<IIII", raw, index * size)
            text = libbpf().btf__name_by_offset(btf, line_off) or b""
            lines.append(JitedLine(addresses[index], text.decode(errors="replace").strip()))
    finally:
        libbpf().btf__free(btf)
    return sorted(lines, key=lambda line: line.address)


def fdinfo(fd: int | str, pid: int | str = "self") -> dict[str, str]:
    """The kernel's key: value description of a BPF object fd (map_type, memlock, ...) of process ``pid``."""
    lines = Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def maps_memlock(fds: Iterable[int | str], pid: int | str = "self") -> int:
    """Kernel memory charged to the BPF maps among ``fds`` of process ``pid`` (the sum of their memlock);
    other fds, and fds closed meanwhile, count nothing."""
    total = 0
    for fd in fds:
        try:
            info = fdinfo(fd, pid)
        except OSError:
            continue
        if "map_type" in info:
            total += int(info.get("memlock", "0"))
    return total


@contextlib.contextmanager
def least_privilege(enabled: bool) -> Iterator[None]:
    """Lowers this thread's effective capabilities to CAP_BPF and CAP_NET_ADMIN, what an XDP loader needs.

    Without CAP_PERFMON and CAP_SYS_ADMIN the verifier is stricter: it rejects reads of uninitialised stack
    and pointer leaks, and checks speculative paths (Spectre v1/v4). A program that must load from such a
    loader is verified the same way here. The permitted set is untouched, so the old set comes back.
    """
    if not enabled:
        yield
        return
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    saved = (_CapData * 2)()
    if _libc().capget(ctypes.byref(header), saved):
        raise ProgramError(f"cannot read this process's capabilities: {os.strerror(ctypes.get_errno())}")
    wanted = (1 << CAP_NET_ADMIN) | (1 << CAP_BPF)
    lowered = (_CapData * 2)()
    for word in range(2):
        lowered[word].permitted = saved[word].permitted
        lowered[word].inheritable = saved[word].inheritable
        lowered[word].effective = saved[word].effective & (wanted >> (32 * word)) & 0xFFFFFFFF
    if _libc().capset(ctypes.byref(header), lowered):
        raise ProgramError(
            f"cannot lower capabilities for --least-privilege: {os.strerror(ctypes.get_errno())}"
        )
    try:
        yield
    finally:
        _libc().capset(ctypes.byref(header), saved)


# -- the verifier log --------------------------------------------------------------------------------

_INSN_LINE = re.compile(r"^(\d+: |; |from \d+ to \d+|\d+: \(|mark_precise|Live regs)")
_STATS_LINE = re.compile(r"^(verification time|stack depth|processed \d+ insns)")
_ANNOTATION = re.compile(r"^; (.*) @ (\S+):(\d+)$")


def log_stats(log: str) -> dict[str, int | None]:
    """The ``log`` statistics of STATS found in a verifier log (None where the log does not say)."""
    found: dict[str, int | None] = {}
    for stat in STATS:
        if stat.source == "log":
            match = re.search(stat.read, log, re.MULTILINE)
            found[stat.name] = stat.parse(match.group(1)) if match else None
    return found


def rejection(log: str, source: Path, fallback: str) -> tuple[str, str | None, list[str]]:
    """The verifier's message, the source line it was checking, and the last log lines before it.

    The message is the block after the last instruction line of the trace (and before the statistics):
    the kernel prints its reason there, sometimes over two lines ("invalid access to packet, ..." then
    "R1 offset is outside of the packet"); the first line names the rule that was broken.
    """
    lines = [line for line in log.splitlines() if line.strip() and not _STATS_LINE.match(line)]
    last_insn = max((i for i, line in enumerate(lines) if _INSN_LINE.match(line)), default=-1)
    message_block = lines[last_insn + 1 :]
    error = message_block[0] if message_block else fallback
    tail = lines[max(0, last_insn + 1 - LOG_TAIL_LINES) :]
    annotations = [
        m.groups() for line in lines[: last_insn + 1] if (m := _ANNOTATION.match(line)) and m.group(1).strip()
    ]
    where = _source_line(source, annotations) if annotations else None
    return error, where, tail


def _source_line(source: Path, annotations: list[tuple[str, str, str]]) -> str:
    """Maps BCC's ``@ main.c:NN`` of the last annotation to a line of the user's file.

    BCC numbers the lines of its rewritten copy, which has lines prepended and map calls rewritten
    (``m.update(...)`` becomes ``bpf_map_update_elem(...)``, a map declaration may grow a line). An
    annotation whose text is unchanged pins its line to the user's; the last one is mapped with the
    offset of the nearest pinned line at or above it.
    """
    text, file, line = annotations[-1]
    if file != "main.c":
        return f"{file}:{line}: {text.strip()}"
    source_lines = [body.strip() for body in source.read_text(errors="replace").splitlines()]
    target = int(line)
    pinned: dict[int, int] = {}  # BCC's line -> the user's line, for annotations found verbatim
    for body, name, number in annotations:
        bcc_line = int(number)
        if name != "main.c" or bcc_line > target:
            continue
        found = [
            i for i, candidate in enumerate(source_lines, 1) if candidate == body.strip() and i <= bcc_line
        ]
        if found:
            pinned[bcc_line] = max(found)
    if not pinned:
        return f"{source.name} (BCC's line {line}): {text.strip()}"
    anchor = max(pinned)
    number = target - (anchor - pinned[anchor])
    shown = source_lines[number - 1] if 0 < number <= len(source_lines) else text.strip()
    return f"{source.name}:{number}: {shown}"


# -- compile, load, measure --------------------------------------------------------------------------


def compile_error(source: Path, variant: str, stderr: str, error: Exception) -> str:
    """The compiler's first error line, with BCC's virtual file name replaced by the user's."""
    return f"{source.name}/{variant} did not compile: {compile_error_line(source, stderr, error)}"


def _load(
    bcc: object, bpf: object, name: bytes, prog_type: int, level: int, size: int
) -> tuple[int, int, str, float]:
    """One BPF_PROG_LOAD through libbcc with our log buffer: (fd or -1, errno, log, seconds)."""
    lib = bcc.libbcc.lib  # type: ignore[attr-defined]
    module = bpf.module  # type: ignore[attr-defined]
    buffer = ctypes.create_string_buffer(size)
    started = time.perf_counter()
    fd = lib.bcc_func_load(
        module,
        prog_type,
        name,
        lib.bpf_function_start(module, name),
        lib.bpf_function_size(module, name),
        lib.bpf_module_license(module),
        lib.bpf_module_kern_version(module),
        level,
        buffer,
        size,
        None,
        0,
    )
    elapsed = time.perf_counter() - started
    return fd, ctypes.get_errno() if fd < 0 else 0, buffer.value.decode(errors="replace"), elapsed


def _map_bytes(bpf: object) -> int:
    """Sum of the kernel's memlock over the module's maps: the memory the variant asks for."""
    fds = bcc_tables(bpf.module).values()  # type: ignore[attr-defined]
    return maps_memlock(fd for fd in fds if fd >= 0)


def verify_variant(
    source: Path,
    variant: str,
    cflags: list[str],
    *,
    least_privileged: bool = False,
) -> VariantResult:
    """Compiles ``source`` with ``cflags`` and verifies each XDP function, and each TC one (``struct __sk_buff
    *``); nothing stays loaded after."""
    bcc = import_bcc()
    names = program_functions(source.read_text(errors="replace"))
    started = time.perf_counter()
    with captured_stderr() as stderr:
        try:
            bpf = bcc.BPF(src_file=str(source).encode(), cflags=[f"-I{source.parent}", *cflags])
        except Exception as error:  # noqa: BLE001 (BCC raises bare Exception for compile errors)
            compile_failure: Exception | None = error
        else:
            compile_failure = None
    if compile_failure is not None:
        raise ProgramError(compile_error(source, variant, stderr[0], compile_failure))
    measured = {"compile_ms": round((time.perf_counter() - started) * 1000)}
    try:
        lib = bcc.libbcc.lib
        exported = {
            lib.bpf_function_name(bpf.module, i).decode() for i in range(lib.bpf_num_functions(bpf.module))
        }
        programs = [name for name in names if name in exported]
        if not any(names[name] == BPF_PROG_TYPE_XDP for name in programs):
            raise ProgramError(
                f"{source} has no XDP program: no non-static function takes a struct xdp_md * argument"
            )
        measured["map_bytes"] = _map_bytes(bpf)
        results = [
            _verify_function(bcc, bpf, source, name, names[name], least_privileged) for name in programs
        ]
    finally:
        bpf.cleanup()
    return VariantResult(
        key=f"{source.name}/{variant}",
        source=_shown_path(source),
        variant=variant,
        cflags=list(cflags),
        programs=results,
        measured=measured,
    )


def _shown_path(source: Path) -> str:
    """The path relative to the working directory when under it, so JSON from two checkouts compares."""
    try:
        return str(source.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(source)


def _verify_function(
    bcc: object, bpf: object, source: Path, name: str, prog_type: int, least_privileged: bool
) -> ProgramResult:
    encoded = name.encode()
    with captured_stderr(), least_privilege(least_privileged):
        fd, errno, log, seconds = _load(bcc, bpf, encoded, prog_type, LOG_LEVEL_STATS, STATS_LOG_BYTES)

    def trace() -> tuple[int, str]:
        with captured_stderr(), least_privilege(least_privileged):
            again, _errno, text, _seconds = _load(
                bcc, bpf, encoded, prog_type, LOG_LEVEL_TRACE | LOG_LEVEL_STATS, TRACE_LOG_BYTES
            )
        return again, text

    return _program_result(name, fd, errno, log, seconds, trace, source)


def _program_result(
    name: str,
    fd: int,
    errno: int,
    log: str,
    seconds: float,
    trace: Callable[[], tuple[int, str]],
    source: Path,
) -> ProgramResult:
    """The statistics of one load (``fd`` is closed here), or for a rejection (fd -1) the reason, read
    from a second load with the instruction trace (``trace()``: its fd or -1, and its log)."""
    stats: dict[str, int | None] = {stat.name: None for stat in STATS if stat.scope == "program"}
    stats["load_ms"] = round(seconds * 1000)
    if fd >= 0:
        try:
            info = prog_info(fd)
        finally:
            os.close(fd)
        stats.update(log_stats(log))
        for stat in STATS:
            if stat.source == "info":
                stats[stat.name] = int(getattr(info, stat.read))
        return ProgramResult(name=name, accepted=True, stats=stats)
    again, text = trace()
    if again >= 0:  # accepted the second time: not something the verifier decides twice differently
        os.close(again)
        text = log
    stats.update(log_stats(text))
    error, where, tail = rejection(text, source, f"BPF_PROG_LOAD failed: {strerror(errno)}")
    return ProgramResult(
        name=name, accepted=False, stats=stats, error=error, source_line=where, log_tail=tail
    )


# -- ELF objects built with clang and libbpf ---------------------------------------------------------


def _load_from_object(
    path: Path, name: str, level: int, size: int
) -> tuple[int, int, str, float, int | None]:
    """Opens the object afresh and loads only ``name`` (and the maps) with our log buffer, as veristat does:
    (a duplicate of its fd or -1, errno, log, seconds of bpf_object__load, the maps' memlock)."""
    lib = libbpf()
    with opened_object(path) as handle:
        target = select_only(handle, name)
        if target is None:
            raise ProgramError(f"{path} has no program named {name}")
        buffer = ctypes.create_string_buffer(size)
        lib.bpf_program__set_log_level(target, level)
        lib.bpf_program__set_log_buf(target, buffer, size)
        started = time.perf_counter()
        error = lib.bpf_object__load(handle)
        elapsed = time.perf_counter() - started
        log = buffer.value.decode(errors="replace")
        if error:
            return -1, -error, log, elapsed, None
        maps = [lib.bpf_map__fd(current) for current in object_maps(handle)]
        return (
            os.dup(lib.bpf_program__fd(target)),
            0,
            log,
            elapsed,
            maps_memlock(fd for fd in maps if fd >= 0),
        )


def _traced_object_load(path: Path, name: str, least_privileged: bool) -> tuple[int, str]:
    with captured_stderr(), least_privilege(least_privileged):
        fd, _errno, log, _seconds, _maps = _load_from_object(
            path, name, LOG_LEVEL_TRACE | LOG_LEVEL_STATS, TRACE_LOG_BYTES
        )
    return fd, log


def verify_object(path: Path, variant: str, *, least_privileged: bool = False) -> VariantResult:
    """Verifies each XDP program of a clang-built object, one load each; nothing stays loaded after.

    The same statistics as a source's: the log at level 4, bpf_prog_info, the load's wall time (here
    bpf_object__load, maps included), the maps' memory; a rejection is loaded again with the trace.
    """
    names = object_xdp_programs(path)
    if not names:
        raise ProgramError(f'{path} has no XDP program: no program of type xdp (SEC("xdp"))')
    measured: dict[str, int] = {}
    results = []
    for name in names:
        with captured_stderr(), least_privilege(least_privileged):
            fd, errno, log, seconds, map_bytes = _load_from_object(
                path, name, LOG_LEVEL_STATS, STATS_LOG_BYTES
            )
        if map_bytes is not None:
            measured.setdefault("map_bytes", map_bytes)
        trace = functools.partial(_traced_object_load, path, name, least_privileged)
        results.append(_program_result(name, fd, errno, log, seconds, trace, path))
    return VariantResult(
        key=f"{path.name}/{variant}",
        source=_shown_path(path),
        variant=variant,
        cflags=[],
        programs=results,
        measured=measured,
    )
