"""Log rotation: SIGUSR1 to ``xhdr log`` or ``xhdr decode`` makes the consumer open its output file again.

logrotate (or any script) renames the file and sends SIGUSR1, as it does for nginx; the lines written so far
stay in the renamed file and the next ones go to a new file at the same path. The consumer does the reopen
between lines (consumer.c, ``reopen_output``); the command that started it passes the signal on, as SIGUSR2,
which the consumer takes for a reopen while it ignores SIGUSR1: a USR1 sent to every process of the logger
(``systemctl kill``, whose default is all of them) reopens once, where two signals could reopen twice.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from types import FrameType

REOPEN_SIGNAL = signal.SIGUSR1
CONSUMER_REOPEN_SIGNAL = signal.SIGUSR2  # what the consumer reopens on (consumer.c, take_signals)


class ReopenForwarder:
    """Passes SIGUSR1 on, as SIGUSR2, to the consumer it is pointed at (``to``); before there is one, no file is
    open yet and the signal is dropped (its default action would end the command)."""

    def __init__(self) -> None:
        self.pid: int | None = None

    @contextlib.contextmanager
    def to(self, pid: int) -> Iterator[None]:
        """Forwards to ``pid`` for the duration: not after, when the pid may be another process's."""
        self.pid = pid
        try:
            yield
        finally:
            self.pid = None

    def __call__(self, _signum: int, _frame: FrameType | None) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):  # it ended already: nothing left to reopen
            os.kill(self.pid, CONSUMER_REOPEN_SIGNAL)


@contextlib.contextmanager
def forwarding_reopen() -> Iterator[ReopenForwarder]:
    """SIGUSR1 handled by a ReopenForwarder for the duration; the previous handler is restored on the way out."""
    forwarder = ReopenForwarder()
    previous = signal.signal(REOPEN_SIGNAL, forwarder)
    try:
        yield forwarder
    finally:
        signal.signal(REOPEN_SIGNAL, previous)
