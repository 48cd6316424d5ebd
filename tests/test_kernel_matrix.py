"""The kernel matrix on a real Linux 5.10 guest (qemu TCG): acceptance, corpus behaviour, negative control.

A cold cache downloads Debian's 5.10 cloud kernel (about 21 MB) through apt; a warm one uses no network.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fuzz.foreign import load_module
from harness.core.bcc_loader import import_bcc
from harness.core.program import EXTRACTOR_SOURCE
from harness.core.testrun import XDP_DROP, XDP_PASS
from harness.kernels import run as kernel_run
from harness.kernels.guest import GuestVariant
from harness.verify.variants import DEFAULT_MATRIX, Variant, load_matrix

pytestmark = pytest.mark.kernel
CASES = Path(__file__).resolve().parent / "kernel_cases"


@pytest.fixture(scope="module")
def builds(clang_object: Callable[..., Path]) -> list[kernel_run.Build]:
    """Four builds for one boot: the extractor's defaults (with the default matrix's rules, so the guest's
    verdicts and events are judged with rules too), the negative control, the example of a user's clang/libbpf
    object, and an object with global data."""
    (extractor,) = [variant for variant in load_matrix(DEFAULT_MATRIX) if variant.name == "defaults"]
    control = Variant("default")
    return [
        kernel_run.build(EXTRACTOR_SOURCE, extractor, extractor.cflags(extractor=True)),
        kernel_run.build(CASES / "coarse_clock.c", control, control.cflags(extractor=False)),
        kernel_run.build(clang_object("reqline"), control, []),
        kernel_run.build(clang_object("global_port"), control, []),
    ]


@pytest.fixture(scope="module")
def column_5_10(builds: list[kernel_run.Build]) -> kernel_run.KernelColumn:
    """One boot of the 5.10 guest for every build."""
    (column,) = kernel_run.run_kernels(["5.10"], builds)
    return column


def test_default_build_is_accepted_and_matches_the_reference_on_5_10(column_5_10) -> None:
    guest = column_5_10.variants[0]
    assert guest.accepted, guest.reason()
    assert [p.name for p in guest.programs] == [
        "xhdr_extract",
        "xhdr_scan",
        "xhdr_chunks",
        "xhdr_values",
        "xhdr_hash",
        "xhdr_emit",
        "xhdr_tls",
        "xhdr_responses",  # the TC egress program (R24, R25), verified as SCHED_CLS
    ]
    assert len(guest.frames) == len(kernel_run.corpus_frames())
    assert column_5_10.differences == {}
    assert any(verdict == XDP_DROP for verdict, _, _ in guest.frames), "no frame was dropped by the drop rule"
    assert any(events for _, _, events in guest.frames), "no frame produced a ring-buffer record"


def test_helper_missing_on_5_10_is_rejected_there_with_the_reason(column_5_10) -> None:
    guest = column_5_10.variants[1]
    assert not guest.accepted
    assert "invalid func unknown#160" in guest.reason()
    # ... and the host, which has the helper, accepts the same file.
    bcc = import_bcc()
    host = bcc.BPF(src_file=str(CASES / "coarse_clock.c").encode())
    try:
        assert host.load_func(b"xdp_coarse_clock", bcc.BPF.XDP).fd >= 0
    finally:
        host.cleanup()


def test_a_users_object_behaves_there_as_on_the_host(column_5_10) -> None:
    """Relocated by libbpf on the host, loaded by the guest's own loader, run on every corpus frame: the same
    verdicts and the same ring-buffer records, byte for byte, as the host's run."""
    guest = column_5_10.variants[2]
    assert guest.accepted, guest.reason()
    assert [p.name for p in guest.programs] == ["reqline"]
    assert guest.name not in column_5_10.differences
    # ... and what it logged there is what its own oracle says, frame by frame
    example = load_module(str(CASES.parent / "objects" / "reqline.py"), "the example's decoder and oracle")
    logged = [[example.decode(record) for record in records] for _, _, records in guest.frames]
    assert logged == [example.expected(frame) for frame in kernel_run.corpus_frames()]
    assert sum(map(len, logged)) > 50


def test_a_difference_from_the_host_is_named_by_frame() -> None:
    guest = GuestVariant("mine", frames=[(2, None, [b"a"]), (1, None, [b"b"]), (2, None, [b"c"])])
    host = ((2, (b"a",)), (2, (b"b",)), (2, (b"C",)))
    assert kernel_run.host_differences(host, guest) == [
        "frame 1: verdict 1, on the host 2",
        "frame 2: 1 records, not the host's 1 records byte for byte",
    ]
    assert (
        kernel_run.host_differences(((2, (b"a",)),), GuestVariant("same", frames=[(2, None, [b"a"])])) == []
    )


def test_an_objects_global_data_reaches_the_guest(builds, column_5_10) -> None:
    """.rodata's contents and the loads of map values libbpf relocated: the first 64 frames pass and the rest
    are dropped, on the host as on 5.10 (with .rodata lost, every frame would be dropped there)."""
    guest, build = column_5_10.variants[3], builds[3]
    assert guest.accepted, guest.reason()
    assert guest.name not in column_5_10.differences
    verdicts = [verdict for verdict, _ in build.host_frames]
    assert verdicts == [XDP_PASS] * 64 + [XDP_DROP] * (len(verdicts) - 64)
