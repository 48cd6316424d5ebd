"""Poll a condition with a deadline, so tests synchronise on state instead of sleeping."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

from harness.core.errors import UserError

T = TypeVar("T")

# Set by the SIGINT and SIGTERM handler of the command line. A KeyboardInterrupt raised while Python runs a
# callback (ctypes, weakref finalisers) is printed and swallowed; the flag lets the next poll raise it again.
_interrupted = threading.Event()
# The process that installed the handler. A child forked by a library inherits the handler and a copy of
# the whole stack (pyroute2 creates each namespace in one, and stops it with SIGTERM): a KeyboardInterrupt
# there would unwind the parent's labs from the child, so the child takes the default action instead.
_handler_pid = 0


class DeadlineExceeded(UserError, TimeoutError):
    """A wait ran past its deadline; the message is one line naming what was awaited."""


def _on_interrupt(signum: int, _frame: FrameType | None) -> None:
    if os.getpid() != _handler_pid:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _interrupted.set()
    raise KeyboardInterrupt


def install_interrupt_handler() -> None:
    """Makes Ctrl-C stick, and SIGTERM end a command as Ctrl-C does.

    Polls started after it notice an interrupt even if a callback swallowed it. SIGTERM's default action
    would end the process on the spot, leaving its labs, servers and workers to the next run's sweep; as a
    KeyboardInterrupt everything unwinds first. An inherited SIG_IGN is left alone.
    """
    global _handler_pid
    _handler_pid = os.getpid()
    _interrupted.clear()
    for number, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
        if signal.getsignal(number) is default:
            signal.signal(number, _on_interrupt)


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
            raise DeadlineExceeded(f"timed out after {timeout}s waiting for {what}")
        time.sleep(min(interval, remaining))
