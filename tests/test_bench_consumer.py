"""``xhdr bench --suite consumer`` end to end in its quick form (about 10 s, most of it the compile).

Only the bookkeeping is asserted, never a timing: every event the extractor put in the ring reached the
file as a line, in both formats, and none was lost.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.mark.kernel
def test_quick_consumer_suite_writes_every_event_it_produced(
    quick_suite: Callable[[str], tuple[dict, str]],
) -> None:
    result, _ = quick_suite("consumer")
    assert result["suite"] == "consumer"
    rows = {(row["params"]["format"], row["metric"]): row for row in result["rows"]}
    for name in ("json", "text", "json_audit"):
        written = rows[name, "events_written"]
        assert written["params"]["events_produced"] > 0, name
        assert written["value"] == written["params"]["events_produced"], name
        assert rows[name, "events_lost"]["value"] == 0, name
        assert rows[name, "events_per_second"]["value"] > 0, name
        assert rows[name, "cpu_ns_per_event"]["value"] > 0, name
