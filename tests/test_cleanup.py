"""Nothing of a lab outlives it: not after an exception, not after Ctrl-C, and after kill -9 the next run sweeps it.

A leaked namespace keeps a veth and maybe an attached XDP program alive, and a leaked attachment makes the
next ``attach_xdp`` fail (it refuses to replace a program). Each way a run can end is tried for real here:
an exception in-process, SIGINT and SIGKILL to a separate Python process that holds a lab with the
extractor attached, and SIGINT or SIGTERM to ``xhdr demo``. Any ``xhdr`` command sweeps what a killed run left, and
``xhdr verify``'s worker processes die with it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute
from pyroute2 import netns as pr_netns

from harness.cli.main import EXIT_ERROR, main
from harness.cli.main import SCRIPT as XHDR
from harness.core.bcc_loader import import_bcc
from harness.core.cost import EMPTY_SOURCE, empty_program_fd
from harness.core.counters import Counter
from harness.core.dispatcher import held_by_dispatcher
from harness.core.driver import feed_opened
from harness.core.ownership import scratch_directory, sweep_stale_directories
from harness.core.program import Program
from harness.core.tc import EGRESS, netlink_egress_attached, sweep_stale_filters
from harness.core.wait import wait_until
from harness.core.workers import pids_running
from harness.core.xdp import XdpMode, attached_mode, attached_prog_id, interface_index, netlink
from harness.oracle.frames import FrameSpec, build
from harness.verify.verifier import prog_info
from netns.driver import LabDriver
from netns.lab import Lab, last_line
from netns.sweep import sweep_stale

pytestmark = [pytest.mark.kernel, pytest.mark.lab]

ROOT = Path(__file__).resolve().parent.parent
# Compiling the extractor takes about 4 s; the rest of a lab's setup well under one.
READY_DEADLINE_S = 60.0
EXIT_DEADLINE_S = 20.0
EXIT_INTERRUPTED = 130  # harness.cli.main's exit code after Ctrl-C

REQUEST = FrameSpec(payload=b"GET /again HTTP/1.1\r\nHost: a.example\r\n\r\n")

# A process that holds a bare lab (nothing compiled, so it is up in well under a second) until killed.
HOLDING_LAB = """
from netns.lab import Lab
lab = Lab().__enter__()
print(lab.prefix, flush=True)
input()
"""

# A process that holds a lab with the extractor attached and a recorder running, until a signal ends it.
HOLDING_RUN = """
import json, signal
from harness.core.program import Program
from harness.core.xdp import XdpMode
from netns.driver import LabDriver
from netns.lab import Lab
from netns.servers import RecordingServer

with Program() as program, Lab() as lab:
    LabDriver(program, lab, XdpMode.NATIVE)
    server = RecordingServer(lab)
    facts = {"prefix": lab.prefix, "gateway": [lab.gateway.netns, lab.gateway.ifname],
             "recorder": server.proc.pid, "workdir": str(lab.workdir)}
    print(json.dumps(facts), flush=True)
    print("ready", flush=True)
    signal.pause()
"""


def lab_namespaces(prefix: str) -> list[str]:
    return sorted(name for name in pr_netns.listnetns() if name.startswith(prefix))


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children(pid: int) -> dict[int, str]:
    """The running children of ``pid`` and their command lines (from /proc: the parent pid, field 4)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended while the scan ran
        if fields[1] == str(pid) and fields[0] != "Z":
            found[int(stat.parent.name)] = command
    return found


def root_links(*names: str) -> list[str]:
    """Which of ``names`` exist as interfaces in the root namespace (a lab's veth ends never should)."""
    with IPRoute() as ipr:
        return [name for name in names if ipr.link_lookup(ifname=name)]


class Spawned:
    """A child process whose stdout and stderr go to files, so polling them never blocks on a pipe."""

    def __init__(self, argv: list[str], workdir: Path) -> None:
        """``argv`` as the ``interruptible`` fixture gives it, so the child takes the Ctrl-C under test."""
        self.out = workdir / "stdout"
        self.err = workdir / "stderr"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # lines reach the file as they are printed
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=ROOT, env=env)

    def wait_for_line(self, text: str, timeout: float = READY_DEADLINE_S) -> list[str]:
        """All stdout lines once one contains ``text``; a child that exits first fails with its last stderr line."""

        def seen() -> list[str] | None:
            lines = self.out.read_text(errors="replace").splitlines()
            if any(text in line for line in lines):
                return lines
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"exited {self.proc.returncode} before printing {text!r}: {last_line(self.err.read_bytes())}"
                )
            return None

        return wait_until(seen, timeout, f"pid {self.proc.pid} to print {text!r}")

    def stderr_tail(self, lines: int = 6) -> str:
        """The last non-blank stderr lines joined by ' | ': enough to tell a swallowed Ctrl-C from a crash."""
        text = [line.strip() for line in self.err.read_text(errors="replace").splitlines() if line.strip()]
        return " | ".join(text[-lines:]) or "(nothing)"

    def stop(self, sig: signal.Signals) -> int:
        """Send ``sig`` and return the exit code once the process has exited (a deadline, not a sleep)."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=EXIT_DEADLINE_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"pid {self.proc.pid} still running {EXIT_DEADLINE_S}s after {sig.name}"
            ) from None


@pytest.fixture
def spawn(
    tmp_path: Path, interruptible: Callable[[list[str]], list[str]]
) -> Iterator[Callable[[list[str]], Spawned]]:
    """Starts children; any still running at the end is killed and its leftovers swept, so a failure leaks nothing."""
    children: list[Spawned] = []

    def start(argv: list[str]) -> Spawned:
        workdir = tmp_path / str(len(children))
        workdir.mkdir()
        children.append(Spawned(interruptible(argv), workdir))
        return children[-1]

    yield start
    for child in children:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait()
    if children:
        sweep_stale()


def holding_run(spawn: Callable[[list[str]], Spawned]) -> tuple[Spawned, dict[str, Any]]:
    """Starts HOLDING_RUN, waits until it is ready, and checks its lab is really up with XDP attached."""
    child = spawn([sys.executable, "-c", HOLDING_RUN])
    lines = child.wait_for_line("ready")
    facts = json.loads(lines[0])
    assert facts["prefix"].startswith(f"xhdr-{child.proc.pid}-")
    assert lab_namespaces(facts["prefix"]) == [f"{facts['prefix']}-cli", f"{facts['prefix']}-gw"]
    netns, ifname = facts["gateway"]
    assert attached_mode(ifname, netns) == "xdp"
    assert running(facts["recorder"])
    return child, facts


@pytest.mark.parametrize("mode", list(XdpMode), ids=[mode.value for mode in XdpMode])
def test_exception_inside_a_lab_with_the_extractor_attached_leaves_nothing(
    program: Program, mode: XdpMode
) -> None:
    with pytest.raises(RuntimeError, match="failed inside the lab"), Lab() as lab:
        LabDriver(program, lab, mode)
        assert attached_mode(lab.gateway.ifname, lab.gateway.netns) is not None
        raise RuntimeError("failed inside the lab")
    assert lab_namespaces(lab.prefix) == []
    assert root_links(lab.client.ifname, lab.gateway.ifname) == []
    assert lab.workdir is not None and not lab.workdir.exists()

    # Nothing stale: the same program attaches to a new lab (attach refuses to replace) and works there.
    with Lab() as again:
        driver = LabDriver(program, again, mode)
        [outcome] = feed_opened(driver, [build(REQUEST)])
        assert outcome.counters[Counter.HTTP_REQUEST] == 1
        assert [event.target for event in outcome.events] == [b"/again"]
    assert lab_namespaces(again.prefix) == []


def held_programs(netns: str) -> dict[int, str]:
    """The id of each XDP program attached to an interface of ``netns``, with the mode it is attached in."""
    with netlink(netns) as ipr:
        names = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
    return {prog: attached_mode(name, netns) for name in names if (prog := attached_prog_id(name, netns))}


def test_programs_held_by_the_dispatcher_are_attached_for_the_block_only() -> None:
    """Three programs (an odd count: one veth end stays free) attached in generic mode to a namespace of this
    process, which is gone after the block, also when the block fails."""
    with contextlib.ExitStack() as stack:
        fds = [stack.enter_context(empty_program_fd()) for _ in range(3)]
        ids = {prog_info(fd).id for fd in fds}
        with pytest.raises(RuntimeError, match="failed while held"), held_by_dispatcher(fds) as netns:
            assert netns.startswith(f"xhdr-{os.getpid()}-") and netns in pr_netns.listnetns()
            assert held_programs(netns) == dict.fromkeys(ids, XdpMode.GENERIC.reported)
            raise RuntimeError("failed while held")
        assert netns not in pr_netns.listnetns()


# A user's test of a repeated test run (run by a pytest of its own): its program is held from the first
# repeated run on, in one namespace of this process, and a single run holds nothing.
REPEATED_TEST_RUN = """
import os
from pyroute2 import netns
from harness.core.xdp import attached_prog_id, netlink
from harness.verify.verifier import prog_info

def held_here():
    return [n for n in netns.listnetns() if n.startswith(f"xhdr-{os.getpid()}-") and "-held" in n]

def test_repeated(xhdr_load, xhdr_frame, xhdr_test_run):
    program = xhdr_load(EMPTY_SOURCE)
    frame = xhdr_frame(b"GET / HTTP/1.1\\r\\n\\r\\n")
    assert xhdr_test_run(program, frame).verdict == 2 and held_here() == []
    for _ in range(2):
        assert xhdr_test_run(program, frame, repeat=20).verdict == 2
    [held] = held_here()
    with netlink(held) as ipr:
        names = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
    assert prog_info(program.fd).id in {attached_prog_id(name, held) for name in names}
"""


def test_a_repeated_test_run_holds_its_program_until_the_test_ends(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=REPEATED_TEST_RUN.replace("EMPTY_SOURCE", repr(str(EMPTY_SOURCE))))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)
    assert not [name for name in pr_netns.listnetns() if name.startswith(f"xhdr-{os.getpid()}-")]


# A process that holds the empty program in the dispatcher until killed, and says where.
HOLDING_DISPATCHER = """
import signal
from harness.core.cost import empty_program_fd
from harness.core.dispatcher import held_by_dispatcher
with empty_program_fd() as fd, held_by_dispatcher([fd]) as netns:
    print(netns, flush=True)
    signal.pause()
"""


def test_sigkill_leaves_a_held_program_that_sweep_stale_removes(
    spawn: Callable[[list[str]], Spawned],
) -> None:
    child = spawn([sys.executable, "-c", HOLDING_DISPATCHER])
    [netns] = child.wait_for_line("-held")
    assert netns.startswith(f"xhdr-{child.proc.pid}-") and len(held_programs(netns)) == 1
    assert child.stop(signal.SIGKILL) == -signal.SIGKILL
    assert netns in pr_netns.listnetns()  # no cleanup ran
    assert netns in sweep_stale()
    assert netns not in pr_netns.listnetns()


def test_sigint_to_a_process_holding_a_lab_removes_everything(spawn: Callable[[list[str]], Spawned]) -> None:
    child, facts = holding_run(spawn)
    code = child.stop(signal.SIGINT)
    # An uncaught KeyboardInterrupt ends Python by re-raising SIGINT: the unwinding ran, then the signal.
    assert code == -signal.SIGINT, f"exit {code}: {child.stderr_tail()}"
    assert "KeyboardInterrupt" in child.err.read_text()
    assert lab_namespaces(facts["prefix"]) == []
    assert not running(facts["recorder"])
    assert not Path(facts["workdir"]).exists()


def test_sigkill_leaves_a_lab_that_sweep_stale_removes_and_live_labs_survive(
    spawn: Callable[[list[str]], Spawned],
) -> None:
    child, facts = holding_run(spawn)
    prefix = facts["prefix"]
    names = [f"{prefix}-cli", f"{prefix}-gw"]
    assert child.stop(signal.SIGKILL) == -signal.SIGKILL
    # No cleanup ran: the namespaces, the attachment and the orphaned recorder are all still there.
    assert lab_namespaces(prefix) == names
    netns, ifname = facts["gateway"]
    assert attached_mode(ifname, netns) == "xdp"
    assert running(facts["recorder"])

    with Lab(sweep=False) as live:  # a lab of a live pid (this one): the sweep must not touch it
        removed = sweep_stale()
        assert set(names) <= set(removed)
        assert not set(lab_namespaces(live.prefix)) & set(removed)
        assert lab_namespaces(prefix) == []
        assert lab_namespaces(live.prefix) == [live.client.netns, live.gateway.netns]
    wait_until(lambda: not running(facts["recorder"]), 5.0, "the orphaned recorder to die")
    assert Path(facts["workdir"]).name in sweep_stale_directories()
    assert not Path(facts["workdir"]).exists()


# How long the freed process below would sleep: a day less a second, so no other process matches it.
FREED_SLEEP_S = 86_399


def test_a_lab_kills_what_its_stopped_processes_left_running_in_its_namespaces() -> None:
    """A process that a spawned one started in a session of its own outlives the stop of the spawned one
    (nginx's workers when their master is killed are the case met). The lab kills it with its namespace;
    it would otherwise run on in a namespace that no longer has a name."""

    def sleeping() -> list[int]:
        return pids_running(lambda argv: argv[:2] == [b"sleep", str(FREED_SLEEP_S).encode()])

    with Lab() as lab:
        lab.spawn(lab.gateway, ["sh", "-c", f"setsid sleep {FREED_SLEEP_S} & exec sleep {FREED_SLEEP_S}"])
        wait_until(lambda: len(sleeping()) == 2, 10.0, "the spawned sleep and the one it freed")
    assert lab_namespaces(lab.prefix) == []
    wait_until(lambda: not sleeping(), 5.0, "the freed sleep to be killed with the lab's namespace")


def first_line_of_killed_run(source: str) -> str:
    """Runs ``source`` in a new Python process, reads the first line it prints, then kills it with SIGKILL."""
    holder = subprocess.Popen(
        [sys.executable, "-c", source], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        return holder.stdout.readline().strip()  # type: ignore[union-attr]
    finally:
        holder.kill()
        holder.wait()


HOLDING_SCRATCH = """
import sys
from harness.core.ownership import scratch_directory
directory = scratch_directory("gate")
print(directory.name, flush=True)
sys.stdin.read()  # keep running until the test kills this process
"""


def test_sigkill_leaves_a_scratch_directory_that_the_sweep_removes_and_live_ones_survive() -> None:
    """The A/B gate's source trees, the guests' images, the benchmarks' scratch files: gone after a kill -9."""
    killed = Path(first_line_of_killed_run(HOLDING_SCRATCH))
    assert killed.is_dir(), "SIGKILL runs no clean-up: the directory should still be there"
    with scratch_directory("live") as live:
        removed = sweep_stale_directories()
        assert killed.name in removed
        assert not killed.exists()
        assert Path(live).is_dir()
        assert Path(live).name not in removed


# A process that puts an empty TC program on a lab's egress by netlink, the responses program's path on kernels
# without tcx links (before 6.6), and holds it until killed. Only where it is attached matters here.
HOLDING_FILTER = """
import sys
from harness.core.bcc_loader import import_bcc
from harness.core.tc import netlink_egress_attached
bcc = import_bcc()
fd = bcc.BPF(text=EMPTY_TC).load_func(b"tc_pass", bcc.BPF.SCHED_CLS).fd
with netlink_egress_attached(fd, sys.argv[1], sys.argv[2]):
    print("attached", flush=True)
    sys.stdin.read()  # keep running until the test kills this process
"""
EMPTY_TC = b"int tc_pass(struct __sk_buff *skb) { return 0; }"


def egress_filters(lab: Lab) -> list[str]:
    """The names of the bpf filters on the lab gateway end's egress."""
    with netlink(lab.gateway.netns) as ipr:
        index = interface_index(ipr, lab.gateway.ifname, lab.gateway.netns)
        return [
            found.get_attr("TCA_OPTIONS").get_attr("TCA_BPF_NAME")
            for found in ipr.get_filters(index=index, parent=EGRESS)
            if found.get_attr("TCA_OPTIONS")
        ]


def qdisc_kinds(lab: Lab) -> list[str]:
    with netlink(lab.gateway.netns) as ipr:
        index = interface_index(ipr, lab.gateway.ifname, lab.gateway.netns)
        return [qdisc.get_attr("TCA_KIND") for qdisc in ipr.get_qdiscs(index=index)]


def killed_holder(lab: Lab) -> str:
    """The name of the egress filter a process attached by netlink before it was killed with SIGKILL."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"EMPTY_TC = {EMPTY_TC!r}\n{HOLDING_FILTER}",
            lab.gateway.ifname,
            lab.gateway.netns,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "attached"  # type: ignore[union-attr]
    finally:
        holder.kill()
        holder.wait()
    [killed] = [name for name in egress_filters(lab) if name.startswith(f"xhdr-{holder.pid}-")]
    return killed


def test_a_netlink_egress_filter_goes_with_its_block_or_by_the_sweep_after_a_kill() -> None:
    """Kernels without tcx links get the responses program as a netlink filter, which outlives a killed
    process: the next run's sweeper removes it, and the clsact qdisc that process added once nothing is left
    on it, and leaves a live run's filter and the qdisc under it alone."""
    bcc = import_bcc()
    empty = bcc.BPF(text=EMPTY_TC)
    try:
        fd = empty.load_func(b"tc_pass", bcc.BPF.SCHED_CLS).fd
        with Lab() as lab:
            before = qdisc_kinds(lab)
            assert "clsact" not in before
            with netlink_egress_attached(fd, lab.gateway.ifname, lab.gateway.netns):
                [live] = egress_filters(lab)
                assert live.startswith(f"xhdr-{os.getpid()}-") and "clsact" in qdisc_kinds(lab)
            assert egress_filters(lab) == [] and qdisc_kinds(lab) == before

            killed = killed_holder(lab)
            assert egress_filters(lab) == [killed], "SIGKILL runs no clean-up: the filter stays"
            assert "clsact" in qdisc_kinds(lab), "and so does the clsact qdisc it added"
            assert sweep_stale_filters() == [killed]
            assert egress_filters(lab) == [] and qdisc_kinds(lab) == before

            with netlink_egress_attached(fd, lab.gateway.ifname, lab.gateway.netns):
                killed = killed_holder(lab)
                assert sweep_stale_filters() == [killed]
                [live] = egress_filters(lab)
                assert live.startswith(f"xhdr-{os.getpid()}-") and "clsact" in qdisc_kinds(lab)
            assert egress_filters(lab) == [] and qdisc_kinds(lab) == before
    finally:
        empty.cleanup()


@pytest.mark.skipif(importlib.util.find_spec("netns.demo") is None, reason="netns/demo.py is not written yet")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_xhdr_demo_exits_130_on_sigint_or_sigterm_and_leaves_no_namespace(
    spawn: Callable[[list[str]], Spawned], tmp_path: Path, sig: signal.Signals
) -> None:
    child = spawn([str(XHDR), "demo", "--out", str(tmp_path / "demo-out")])  # not the repo's reports/out
    child.wait_for_line("lab up")
    prefix = f"xhdr-{child.proc.pid}-"
    assert lab_namespaces(prefix), "the demo says its lab is up but no namespace carries its pid"
    code = child.stop(sig)
    assert code == EXIT_INTERRUPTED, f"exit {code} after one {sig.name}; stderr ends: {child.stderr_tail()}"
    assert lab_namespaces(prefix) == []


def test_any_command_sweeps_what_a_killed_run_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not only the next lab: any command, even one that then fails on its input, sweeps first and says so."""
    prefix = first_line_of_killed_run(HOLDING_LAB)
    names = [f"{prefix}-cli", f"{prefix}-gw"]
    assert lab_namespaces(prefix) == names, f"the killed run should have left {names}"

    code = main(["report", str(tmp_path / "absent.json")])
    said = capsys.readouterr().err.splitlines()
    assert code == EXIT_ERROR
    assert said[0].startswith("xhdr report: removed what killed xhdr runs left: "), said
    assert set(names) <= set(said[0].split(": ", 2)[2].split(", ")), said[0]
    assert said[1].startswith("xhdr report: error: result file"), said
    assert lab_namespaces(prefix) == []


def test_sigkilled_verify_leaves_no_worker_and_no_resource_tracker(
    spawn: Callable[[list[str]], Spawned],
) -> None:
    """Its spawned workers (a few hundred MB each) and multiprocessing's resource tracker go with it."""
    child = spawn([str(XHDR), "verify", "--jobs", "2"])  # the default matrix: enough work for both workers
    pid = child.proc.pid

    def working() -> dict[int, str] | None:
        """The workers and the tracker, once both workers build a variant (past their start-up)."""
        if child.proc.poll() is not None:
            raise AssertionError(f"xhdr verify exited {child.proc.returncode} early: {child.stderr_tail()}")
        found = {p: c for p, c in children(pid).items() if "multiprocessing" in c}
        workers = [p for p, c in found.items() if "spawn_main" in c]
        building = [p for p in workers if "libbcc" in Path(f"/proc/{p}/maps").read_text()]
        has_tracker = any("resource_tracker" in c for c in found.values())
        return found if len(building) == 2 and has_tracker else None

    started = wait_until(working, READY_DEADLINE_S, f"xhdr verify (pid {pid}) to start its workers")
    assert child.stop(signal.SIGKILL) == -signal.SIGKILL
    try:
        wait_until(
            lambda: not any(running(p) for p in started), EXIT_DEADLINE_S, "the workers and tracker to end"
        )
    finally:
        for leftover in (p for p in started if running(p)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover, signal.SIGKILL)  # a failing run must not leave them either
