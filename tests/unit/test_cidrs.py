"""CIDR sets against the ``ipaddress`` module, by hypothesis, plus the parsers' tables.

The reference for membership is ``any(address in network for network in networks)``.
IPv4-mapped IPv6 (``::ffff:a.b.c.d``) is the IPv4 address it carries, on both
sides: the reference unwraps mapped addresses and networks the same way.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.policy.cidrs import CidrSet, InvalidCidr, parse_address, parse_cidr

if TYPE_CHECKING:
    from chalicelib.policy.cidrs import IPAddress, IPNetwork

MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
MAPPED_BASE = int(MAPPED.network_address)
FAST = settings(max_examples=200, deadline=None)


def network(version: int, value: int, prefix: int) -> IPNetwork:
    """The network of ``prefix`` bits around ``value`` (host bits cleared)."""
    if version == 4:
        return ipaddress.IPv4Network((value, prefix), strict=False)
    return ipaddress.IPv6Network((value, prefix), strict=False)


def unmapped_address(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def unmapped_network(net: IPNetwork) -> IPNetwork:
    if isinstance(net, ipaddress.IPv6Network) and net.subnet_of(MAPPED):
        value = int(net.network_address) - MAPPED_BASE
        return ipaddress.IPv4Network((value, net.prefixlen - 96))
    return net


def reference(networks: list[IPNetwork], address: IPAddress) -> bool:
    """Membership by the ``ipaddress`` module (``in`` is False across versions)."""
    candidate = unmapped_address(address)
    return any(candidate in unmapped_network(net) for net in networks)


def not_mapped_v6(value: int) -> bool:
    return not MAPPED_BASE <= value < MAPPED_BASE + 2**32


# Addresses cluster in a few small regions so that networks overlap, nest and
# touch, and addresses often fall on their edges.
V4_REGIONS = st.sampled_from([0x0A000000, 0xC0000200, 0xFFFFFF00, 0])
V6_REGIONS = st.sampled_from([0x20010DB8 << 96, 0xFE80 << 112, 2**128 - 2**16, 0])
V4_VALUES = st.one_of(
    st.integers(0, 2**32 - 1),
    st.builds(lambda base, offset: (base + offset) % 2**32, V4_REGIONS, st.integers(-300, 300)),
)
V6_VALUES = st.one_of(
    st.integers(0, 2**128 - 1),
    st.builds(lambda base, offset: (base + offset) % 2**128, V6_REGIONS, st.integers(-300, 300)),
).filter(not_mapped_v6)
V4_NETWORKS = st.builds(lambda v, p: network(4, v, p), V4_VALUES, st.integers(16, 32))
V6_NETWORKS = st.builds(lambda v, p: network(6, v, p), V6_VALUES, st.integers(100, 128))
WIDE_NETWORKS = st.one_of(
    st.builds(lambda v, p: network(4, v, p), st.integers(0, 2**32 - 1), st.integers(0, 32)),
    st.builds(lambda v, p: network(6, v, p), V6_VALUES, st.integers(0, 128)),
)
NETWORKS = st.lists(st.one_of(V4_NETWORKS, V6_NETWORKS, WIDE_NETWORKS), max_size=10)
V4_ADDRESSES = V4_VALUES.map(ipaddress.IPv4Address)
V6_ADDRESSES = V6_VALUES.map(ipaddress.IPv6Address)
ADDRESSES = st.one_of(V4_ADDRESSES, V6_ADDRESSES)


def edges(networks: list[IPNetwork]) -> list[IPAddress]:
    """Each network's first and last address and their outside neighbours."""
    found: list[IPAddress] = []
    for net in networks:
        top = 2**net.max_prefixlen - 1
        low, high = int(net.network_address), int(net.broadcast_address)
        for value in (low - 1, low, high, high + 1):
            if 0 <= value <= top:
                found.append(
                    ipaddress.ip_address(value)
                    if net.version == 4
                    else ipaddress.IPv6Address(value)
                )
    return found


def build(networks: list[IPNetwork]) -> CidrSet:
    """A set built the way a policy builds it: from the CIDR text."""
    return CidrSet.parse(str(net) for net in networks)


# --- membership ----------------------------------------------------------------------------


@FAST
@given(NETWORKS, ADDRESSES)
def test_membership_equals_the_ipaddress_reference(
    networks: list[IPNetwork], address: IPAddress
) -> None:
    assert (address in build(networks)) is reference(networks, address)
    assert (address in build(networks)) is any(address in net for net in networks)


@FAST
@given(st.lists(st.one_of(V4_NETWORKS, V6_NETWORKS), min_size=1, max_size=10), st.data())
def test_membership_at_every_network_edge_equals_the_reference(
    networks: list[IPNetwork], data: st.DataObject
) -> None:
    cidrs = build(networks)
    for address in edges(networks):
        assert (address in cidrs) is any(address in net for net in networks), address
    extra = data.draw(ADDRESSES)
    assert (extra in cidrs) is reference(networks, extra)


@FAST
@given(NETWORKS, st.one_of(st.text(max_size=20), st.integers(), st.none()))
def test_only_address_objects_are_members(networks: list[IPNetwork], thing: object) -> None:
    assert thing not in build(networks)


# --- IPv4-mapped addresses -------------------------------------------------------------------


@FAST
@given(st.lists(st.one_of(V4_NETWORKS, V6_NETWORKS), max_size=10), V4_ADDRESSES)
def test_a_mapped_address_behaves_as_its_ipv4_address(
    networks: list[IPNetwork], address: ipaddress.IPv4Address
) -> None:
    cidrs = build(networks)
    mapped = parse_address(f"::ffff:{address}")
    mapped_hex = parse_address(str(ipaddress.IPv6Address(MAPPED_BASE + int(address))))

    assert mapped == address
    assert mapped_hex == address
    assert (mapped in cidrs) is (address in cidrs) is reference(networks, address)


@FAST
@given(st.lists(V4_NETWORKS, min_size=1, max_size=8), V4_ADDRESSES)
def test_a_mapped_network_behaves_as_its_ipv4_network(
    networks: list[ipaddress.IPv4Network], address: ipaddress.IPv4Address
) -> None:
    spelled_mapped = [f"::ffff:{net.network_address}/{net.prefixlen + 96}" for net in networks]

    assert parse_cidr(spelled_mapped[0]) == networks[0]
    assert (address in CidrSet.parse(spelled_mapped)) is (address in build(networks))
    assert (address in CidrSet.parse(spelled_mapped)) is any(address in n for n in networks)


@FAST
@given(V4_ADDRESSES, st.sampled_from(["%eth0", "%1", "%en0"]))
def test_a_zone_id_is_never_an_address(address: ipaddress.IPv4Address, zone: str) -> None:
    assert parse_address(f"fe80::{int(address) & 0xFFFF:x}{zone}") is None
    assert parse_address(f"::ffff:{address}{zone}") is None


# --- merging ---------------------------------------------------------------------------------


@FAST
@given(NETWORKS, NETWORKS, ADDRESSES)
def test_a_union_holds_what_either_part_holds(
    first: list[IPNetwork], second: list[IPNetwork], address: IPAddress
) -> None:
    assert (address in build(first + second)) is (
        (address in build(first)) or (address in build(second))
    )


@FAST
@given(st.lists(st.one_of(V4_NETWORKS, V6_NETWORKS), min_size=1, max_size=8), st.data())
def test_splitting_a_network_into_adjacent_halves_changes_nothing(
    networks: list[IPNetwork], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(networks) - 1))
    target = networks[index]
    halves = list(target.subnets()) if target.prefixlen < target.max_prefixlen else [target]
    split = networks[:index] + halves + networks[index + 1 :]
    whole, pieces = build(networks), build(split)

    for address in [*edges(networks), *edges(halves), data.draw(ADDRESSES)]:
        assert (address in whole) is (address in pieces), address


@FAST
@given(st.lists(st.one_of(V4_NETWORKS, V6_NETWORKS), min_size=1, max_size=8), st.data())
def test_adding_a_subnet_or_a_duplicate_or_reordering_changes_nothing(
    networks: list[IPNetwork], data: st.DataObject
) -> None:
    outer = data.draw(st.sampled_from(networks))
    new_prefix = data.draw(st.integers(outer.prefixlen, outer.max_prefixlen))
    count = 2 ** (new_prefix - outer.prefixlen)
    start = int(outer.network_address) + data.draw(st.integers(0, count - 1)) * (
        outer.num_addresses // count
    )
    inner = network(outer.version, start, new_prefix)
    assert inner.subnet_of(outer)  # type: ignore[arg-type]
    variants = [
        build([*networks, inner]),
        build([inner, *networks]),
        build(networks + networks),
        build(list(reversed(networks))),
        build(data.draw(st.permutations(networks))),
    ]
    original = build(networks)

    for address in [*edges(networks), *edges([inner]), data.draw(ADDRESSES)]:
        expected = address in original
        assert all((address in variant) is expected for variant in variants), address


@FAST
@given(st.integers(0, 2**32 - 2), st.integers(1, 2**16))
def test_adjacent_ranges_leave_no_gap_and_grow_no_further(low: int, length: int) -> None:
    high = min(low + length, 2**32 - 1)
    networks = list(
        ipaddress.summarize_address_range(ipaddress.IPv4Address(low), ipaddress.IPv4Address(high))
    )
    cidrs = build(networks)

    assert all(ipaddress.IPv4Address(value) in cidrs for value in (low, (low + high) // 2, high))
    assert all(ipaddress.IPv4Address(net.broadcast_address) in cidrs for net in networks)
    if low > 0:
        assert ipaddress.IPv4Address(low - 1) not in cidrs
    if high < 2**32 - 1:
        assert ipaddress.IPv4Address(high + 1) not in cidrs


def test_an_empty_set_holds_nothing() -> None:
    empty = CidrSet(())

    assert ipaddress.IPv4Address("10.0.0.1") not in empty
    assert ipaddress.IPv6Address("::1") not in empty


# --- parse_cidr ------------------------------------------------------------------------------


@FAST
@given(WIDE_NETWORKS)
def test_parse_cidr_reads_back_what_ipaddress_writes(net: IPNetwork) -> None:
    assert parse_cidr(str(net)) == unmapped_network(net)
    assert parse_cidr(f"  {net}  ") == unmapped_network(net)


@FAST
@given(st.one_of(V4_NETWORKS, V6_NETWORKS), st.data())
def test_parse_cidr_refuses_any_host_bit(net: IPNetwork, data: st.DataObject) -> None:
    host_bits = net.max_prefixlen - net.prefixlen
    if host_bits == 0:
        return
    offset = data.draw(st.integers(1, 2**host_bits - 1))
    address = ipaddress.ip_address(int(net.network_address) + offset)
    text = f"{address}/{net.prefixlen}"

    with pytest.raises(InvalidCidr, match=re.escape(repr(text))):
        parse_cidr(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("10.0.0.0/8", "10.0.0.0/8", id="ipv4"),
        pytest.param("192.0.2.7", "192.0.2.7/32", id="bare ipv4 host"),
        pytest.param("0.0.0.0/0", "0.0.0.0/0", id="all ipv4"),
        pytest.param("2001:db8::/32", "2001:db8::/32", id="ipv6"),
        pytest.param("2001:DB8::/32", "2001:db8::/32", id="ipv6 upper case"),
        pytest.param("2001:db8::1", "2001:db8::1/128", id="bare ipv6 host"),
        pytest.param("::/0", "::/0", id="all ipv6"),
        pytest.param("::ffff:0:0/96", "0.0.0.0/0", id="the mapped block is all ipv4"),
        pytest.param("::ffff:10.0.0.0/104", "10.0.0.0/8", id="mapped /104"),
        pytest.param("::ffff:192.0.2.1", "192.0.2.1/32", id="bare mapped host"),
        pytest.param("::/64", "::/64", id="a block around the mapped block stays ipv6"),
    ],
)
def test_parse_cidr(text: str, expected: str) -> None:
    assert str(parse_cidr(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("10.0.0.1/8", id="ipv4 host bits"),
        pytest.param("192.0.2.128/24", id="ipv4 host bits high"),
        pytest.param("2001:db8::1/32", id="ipv6 host bits"),
        pytest.param("::ffff:10.0.0.1/104", id="mapped host bits"),
        pytest.param("10.0.0.0/33", id="ipv4 prefix too long"),
        pytest.param("2001:db8::/129", id="ipv6 prefix too long"),
        pytest.param("10.0.0.0/-1", id="negative prefix"),
        pytest.param("10.0.0.0/", id="empty prefix"),
        pytest.param("10.0.0.0/255.0.0.0x", id="garbage netmask"),
        pytest.param("10.0.0/8", id="three octets"),
        pytest.param("010.0.0.0/8", id="leading zero"),
        pytest.param("fe80::%eth0/64", id="zone id"),
        pytest.param("ten.0.0.0/8", id="words"),
        pytest.param("", id="empty"),
        pytest.param("*", id="star"),
    ],
)
def test_parse_cidr_refuses(text: str) -> None:
    with pytest.raises(InvalidCidr, match=re.escape(repr(text))):
        parse_cidr(text)


def test_cidr_set_parse_stops_at_the_first_bad_entry_and_names_it() -> None:
    with pytest.raises(InvalidCidr, match=r"'10\.0\.0\.1/8'"):
        CidrSet.parse(["192.0.2.0/24", "10.0.0.1/8", "nonsense"])


# --- parse_address ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("10.0.0.1", "10.0.0.1", id="ipv4"),
        pytest.param(" 10.0.0.1\n", "10.0.0.1", id="surrounding whitespace"),
        pytest.param("2001:db8::1", "2001:db8::1", id="ipv6"),
        pytest.param("2001:0DB8:0:0:0:0:0:1", "2001:db8::1", id="ipv6 long form"),
        pytest.param("::ffff:10.0.0.1", "10.0.0.1", id="mapped dotted"),
        pytest.param("::ffff:a00:1", "10.0.0.1", id="mapped hex"),
        pytest.param("0:0:0:0:0:ffff:10.0.0.1", "10.0.0.1", id="mapped long form"),
        pytest.param("::10.0.0.1", "::a00:1", id="ipv4-compatible stays ipv6"),
        pytest.param("64:ff9b::10.0.0.1", "64:ff9b::a00:1", id="nat64 stays ipv6"),
    ],
)
def test_parse_address(text: str, expected: str) -> None:
    assert str(parse_address(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("fe80::1%eth0", id="zone id"),
        pytest.param("::ffff:10.0.0.1%1", id="mapped with zone id"),
        pytest.param("010.0.0.1", id="leading zero"),
        pytest.param("10.0.0.256", id="octet too big"),
        pytest.param("10.0.0", id="three octets"),
        pytest.param("167772161", id="integer spelling"),
        pytest.param("0x0a000001", id="hex spelling"),
        pytest.param("10.0.0.1:443", id="with port"),
        pytest.param("[::1]", id="bracketed"),
        pytest.param("10.0.0.0/8", id="a network"),
        pytest.param("localhost", id="host name"),
    ],
)
def test_parse_address_refuses(text: str) -> None:
    assert parse_address(text) is None
