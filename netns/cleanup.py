"""A stack of undo actions, unwound in reverse order and past failures (like the selftests' defer()).

Every resource is pushed right after it is created, so a failure half way through building a lab
undoes exactly what exists. Unwinding never stops at the first error: a lab that cannot delete its
veth must still delete its namespaces, and all the errors are reported together at the end.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.core.errors import UserError


class TeardownError(UserError, RuntimeError):
    """One or more cleanup actions failed; the message lists each on one line, separated by '; '."""


class CleanupStack:
    """Undo actions with a description each, run last-in first-out."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], object]]] = []

    def push(self, action: Callable[[], object], what: str | None = None) -> None:
        """Register ``action`` to run at unwind; ``what`` names it in error messages."""
        self._actions.append((what or getattr(action, "__qualname__", repr(action)), action))

    def __len__(self) -> int:
        return len(self._actions)

    def unwind(self) -> list[tuple[str, BaseException]]:
        """Run every action, newest first, and return the failures instead of stopping at one.

        A KeyboardInterrupt during an action is collected like any error, so a second Ctrl-C while a
        lab tears down does not leave namespaces behind; the caller decides whether to re-raise it.
        """
        failures: list[tuple[str, BaseException]] = []
        while self._actions:
            what, action = self._actions.pop()
            try:
                action()
            except BaseException as exc:  # noqa: BLE001 - teardown must go on; reported by the caller
                failures.append((what, exc))
        return failures


def describe(failures: list[tuple[str, BaseException]]) -> str:
    """One line naming every failed action and its error."""
    return "; ".join(f"{what}: {type(exc).__name__}: {exc}" for what, exc in failures)
