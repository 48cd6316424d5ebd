"""The audit chain of ``xhdr log --audit``: checking a log, and making a key (docs/AUDIT.md).

The compiled consumer seals each JSON line as it writes it: the line gets ``"seq"`` (1, 2, ... in each run)
and then ``"mac"``, HMAC-SHA256 under the key over the previous line's MAC and the line up to ``"seq"`` and
its closing brace. A run that ends as asked writes an end record, sealed the same way. So a changed line
fails its MAC, a removed or moved line breaks the sequence, and a log cut after its last line lacks the end
record. What cannot be told apart is a cut log from a logger killed outright: both end without the record.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from pathlib import Path

KEY_BYTES = 32
KEY_MIN, KEY_MAX = 16, 1024  # what the consumer accepts (consumer.c, AUDIT_KEY_*)
MAC_BYTES = 32
END_RECORD = b'{"audit":"end",'
_MAC = re.compile(rb',"mac":"([0-9a-f]{64})"}$')
_SEQ = re.compile(rb',"seq":([0-9]+)}$')


class AuditError(ValueError):
    """The log is not intact: one line that names the first line at fault and what happened to it."""


@dataclasses.dataclass(frozen=True)
class AuditSummary:
    lines: int
    events: int
    runs: int


def read_key(path: Path) -> bytes:
    """The key file's bytes; a missing, short or long file is a one-line error that says how to make one."""
    try:
        key = path.read_bytes()
    except OSError as error:
        raise AuditError(f"cannot read the audit key {path}: {error.strerror}") from None
    if not KEY_MIN <= len(key) <= KEY_MAX:
        raise AuditError(
            f"the audit key {path} has {len(key)} bytes; it needs {KEY_MIN} to {KEY_MAX} "
            f"(`xhdr audit newkey FILE` makes one)"
        )
    return key


def new_key(path: Path) -> None:
    """Writes KEY_BYTES random bytes to a new file only its owner can read; never replaces a key."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AuditError(f"{path} exists; a key is never overwritten, choose another name") from None
    with os.fdopen(fd, "wb") as out:
        out.write(os.urandom(KEY_BYTES))


def verify(lines: Iterable[bytes], key: bytes) -> AuditSummary:
    """Checks every line of a log, in order; raises AuditError naming the first line at fault."""
    previous, due, ended, number = bytes(MAC_BYTES), 1, True, 0  # a run starts at seq 1, after an end record
    events = runs = 0
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip(b"\n")
        sealed = _MAC.search(line)
        body = line[: sealed.start()] + b"}" if sealed else b""
        counted = _SEQ.search(body)
        if not sealed or not counted:
            raise AuditError(f"line {number} is not sealed (no seq or mac): it was changed or added")
        seq = int(counted[1])
        if seq == 1 and due != 1:
            raise AuditError(
                f"line {number} starts a run, but the run before it has no end record: lines were removed "
                "before it, or that logger was killed"
            )
        if seq != due:
            happened = "removed" if seq > due else "moved or repeated"
            raise AuditError(
                f"line {number} has seq {seq} where {due} was due: lines were {happened} before it"
            )
        mac = hmac.new(key, previous + body, hashlib.sha256).digest()
        if not hmac.compare_digest(mac.hex().encode(), sealed[1]):
            raise AuditError(f"line {number} was changed (its MAC does not match)")
        runs += seq == 1
        ended = body.startswith(END_RECORD)
        previous, due = (bytes(MAC_BYTES), 1) if ended else (mac, seq + 1)
        events += not ended
    if not ended:
        raise AuditError(
            f"the log ends at line {number} without its end record: lines were removed from the end, "
            "or the logger was killed"
        )
    return AuditSummary(lines=number, events=events, runs=runs)
