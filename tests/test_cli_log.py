"""``xhdr log`` run for real, as a user runs it: a subprocess, real signals, a real interface.

The error cases check the CLI contract (one line on stderr, non-zero exit, nothing attached); the live
cases check that a stop signal detaches and exits 0 after every event reached stdout.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pyroute2 import netns as pr_netns

from harness.cli.main import SCRIPT as XHDR
from harness.core.driver import with_openings
from harness.core.handover import helpers_running
from harness.core.program import Program
from harness.core.tc import egress_programs
from harness.core.wait import wait_until
from harness.core.workers import pids_running
from harness.core.xdp import XdpMode, attached_mode, attached_prog_id
from harness.log.audit import AuditSummary, new_key, read_key, verify
from harness.log.command import LOGGING_LINE
from harness.log.consumer import build_consumer
from harness.log.records import read_events
from harness.oracle.frames import FrameSpec, build
from netns.clients import ClientError, curl
from netns.lab import Lab
from netns.servers import StatusServer

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parent.parent
# Compiling the extractor takes a few seconds; a loaded CI machine gets generous room.
ATTACH_DEADLINE_S = 60.0
EVENT_DEADLINE_S = 10.0
EXIT_DEADLINE_S = 15.0


# The console script installed next to the interpreter running the tests, as a user runs it.


def xhdr(*args: str) -> list[str]:
    return [str(XHDR), *args]


def run_xhdr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        xhdr(*args), check=False, cwd=REPO, capture_output=True, text=True, timeout=EXIT_DEADLINE_S * 4
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """A failed command says why in exactly one stderr line, prefixed like every xhdr error."""
    assert done.returncode != 0, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got:\n{done.stderr}"
    assert lines[0].startswith("xhdr log: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --- errors ----------------------------------------------------------------------------------------


def test_unknown_interface_is_one_line_naming_it() -> None:
    assert_one_line_error(run_xhdr("log", "--iface", "xhdrnosuch0"), "xhdrnosuch0")


def test_unknown_namespace_is_one_line_and_not_created() -> None:
    name = "xhdr-no-such-namespace"
    assert_one_line_error(run_xhdr("log", "--iface", "lo", "--netns", name), name)
    assert name not in pr_netns.listnetns()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("ports = [80\n", "not valid TOML"),
        ("colour = 'blue'\n", "'colour'"),
        ("max_scan_bytes = 4096\n", "max_scan_bytes"),
    ],
    ids=["bad-toml", "unknown-key", "scan-bytes-out-of-range"],
)
def test_bad_config_is_one_line(tmp_path: Path, text: str, needle: str) -> None:
    config = tmp_path / "xhdr.toml"
    config.write_text(text)
    assert_one_line_error(run_xhdr("log", "--iface", "lo", "--config", str(config)), str(config), needle)


@pytest.mark.parametrize("other", list(XdpMode), ids=[mode.value for mode in XdpMode])
def test_interface_with_xdp_is_refused_left_alone_and_the_hint_detaches_it(
    lab: Lab, program: Program, other: XdpMode
) -> None:
    gateway = lab.gateway
    lab.attach(program.fd, other)
    before = attached_prog_id(gateway.ifname, gateway.netns)
    reported = attached_mode(gateway.ifname, gateway.netns)
    assert before and reported

    for mode in XdpMode:
        done = run_xhdr("log", "--iface", gateway.ifname, "--netns", gateway.netns, "--mode", mode.value)
        assert_one_line_error(done, gateway.ifname, "already has an XDP program")

    assert attached_mode(gateway.ifname, gateway.netns) == reported
    assert attached_prog_id(gateway.ifname, gateway.netns) == before
    # The hint is a command a person can paste: run as written, it frees the interface.
    hint = done.stderr.split("`")[1]
    subprocess.run(shlex.split(hint), check=True, capture_output=True)
    assert attached_mode(gateway.ifname, gateway.netns) is None


# --- live ------------------------------------------------------------------------------------------


@contextmanager
def running_log(
    lab: Lab,
    tmp_path: Path,
    mode: XdpMode,
    *options: str,
    written: tuple[str, str] = ("--json", "-"),
    attached: bool = True,
) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    """``xhdr log --json -`` (or the ``written`` output option) on the lab's gateway end, stdout and stderr in
    files, yielded once its program is attached (``attached``) or at once; killed if a test leaves it running."""
    out, err = tmp_path / "log.out", tmp_path / "log.err"
    gateway = lab.gateway
    argv = xhdr(
        "log",
        "--iface",
        gateway.ifname,
        "--netns",
        gateway.netns,
        "--mode",
        mode.value,
        *written,
        *options,
    )
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=stdout, stderr=stderr)
    try:
        if attached:
            wait_attached(lab, proc, err, mode)
        yield proc, out, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=EXIT_DEADLINE_S)


def wait_attached(lab: Lab, proc: subprocess.Popen[bytes], err: Path, mode: XdpMode) -> None:
    """Polls until the running xhdr log says it is logging, as a user waits for it, with its program attached
    to the gateway's end; fails if it exits first. The line comes once every program is attached: the XDP
    program is attached before the responses program, so seeing the XDP program alone is not enough."""
    gateway = lab.gateway

    def attached() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"xhdr log exited {proc.returncode} early: {err.read_text()}")
        return (
            LOGGING_LINE in err.read_text() and attached_mode(gateway.ifname, gateway.netns) == mode.reported
        )

    wait_until(attached, ATTACH_DEADLINE_S, f"xhdr log to attach to {gateway.ifname}")


def stop_after_lines(proc: subprocess.Popen[bytes], err: Path, output: Path, lines: int) -> None:
    """Waits until the running xhdr log wrote ``lines`` lines to ``output``, then stops it as a user does; it
    must exit 0."""
    wait_until(
        lambda: output.exists() and output.read_bytes().count(b"\n") >= lines,
        EVENT_DEADLINE_S,
        f"{lines} lines",
    )
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=EXIT_DEADLINE_S) == 0, err.read_text()


def request(host: str, sport: int) -> bytes:
    payload = f"GET /{host} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: xhdr-test\r\n\r\n".encode()
    return build(FrameSpec(payload=payload, sport=sport))


def send_requests(lab: Lab, hosts: list[str]) -> None:
    """One request per host, each on a flow of its own after the SYN that opens it (R15)."""
    requests = [request(host, 41000 + index) for index, host in enumerate(hosts)]
    sent, _ = with_openings([[frame] for frame in requests])
    assert lab.send(sent) == 2 * len(hosts)


def consumers_running() -> list[int]:
    """Pids of every process running the compiled event consumer of xhdr log."""
    binary = str(build_consumer()).encode()
    return pids_running(lambda argv: argv[0] == binary)


@pytest.mark.parametrize(
    ("stop", "mode"),
    [(signal.SIGINT, XdpMode.NATIVE), (signal.SIGTERM, XdpMode.GENERIC)],
    ids=["sigint-native", "sigterm-generic"],
)
def test_live_log_streams_events_and_detaches_on_signal(
    lab: Lab, tmp_path: Path, stop: signal.Signals, mode: XdpMode
) -> None:
    gateway = lab.gateway
    hosts = ["a.example", "b.example", "c.example"]
    with running_log(lab, tmp_path, mode) as (proc, out, err):
        send_requests(lab, hosts)

        def three_lines() -> bool:
            return out.read_bytes().count(b"\n") >= len(hosts)

        wait_until(three_lines, EVENT_DEADLINE_S, "three events on xhdr log's stdout")
        proc.send_signal(stop)
        code = proc.wait(timeout=EXIT_DEADLINE_S)

    stderr = err.read_text()
    assert code == 0, stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(event["headers"]["Host"] for event in events) == hosts
    assert {event["target"] for event in events} == {f"/{host}" for host in hosts}
    assert all(event["headers"]["User-Agent"] == "xhdr-test" for event in events)
    assert attached_mode(gateway.ifname, gateway.netns) is None
    assert "detached from" in stderr
    counters = dict(line.split() for line in stderr.splitlines() if line.startswith("  "))
    assert counters["http_request"] == counters["events"] == counters["flows_opened"] == "3"


@pytest.mark.parametrize("mode", list(XdpMode), ids=[mode.value for mode in XdpMode])
def test_a_killed_log_leaves_nothing_attached(lab: Lab, tmp_path: Path, mode: XdpMode) -> None:
    """SIGKILL gives xhdr log no chance to detach: the BPF links it attached through, the XDP program's and
    the responses program's on the egress, go with the process."""
    gateway = lab.gateway
    config = responses_config(tmp_path)
    with running_log(lab, tmp_path, mode, "--config", str(config)) as (proc, _, _):
        assert len(egress_programs(gateway.ifname, gateway.netns)) == 1
        proc.kill()
        assert proc.wait(timeout=EXIT_DEADLINE_S) == -signal.SIGKILL

    def detached() -> bool:
        return attached_mode(gateway.ifname, gateway.netns) is None and not egress_programs(
            gateway.ifname, gateway.netns
        )

    wait_until(detached, EXIT_DEADLINE_S, f"the program to leave {gateway.ifname} after SIGKILL")
    # The consumer was told by the kernel (PR_SET_PDEATHSIG) that its parent died.
    wait_until(lambda: not consumers_running(), EXIT_DEADLINE_S, "the event consumer to end after SIGKILL")


def responses_config(tmp_path: Path) -> Path:
    """A configuration with the default ports and headers and responses on (R24)."""
    config = tmp_path / "responses.toml"
    config.write_text("responses = true\n")
    return config


# The statuses curl asks nginx for, one connection each, over IPv4 and IPv6 in turn.
STATUSES = (200, 404, 301, 503, 204, 418)
# nginx's $request_time counts in milliseconds; the kernel's latency spans more (delivery, nginx's wakeup).
REQUEST_TIME_RESOLUTION_US = 1000.0
WAKEUP_ALLOWANCE_US = 200_000.0


def test_responses_carry_the_status_nginx_sent_and_span_its_request_time(lab: Lab, tmp_path: Path) -> None:
    """``xhdr log`` with responses on: each request nginx answered has one response line on its flow, with the
    status nginx logged and a latency that covers nginx's own $request_time (R24, R25)."""
    output = tmp_path / "events.jsonl"
    server = StatusServer(lab, STATUSES)
    config = responses_config(tmp_path)
    with running_log(
        lab, tmp_path, XdpMode.NATIVE, "--config", str(config), written=("--json", str(output))
    ) as (
        proc,
        _,
        err,
    ):
        for index, status in enumerate(STATUSES):
            url = server.url(f"/status/{status}", family=4 if index % 2 == 0 else 6)
            assert curl(lab, url, {"X-Request-ID": f"call-{index}"}).status == status
        stop_after_lines(proc, err, output, 2 * len(STATUSES))

    lines = [json.loads(line) for line in output.read_text().splitlines()]
    requests = {line["headers"]["X-Request-ID"]: line for line in lines if line["kind"] == "http"}
    responses = {
        (line["sport"], line["request_timestamp_ns"]): line for line in lines if line["kind"] == "response"
    }
    assert len(requests) == len(responses) == len(STATUSES) == len(lines) // 2
    for entry in server.requests():
        request = requests[entry["request_id"]]
        response = responses[(request["sport"], request["timestamp_ns"])]
        flow = ("family", "saddr", "daddr", "sport", "dport")
        assert {key: response[key] for key in flow} == {key: request[key] for key in flow}
        assert response["status"] == int(entry["status"]) and response["version"] == 11
        assert response["request_id"] == entry["request_id"]
        assert str(request["sport"]) == entry["port"]
        nginx_us = float(entry["request_time"]) * 1e6
        assert nginx_us - REQUEST_TIME_RESOLUTION_US <= response["latency_us"], entry
        assert response["latency_us"] <= nginx_us + REQUEST_TIME_RESOLUTION_US + WAKEUP_ALLOWANCE_US, entry
    stderr = err.read_text()
    counted, by_endpoint = stderr.split("xhdr log: response latency by endpoint")
    counters = dict(line.split() for line in counted.splitlines() if line.startswith("  "))
    assert counters["responses"] == str(len(STATUSES)) and counters["responses_unmatched"] == "0"
    # R26: one response on each endpoint, in the summary at exit with its latency's bucket
    endpoints = {line.split()[0]: line.split()[1] for line in by_endpoint.splitlines()[2:]}
    assert endpoints == {f"/status/{status}": "1" for status in STATUSES}, by_endpoint


def test_count_stops_by_itself_after_that_many_events(lab: Lab, tmp_path: Path) -> None:
    hosts = ["a.example", "b.example", "c.example"]
    with running_log(lab, tmp_path, XdpMode.GENERIC, "--count", "2") as (proc, out, err):
        send_requests(lab, hosts)
        code = proc.wait(timeout=EXIT_DEADLINE_S)
    assert code == 0, err.read_text()
    assert len(out.read_bytes().splitlines()) == 2
    assert attached_mode(lab.gateway.ifname, lab.gateway.netns) is None
    assert "detached from" in err.read_text()
    assert not consumers_running()


def test_output_file_duration_and_counter_lines(lab: Lab, tmp_path: Path) -> None:
    """Events go to the --json file, a counter line comes every --stats-every, and --duration ends the run."""
    output = tmp_path / "events.jsonl"
    options = ("--duration", "4", "--stats-every", "0.5")
    with running_log(lab, tmp_path, XdpMode.NATIVE, *options, written=("--json", str(output))) as (
        proc,
        out,
        err,
    ):
        send_requests(lab, ["a.example"])
        wait_until(output.exists, EVENT_DEADLINE_S, "the output file")
        code = proc.wait(timeout=EXIT_DEADLINE_S + 4)
    stderr = err.read_text()
    assert code == 0, stderr
    assert out.read_bytes() == b""
    [event] = [json.loads(line) for line in output.read_text().splitlines()]
    assert event["headers"]["Host"] == "a.example"
    counter_lines = [line for line in stderr.splitlines() if " events/s, " in line]
    assert counter_lines, stderr
    assert any("http_request 1" in line for line in counter_lines), counter_lines
    summary = stderr[stderr.index("counters:") :].splitlines()[1:]
    assert ["http_request", "1"] in [line.split() for line in summary], summary  # the run's totals at exit


def test_audit_without_json_is_one_line(tmp_path: Path) -> None:
    key = tmp_path / "audit.key"
    new_key(key)
    assert_one_line_error(run_xhdr("log", "--iface", "lo", "--audit", str(key)), "--audit", "--json")


def test_an_audited_log_is_sealed_and_verifies(lab: Lab, tmp_path: Path) -> None:
    """``xhdr log --json FILE --audit``: each line sealed, the end record written at the stop, the chain intact."""
    key, output = tmp_path / "audit.key", tmp_path / "audited.jsonl"
    new_key(key)
    with running_log(
        lab, tmp_path, XdpMode.GENERIC, "--audit", str(key), written=("--json", str(output))
    ) as (
        proc,
        _,
        err,
    ):
        send_requests(lab, ["a.example", "b.example"])
        stop_after_lines(proc, err, output, 2)
    lines = output.read_bytes().splitlines(keepends=True)
    assert verify(lines, read_key(key)) == AuditSummary(lines=3, events=2, runs=1)
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3]


def test_records_then_decode_give_the_json_lines(lab: Lab, tmp_path: Path) -> None:
    """``xhdr log --records FILE`` writes the records; ``xhdr decode FILE --json -`` makes their JSON lines."""
    records = tmp_path / "events.records"
    hosts = ["a.example", "b.example"]
    with running_log(lab, tmp_path, XdpMode.NATIVE, "--count", "2", written=("--records", str(records))) as (
        proc,
        out,
        err,
    ):
        send_requests(lab, hosts)
        assert proc.wait(timeout=EXIT_DEADLINE_S) == 0, err.read_text()
    assert out.read_bytes() == b""
    done = run_xhdr("decode", str(records), "--json", "-")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(event["headers"]["Host"] for event in events) == hosts
    assert done.stderr == f"xhdr decode: 2 events from {records}\n"


def hosts_logged(path: Path, as_records: bool) -> list[str]:
    """The Host of every request a --json or --records file holds, in the order written."""
    if as_records:
        return [event.header("Host").value.decode() for event in read_events(path)]
    return [
        json.loads(line)["headers"]["Host"] for line in path.read_bytes().splitlines() if b'"kind"' in line
    ]


@pytest.mark.parametrize("written", ["json", "audited", "records"])
def test_sigusr1_reopens_the_output_so_a_rotated_log_loses_nothing(
    lab: Lab, tmp_path: Path, written: str
) -> None:
    """Log rotation as logrotate does it for nginx: the file is renamed, SIGUSR1 goes to xhdr log, and the
    next lines go to a new file at the old path. No line is lost or written twice, and each file is whole on
    its own: an audited run ends in the renamed file and a new run starts in the new one, and a records file
    starts with its section header. The audited case signals every process of the logger, as `systemctl kill`
    does by default: the consumer takes its reopen from xhdr log alone, so the new file holds one run (when
    it reopened on both signals, one run in three here found a second, empty run in the new file)."""
    as_records = written == "records"
    output, rotated, key = tmp_path / "requests.log", tmp_path / "requests.log.1", tmp_path / "audit.key"
    options = ("--audit", str(key)) if written == "audited" else ()
    if options:
        new_key(key)
    first, then = ["a.example", "b.example"], ["c.example", "d.example", "e.example"]
    flag = "--records" if as_records else "--json"
    with running_log(lab, tmp_path, XdpMode.GENERIC, *options, written=(flag, str(output))) as (proc, _, err):
        send_requests(lab, first)
        wait_until(lambda: len(hosts_logged(output, as_records)) == 2, EVENT_DEADLINE_S, "the first lines")
        output.rename(rotated)
        for pid in [proc.pid, *(consumers_running() if options else [])]:
            os.kill(pid, signal.SIGUSR1)
        wait_until(output.exists, EVENT_DEADLINE_S, "the output file to be opened again")
        send_requests(lab, then)
        wait_until(lambda: len(hosts_logged(output, as_records)) == 3, EVENT_DEADLINE_S, "the later lines")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=EXIT_DEADLINE_S) == 0, err.read_text()
    assert sorted(hosts_logged(rotated, as_records)) == first
    assert sorted(hosts_logged(output, as_records)) == then
    if written == "audited":
        for path, events in ((rotated, first), (output, then)):
            lines = path.read_bytes().splitlines(keepends=True)
            assert verify(lines, read_key(key)) == AuditSummary(
                lines=len(events) + 1, events=len(events), runs=1
            )


README_LOG = "/var/log/xhdr/requests.jsonl"


def readme_logrotate_stanza(log: Path) -> str:
    """The logrotate configuration README.md gives, for ``log`` instead of its example path."""
    text = (REPO / "README.md").read_text()
    stanza = text[text.index("With logrotate:") :].split("```")[1]
    assert README_LOG in stanza and "postrotate" in stanza, stanza
    return stanza.strip().replace(README_LOG, str(log)) + "\n"


def test_the_readmes_logrotate_stanza_rotates_a_running_log(lab: Lab, tmp_path: Path) -> None:
    """logrotate itself, with the README's stanza: it renames the file, its postrotate script signals the
    logger, and the lines after go to a new file; the script must succeed (its pkill must not hit its shell)."""
    output, config = tmp_path / "requests.jsonl", tmp_path / "logrotate.conf"
    config.write_text(readme_logrotate_stanza(output))
    with running_log(lab, tmp_path, XdpMode.GENERIC, written=("--json", str(output))) as (proc, _, err):
        send_requests(lab, ["a.example"])
        wait_until(lambda: len(hosts_logged(output, False)) == 1, EVENT_DEADLINE_S, "the first line")
        rotated = subprocess.run(
            ["logrotate", "--force", "--state", str(tmp_path / "logrotate.state"), str(config)],
            capture_output=True,
            text=True,
            timeout=EXIT_DEADLINE_S,
            check=False,
        )
        assert rotated.returncode == 0 and not rotated.stderr, rotated
        wait_until(output.exists, EVENT_DEADLINE_S, "the logger to open the file again")
        send_requests(lab, ["b.example"])
        wait_until(lambda: len(hosts_logged(output, False)) == 1, EVENT_DEADLINE_S, "the line after")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=EXIT_DEADLINE_S) == 0, err.read_text()
    # delaycompress: the file rotated first is not gzipped yet
    assert hosts_logged(tmp_path / "requests.jsonl.1", False) == ["a.example"]
    assert hosts_logged(output, False) == ["b.example"]


def test_the_logger_holds_no_compiler_once_attached(lab: Lab, tmp_path: Path) -> None:
    """The extractor is compiled in a helper process that exits: the process that logs for days maps neither
    BCC nor LLVM (together about 250 MB resident when they were loaded here)."""
    with running_log(lab, tmp_path, XdpMode.GENERIC) as (proc, _, err):
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert not helpers_running()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=EXIT_DEADLINE_S) == 0, err.read_text()
    assert "libbcc" not in maps and "LLVM" not in maps


def test_a_logger_killed_while_compiling_leaves_no_compiler_running(lab: Lab, tmp_path: Path) -> None:
    """The loading helper dies with xhdr log (PR_SET_PDEATHSIG), so a kill in the middle of the compile leaves
    nothing running and nothing attached."""
    with running_log(lab, tmp_path, XdpMode.GENERIC, attached=False) as (proc, _, _):
        wait_until(lambda: bool(helpers_running()), ATTACH_DEADLINE_S, "the loading helper to start")
        proc.kill()
        assert proc.wait(timeout=EXIT_DEADLINE_S) == -signal.SIGKILL
    wait_until(lambda: not helpers_running(), EXIT_DEADLINE_S, "the loading helper to end with xhdr log")
    assert attached_mode(lab.gateway.ifname, lab.gateway.netns) is None
    assert not consumers_running()


def test_records_to_a_terminal_are_refused_in_one_line() -> None:
    """Binary records on a terminal would be garbage on the screen: one line says where to send them."""
    controller, terminal = os.openpty()
    try:
        done = subprocess.run(
            xhdr("log", "--iface", "lo", "--records", "-"),
            stdout=terminal,
            stderr=subprocess.PIPE,
            text=True,
            timeout=EXIT_DEADLINE_S,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert_one_line_error(done, "--records - writes binary records", "a file or a pipe")


# --- request rules (R27-R29) -------------------------------------------------------------------------

LOG_STATUS_200 = """
[[rules]]
name = "status-200"
[rules.when]
target = { prefix = "/status/200" }
"""
BLOCK_AND_COUNT = """
[[rules]]
name = "block-scanner"
action = "drop"
[rules.when]
"User-Agent" = { contains = "EvilScanner" }
[[rules]]
name = "count-404"
action = "count"
count_by = ["User-Agent"]
[rules.when]
target = { exact = "/status/404" }
"""
# A dropped request is retried by the client's TCP until this gives up.
DROPPED_CURL_S = 2.0


def reloaded(proc: subprocess.Popen[bytes], err: Path, config: Path, text: str, said: str) -> None:
    """Writes ``text`` to the running logger's config file, sends SIGHUP, and waits for stderr to say ``said``."""
    before = err.read_text().count(said)
    config.write_text(text)
    proc.send_signal(signal.SIGHUP)
    wait_until(lambda: err.read_text().count(said) > before, EVENT_DEADLINE_S, f"xhdr log to say {said!r}")


def test_rules_change_on_sighup_and_a_dropped_request_never_reaches_nginx(lab: Lab, tmp_path: Path) -> None:
    """``xhdr log --config FILE`` with rules, changed while it runs: a log rule names itself in the event, a
    count rule withholds it, a drop rule logs the request, drops it (nginx never sees it, curl times out) and
    blocks its flow (R27-R29); a file that does not parse leaves the running rules as they were."""
    output, config = tmp_path / "events.jsonl", tmp_path / "rules.toml"
    config.write_text(LOG_STATUS_200)
    server = StatusServer(lab, (200, 404))
    evil = {"User-Agent": "EvilScanner/2.1"}
    aggregates = tmp_path / "aggregates.json"
    options = ("--config", str(config), "--aggregates", str(aggregates), "--top", "--stats-every", "0.2")
    written = ("--json", str(output))
    with running_log(lab, tmp_path, XdpMode.NATIVE, *options, written=written) as (proc, _, err):
        assert curl(lab, server.url("/status/200")).status == 200
        reloaded(proc, err, config, BLOCK_AND_COUNT, "reloaded 2 rules")
        for agent in ("probe/1", "probe/1", "browser/2"):
            assert curl(lab, server.url("/status/404"), {"User-Agent": agent}).status == 404
        # --top shows the counts while it runs, after the counter line and the rules' hits
        live = "count-404  /status/404  User-Agent  probe/1           2"
        wait_until(lambda: live in err.read_text(), EVENT_DEADLINE_S, "the live view to show the counts")
        view = err.read_text().split(live)[0].rsplit("events/s", 1)[1]
        assert "rule hits" in view and "counts by header value" in view
        with pytest.raises(ClientError, match="timed out"):
            curl(lab, server.url("/evil"), evil, timeout=DROPPED_CURL_S)
        reloaded(proc, err, config, "[[rules]]\nname = 'x'\naction = 'block'\n", "rules not reloaded")
        reloaded(proc, err, config, "ports = [81]\n" + BLOCK_AND_COUNT, "needs a restart of xhdr log")
        with pytest.raises(ClientError, match="timed out"):
            curl(lab, server.url("/evil-again"), evil, timeout=DROPPED_CURL_S)
        assert curl(lab, server.url("/status/200")).status == 200
        stop_after_lines(proc, err, output, 4)

    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(line["target"], line.get("rule"), line.get("action")) for line in lines] == [
        ("/status/200", "status-200", "log"),
        ("/evil", "block-scanner", "drop"),
        ("/evil-again", "block-scanner", "drop"),
        ("/status/200", None, None),
    ]
    assert [("DROPPED" in line.get("flags", [])) for line in lines] == [False, True, True, False]
    assert [entry["request"] for entry in server.requests()] == [
        "GET /status/200 HTTP/1.1",
        *["GET /status/404 HTTP/1.1"] * 3,
        "GET /status/200 HTTP/1.1",
    ]
    # R30: the count rule's matches by User-Agent, in the kernel's map, written at exit
    counted = json.loads(aggregates.read_text())
    assert [(a["rule"], a["endpoint"], a["header"], a["value"], a["count"]) for a in counted] == [
        ("count-404", "/status/404", "User-Agent", "probe/1", 2),
        ("count-404", "/status/404", "User-Agent", "browser/2", 1),
    ]
    stderr = err.read_text()
    refused = [line for line in stderr.splitlines() if "rules not reloaded" in line]
    assert len(refused) == 2 and "'block' is unknown" in refused[0], stderr
    assert f"{config} changes ports, which needs a restart" in refused[1], stderr
    section = stderr.split("counters:")[1].split("xhdr log:")[0]
    counters = dict(line.split() for line in section.splitlines() if line.startswith("  "))
    assert counters["dropped"] == "2" and counters["events_withheld"] == "3", stderr
    assert int(counters["blocked"]) >= 2, "each dropped request's retransmissions are dropped too (R29)"
    hits = stderr.rsplit("xhdr log: rule hits:", 1)[1].split()  # the summary at exit
    assert hits[2:8] == ["block-scanner", "2", "count-404", "3", "xhdr", "log:"], stderr
    assert "count-404  /status/404  User-Agent  probe/1           2" in stderr, stderr
