"""A build of another commit, loaded by that commit's own harness, for the A/B gate.

The event layout, the maps and the stages of the extractor change between commits, and the current
``Program`` only knows its own. So the gate exports the reference commit's whole tree, loads the extractor
there in a helper process with that tree's ``harness.core.program.Program``, and takes over the two file
descriptors it needs over a Unix socket: the entry program (its maps stay alive through it), the program
array of its stages (the kernel empties a program array when user space holds no descriptor of it) and the
ring buffer, drained here through libbpf's ring_buffer API. Both builds then run in
this process, paired round by round, exactly as two current builds would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Self

from bench.kernel_cost import Case, repeat_cap_by_records
from harness.core.native import map_info
from harness.core.ringbuf import RingRecords

# Runs in the helper: the reference tree first on sys.path, so its harness is the one imported.
_LOADER = """
import socket, sys
sys.path.insert(0, sys.argv[1])
try:
    from harness.core.config import ExtractorConfig
    from harness.core.program import Program
except ModuleNotFoundError:  # a commit from before harness/core/ (the flat harness/ layout)
    from harness.config import ExtractorConfig
    from harness.program import Program
program = Program(ExtractorConfig(), key=bytes.fromhex(sys.argv[2]))
channel = socket.socket(fileno=int(sys.argv[3]))
socket.send_fds(channel, [b"fds"], [program.fd, program.bpf[b"events"].map_fd, program.bpf[b"stages"].map_fd])
channel.recv(1)
"""


class ForeignLoadError(RuntimeError):
    """The reference commit's harness could not load its extractor; the message says why in one line."""


class ForeignProgram:
    """The extractor of ``tree`` (a checkout of another commit) with the default configuration and ``key``.

    A :class:`bench.kernel_cost.Measured`, as the gate needs (``take_events()`` gives the raw records).
    """

    def __init__(self, tree: Path, key: bytes) -> None:
        parent, child = socket.socketpair()
        with parent, child:
            helper = subprocess.Popen(
                [sys.executable, "-c", _LOADER, str(tree), key.hex(), str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                _, fds, _, _ = socket.recv_fds(parent, 16, 3)
                parent.send(b"x")
            finally:
                _, error = helper.communicate(timeout=300)
        if len(fds) != 3:
            last = (error or "").strip().splitlines()[-1:] or ["no message"]
            raise ForeignLoadError(f"the reference's own harness could not load its extractor: {last[0]}")
        self.fd, self._ring_fd, self._stages_fd = fds
        self._ring: RingRecords | None = None
        try:
            self._ring = RingRecords(self._ring_fd)
        except OSError as error:
            self.close()
            raise ForeignLoadError(f"the reference's ring buffer: {error.strerror}") from error

    name = "reference"

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
