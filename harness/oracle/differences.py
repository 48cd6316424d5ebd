"""Kernel results against the reference: a verdict per frame and, on a mismatch, what differs, field by field."""

from __future__ import annotations

import dataclasses

from harness.core.counters import Counter
from harness.core.driver import Outcome
from harness.core.event import Event, HeaderEvent
from harness.oracle.reference import Expected


def event_differences(kernel: Event, expected: Event) -> list[str]:
    """One line per field that differs, slot fields named by header; one line when the kinds differ (a
    request against a TLS ClientHello, R21), whose fields have nothing to compare."""
    if type(kernel) is not type(expected):
        return [f"kind: kernel {type(kernel).__name__}, reference {type(expected).__name__}"]
    lines = []
    for field in dataclasses.fields(expected):
        if not field.compare or field.name == "headers":
            continue
        got, want = getattr(kernel, field.name), getattr(expected, field.name)
        if got != want:
            lines.append(f"{field.name}: kernel {got!r}, reference {want!r}")
    if isinstance(kernel, HeaderEvent) and isinstance(expected, HeaderEvent):
        for got, want in zip(kernel.headers, expected.headers, strict=True):
            if got != want:
                lines.append(f"header {want.name}: kernel {got}, reference {want}")
    return lines


def outcome_differences(outcome: Outcome, expected: Expected) -> list[str]:
    """Everything that keeps a kernel outcome from equalling the reference's expectation; empty when equal."""
    lines = []
    if outcome.verdict is not None and outcome.verdict != expected.verdict:
        wanted = "TC_ACT_OK" if expected.leaving else "XDP_PASS"
        lines.append(f"verdict {outcome.verdict}, expected {wanted}")
    for counter in Counter:
        if outcome.counters[counter] != expected.counters[counter]:
            lines.append(
                f"counter {counter.label}: kernel {outcome.counters[counter]}, reference {expected.counters[counter]}"
            )
    if len(outcome.events) != len(expected.events):
        lines.append(
            f"{len(outcome.events)} events from the kernel, {len(expected.events)} from the reference"
        )
    for index, (got, want) in enumerate(zip(outcome.events, expected.events)):
        lines.extend(f"event {index}: {line}" for line in event_differences(got, want))
    return lines
