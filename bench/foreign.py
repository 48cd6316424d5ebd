"""A build of the extractor loaded in a helper process by the harness of its own tree, for the A/B gate.

The event layout, the maps and the stages of the extractor change between commits, and the current
``Program`` only knows its own. So the gate exports a reference commit's whole tree and loads the extractor
there in a helper process with that tree's ``harness.core.program.Program``, and takes over the file
descriptors it needs over a Unix socket (``harness.core.handover.receive_fds``): the entry program (its
maps stay alive through it), the program array of its stages (the kernel empties a program array when user
space holds no descriptor of it) and the ring buffer, drained here through libbpf's ring_buffer API. Every build then runs in this process, paired
round by round. The working tree's builds (with extra ``-D`` flags, or a stored source) are loaded the same
way, so all of a gate's builds compile at once, one helper per core: a BCC compile of the extractor is
about 12 seconds, and a gate loads each build several times.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Self

from bench.kernel_cost import Case, repeat_cap_by_records
from harness.core.handover import HandoverError, receive_fds
from harness.core.native import map_info
from harness.core.ringbuf import RingRecords

# Runs in the helper: the tree first on sys.path, so its harness is the one imported. A source or -D flags
# are passed only when given: an older commit's Program may not take them.
_LOADER = """
import json, pathlib, socket, sys
sys.path.insert(0, sys.argv[1])
try:
    from harness.core.config import ExtractorConfig
    from harness.core.program import Program
except ModuleNotFoundError:  # a commit from before harness/core/ (the flat harness/ layout)
    from harness.config import ExtractorConfig
    from harness.program import Program
source, cflags = json.loads(sys.argv[3])
extra = ({"source": pathlib.Path(source)} if source else {}) | ({"extra_cflags": tuple(cflags)} if cflags else {})
try:
    program = Program(ExtractorConfig(), key=bytes.fromhex(sys.argv[2]), **extra)
except Exception as error:  # its reason is the last line the gate reports: no traceback before it
    sys.exit(str(error))
channel = socket.socket(fileno=int(sys.argv[4]))
socket.send_fds(channel, [b"fds"], [program.fd, program.bpf[b"events"].map_fd, program.bpf[b"stages"].map_fd])
channel.recv(1)
"""


class ForeignLoadError(RuntimeError):
    """The tree's harness could not load its extractor; the message says why in one line."""


class ForeignProgram:
    """The extractor of ``tree`` (this repository, or a checkout of another commit) with the default
    configuration and ``key``, built from ``source`` (default: the tree's own) with ``cflags``.

    A :class:`bench.kernel_cost.Measured`, as the gate needs (``take_events()`` gives the raw records).
    """

    def __init__(
        self, tree: Path, key: bytes, source: Path | None = None, cflags: tuple[str, ...] = ()
    ) -> None:
        build = json.dumps([str(source) if source else "", list(cflags)])
        try:
            fds = receive_fds([sys.executable, "-c", _LOADER, str(tree), key.hex(), build], 3)
        except HandoverError as error:
            raise ForeignLoadError(f"its own harness could not load its extractor: {error}") from None
        self.fd, self._ring_fd, self._stages_fd = fds
        self._ring: RingRecords | None = None
        try:
            self._ring = RingRecords(self._ring_fd)
        except OSError as error:
            self.close()
            raise ForeignLoadError(f"its ring buffer: {error.strerror}") from error

    name = "extractor"

    def take_events(self) -> list[bytes]:
        """Every record the ring buffer holds now, oldest first; they are removed from the buffer."""
        assert self._ring is not None
        return self._ring.take()

    def repeat_cap(self, frame: bytes, per_run: int) -> int:
        """From its ring's size and the bytes one run writes: its events are the old commit's."""
        return repeat_cap_by_records(self.fd, self.take_events, map_info(self._ring_fd).max_entries, frame)

    def lost(self) -> int:
        return 0  # its counters stay in the helper's maps; every round's drain checks the count instead

    def prepare(self, case: Case) -> None:
        """Nothing: the gate runs the default configuration, which the helper loaded."""

    def close(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        for fd in (self.fd, self._ring_fd, self._stages_fd):
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
