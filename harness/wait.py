"""Poll a condition with a deadline, so tests synchronise on state instead of sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Call ``predicate`` until it returns something truthy and return that value.

    The predicate is always called at least once, and once more at the deadline, so a slow machine
    never fails a condition that became true during the last interval. Exceptions from the
    predicate propagate: a predicate that can tell "never" from "not yet" should raise.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(min(interval, remaining))
