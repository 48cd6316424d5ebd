"""``Program``: the extractor compiled by BCC for one ``ExtractorConfig``, loaded, and configured.

Ports and header rules live in maps (``watched_ports``, ``names``) so :meth:`Program.configure` changes
them on the loaded program; the limits are compile-time constants, so changing them means a new Program.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Self

from harness.core.aggregates import Aggregate, read_aggregates
from harness.core.bcc_loader import BccUnavailable, import_bcc
from harness.core.cbuild import BPF_DIR
from harness.core.config import MAX_HEADER_NAME_LEN, ExtractorConfig
from harness.core.counters import Counter, Counts, counts_of
from harness.core.coverage import COVERAGE_DEFINE
from harness.core.errors import UserError
from harness.core.event import SLOTS, HeaderEvent, decode_event
from harness.core.native import libbpf
from harness.core.percpu import PerCpuTotals
from harness.core.rules import MAX_RULES
from harness.core.rules_map import little_endian_words, load_rules
from harness.core.tc import extractor_attached
from harness.core.xdp import XdpMode

EXTRACTOR_SOURCE = BPF_DIR / "xhdr.c"
ENTRY_POINT = "xhdr_extract"
# Tail-called stages, in the order of enum xhdr_stage in bpf/xhdr.c.
STAGES = ("xhdr_scan", "xhdr_chunks", "xhdr_values", "xhdr_hash", "xhdr_emit", "xhdr_tls")
# R24, R25: the TC egress program that pairs responses with the requests logged before them.
RESPONSES = "xhdr_responses"
# What the watched_ports map says of a port (enum port_kind in bpf/xhdr.c).
PORT_UNWATCHED, PORT_HTTP, PORT_TLS = 0, 1, 2

NAME_WORDS = MAX_HEADER_NAME_LEN // 8
WAKE_SHARE = 4  # the consumer is woken before 1/WAKE_SHARE of the ring buffer is unread

__all__ = ["BccUnavailable", "Program", "ProgramError", "XdpMode"]


class ProgramError(UserError, RuntimeError):
    """The program could not be built or loaded; the message says why in one line (details follow)."""


def name_words(name: str) -> tuple[list[int], list[int]]:
    """A configured name as the kernel compares it: lower-cased words, and the case-fold mask per word.

    The kernel ORs each word of a field name with the fold mask (0x20 on the name's letters) and compares
    it with the lower-cased name, so a name matches ignoring ASCII case in four comparisons (R12).
    """
    raw = name.encode("ascii").ljust(MAX_HEADER_NAME_LEN, b"\0")
    fold = bytes(0x20 if chr(byte).isalpha() else 0 for byte in raw)
    return little_endian_words(raw.lower()), little_endian_words(fold)


def wake_bytes(config: ExtractorConfig) -> int:
    """What one CPU writes to the ring buffer before it wakes the consumer (bpf/xhdr.c, xhdr_emit): a
    quarter of the ring over the CPUs. The CPUs together then wake it before a quarter of the ring is
    unread, the rest holding what comes while it is being scheduled, and each wakeup finds a batch big
    enough that the consumer's cold caches cost little per event."""
    return max(1, config.ring_bytes // (WAKE_SHARE * (os.cpu_count() or 1)))


def highest_bit_table() -> bytes:
    """The highest set bit of every byte value (0 for 0): BPF has no bit-scan instruction."""
    return bytes(mask.bit_length() - 1 if mask else 0 for mask in range(256))


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Holds SIGINT and SIGTERM while BCC runs our ring-buffer callback.

    An exception raised inside a ctypes callback is printed and swallowed, and the event being delivered
    is lost; with the signals held, Ctrl-C arrives just after the call, where Python can raise it.
    """
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class NamesValue(ctypes.Structure):
    """struct xhdr_names of bpf/xhdr_event.h."""

    _fields_ = [
        ("key", ctypes.c_uint64 * 2),
        ("name", (ctypes.c_uint64 * NAME_WORDS) * SLOTS),
        ("fold", (ctypes.c_uint64 * NAME_WORDS) * SLOTS),
        ("mode", ctypes.c_uint8 * SLOTS),
        ("highest_bit", ctypes.c_uint8 * 256),
        ("len_mask", ctypes.c_uint8 * (MAX_HEADER_NAME_LEN + 1)),
        ("responses", ctypes.c_uint8),
        ("wake_bytes", ctypes.c_uint32),
    ]


class Program:
    """One compiled and loaded variant of bpf/xhdr.c. Use as a context manager, or call close()."""

    def __init__(
        self,
        config: ExtractorConfig | None = None,
        *,
        key: bytes | None = None,
        source: Path = EXTRACTOR_SOURCE,
        extra_cflags: tuple[str, ...] = (),
        coverage: bool = False,
    ) -> None:
        """``coverage`` builds with -DXHDR_COVERAGE: labelled branches are counted (harness/core/coverage.py)."""
        self.config = config or ExtractorConfig()
        self.key = key if key is not None else os.urandom(16)
        if len(self.key) != 16:
            raise ProgramError(f"hash key must be 16 bytes, got {len(self.key)}")
        bcc = import_bcc()
        cflags = [f"-I{BPF_DIR}", *self.config.compile_flags(), *extra_cflags, "-Wno-unused-function"]
        if coverage:
            cflags.append(f"-D{COVERAGE_DEFINE}")
        try:
            self.bpf = bcc.BPF(src_file=str(source).encode(), cflags=cflags)
        except Exception as error:  # BCC raises bare Exception for compile errors
            raise ProgramError(f"{source.name} did not compile: {error}") from error
        try:
            self.functions = {
                name: self.bpf.load_func(name.encode(), bcc.BPF.XDP) for name in (ENTRY_POINT, *STAGES)
            }
            self.functions[RESPONSES] = self.bpf.load_func(RESPONSES.encode(), bcc.BPF.SCHED_CLS)
        except Exception as error:
            self.bpf.cleanup()
            raise ProgramError(f"the verifier rejected {source.name}: {error}") from error
        stages = self.bpf[b"stages"]
        for index, name in enumerate(STAGES):
            stages[ctypes.c_int(index)] = ctypes.c_int(self.functions[name].fd)
        self.fd: int = self.functions[ENTRY_POINT].fd
        self._events: list[HeaderEvent] = []
        self.keep_records = False  # also keep each event's raw record (take_records)
        self._records: list[bytes] = []
        self.bpf[b"events"].open_ring_buffer(self._on_event)
        self.configure(self.config)

    # -- configuration -------------------------------------------------------------------------

    def configure(self, config: ExtractorConfig) -> None:
        """Writes ports and header rules into the maps; limits must match the compiled ones."""
        if config.compile_flags() != self.config.compile_flags():
            raise ProgramError("limits differ from the loaded program's; build a new Program for new limits")
        ports = self.bpf[b"watched_ports"]
        for port in {*self.config.ports, *self.config.tls_ports} - {*config.ports, *config.tls_ports}:
            ports[ports.Key(port)] = ports.Leaf(PORT_UNWATCHED)
        for port in config.ports:
            ports[ports.Key(port)] = ports.Leaf(PORT_HTTP)
        for port in config.tls_ports:
            ports[ports.Key(port)] = ports.Leaf(PORT_TLS)
        value = NamesValue()
        value.key[0] = int.from_bytes(self.key[:8], "little")
        value.key[1] = int.from_bytes(self.key[8:], "little")
        for slot, rule in enumerate(config.headers):
            value.mode[slot] = int(rule.mode)
            value.len_mask[len(rule.name)] |= 1 << slot
            words, folds = name_words(rule.name)
            for index in range(NAME_WORDS):
                value.name[slot][index] = words[index]
                value.fold[slot][index] = folds[index]
        ctypes.memmove(value.highest_bit, highest_bit_table(), 256)
        value.responses = config.responses
        value.wake_bytes = wake_bytes(config)
        # BCC's own leaf type for this map flattens the 2-D name arrays, so the update goes through our struct.
        key = ctypes.c_uint32(0)
        if libbpf().bpf_map_update_elem(self.bpf[b"names"].map_fd, ctypes.byref(key), ctypes.byref(value), 0):
            raise ProgramError(
                f"cannot write the header rules into the names map: errno {ctypes.get_errno()}"
            )
        load_rules(self.bpf[b"rules"].map_fd, self.rule_hits, config)  # R27: the hits count from zero again
        self.config = config

    # -- results -------------------------------------------------------------------------------

    def _on_event(self, _ctx: object, data: int, size: int) -> int:
        raw = ctypes.string_at(data, size)
        self._events.append(decode_event(raw, self.config))
        if self.keep_records:
            self._records.append(raw)
        return 0

    def take_records(self) -> list[bytes]:
        """The raw ring-buffer records behind the events taken since keep_records was set, oldest first.

        For tests of what leaves the kernel byte for byte (padding and unused space included).
        """
        records, self._records = self._records, []
        return records

    def take_events(self) -> list[HeaderEvent]:
        """Every event the ring buffer holds now, oldest first; they are removed from the buffer."""
        with _signals_deferred():
            self.bpf.ring_buffer_consume()
        events, self._events = self._events, []
        return events

    def poll_events(self, timeout_ms: int) -> list[HeaderEvent]:
        """Like take_events, but waits up to ``timeout_ms`` for the first event instead of spinning.

        A live logger needs a blocking wait that still returns often enough to notice Ctrl-C/SIGTERM.
        """
        with _signals_deferred():
            self.bpf.ring_buffer_poll(timeout_ms)
            # The extractor wakes readers only once per batch of events; what came without a wakeup is
            # read here, so an event waits at most timeout_ms.
            self.bpf.ring_buffer_consume()
        events, self._events = self._events, []
        return events

    @functools.cached_property
    def counter_totals(self) -> PerCpuTotals:
        """The ``counters`` map's reader: one lookup, summed over CPUs, in Counter order."""
        return PerCpuTotals(self.bpf[b"counters"].map_fd, "counters", len(Counter))

    def counters(self) -> Counts:
        """Counters summed over CPUs. They only grow: compare two readings to see what a step did."""
        return counts_of(self.counter_totals.read())

    def aggregates(self) -> list[Aggregate]:
        """R30: what the rules that count by headers counted, the most counted first."""
        return read_aggregates(self.bpf[b"aggregates"].map_fd, self.config)

    @functools.cached_property
    def rule_hits(self) -> PerCpuTotals:
        """R27: the ``rule_hits`` map's reader: per rule, in the configuration's order, the requests it matched."""
        return PerCpuTotals(self.bpf[b"rule_hits"].map_fd, "rule_hits", MAX_RULES)

    # -- attachment ----------------------------------------------------------------------------

    def attached(
        self, ifname: str, mode: XdpMode, netns: str | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """Attaches to an interface (optionally inside a namespace) for the block, through a BPF link where the
        kernel has one, so the program is detached even if this process is killed (harness.core.xdp); with
        ``responses`` on, the responses program too, on the interface's egress (harness.core.tc).
        """
        responses = self.functions[RESPONSES].fd if self.config.responses else None
        return extractor_attached(self.fd, responses, ifname, mode, netns)

    def close(self) -> None:
        self.bpf.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
