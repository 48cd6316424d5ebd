"""The C libraries xhdr calls through ctypes, Debian's libbpf.so.1 (1.1.2) and libbcc.so.0: every function
declared once, here.

Every caller gets a library from :func:`libbpf` or :func:`libbcc` with each function's ``argtypes`` and
``restype`` already set (a pointer left undeclared would be truncated to a C int), and errno kept for
``ctypes.get_errno()``. The structures libbpf takes by pointer are here too. libbpf's functions return what
libbpf 1.x returns: 0 or a negative errno for the ``bpf_*`` calls, NULL (None) with errno set for the
``bpf_object__*`` and ``btf__*`` constructors. From libbcc xhdr reads only what a compiled BCC module holds
(its maps, their sizes and fds), without BCC's Python table objects; loads go through BCC itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Iterator

BPF_PROG_TYPE_SCHED_CLS, BPF_PROG_TYPE_XDP = 3, 6  # enum bpf_prog_type: a TC classifier, XDP
BPF_XDP = 37  # enum bpf_attach_type, for bpf_link_create
BPF_TCX_EGRESS = 47  # enum bpf_attach_type: a TC program on an interface's egress (Linux 6.6+)
BPF_MAP_TYPE_RINGBUF = 27  # enum bpf_map_type

# int (*ring_buffer_sample_fn)(void *ctx, void *data, size_t size)
RING_BUFFER_SAMPLE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


class TestRunOpts(ctypes.Structure):
    """struct bpf_test_run_opts of libbpf 1.x."""

    __test__ = False  # not a pytest test class despite the name
    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


class BpfMapInfo(ctypes.Structure):
    """The head of struct bpf_map_info up to its name (linux/bpf.h); the kernel fills what the size covers."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 16),
    ]


class LinkCreateOpts(ctypes.Structure):
    """struct bpf_link_create_opts: its size, the XDP flags (0 for TC), and zeros for the rest."""

    _fields_ = [("sz", ctypes.c_size_t), ("flags", ctypes.c_uint32), ("rest", ctypes.c_uint8 * 36)]


_int, _u32, _u64, _ptr, _str = (
    ctypes.c_int,
    ctypes.c_uint32,
    ctypes.c_uint64,
    ctypes.c_void_p,
    ctypes.c_char_p,
)

# (function, restype, argtypes): the whole surface xhdr uses, one line each.
DECLARATIONS: tuple[tuple[str, object, list[object]], ...] = (
    # the syscall wrappers: program and map fds, whoever loaded them
    ("bpf_prog_test_run_opts", _int, [_int, ctypes.POINTER(TestRunOpts)]),
    ("bpf_map_lookup_elem", _int, [_int, _ptr, _ptr]),
    ("bpf_map_update_elem", _int, [_int, _ptr, _ptr, _u64]),
    ("bpf_map_get_next_key", _int, [_int, _ptr, _ptr]),
    ("bpf_obj_get_info_by_fd", _int, [_int, _ptr, ctypes.POINTER(_u32)]),
    ("bpf_prog_get_fd_by_id", _int, [_u32]),
    ("bpf_map_get_fd_by_id", _int, [_u32]),
    ("bpf_link_create", _int, [_int, _int, _int, _ptr]),
    (
        "bpf_prog_query",
        _int,
        [_int, _int, _u32, ctypes.POINTER(_u32), ctypes.POINTER(_u32), ctypes.POINTER(_u32)],
    ),
    ("libbpf_num_possible_cpus", _int, []),
    ("libbpf_strerror", _int, [_int, _ptr, ctypes.c_size_t]),
    # BTF of a loaded program
    ("btf__load_from_kernel_by_id", _ptr, [_u32]),
    ("btf__name_by_offset", _str, [_ptr, _u32]),
    ("btf__free", None, [_ptr]),
    # ring buffers
    ("ring_buffer__new", _ptr, [_int, RING_BUFFER_SAMPLE, _ptr, _ptr]),
    ("ring_buffer__consume", _int, [_ptr]),
    ("ring_buffer__free", None, [_ptr]),
    # ELF objects built with clang (bpf_object__open_file ... bpf_object__close)
    ("bpf_object__open_file", _ptr, [_str, _ptr]),
    ("bpf_object__load", _int, [_ptr]),
    ("bpf_object__close", None, [_ptr]),
    ("bpf_object__next_program", _ptr, [_ptr, _ptr]),
    ("bpf_object__next_map", _ptr, [_ptr, _ptr]),
    ("bpf_program__name", _str, [_ptr]),
    ("bpf_program__section_name", _str, [_ptr]),
    ("bpf_program__type", _int, [_ptr]),
    ("bpf_program__fd", _int, [_ptr]),
    ("bpf_program__insns", _ptr, [_ptr]),
    ("bpf_program__insn_cnt", ctypes.c_size_t, [_ptr]),
    ("bpf_program__set_autoload", _int, [_ptr, ctypes.c_bool]),
    ("bpf_program__set_log_level", _int, [_ptr, _u32]),
    ("bpf_program__set_log_buf", _int, [_ptr, _ptr, ctypes.c_size_t]),
    ("bpf_map__fd", _int, [_ptr]),
    ("bpf_map__name", _str, [_ptr]),
)


# libbcc: a compiled BCC module's tables (``BPF.module``), by index
LIBBCC_DECLARATIONS: tuple[tuple[str, object, list[object]], ...] = (
    ("bpf_num_tables", ctypes.c_size_t, [_ptr]),
    ("bpf_table_name", _str, [_ptr, ctypes.c_size_t]),
    ("bpf_table_fd_id", _int, [_ptr, ctypes.c_size_t]),
    ("bpf_table_type_id", _int, [_ptr, ctypes.c_size_t]),
    ("bpf_table_key_size_id", ctypes.c_size_t, [_ptr, ctypes.c_size_t]),
    ("bpf_table_leaf_size_id", ctypes.c_size_t, [_ptr, ctypes.c_size_t]),
    ("bpf_table_max_entries_id", ctypes.c_ulonglong, [_ptr, ctypes.c_size_t]),
    ("bpf_table_flags_id", _int, [_ptr, ctypes.c_size_t]),
)


def strerror(error: int) -> str:
    """libbpf's words for an errno or one of its own codes (4000 and up: LIBBPF_ERRNO__FORMAT...)."""
    buffer = ctypes.create_string_buffer(256)
    libbpf().libbpf_strerror(abs(error), buffer, len(buffer))
    return buffer.value.decode(errors="replace")


def map_info(fd: int) -> BpfMapInfo:
    """What the kernel says of the map behind ``fd``: its type, sizes and name; OSError if it is no map."""
    info = BpfMapInfo()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    if libbpf().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)):
        error = ctypes.get_errno()
        raise OSError(error, f"cannot read the info of map fd {fd}: {os.strerror(error)}")
    return info


def map_entries(
    fd: int, key_type: type[ctypes.Structure | ctypes.c_uint64], value_type: type[ctypes.Structure]
) -> Iterator[tuple[ctypes.Structure | ctypes.c_uint64, ctypes.Structure]]:
    """Every (key, value) of the hash map behind ``fd``, one lookup each, as ctypes objects of these types
    (each pair a fresh copy). An entry removed between the walk and its lookup is skipped."""
    library = libbpf()
    key, next_key, previous = key_type(), key_type(), None
    while library.bpf_map_get_next_key(fd, previous, ctypes.byref(next_key)) == 0:
        ctypes.memmove(ctypes.byref(key), ctypes.byref(next_key), ctypes.sizeof(key_type))
        previous = ctypes.byref(key)
        value = value_type()
        if library.bpf_map_lookup_elem(fd, ctypes.byref(key), ctypes.byref(value)) == 0:
            yield key_type.from_buffer_copy(key), value


def _declared(
    library: ctypes.CDLL, declarations: tuple[tuple[str, object, list[object]], ...]
) -> ctypes.CDLL:
    for name, restype, argtypes in declarations:
        function = getattr(library, name)
        function.restype = restype
        function.argtypes = argtypes
    return library


@functools.cache
def libbpf() -> ctypes.CDLL:
    """Debian's libbpf with every function of DECLARATIONS declared; errno kept."""
    library = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1", use_errno=True)
    return _declared(library, DECLARATIONS)


@functools.cache
def libbcc() -> ctypes.CDLL:
    """libbcc (python3-bpfcc's) with every function of LIBBCC_DECLARATIONS declared; errno kept."""
    return _declared(ctypes.CDLL("libbcc.so.0", use_errno=True), LIBBCC_DECLARATIONS)
