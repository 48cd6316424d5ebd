"""The Python mirrors of bpf/xhdr_event.h, checked against what the real compiler makes of the header.

A generated XDP program writes sizeof/offsetof of every mirrored field and the value of every mirrored
enum member into an array map; one BPF_PROG_TEST_RUN fills it. The names come from the Python side
(ctypes fields, enum members), so a field or member added in Python but not in C fails to compile, and
one whose size, offset or value drifted fails the comparison. Two configurations with different buffer
sizes catch padding that only shows for some limits.
"""

from __future__ import annotations

import ctypes
import enum

import pytest

from harness.core.bcc_loader import import_bcc
from harness.core.config import (
    MAX_HEADER_NAME_LEN,
    METHOD_MAX_LEN,
    SCHEME_MAX_LEN,
    ExtractorConfig,
    HeaderMode,
)
from harness.core.counters import Counter
from harness.core.coverage import Cover
from harness.core.event import SLOTS, EventFlag, SlotFlag, _Slot, event_struct
from harness.core.program import BPF_DIR, NamesValue
from harness.core.testrun import XDP_PASS, test_run

pytestmark = pytest.mark.kernel

CONFIGS = {
    "defaults": ExtractorConfig(),
    # Odd sizes move the end of the target and value buffers off every alignment boundary.
    "odd-limits": ExtractorConfig(max_target_len=101, max_value_len=17),
}

# (C enum prefix, Python enum) pairs whose members must have the same values.
ENUMS: list[tuple[str, type[enum.Enum]]] = [
    ("XHDR_C_", Counter),
    ("XHDR_F_", EventFlag),
    ("XHDR_S_", SlotFlag),
    ("XHDR_MODE_", HeaderMode),
    # Cover is read from bpf/xhdr_cover.h rather than mirrored: this checks the reading.
    ("XHDR_COV_", Cover),
]


def struct_layout(c_name: str, struct: type[ctypes.Structure]) -> dict[str, tuple[str, int]]:
    """Every C expression to measure for one struct, with what its ctypes twin says it is."""
    expected = {f"sizeof({c_name})": (f"sizeof({c_name})", ctypes.sizeof(struct))}
    for field, _type in struct._fields_:
        descriptor = getattr(struct, field)
        expected[f"{c_name}.{field} offset"] = (f"__builtin_offsetof({c_name}, {field})", descriptor.offset)
        expected[f"{c_name}.{field} size"] = (f"sizeof((({c_name} *)0)->{field})", descriptor.size)
    return expected


def expectations(config: ExtractorConfig) -> dict[str, tuple[str, int]]:
    """Label -> (C expression, value the Python side assumes), for everything the mirrors encode."""
    expected = {}
    expected |= struct_layout("struct xhdr_event", event_struct(config.max_target_len, config.max_value_len))
    expected |= struct_layout("struct xhdr_slot", _Slot)
    expected |= struct_layout("struct xhdr_names", NamesValue)
    expected["sizeof(struct xhdr_counters)"] = ("sizeof(struct xhdr_counters)", 8 * len(Counter))
    for prefix, python_enum in ENUMS:
        for member in python_enum:
            expected[f"{prefix}{member.name}"] = (f"{prefix}{member.name}", int(member.value))
    expected["XHDR_C_COUNT"] = ("XHDR_C_COUNT", len(Counter))
    expected["XHDR_COV_COUNT"] = ("XHDR_COV_COUNT", len(Cover))
    constants = {
        "XHDR_SLOTS": SLOTS,
        "XHDR_METHOD_MAX": METHOD_MAX_LEN,
        "XHDR_SCHEME_MAX": SCHEME_MAX_LEN,
        "XHDR_NAME_MAX": MAX_HEADER_NAME_LEN,
        # The -D flags must reach the header: a misspelt flag would leave the header's default in place.
        "XHDR_MAX_VALUE_LEN": config.max_value_len,
        "XHDR_MAX_TARGET_LEN": config.max_target_len,
        "XHDR_MAX_HEADER_LINES": config.max_header_lines,
        "XHDR_MAX_SCAN_BYTES": config.max_scan_bytes,
        "XHDR_MAX_REQUESTS": config.max_requests_per_packet,
        "XHDR_RINGBUF_PAGES": config.ringbuf_pages,
    }
    expected |= {name: (name, value) for name, value in constants.items()}
    return expected


def probe_source(expressions: list[str]) -> str:
    """An XDP program that stores each expression, as a u64, at its index in the `layout` array."""
    stores = "\n".join(f"\tput({index}, (u64)({expr}));" for index, expr in enumerate(expressions))
    return f"""
#include <uapi/linux/bpf.h>
#include "xhdr_event.h"
#include "xhdr_cover.h"

BPF_ARRAY(layout, u64, {len(expressions)});

static __always_inline void put(int index, u64 value)
{{
	layout.update(&index, &value);
}}

int xhdr_layout(struct xdp_md *ctx)
{{
{stores}
	return XDP_PASS;
}}
"""


def measured(config: ExtractorConfig, expressions: list[str]) -> list[int]:
    """What the compiler says each expression is, under the same -I and -D flags as the extractor."""
    bcc = import_bcc()
    cflags = [f"-I{BPF_DIR}", *config.compile_flags()]
    bpf = bcc.BPF(text=probe_source(expressions).encode(), cflags=cflags)
    try:
        function = bpf.load_func(b"xhdr_layout", bcc.BPF.XDP)
        assert test_run(function.fd, bytes(64)).verdict == XDP_PASS
        layout = bpf[b"layout"]
        return [layout[ctypes.c_int(index)].value for index in range(len(expressions))]
    finally:
        bpf.cleanup()


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_python_mirrors_match_the_c_header(config: ExtractorConfig) -> None:
    expected = expectations(config)
    labels = list(expected)
    values = measured(config, [expected[label][0] for label in labels])
    drift = [
        f"{label}: C says {value}, Python says {expected[label][1]}"
        for label, value in zip(labels, values, strict=True)
        if value != expected[label][1]
    ]
    assert not drift, "Python mirrors drifted from bpf/xhdr_event.h:\n" + "\n".join(drift)


def test_every_counter_has_a_slot() -> None:
    """The counter table is dense and in order, so Counter values index the per-CPU array directly."""
    assert [int(counter) for counter in Counter] == list(range(len(Counter)))
    values = measured(ExtractorConfig(), ["XHDR_C_COUNT"])
    assert values == [len(Counter)]
