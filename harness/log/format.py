"""The two line formats of ``xhdr log``, defined in Python.

The compiled consumer (harness/log/consumer/consumer.c) writes these lines at gateway rates; these functions
are their specification, and tests/test_consumer.py holds the consumer to them byte for byte. Anything
else that shows events the way ``xhdr log`` does uses them too.
"""

from __future__ import annotations

import json

from harness.core.config import ExtractorConfig, HeaderMode
from harness.core.event import Event, HeaderEvent, HttpResponse, TlsHello, tls_version_name

REQUEST_IDS = 4096  # entries of the table of recent X-Request-IDs (REQUEST_IDS in consumer.c)
REQUEST_ID = "x-request-id"
RequestKey = tuple[int, int, int, int, str]  # a request's time, ports, family and client address


def event_json(event: Event) -> str:
    """The event's ``to_json()`` on one line; its first key, ``kind``, is ``http``, ``tls`` or ``response``."""
    return json.dumps(event.to_json(), separators=(",", ":"))


class JsonLines:
    """The JSON lines of a run's events in order, as ``xhdr log --json`` writes them: ``event_json()``, and for
    a response, when ``config`` logs X-Request-ID's value, the key ``request_id`` last: the value its request's
    line showed, or null (R25). The requests' values wait in a table of REQUEST_IDS entries indexed by the
    request's time and ports, each replaced by the next request that lands there, as the consumer's."""

    def __init__(self, config: ExtractorConfig) -> None:
        self.slot = next(
            (
                index
                for index, rule in enumerate(config.headers)
                if rule.name.lower() == REQUEST_ID and rule.mode is HeaderMode.VALUE
            ),
            None,
        )
        self.waiting: dict[int, tuple[RequestKey, bytes]] = {}

    def line(self, event: Event) -> str:
        if self.slot is None or isinstance(event, TlsHello):
            return event_json(event)
        if isinstance(event, HeaderEvent):
            value = event.headers[self.slot]
            if value.present:
                key = _request_key(event.timestamp_ns, event)
                self.waiting[_request_id_index(key)] = (key, value.value)
            return event_json(event)
        fields = event.to_json()
        key = _request_key(event.request_ns, event)
        noted = self.waiting.get(_request_id_index(key))
        fields["request_id"] = None
        if noted is not None and noted[0] == key:
            del self.waiting[_request_id_index(key)]
            fields["request_id"] = noted[1].decode("latin-1")
        return json.dumps(fields, separators=(",", ":"))


def _request_key(ns: int, event: HeaderEvent | HttpResponse) -> RequestKey:
    """What names a request: its event's time (a response carries it as request_ns) and its flow's client side."""
    return (ns, event.sport, event.dport, event.family, event.saddr)


def _request_id_index(key: RequestKey) -> int:
    """The entry of the table a request takes: its time and ports mixed, as consumer.c's request_id_entry()."""
    ns, sport, dport = key[:3]
    return (ns ^ sport << 16 ^ dport) & (REQUEST_IDS - 1)


def event_line(event: Event) -> str:
    """One line per event, a request, a TLS ClientHello or a request's response (on the request's flow):

    ``saddr:sport -> daddr:dport METHOD target HTTP/1.x | Name: shown | ... | rule name: action [flags]``
    ``saddr:sport -> daddr:dport TLS 1.3 sni=example.com alpn=h2,http/1.1 [flags]``
    ``saddr:sport -> daddr:dport HTTP/1.1 404 after 512 us``

    Header values may hold CR, NUL or other control bytes (docs/EXTRACTION.md R13), and an SNI or a protocol
    name any byte (R22); they are escaped so that an event can never span two lines or drive the terminal.
    """
    if isinstance(event, HttpResponse):
        what = _response(event)
    else:
        what = _hello(event) if isinstance(event, TlsHello) else _request(event)
    text = f"{_endpoint(event.saddr, event.sport)} -> {_endpoint(event.daddr, event.dport)} {what}"
    if not isinstance(event, HttpResponse) and event.flags:
        text += f" [{','.join(flag.name.lower() for flag in type(event.flags) if event.flags & flag)}]"
    return printable(text)


def _request(event: HeaderEvent) -> str:
    version = f"HTTP/{event.version // 10}.{event.version % 10}" if event.version else "HTTP/?"
    target = event.target.decode("latin-1") + ("..." if event.target_length > len(event.target) else "")
    text = f"{event.method.decode('latin-1')} {target} {version}"
    for value in event.headers:
        if value.present:
            text += f" | {value.name}: {value.shown()}"
    if event.rule is not None and event.action is not None:
        text += f" | rule {event.rule}: {event.action.label}"
    return text


def _response(event: HttpResponse) -> str:
    """``HTTP/1.1 404 after 512 us``: the status line's version and status, and the request's latency."""
    return f"HTTP/{event.version // 10}.{event.version % 10} {event.status} after {event.latency_us} us"


def _hello(event: TlsHello) -> str:
    """``TLS <version> sni=<name> alpn=<names>``: ``...`` after a truncated SNI (as after a target), ``-`` for
    none. The protocol names are the whole ones in the kept bytes; ``alpn_truncated`` says more were offered."""
    sni = event.sni.decode("latin-1") + ("..." if event.sni_length > len(event.sni) else "")
    alpn = ",".join(name.decode("latin-1") for name in event.alpn)
    return f"TLS {tls_version_name(event.tls_version)} sni={sni or '-'} alpn={alpn or '-'}"


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def printable(text: str) -> str:
    """Escapes every non-printable character (C0, DEL, C1 controls) as \\xNN."""
    return "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in text)
