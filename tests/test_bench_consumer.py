"""``xhdr bench --suite consumer`` end to end in its quick form (about 10 s, most of it the compile).

Only the bookkeeping is asserted, never a timing: every event the extractor put in the ring reached the
file as a line, in both formats, and none was lost.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.cli.main import SCRIPT as XHDR

# The console script next to the interpreter, as tests/test_cli_log.py runs it.


@pytest.mark.kernel
def test_quick_consumer_suite_writes_every_event_it_produced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # Run from tmp_path: a module suite also writes its file under ./reports/out/bench.
    done = subprocess.run(
        [str(XHDR), "bench", "--quick", "--suite", "consumer", "--out", str(out)],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "consumer.json").read_text())
    assert result["suite"] == "consumer"
    rows = {(row["params"]["format"], row["metric"]): row for row in result["rows"]}
    for name in ("json", "text", "json_audit"):
        written = rows[name, "events_written"]
        assert written["params"]["events_produced"] > 0, name
        assert written["value"] == written["params"]["events_produced"], name
        assert rows[name, "events_lost"]["value"] == 0, name
        assert rows[name, "events_per_second"]["value"] > 0, name
        assert rows[name, "cpu_ns_per_event"]["value"] > 0, name
