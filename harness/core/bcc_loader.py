"""Finds BCC, which comes from Debian's python3-bpfcc rather than PyPI."""

from __future__ import annotations

import types

from harness.core.errors import UserError


class BccUnavailable(UserError, RuntimeError):
    """BCC cannot be imported; the message says how to install it."""


def import_bcc() -> types.ModuleType:
    try:
        import bcc
    except ImportError:
        raise BccUnavailable(
            "BCC is not importable: run `make setup` (installs python3-bpfcc and a venv with system site packages)"
        ) from None
    return bcc
