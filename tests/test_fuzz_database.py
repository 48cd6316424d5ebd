"""``xhdr fuzz`` keeps what it finds: a failure found by one campaign is the first example of the next.

Both campaigns run end to end through the command line against the planted-bug build (tests/test_fuzz.py), once
with the default folder database and once with a real redis-server that the test starts on a loopback port and
stops after. The second campaign has a budget of one example, so only a replay can find the bug, and its
summary must report it at example 1 with the same shrunk repro as the first campaign.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import redis

from harness.cli.main import main
from harness.core.wait import wait_until

pytestmark = pytest.mark.kernel

PLANTED_BUG = "XHDR_PLANTED_BUG"
# The http target finds the planted bug fastest: after ~150 examples typically, 1435 at worst in 26 runs.
FIRST_BUDGET = 3000
REDIS_START_S = 10.0
REDIS_STOP_S = 10.0


def _campaign(tmp_path: Path, name: str, examples: int, store: list[str]) -> dict[str, Any]:
    """One ``xhdr fuzz`` run against the planted build, found failures saved under tmp_path; its summary."""
    summary = tmp_path / f"{name}.json"
    argv = ["fuzz", "--define", PLANTED_BUG, "--target", "http", "--examples", str(examples), *store]
    argv += ["--lab-sample", "0", "--corpus", str(tmp_path / "corpus"), "--json", str(summary)]
    assert main(argv) == 1, f"campaign {name} found no disagreement"
    return json.loads(summary.read_text())


def _found_then_replayed(tmp_path: Path, store: list[str]) -> None:
    """The first campaign finds and saves the bug; the second, with one example to spend, replays it first."""
    found = _campaign(tmp_path, "found", FIRST_BUDGET, store)
    assert found["first_failure_at_example"] is not None and found["repros"]
    replayed = _campaign(tmp_path, "replayed", 1, store)
    assert replayed["first_failure_at_example"] == 1
    assert replayed["repros"] == found["repros"], "the replay is not the example the first campaign shrank"
    assert found["database"] is not None and replayed["database"] == found["database"]


def test_a_failure_is_replayed_from_the_default_folder(tmp_path, monkeypatch) -> None:
    """Without --db or --redis the database is a folder per target under .hypothesis/xhdr-fuzz/."""
    monkeypatch.chdir(tmp_path)
    _found_then_replayed(tmp_path, [])
    assert any((tmp_path / ".hypothesis/xhdr-fuzz/http").iterdir()), (
        "nothing was saved in the target's folder"
    )


def _free_port() -> int:
    """A loopback port nobody listens on now (the kernel's choice for a bind to port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(server: subprocess.Popen, client: redis.Redis) -> bool:
    """Whether the server answers PING yet; a server that has exited never will."""
    if server.poll() is not None:
        raise RuntimeError(f"redis-server exited with status {server.returncode} before answering PING")
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


class RedisServer(NamedTuple):
    url: str
    client: redis.Redis


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    """A redis-server of the test's own on a free loopback port, keeping nothing on disk; stopped after."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; harness/bootstrap.sh installs it (Debian's redis-server)")
    port = _free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with (tmp_path / "redis.log").open("wb") as log:
        server = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        wait_until(lambda: _answers(server, client), REDIS_START_S, "redis-server to answer PING")
        yield RedisServer(f"redis://127.0.0.1:{port}/0", client)
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=REDIS_STOP_S)
    # Without --save '' a server that was written to saves a dump.rdb when it is stopped.
    assert not (tmp_path / "dump.rdb").exists(), "redis-server left a dump behind"


def test_a_failure_is_replayed_from_redis(tmp_path, redis_server) -> None:
    """The same through Redis, where every worker of a CI matrix finds it."""
    _found_then_replayed(tmp_path, ["--redis", redis_server.url])
    assert redis_server.client.keys("xhdr-fuzz:http:*"), "the campaigns wrote nothing to Redis"
