"""The kernel matrix: the same BCC-compiled instructions loaded and run on Debian's LTS kernels under qemu.

A verifier's answer depends on the kernel (helpers, bounds tracking, complexity budget), and production
gateways run LTS kernels, so ``xhdr verify --kernels 5.10,6.1,6.12,host`` checks each one. The pieces:

- :func:`fetch_kernel`: Debian's ``linux-image-*-cloud-amd64`` for the kernel's suite, fetched with an apt
  configuration of xhdr's own (its own sources list and package lists under the cache, never the machine's)
  and reduced to its ``vmlinuz``, cached; a warm cache touches no network. The cloud flavour has BPF, the
  serial console and initramfs support built in, so no modules are needed for test runs.
- :func:`describe`: one binary description of a compiled variant: its maps (with the entries user space
  wrote, e.g. the header rules), its programs' instructions with each map reference noted, its prog-array
  slots. A BCC source's instructions are taken as BCC produced them, before any load; a clang/libbpf
  object's as libbpf relocated them for the host's load. Either way the host's map fds are in them, and
  the guest loader (harness/kernels/xhdr_guest.c, static, built here with gcc) swaps in its own.
- :func:`boot`: an initramfs of busybox-static, the loader and the description, booted under
  qemu-system-x86_64 (TCG; KVM where /dev/kvm works) with a deadline. The loader writes its results to the
  second serial port, so kernel messages on the console never mix with them; the console's tail is the
  error message when a boot fails.
"""

from __future__ import annotations

import ctypes
import dataclasses
import fcntl
import gzip
import hashlib
import io
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from harness.core.counters import Counter, Counts, zero_counts
from harness.core.driver import Outcome
from harness.core.errors import CommandError
from harness.core.event import HeaderEvent, decode_event
from harness.core.native import BPF_PROG_TYPE_XDP, libbcc, libbpf, map_info
from harness.core.ownership import scratch_directory

GUEST_SOURCE = Path(__file__).with_name("xhdr_guest.c")
CACHE_DIR = Path(os.environ.get("XHDR_KERNEL_CACHE", "/var/cache/xhdr/kernels"))
BUSYBOX = Path("/bin/busybox")
HOST = "host"
BOOT_DEADLINE_S = 150.0  # a 6.12 boot plus every variant's loads is ~10 s under TCG; this is the hang guard
CONSOLE_TAIL_LINES = 15
ARCHIVE_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
MIRROR = "http://deb.debian.org/debian"
# Kernel updates of a stable suite land in its security suite first, so both are listed.
SOURCES = tuple(
    (mirror, name)
    for suite in ("bullseye", "bookworm", "trixie")
    for mirror, name in ((MIRROR, suite), (f"{MIRROR}-security", f"{suite}-security"))
)

# Kernel name -> (Debian suite, regex of the linux-image package). The newest matching package is taken.
KERNELS: dict[str, tuple[str, str]] = {
    "5.10": ("bullseye", r"^linux-image-5\.10\.0-(\d+)-cloud-amd64$"),
    "6.1": ("bookworm", r"^linux-image-6\.1\.0-(\d+)-cloud-amd64$"),
    "6.12": ("trixie", r"^linux-image-6\.12\.(\d+)\+deb13-cloud-amd64$"),
}

BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_ARRAY = 1, 2
BPF_MAP_TYPE_PROG_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_RINGBUF = 3, 6, 27
LD_IMM64 = 0x18
BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE = 1, 2  # ld_imm64 of a map, of an address in a map's value
NONE = 0xFFFFFFFF


class KernelError(CommandError):
    """A kernel could not be fetched, booted or read; the message is one line (with the console's tail)."""


# -- fetching ----------------------------------------------------------------------------------------


def parse_kernels(text: str) -> list[str]:
    """``5.10,6.1,host`` -> names, checked against KERNELS before anything is fetched."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name != HOST and name not in KERNELS]
    if not names or unknown:
        raise KernelError(
            f"--kernels {text!r}: unknown kernel {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join([*KERNELS, HOST])}"
        )
    return list(dict.fromkeys(names))


def _apt(cache: Path, *args: str, cwd: Path | None = None) -> str:
    """Runs apt-get/apt-cache with xhdr's own sources and lists, so the machine's apt state is untouched."""
    apt_dir = cache / "apt"
    options = [
        f"-oDir::Etc::sourcelist={apt_dir / 'sources.list'}",
        "-oDir::Etc::sourceparts=-",
        f"-oDir::State::Lists={apt_dir / 'lists'}",
        f"-oDir::Cache={apt_dir / 'cache'}",
        "-oDebug::NoLocking=1",
        "-oAPT::Sandbox::User=root",
    ]
    result = subprocess.run(
        [args[0], *options, *args[1:]], check=False, capture_output=True, text=True, cwd=cwd or cache
    )
    if result.returncode:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise KernelError(f"{args[0]} {args[1]} failed: {last}")
    return result.stdout


def fetch_kernel(name: str, cache: Path = CACHE_DIR) -> Path:
    """The vmlinuz of ``name``, downloading Debian's package once; a cached kernel needs no network."""
    target = cache / f"vmlinuz-{name}"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    # One fetch at a time, across threads and processes: the kernels share xhdr's apt lists, and two
    # `apt-get update` runs in one lists directory delete each other's partial files.
    with open(cache / "apt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return target if target.is_file() else _download_kernel(name, target, cache)


def _download_kernel(name: str, target: Path, cache: Path) -> Path:
    suite, pattern = KERNELS[name]
    apt_dir = cache / "apt"
    for sub in ("lists/partial", "cache/archives/partial"):
        (apt_dir / sub).mkdir(parents=True, exist_ok=True)
    (apt_dir / "sources.list").write_text(
        "".join(
            f"deb [signed-by={ARCHIVE_KEYRING}] {mirror} {suite_name} main\n"
            for mirror, suite_name in SOURCES
        )
    )
    _apt(cache, "apt-get", "update")
    found = _apt(cache, "apt-cache", "search", "--names-only", r"^linux-image-.*-cloud-amd64$")
    names = [line.split(" ", 1)[0] for line in found.splitlines()]
    matching = [(int(m.group(1)), package) for package in names if (m := re.match(pattern, package))]
    if not matching:
        raise KernelError(f"no Debian package matches {pattern} in {suite}: cannot fetch Linux {name}")
    package = max(matching)[1]
    with tempfile.TemporaryDirectory(dir=cache) as work:
        _apt(cache, "apt-get", "download", package, cwd=Path(work))
        (deb,) = Path(work).glob("*.deb")
        tar = subprocess.run(
            f"dpkg-deb --fsys-tarfile {deb} | tar -x -C {work} --wildcards './boot/vmlinuz-*'",
            shell=True,
            check=False,
            capture_output=True,
            text=True,
        )
        images = list(Path(work).glob("boot/vmlinuz-*"))
        if tar.returncode or len(images) != 1:
            raise KernelError(f"{deb.name} has no single /boot/vmlinuz: {tar.stderr.strip()[:200]}")
        os.replace(images[0], target)
    (cache / f"vmlinuz-{name}.package").write_text(package + "\n")
    return target


def kernel_release(name: str, cache: Path = CACHE_DIR) -> str:
    """The cached kernel's Debian package name (for the report), or the name itself."""
    path = cache / f"vmlinuz-{name}.package"
    return path.read_text().strip() if path.is_file() else name


def guest_loader(cache: Path = CACHE_DIR) -> Path:
    """The static guest loader, rebuilt only when its source changes (the hash is in the file name)."""
    digest = hashlib.sha256(GUEST_SOURCE.read_bytes()).hexdigest()[:16]
    binary = cache / f"xhdr_guest-{digest}"
    if not binary.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".partial")
        result = subprocess.run(
            [
                "gcc",
                "-static",
                "-O2",
                "-Wall",
                "-Wno-stringop-truncation",
                "-o",
                str(partial),
                str(GUEST_SOURCE),
            ],
            check=False,
            capture_output=True,
            text=True,
        )
        if result.returncode:
            raise KernelError(f"gcc -static could not build the guest loader: {result.stderr.strip()[:300]}")
        os.replace(partial, binary)
    return binary


# -- describing a compiled variant -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Description:
    """One variant as the guest loader reads it (see harness/kernels/xhdr_guest.c)."""

    variant: str
    blob: bytes  # maps, programs, slots, counters and ring buffer indices; frames are appended per boot


def _name(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<I", len(raw)) + raw


@dataclasses.dataclass(frozen=True)
class MapSpec:
    """One map of a loaded build, as the guest recreates it: what the kernel was asked for, and its host fd."""

    name: str
    fd: int
    kind: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int


def bcc_maps(module: int) -> list[MapSpec]:
    """The maps of a compiled BCC module, in its table order."""
    lib = libbcc()
    return [
        MapSpec(
            lib.bpf_table_name(module, index).decode(),
            lib.bpf_table_fd_id(module, index),
            lib.bpf_table_type_id(module, index),
            lib.bpf_table_key_size_id(module, index),
            lib.bpf_table_leaf_size_id(module, index),
            lib.bpf_table_max_entries_id(module, index),
            lib.bpf_table_flags_id(module, index),
        )
        for index in range(lib.bpf_num_tables(module))
    ]


def fd_maps(fds: dict[str, int]) -> list[MapSpec]:
    """Maps known by name and fd only (a libbpf object's), described by what the kernel says of them."""
    specs = []
    for name, fd in fds.items():
        info = map_info(fd)
        specs.append(
            MapSpec(name, fd, info.type, info.key_size, info.value_size, info.max_entries, info.map_flags)
        )
    return specs


def _entries(spec: MapSpec) -> list[bytes]:
    """What user space wrote into a plain array or hash map (arrays: only non-zero entries)."""
    lib = libbpf()
    key, value = ctypes.create_string_buffer(spec.key_size), ctypes.create_string_buffer(spec.value_size)
    found: list[bytes] = []
    if spec.kind == BPF_MAP_TYPE_ARRAY:
        for index in range(spec.max_entries):
            ctypes.memmove(key, struct.pack("<I", index), 4)
            if lib.bpf_map_lookup_elem(spec.fd, key, value) == 0 and any(value.raw):
                found.append(key.raw + value.raw)
    elif spec.kind == BPF_MAP_TYPE_HASH:
        previous = None
        while lib.bpf_map_get_next_key(spec.fd, previous, key) == 0:
            if lib.bpf_map_lookup_elem(spec.fd, key, value) == 0:
                found.append(key.raw + value.raw)
            previous = ctypes.create_string_buffer(key.raw, spec.key_size)
    return found


def only_ring(maps: Sequence[MapSpec]) -> str | None:
    """The build's ring buffer map when it has exactly one: the records the guest returns are read from it."""
    rings = [spec.name for spec in maps if spec.kind == BPF_MAP_TYPE_RINGBUF]
    return rings[0] if len(rings) == 1 else None


def describe(
    maps: Sequence[MapSpec],
    functions: Sequence[tuple[str, bytes]],
    variant: str,
    entry: str,
    slots: dict[str, Sequence[str]],
    counters: tuple[str, int] | None = None,
    ring: str | None = None,
    types: dict[str, int] | None = None,
) -> Description:
    """A loaded build in the guest loader's format: its maps with what user space wrote into them, and each
    function's instructions (``functions``: name and raw ``struct bpf_insn`` bytes, host map fds in them).

    ``slots`` maps a prog-array name to the functions for its slots 0, 1, ...; ``counters`` names a per-CPU
    array of u64 counters and how many there are; ``ring`` the ring buffer whose records the guest returns;
    ``types`` the program type of a function that is not XDP (the extractor's TC egress program).
    """
    blob = io.BytesIO()
    tables = io.BytesIO()
    for spec in maps:
        entries = _entries(spec)
        tables.write(
            _name(spec.name)
            + struct.pack(
                "<6I", spec.kind, spec.key_size, spec.value_size, spec.max_entries, spec.flags, len(entries)
            )
        )
        tables.write(b"".join(entries))
    by_fd = {spec.fd: index for index, spec in enumerate(maps)}
    by_name = {spec.name: index for index, spec in enumerate(maps)}
    names = [name for name, _ in functions]
    blob.write(_name(variant) + struct.pack("<I", len(maps)) + tables.getvalue())
    blob.write(struct.pack("<I", len(functions)))
    for function, insns in functions:
        relocations = []
        for at in range(0, len(insns), 8):
            opcode, regs, _, imm = struct.unpack_from("<BBhi", insns, at)
            if opcode == LD_IMM64 and regs >> 4 in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE):
                if imm not in by_fd:
                    raise KernelError(
                        f"{variant}/{function}: instruction {at // 8} refers to an unknown map fd {imm}"
                    )
                relocations.append(struct.pack("<II", at // 8, by_fd[imm]))
            elif opcode == LD_IMM64 and regs >> 4:
                raise KernelError(f"{variant}/{function}: ld_imm64 with src_reg {regs >> 4} is not supported")
        prog_type = (types or {}).get(function, BPF_PROG_TYPE_XDP)
        blob.write(_name(function) + struct.pack("<II", prog_type, len(insns) // 8) + insns)
        blob.write(struct.pack("<I", len(relocations)) + b"".join(relocations))
    blob.write(struct.pack("<I", names.index(entry)))
    assignments = [
        struct.pack("<III", by_name[array], slot, names.index(function))
        for array, members in slots.items()
        for slot, function in enumerate(members)
    ]
    blob.write(struct.pack("<I", len(assignments)) + b"".join(assignments))
    blob.write(
        struct.pack(
            "<III",
            by_name[counters[0]] if counters else NONE,
            counters[1] if counters else 0,
            by_name[ring] if ring else NONE,
        )
    )
    return Description(variant, blob.getvalue())


def description_file(descriptions: Sequence[Description], frames: Sequence[bytes]) -> bytes:
    """The whole file one guest reads: header, every variant, then the frames every variant runs."""
    body = b"".join(description.blob for description in descriptions)
    frames_at = 12 + len(body)
    tail = struct.pack("<I", len(frames)) + b"".join(
        struct.pack("<I", len(frame)) + frame for frame in frames
    )
    return b"XHD1" + struct.pack("<II", frames_at, len(descriptions)) + body + tail


# -- booting -----------------------------------------------------------------------------------------

INIT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
echo xhdr-guest: $(/bin/busybox uname -r) running the loader
/xhdr_guest /xhdr.desc /dev/ttyS1
echo xhdr-guest: loader exited with $?
/bin/busybox poweroff -f
"""


def _cpio(files: dict[str, tuple[int, bytes]]) -> bytes:
    """A newc cpio archive (what the kernel unpacks as initramfs) of {path: (mode, content)}."""
    out = io.BytesIO()
    for ino, (path, (mode, data)) in enumerate([*files.items(), ("TRAILER!!!", (0, b""))], start=1):
        name = path.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name), 0)
        out.write(b"070701" + b"".join(b"%08X" % field for field in fields) + name)
        out.write(b"\0" * (-(110 + len(name)) % 4) + data + b"\0" * (-len(data) % 4))
    return out.getvalue()


def initramfs(loader: Path, description: bytes) -> bytes:
    """busybox-static, the loader, its input and an init script, gzip-compressed."""
    directory, executable, regular = 0o040755, 0o100755, 0o100644
    files = {name: (directory, b"") for name in ("bin", "proc", "sys", "dev")}
    files |= {
        "bin/busybox": (executable, BUSYBOX.read_bytes()),
        "init": (executable, INIT.encode()),
        "xhdr_guest": (executable, loader.read_bytes()),
        "xhdr.desc": (regular, description),
    }
    return gzip.compress(_cpio(files), compresslevel=1)


@dataclasses.dataclass(frozen=True)
class BootResult:
    kernel: str
    release: str  # Debian package name
    lines: list[str]  # the loader's output
    seconds: float


def _accelerator() -> str:
    """TCG unless XHDR_QEMU_ACCEL says otherwise.

    /dev/kvm answering KVM_GET_API_VERSION is not enough: on this machine's paravirtual KVM qemu then
    aborts on an MSR write, so KVM is only used when asked for (XHDR_QEMU_ACCEL=kvm) where it works.
    """
    return os.environ.get("XHDR_QEMU_ACCEL", "tcg")


def boot(
    name: str, description: bytes, cache: Path = CACHE_DIR, deadline_s: float = BOOT_DEADLINE_S
) -> BootResult:
    """Boots Linux ``name`` with the description and returns the loader's lines; never waits past the deadline."""
    if shutil.which("qemu-system-x86_64") is None:
        raise KernelError("qemu-system-x86_64 is not installed: apt-get install qemu-system-x86")
    if not BUSYBOX.is_file():
        raise KernelError(f"{BUSYBOX} is missing: apt-get install busybox-static")
    kernel = fetch_kernel(name, cache)
    loader = guest_loader(cache)
    started = time.monotonic()
    with scratch_directory("guest") as work:
        ramdisk, console, data = Path(work, "initramfs.gz"), Path(work, "console"), Path(work, "data")
        ramdisk.write_bytes(initramfs(loader, description))
        accel = _accelerator()
        command = [
            "qemu-system-x86_64", "-accel", accel, "-m", "512", "-smp", "1", "-no-reboot",
            "-display", "none", "-monitor", "none", "-nodefaults",
            "-kernel", str(kernel), "-initrd", str(ramdisk),
            "-append", "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init",
            "-serial", f"file:{console}", "-serial", f"file:{data}",
        ]  # fmt: skip
        if accel == "kvm":
            command += ["-cpu", "host"]
        try:
            result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=deadline_s)
            failure = (
                f"qemu exited with {result.returncode}: {result.stderr.strip()[-200:]}"
                if result.returncode
                else ""
            )
        except subprocess.TimeoutExpired:
            failure = f"no result within the {deadline_s:.0f} s deadline"
        lines = data.read_text(errors="replace").replace("\r", "").splitlines() if data.exists() else []
        if not failure and (not lines or lines[-1] != "END"):
            failure = "the guest loader did not finish"
        if failure:
            tail = (
                console.read_text(errors="replace").replace("\r", "").splitlines() if console.exists() else []
            )
            errors = [line for line in lines if line.startswith("ERROR")]
            shown = " | ".join([*errors, *tail[-CONSOLE_TAIL_LINES:]]) or "(empty console)"
            raise KernelError(f"Linux {name} ({kernel.name}): {failure}; console: {shown}")
    return BootResult(name, kernel_release(name, cache), lines, time.monotonic() - started)


# -- reading the loader's output ---------------------------------------------------------------------


@dataclasses.dataclass
class GuestProgram:
    name: str
    accepted: bool
    verified_insns: int | None  # None before Linux 5.16, which has no bpf_prog_info.verified_insns
    processed_insns: int | None
    error: str = ""  # errno name on rejection
    log_tail: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class GuestVariant:
    name: str
    programs: list[GuestProgram] = dataclasses.field(default_factory=list)
    frames: list[tuple[int, Counts | None, list[bytes]]] = dataclasses.field(default_factory=list)
    map_errors: list[str] = dataclasses.field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.map_errors and all(program.accepted for program in self.programs)

    def insns(self) -> int | None:
        """Verified instructions summed over programs (processed insns where the kernel has no count)."""
        counts = [
            p.verified_insns if p.verified_insns is not None else p.processed_insns for p in self.programs
        ]
        return None if None in counts else sum(counts)  # type: ignore[arg-type]

    def reason(self) -> str:
        """The verifier's reason in one line: the last non-empty log line before the statistics."""
        if self.map_errors:
            return "; ".join(self.map_errors)
        for program in self.programs:
            if not program.accepted:
                body = [
                    line
                    for line in program.log_tail
                    if line and not line.startswith(("processed ", "verification time"))
                ]
                return f"{program.name}: {body[-1] if body else program.error} ({program.error})"
        return ""


def parse_output(lines: Sequence[str]) -> list[GuestVariant]:
    """The loader's line protocol (harness/kernels/xhdr_guest.c) into per-variant results."""
    variants: list[GuestVariant] = []
    for line in lines:
        fields = line.split(" ")
        tag = fields[0]
        if tag == "V":
            variants.append(GuestVariant(fields[1]))
        elif tag == "P" and fields[2] == "ok":
            variants[-1].programs.append(
                GuestProgram(fields[1], True, _number(fields[3]), _number(fields[4]))
            )
        elif tag == "P":
            log = bytes.fromhex(fields[5]).decode(errors="replace") if len(fields) > 5 else ""
            variants[-1].programs.append(
                GuestProgram(
                    fields[1],
                    False,
                    None,
                    _number(fields[4]),
                    os.strerror(int(fields[3])),
                    log.splitlines()[-12:],
                )
            )
        elif tag == "M":
            variants[-1].map_errors.append(f"map {fields[3]} refused: {os.strerror(int(fields[2]))}")
        elif tag == "F":
            counts = None if fields[3] == "-" else dict(zip(Counter, (int(v) for v in fields[3].split(","))))
            variants[-1].frames.append((int(fields[2]), counts, [bytes.fromhex(f) for f in fields[4:] if f]))
        elif tag == "ERROR":
            raise KernelError(f"guest loader: {line[6:]}")
    return variants


def _number(text: str) -> int | None:
    return None if text == "-" else int(text)


def outcomes(variant: GuestVariant, config: object) -> list[Outcome]:
    """The guest's frames as the harness's Outcome objects, events decoded as on the host."""
    result = []
    for verdict, counts, records in variant.frames:
        events: tuple[HeaderEvent, ...] = tuple(decode_event(record, config) for record in records)  # type: ignore[arg-type]
        result.append(Outcome(verdict, events, counts or zero_counts()))
    return result
