"""One result format for every benchmark: tidy rows plus where and on what they were measured.

Each suite writes one JSON file (``write_results``); reports/ reads any number of them (``read_results``)
and plots rows without knowing which suite made them. A row is one measured figure:
``{"method": "extractor", "metric": "ns_per_packet", "value": 212.0, "unit": "ns", "params": {...}}``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.core.config import ExtractorConfig
from harness.core.provenance import commit_of

RESULTS_DIR = Path("reports/out/bench")
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Row:
    method: str  # what was measured: "extractor", "empty", "af_packet_python", "nginx_access_log", ...
    metric: str  # "ns_per_packet", "ns_per_byte", "ratio_to_empty", "requests_per_second", ...
    value: float
    unit: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)  # frame_bytes, header_count, mode, ...


@dataclasses.dataclass(frozen=True)
class ResultFile:
    suite: str
    created: str
    machine: dict[str, Any]
    config: dict[str, Any]
    rows: tuple[Row, ...]
    path: Path | None = None


def measured_program(rows: Iterable[Row]) -> str:
    """The program kernel-cost rows measured beside the empty one: "extractor", or the name of a user's program
    (``xhdr bench --object``)."""
    return next((row.method for row in rows if row.method != "empty"), "extractor")


def per_round(rows: Iterable[Row], method: str, metric: str) -> list[float]:
    """A method's figure round by round (its rows with a ``round`` parameter), in round order."""
    taken = [row for row in rows if row.method == method and row.metric == metric]
    return [row.value for row in sorted(taken, key=lambda row: row.params["round"])]


def machine_info() -> dict[str, Any]:
    """What a reader needs to judge a figure: CPU, cores, kernel, Python, and the commit measured."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit_of(),
    }


def write_results(
    suite: str, rows: list[Row], config: ExtractorConfig | None = None, directory: Path = RESULTS_DIR
) -> Path:
    """Writes ``<directory>/<suite>.json`` and returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "format": FORMAT_VERSION,
        "suite": suite,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "config": dataclasses.asdict(config or ExtractorConfig()),
        "rows": [dataclasses.asdict(row) for row in rows],
    }
    path = directory / f"{suite}.json"
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


def read_results(paths: list[Path]) -> list[ResultFile]:
    """Reads result files; a file that is not one (not JSON, another format, damaged) is a ValueError
    whose one line names it."""
    return [_read_result(Path(path)) for path in paths]


def read_json(path: Path, what: str) -> Any:
    """The JSON document in ``path``; a file that is not JSON is one line naming it (``what`` says which file)."""
    try:
        return json.loads(path.read_bytes())
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{what} {path} is not valid JSON ({error.msg} at line {error.lineno}); give a file xhdr wrote"
        ) from None
    except UnicodeDecodeError:
        raise ValueError(f"{what} {path} is not JSON text (not UTF-8); give a file xhdr wrote") from None


def _read_result(path: Path) -> ResultFile:
    document = read_json(path, "result file")
    if not isinstance(document, dict) or document.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"result file {path} is not an xhdr result file of format {FORMAT_VERSION}; "
            "give one that `xhdr bench` wrote"
        )
    try:
        return ResultFile(
            suite=document["suite"],
            created=document["created"],
            machine=document["machine"],
            config=document["config"],
            rows=tuple(Row(**row) for row in document["rows"]),
            path=path,
        )
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"result file {path} is damaged ({type(error).__name__}: {error}); run `xhdr bench` again"
        ) from None
