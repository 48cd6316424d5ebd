"""Records files, what ``xhdr log --records FILE`` writes: the extractor's ring-buffer records themselves.

A JSON line costs the consumer about three times what the record it is made of does, so a machine that keeps the log can
take the records and make lines later (``xhdr decode``), or read them here. The layout (docs/RECORDS.md) is
written and rendered by the compiled consumer (harness/log/consumer/consumer.c); this module reads it for
Python programs and for the harness, which counts a growing file's records as it counts a log's lines.
"""

from __future__ import annotations

import dataclasses
import mmap
from collections.abc import Iterator
from pathlib import Path

from harness.core.config import ExtractorConfig, HeaderMode, HeaderRule
from harness.core.errors import UserError
from harness.core.event import Event, decode_event

# The version changes with the head of struct xhdr_event (tests/test_consumer.py): 2 added TLS events.
MAGIC = b"XHDR-RECORDS 4\n"
# Before each record: its length (4 bytes, little-endian) and 4 zero bytes; records and headers are padded
# to 8 bytes, so a length never reads as the magic and every record starts aligned.
PREFIX_BYTES = 8


class RecordsError(UserError, ValueError):
    """The file is not a records file, or is cut short; the message names the byte."""


@dataclasses.dataclass(frozen=True)
class Section:
    """What one run of ``xhdr log --records`` wrote first: how to read the records after it."""

    max_target_len: int
    max_value_len: int  # where a TLS event's kept ALPN bytes end
    headers: tuple[HeaderRule, ...]

    def config(self) -> ExtractorConfig:
        """A configuration that decodes these records (the slots in order, the same limits)."""
        return ExtractorConfig(
            headers=self.headers, max_target_len=self.max_target_len, max_value_len=self.max_value_len
        )


def _padded(length: int) -> int:
    return (length + PREFIX_BYTES - 1) // PREFIX_BYTES * PREFIX_BYTES


def _is_header(data: bytes | mmap.mmap, at: int) -> bool:
    return data[at : at + len(MAGIC)] == MAGIC


def _entry_end(data: bytes | mmap.mmap, at: int) -> int | None:
    """The byte after the entry at ``at`` (a section header or a record, padding included), or None when the
    data ends inside it. Raises ValueError for bytes that are neither."""
    if _is_header(data, at):
        end = data.find(b"\n\n", at)
        return None if end < 0 else _padded(end + 2)
    if at + PREFIX_BYTES > len(data):
        return None
    if data[at + 4 : at + PREFIX_BYTES] != bytes(4):
        raise ValueError("neither a section header nor a record")
    length = int.from_bytes(data[at : at + 4], "little")
    end = at + PREFIX_BYTES + _padded(length)
    return None if at + PREFIX_BYTES + length > len(data) else end


def _section(header: bytes, path: Path) -> Section:
    limits, headers = {"max-target-len": 0, "max-value-len": 0}, []
    for line in header[len(MAGIC) :].decode("ascii", "replace").splitlines():
        key, _, value = line.partition(" ")
        if key in limits and value.isdigit():
            limits[key] = int(value)
        elif key == "header" and value.rpartition(":")[2].upper() in HeaderMode.__members__:
            name, _, mode = value.rpartition(":")
            headers.append(HeaderRule(name, HeaderMode[mode.upper()]))
        elif line:
            raise RecordsError(f"{path}: a section header line that xhdr log does not write: {line!r}")
    return Section(limits["max-target-len"], limits["max-value-len"], tuple(headers))


def read_records(path: Path) -> Iterator[tuple[Section, bytes]]:
    """Every record of the file with the section it belongs to, in order.

    A file that does not start with a section header raises RecordsError; so does a record cut short or
    bytes that are no record, after the records before them were yielded. The file is mapped, not read: a
    day's log is gigabytes.
    """
    with path.open("rb") as file:
        if file.read(len(MAGIC)) != MAGIC:
            raise RecordsError(
                f"{path} is not an xhdr records file; pass a file that xhdr log --records wrote"
            )
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            yield from _records(data, path)


def _records(data: mmap.mmap, path: Path) -> Iterator[tuple[Section, bytes]]:
    at, section = 0, Section(0, 0, ())
    while at < len(data):
        try:
            end = _entry_end(data, at)
        except ValueError:
            end = None
        if end is None:
            raise RecordsError(f"{path}: a record cut short or not one at byte {at}")
        if _is_header(data, at):
            section = _section(data[at:end].rstrip(b"\0"), path)
        else:
            length = int.from_bytes(data[at : at + 4], "little")
            yield section, data[at + PREFIX_BYTES : at + PREFIX_BYTES + length]
        at = end


def read_events(path: Path) -> Iterator[Event]:
    """The file's records as the events ``xhdr log`` would have written: HeaderEvent, or TlsHello for a TLS
    ClientHello."""
    for section, record in read_records(path):
        yield decode_event(record, section.config())


class RecordCounter:
    """Counts the records of a growing records file, reading only what was appended since the last count
    (a record being written is counted once it is whole)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0  # of the first entry not yet counted
        self.records = 0

    def count(self) -> int:
        with open(self.path, "rb") as file:
            file.seek(self.offset)
            data = file.read()
        at = 0
        while (end := _entry_end(data, at)) is not None:
            self.records += not _is_header(data, at)
            at = end
        self.offset += at
        return self.records
