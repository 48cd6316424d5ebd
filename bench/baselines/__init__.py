"""The user-space baselines the extractor is measured against, and what they share.

Three ways of doing the extractor's job without XDP, each a separate process so the kernel's own
accounting can charge it its CPU time:

- ``c_tpacket_v3``: bench/baselines/capture.c, built here with gcc: a TPACKET_V3 ring and a C port of the
  rules, flows included (the strongest baseline, the one the issue's headline ratio is against);
- ``af_packet_python``: an AF_PACKET socket in Python and ``harness.oracle.reference.FlowTracker`` fed every frame;
- ``af_packet_httptools``: the same socket, the same Python L2-L4 walk, and httptools (llhttp) for HTTP,
  frame by frame (no flow state: each segment is read as if its flow expected a request at its start).

All three attach the same classic BPF filter (TCP to a watched port, so only candidate frames are copied
to user space, as a performance engineer would do) and write one line per request in the format of
:func:`event_line`, which is also how the reference's events are rendered for the tests to compare.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from harness.core.cbuild import built
from harness.core.config import ExtractorConfig
from harness.core.event import HeaderEvent
from harness.core.ownership import scratch_directory

SOURCE = Path(__file__).with_name("capture.c")
CFLAGS = ("-O2", "-Wall", "-Wextra")
BASELINES = ("c_tpacket_v3", "af_packet_python", "af_packet_httptools")
PYTHON_PARSERS = {"af_packet_python": "reference", "af_packet_httptools": "httptools"}


def build_capture() -> Path:
    """capture.c built once per version (harness/core/cbuild.py). The limits are options (config_args), so one binary
    serves every configuration; bpf/xhdr_event.h gives it the extractor's flag, mode and counter values."""
    return built(SOURCE, CFLAGS)


# --- the classic BPF filter -----------------------------------------------------------------------

BPF_LD_H_ABS, BPF_LD_B_ABS, BPF_LDX_B_MSH, BPF_LD_H_IND = 0x28, 0x30, 0xB1, 0x48
BPF_JEQ_K, BPF_JSET_K, BPF_JA, BPF_RET_K = 0x15, 0x45, 0x05, 0x06
ACCEPT_BYTES = 0x40000


def socket_filter(ports: tuple[int, ...]) -> list[tuple[int, int, int, int]]:
    """``tcp dst port P1 or P2 ...`` (IPv4 without later fragments, IPv6), VLAN-tagged frames let through.

    The kernel has already removed the outer VLAN tag when a packet socket's filter runs; a second tag
    stays in the data, so tagged frames are passed to the parser, which applies R2 itself. The filter
    is a superset of what the parser accepts: it never costs a request, it only saves copies.
    """
    n = len(ports)
    # Layout: 0-3 EtherType, 4-10 IPv4 (ending in a jump to the ports), 11-14 IPv6, then the ports.
    ports_at = 15
    accept = ports_at + n
    drop = accept + 1

    def jump(at: int, target: int) -> int:
        return target - at - 1

    code = [
        (BPF_LD_H_ABS, 0, 0, 12),
        (BPF_JEQ_K, jump(1, accept), 0, 0x8100),
        (BPF_JEQ_K, jump(2, accept), 0, 0x88A8),
        (BPF_JEQ_K, 0, jump(3, 11), 0x0800),
        (BPF_LD_B_ABS, 0, 0, 23),  # 4: IPv4 protocol
        (BPF_JEQ_K, 0, jump(5, drop), 6),
        (BPF_LD_H_ABS, 0, 0, 20),  # 6: flags and fragment offset
        (BPF_JSET_K, jump(7, drop), 0, 0x1FFF),
        (BPF_LDX_B_MSH, 0, 0, 14),  # 8: X = IPv4 header length
        (BPF_LD_H_IND, 0, 0, 16),  # 9: TCP destination port
        (BPF_JA, 0, 0, jump(10, ports_at)),
        (BPF_JEQ_K, 0, jump(11, drop), 0x86DD),  # 11: IPv6
        (BPF_LD_B_ABS, 0, 0, 20),  # 12: next header
        (BPF_JEQ_K, 0, jump(13, drop), 6),
        (BPF_LD_H_ABS, 0, 0, 56),  # 14: TCP destination port
    ]
    for index, port in enumerate(ports):
        at = ports_at + index
        code.append(
            (BPF_JEQ_K, jump(at, accept), 0, port)
            if index < n - 1
            else (BPF_JEQ_K, jump(at, accept), jump(at, drop), port)
        )
    code += [(BPF_RET_K, 0, 0, ACCEPT_BYTES), (BPF_RET_K, 0, 0, 0)]
    return code


def filter_text(code: list[tuple[int, int, int, int]]) -> str:
    """The filter as ``tcpdump -ddd`` prints it on one line: ``N,code jt jf k,...`` (capture.c's -f)."""
    return ",".join([str(len(code)), *(" ".join(str(part) for part in op) for op in code)])


# --- command lines --------------------------------------------------------------------------------


def config_args(config: ExtractorConfig, key: bytes) -> list[str]:
    """capture.c's options for a configuration and SipHash key."""
    args = [arg for port in config.ports for arg in ("-p", str(port))]
    args += [arg for rule in config.headers for arg in ("-H", f"{rule.name}={rule.mode.name.lower()}")]
    args += ["-k", key.hex(), "-L", str(config.max_header_lines), "-V", str(config.max_value_len)]
    args += ["-T", str(config.max_target_len), "-S", str(config.max_scan_bytes)]
    args += ["-R", str(config.max_requests_per_packet), "-G", str(config.max_request_segments)]
    return [*args, "-F", str(config.max_flows)]


@dataclasses.dataclass(frozen=True)
class CaptureCommand:
    """How to start one baseline capturing on an interface (inside a namespace: prefix ip netns exec)."""

    baseline: str
    config: ExtractorConfig
    key: bytes
    quiet: bool = False  # count requests without writing a line for each
    max_packets: int = 0  # stop after this many packets passed the filter (0: no limit)
    max_seconds: float = 60.0  # always bounded

    def argv(self, ifname: str) -> list[str]:
        limits = ["-c", str(self.max_packets), "-t", str(self.max_seconds)]
        if self.baseline == "c_tpacket_v3":
            args = [str(build_capture()), *config_args(self.config, self.key), *limits]
            args += ["-f", filter_text(socket_filter(self.config.ports))]
            return [*args, *(["-q"] if self.quiet else []), "ring", ifname]
        if self.baseline in PYTHON_PARSERS:
            args = [
                sys.executable,
                "-m",
                "bench.baselines.pycapture",
                "--parser",
                PYTHON_PARSERS[self.baseline],
            ]
            args += [*config_args(self.config, self.key), *limits, *(["-q"] if self.quiet else [])]
            return [*args, "ring", ifname]
        raise ValueError(f"unknown baseline {self.baseline!r}; choose one of {', '.join(BASELINES)}")


# --- the log line -----------------------------------------------------------------------------------


def _hex(data: bytes) -> str:
    return data.hex() or "-"


def event_line(event: HeaderEvent) -> str:
    """One request as capture.c prints it: every field the rules define, bytes in hex, one slot per rule."""
    vlans = ",".join(str(vlan) for vlan in event.vlan_ids) or "-"
    fields = [
        "E",
        str(event.family),
        event.saddr,
        event.daddr,
        str(event.sport),
        str(event.dport),
        vlans,
        str(event.request_index),
        _hex(event.method),
        _hex(event.target),
        str(event.target_length),
        str(event.version),
        str(int(event.flags)),
        str(event.header_lines),
    ]
    fields += [
        f"{int(slot.flags)},{slot.length},{_hex(slot.value)},{slot.hash:016x}" for slot in event.headers
    ]
    return " ".join(fields)


# --- offline runs of the C parser (no socket): correctness and parse-only cost ------------------------


def write_frames(path: Path, frames: list[bytes]) -> Path:
    """Frames as capture.c's ``file`` mode reads them: a native-endian u32 length, then the bytes."""
    path.write_bytes(b"".join(len(frame).to_bytes(4, sys.byteorder) + frame for frame in frames))
    return path


def c_parse(frames: list[bytes], config: ExtractorConfig, key: bytes) -> tuple[list[str], dict[str, int]]:
    """What capture.c makes of ``frames``, read in order from a file instead of a socket (one flow table
    for all of them, as for a capture): the lines it writes, and its counters by name (``stats_counters``).
    """
    with scratch_directory("frames") as scratch:
        path = write_frames(Path(scratch) / "frames.bin", frames)
        done = subprocess.run(
            [str(build_capture()), *config_args(config, key), "file", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    return done.stdout.splitlines(), stats_counters(done.stderr)


def c_parse_lines(frames: list[bytes], config: ExtractorConfig, key: bytes) -> list[str]:
    """The lines capture.c writes for ``frames``, parsed from a file instead of a socket."""
    return c_parse(frames, config, key)[0]


def stats_counters(stderr: str) -> dict[str, int]:
    """The ``name=N`` pairs of the last ``stats`` line capture.c printed (its counters, by the labels of
    harness.core.counters.Counter, plus ``requests`` and ``drops``); empty when there is none.
    """
    lines = [line for line in stderr.splitlines() if line.startswith("stats ")]
    if not lines:
        return {}
    pairs = (field.partition("=") for field in lines[-1].split()[1:])
    return {name: int(value) for name, _, value in pairs}


def c_parse_ns(frame: bytes, config: ExtractorConfig, key: bytes, repeat: int) -> float:
    """capture.c's parse of one frame in a loop (R1-R18, no log line): nanoseconds per frame.

    The frame should be a SYN with data (``bench.kernel_cost.benchmark_frame``): it opens its flow each time,
    so every repetition is parsed, as by the extractor's test runs.
    """
    with scratch_directory("frames") as scratch:
        path = write_frames(Path(scratch) / "frame.bin", [frame])
        done = subprocess.run(
            [str(build_capture()), *config_args(config, key), "bench", str(path), str(repeat)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    return float(done.stdout.split()[0])
