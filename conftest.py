"""Fixtures shared by all tests (sections appended by each package's owner)."""

from collections.abc import Iterator

import pytest

from netns.lab import Lab


# --- lab (netns/) ----------------------------------------------------------------------------------
@pytest.fixture
def lab() -> Iterator[Lab]:
    """A fresh client/gateway namespace pair joined by a veth pair; torn down after the test."""
    with Lab() as built:
        yield built
