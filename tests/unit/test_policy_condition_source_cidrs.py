"""The ``source_cidrs`` condition (``chalicelib/policy/criteria/source_cidrs.py``): where from.

The request's source address must be in one of the rule's networks. An
IPv4-mapped IPv6 address is its IPv4 address, on both sides; an address that
cannot be placed (a zone id, a port, a host name) is unknown: it fails an
allow and keeps a deny. CIDR membership is also checked against the
``ipaddress`` module as a reference, by hypothesis.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.policy.cidrs import CidrSet, InvalidCidr, parse_address, parse_cidr
from chalicelib.policy.conditions import Conditions
from chalicelib.reasons import Reason
from tests.unit.test_policy_condition_registry import assert_both_ways, facts, person

OFFICE = CidrSet.parse(
    ["10.0.0.0/8", "192.0.2.0/25", "198.51.100.0/24", "2001:db8::/32", "203.0.113.9"]
)

SOURCE_CASES = [
    # source address, allow holds, deny applies
    pytest.param("10.1.2.3", True, True, id="ipv4 inside"),
    pytest.param("10.0.0.0", True, True, id="ipv4 first address"),
    pytest.param("10.255.255.255", True, True, id="ipv4 last address"),
    pytest.param("9.255.255.255", False, False, id="ipv4 just below"),
    pytest.param("11.0.0.0", False, False, id="ipv4 just above"),
    pytest.param("192.0.2.127", True, True, id="ipv4 last of a /25"),
    pytest.param("192.0.2.128", False, False, id="ipv4 first after a /25"),
    pytest.param("198.51.100.255", True, True, id="ipv4 last of a /24"),
    pytest.param("198.51.101.0", False, False, id="ipv4 first after a /24"),
    pytest.param("203.0.113.9", True, True, id="single host"),
    pytest.param("203.0.113.10", False, False, id="next to a single host"),
    pytest.param("2001:db8::1", True, True, id="ipv6 inside"),
    pytest.param("2001:0db8:ffff:ffff:ffff:ffff:ffff:ffff", True, True, id="ipv6 last, long form"),
    pytest.param("2001:DB8::A", True, True, id="ipv6 upper case"),
    pytest.param("2001:db9::", False, False, id="ipv6 just above"),
    pytest.param("2001:db9::1", False, False, id="ipv6 in the next /32"),
    pytest.param("2001:db7:ffff::", False, False, id="ipv6 just below"),
    pytest.param("::ffff:10.9.9.9", True, True, id="ipv4-mapped inside"),
    pytest.param("::ffff:a09:909", True, True, id="ipv4-mapped in hex"),
    pytest.param("::FFFF:192.0.2.1", True, True, id="ipv4-mapped upper case"),
    pytest.param("::ffff:11.0.0.1", False, False, id="ipv4-mapped outside"),
    pytest.param("::ffff:198.51.101.1", False, False, id="ipv4-mapped just after a /24"),
    pytest.param("::10.1.2.3", False, False, id="ipv4-compatible is not ipv4-mapped"),
    pytest.param("fe80::1%eth0", False, True, id="zone id is unknown"),
    pytest.param("10.1.2.3:443", False, True, id="address with port is unknown"),
    pytest.param("[2001:db8::1]", False, True, id="bracketed ipv6 is unknown"),
    pytest.param("010.1.2.3", False, True, id="leading zero octet is unknown"),
    pytest.param("10.1.2.256", False, True, id="octet out of range is unknown"),
    pytest.param("10.1.2", False, True, id="three octets is unknown"),
    pytest.param("localhost", False, True, id="host name is unknown"),
    pytest.param("not-an-ip", False, True, id="words are unknown"),
    pytest.param("", False, True, id="no source address is unknown"),
]


@pytest.mark.parametrize(("source_ip", "holds", "deny_applies"), SOURCE_CASES)
def test_source_cidrs_hold_only_for_an_address_inside_a_network(
    source_ip: str, holds: bool, deny_applies: bool
) -> None:
    assert_both_ways(
        Conditions(source_cidrs=OFFICE),
        person(),
        facts(ip=source_ip),
        holds=holds,
        deny_applies=deny_applies,
        reason=Reason.SOURCE_NOT_ALLOWED,
    )


@pytest.mark.parametrize(
    ("policy_cidr", "source_ip", "inside"),
    [
        pytest.param("::ffff:10.0.0.0/104", "10.20.30.40", True, id="mapped network, ipv4 client"),
        pytest.param("::ffff:10.0.0.0/104", "11.0.0.1", False, id="mapped network, outside"),
        pytest.param(
            "::ffff:10.0.0.0/104", "::ffff:10.0.0.1", True, id="mapped network, mapped client"
        ),
        pytest.param("::ffff:192.0.2.7/128", "192.0.2.7", True, id="mapped host, ipv4 client"),
        pytest.param("::/0", "2001:db8::1", True, id="all ipv6 holds an ipv6 client"),
        pytest.param("::/0", "10.0.0.1", False, id="all ipv6 does not hold an ipv4 client"),
        pytest.param("::/0", "::ffff:10.0.0.1", False, id="nor its mapped spelling"),
        pytest.param("0.0.0.0/0", "::ffff:10.0.0.1", True, id="all ipv4 holds a mapped client"),
        pytest.param("0.0.0.0/0", "2001:db8::1", False, id="all ipv4 does not hold ipv6"),
    ],
)
def test_ipv4_mapped_addresses_are_ipv4_on_both_sides(
    policy_cidr: str, source_ip: str, inside: bool
) -> None:
    assert_both_ways(
        Conditions(source_cidrs=CidrSet.parse([policy_cidr])),
        person(),
        facts(ip=source_ip),
        holds=inside,
        deny_applies=inside,
        reason=Reason.SOURCE_NOT_ALLOWED,
    )


# --- the networks a policy names --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("10.0.0.0/8", "10.0.0.0/8", id="ipv4 network"),
        pytest.param("192.0.2.7", "192.0.2.7/32", id="ipv4 host"),
        pytest.param("2001:db8::/32", "2001:db8::/32", id="ipv6 network"),
        pytest.param("::ffff:10.0.0.0/104", "10.0.0.0/8", id="ipv4-mapped network"),
        pytest.param("::ffff:192.0.2.1/128", "192.0.2.1/32", id="ipv4-mapped host"),
    ],
)
def test_a_policy_network_is_read_in_its_ipv4_form_when_mapped(text: str, expected: str) -> None:
    assert str(parse_cidr(text)) == expected


@pytest.mark.parametrize(
    "text",
    ["10.0.0.1/8", "10.0.0.0/33", "ten/8", "", "2001:db8::1/32", "10.0.0.0/-1"],
    ids=["ipv4 host bits", "prefix too long", "words", "empty", "ipv6 host bits", "negative"],
)
def test_a_policy_network_with_host_bits_or_garbage_is_refused(text: str) -> None:
    with pytest.raises(InvalidCidr):
        parse_cidr(text)


def test_a_source_address_is_read_as_ipv4_when_mapped_and_never_with_a_zone_id() -> None:
    assert parse_address("::ffff:10.0.0.1") == ipaddress.IPv4Address("10.0.0.1")
    assert parse_address(" 10.0.0.1 ") == ipaddress.IPv4Address("10.0.0.1")
    assert parse_address("fe80::1%eth0") is None
    assert parse_address("010.0.0.1") is None  # leading zeros: octal to some parsers


IPV4_NETWORKS = st.builds(
    lambda address, prefix: ipaddress.IPv4Network((address, prefix), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
IPV6_NETWORKS = st.builds(
    lambda address, prefix: ipaddress.IPv6Network((address, prefix), strict=False),
    st.integers(0, 2**128 - 1),
    st.integers(0, 128),
)
NETWORKS = st.lists(st.one_of(IPV4_NETWORKS, IPV6_NETWORKS), max_size=12)
ADDRESSES = st.one_of(
    st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
    st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
)


def _mapped_to_v4(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> object:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@settings(max_examples=300, deadline=None)
@given(NETWORKS, ADDRESSES)
def test_membership_in_the_networks_equals_the_ipaddress_reference(
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    cidrs = CidrSet.parse(str(network) for network in networks)
    candidate = _mapped_to_v4(address)
    reference = any(
        candidate in network
        for network in (parse_cidr(str(n)) for n in networks)
        if network.version == candidate.version  # type: ignore[attr-defined]
    )
    assert (candidate in cidrs) is reference


@settings(max_examples=200, deadline=None)
@given(st.lists(IPV4_NETWORKS, min_size=1, max_size=8), st.integers(0, 2**32 - 1))
def test_an_ipv4_address_and_its_mapped_spelling_agree(
    networks: list[ipaddress.IPv4Network], value: int
) -> None:
    cidrs = CidrSet.parse(str(network) for network in networks)
    plain = ipaddress.IPv4Address(value)
    mapped = parse_address(f"::ffff:{plain}")
    assert (plain in cidrs) is (mapped in cidrs)


@settings(max_examples=200, deadline=None)
@given(NETWORKS, ADDRESSES, st.data())
def test_adding_a_contained_network_changes_nothing(
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    data: st.DataObject,
) -> None:
    if not networks:
        return
    outer = data.draw(st.sampled_from(networks))
    inner_prefix = data.draw(st.integers(outer.prefixlen, outer.max_prefixlen))
    inner = next(outer.subnets(new_prefix=inner_prefix))
    before = CidrSet.parse(str(n) for n in networks)
    after = CidrSet.parse([*(str(n) for n in networks), str(inner)])
    candidate = _mapped_to_v4(address)
    assert (candidate in before) is (candidate in after)
