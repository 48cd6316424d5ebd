"""TLS ClientHello bytes for tests, the corpus and the fuzzer (docs/EXTRACTION.md R21, R22).

A ``ClientHello`` says what a hello is, field by field, and ``to_bytes()`` writes the TLS record that carries
it: the record header, the handshake header, the hello's fixed fields and its extensions, every length
computed from what follows it. Malformed hellos are the same hello with one thing changed: a length field
overridden (``record_length``, ``handshake_length``, ``extensions_length``), a header byte changed
(``record_type``, ``record_version``, ``handshake_type``), no extensions block at all (``extensions=None``)
or bytes after it (``trailing``). Each extension is a ``(type, data)`` pair, sent in the given order; the
helpers below write the data of the three R22 reads (``server_name``, ``alpn``, ``supported_versions``).

This is the one place tests build a hello, so a case reads as what it tests ("ALPN h2 and http/1.1, no
SNI") and the byte layout is written once. It follows RFC 8446 section 4.1.2 and RFC 6066/7301 for the
extensions, but it never checks anything: building what a real client would not send is the point.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable

RECORD_HANDSHAKE = 22  # ContentType handshake
HANDSHAKE_CLIENT_HELLO = 1  # HandshakeType client_hello
RECORD_HEADER_LEN = 5  # type, version, length
HANDSHAKE_HEADER_LEN = 4  # type, 3-byte length
RANDOM_LEN = 32

# Extension types (IANA "TLS ExtensionType Values")
SERVER_NAME = 0
SUPPORTED_GROUPS = 10
EC_POINT_FORMATS = 11
SIGNATURE_ALGORITHMS = 13
ALPN = 16  # application_layer_protocol_negotiation
PADDING = 21  # RFC 7685: zero bytes that grow a hello to a chosen size
ENCRYPT_THEN_MAC = 22
EXTENDED_MASTER_SECRET = 23
SESSION_TICKET = 35
SUPPORTED_VERSIONS = 43
PSK_KEY_EXCHANGE_MODES = 45
KEY_SHARE = 51
HOST_NAME = 0  # NameType host_name

TLS_1_0, TLS_1_1, TLS_1_2, TLS_1_3 = 0x0301, 0x0302, 0x0303, 0x0304
# RFC 8701: the 16 reserved GREASE values (0x0A0A, 0x1A1A, ... 0xFAFA) clients sprinkle in lists and types
GREASE = tuple(0x0A0A + 0x1010 * index for index in range(16))

Extension = tuple[int, bytes]  # (type, data)


def u8_prefixed(data: bytes) -> bytes:
    """``data`` after its 1-byte length."""
    return bytes([len(data)]) + data


def u16_prefixed(data: bytes) -> bytes:
    """``data`` after its 2-byte big-endian length."""
    return struct.pack(">H", len(data)) + data


def server_name(*names: bytes, name_type: int = HOST_NAME) -> bytes:
    """The data of a server_name extension (RFC 6066 section 3): the list of entries, each a name type and a
    2-byte-length name. R22 reads the first entry only, so more names make a list it does not look past."""
    return u16_prefixed(b"".join(bytes([name_type]) + u16_prefixed(name) for name in names))


def alpn(*protocols: bytes) -> bytes:
    """The data of an ALPN extension (RFC 7301 section 3.1): the list of 1-byte-length protocol names."""
    return u16_prefixed(b"".join(u8_prefixed(protocol) for protocol in protocols))


def supported_versions(*versions: int) -> bytes:
    """The data of a ClientHello's supported_versions extension (RFC 8446 section 4.2.1): a 1-byte length,
    then the 2-byte versions in the client's order of preference."""
    return u8_prefixed(b"".join(struct.pack(">H", version) for version in versions))


@dataclasses.dataclass(frozen=True)
class ClientHello:
    """One ClientHello in one TLS record; every field has the value a plain TLS 1.2/1.3 client sends.

    The overrides (None: computed) let a test write a length that does not match what follows it.
    """

    legacy_version: int = TLS_1_2
    random: bytes = bytes(RANDOM_LEN)
    session_id: bytes = b""
    cipher_suites: tuple[int, ...] = (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F)
    compression: bytes = b"\x00"  # the methods, each one byte (0 is "null")
    # Sent in this order; () is an empty extensions block (its length, 0), None no block at all.
    extensions: tuple[Extension, ...] | None = ()
    trailing: bytes = b""  # bytes after the extensions block, inside the hello (counted in its length)
    record_type: int = RECORD_HANDSHAKE
    record_version: int = TLS_1_0  # what most clients put in the first record, whatever they offer
    record_length: int | None = None
    handshake_type: int = HANDSHAKE_CLIENT_HELLO
    handshake_length: int | None = None
    extensions_length: int | None = None

    def body(self) -> bytes:
        """The hello's own bytes, after its handshake header: fixed fields, extensions, trailing bytes."""
        suites = b"".join(struct.pack(">H", suite) for suite in self.cipher_suites)
        fixed = (
            struct.pack(">H", self.legacy_version)
            + self.random
            + u8_prefixed(self.session_id)
            + u16_prefixed(suites)
            + u8_prefixed(self.compression)
        )
        return fixed + self.extensions_block() + self.trailing

    def extensions_block(self) -> bytes:
        """The extensions' 2-byte length and the extensions, each type, 2-byte length, data; b"" for None."""
        if self.extensions is None:
            return b""
        listed = b"".join(struct.pack(">H", kind) + u16_prefixed(data) for kind, data in self.extensions)
        declared = len(listed) if self.extensions_length is None else self.extensions_length
        return struct.pack(">H", declared) + listed

    def to_bytes(self) -> bytes:
        """The TLS record: 5-byte record header, 4-byte handshake header, the hello (``body``)."""
        body = self.body()
        hello_length = len(body) if self.handshake_length is None else self.handshake_length
        handshake = bytes([self.handshake_type]) + hello_length.to_bytes(3, "big") + body
        record_length = len(handshake) if self.record_length is None else self.record_length
        return struct.pack(">BHH", self.record_type, self.record_version, record_length) + handshake


def with_extensions(extensions: Iterable[Extension], **fields) -> ClientHello:
    """A ClientHello with these extensions (in order) and any other fields given."""
    return ClientHello(extensions=tuple(extensions), **fields)


def curl_like(
    host: bytes = b"example.com", protocols: tuple[bytes, ...] = (b"h2", b"http/1.1")
) -> ClientHello:
    """The hello curl with OpenSSL 3 sends: SNI, ALPN, TLS 1.3 and 1.2, an X25519 key share, and the
    extensions around them that make a realistic 250-odd bytes (their data is plausible, not captured)."""
    groups = struct.pack(">4H", 0x001D, 0x0017, 0x001E, 0x0018)  # x25519, secp256r1, x448, secp384r1
    algorithms = struct.pack(">6H", 0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501)
    key_share = u16_prefixed(struct.pack(">H", 0x001D) + u16_prefixed(bytes(range(32))))
    return with_extensions(
        [
            (SERVER_NAME, server_name(host)),
            (EC_POINT_FORMATS, u8_prefixed(b"\x00\x01\x02")),
            (SUPPORTED_GROUPS, u16_prefixed(groups)),
            (SESSION_TICKET, b""),
            (ALPN, alpn(*protocols)),
            (ENCRYPT_THEN_MAC, b""),
            (EXTENDED_MASTER_SECRET, b""),
            (SIGNATURE_ALGORITHMS, u16_prefixed(algorithms)),
            (SUPPORTED_VERSIONS, supported_versions(TLS_1_3, TLS_1_2)),
            (PSK_KEY_EXCHANGE_MODES, u8_prefixed(b"\x01")),
            (KEY_SHARE, key_share),
        ],
        session_id=bytes(range(32)),
    )
