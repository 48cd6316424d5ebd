"""Finds BCC, which comes from Debian's python3-bpfcc rather than PyPI."""

from __future__ import annotations

import types

from harness.core.errors import UserError
from harness.core.native import libbcc


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
