"""Reading a per-CPU array of 64-bit counters (the extractor's ``counters``, a coverage build's ``coverage``)
summed over CPUs with one lookup into a reused buffer.

BCC's table access builds a Python object per CPU and per field; a fuzz batch reads these maps once per frame
or example, where that cost would show.
"""

from __future__ import annotations

import ctypes

from harness.core.native import libbpf, map_info


class PerCpuTotals:
    """The ``words`` 64-bit counters at key 0 of the per-CPU array ``map_fd`` (called ``name``), each summed
    over CPUs."""

    def __init__(self, map_fd: int, name: str, words: int) -> None:
        value_size = map_info(map_fd).value_size
        if value_size != 8 * words:
            raise RuntimeError(f"map {name}: its value is {value_size} bytes, expected {8 * words}")
        self._name = name
        self._fd = map_fd
        self._words = words
        self._buffer = (ctypes.c_uint64 * (libbpf().libbpf_num_possible_cpus() * words))()
        self._key = ctypes.c_uint32(0)
        self._lookup = libbpf().bpf_map_lookup_elem

    def read(self) -> list[int]:
        """The counters in map order; they only grow."""
        error = self._lookup(self._fd, ctypes.byref(self._key), ctypes.byref(self._buffer))
        if error:
            raise OSError(-error, f"cannot read the {self._name} map")
        values, words = self._buffer, self._words
        return [sum(values[word::words]) for word in range(words)]

    def clear(self) -> None:
        """Sets every counter to zero on every CPU (a program adding meanwhile may lose its adds)."""
        zeros = (ctypes.c_uint64 * len(self._buffer))()
        if libbpf().bpf_map_update_elem(self._fd, ctypes.byref(self._key), ctypes.byref(zeros), 0):
            raise OSError(ctypes.get_errno(), f"cannot clear the {self._name} map")
