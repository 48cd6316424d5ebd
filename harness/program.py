"""``Program``: the extractor compiled by BCC for one ``ExtractorConfig``, loaded, and configured.

Ports and header rules live in maps (``watched_ports``, ``names``) so :meth:`Program.configure` changes
them on the loaded program; the limits are compile-time constants, so changing them means a new Program.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Self

from harness.bcc_loader import BccUnavailable, import_bcc
from harness.config import MAX_HEADER_NAME_LEN, TCHARS, ExtractorConfig, HeaderRule
from harness.counters import Counter, Counts
from harness.event import SLOTS, HeaderEvent, decode_event
from harness.xdp import XdpMode, attach_xdp, detach_xdp

BPF_DIR = Path(__file__).resolve().parent.parent / "bpf"
EXTRACTOR_SOURCE = BPF_DIR / "xhdr.c"
ENTRY_POINT = "xhdr_extract"
# Tail-called stages, in the order of enum xhdr_stage in bpf/xhdr.c.
STAGES = ("xhdr_scan", "xhdr_hash", "xhdr_emit")

CHAR_CLASS_TCHAR = 1
CHAR_CLASS_TARGET = 2

__all__ = ["BccUnavailable", "Program", "ProgramError", "XdpMode"]


class ProgramError(RuntimeError):
    """The program could not be built or loaded; the message says why in one line (details follow)."""


def char_classes() -> bytes:
    """The byte classes of RFC 9110/9112 the parser needs (enum xhdr_char_class)."""
    classes = bytearray(256)
    for byte in range(256):
        if byte in TCHARS:
            classes[byte] |= CHAR_CLASS_TCHAR
        if 0x21 <= byte <= 0x7E or byte >= 0x80:
            classes[byte] |= CHAR_CLASS_TARGET
    return bytes(classes)


def name_tables(rules: tuple[HeaderRule, ...]) -> tuple[bytes, bytes, bytes]:
    """Slot masks per (position, byte) and per name length, and the lowest set bit of each mask.

    The kernel matches a header name in one pass by AND-ing the mask of every byte it reads: a slot
    survives only if its name has that byte, in either case, at that position (see struct xhdr_names).
    """
    char_mask = bytearray(MAX_HEADER_NAME_LEN * 256)
    len_mask = bytearray(MAX_HEADER_NAME_LEN + 1)
    for slot, rule in enumerate(rules):
        bit = 1 << slot
        name = rule.name.encode("ascii")
        len_mask[len(name)] |= bit
        for position, byte in enumerate(name):
            for variant in {byte, ord(chr(byte).lower()), ord(chr(byte).upper())}:
                char_mask[position * 256 + variant] |= bit
    first_slot = bytes((mask & -mask).bit_length() - 1 if mask else 0 for mask in range(256))
    return bytes(char_mask), bytes(len_mask), first_slot


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
        ("mode", ctypes.c_uint8 * SLOTS),
        ("char_class", ctypes.c_uint8 * 256),
        ("first_slot", ctypes.c_uint8 * 256),
        ("len_mask", ctypes.c_uint8 * (MAX_HEADER_NAME_LEN + 1)),
        ("char_mask", (ctypes.c_uint8 * 256) * MAX_HEADER_NAME_LEN),
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
    ) -> None:
        self.config = config or ExtractorConfig()
        self.key = key if key is not None else os.urandom(16)
        if len(self.key) != 16:
            raise ProgramError(f"hash key must be 16 bytes, got {len(self.key)}")
        bcc = self._bcc = import_bcc()
        cflags = [f"-I{BPF_DIR}", *self.config.compile_flags(), *extra_cflags, "-Wno-unused-function"]
        try:
            self.bpf = bcc.BPF(src_file=str(source).encode(), cflags=cflags)
        except Exception as error:  # BCC raises bare Exception for compile errors
            raise ProgramError(f"{source.name} did not compile: {error}") from error
        try:
            self.functions = {
                name: self.bpf.load_func(name.encode(), bcc.BPF.XDP) for name in (ENTRY_POINT, *STAGES)
            }
        except Exception as error:
            self.bpf.cleanup()
            raise ProgramError(f"the verifier rejected {source.name}: {error}") from error
        stages = self.bpf[b"stages"]
        for index, name in enumerate(STAGES):
            stages[ctypes.c_int(index)] = ctypes.c_int(self.functions[name].fd)
        self.fd: int = self.functions[ENTRY_POINT].fd
        self._events: list[HeaderEvent] = []
        self.bpf[b"events"].open_ring_buffer(self._on_event)
        self.configure(self.config)

    # -- configuration -------------------------------------------------------------------------

    def configure(self, config: ExtractorConfig) -> None:
        """Writes ports and header rules into the maps; limits must match the compiled ones."""
        if config.compile_flags() != self.config.compile_flags():
            raise ProgramError("limits differ from the loaded program's; build a new Program for new limits")
        ports = self.bpf[b"watched_ports"]
        for port in set(self.config.ports) - set(config.ports):
            ports[ports.Key(port)] = ports.Leaf(0)
        for port in config.ports:
            ports[ports.Key(port)] = ports.Leaf(1)
        value = NamesValue()
        char_mask, len_mask, first_slot = name_tables(config.headers)
        value.key[0] = int.from_bytes(self.key[:8], "little")
        value.key[1] = int.from_bytes(self.key[8:], "little")
        for slot in range(SLOTS):
            value.mode[slot] = int(config.headers[slot].mode) if slot < len(config.headers) else 0
        ctypes.memmove(value.char_class, char_classes(), 256)
        ctypes.memmove(value.first_slot, first_slot, 256)
        ctypes.memmove(value.len_mask, len_mask, len(len_mask))
        ctypes.memmove(value.char_mask, char_mask, len(char_mask))
        # BCC's own leaf type for this map flattens the 2-D char_mask, so the update goes through our struct.
        key = ctypes.c_uint32(0)
        if self._bcc.libbcc.lib.bpf_update_elem(
            self.bpf[b"names"].map_fd, ctypes.byref(key), ctypes.byref(value), 0
        ):
            raise ProgramError(
                f"cannot write the header rules into the names map: errno {ctypes.get_errno()}"
            )
        self.config = config

    # -- results -------------------------------------------------------------------------------

    def _on_event(self, _ctx: object, data: int, size: int) -> int:
        self._events.append(decode_event(ctypes.string_at(data, size), self.config))
        return 0

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

    def counters(self) -> Counts:
        """Counters summed over CPUs. They only grow: compare two readings to see what a step did."""
        per_cpu = self.bpf[b"counters"][0]
        return {counter: sum(cpu.count[counter] for cpu in per_cpu) for counter in Counter}

    # -- attachment ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def attached(self, ifname: str, mode: XdpMode, netns: str | None = None) -> Iterator[None]:
        """Attaches to an interface (optionally inside a namespace) and always detaches on exit."""
        attach_xdp(self.fd, ifname, mode, netns)
        try:
            yield
        finally:
            detach_xdp(ifname, mode, netns)

    def close(self) -> None:
        self.bpf.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
