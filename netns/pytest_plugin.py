"""xhdr's pytest plugin for real links (pytest11 entry point ``xhdr-lab``): a lab and the XDP modes.

- ``xhdr_lab``: a client and a gateway network namespace joined by a veth pair, with fixed addresses, torn
  down after the test (namespaces, links, attached programs, processes it started). ``attach(fd, mode)``
  puts a program on the gateway's end; ``send(frames)`` writes raw frames from the client's end (frames of
  ``xhdr_frame`` are addressed to the gateway); ``run(host, argv)`` runs a real client or server in a
  namespace.
- ``xhdr_mode``: each XDP attach mode in turn (native, generic), so a test that takes it runs in both.

A lab needs root; without it the fixture skips the test and says so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from harness.core.xdp import XdpMode
from netns.lab import Lab


@pytest.fixture
def xhdr_lab() -> Iterator[Lab]:
    """A fresh client/gateway namespace pair joined by a veth pair; torn down after the test."""
    if os.geteuid() != 0:
        pytest.skip("xhdr_lab needs root to build network namespaces")
    with Lab() as built:
        yield built


@pytest.fixture(params=list(XdpMode), ids=[mode.value for mode in XdpMode])
def xhdr_mode(request: pytest.FixtureRequest) -> XdpMode:
    """Native, then generic XDP: the attach modes a program must work in."""
    return request.param
