"""An HTTP server that writes down every request exactly as it arrived, one JSON line each.

Run inside the gateway namespace (``python -m netns.recorder --port 80 --log PATH``). The header list
is rebuilt from the raw header lines, not from ``email.message``: names keep their case, order and
duplicates, which is what the extractor's output is compared against.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any

RESPONSE_BODY = b"xhdr recorder\n"


class _LineTee:
    """Wraps the request stream to keep a copy of every line that the header parser reads."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.lines: list[bytes] = []

    def readline(self, size: int = -1) -> bytes:
        line = self.stream.readline(size)
        self.lines.append(line)
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def raw_header_pairs(lines: list[bytes]) -> list[list[str]]:
    """(name, value) pairs from raw header lines, latin-1 decoded.

    The name is kept byte for byte; the value loses its line ending and its surrounding spaces and tabs
    (RFC 9110's optional whitespace, not part of the value). An obsolete folded line (starting with a
    space or tab) is appended to the previous value with a single space.
    """
    pairs: list[list[str]] = []
    for raw in lines:
        line = raw.rstrip(b"\r\n")
        if not line:
            break
        if line[:1] in (b" ", b"\t") and pairs:
            pairs[-1][1] += " " + line.strip(b" \t").decode("latin-1")
            continue
        name, _, value = line.partition(b":")
        pairs.append([name.decode("latin-1"), value.strip(b" \t").decode("latin-1")])
    return pairs


class RecordingHandler(BaseHTTPRequestHandler):
    """Answers any method with 200 after appending the request to the server's log."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the clients the extractor will see
    server: RecorderServer

    def parse_request(self) -> bool:
        tee = _LineTee(self.rfile)
        self.rfile = tee  # type: ignore[assignment]
        try:
            return super().parse_request()
        finally:
            self.rfile = tee.stream
            self.raw_header_lines = tee.lines

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # every method, including ones http.server has never heard of
            return self._record
        raise AttributeError(name)

    def _record(self) -> None:
        if self.headers.get("Transfer-Encoding", "").strip().lower().endswith("chunked"):
            body = self._chunked_body()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
        address, port = self.client_address[:2]
        if address.startswith("::ffff:") and "." in address:
            address = address.removeprefix("::ffff:")  # an IPv4 client of the dual-stack socket
        self.server.write_entry(
            {
                "method": self.command,
                "target": self._raw_target(),
                "version": self.request_version,
                "headers": raw_header_pairs(self.raw_header_lines),
                "client": address,
                "port": port,
                "family": 6 if ":" in address else 4,
                "body_length": len(body),
            }
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(RESPONSE_BODY)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(RESPONSE_BODY)

    def _chunked_body(self) -> bytes:
        """A chunked body (RFC 9112 section 7.1), which http.server leaves to the handler: its data, decoded;
        extensions and trailers are read and dropped."""
        body = b""
        while size := int(self.rfile.readline().split(b";")[0], 16):
            body += self.rfile.read(size)
            self.rfile.readline()  # the CR LF after the data
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # a trailer line
        return body

    def _raw_target(self) -> str:
        """The target as sent: http.server rewrites ``self.path`` (a leading '//' becomes '/')."""
        words = self.requestline.split()
        return words[1] if len(words) >= 2 else self.path

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the JSON log is the record."""


class RecorderServer(ThreadingHTTPServer):
    """A threading HTTP server that appends entries to a log file, one flushed JSON line each."""

    daemon_threads = True

    def __init__(self, bind: str, port: int, log_path: str) -> None:
        self.address_family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        self._log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the server
        self._lock = threading.Lock()
        super().__init__((bind, port), RecordingHandler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 and IPv6 in one
        super().server_bind()

    def write_entry(self, entry: dict[str, Any]) -> None:
        """Written before the response is sent, so a client that has its answer finds its entry."""
        with self._lock:
            self._log.write(json.dumps(entry) + "\n")
            self._log.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--bind", default="::", help="'::' listens on IPv4 and IPv6 (default)")
    parser.add_argument("--log", required=True, help="file to append one JSON line per request to")
    args = parser.parse_args(argv)
    with RecorderServer(args.bind, args.port, args.log) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
