"""ExtractorConfig and load_config: what is accepted, and that every refusal is one line naming the field.

The limit cases are generated from LIMIT_RANGES, so a new limit is covered by adding its table row.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.config import (
    DEFAULT_HEADERS,
    LIMIT_RANGES,
    MAX_HEADER_NAME_LEN,
    MAX_HEADER_RULES,
    SHOWN_CHARS,
    ConfigError,
    ExtractorConfig,
    HeaderMode,
    HeaderRule,
    load_config,
)


def one_line_error(error: pytest.ExceptionInfo[ConfigError], *needles: str) -> str:
    message = str(error.value)
    assert message and "\n" not in message, repr(message)
    for needle in needles:
        assert needle in message, message
    return message


def test_defaults_are_valid_and_watch_http() -> None:
    config = ExtractorConfig()
    assert config.ports == (80, 8080)
    assert config.headers == DEFAULT_HEADERS
    for field, (low, high) in LIMIT_RANGES.items():
        assert low <= getattr(config, field) <= high, field


def test_compile_flags_carry_every_limit() -> None:
    config = ExtractorConfig(max_target_len=101, max_value_len=17)
    flags = config.compile_flags()
    assert "-DXHDR_MAX_TARGET_LEN=101" in flags
    assert "-DXHDR_MAX_VALUE_LEN=17" in flags
    assert len(flags) == len(LIMIT_RANGES)


# --- limits ----------------------------------------------------------------------------------------

ENDS = [(field, value) for field, (low, high) in LIMIT_RANGES.items() for value in (low, high)]
PAST_ENDS = [(field, value) for field, (low, high) in LIMIT_RANGES.items() for value in (low - 1, high + 1)]


@pytest.mark.parametrize(("field", "value"), ENDS, ids=[f"{f}={v}" for f, v in ENDS])
def test_limit_at_each_end_is_accepted_and_reaches_the_build(field: str, value: int) -> None:
    """Accepted, and carried to the kernel build: of the -D flags, exactly the one of this limit changes."""
    default = ExtractorConfig().compile_flags()
    changed = ExtractorConfig(**{field: value}).compile_flags()
    moved = [flag for flag, before in zip(changed, default, strict=True) if flag != before]
    assert len(moved) == (value != getattr(ExtractorConfig(), field))
    assert all(flag.endswith(f"={value}") for flag in moved)


@pytest.mark.parametrize(("field", "value"), PAST_ENDS, ids=[f"{f}={v}" for f, v in PAST_ENDS])
def test_limit_past_each_end_is_rejected(field: str, value: int) -> None:
    low, high = LIMIT_RANGES[field]
    with pytest.raises(ConfigError) as error:
        ExtractorConfig(**{field: value})
    one_line_error(error, field, str(low), str(high))


@pytest.mark.parametrize("value", [True, 64.0, "64"], ids=["bool", "float", "str"])
@pytest.mark.parametrize("field", LIMIT_RANGES)
def test_limit_of_wrong_type_is_rejected(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as error:
        ExtractorConfig(**{field: value})
    message = one_line_error(error, f"{field} = {value!r} must be an integer")
    assert "out of range" not in message  # the range is not what is wrong with "64"


def test_ringbuf_pages_must_be_a_power_of_two() -> None:
    with pytest.raises(ConfigError) as error:
        ExtractorConfig(ringbuf_pages=3)
    one_line_error(error, "ringbuf_pages", "power of two")


# --- ports and headers -----------------------------------------------------------------------------


@pytest.mark.parametrize("ports", [(1,), (65535,), (80, 443, 8080)])
def test_valid_ports_are_accepted_from_a_config_file(tmp_path: Path, ports: tuple[int, ...]) -> None:
    path = tmp_path / "xhdr.toml"
    path.write_text(f"ports = [{', '.join(map(str, ports))}]\n")
    assert load_config(path).ports == ports  # parsed from TOML text, not handed over as a tuple


@pytest.mark.parametrize(
    ("ports", "needle"),
    [
        ((), "ports is empty"),
        ((0,), "port 0"),
        ((65536,), "port 65536"),
        (("80",), "port '80' in ports must be an integer"),
        ((True,), "port True in ports must be an integer"),
    ],
    ids=["empty", "zero", "too-high", "string", "bool"],
)
def test_invalid_ports_are_rejected(ports: tuple[object, ...], needle: str) -> None:
    with pytest.raises(ConfigError) as error:
        ExtractorConfig(ports=ports)  # type: ignore[arg-type]
    one_line_error(error, needle)


@pytest.mark.parametrize(
    ("text", "tls_ports"),
    [
        ("", (443, 8443)),
        ("ports = [80, 443]", (8443,)),  # HTTP on 443 stays HTTP: the default gives way
        ("tls_ports = []", ()),
        ("tls_ports = [9443]", (9443,)),
    ],
    ids=["default", "http-on-443", "none", "own"],
)
def test_tls_ports_default_to_443_and_8443_unless_read_as_http(
    tmp_path: Path, text: str, tls_ports: tuple[int, ...]
) -> None:
    path = tmp_path / "xhdr.toml"
    path.write_text(text + "\n")
    assert load_config(path).tls_ports == tls_ports


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"ports": (80, 443), "tls_ports": (443,)}, "port 443 is in both ports and tls_ports"),
        ({"tls_ports": (0,)}, "port 0 in tls_ports"),
        ({"tls_ports": ("443",)}, "port '443' in tls_ports must be an integer"),
    ],
    ids=["both", "zero", "string"],
)
def test_invalid_tls_ports_are_rejected(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as error:
        ExtractorConfig(**changes)  # type: ignore[arg-type]
    one_line_error(error, needle)


def test_header_rule_limits_are_accepted_from_a_config_file(tmp_path: Path) -> None:
    """As many rules as there are slots, the last with the longest name and a mode, read from TOML text."""
    names = [f"X-{index}" for index in range(MAX_HEADER_RULES - 1)] + ["X" * MAX_HEADER_NAME_LEN]
    path = tmp_path / "xhdr.toml"
    path.write_text("".join(f'[[headers]]\nname = "{name}"\n' for name in names) + 'mode = "presence"\n')
    rules = load_config(path).headers
    assert [rule.name for rule in rules] == names
    assert [rule.mode for rule in rules] == [HeaderMode.VALUE] * (MAX_HEADER_RULES - 1) + [
        HeaderMode.PRESENCE
    ]


@pytest.mark.parametrize(
    ("headers", "needle"),
    [
        ((), "headers lists 0 rules"),
        (tuple(HeaderRule(f"X-{i}") for i in range(MAX_HEADER_RULES + 1)), f"lists {MAX_HEADER_RULES + 1}"),
        ((HeaderRule(""),), "header name ''"),
        ((HeaderRule("X" * (MAX_HEADER_NAME_LEN + 1)),), "X" * (MAX_HEADER_NAME_LEN + 1)),
        ((HeaderRule("X Y"),), "'X Y'"),
        ((HeaderRule("Host:"),), "'Host:'"),
        ((HeaderRule("H\u00f6st"),), "'H\u00f6st'"),
        ((HeaderRule("X-\u20ac"),), "'X-\u20ac'"),
        ((HeaderRule("Host"), HeaderRule("HOST", HeaderMode.HASH)), "listed twice"),
        ((HeaderRule(5),), "header name 5 must be a string"),  # type: ignore[arg-type]
    ],
    ids=[
        "none",
        "too-many",
        "empty-name",
        "long-name",
        "space",
        "colon",
        "latin-1",
        "non-latin-1",
        "twice",
        "not-a-string",
    ],
)
def test_invalid_headers_are_rejected(headers: tuple[HeaderRule, ...], needle: str) -> None:
    with pytest.raises(ConfigError) as error:
        ExtractorConfig(headers=headers)
    one_line_error(error, needle)


# --- load_config -----------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "xhdr.toml"
    path.write_text(text)
    return path


def test_load_config_reads_ports_limits_headers_and_modes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
ports = [80, 8000]
max_value_len = 64
max_scan_bytes = 512

[[headers]]
name = "Host"

[[headers]]
name = "Authorization"
mode = "auth"

[[headers]]
name = "Cookie"
mode = "HASH"

[[headers]]
name = "Content-Length"
mode = "presence"

[[headers]]
name = "User-Agent"
mode = "value"
""",
    )
    assert load_config(path) == ExtractorConfig(
        ports=(80, 8000),
        max_value_len=64,
        max_scan_bytes=512,
        headers=(
            HeaderRule("Host"),
            HeaderRule("Authorization", HeaderMode.AUTH),
            HeaderRule("Cookie", HeaderMode.HASH),
            HeaderRule("Content-Length", HeaderMode.PRESENCE),
            HeaderRule("User-Agent", HeaderMode.VALUE),
        ),
    )


def test_load_config_of_an_empty_file_is_the_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")) == ExtractorConfig()


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("colour = 'blue'\n", ("unknown key 'colour'", "max_value_len")),
        ("[[headers]]\nname = 'Host'\nmode = 'secret'\n", ("mode 'secret'", "value, hash, auth, presence")),
        ("[[headers]]\nmode = 'hash'\n", ("[[headers]]", "name")),
        ("[[headers]]\nname = 'Host'\ncase = 'upper'\n", ("[[headers]]",)),
        ("ports = [80\n", ("not valid TOML",)),
        ("max_scan_bytes = 4096\n", ("max_scan_bytes = 4096", "64 to 1536")),
        ("ports = [0]\n", ("port 0",)),
        ("ports = [true]\n", ("port True in ports", "must be an integer")),
        ("[[headers]]\nname = 5\n", ("header name 5", "must be a string")),
        ("[[headers]]\nname = 'Host'\nmode = 2\n", ("header mode 2 unknown",)),
        ('max_value_len = "128"\n', ("max_value_len = '128' must be an integer", "16 to 256")),
    ],
    ids=[
        "unknown-key",
        "bad-mode",
        "header-without-name",
        "header-extra-key",
        "bad-toml",
        "range",
        "port",
        "port-true",
        "name-number",
        "mode-number",
        "limit-string",
    ],
)
def test_load_config_errors_are_one_line_naming_file_and_field(
    tmp_path: Path, text: str, needles: tuple[str, ...]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    one_line_error(error, str(path), *needles)


def test_a_long_header_name_is_echoed_cut(tmp_path: Path) -> None:
    path = write(tmp_path, f"[[headers]]\nname = '{'X' * 5000}'\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = one_line_error(error, str(path), "'" + "X" * (SHOWN_CHARS - 1) + "...", "not a token")
    assert len(message) < len(str(path)) + 200, message


def test_load_config_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as error:
        load_config(path)
    one_line_error(error, str(path), "does not exist")


def test_load_config_with_scalar_ports_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "ports = 80\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    one_line_error(error, str(path), "ports")


def test_load_config_of_a_directory_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path)
    one_line_error(error, str(tmp_path))


def test_load_config_of_non_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "xhdr.toml"
    path.write_bytes(b"ports = [80]\n# \xff\xfe\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    one_line_error(error, str(path))
