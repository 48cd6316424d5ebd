"""Finds BCC, which comes from Debian's python3-bpfcc rather than PyPI."""

from __future__ import annotations

import ctypes
import functools
import types

from harness.core.errors import UserError


class BccUnavailable(UserError, RuntimeError):
    """BCC cannot be imported; the message says how to install it."""


def import_bcc() -> types.ModuleType:
    try:
        import bcc
    except ImportError:
        raise BccUnavailable(
            "BCC is not importable: run `bash harness/bootstrap.sh` (installs python3-bpfcc and a venv with system site packages)"
        ) from None
    return bcc


def bcc_tables(module: int) -> dict[str, int]:
    """A compiled BCC module's maps: name -> fd (-1 for a table with no map of its own)."""
    lib = libbcc()
    return {
        lib.bpf_table_name(module, index).decode(): lib.bpf_table_fd_id(module, index)
        for index in range(lib.bpf_num_tables(module))
    }


@functools.cache
def libbcc() -> ctypes.CDLL:
    """libbcc with the table functions declared: what a BCC module holds (its maps, their sizes and fds),
    read without BCC's Python table objects."""
    lib = ctypes.CDLL("libbcc.so.0", use_errno=True)
    for function, restype, argtypes in (
        ("bpf_num_tables", ctypes.c_size_t, [ctypes.c_void_p]),
        ("bpf_table_name", ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_size_t]),
        ("bpf_table_fd_id", ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t]),
        ("bpf_table_type_id", ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t]),
        ("bpf_table_key_size_id", ctypes.c_size_t, [ctypes.c_void_p, ctypes.c_size_t]),
        ("bpf_table_leaf_size_id", ctypes.c_size_t, [ctypes.c_void_p, ctypes.c_size_t]),
        ("bpf_table_max_entries_id", ctypes.c_ulonglong, [ctypes.c_void_p, ctypes.c_size_t]),
        ("bpf_table_flags_id", ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t]),
        ("bpf_lookup_elem", ctypes.c_int, [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]),
        ("bpf_get_next_key", ctypes.c_int, [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]),
    ):
        getattr(lib, function).restype = restype
        getattr(lib, function).argtypes = argtypes
    return lib
