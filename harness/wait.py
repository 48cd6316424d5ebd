"""Poll a condition with a deadline, so tests synchronise on state instead of sleeping."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

T = TypeVar("T")

# Set by the SIGINT handler of the command line. A KeyboardInterrupt raised while Python runs a callback
# (ctypes, weakref finalisers) is printed and swallowed; the flag lets the next poll raise it again.
_interrupted = threading.Event()


def _on_interrupt(_signum: int, _frame: FrameType | None) -> None:
    _interrupted.set()
    raise KeyboardInterrupt


def install_interrupt_handler() -> None:
    """Makes Ctrl-C stick: polls started after it notice an interrupt even if a callback swallowed it."""
    _interrupted.clear()
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # leave an inherited SIG_IGN alone
        signal.signal(signal.SIGINT, _on_interrupt)


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Call ``predicate`` until it returns something truthy and return that value.

    The predicate is always called at least once, and once more at the deadline, so a slow machine
    never fails a condition that became true during the last interval. Exceptions from the
    predicate propagate: a predicate that can tell "never" from "not yet" should raise.
    """
    deadline = time.monotonic() + timeout
    while True:
        if _interrupted.is_set():
            raise KeyboardInterrupt
        result = predicate()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(min(interval, remaining))
