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


def test_default_build_is_accepted_and_matches_the_reference_on_5_10() -> None:
    variant = Variant("defaults")
    build = kernel_run.build(EXTRACTOR_SOURCE, variant, variant.cflags(extractor=True))
    (column,) = kernel_run.run_kernels(["5.10"], [build])
    (guest,) = column.variants
    assert guest.accepted, guest.reason()
    assert [p.name for p in guest.programs] == [
        "xhdr_extract",
        "xhdr_scan",
        "xhdr_values",
        "xhdr_hash",
        "xhdr_emit",
    ]
    assert len(guest.frames) == len(kernel_run.corpus_frames())
    assert column.differences == {}
    assert any(events for _, _, events in guest.frames), "no frame produced a ring-buffer record"


def test_helper_missing_on_5_10_is_rejected_there_with_the_reason() -> None:
    source = CASES / "coarse_clock.c"
    build = kernel_run.build(source, Variant("default"), Variant("default").cflags(extractor=False))
    (column,) = kernel_run.run_kernels(["5.10"], [build])
    (guest,) = column.variants
    assert not guest.accepted
    assert "invalid func unknown#160" in guest.reason()
    # ... and the host, which has the helper, accepts the same file.
    bcc = import_bcc()
    host = bcc.BPF(src_file=str(source).encode())
    try:
        assert host.load_func(b"xdp_coarse_clock", bcc.BPF.XDP).fd >= 0
    finally:
        host.cleanup()
