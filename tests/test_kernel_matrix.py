"""The kernel matrix on a real Linux 5.10 guest (qemu TCG): acceptance, corpus behaviour, negative control.

A cold cache downloads Debian's 5.10 cloud kernel (about 21 MB) through apt; a warm one uses no network.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.bcc_loader import import_bcc
from harness.core.program import EXTRACTOR_SOURCE
from harness.kernels import run as kernel_run
from harness.verify.variants import Variant

pytestmark = pytest.mark.kernel
CASES = Path(__file__).resolve().parent / "kernel_cases"


@pytest.fixture(scope="module")
def column_5_10() -> kernel_run.KernelColumn:
    """One boot of the 5.10 guest for both builds: the extractor's defaults, then the negative control."""
    extractor, control = Variant("defaults"), Variant("default")
    builds = [
        kernel_run.build(EXTRACTOR_SOURCE, extractor, extractor.cflags(extractor=True)),
        kernel_run.build(CASES / "coarse_clock.c", control, control.cflags(extractor=False)),
    ]
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
    ]
    assert len(guest.frames) == len(kernel_run.corpus_frames())
    assert column_5_10.differences == {}
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
