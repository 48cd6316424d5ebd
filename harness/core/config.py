"""What a user may choose about the extractor, with defaults good enough for the demo.

An ``ExtractorConfig`` is split in two by how it reaches the kernel: the limits become ``-D`` flags at
compile time (the verifier must see them as constants to bound the loops), while the watched ports and
the logged headers are written into maps, so they change on a loaded program without a reload.
"""

from __future__ import annotations

import dataclasses
import enum
import tomllib
from pathlib import Path

from harness.core.errors import UserError
from harness.core.rules import METHOD, TARGET, Rule, RuleError, check_rules, parse_rules


class ConfigError(UserError, ValueError):
    """A configuration that cannot be built; the message is one line naming the field and the fix."""


# How much of a user's value an error message repeats: enough to recognise it, never a screenful.
SHOWN_CHARS = 40


def shown(value: object) -> str:
    """``value`` as an error message quotes it (its repr), cut after SHOWN_CHARS characters."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


def is_integer(value: object) -> bool:
    """An int that is not a bool: TOML's ``true`` arrives as True, which Python counts as the int 1."""
    return isinstance(value, int) and not isinstance(value, bool)


class HeaderMode(enum.IntEnum):
    """How a configured header leaves the kernel. Values match XHDR_MODE_* in bpf/xhdr_event.h."""

    VALUE = 1  # the trimmed value, truncated to max_value_len
    HASH = 2  # presence and a keyed SipHash-2-4 of the value; never the value itself
    AUTH = 3  # as HASH, plus the authentication scheme (the token before the first space)
    PRESENCE = 4  # presence and length only


HASHED_MODES = (HeaderMode.HASH, HeaderMode.AUTH)  # the modes whose value leaves the kernel only as a hash

RING_PAGE_BYTES = 4096  # BPF ring buffers are sized in pages


@dataclasses.dataclass(frozen=True)
class HeaderRule:
    name: str
    mode: HeaderMode = HeaderMode.VALUE


# Slots in the event are fixed so the event layout does not depend on runtime configuration.
MAX_HEADER_RULES = 8
MAX_HEADER_NAME_LEN = 32
METHOD_MAX_LEN = 16
SCHEME_MAX_LEN = 16

TCHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

DEFAULT_HEADERS = (
    HeaderRule("Host"),
    HeaderRule("User-Agent"),
    HeaderRule("X-Request-ID"),
    HeaderRule("X-Forwarded-For"),
    HeaderRule("Referer"),
    HeaderRule("X-API-Version"),
    HeaderRule("Authorization", HeaderMode.AUTH),
    HeaderRule("Cookie", HeaderMode.HASH),
)

DEFAULT_TLS_PORTS = (443, 8443)

# (lowest, highest) accepted for each compile-time limit. The highest values are the largest the
# verifier accepts on the supported kernels; the verify matrix exercises both ends.
LIMIT_RANGES: dict[str, tuple[int, int]] = {
    "max_header_lines": (1, 64),
    "max_value_len": (16, 256),
    "max_target_len": (8, 512),
    "max_scan_bytes": (64, 1536),
    "max_requests_per_packet": (1, 8),
    "ringbuf_pages": (1, 4096),
    "max_flows": (16, 1 << 18),
    "max_request_segments": (1, 64),
}


@dataclasses.dataclass(frozen=True)
class ExtractorConfig:
    """Everything that shapes what the extractor logs. Every field has a default."""

    ports: tuple[int, ...] = (80, 8080)
    # R21: ports whose flows start with a TLS ClientHello; may be empty. None: DEFAULT_TLS_PORTS, but for those
    # listed in ports (a configuration that reads HTTP on 443 keeps doing so).
    tls_ports: tuple[int, ...] | None = None
    headers: tuple[HeaderRule, ...] = DEFAULT_HEADERS
    max_header_lines: int = 32
    max_value_len: int = 128
    max_target_len: int = 128
    max_scan_bytes: int = 1536  # R7: a whole segment of a 1500-byte MTU, so R18 can continue its headers
    max_requests_per_packet: int = 4
    ringbuf_pages: int = 512  # 2 MiB: about 1,500 events of backlog before any is lost
    max_request_segments: int = 8  # R18: segments one request's header section may span
    max_flows: int = 65536  # R15: TCP flows tracked at once (LRU); about 190 bytes of kernel memory each
    # R24: logged requests wait for their responses, which the TC egress program pairs with them (xhdr log
    # attaches it); off, the extractor spends nothing on it
    responses: bool = False
    # R27-R29: which requests are logged, dropped, counted or sampled; in a map, so they change at runtime
    rules: tuple[Rule, ...] = ()

    def __post_init__(self) -> None:
        for field, (low, high) in LIMIT_RANGES.items():
            value = getattr(self, field)
            if not is_integer(value):
                raise ConfigError(
                    f"{field} = {shown(value)} must be an integer from {low} to {high} (a whole number, no quotes)"
                )
            if not low <= value <= high:
                raise ConfigError(
                    f"{field} = {shown(value)} is out of range; choose an integer from {low} to {high}"
                )
        if not isinstance(self.responses, bool):
            raise ConfigError(f"responses = {shown(self.responses)} must be true or false (no quotes)")
        if self.ringbuf_pages & (self.ringbuf_pages - 1):
            raise ConfigError(f"ringbuf_pages = {self.ringbuf_pages} must be a power of two (1, 2, 4, ...)")
        if not self.ports:
            raise ConfigError("ports is empty; list at least one TCP destination port to watch")
        if self.tls_ports is None:
            object.__setattr__(self, "tls_ports", tuple(p for p in DEFAULT_TLS_PORTS if p not in self.ports))
        for key in ("ports", "tls_ports"):
            for port in getattr(self, key):
                if not is_integer(port):
                    raise ConfigError(
                        f"port {shown(port)} in {key} must be an integer from 1 to 65535 (a whole number, no quotes)"
                    )
                if not 1 <= port <= 65535:
                    raise ConfigError(
                        f"port {shown(port)} in {key} is not a TCP port; use integers from 1 to 65535"
                    )
        both = sorted(set(self.ports) & set(self.tls_ports))
        if both:
            raise ConfigError(
                f"port {both[0]} is in both ports and tls_ports; list it in ports for HTTP or in tls_ports for TLS"
            )
        if not 1 <= len(self.headers) <= MAX_HEADER_RULES:
            raise ConfigError(
                f"headers lists {len(self.headers)} rules; give between 1 and {MAX_HEADER_RULES}"
            )
        seen: set[str] = set()
        for rule in self.headers:
            name = rule.name
            if not isinstance(name, str):
                raise ConfigError(
                    f'header name {shown(name)} must be a string; quote it, for example name = "Host"'
                )
            if (
                not name
                or len(name) > MAX_HEADER_NAME_LEN
                or not set(name.encode("latin-1", "replace")) <= TCHARS
            ):
                raise ConfigError(
                    f"header name {shown(name)} is not a token of 1 to {MAX_HEADER_NAME_LEN} characters "
                    "(letters, digits and !#$%&'*+-.^_`|~)"
                )
            if name.lower() in seen:
                raise ConfigError(f"header {shown(name)} is listed twice; keep one rule per header")
            seen.add(name.lower())
        try:
            check_rules(self.rules, self.rule_fields())
        except RuleError as error:
            raise ConfigError(str(error)) from None

    def rule_fields(self) -> dict[str, int]:
        """R27: what a rule's condition may name, lower-cased, and the most bytes of it an event holds."""
        values = {
            rule.name.lower(): self.max_value_len for rule in self.headers if rule.mode is HeaderMode.VALUE
        }
        return {METHOD: METHOD_MAX_LEN, TARGET: self.max_target_len, **values}

    @property
    def ring_bytes(self) -> int:
        """The ring buffer's size: its pages are the kernel's 4 KiB ones."""
        return self.ringbuf_pages * RING_PAGE_BYTES

    def compile_flags(self) -> list[str]:
        """The -D flags that carry the compile-time limits into bpf/xhdr.c."""
        return [
            f"-DXHDR_MAX_HEADER_LINES={self.max_header_lines}",
            f"-DXHDR_MAX_VALUE_LEN={self.max_value_len}",
            f"-DXHDR_MAX_TARGET_LEN={self.max_target_len}",
            f"-DXHDR_MAX_SCAN_BYTES={self.max_scan_bytes}",
            f"-DXHDR_MAX_REQUESTS={self.max_requests_per_packet}",
            f"-DXHDR_RINGBUF_PAGES={self.ringbuf_pages}",
            f"-DXHDR_MAX_FLOWS={self.max_flows}",
            f"-DXHDR_MAX_REQUEST_SEGMENTS={self.max_request_segments}",
        ]

    def with_changes(self, **changes: object) -> ExtractorConfig:
        return dataclasses.replace(self, **changes)


def read_input(path: Path, what: str, if_missing: str = "check the path") -> str:
    """The text of a file the user named (``what`` says which); whatever keeps it from being read is one
    ConfigError line naming it and what to do (``if_missing`` when it does not exist)."""
    try:
        if path.is_dir():  # inside: in a directory the user cannot search, this raises PermissionError
            raise ConfigError(f"{what} {path} is a directory; give the file itself")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist; {if_missing}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text; save it as UTF-8") from None
    except OSError as error:
        raise ConfigError(f"{what} {path} cannot be read ({error.strerror}); give a readable file") from None


def load_config(path: str | Path) -> ExtractorConfig:
    """Reads a TOML file; keys are the ExtractorConfig fields, headers as [[headers]] tables.

    Example::

        ports = [80]
        max_value_len = 64
        [[headers]]
        name = "Host"
        [[headers]]
        name = "Authorization"
        mode = "auth"
    """
    path = Path(path)
    try:
        raw = tomllib.loads(read_input(path, "config file"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    known = {field.name for field in dataclasses.fields(ExtractorConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown key {shown(unknown[0])}; known keys: {', '.join(sorted(known))}"
        )
    for key in ("ports", "tls_ports", "headers", "rules"):
        if key in raw and not isinstance(raw[key], list):
            raise ConfigError(f"config file {path}: {key} must be a list (for example {key} = [...])")
    for key in ("ports", "tls_ports"):
        if key in raw:
            raw[key] = tuple(raw[key])
    if "headers" in raw:
        raw["headers"] = tuple(_header_rule(path, entry) for entry in raw["headers"])
    try:
        if "rules" in raw:
            raw["rules"] = parse_rules(raw["rules"])
        return ExtractorConfig(**raw)
    except (ConfigError, RuleError) as error:
        raise ConfigError(f"config file {path}: {error}") from None


def _header_rule(path: Path, entry: object) -> HeaderRule:
    if not isinstance(entry, dict) or "name" not in entry or set(entry) - {"name", "mode"}:
        raise ConfigError(f"config file {path}: each [[headers]] entry needs name and optionally mode")
    mode_name = entry.get("mode", "value")
    if not isinstance(mode_name, str) or mode_name.upper() not in HeaderMode.__members__:
        choices = ", ".join(m.name.lower() for m in HeaderMode)
        raise ConfigError(f"config file {path}: header mode {shown(mode_name)} unknown; use one of {choices}")
    # The name is passed on as it is: ExtractorConfig rejects one that is not a string.
    return HeaderRule(entry["name"], HeaderMode[mode_name.upper()])
