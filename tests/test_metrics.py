"""Every metric a bench suite writes is declared once in reports/metrics.py (label, unit, direction).

The metrics written are found two ways, so that adding a metric to a suite without declaring it fails here:
statically, from the suites' code (each ``Row(...)`` with a literal metric; for a suite that names its
metrics from a dict of figures, every key it stores there), and by running each suite's summarising step on
made-up measurements and reading the rows it returns (units included).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from reports.metrics import METRICS, Metric

ROOT = Path(__file__).resolve().parent.parent
SUITE_FILES = sorted(p for p in (ROOT / "bench").rglob("*.py") if not p.name.startswith("test_"))


def written_metrics() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(file -> metric names, file -> name patterns) the suites' code writes, read from its syntax tree."""
    names: dict[str, set[str]] = {}
    patterns: dict[str, set[str]] = {}
    for path in SUITE_FILES:
        where = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text())
        found, keys, shapes, dynamic = set(), set(), set(), 0
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Row" and node.args:
                metric = node.args[1] if len(node.args) > 1 else None
                if isinstance(metric, ast.Constant) and isinstance(metric.value, str):
                    found.add(metric.value)
                elif metric is not None:
                    dynamic += 1
            # figures["name"] = ... and figures = {"name": ...}: the dict a suite may turn into rows
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Subscript) and getattr(target.value, "id", None) == "figures":
                        key = target.slice
                        if isinstance(key, ast.Constant):
                            keys.add(key.value)
                        elif isinstance(key, ast.JoinedStr):
                            shapes.add(_pattern(key))
                    if getattr(target, "id", None) == "figures" and isinstance(node.value, ast.Dict):
                        keys |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
        if dynamic:  # its figures' keys are its metrics
            assert keys or shapes, f"{where} writes rows whose metric is not a literal and stores no figures"
            found |= keys
        else:
            shapes = set()
        if found:
            names[where] = found
        if shapes:
            patterns[where] = shapes
    return names, patterns


def _pattern(text: ast.JoinedStr) -> str:
    """An f-string key as a regular expression: literal parts kept, each {...} any word."""
    parts = [re.escape(v.value) if isinstance(v, ast.Constant) else r"\w+" for v in text.values]
    return "".join(parts)


def test_the_code_walk_finds_each_suites_metrics() -> None:
    names, patterns = written_metrics()
    every = set().union(*names.values())
    # one metric of each suite: a walk that silently finds nothing would pass the next test
    for known in (
        "ratio_to_empty",
        "ratio_to_extractor",
        "hook_cost_ns",
        "logger_rss_bytes",
        "requests_per_second",
        "cpu_ns_per_event",
    ):
        assert known in every, known
    assert any("latency_p" in p for p in patterns.get("bench/http_nginx.py", ())), patterns


def test_every_metric_the_suites_write_is_declared() -> None:
    names, patterns = written_metrics()
    missing = {f"{where}: {name}" for where, found in names.items() for name in found if name not in METRICS}
    assert not missing, f"declare these in reports/metrics.py: {sorted(missing)}"
    for where, shapes in patterns.items():
        for shape in shapes:
            assert any(re.fullmatch(shape, name) for name in METRICS), (
                f"{where}: nothing declared matches {shape}"
            )


def _declared_rows(rows) -> None:
    for row in rows:
        assert row.metric in METRICS, f"{row.method} writes undeclared {row.metric}"
        assert row.unit == METRICS[row.metric].unit, (row.metric, row.unit, METRICS[row.metric].unit)


def test_rows_of_the_lab_suite_are_declared_with_their_units() -> None:
    from bench import lab_throughput

    samples = {
        mode: [
            lab_throughput.Sample(
                mode, 1000, 1000, 1000, 0, 0.01, 10_000_000 + i, 3_000_000, 50.0, 4, 400_000
            )
        ]
        for i, mode in enumerate(lab_throughput.MODES)
    }
    rows = lab_throughput.summarise(samples, 1000, 1)
    assert {"cpu_ns_per_logged_request", "hook_cost_ns", "kernel_delivery_cost_ns"} <= {
        r.metric for r in rows
    }
    _declared_rows(rows)


def test_rows_of_the_consumer_suite_are_declared_with_their_units() -> None:
    from bench import consumer
    from harness.core.config import ExtractorConfig

    figures = {"events_per_second": 4e5, "cpu_ns_per_event": 2000.0, "events_written": 100, "events_lost": 0}
    taken = {name: [figures | {"events_produced": 100}] for name in consumer.FORMATS}
    _declared_rows(consumer.summarise(taken, 100, ExtractorConfig(), 417))


def test_rows_of_the_nginx_suite_are_declared_with_their_units() -> None:
    """The figures it measures are the keys its code stores (found by the walk), p50 to p99 for latency."""
    from bench import http_nginx

    names, patterns = written_metrics()
    keys = set(names["bench/http_nginx.py"]) - {
        "requests_not_logged",
        "rps_ratio_to_no_logging",
        "rps_ratio_round",
        "rps_ratio_to_access_log",
        "rps_ratio_to_access_log_round",
        "rps_ratio_to_access_log_on_hook",
        "rps_ratio_to_access_log_on_hook_round",
    }
    for shape in patterns["bench/http_nginx.py"]:
        keys |= {name for name in METRICS if re.fullmatch(shape, name)}
    figures = {key: 100.0 for key in keys}
    rows = http_nginx.summarise({method: [figures, figures] for method in http_nginx.METHODS}, 3)
    _declared_rows(rows)
    rounds = [r for r in rows if r.metric == "rps_ratio_round"]
    assert len(rounds) == 2 * (len(http_nginx.METHODS) - 1) and {r.params["round"] for r in rounds} == {1, 2}


def test_the_nginx_suite_compares_each_extractor_leg_with_the_access_log_round_by_round() -> None:
    """Issue 11's target is more requests/s than nginx's own access log: each round's ratio is taken within
    the round, and the headline says in how many rounds the extractor was ahead; the same for the access log
    behind the empty XDP program, which pays the hook as the extractor does."""
    from bench import http_nginx

    per_round = {method: [100.0, 100.0, 100.0] for method in http_nginx.METHODS}
    per_round["nginx_access_log"] = [80.0, 90.0, 70.0]
    per_round["access_log_empty_xdp"] = [80.0, 75.0, 60.0]
    per_round["extractor"] = [
        88.0,
        81.0,
        63.0,
    ]  # 1.1, 0.9, 0.9 of the access log's; 1.1, 1.08, 1.05 on the hook
    taken = {
        method: [{"requests_per_second": rps, "requests": rps} for rps in values]
        for method, values in per_round.items()
    }
    for figures, written in zip(taken["nginx_access_log"], (260.0, 262.0, 261.0), strict=True):
        figures["log_bytes_per_request"] = written
    rows = http_nginx.summarise(taken, 10)
    _declared_rows(rows)
    paired = {
        (r.metric.removesuffix("_round"), r.method, r.params.get("round")): r.value
        for r in rows
        if r.metric.startswith("rps_ratio_to_access_log")
    }
    plain, on_hook = "rps_ratio_to_access_log", "rps_ratio_to_access_log_on_hook"
    assert paired[(plain, "extractor", 1)] == pytest.approx(1.1)
    assert paired[(plain, "extractor", 3)] == pytest.approx(0.9)
    assert paired[(plain, "extractor", None)] == pytest.approx(0.9)
    assert paired[(on_hook, "extractor", 2)] == pytest.approx(1.08)
    assert paired[(on_hook, "extractor", None)] == pytest.approx(1.08)
    assert {method for _, method, _ in paired} == set(http_nginx.EXTRACTOR_OUTPUTS)
    lines = http_nginx.headline(rows).splitlines()
    assert lines[0].startswith("requests/s kept of no logging's (higher is better): empty XDP program 1.000")
    assert "nginx access log 0.800" in lines[0]
    assert lines[1] == "bytes written per logged request (lower is better): nginx access log 261"
    assert "extractor against nginx access log: 0.900 of its requests/s, ahead in 1 of 3 rounds" in lines[2]
    assert lines[2].endswith("too few rounds for an interval (give --rounds 5 or more)")
    outputs = len(http_nginx.EXTRACTOR_OUTPUTS)
    behind_hook = "extractor against nginx access log, empty XDP program attached: 1.080 of its requests/s"
    assert lines[2 + outputs].startswith(behind_hook + ", ahead in 3 of 3 rounds"), lines


@pytest.mark.parametrize(
    ("extractor", "says"),
    [
        ([1.08, 1.12, 1.05, 1.10, 1.07, 1.09], "ahead"),
        ([0.90, 0.93, 0.88, 0.91, 0.95, 0.92], "behind"),
        ([1.005, 0.829, 1.164, 0.906, 0.947, 1.064, 0.903, 1.553], "too close to tell"),
    ],
    ids=["ahead", "behind", "session-16-run"],
)
def test_the_nginx_headline_judges_the_extractor_by_the_interval_of_its_rounds(
    extractor: list[float], says: str
) -> None:
    """Ahead or behind nginx's access log only when the interval of the paired rounds' median ratio lies
    wholly on that side of 1: the last case is a real run of 8 rounds, median 0.976, ahead in 4 of them."""
    from bench import http_nginx

    per_round = {method: [100.0] * len(extractor) for method in http_nginx.METHODS}
    per_round["extractor"] = [100.0 * ratio for ratio in extractor]
    taken = {
        method: [{"requests_per_second": rps, "requests": rps} for rps in values]
        for method, values in per_round.items()
    }
    (line,) = [
        line
        for line in http_nginx.headline(http_nginx.summarise(taken, 10)).splitlines()
        if line.startswith("extractor against nginx access log:")
    ]
    judged = re.search(r": (ahead|behind|too close to tell) \(95% interval ([0-9.]+)-([0-9.]+)\)$", line)
    assert judged, line
    low, high = float(judged[2]), float(judged[3])
    assert judged[1] == says and min(extractor) <= low <= high <= max(extractor), line
    assert {"ahead": low > 1, "behind": high < 1, "too close to tell": low <= 1 <= high}[says], line


@pytest.mark.parametrize(
    ("name", "better"),
    [
        ("rps_ratio_to_no_logging", "higher"),  # the issue: these were labelled "lower is better"
        ("ratio_to_extractor", "higher"),
        ("requests_not_logged", "lower"),
        ("requests", "neither"),
        ("logged", "neither"),
        ("requests_handled", "neither"),
        ("cpu_ns_per_logged_request", "lower"),
    ],
)
def test_directions(name: str, better: str) -> None:
    assert METRICS[name].better == better
    assert ("lower is better" in METRICS[name].axis) == (better == "lower")
    assert ("higher is better" in METRICS[name].axis) == (better == "higher")


def test_labels_are_unique_and_every_metric_says_what_it_is() -> None:
    labels = [m.label for m in METRICS.values()]
    assert len(labels) == len(set(labels)), [label for label in labels if labels.count(label) > 1]
    assert all(isinstance(m, Metric) and m.meaning and m.label for m in METRICS.values())


def test_rows_of_the_fuzz_suite_are_declared_with_their_units() -> None:
    from bench import fuzz_throughput

    summary = {
        "target": "all",
        "seconds": 20.0,
        "compared_per_second": 2100.0,
        "examples_per_second": 16.0,
        "time_split_seconds": {"generation": 4.0, "test_run": 7.0},
    }
    rows = fuzz_throughput.summarise({0: summary, 128: summary})
    _declared_rows(rows)
    shares = {row.params["stage"]: row.value for row in rows if row.metric == "time_share"}
    assert shares == {"generation": 20.0, "test_run": 35.0}
