"""Rule conditions (``when``): one table per condition, for allow and for deny semantics.

An allow applies only when every condition holds; a deny applies unless a
condition positively fails (a fact the request does not carry never lifts
a deny). CIDR membership is checked against the ``ipaddress`` module as a
reference, by hypothesis.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.identity import Identity
from chalicelib.policy.cidrs import CidrSet, InvalidCidr, parse_address, parse_cidr
from chalicelib.policy.conditions import Conditions, Facts
from chalicelib.policy.criteria.mfa import shows_second_factor
from chalicelib.policy.hours import Hours, InvalidHours, parse_clock
from chalicelib.reasons import Reason
from tests.helpers import AUDIENCE, ISSUER

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()  # a Wednesday


def person(amr: tuple[str, ...] = (), auth_time: int | None = None) -> Identity:
    return Identity(
        issuer=ISSUER,
        subject="alice",
        audience=AUDIENCE,
        expires_at=2_000_000_000,
        amr=amr,
        auth_time=auth_time,
    )


def facts(at: float = NOW, ip: str = "10.1.2.3") -> Facts:
    return Facts(at=at, source_ip=ip)


def berlin(day: int, hour: int, minute: int = 0, month: int = 12) -> float:
    return datetime(2026, month, day, hour, minute, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()


# --- mfa -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amr", "second_factor"),
    [
        ((), False),
        (("pwd",), False),
        (("pwd", "pin"), False),  # two knowledge methods are one factor
        (("otp",), False),
        (("mfa",), True),
        (("mca",), True),
        (("pwd", "otp"), True),
        (("pwd", "hwk"), True),
        (("pwd", "fpt"), True),
        (("hwk", "face"), True),
        (("sms", "tel"), False),  # both possession
        (("unknown", "pwd"), False),
        (("MFA",), False),  # RFC 8176 values are case-sensitive
    ],
    ids=lambda value: ",".join(value) if isinstance(value, tuple) else str(value),
)
def test_second_factor_from_amr(amr: tuple[str, ...], second_factor: bool) -> None:
    assert shows_second_factor(amr) is second_factor
    conditions = Conditions(mfa=True)
    failures = conditions.allow_failures(person(amr=amr), facts())
    assert failures == (() if second_factor else (Reason.MFA_REQUIRED,))


# --- max_auth_age ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth_age", "allow_holds", "deny_applies"),
    [
        (0, True, True),
        (3599, True, True),
        (3600, True, True),
        (3601, False, False),
        (-30, True, True),  # auth_time slightly ahead of our clock: skew
        (-3600, False, True),  # an hour in the future: not credible, unknown
        (None, False, True),  # no auth_time: cannot show a recent login
    ],
    ids=["now", "just inside", "at the limit", "just over", "skew", "future", "missing"],
)
def test_max_auth_age(auth_age: int | None, allow_holds: bool, deny_applies: bool) -> None:
    conditions = Conditions(max_auth_age=3600)
    auth_time = None if auth_age is None else int(NOW) - auth_age
    identity = person(auth_time=auth_time)

    failures = conditions.allow_failures(identity, facts())

    assert failures == (() if allow_holds else (Reason.AUTH_TOO_OLD,))
    assert conditions.deny_applies(identity, facts()) is deny_applies


# --- source_cidrs ----------------------------------------------------------------------------

OFFICE = CidrSet.parse(["10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32"])


@pytest.mark.parametrize(
    ("source_ip", "allow_holds", "deny_applies"),
    [
        ("10.1.2.3", True, True),
        ("192.0.2.255", True, True),
        ("192.0.3.0", False, False),
        ("2001:db8::1", True, True),
        ("2001:db9::1", False, False),
        ("::ffff:10.9.9.9", True, True),  # IPv4-mapped: the IPv4 address
        ("::ffff:192.0.3.1", False, False),
        ("fe80::1%eth0", False, True),  # a zone id names a link: unknown
        ("not-an-ip", False, True),
        ("", False, True),
    ],
)
def test_source_cidrs(source_ip: str, allow_holds: bool, deny_applies: bool) -> None:
    conditions = Conditions(source_cidrs=OFFICE)

    failures = conditions.allow_failures(person(), facts(ip=source_ip))

    assert failures == (() if allow_holds else (Reason.SOURCE_NOT_ALLOWED,))
    assert conditions.deny_applies(person(), facts(ip=source_ip)) is deny_applies


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("192.0.2.7", "192.0.2.7/32"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:192.0.2.1/128", "192.0.2.1/32"),
    ],
)
def test_parse_cidr_normalises_ipv4_mapped_networks(text: str, expected: str) -> None:
    assert str(parse_cidr(text)) == expected


@pytest.mark.parametrize(
    "text", ["10.0.0.1/8", "10.0.0.0/33", "ten/8", "", "2001:db8::1/32", "10.0.0.0/-1"]
)
def test_parse_cidr_refuses_host_bits_and_garbage(text: str) -> None:
    with pytest.raises(InvalidCidr):
        parse_cidr(text)


def test_parse_address_unwraps_mapped_and_refuses_zone_ids() -> None:
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
def test_cidr_set_membership_equals_the_ipaddress_reference(
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


# --- hours -----------------------------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = frozenset(range(5))


@pytest.mark.parametrize(
    ("window", "moment", "inside"),
    [
        # Office hours, Monday to Friday 08:00-18:00.
        (Hours(BERLIN, WEEKDAYS, 480, 1080), berlin(2, 8, 0), True),
        (Hours(BERLIN, WEEKDAYS, 480, 1080), berlin(2, 7, 59), False),
        (Hours(BERLIN, WEEKDAYS, 480, 1080), berlin(2, 17, 59), True),
        (Hours(BERLIN, WEEKDAYS, 480, 1080), berlin(2, 18, 0), False),  # "to" is exclusive
        (Hours(BERLIN, WEEKDAYS, 480, 1080), berlin(5, 10, 0), False),  # Saturday
        # Friday 22:00 to Saturday 06:00 (crosses midnight; belongs to Friday).
        (Hours(BERLIN, frozenset({4}), 1320, 360), berlin(4, 23, 0), True),
        (Hours(BERLIN, frozenset({4}), 1320, 360), berlin(5, 5, 59), True),
        (Hours(BERLIN, frozenset({4}), 1320, 360), berlin(5, 6, 0), False),
        (Hours(BERLIN, frozenset({4}), 1320, 360), berlin(4, 5, 0), False),  # Friday morning
        (Hours(BERLIN, frozenset({4}), 1320, 360), berlin(5, 23, 0), False),  # Saturday night
        # The whole day, to 24:00.
        (Hours(BERLIN, frozenset({2}), 0, 1440), berlin(2, 23, 59), True),
        (Hours(BERLIN, frozenset({2}), 0, 1440), berlin(3, 0, 0), False),
        # Wall clock through DST: 09:00 local is inside on both sides of the change.
        (Hours(BERLIN, frozenset({6}), 540, 600), berlin(29, 9, 30, month=3), True),
        (Hours(BERLIN, frozenset({6}), 540, 600), berlin(25, 9, 30, month=10), True),
        (
            Hours(NEW_YORK, frozenset({6}), 540, 600),
            datetime(2026, 3, 8, 9, 30, tzinfo=NEW_YORK).timestamp(),
            True,
        ),
        (
            Hours(NEW_YORK, frozenset({6}), 540, 600),
            datetime(2026, 11, 1, 9, 30, tzinfo=NEW_YORK).timestamp(),
            True,
        ),
        # The same instant, seen from the other zone's clock, is outside.
        (
            Hours(NEW_YORK, frozenset({6}), 540, 600),
            datetime(2026, 3, 29, 9, 30, tzinfo=BERLIN).timestamp(),
            False,
        ),
    ],
    ids=[
        "opening minute",
        "before opening",
        "last minute",
        "closing minute",
        "saturday",
        "friday night",
        "saturday early",
        "saturday 06:00",
        "friday morning",
        "saturday night",
        "until 24:00",
        "next midnight",
        "berlin spring forward",
        "berlin fall back",
        "new york spring forward",
        "new york fall back",
        "other zone",
    ],
)
def test_hours_window(window: Hours, moment: float, inside: bool) -> None:
    assert window.contains(moment) is inside
    failures = Conditions(hours=window).allow_failures(person(), facts(at=moment))
    assert failures == (() if inside else (Reason.OUTSIDE_HOURS,))
    assert Conditions(hours=window).deny_applies(person(), facts(at=moment)) is inside


@pytest.mark.parametrize(("text", "minutes"), [("00:00", 0), ("08:30", 510), ("23:59", 1439)])
def test_parse_clock(text: str, minutes: int) -> None:
    assert parse_clock(text) == minutes


@pytest.mark.parametrize(
    "text", ["8:30", "24:00", "12:60", "ab:cd", "12-30", "", "\uff11\uff12:00"]
)
def test_parse_clock_refuses(text: str) -> None:
    with pytest.raises(InvalidHours):
        parse_clock(text)


def test_24_00_is_only_an_end() -> None:
    assert parse_clock("24:00", allow_end_of_day=True) == 1440
    with pytest.raises(InvalidHours):
        parse_clock("24:01", allow_end_of_day=True)


# --- combined --------------------------------------------------------------------------------


def test_every_failing_condition_is_reported_and_one_failure_lifts_a_deny() -> None:
    conditions = Conditions(
        mfa=True,
        max_auth_age=60,
        source_cidrs=OFFICE,
        hours=Hours(BERLIN, frozenset({5}), 0, 1440),  # Saturdays only
    )
    identity = person(amr=("pwd",), auth_time=int(NOW) - 3600)

    assert conditions.allow_failures(identity, facts(ip="203.0.113.9")) == (
        Reason.MFA_REQUIRED,
        Reason.AUTH_TOO_OLD,
        Reason.SOURCE_NOT_ALLOWED,
        Reason.OUTSIDE_HOURS,
    )
    assert conditions.deny_applies(identity, facts()) is False
    assert Conditions().allow_failures(identity, facts()) == ()
    assert Conditions().deny_applies(identity, facts()) is True
