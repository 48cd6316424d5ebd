"""The fixed addresses of the two lab hosts, defined once.

Every lab has private namespaces, so these never collide between parallel runs. 198.18.0.0/15 is the
benchmarking range (RFC 2544) and 2001:db8::/32 the documentation range; 02:... MACs are locally
administered ("xh" = 0x78 0x68). ``harness/frames.py`` uses the same literals as frame defaults.
"""

from __future__ import annotations

import dataclasses

IPV4_PREFIXLEN = 24
IPV6_PREFIXLEN = 64


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """The link-layer and network addresses of one lab host (addresses without prefix length)."""

    mac: str
    ipv4: str
    ipv6: str


CLIENT = Endpoint(mac="02:78:68:00:00:01", ipv4="198.18.0.1", ipv6="2001:db8:1::1")
GATEWAY = Endpoint(mac="02:78:68:00:00:02", ipv4="198.18.0.2", ipv6="2001:db8:1::2")
