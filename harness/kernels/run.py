"""``xhdr verify --kernels``: every variant of the matrix on every listed kernel, acceptance and behaviour.

For each variant, the host builds it once (for the extractor: a full :class:`Program` with the corpus key and
default rules written into its maps; any other source with BCC; a clang/libbpf object loaded by libbpf) and turns it
into a guest description (:func:`harness.kernels.guest.describe`). One guest boot per kernel then loads every variant
and runs every corpus frame through BPF_PROG_TEST_RUN, each case after the SYN that opens its flow, as the host's
corpus test sends them. The extractor's results are compared (``harness.oracle.differences.outcome_differences``)
with a reference ``FlowTracker`` fed the same sequence, the SYNs included, so the guest needs no notion of flows.
Any other program is held to its own run of the same frames on the host: the same verdict and, when it has one
ring buffer map, the same records byte for byte. A rejection, a map the kernel refuses or a behaviour difference
on any kernel fails the command, naming kernel, variant and reason.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from harness.cli.textui import table
from harness.core.config import ExtractorConfig
from harness.core.counters import Counter
from harness.core.driver import with_openings
from harness.core.loader import (
    captured_stderr,
    is_object,
    object_maps,
    object_programs,
    opened_object,
    xdp_functions,
    xdp_programs_of,
)
from harness.core.native import BPF_PROG_TYPE_SCHED_CLS, libbpf, strerror
from harness.core.program import ENTRY_POINT, EXTRACTOR_SOURCE, RESPONSES, STAGES, Program, ProgramError
from harness.core.ringbuf import RingRecords
from harness.core.testrun import test_run
from harness.core.workers import process_pool
from harness.kernels.guest import (
    HOST,
    BootResult,
    Description,
    GuestVariant,
    KernelError,
    MapSpec,
    bcc_maps,
    boot,
    describe,
    description_file,
    fd_maps,
    only_ring,
    outcomes,
    parse_output,
)
from harness.oracle import reference
from harness.oracle.corpus import load_corpus
from harness.oracle.differences import outcome_differences
from harness.verify.variants import Variant

# TCG uses one host core per guest; two guests at once fill this machine's two cores.
BOOTS_AT_ONCE = 2


HostFrame = tuple[int, tuple[bytes, ...]]  # a frame's verdict (or -errno) and the records it wrote


@dataclasses.dataclass(frozen=True)
class Build:
    """A described variant, and what its behaviour on the guests is judged against: for the extractor, the
    reference with these limits; for any other program, its own run of the same frames on the host."""

    source: str
    variant: str
    description: Description
    config: (
        ExtractorConfig | None
    )  # the extractor's limits and rules (None: another program, or rejected on the host)
    host_frames: tuple[HostFrame, ...] | None = None  # another program's run on the host (None: not run)


def corpus_frames() -> list[bytes]:
    """Every frame of the built-in corpus, each case after its opening SYN, in a fixed order (the guest runs
    them in this order, one flow state table per variant)."""
    sent, _ = with_openings([case.frames for case in load_corpus()])
    return sent


def build(source: Path, variant: Variant, cflags: list[str]) -> Build:
    """Compiles one variant on the host and describes it for the guests (runs in a worker process)."""
    name = variant.name if source.resolve() == EXTRACTOR_SOURCE else f"{source.stem}/{variant.name}"
    if source.resolve() == EXTRACTOR_SOURCE:
        config = variant.config()
        extra = [flag for flag in cflags if flag not in config.compile_flags()]
        try:
            with captured_stderr():
                program = Program(config, key=reference.DEFAULT_KEY, extra_cflags=tuple(extra))
        except ProgramError:
            pass  # rejected on the host: the host's column reports it; the guests still get the instructions
        else:
            try:
                description = describe(
                    bcc_maps(program.bpf.module), bcc_functions(program.bpf, [ENTRY_POINT, *STAGES, RESPONSES]),
                    name, ENTRY_POINT, {"stages": STAGES}, counters=("counters", len(Counter)), ring="events",
                    types={RESPONSES: BPF_PROG_TYPE_SCHED_CLS},
                )  # fmt: skip
            finally:
                program.close()
            return Build(str(source), name, description, config)
    if is_object(source):
        return object_build(source, name)
    return source_build(source, name, cflags)


def bcc_functions(bpf: object, names: Sequence[str]) -> list[tuple[str, bytes]]:
    """The instructions BCC compiled for each function, before any load."""
    return [(function, bpf.dump_func(function.encode())) for function in names]  # type: ignore[attr-defined]


def host_run(fd: int, maps: Sequence[MapSpec], frames: Sequence[bytes]) -> tuple[HostFrame, ...]:
    """A program's own behaviour on the host: each frame's verdict and the records it wrote to its ring buffer
    (``only_ring``), in order, as the guest loader reports them for the same frames."""
    ring_name = only_ring(maps)
    ring_fd = next((spec.fd for spec in maps if spec.name == ring_name), None)
    with contextlib.ExitStack() as stack:
        ring = stack.enter_context(RingRecords(ring_fd)) if ring_fd is not None else None
        found: list[HostFrame] = []
        for frame in frames:
            try:
                verdict = test_run(fd, frame).verdict
            except OSError as error:
                verdict = -(error.errno or 0)
            found.append((verdict, tuple(ring.take()) if ring is not None else ()))
    return tuple(found)


def source_build(source: Path, name: str, cflags: list[str]) -> Build:
    """Any BCC source: every XDP function, the first one run on the frames, on the host too if it loads."""
    from harness.core.bcc_loader import import_bcc

    bcc = import_bcc()
    with captured_stderr() as stderr:
        try:
            bpf = bcc.BPF(src_file=str(source).encode(), cflags=cflags)
        except Exception as error:  # noqa: BLE001 - BCC raises bare Exception for compile errors
            raise KernelError(f"{source} did not compile for the kernel matrix: {stderr or error}") from None
    try:
        functions = [f for f in xdp_functions(source.read_text()) if bpf.dump_func(f.encode())]
        maps = bcc_maps(bpf.module)
        description = describe(
            maps, bcc_functions(bpf, functions), name, functions[0], {}, ring=only_ring(maps)
        )
        try:
            with captured_stderr():
                fd = bpf.load_func(functions[0].encode(), bcc.BPF.XDP).fd
        except Exception:  # noqa: BLE001 - rejected on the host: its column says so; guests judge acceptance only
            return Build(str(source), name, description, None)
        return Build(str(source), name, description, None, host_run(fd, maps, corpus_frames()))
    finally:
        bpf.cleanup()


def object_build(source: Path, name: str) -> Build:
    """A clang/libbpf object: every XDP program, as libbpf relocated them for the host's load, the first one run
    on the frames. The host must load it: libbpf closes an object's maps when a load fails."""
    lib = libbpf()
    with opened_object(source) as handle:
        programs = xdp_programs_of(handle)
        for program in object_programs(handle):
            lib.bpf_program__set_autoload(program, program in programs.values())
        with captured_stderr():
            error = lib.bpf_object__load(handle)
        if error:
            raise KernelError(
                f"{source}: the host's kernel refused it ({strerror(-error)}), so libbpf relocated nothing for "
                f"the guests; `xhdr verify {source}` says why"
            )
        maps = fd_maps({lib.bpf_map__name(m).decode(): lib.bpf_map__fd(m) for m in object_maps(handle)})
        functions = [
            (function, ctypes.string_at(lib.bpf_program__insns(p), 8 * lib.bpf_program__insn_cnt(p)))
            for function, p in programs.items()
        ]
        entry = functions[0][0]
        description = describe(maps, functions, name, entry, {}, ring=only_ring(maps))
        frames = host_run(lib.bpf_program__fd(programs[entry]), maps, corpus_frames())
        return Build(str(source), name, description, None, frames)


def build_all(builds: Sequence[tuple[Path, Variant, list[str]]], jobs: int) -> list[Build]:
    """Every build, ``jobs`` at a time in spawned workers (clang and LLVM stay out of this process)."""
    with process_pool(max(1, min(jobs, len(builds)))) as pool:
        return list(pool.map(build, *zip(*builds)))


@dataclasses.dataclass
class KernelColumn:
    kernel: str
    release: str
    seconds: float
    variants: list[GuestVariant]
    differences: dict[str, list[str]]  # variant -> behaviour differences from the reference


def run_kernel(kernel: str, builds: Sequence[Build], frames: Sequence[bytes]) -> KernelColumn:
    """Boots one kernel with every build and judges its behaviour against the reference."""
    result: BootResult = boot(kernel, description_file([b.description for b in builds], frames))
    variants = parse_output(result.lines)
    if [v.name for v in variants] != [b.variant for b in builds]:
        raise KernelError(f"Linux {kernel}: the guest reported {len(variants)} of {len(builds)} variants")
    differences: dict[str, list[str]] = {}
    for item, guest in zip(builds, variants):
        if not guest.accepted:
            continue
        if item.host_frames is not None:
            found = host_differences(item.host_frames, guest)
            if found:
                differences[item.variant] = found
            continue
        if item.config is None:
            continue
        config = item.config
        found = []
        tracker = reference.FlowTracker(config, reference.DEFAULT_KEY)
        for index, (frame, outcome) in enumerate(zip(frames, outcomes(guest, config), strict=True)):
            expected = tracker.feed(frame)
            found += [f"frame {index}: {line}" for line in outcome_differences(outcome, expected)]
        if found:
            differences[item.variant] = found
    return KernelColumn(kernel, result.release, result.seconds, variants, differences)


def host_differences(host: Sequence[HostFrame], guest: GuestVariant) -> list[str]:
    """Where a program's run on a guest differs from its run on the host: verdicts, then records."""
    found = []
    for index, ((verdict, _, records), (host_verdict, host_records)) in enumerate(
        zip(guest.frames, host, strict=True)
    ):
        if verdict != host_verdict:
            found.append(f"frame {index}: verdict {verdict}, on the host {host_verdict}")
        elif tuple(records) != host_records:
            found.append(
                f"frame {index}: {len(records)} records, not the host's {len(host_records)} records byte for byte"
            )
    return found


def run_kernels(kernels: Sequence[str], builds: Sequence[Build]) -> list[KernelColumn]:
    """Boots the non-host kernels, two at a time; a kernel that cannot be booted stops the run."""
    frames = corpus_frames()
    guests = [kernel for kernel in kernels if kernel != HOST]
    with concurrent.futures.ThreadPoolExecutor(max_workers=BOOTS_AT_ONCE) as pool:
        return list(pool.map(lambda kernel: run_kernel(kernel, builds, frames), guests))


def render(
    kernels: Sequence[str],
    builds: Sequence[Build],
    columns: Sequence[KernelColumn],
    host: Sequence[tuple[bool, int | None]],
) -> str:
    """Variants down, kernels across, instructions in the cells (REJECTED, or '!' after a behaviour diff)."""
    by_kernel = {column.kernel: column for column in columns}
    header = ["variant", *kernels]
    rows = []
    for index, item in enumerate(builds):
        row = [item.variant]
        for kernel in kernels:
            if kernel == HOST:
                accepted, insns = host[index]
            else:
                guest = by_kernel[kernel].variants[index]
                accepted, insns = guest.accepted, guest.insns()
                if item.variant in by_kernel[kernel].differences:
                    insns = f"{insns} !"  # type: ignore[assignment]
            row.append(f"{insns if insns is not None else '-'}" if accepted else "REJECTED")
        rows.append(row)
    return table(header, rows, right=range(1, len(header)))


def failures(builds: Sequence[Build], columns: Sequence[KernelColumn]) -> list[str]:
    """One line per rejection or behaviour difference, naming kernel, variant and reason."""
    lines = []
    for column in columns:
        for item, guest in zip(builds, column.variants):
            if not guest.accepted:
                lines.append(f"Linux {column.kernel}: {item.variant} rejected: {guest.reason()}")
            elif item.variant in column.differences:
                diff = column.differences[item.variant]
                against = "the reference" if item.host_frames is None else "its own run on the host"
                lines.append(
                    f"Linux {column.kernel}: {item.variant} behaves differently from {against} "
                    f"({len(diff)} differences): " + "; ".join(diff[:5])
                )
    return lines
