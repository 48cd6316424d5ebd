"""The ``rules`` map (docs/EXTRACTION.md R27): the request rules as bpf/xhdr_event.h lays them out, and writing them.

A loaded program (:class:`harness.core.program.Program`) and a handed-over one (``xhdr log``'s,
:class:`harness.core.handover.HandedOver`) both load rules through :func:`load_rules`, the one writer of the map.
"""

from __future__ import annotations

import ctypes

from harness.core.aggregates import rule_key
from harness.core.config import ExtractorConfig
from harness.core.event import SLOTS
from harness.core.native import libbpf
from harness.core.percpu import PerCpuTotals
from harness.core.rules import COUNT_BY_MAX, MAX_CONDITIONS, MAX_RULES, METHOD, PATTERN_MAX, TARGET, Rule
from harness.core.rules import NAME_MAX as RULE_NAME_MAX


class ConditionValue(ctypes.Structure):
    """struct xhdr_condition of bpf/xhdr_event.h."""

    _fields_ = [
        ("pattern", ctypes.c_uint64 * (PATTERN_MAX // 8)),
        ("mask", ctypes.c_uint64 * (PATTERN_MAX // 8)),
        ("field", ctypes.c_uint8),
        ("match", ctypes.c_uint8),
        ("len", ctypes.c_uint8),
        ("unused", ctypes.c_uint8 * 5),
    ]


class RuleValue(ctypes.Structure):
    """struct xhdr_rule of bpf/xhdr_event.h."""

    _fields_ = [
        ("name", ctypes.c_uint64 * (RULE_NAME_MAX // 8)),
        ("key", ctypes.c_uint64),
        ("name_len", ctypes.c_uint8),
        ("action", ctypes.c_uint8),
        ("conditions", ctypes.c_uint8),
        ("count_by", ctypes.c_uint8 * COUNT_BY_MAX),
        ("unused", ctypes.c_uint8 * 3),
        ("every", ctypes.c_uint32),
        ("cond", ConditionValue * MAX_CONDITIONS),
    ]


class RulesValue(ctypes.Structure):
    """struct xhdr_rules of bpf/xhdr_event.h: the one value of the ``rules`` map."""

    _fields_ = [("count", ctypes.c_uint32), ("unused", ctypes.c_uint32), ("rule", RuleValue * MAX_RULES)]


def rules_value(rules: tuple[Rule, ...], config: ExtractorConfig) -> RulesValue:
    """R27: the rules as the kernel reads them; a condition's field is its header's slot, or the method or
    target after the slots (XHDR_FIELD_METHOD, XHDR_FIELD_TARGET)."""
    fields = {rule.name.lower(): slot for slot, rule in enumerate(config.headers)}
    fields |= {METHOD: SLOTS, TARGET: SLOTS + 1}
    value = RulesValue(count=len(rules))
    for kernel_rule, rule in zip(value.rule, rules):
        name = rule.name.encode("ascii")
        _set_words(kernel_rule.name, name.ljust(RULE_NAME_MAX, b"\0"))
        kernel_rule.name_len = len(name)
        kernel_rule.key = rule_key(rule.name)  # R30: the one definition; read_aggregates names counts by it
        kernel_rule.action = int(rule.action)
        kernel_rule.every = rule.every
        kernel_rule.conditions = len(rule.conditions)
        for index, header in enumerate(rule.count_by):
            kernel_rule.count_by[index] = fields[header.lower()] + 1  # R30: 0 is none
        for kernel_condition, condition in zip(kernel_rule.cond, rule.conditions):
            kernel_condition.field = fields[condition.field.lower()]
            kernel_condition.match = int(condition.match)
            kernel_condition.len = len(condition.pattern)
            _set_words(kernel_condition.pattern, condition.pattern.ljust(PATTERN_MAX, b"\0"))
            _set_words(kernel_condition.mask, (b"\xff" * len(condition.pattern)).ljust(PATTERN_MAX, b"\0"))
    return value


def _set_words(words: ctypes.Array, raw: bytes) -> None:
    for index, word in enumerate(little_endian_words(raw)):
        words[index] = word


def little_endian_words(raw: bytes) -> list[int]:
    """``raw`` (a multiple of 8 bytes) as the little-endian 64-bit words the kernel compares."""
    return [int.from_bytes(raw[i : i + 8], "little") for i in range(0, len(raw), 8)]


def load_rules(rules_fd: int, hits: PerCpuTotals, config: ExtractorConfig) -> None:
    """Writes ``config.rules`` into the ``rules`` map and sets every rule's hit counter (``rule_hits``) to zero:
    the counters belong to the rules by their place in the list, so a new list counts from zero."""
    value = rules_value(config.rules, config)
    key = ctypes.c_uint32(0)
    if libbpf().bpf_map_update_elem(rules_fd, ctypes.byref(key), ctypes.byref(value), 0):
        raise OSError(ctypes.get_errno(), "cannot write the request rules into the rules map")
    hits.clear()
