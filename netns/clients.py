"""Real HTTP clients that send from the lab's client namespace, so the XDP program sees their bytes.

Two kinds: curl (a real-world client, with its own header habits) and Python's http.client driven so
that the request carries exactly the headers given, in the order given. Both return once the response
has been received, and raise ``ClientError`` with one line on any failure.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.core.errors import UserError
from netns.lab import Host, Lab, last_line
from netns.nsenter import inside

CURL = "/usr/bin/curl"
CURL_DEFAULT_HEADERS = ("Host", "User-Agent", "Accept")


class ClientError(UserError, RuntimeError):
    """An HTTP client in the lab failed; the message is one line."""


@dataclasses.dataclass(frozen=True)
class Response:
    """What the server answered."""

    status: int
    body: bytes


def curl(
    lab: Lab,
    url: str,
    headers: Mapping[str, str] | None = None,
    *,
    method: str = "GET",
    data: bytes | None = None,
    only_given_headers: bool = False,
    timeout: float = 10.0,
    host: Host | None = None,
    options: Sequence[str] = (),
) -> Response:
    """Fetch ``url`` with curl in the client namespace (or ``host``), adding ``headers`` in order.

    With ``only_given_headers`` curl's own Host, User-Agent and Accept are suppressed unless given, so
    the request carries exactly ``headers``. An empty value is sent as an empty header (``Name;``).
    ``options`` go to curl as they are (TLS ones, for example).
    """
    host = host or lab.client
    assert lab.workdir is not None, "curl() needs an entered lab"
    fd, body_path = tempfile.mkstemp(dir=lab.workdir, prefix="curl-", suffix=".body")
    os.close(fd)
    argv = [CURL, "--silent", "--show-error", "--max-time", str(timeout), "--output", body_path]
    argv += ["--write-out", "%{http_code}", *options]
    given = {name.lower() for name in (headers or {})}
    if only_given_headers:
        argv += [
            arg for name in CURL_DEFAULT_HEADERS if name.lower() not in given for arg in ("-H", f"{name}:")
        ]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}" if value else f"{name};"]
    if method == "HEAD":
        argv.append("--head")
    elif method != "GET" or data is not None:
        argv += ["--request", method]
    if data is not None:
        argv += ["--data-binary", "@-"]
    argv.append(url)
    try:
        done = lab.run(host, argv, timeout=timeout + 5.0, input=data, check=False)
        if done.returncode != 0:
            raise ClientError(
                f"curl {method} {url} from {host.netns} exited {done.returncode}: {last_line(done.stderr)}"
            )
        return Response(status=int(done.stdout.decode().strip()), body=Path(body_path).read_bytes())
    except TimeoutError as exc:
        raise ClientError(f"curl {method} {url}: {exc}") from None
    finally:
        os.unlink(body_path)


def http_client(
    lab: Lab,
    host: str,
    port: int = 80,
    method: str = "GET",
    target: str = "/",
    headers: Mapping[str, str] | None = None,
    *,
    body: bytes | None = None,
    timeout: float = 10.0,
    source: Host | None = None,
) -> Response:
    """Send one request with http.client from the client namespace (or ``source``) to ``host``:``port``.

    Exactly ``headers`` are sent, in order - no Host or Accept-Encoding is added, and no Content-Length
    either: give it in ``headers`` when sending a ``body``. The connection's socket is created inside
    the namespace by this thread (``setns``), so no subprocess is needed; the rest runs as usual.
    """
    source = source or lab.client
    shown = f"[{host}]" if ":" in host else host
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        with inside(source.netns):
            conn.connect()
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return Response(status=response.status, body=response.read())
    except (OSError, http.client.HTTPException) as exc:
        raise ClientError(
            f"http.client {method} http://{shown}:{port}{target}: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        conn.close()
