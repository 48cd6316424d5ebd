"""Fixtures shared by all tests (sections appended by each package's owner)."""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.cli.main import SCRIPT
from harness.core.bcc_loader import BccUnavailable, import_bcc
from harness.core.driver import Driver, TestRunDriver
from harness.core.program import Program
from harness.core.xdp import XdpMode
from netns.lab import Lab

# --- children that a test interrupts -----------------------------------------------------------------

# A shim that sets SIGINT back to its default action and execs the real command (same pid). A shell starts
# background jobs (``pytest ... &``, some CI runners) with SIGINT ignored, that survives exec, and xhdr leaves
# an inherited SIG_IGN alone, as it should: without the shim the child would shrug off the Ctrl-C under test.
UNIGNORE_SIGINT = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"


@pytest.fixture
def interruptible() -> Callable[[list[str]], list[str]]:
    """Turns an argv into one that runs it with SIGINT at its default action, however pytest was started."""
    return lambda argv: [sys.executable, "-c", UNIGNORE_SIGINT, *argv]


# pytester runs the README's plugin example (tests/test_pytest_plugin.py) in a pytest of its own.
pytest_plugins = ["pytester"]


# --- lab (netns/) ----------------------------------------------------------------------------------
@pytest.fixture
def lab(xhdr_lab: Lab) -> Lab:
    """The plugin's lab (netns/pytest_plugin.py) under the short name these tests use."""
    return xhdr_lab


# --- bench suites -----------------------------------------------------------------------------------
@pytest.fixture
def quick_suite(tmp_path: Path) -> Callable[[str], tuple[dict, str]]:
    """``quick_suite(NAME)``: ``xhdr bench --quick --suite NAME`` as users run it, from tmp_path (a module suite
    also writes its file under ./reports/out/bench); fails unless it exits 0, else gives its result document and
    what it printed on stderr."""

    def run(suite: str) -> tuple[dict, str]:
        out = tmp_path / "out"
        done = subprocess.run(
            [str(SCRIPT), "bench", "--quick", "--suite", suite, "--out", str(out)],
            cwd=tmp_path,
            check=False,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
        return json.loads((out / f"{suite}.json").read_text()), done.stderr

    return run


# --- BPF objects built with clang (tests/objects/) ----------------------------------------------------
OBJECTS = Path(__file__).parent / "tests" / "objects"


@pytest.fixture(scope="session")
def clang_object(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``clang_object(NAME, *DEFINES)``: tests/objects/NAME.bpf.c built with clang -target bpf and ``-D`` each of
    DEFINES, once per session; a missing clang fails (set-up installs it with libbpf-dev)."""
    where = tmp_path_factory.mktemp("objects")

    def built(name: str, *defines: str) -> Path:
        out = where / ("-".join([name, *(define.replace("=", "_") for define in defines)]) + ".bpf.o")
        if not out.exists():
            clang = shutil.which("clang")
            assert clang, "clang is missing: run `bash harness/bootstrap.sh` (installs clang and libbpf-dev)"
            source = OBJECTS / f"{name}.bpf.c"
            argv = [
                clang,
                "-O2",
                "-g",
                "-target",
                "bpf",
                "-I/usr/include/x86_64-linux-gnu",
                *(f"-D{define}" for define in defines),
                "-c",
                str(source),
            ]
            subprocess.run([*argv, "-o", str(out)], check=True)
        return out

    return built


# --- kernel (harness/) -----------------------------------------------------------------------------
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def kernel_unavailable() -> str | None:
    """Why kernel tests cannot run here, or None. Only a truly missing root or BCC counts."""
    if os.geteuid() != 0:
        return "needs root to load BPF programs and build namespaces"
    try:
        import_bcc()
    except BccUnavailable as error:
        return str(error)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = kernel_unavailable()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("kernel") or item.get_closest_marker("lab"):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Under CI=true a skipped test is a failure: CI has root and BCC, so a skip means a broken set-up."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {report.longrepr}"


@pytest.fixture(scope="session")
def program() -> Iterator[Program]:
    """The extractor with the default configuration, loaded once for the session."""
    with Program() as loaded:
        yield loaded


@pytest.fixture(scope="session")
def session_labs() -> Iterator[dict[XdpMode, Lab]]:
    """One lab per XDP mode for the whole session; each test's frames are told apart by counters."""
    with Lab() as native_lab, Lab() as generic_lab:
        yield {XdpMode.NATIVE: native_lab, XdpMode.GENERIC: generic_lab}


class DriverPool:
    """Builds each driver once per session: a lab driver attaches the program when first asked for."""

    def __init__(self, program: Program, request: pytest.FixtureRequest) -> None:
        self.program = program
        self.request = request
        self.built: dict[str, Driver] = {}

    def get(self, name: str) -> Driver:
        if name not in self.built:
            self.built[name] = self._build(name)
        return self.built[name]

    def _build(self, name: str) -> Driver:
        if name == "test-run":
            return TestRunDriver(self.program)
        from netns.driver import LabDriver

        mode = XdpMode(name.removeprefix("lab-"))
        return LabDriver(self.program, self.request.getfixturevalue("session_labs")[mode], mode)


@pytest.fixture(scope="session")
def driver_pool(program: Program, request: pytest.FixtureRequest) -> DriverPool:
    return DriverPool(program, request)


@pytest.fixture(params=["test-run", "lab-native", "lab-generic"])
def driver(request: pytest.FixtureRequest, driver_pool: DriverPool) -> Driver:
    """Each driver in turn, sharing the session's program (one attachment per lab, made once)."""
    return driver_pool.get(request.param)


# --- leak check (tests/test_cleanup.py) ------------------------------------------------------------
from pyroute2 import IPRoute
from pyroute2 import netns as pr_netns

from harness.core.ownership import NAME_PREFIX


def _xdp_in_root_namespace() -> dict[str, str]:
    """Interface name -> XDP attach mode ('xdp', 'xdpgeneric', ...) for every root-namespace link that has one."""
    attached = {}
    with IPRoute() as ipr:
        for link in ipr.get_links():
            xdp = link.get_attr("IFLA_XDP")
            mode = xdp.get_attr("IFLA_XDP_ATTACHED") if xdp else None
            if mode:
                attached[link.get_attr("IFLA_IFNAME")] = str(mode)
    return attached


@pytest.fixture(scope="session", autouse=True)
def nothing_leaks() -> Iterator[None]:
    """Fails the run if any test left a namespace of this process or an XDP program in the root namespace.

    Autouse and session-scoped, so it is set up before and torn down after every other fixture (the
    session's labs included): what remains then leaked, whichever test made it. Only this process's
    namespaces (``xhdr-<pid>-``) are checked, so parallel runs and xdist workers never blame each other,
    and only attachments made during the session, so a host's own XDP programs are not reported.
    """
    attached_before = _xdp_in_root_namespace()
    yield
    own = f"{NAME_PREFIX}-{os.getpid()}-"
    namespaces = sorted(name for name in pr_netns.listnetns() if name.startswith(own))
    attached = {name: mode for name, mode in _xdp_in_root_namespace().items() if name not in attached_before}
    leaks = [f"namespace {name}" for name in namespaces]
    leaks += [f"XDP ({mode}) on {name} in the root namespace" for name, mode in sorted(attached.items())]
    if leaks:
        pytest.fail(f"the test session leaked: {', '.join(leaks)}", pytrace=False)
