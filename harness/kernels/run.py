"""``xhdr verify --kernels``: every variant of the matrix on every listed kernel, acceptance and behaviour.

For each variant, the host compiles it once with BCC (for the extractor: a full :class:`Program` with the
corpus key and default rules written into its maps) and turns it into a guest description
(:func:`harness.kernels.guest.describe`). One guest boot per kernel then loads every variant and runs every corpus
frame through BPF_PROG_TEST_RUN, each case after the SYN that opens its flow, as the host's corpus test sends
them; the results are compared (``harness.oracle.differences.outcome_differences``) with a reference ``FlowTracker`` fed
the same sequence, the SYNs included, so the guest needs no notion of flows. A rejection, a map the kernel refuses or
a behaviour difference on any kernel fails the command, naming kernel, variant and reason.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from harness.cli.textui import table
from harness.core.config import ExtractorConfig
from harness.core.counters import Counter
from harness.core.driver import with_openings
from harness.core.loader import captured_stderr, xdp_functions
from harness.core.program import ENTRY_POINT, EXTRACTOR_SOURCE, STAGES, Program, ProgramError
from harness.core.workers import process_pool
from harness.kernels.guest import (
    HOST,
    BootResult,
    Description,
    GuestVariant,
    KernelError,
    boot,
    describe,
    description_file,
    outcomes,
    parse_output,
)
from harness.oracle import reference
from harness.oracle.corpus import load_corpus
from harness.oracle.differences import outcome_differences
from harness.verify.variants import Variant

# TCG uses one host core per guest; two guests at once fill this machine's two cores.
BOOTS_AT_ONCE = 2


@dataclasses.dataclass(frozen=True)
class Build:
    """A described variant and, for the extractor, the limits its corpus run is judged with."""

    source: str
    variant: str
    description: Description
    limits: dict[str, int] | None  # None: acceptance only (not the extractor, or rejected on the host)


def corpus_frames() -> list[bytes]:
    """Every frame of the built-in corpus, each case after its opening SYN, in a fixed order (the guest runs
    them in this order, one flow state table per variant)."""
    sent, _ = with_openings([case.frames for case in load_corpus()])
    return sent


def build(source: Path, variant: Variant, cflags: list[str]) -> Build:
    """Compiles one variant on the host and describes it for the guests (runs in a worker process)."""
    name = variant.name if source.resolve() == EXTRACTOR_SOURCE else f"{source.stem}/{variant.name}"
    if source.resolve() == EXTRACTOR_SOURCE:
        config = ExtractorConfig(**variant.limits)
        extra = [flag for flag in cflags if flag not in config.compile_flags()]
        try:
            with captured_stderr():
                program = Program(config, key=reference.DEFAULT_KEY, extra_cflags=tuple(extra))
        except ProgramError:
            pass  # rejected on the host: the host's column reports it; the guests still get the instructions
        else:
            try:
                description = describe(
                    program.bpf, name, [ENTRY_POINT, *STAGES], ENTRY_POINT, {"stages": STAGES},
                    counters=("counters", len(Counter)), ring="events",
                )  # fmt: skip
            finally:
                program.close()
            return Build(str(source), name, description, dict(variant.limits))
    from harness.core.bcc_loader import import_bcc

    bcc = import_bcc()
    with captured_stderr() as stderr:
        try:
            bpf = bcc.BPF(src_file=str(source).encode(), cflags=cflags)
        except Exception as error:  # noqa: BLE001 - BCC raises bare Exception for compile errors
            raise KernelError(f"{source} did not compile for the kernel matrix: {stderr or error}") from None
    try:
        functions = [f for f in xdp_functions(source.read_text()) if bpf.dump_func(f.encode())]
        description = describe(bpf, name, functions, functions[0], {})
    finally:
        bpf.cleanup()
    return Build(str(source), name, description, None)


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
        if item.limits is None or not guest.accepted:
            continue
        config = ExtractorConfig(**item.limits)
        found = []
        tracker = reference.FlowTracker(config, reference.DEFAULT_KEY)
        for index, (frame, outcome) in enumerate(zip(frames, outcomes(guest, config), strict=True)):
            expected = tracker.feed(frame)
            found += [f"frame {index}: {line}" for line in outcome_differences(outcome, expected)]
        if found:
            differences[item.variant] = found
    return KernelColumn(kernel, result.release, result.seconds, variants, differences)


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
                lines.append(
                    f"Linux {column.kernel}: {item.variant} behaves differently from the reference "
                    f"({len(diff)} differences): " + "; ".join(diff[:5])
                )
    return lines
