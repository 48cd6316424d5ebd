"""The fixed addresses of the two lab hosts, defined once.

Every lab has private namespaces, so these never collide between parallel runs. 198.18.0.0/15 is the
benchmarking range (RFC 2544) and 2001:db8::/32 the documentation range; 02:... MACs are locally
administered ("xh" = 0x78 0x68). They live in ``harness/oracle/frames.py``, whose frames default to them.
"""

from __future__ import annotations

# The harness builds frames with these addresses and must not import netns, so they are defined there.
from harness.oracle.frames import CLIENT, GATEWAY, Endpoint

__all__ = ["CLIENT", "GATEWAY", "IPV4_PREFIXLEN", "IPV6_PREFIXLEN", "Endpoint"]

IPV4_PREFIXLEN = 24
IPV6_PREFIXLEN = 64
