"""The records of a BPF ring buffer map, drained through libbpf's ring_buffer API, whoever loaded the map.

BCC programs have their own ring-buffer callback; a program loaded through libbpf (a user's ``.bpf.o``) or a
map taken over from another process (the A/B gate's reference build) has only a map fd. This reads such a map
in the calling thread: no poll, no wakeup, just what is there when :meth:`RingRecords.take` is called, which is
what a test run or a fuzz example needs.
"""

from __future__ import annotations

import ctypes
import os
from typing import Self

from harness.core.native import RING_BUFFER_SAMPLE, libbpf


class RingRecords:
    """Every record written to the ring buffer map ``map_fd``, as bytes, oldest first. Close it (or use it
    as a context manager) to free libbpf's side; the map fd stays the caller's."""

    def __init__(self, map_fd: int) -> None:
        self._records: list[bytes] = []
        self._callback = RING_BUFFER_SAMPLE(self._on_record)  # kept: libbpf calls it until ring_buffer__free
        self._ring = libbpf().ring_buffer__new(map_fd, self._callback, None, None)
        if not self._ring:
            error = ctypes.get_errno()
            raise OSError(error, f"libbpf cannot open it: {os.strerror(error)}")

    def _on_record(self, _ctx: int | None, data: int, size: int) -> int:
        self._records.append(ctypes.string_at(data, size))
        return 0

    def take(self) -> list[bytes]:
        """The records the ring buffer holds now; they are removed from it."""
        libbpf().ring_buffer__consume(self._ring)
        records, self._records = self._records, []
        return records

    def close(self) -> None:
        if self._ring:
            libbpf().ring_buffer__free(self._ring)
            self._ring = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
