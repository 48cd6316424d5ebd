"""``xhdr demo``: the main job on built-in defaults.

For each XDP mode: a lab comes up, the extractor is attached to the gateway's veth end, the built-in
corpus of crafted frames is replayed with scapy, real curl requests go to a real HTTP server and over HTTPS
to nginx (the ClientHello is logged: server name, ALPN, TLS version), every event
is printed as it arrives (secrets only as scheme and hash) and checked against the reference extractor,
and the lab is removed. Events go to ``events.jsonl`` and the figures to ``summary.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import uuid
from pathlib import Path

from harness.cli import options
from harness.cli.main import require_root
from harness.core.config import ExtractorConfig
from harness.core.cost import fast_open, measure_cost
from harness.core.counters import Counter, Counts, counts_difference
from harness.core.driver import Outcome, feed_flows, settled
from harness.core.errors import CommandError
from harness.core.event import Event, TlsHello, tls_version_name
from harness.core.program import Program
from harness.core.wait import wait_until
from harness.core.xdp import XdpMode
from harness.oracle import reference
from harness.oracle.corpus import load_corpus, standard_frame
from harness.oracle.differences import outcome_differences
from netns.capture import Capture
from netns.clients import curl
from netns.driver import LabDriver
from netns.lab import Lab
from netns.servers import RecordingServer, TlsServer

DEFAULT_OUT = Path("reports/out")
# Header columns of the live table and their widths; secrets show as scheme and hash.
TABLE_COLUMNS = {"Host": 16, "User-Agent": 14, "X-Request-ID": 12, "Authorization": 19, "Cookie": 17}
EVENT_DEADLINE_S = 10.0


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("demo", help="lab up, traffic replayed, headers logged, report written")
    options.add_out(parser, DEFAULT_OUT, "events.jsonl and summary.json")
    options.add_mode(parser, default=None)
    parser.add_argument(
        "--requests",
        type=int,
        default=6,
        help="real curl HTTP requests per mode (default 6; two HTTPS ones come on top)",
    )
    parser.set_defaults(run=run)


@dataclasses.dataclass
class ModeResult:
    mode: str
    frames_sent: int = 0
    events: int = 0
    matched: int = 0
    curl_requests: int = 0
    server_matched: int = 0
    counters: dict[str, int] = dataclasses.field(default_factory=dict)
    mismatches: list[str] = dataclasses.field(default_factory=list)


class EventTable:
    """Prints one row per event as it arrives: the demo's live view and its progress display."""

    def __init__(self) -> None:
        header = f"{'mode':8} {'src':5} {'method':7} {'target':24} "
        print(
            header + " ".join(f"{name[:width]:{width}}" for name, width in TABLE_COLUMNS.items()) + " check"
        )
        self.rows = 0

    def row(self, mode: str, source: str, event: Event, ok: bool) -> None:
        """A request's method, target and headers; a TLS ClientHello's version and SNI (R22), no headers."""
        self.rows += 1
        if isinstance(event, TlsHello):
            shown = {name: "-" for name in TABLE_COLUMNS}
            method = _clip(f"TLS {tls_version_name(event.tls_version)}", 7)
            target = _clip(event.sni.decode("latin-1") or "-", 24)
        else:
            shown = {name: event.header(name).shown() for name in TABLE_COLUMNS}
            method = _clip(event.method.decode("latin-1"), 7)
            target = _clip(event.target.decode("latin-1"), 24)
        cells = " ".join(f"{_clip(shown[name], width):{width}}" for name, width in TABLE_COLUMNS.items())
        print(f"{mode:8} {source:5} {method:7} {target:24} {cells} {'ok' if ok else 'DIFF'}", flush=True)


def _clip(text: str, width: int) -> str:
    printable = "".join(ch if ch.isprintable() else "?" for ch in text)
    return printable if len(printable) <= width else printable[: width - 1] + "~"


def run(args: argparse.Namespace) -> int:
    require_root("xhdr demo")
    modes = [XdpMode(value) for value in (args.mode or [mode.value for mode in XdpMode])]
    if args.requests < 1:
        raise CommandError(f"--requests {args.requests} must be at least 1")
    events_path = options.output_directory(args.out) / "events.jsonl"
    cases = load_corpus()
    results = []
    with Program(ExtractorConfig()) as program, events_path.open("w") as events_file:
        print(f"xhdr demo: extractor loaded ({len(program.functions)} programs accepted by the verifier)")
        table = EventTable()
        for mode in modes:
            result = ModeResult(mode.value)
            with Lab() as lab:
                driver = LabDriver(program, lab, mode)
                print(
                    f"[{mode.value}] lab up: {lab.client.netns} ({lab.client.endpoint.ipv4}) -> "
                    f"{lab.gateway.netns} ({lab.gateway.endpoint.ipv4}), extractor on "
                    f"{lab.gateway.ifname} in {mode.value} mode",
                    flush=True,
                )
                before = program.counters()
                _replay_corpus(driver, cases, table, result, events_file)
                _real_requests(program, lab, args.requests, table, result, events_file)
                result.counters = {
                    c.label: n for c, n in counts_difference(program.counters(), before).items() if n
                }
            print(
                f"[{mode.value}] lab removed; counters: "
                + ", ".join(f"{k} {v}" for k, v in result.counters.items())
            )
            results.append(result)
        cost = measure_cost(program, fast_open(standard_frame()))
    return _summarise(results, cost, args.out, events_path)


def _replay_corpus(driver: LabDriver, cases, table: EventTable, result: ModeResult, events_file) -> None:
    """Every corpus case over the veth pair, as one flow after its opening SYN; each frame's outcome compared
    with the reference's for the same sequence."""
    program = driver.program
    for case in cases:
        outcomes = feed_flows(driver, [case.frames])
        for outcome, expected in zip(outcomes, case.expected(program.config, program.key), strict=True):
            _record(result, case.name, outcome, expected, table, "scapy", events_file)
            result.frames_sent += 1


def _real_requests(
    program: Program, lab: Lab, count: int, table: EventTable, result: ModeResult, events_file
) -> None:
    """curl to a real server, half over IPv4 and half over IPv6, and over HTTPS to nginx once over each; events
    checked against the frames the gateway received (through the reference) and against what the servers
    themselves logged (the request; the TLS server name nginx matched)."""
    server = RecordingServer(lab)
    tls_server = TlsServer(lab)
    request_ids = []
    with Capture(lab.gateway) as capture:
        before = program.counters()
        for index in range(count):
            request_id = uuid.uuid4().hex
            request_ids.append(request_id)
            curl(
                lab,
                server.url(f"/demo/{index}?via=curl", family=4 if index % 2 == 0 else 6),
                {
                    "User-Agent": "xhdr-demo/1.0",
                    "X-Request-ID": request_id,
                    "X-Forwarded-For": "203.0.113.9",
                    "Authorization": f"Bearer demo-token-{index}",
                    "Cookie": f"sid={request_id[:8]}",
                },
            )
        for family in HTTPS_FAMILIES:
            curl(lab, tls_server.url("/demo/tls"), options=tls_server.resolve(family))
        events = _wait_for_events(program, before, count + len(HTTPS_FAMILIES))
        frames = capture.drain()
    # What the gateway received is what the program saw: the reference's sum over those frames, fed in order
    # from each connection's SYN (the capture starts before the first curl), must match.
    tracker = reference.FlowTracker(program.config, program.key)
    per_frame = [tracker.feed(frame) for frame in frames]
    expected = reference.Expected(
        counters={c: sum(e.counters[c] for e in per_frame) for c in Counter},
        events=tuple(event for e in per_frame for event in e.events),
    )
    outcome = Outcome(None, tuple(events), counts_difference(program.counters(), before))
    _record(result, "curl", outcome, expected, table, "curl", events_file)
    received = {r["headers_by_name"]["x-request-id"]: r for r in _server_requests(server)}
    handshakes = {int(entry["port"]): entry for entry in tls_server.requests()}
    result.curl_requests = count + len(HTTPS_FAMILIES)
    for event in events:
        if isinstance(event, TlsHello):
            seen = handshakes.get(event.sport)
            result.server_matched += bool(seen and seen["sni"] == event.sni.decode())
            continue
        recorded = received.get(event.header("X-Request-ID").value.decode())
        if (
            recorded
            and recorded["target"] == event.target.decode()
            and recorded["method"] == event.method.decode()
        ):
            result.server_matched += 1


HTTPS_FAMILIES = (4, 6)  # one curl over HTTPS per IP version: its ClientHello's event (R22)


def _server_requests(server: RecordingServer) -> list[dict]:
    requests = server.requests()
    for request in requests:
        request["headers_by_name"] = {name.lower(): value for name, value in request["headers"]}
    return requests


def _wait_for_events(program: Program, before: Counts, count: int) -> list[Event]:
    events: list[Event] = []

    def done() -> bool:
        events.extend(program.take_events())
        after = program.counters()
        return len(events) >= count and settled(before, after)

    wait_until(done, EVENT_DEADLINE_S, f"{count} events from real requests")
    return events


def _record(
    result, source_name, outcome: Outcome, expected, table: EventTable, source: str, events_file
) -> None:
    differences = outcome_differences(outcome, expected)
    if differences:
        result.mismatches.append(f"{result.mode} {source_name}: " + "; ".join(differences))
    result.events += len(outcome.events)
    for event in outcome.events:
        ok = event in expected.events
        result.matched += ok
        table.row(result.mode, source, event, ok)
        events_file.write(json.dumps({"mode": result.mode, "source": source_name, **event.to_json()}) + "\n")


def _summarise(results: list[ModeResult], cost, out: Path, events_path: Path) -> int:
    total = sum(r.events for r in results)
    matched = sum(r.matched for r in results)
    summary = {
        "modes": [dataclasses.asdict(r) for r in results],
        "events": total,
        "matched_reference": matched,
        "standard_request_cost": cost.to_json(),
    }
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    for r in results:
        print(
            f"[{r.mode}] {r.frames_sent} crafted frames and {r.curl_requests} curl requests "
            f"({len(HTTPS_FAMILIES)} over HTTPS): {r.events} events, "
            f"{r.matched} match the reference, {r.server_matched} of {r.curl_requests} match the server's log"
        )
        for line in r.mismatches:
            print(f"  mismatch: {line}", file=sys.stderr)
    print(
        f"Kernel cost of the standard request (BPF_PROG_TEST_RUN, median of {cost.rounds} rounds): "
        f"extractor {cost.extractor_ns:.0f} ns, empty XDP program {cost.empty_ns:.0f} ns ({cost.ratio:.0f}x)"
    )
    print(f"Wrote {events_path} ({total} events) and {summary_path}")
    all_good = matched == total and all(
        not r.mismatches and r.server_matched == r.curl_requests for r in results
    )
    print(
        f"{matched} of {total} events matched the reference"
        + ("" if all_good else "; see the mismatches above")
    )
    return 0 if all_good else 1
