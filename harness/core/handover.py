"""The extractor loaded by a short-lived helper process that hands its file descriptors over.

BCC compiles in the process that loads, and LLVM stays mapped there: about 250 MB resident after the compile.
A process that keeps running with the loaded program (``xhdr log``'s control plane, on a gateway) has a helper
load it instead and receive the descriptors it needs over a Unix socket (SCM_RIGHTS): the entry program (its
maps stay alive through it), the responses program (R24), the program array of the stages (the kernel empties
a program array once user space holds no descriptor of it), the ring buffer, the counters, the latencies by
endpoint (R26), and the request rules with their hit counters (R27), which it changes at runtime, and what
they count by header (R30). The helper exits once they arrived, and it dies with its parent (PR_SET_PDEATHSIG), so a logger
killed during the compile leaves no compiler running.
The A/B gate (bench/foreign.py) receives other commits' builds through :func:`receive_fds` too.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import subprocess
import sys
import tempfile
from typing import BinaryIO, Self

from harness.core.aggregates import Aggregate, read_aggregates
from harness.core.config import ExtractorConfig
from harness.core.counters import Counter, Counts, counts_of
from harness.core.errors import UserError
from harness.core.percpu import PerCpuTotals
from harness.core.rules import MAX_RULES
from harness.core.rules_map import load_rules
from harness.core.tc import extractor_attached
from harness.core.workers import die_with_parent, pids_running
from harness.core.xdp import XdpMode

# What the helper sends, in this order: the entry program, the responses program, then maps by name.
HANDED_OVER = (
    "entry",
    "responses",
    "stages",
    "events",
    "counters",
    "latencies",
    "rules",
    "rule_hits",
    "aggregates",
)
LOAD_TIMEOUT_S = 300.0  # a BCC compile takes 5-20 s; a loaded machine gets room


class HandoverError(UserError, RuntimeError):
    """The helper sent no descriptors; the message is its last line on stderr."""


def receive_fds(argv: list[str], count: int, request: bytes = b"") -> list[int]:
    """Runs the helper ``argv`` with the descriptor of its end of a socket pair as one more argument, sends
    it ``request`` there if any (read with :func:`request_of`), and returns the ``count`` descriptors it sends back,
    after telling it they arrived."""
    parent, child = socket.socketpair()
    # Its stderr goes to a file, not a pipe: a helper whose load fails may write more than a pipe holds (BCC
    # prints the verifier's whole log, megabytes for the extractor) and would block there, never exiting,
    # while this process waits on the socket.
    with parent, tempfile.TemporaryFile() as errors:
        with child:
            helper = subprocess.Popen(
                [*argv, str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
        # Only the helper holds its end now: should it die before sending, the receive sees the end of file.
        parent.settimeout(LOAD_TIMEOUT_S)
        try:
            if request:
                with contextlib.suppress(OSError):  # a helper that died at once: its stderr says why
                    parent.sendall(len(request).to_bytes(8, "little") + request)
            _, fds, _, _ = socket.recv_fds(parent, 16, count)
            if len(fds) == count:
                parent.send(b"x")
        except BaseException as error:  # Ctrl-C, or no answer in time: the helper goes at once
            helper.kill()
            helper.wait()
            if isinstance(error, TimeoutError):
                raise HandoverError(f"the loading helper sent nothing in {LOAD_TIMEOUT_S:.0f} s") from None
            raise
        helper.wait()  # it exits once it has the answer, or has already
        if len(fds) != count:
            for fd in fds:
                os.close(fd)
            raise HandoverError(_last_line(errors) or f"the loading helper exited {helper.returncode}")
    return fds


def _last_line(output: BinaryIO) -> str:
    """The last non-empty line of a file a helper wrote: a failed load's traceback ends with its reason."""
    size = output.seek(0, os.SEEK_END)
    output.seek(max(0, size - 4096))
    lines = output.read().decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else ""


def request_of(channel: socket.socket) -> bytes:
    """The helper's side: what the parent sent with :func:`receive_fds`."""
    size = int.from_bytes(_exactly(channel, 8), "little")
    return _exactly(channel, size)


def _exactly(channel: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = channel.recv(size - len(data))
        if not chunk:
            raise EOFError("the parent went away before its request arrived")
        data += chunk
    return data


def send_fds(channel: socket.socket, fds: list[int]) -> None:
    """The helper's side: sends ``fds`` and waits until the parent has them (or is gone)."""
    socket.send_fds(channel, [b"fds"], fds)
    channel.recv(1)


def helpers_running() -> list[int]:
    """Pids of the loading helpers alive now (any process's): none should outlive its load."""
    return pids_running(lambda argv: __name__.encode() in argv[1:3])


class HandedOver:
    """The extractor of ``config``, loaded by a helper process: what ``xhdr log`` needs of it, and nothing of
    BCC in this process. Use as a context manager, or call close()."""

    def __init__(
        self, config: ExtractorConfig, *, key: bytes | None = None, extra_cflags: tuple[str, ...] = ()
    ) -> None:
        self.config = config
        request = pickle.dumps((config, key, extra_cflags))
        fds = receive_fds([sys.executable, "-m", __name__], len(HANDED_OVER), request)
        self.fd, self._responses_fd, self._stages_fd, self.ring_fd, self._counters_fd, self.latencies_fd = (
            fds[:6]
        )
        self._rules_fd, self._rule_hits_fd, self._aggregates_fd = fds[6:]
        self._fds = fds
        try:
            self._totals = PerCpuTotals(self._counters_fd, "counters", len(Counter))
            self._hits = PerCpuTotals(self._rule_hits_fd, "rule_hits", MAX_RULES)
        except BaseException:
            self.close()
            raise

    def counters(self) -> Counts:
        """Counters summed over CPUs, as :meth:`harness.core.program.Program.counters`."""
        return counts_of(self._totals.read())

    def load_rules(self, config: ExtractorConfig) -> None:
        """R27: ``config``'s rules replace the running ones, their hit counters from zero; the rest of
        ``config`` must be what the program was loaded with."""
        load_rules(self._rules_fd, self._hits, config)
        self.config = config

    def aggregates(self) -> list[Aggregate]:
        """R30: what the rules that count by headers counted, the most counted first."""
        return read_aggregates(self._aggregates_fd, self.config)

    def rule_hits(self) -> dict[str, int]:
        """R27: the requests each rule matched since it was loaded, by name, in the rules' order."""
        hits = self._hits.read()
        return {rule.name: hits[index] for index, rule in enumerate(self.config.rules)}

    def attached(
        self, ifname: str, mode: XdpMode, netns: str | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """Attaches for the block, as :meth:`harness.core.program.Program.attached`."""
        responses = self._responses_fd if self.config.responses else None
        return extractor_attached(self.fd, responses, ifname, mode, netns)

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _helper(channel_fd: int) -> int:
    """Loads the extractor the parent's pickled request describes and sends its descriptors."""
    from harness.core.program import RESPONSES, Program  # BCC: only here, in the helper

    die_with_parent(os.getppid())
    with socket.socket(fileno=channel_fd) as channel:
        config, key, extra_cflags = pickle.loads(request_of(channel))
        try:
            program = Program(config, key=key, extra_cflags=extra_cflags)
        except UserError as error:  # its first line is the whole message; details may follow
            print(str(error).splitlines()[0], file=sys.stderr)
            return 1
        with program:
            bpf = program.bpf
            responses = program.functions[RESPONSES].fd
            send_fds(
                channel, [program.fd, responses, *(bpf[name.encode()].map_fd for name in HANDED_OVER[2:])]
            )
    return 0


if __name__ == "__main__":
    sys.exit(_helper(int(sys.argv[1])))
