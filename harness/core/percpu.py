"""Reading a per-CPU array of 64-bit counters (the extractor's ``counters``, a coverage build's ``coverage``)
summed over CPUs with one lookup into a reused buffer.

BCC's table access builds a Python object per CPU and per field; a fuzz batch reads these maps once per frame
or example, where that cost would show.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

from harness.core.native import libbpf

if TYPE_CHECKING:
    from harness.core.program import Program


class PerCpuTotals:
    """The ``words`` 64-bit counters at key 0 of the per-CPU array ``map_name``, each summed over CPUs."""

    def __init__(self, program: Program, map_name: bytes, words: int) -> None:
        table = program.bpf[map_name]  # KeyError when the build has no such map
        if ctypes.sizeof(table.sLeaf) != 8 * words:
            raise RuntimeError(
                f"map {map_name.decode()}: its value is {ctypes.sizeof(table.sLeaf)} bytes, expected {8 * words}"
            )
        self._name = map_name.decode()
        self._fd: int = table.map_fd
        self._words = words
        self._buffer = (ctypes.c_uint64 * (table.total_cpu * words))()
        self._key = ctypes.c_uint32(0)
        self._lookup = libbpf().bpf_map_lookup_elem

    def read(self) -> list[int]:
        """The counters in map order; they only grow."""
        error = self._lookup(self._fd, ctypes.byref(self._key), ctypes.byref(self._buffer))
        if error:
            raise OSError(-error, f"cannot read the {self._name} map")
        values, words = self._buffer, self._words
        return [sum(values[word::words]) for word in range(words)]
