"""The two line formats of ``xhdr log``, defined in Python.

The compiled consumer (harness/log/consumer/consumer.c) writes these lines at gateway rates; these functions
are their specification, and tests/test_consumer.py holds the consumer to them byte for byte. Anything
else that shows events the way ``xhdr log`` does uses them too.
"""

from __future__ import annotations

import json

from harness.core.event import HeaderEvent


def event_json(event: HeaderEvent) -> str:
    return json.dumps(event.to_json(), separators=(",", ":"))


def event_line(event: HeaderEvent) -> str:
    """``saddr:sport -> daddr:dport METHOD target HTTP/1.x | Name: shown | ...`` on one line.

    Header values may hold CR, NUL or other control bytes (docs/EXTRACTION.md R13); they are escaped so
    that an event can never span two lines or drive the terminal.
    """
    version = f"HTTP/{event.version // 10}.{event.version % 10}" if event.version else "HTTP/?"
    target = event.target.decode("latin-1") + ("..." if event.target_length > len(event.target) else "")
    parts = [
        f"{_endpoint(event.saddr, event.sport)} -> {_endpoint(event.daddr, event.dport)}",
        f"{event.method.decode('latin-1')} {target} {version}",
    ]
    text = " ".join(parts)
    for value in event.headers:
        if value.present:
            text += f" | {value.name}: {value.shown()}"
    if event.flags:
        text += f" [{','.join(flag.name.lower() for flag in type(event.flags) if event.flags & flag)}]"
    return printable(text)


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def printable(text: str) -> str:
    """Escapes every non-printable character (C0, DEL, C1 controls) as \\xNN."""
    return "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in text)
