"""Request rules (docs/EXTRACTION.md R27-R29): which logged requests are logged, counted, sampled or dropped.

A rule names conditions on a request's method, target and configured header values, all of which must hold,
and an action. The first rule in the file whose conditions hold is the request's rule. Rules live in a map,
so ``xhdr log`` changes them on a running program (SIGHUP) without a reload; this module is the one place
that reads them from TOML and checks them, and ``harness.oracle.reference`` judges requests by them.
"""

from __future__ import annotations

import dataclasses
import enum

from harness.core.errors import UserError

MAX_RULES = 8  # XHDR_RULES in bpf/xhdr_event.h
MAX_CONDITIONS = 4  # XHDR_RULE_CONDITIONS: conditions per rule
CONDITIONS_MAX = 16  # XHDR_CONDITIONS: conditions in a whole rule set
PATTERN_MAX = 32  # bytes of a pattern, compared as four masked words (XHDR_PATTERN_WORDS)
# The kernel tests one condition per step of a loop, a contains test sixteen positions per step (two words
# compared at each); the verifier walks every step, so a rule set holds few conditions, fewer contains tests,
# and a contains test looks at a field's first bytes only.
CONTAINS_PATTERN_MAX = 16
CONTAINS_MAX = 4  # XHDR_CONTAINS: contains conditions in a whole rule set
CONTAINS_SPAN = 128  # XHDR_CONTAINS_SPAN: a contains test looks at the field's first this many bytes
EVERY_MAX = 65535
NAME_MAX = 32  # a rule's name, as the consumer and the summary print it
COUNT_BY_MAX = 2  # XHDR_COUNT_BY: the headers one rule counts the values of (R30)

# The condition fields that are no header (any other field names a configured header in value mode).
METHOD, TARGET = "method", "target"


class RuleError(UserError, ValueError):
    """A rule that cannot be applied; the message is one line naming the rule, the key and the fix."""


class Action(enum.IntEnum):
    """What a rule does with the requests it matches (enum xhdr_action). Values are in the events."""

    LOG = 1  # the event is sent, naming the rule (the default)
    DROP = 2  # the event is sent, and the segment dropped (XDP_DROP); the flow is blocked (R29)
    COUNT = 3  # no event: the rule's hit counter only
    SAMPLE = 4  # every Nth hit on a CPU is sent, the others counted only

    @property
    def label(self) -> str:
        return self.name.lower()


class Match(enum.IntEnum):
    """How a condition's pattern is compared with a field's bytes (enum xhdr_match)."""

    EXACT = 1  # the whole field, none of it cut off by a limit
    PREFIX = 2  # the field starts with the pattern
    CONTAINS = 3  # the pattern is somewhere in the field's logged bytes


@dataclasses.dataclass(frozen=True)
class Condition:
    """``field`` is ``method``, ``target`` or a header name as configured (any case in the file)."""

    field: str
    match: Match
    pattern: bytes


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    action: Action = Action.LOG
    every: int = 1  # SAMPLE: one event per this many hits on a CPU
    conditions: tuple[Condition, ...] = ()
    count_by: tuple[str, ...] = ()  # R30: headers (logged by value) whose values its matches are counted by


def parse_rules(entries: object) -> tuple[Rule, ...]:
    """The ``[[rules]]`` tables of a configuration file as rules; ``check_rules`` judges them against the rest
    of the configuration."""
    if not isinstance(entries, list):
        raise RuleError("rules must be a list of tables; write each rule as [[rules]]")
    return tuple(_rule(entry, number) for number, entry in enumerate(entries, 1))


def check_rules(rules: tuple[Rule, ...], fields: dict[str, int]) -> None:
    """Raises RuleError for a rule set the kernel cannot apply. ``fields`` maps each field a condition may
    name, lower-cased, to the most bytes of it an event holds: the method, the target, and the headers
    logged by value (the kernel matches the bytes the event holds, so a hashed header cannot be matched)."""
    if len(rules) > MAX_RULES:
        raise RuleError(f"rules lists {len(rules)} rules; give at most {MAX_RULES}")
    names = [rule.name for rule in rules]
    conditions = sum(len(rule.conditions) for rule in rules)
    if conditions > CONDITIONS_MAX:
        raise RuleError(f"the rules hold {conditions} conditions; give at most {CONDITIONS_MAX} in all")
    contains = sum(condition.match is Match.CONTAINS for rule in rules for condition in rule.conditions)
    if contains > CONTAINS_MAX:
        raise RuleError(f"the rules hold {contains} contains tests; give at most {CONTAINS_MAX} in all")
    for rule in rules:
        where = f'rule "{rule.name}"'
        if names.count(rule.name) > 1:
            raise RuleError(f"{where} is named twice; give each rule its own name")
        if len(rule.count_by) > COUNT_BY_MAX or len({name.lower() for name in rule.count_by}) < len(
            rule.count_by
        ):
            raise RuleError(
                f"{where}: count_by names {len(rule.count_by)} headers; give 1 to {COUNT_BY_MAX} different ones"
            )
        for name in rule.count_by:
            if name.lower() in (METHOD, TARGET) or name.lower() not in fields:
                headers = ", ".join(field for field in fields if field not in (METHOD, TARGET))
                raise RuleError(
                    f"{where}: count_by {name!r} is no header logged by value; use one of {headers}"
                )
        for condition in rule.conditions:
            held = fields.get(condition.field.lower())
            if held is None:
                known = ", ".join(fields)
                raise RuleError(
                    f"{where}: condition on {condition.field!r}, which is not logged by value; use one of "
                    f"{known}, or add it to [[headers]] with mode value"
                )
            if len(condition.pattern) > held:
                raise RuleError(
                    f"{where}: the {condition.field} pattern is {len(condition.pattern)} bytes, longer than the "
                    f"{held} bytes an event holds of it; shorten it"
                )


def _rule(entry: object, number: int) -> Rule:
    if not isinstance(entry, dict):
        raise RuleError(f"rule {number} is not a table; write it as [[rules]] with name and action")
    name = entry.get("name")
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= NAME_MAX
        or not name.isprintable()
        or not name.isascii()
    ):
        raise RuleError(f"rule {number} needs a name of 1 to {NAME_MAX} printable ASCII characters")
    where = f'rule "{name}"'
    unknown = sorted(set(entry) - {"name", "action", "every", "when", "count_by"})
    if unknown:
        raise RuleError(
            f"{where}: unknown key {unknown[0]!r}; a rule has name, action, every, count_by and when"
        )
    count_by = entry.get("count_by", [])
    if not isinstance(count_by, list) or not all(isinstance(name, str) for name in count_by):
        raise RuleError(f'{where}: count_by must be a list of header names, for example ["User-Agent"]')
    action_name = entry.get("action", "log")
    if not isinstance(action_name, str) or action_name.upper() not in Action.__members__:
        choices = " | ".join(action.label for action in Action)
        raise RuleError(f"{where}: action {action_name!r} is unknown; use one of {choices}")
    action = Action[action_name.upper()]
    every = entry.get("every", 1)
    if action is Action.SAMPLE and "every" not in entry:
        raise RuleError(f"{where}: action sample needs every = N (one event per N matches)")
    if action is not Action.SAMPLE and "every" in entry:
        raise RuleError(f'{where}: every applies to action sample only; remove it or use action = "sample"')
    if not isinstance(every, int) or isinstance(every, bool) or not 1 <= every <= EVERY_MAX:
        raise RuleError(f"{where}: every = {every!r} must be an integer from 1 to {EVERY_MAX}")
    when = entry.get("when", {})
    if not isinstance(when, dict):
        raise RuleError(
            f'{where}: when must be a table, for example [rules.when] target = {{ prefix = "/api" }}'
        )
    if len(when) > MAX_CONDITIONS:
        raise RuleError(f"{where}: {len(when)} conditions; give at most {MAX_CONDITIONS}")
    conditions = tuple(_condition(where, field, test) for field, test in when.items())
    return Rule(name, action, every, conditions, tuple(count_by))


def _condition(where: str, field: str, test: object) -> Condition:
    if not isinstance(test, dict) or len(test) != 1:
        raise RuleError(f'{where}: {field} needs one test, for example {{ prefix = "..." }}')
    ((kind, pattern),) = test.items()
    if not isinstance(kind, str) or kind.upper() not in Match.__members__:
        choices = " | ".join(match.name.lower() for match in Match)
        raise RuleError(f"{where}: {field} test {kind!r} is unknown; use one of {choices}")
    if not isinstance(pattern, str) or not pattern or not pattern.isascii():
        raise RuleError(f"{where}: {field} {kind} needs a non-empty ASCII string")
    raw, match = pattern.encode("ascii"), Match[kind.upper()]
    most = CONTAINS_PATTERN_MAX if match is Match.CONTAINS else PATTERN_MAX
    if len(raw) > most:
        raise RuleError(
            f"{where}: {field} {kind} pattern is {len(raw)} bytes; a {kind} pattern holds at most {most}"
        )
    return Condition(field, match, raw)


def rule_table(rule: Rule) -> dict[str, object]:
    """The rule as the ``[[rules]]`` table that reads back as it (``parse_rules``): for files that keep a
    configuration, such as a fuzz repro."""
    table: dict[str, object] = {"name": rule.name, "action": rule.action.label}
    if rule.action is Action.SAMPLE:
        table["every"] = rule.every
    if rule.count_by:
        table["count_by"] = list(rule.count_by)
    table["when"] = {c.field: {c.match.name.lower(): c.pattern.decode("ascii")} for c in rule.conditions}
    return table
