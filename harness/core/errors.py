"""The base class of every error that ``xhdr`` reports as one line, without a traceback.

Each package raises its own subclasses (harness's ConfigError, netns's lab and client errors, ...);
harness/cli/main.py catches this one class, so it imports neither the heavy modules that raise them nor
netns, bench, fuzz or reports, and a subcommand's error cannot escape it by being defined elsewhere.
"""

from __future__ import annotations


class UserError(Exception):
    """A failure whose message is one line naming the thing at fault and what to do about it.

    Subclasses keep a built-in base too (ValueError, RuntimeError, TimeoutError), so callers that catch
    those go on working.
    """


class CommandError(UserError, RuntimeError):
    """A subcommand's own one-line failure."""
