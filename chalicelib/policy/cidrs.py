"""Source address sets: IPv4 and IPv6 CIDRs, matched in O(log n).

IPv4-mapped IPv6 addresses (``::ffff:10.0.0.1``) are the IPv4 address they
carry, on both sides: a dual-stack listener reports IPv4 clients that way,
and a policy must not be escaped by the spelling of an address.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class InvalidCidr(ValueError):
    """A CIDR that cannot be parsed."""


@lru_cache(maxsize=4096)
def parse_address(text: str) -> IPAddress | None:
    """The address in ``text`` (IPv4-mapped IPv6 unwrapped), or None when it is not one.

    Cached: the same clients call again and again, and parsing costs microseconds.
    """
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            return None  # a zone index names a link, not a host we can place
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


def parse_cidr(text: str) -> IPNetwork:
    """A network from ``10.0.0.0/8``, ``2001:db8::/32`` or a bare address.

    Host bits must be zero (``10.0.0.1/8`` is refused: it usually means a typo).

    Raises
    ------
    InvalidCidr
        Naming what is wrong.
    """
    if "%" in text:
        raise InvalidCidr(f"{text!r} is not a CIDR: a zone id names a link, not a network")
    try:
        network = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise InvalidCidr(f"{text!r} is not a CIDR: {exc}") from exc
    if isinstance(network, ipaddress.IPv6Network):
        mapped = network.network_address.ipv4_mapped
        if mapped is not None and network.prefixlen >= 96:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


@dataclass(frozen=True)
class CidrSet:
    """A set of networks, merged into sorted disjoint ranges per address family."""

    networks: tuple[IPNetwork, ...]
    _starts: dict[int, list[int]] = field(init=False, repr=False, compare=False)
    _ends: dict[int, list[int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts: dict[int, list[int]] = {4: [], 6: []}
        ends: dict[int, list[int]] = {4: [], 6: []}
        for version in (4, 6):
            ranges = sorted(
                (int(n.network_address), int(n.broadcast_address))
                for n in self.networks
                if n.version == version
            )
            for low, high in ranges:
                if ends[version] and low <= ends[version][-1] + 1:
                    ends[version][-1] = max(ends[version][-1], high)
                else:
                    starts[version].append(low)
                    ends[version].append(high)
        object.__setattr__(self, "_starts", starts)
        object.__setattr__(self, "_ends", ends)

    @classmethod
    def parse(cls, texts: Iterable[str]) -> CidrSet:
        """Build from CIDR strings; raises :class:`InvalidCidr` on the first bad one."""
        return cls(tuple(parse_cidr(text) for text in texts))

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        starts = self._starts[address.version]
        value = int(address)
        position = bisect_right(starts, value) - 1
        return position >= 0 and value <= self._ends[address.version][position]
