"""The variant matrix of ``xhdr verify``: which builds of a program the verifier must accept.

A matrix is a TOML file with one ``[[variant]]`` table per build::

    [[variant]]
    name = "largest"                                   # unique; the key in results and baselines
    limits = { max_scan_bytes = 1536, max_requests_per_packet = 8 }   # ExtractorConfig limits
    defines = { XHDR_STEP_WORDS = 4, XHDR_FEATURE = true } # other -D: value, true (defined), false (not)
    [[variant.rules]]                                  # request rules (docs/EXTRACTION.md R27), as in a
    name = "drop-admin"                                # configuration: a map, not a build, so they change
    action = "drop"                                    # what the kernel matrix compares, not the build
    [variant.rules.when]
    target = { prefix = "/admin" }

``limits`` go through ExtractorConfig, so a limit outside LIMIT_RANGES is refused by the same check that
guards every other way of building the extractor; unset limits keep their defaults. A new variant is a new
table in the file, nothing to register in Python. Everything is checked before anything is compiled.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

from harness.core.config import LIMIT_RANGES, ConfigError, ExtractorConfig, read_input
from harness.core.rules import Rule, RuleError, parse_rules

MATRIX_DIR = Path(__file__).with_name("variants")
DEFAULT_MATRIX = MATRIX_DIR / "default.toml"
DEFAULT_BASELINE = MATRIX_DIR / "baseline.json"

VARIANT_KEYS = ("name", "limits", "defines", "rules")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_MACRO = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Flags every build gets: BCC's rewriting leaves static helpers unused in some variants.
COMMON_CFLAGS = ("-Wno-unused-function",)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One build: a name, the extractor limits it sets and other -D values, and the rules it runs with."""

    name: str
    limits: dict[str, int] = dataclasses.field(default_factory=dict)
    defines: dict[str, int | str | bool] = dataclasses.field(default_factory=dict)
    rules: tuple[Rule, ...] = ()

    def config(self) -> ExtractorConfig:
        """The extractor's configuration for this variant: its limits and rules, defaults for the rest."""
        return ExtractorConfig(**self.limits, rules=self.rules)

    def cflags(self, *, extractor: bool) -> list[str]:
        """-D flags for this build. The extractor always gets all its limits, defaults included, so the
        flags in a report say exactly what was built; another program only gets the limits it was given."""
        flags = ExtractorConfig(**self.limits).compile_flags() if extractor or self.limits else []
        for macro, value in self.defines.items():
            if value is True:
                flags.append(f"-D{macro}")
            elif value is not False:
                flags.append(f"-D{macro}={value}")
        return [*flags, *COMMON_CFLAGS]


SINGLE_BUILD = (Variant("default"),)


def load_matrix(path: Path) -> tuple[Variant, ...]:
    """Reads and checks a matrix file; any problem is one ConfigError line naming the file and variant."""
    try:
        raw = tomllib.loads(read_input(path, "matrix file"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"matrix file {path} is not valid TOML: {error}") from None
    unknown = sorted(set(raw) - {"variant"})
    if unknown:
        raise ConfigError(
            f"matrix file {path}: unknown key {unknown[0]!r}; the file holds [[variant]] tables only"
        )
    entries = raw.get("variant")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"matrix file {path} has no [[variant]] tables; add at least one")
    variants: list[Variant] = []
    for index, entry in enumerate(entries, 1):
        variant = _variant(path, index, entry)
        if any(existing.name == variant.name for existing in variants):
            raise ConfigError(
                f"matrix file {path}: variant name {variant.name!r} is used twice; names must be unique"
            )
        variants.append(variant)
    return tuple(variants)


def _variant(path: Path, index: int, entry: object) -> Variant:
    where = f"matrix file {path}: variant #{index}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} is not a table; write it as [[variant]]")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where} needs a name of letters, digits and _.+- (got {name!r})")
    where = f"matrix file {path}: variant {name!r}"
    unknown = sorted(set(entry) - set(VARIANT_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(VARIANT_KEYS)}")
    limits = entry.get("limits", {})
    defines = entry.get("defines", {})
    if not isinstance(limits, dict) or not isinstance(defines, dict):
        raise ConfigError(
            f"{where}: limits and defines must be tables, e.g. limits = {{ max_value_len = 64 }}"
        )
    unknown = sorted(set(limits) - set(LIMIT_RANGES))
    if unknown:
        raise ConfigError(f"{where}: unknown limit {unknown[0]!r}; known limits: {', '.join(LIMIT_RANGES)}")
    try:
        rules = parse_rules(entry.get("rules", []))
        ExtractorConfig(**limits, rules=rules)
    except (ConfigError, RuleError, TypeError) as error:
        raise ConfigError(f"{where}: {error}") from None
    for macro, value in defines.items():
        if not _MACRO.match(macro):
            raise ConfigError(f"{where}: define {macro!r} is not a C macro name")
        if not isinstance(value, bool | int | str) or (isinstance(value, str) and not value.strip()):
            raise ConfigError(f"{where}: define {macro} = {value!r}; use an integer, a string, true or false")
    return Variant(name=name, limits=dict(limits), defines=dict(defines), rules=rules)
