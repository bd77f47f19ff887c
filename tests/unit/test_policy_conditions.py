"""Rule conditions (``when``), one table per criterion, each read both ways.

An allow rule applies only when every condition holds (``allow_failures`` is
empty); a deny rule applies unless a condition positively fails
(``deny_applies``): a fact the request does not carry (no ``auth_time``, a
source address that cannot be placed) fails an allow and keeps a deny.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from chalicelib.identity import Identity
from chalicelib.policy.cidrs import CidrSet
from chalicelib.policy.conditions import (
    FAILS,
    HOLDS,
    UNKNOWN,
    Conditions,
    Facts,
    Verdict,
)
from chalicelib.policy.criteria.mfa import shows_second_factor
from chalicelib.policy.hours import DAY_NAMES, Hours, parse_clock
from chalicelib.reasons import Reason
from tests.helpers import AUDIENCE, ISSUER

NOW = 1_800_000_000  # Fri 2027-01-15 08:00 UTC; the exact day matters only for hours
OFFICE_IP = "10.1.2.3"


def person(amr: tuple[str, ...] = (), auth_time: int | None = None) -> Identity:
    return Identity(
        issuer=ISSUER,
        subject="alice",
        audience=AUDIENCE,
        expires_at=2_000_000_000,
        amr=amr,
        auth_time=auth_time,
    )


def facts(at: float = NOW, ip: str = OFFICE_IP) -> Facts:
    return Facts(at=at, source_ip=ip)


def assert_both_ways(
    conditions: Conditions,
    identity: Identity,
    request: Facts,
    *,
    holds: bool,
    deny_applies: bool,
    reason: Reason,
) -> None:
    """The allow reading (failure codes) and the deny reading of one condition."""
    assert conditions.allow_failures(identity, request) == (() if holds else (reason,))
    assert conditions.deny_applies(identity, request) is deny_applies


# --- mfa ---------------------------------------------------------------------------------

MFA_CASES = [
    pytest.param((), False, id="no amr"),
    pytest.param(("pwd",), False, id="password only"),
    pytest.param(("pwd", "pin"), False, id="two knowledge methods are one factor"),
    pytest.param(("pin", "kba"), False, id="pin and questions are one factor"),
    pytest.param(("otp", "hwk"), False, id="two possession methods are one factor"),
    pytest.param(("sms", "tel"), False, id="sms and phone are one factor"),
    pytest.param(("fpt", "face"), False, id="two biometrics are one factor"),
    pytest.param(("mfa",), True, id="idp says mfa"),
    pytest.param(("mca",), True, id="idp says multiple channels"),
    pytest.param(("pwd", "otp"), True, id="password and otp"),
    pytest.param(("pwd", "hwk"), True, id="password and hardware key"),
    pytest.param(("pwd", "swk"), True, id="password and software key"),
    pytest.param(("pin", "sc"), True, id="pin and smart card"),
    pytest.param(("hwk", "fpt"), True, id="key and fingerprint"),
    pytest.param(("pop", "face"), True, id="proof of possession and face"),
    pytest.param(("kba", "iris"), True, id="questions and iris"),
    pytest.param(("MFA",), False, id="values are case-sensitive"),
    pytest.param(("Pwd", "OTP"), False, id="capitalised methods are unknown"),
    pytest.param(("geo", "wia"), False, id="methods without a factor class"),
    pytest.param(("user", "x-custom"), False, id="unknown methods"),
]


@pytest.mark.parametrize(("amr", "second_factor"), MFA_CASES)
def test_mfa_needs_a_second_factor(amr: tuple[str, ...], second_factor: bool) -> None:
    identity = person(amr=amr)

    assert shows_second_factor(amr) is second_factor
    assert_both_ways(
        Conditions(mfa=True),
        identity,
        facts(),
        holds=second_factor,
        deny_applies=second_factor,  # mfa is never unknown: no amr shows no second factor
        reason=Reason.MFA_REQUIRED,
    )


def test_mfa_false_imposes_nothing() -> None:
    conditions = Conditions(mfa=False)

    assert conditions.empty
    assert conditions.allow_failures(person(), facts()) == ()
    assert conditions.deny_applies(person(), facts()) is True


# --- max_auth_age ------------------------------------------------------------------------

AUTH_AGE_CASES = [
    # (seconds since auth_time, or None for no auth_time), allow holds, deny applies
    pytest.param(0, True, True, id="logged in now"),
    pytest.param(1, True, True, id="one second ago"),
    pytest.param(3599, True, True, id="one second inside"),
    pytest.param(3600, True, True, id="exactly the limit"),
    pytest.param(3601, False, False, id="one second over"),
    pytest.param(86_400, False, False, id="a day ago"),
    pytest.param(NOW, False, False, id="auth_time zero"),
    pytest.param(-1, True, True, id="a second in the future is clock skew"),
    pytest.param(-60, True, True, id="a minute in the future is still skew"),
    pytest.param(-61, False, True, id="beyond the skew allowance"),
    pytest.param(-3600, False, True, id="an hour in the future"),
    pytest.param(None, False, True, id="no auth_time"),
]


@pytest.mark.parametrize(("age", "holds", "deny_applies"), AUTH_AGE_CASES)
def test_max_auth_age(age: int | None, holds: bool, deny_applies: bool) -> None:
    identity = person(auth_time=None if age is None else NOW - age)

    assert_both_ways(
        Conditions(max_auth_age=3600),
        identity,
        facts(),
        holds=holds,
        deny_applies=deny_applies,
        reason=Reason.AUTH_TOO_OLD,
    )


@pytest.mark.parametrize(
    "auth_time",
    [True, float(NOW), str(NOW)],
    ids=["boolean", "float", "string"],
)
def test_an_auth_time_that_is_not_an_integer_is_unknown(auth_time: object) -> None:
    identity = person(auth_time=auth_time)  # type: ignore[arg-type]
    conditions = Conditions(max_auth_age=3600)

    assert conditions.check(identity, facts()) == [(Reason.AUTH_TOO_OLD, UNKNOWN)]
    assert conditions.allow_failures(identity, facts()) == (Reason.AUTH_TOO_OLD,)
    assert conditions.deny_applies(identity, facts()) is True


def test_auth_age_is_measured_at_the_request_time_not_the_wall_clock() -> None:
    identity = person(auth_time=NOW)
    conditions = Conditions(max_auth_age=60)

    assert conditions.allow_failures(identity, facts(at=NOW + 60)) == ()
    assert conditions.allow_failures(identity, facts(at=NOW + 61)) == (Reason.AUTH_TOO_OLD,)


# --- source_cidrs ------------------------------------------------------------------------

NETWORKS = CidrSet.parse(["10.0.0.0/8", "192.0.2.0/25", "2001:db8::/32", "203.0.113.9"])

SOURCE_CASES = [
    # source address, allow holds, deny applies
    pytest.param("10.1.2.3", True, True, id="ipv4 inside"),
    pytest.param("10.0.0.0", True, True, id="ipv4 first address"),
    pytest.param("10.255.255.255", True, True, id="ipv4 last address"),
    pytest.param("9.255.255.255", False, False, id="ipv4 just below"),
    pytest.param("11.0.0.0", False, False, id="ipv4 just above"),
    pytest.param("192.0.2.127", True, True, id="ipv4 last of a /25"),
    pytest.param("192.0.2.128", False, False, id="ipv4 first after a /25"),
    pytest.param("203.0.113.9", True, True, id="single host"),
    pytest.param("203.0.113.10", False, False, id="next to a single host"),
    pytest.param("2001:db8::1", True, True, id="ipv6 inside"),
    pytest.param("2001:0db8:ffff:ffff:ffff:ffff:ffff:ffff", True, True, id="ipv6 last, long form"),
    pytest.param("2001:DB8::A", True, True, id="ipv6 upper case"),
    pytest.param("2001:db9::", False, False, id="ipv6 just above"),
    pytest.param("2001:db7:ffff::", False, False, id="ipv6 just below"),
    pytest.param("::ffff:10.9.9.9", True, True, id="ipv4-mapped inside"),
    pytest.param("::ffff:a09:909", True, True, id="ipv4-mapped in hex"),
    pytest.param("::FFFF:192.0.2.1", True, True, id="ipv4-mapped upper case"),
    pytest.param("::ffff:11.0.0.1", False, False, id="ipv4-mapped outside"),
    pytest.param("::10.1.2.3", False, False, id="ipv4-compatible is not ipv4-mapped"),
    pytest.param("fe80::1%eth0", False, True, id="zone id is unknown"),
    pytest.param("10.1.2.3:443", False, True, id="address with port is unknown"),
    pytest.param("[2001:db8::1]", False, True, id="bracketed ipv6 is unknown"),
    pytest.param("010.1.2.3", False, True, id="leading zero octet is unknown"),
    pytest.param("10.1.2.256", False, True, id="octet out of range is unknown"),
    pytest.param("10.1.2", False, True, id="three octets is unknown"),
    pytest.param("localhost", False, True, id="host name is unknown"),
    pytest.param("", False, True, id="no source address is unknown"),
]


@pytest.mark.parametrize(("source_ip", "holds", "deny_applies"), SOURCE_CASES)
def test_source_cidrs(source_ip: str, holds: bool, deny_applies: bool) -> None:
    assert_both_ways(
        Conditions(source_cidrs=NETWORKS),
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


# --- hours -------------------------------------------------------------------------------

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
WORKDAYS = ("mon", "tue", "wed", "thu", "fri")


def window(tz: str, days: tuple[str, ...], start: str, end: str) -> Hours:
    """An hours window written the way a policy writes it."""
    return Hours(
        ZoneInfo(tz),
        frozenset(DAY_NAMES.index(day) for day in days),
        parse_clock(start),
        parse_clock(end, allow_end_of_day=True),
    )


def local(tz: str, text: str) -> float:
    """Epoch seconds of a local wall-clock time (unambiguous ones only)."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


OFFICE_HOURS = window(BERLIN, WORKDAYS, "08:00", "18:00")
FRIDAY_NIGHT = window(BERLIN, ("fri",), "22:00", "06:00")
SUNDAY_NIGHT = window(BERLIN, ("sun",), "22:00", "02:00")
WEDNESDAY = window(BERLIN, ("wed",), "00:00", "24:00")
EVENINGS = window(BERLIN, WORKDAYS, "18:00", "24:00")

# 2026-11-30 is a Monday; 2026-12-02 a Wednesday; 2026-12-04 a Friday.
DAY_CASES = [
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-12-02 08:00"), True, id="opening minute"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-12-02 07:59:59"), False, id="second before"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-12-02 07:59:59.999"), False, id="ms before"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-12-02 17:59:59"), True, id="last second"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-12-02 18:00"), False, id="closing is exclusive"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-11-30 08:00"), True, id="monday opening"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-11-30 00:00"), False, id="monday midnight"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-12-04 17:59"), True, id="friday last minute"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-12-05 10:00"), False, id="saturday"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-12-06 23:59"), False, id="sunday night"),
    pytest.param(OFFICE_HOURS, utc("2026-12-02 07:30"), True, id="utc 07:30 is 08:30 in berlin"),
    pytest.param(OFFICE_HOURS, utc("2026-12-02 17:30"), False, id="utc 17:30 is 18:30 in berlin"),
    pytest.param(WEDNESDAY, local(BERLIN, "2026-12-02 00:00"), True, id="24:00 window start"),
    pytest.param(WEDNESDAY, local(BERLIN, "2026-12-02 23:59:59"), True, id="24:00 last second"),
    pytest.param(WEDNESDAY, local(BERLIN, "2026-12-03 00:00"), False, id="24:00 is exclusive"),
    pytest.param(WEDNESDAY, local(BERLIN, "2026-12-01 23:59:59"), False, id="day before"),
    pytest.param(EVENINGS, local(BERLIN, "2026-12-02 23:59"), True, id="evening to 24:00"),
    pytest.param(EVENINGS, local(BERLIN, "2026-12-03 00:00"), False, id="evening ends at midnight"),
    pytest.param(EVENINGS, local(BERLIN, "2026-12-05 00:30"), False, id="evening is not crossing"),
]

MIDNIGHT_CASES = [
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-04 21:59"), False, id="friday before"),
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-04 22:00"), True, id="friday 22:00"),
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-04 23:59:59"), True, id="friday 23:59:59"),
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-05 00:00"), True, id="saturday midnight"),
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-05 05:59:59"), True, id="saturday 05:59"),
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-05 06:00"), False, id="saturday 06:00"),
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-04 05:00"), False, id="friday early"),
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-05 22:00"), False, id="saturday night"),
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-06 01:00"), False, id="sunday early"),
    pytest.param(SUNDAY_NIGHT, local(BERLIN, "2026-12-07 01:59"), True, id="wraps into monday"),
    pytest.param(SUNDAY_NIGHT, local(BERLIN, "2026-12-07 02:00"), False, id="monday 02:00"),
    pytest.param(SUNDAY_NIGHT, local(BERLIN, "2026-12-06 01:00"), False, id="sunday early is sat"),
    pytest.param(SUNDAY_NIGHT, local(BERLIN, "2026-12-06 22:30"), True, id="sunday late"),
]

# Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET.
# New York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
DST_CASES = [
    pytest.param(
        window(BERLIN, ("sun",), "09:00", "10:00"),
        utc("2026-03-29 07:30"),
        True,
        id="berlin spring: 09:30 CEST is inside",
    ),
    pytest.param(
        window(BERLIN, ("sun",), "09:00", "10:00"),
        utc("2026-03-29 08:30"),
        False,
        id="berlin spring: the winter offset would be inside",
    ),
    pytest.param(
        window(BERLIN, ("sun",), "02:00", "03:00"),
        utc("2026-03-29 00:59"),
        False,
        id="berlin spring: 01:59 CET is before the skipped hour",
    ),
    pytest.param(
        window(BERLIN, ("sun",), "02:00", "03:00"),
        utc("2026-03-29 01:00"),
        False,
        id="berlin spring: the skipped hour never happens",
    ),
    pytest.param(
        window(BERLIN, ("sun",), "02:30", "04:00"),
        utc("2026-03-29 01:00"),
        True,
        id="berlin spring: 03:00 CEST is inside a window over the gap",
    ),
    pytest.param(
        window(BERLIN, ("sat",), "22:00", "06:00"),
        utc("2026-03-29 03:59"),
        True,
        id="berlin spring: a night window keeps its wall-clock end",
    ),
    pytest.param(
        window(BERLIN, ("sat",), "22:00", "06:00"),
        utc("2026-03-29 04:00"),
        False,
        id="berlin spring: 06:00 CEST ends the night window",
    ),
    pytest.param(
        window(BERLIN, ("sun",), "02:00", "03:00"),
        utc("2026-10-25 00:30"),
        True,
        id="berlin autumn: first 02:30 (CEST)",
    ),
    pytest.param(
        window(BERLIN, ("sun",), "02:00", "03:00"),
        utc("2026-10-25 01:30"),
        True,
        id="berlin autumn: second 02:30 (CET)",
    ),
    pytest.param(
        window(BERLIN, ("sun",), "02:00", "03:00"),
        utc("2026-10-25 02:00"),
        False,
        id="berlin autumn: 03:00 CET ends it",
    ),
    pytest.param(
        window(BERLIN, ("sun",), "09:00", "10:00"),
        utc("2026-10-25 08:30"),
        True,
        id="berlin autumn: 09:30 CET is inside",
    ),
    pytest.param(
        window(NEW_YORK, ("sun",), "09:00", "17:00"),
        utc("2026-03-08 13:00"),
        True,
        id="new york spring: 09:00 EDT opens",
    ),
    pytest.param(
        window(NEW_YORK, ("sun",), "09:00", "17:00"),
        utc("2026-03-08 12:59"),
        False,
        id="new york spring: 08:59 EDT is before",
    ),
    pytest.param(
        window(NEW_YORK, ("sun",), "02:00", "03:00"),
        utc("2026-03-08 07:00"),
        False,
        id="new york spring: the skipped hour never happens",
    ),
    pytest.param(
        window(NEW_YORK, ("sun",), "01:00", "02:00"),
        utc("2026-11-01 05:30"),
        True,
        id="new york autumn: first 01:30 (EDT)",
    ),
    pytest.param(
        window(NEW_YORK, ("sun",), "01:00", "02:00"),
        utc("2026-11-01 06:30"),
        True,
        id="new york autumn: second 01:30 (EST)",
    ),
    pytest.param(
        window(NEW_YORK, ("sun",), "01:00", "02:00"),
        utc("2026-11-01 07:00"),
        False,
        id="new york autumn: 02:00 EST ends it",
    ),
    pytest.param(
        window(NEW_YORK, ("sun",), "01:00", "02:00"),
        utc("2026-11-01 04:59"),
        False,
        id="new york autumn: 00:59 EDT is before",
    ),
    pytest.param(
        window(NEW_YORK, ("sat",), "20:00", "22:00"),
        utc("2026-03-29 01:00"),
        True,
        id="the same instant on the other zone's clock",
    ),
]

ODD_OFFSET_CASES = [
    pytest.param(
        window("Asia/Kolkata", WORKDAYS, "09:00", "10:00"),
        utc("2026-12-02 03:30"),
        True,
        id="kolkata +05:30 opening",
    ),
    pytest.param(
        window("Asia/Kolkata", WORKDAYS, "09:00", "10:00"),
        utc("2026-12-02 03:29:59"),
        False,
        id="kolkata a second before",
    ),
    pytest.param(
        window("Asia/Kathmandu", WORKDAYS, "09:00", "10:00"),
        utc("2026-12-02 03:15"),
        True,
        id="kathmandu +05:45 opening",
    ),
    pytest.param(
        window("Asia/Kathmandu", WORKDAYS, "09:00", "10:00"),
        utc("2026-12-02 04:15"),
        False,
        id="kathmandu closing",
    ),
    pytest.param(
        window("Pacific/Kiritimati", ("thu",), "00:00", "01:00"),
        utc("2026-12-02 10:30"),
        True,
        id="utc+14 is already thursday",
    ),
]


@pytest.mark.parametrize(
    ("hours", "at", "inside"), DAY_CASES + MIDNIGHT_CASES + DST_CASES + ODD_OFFSET_CASES
)
def test_hours(hours: Hours, at: float, inside: bool) -> None:
    assert hours.contains(at) is inside
    assert_both_ways(
        Conditions(hours=hours),
        person(),
        facts(at=at),
        holds=inside,
        deny_applies=inside,  # the clock is always known
        reason=Reason.OUTSIDE_HOURS,
    )


# --- several conditions ------------------------------------------------------------------

EVERYTHING = Conditions(
    mfa=True,
    max_auth_age=3600,
    source_cidrs=CidrSet.parse(["10.0.0.0/8"]),
    hours=window("UTC", ("fri",), "08:00", "09:00"),  # NOW is Friday 08:00 UTC
)
STRONG = ("pwd", "hwk")

COMBINED_CASES = [
    # amr, auth_time, source, at, allow failures, verdicts, deny applies
    pytest.param(
        STRONG, NOW, OFFICE_IP, NOW, (), (HOLDS, HOLDS, HOLDS, HOLDS), True, id="all hold"
    ),
    pytest.param(
        ("pwd",),
        NOW,
        OFFICE_IP,
        NOW,
        (Reason.MFA_REQUIRED,),
        (FAILS, HOLDS, HOLDS, HOLDS),
        False,
        id="only mfa fails",
    ),
    pytest.param(
        STRONG,
        None,
        OFFICE_IP,
        NOW,
        (Reason.AUTH_TOO_OLD,),
        (HOLDS, UNKNOWN, HOLDS, HOLDS),
        True,
        id="only auth_time unknown",
    ),
    pytest.param(
        STRONG,
        None,
        "garbage",
        NOW,
        (Reason.AUTH_TOO_OLD, Reason.SOURCE_NOT_ALLOWED),
        (HOLDS, UNKNOWN, UNKNOWN, HOLDS),
        True,
        id="two unknowns",
    ),
    pytest.param(
        STRONG,
        None,
        "garbage",
        NOW + 3600,
        (Reason.AUTH_TOO_OLD, Reason.SOURCE_NOT_ALLOWED, Reason.OUTSIDE_HOURS),
        (HOLDS, UNKNOWN, UNKNOWN, FAILS),
        False,
        id="unknowns and one failure",
    ),
    pytest.param(
        ("pwd",),
        NOW - 7200,
        "192.0.2.1",
        NOW + 3600,
        (
            Reason.MFA_REQUIRED,
            Reason.AUTH_TOO_OLD,
            Reason.SOURCE_NOT_ALLOWED,
            Reason.OUTSIDE_HOURS,
        ),
        (FAILS, FAILS, FAILS, FAILS),
        False,
        id="all fail, every reason in order",
    ),
]


@pytest.mark.parametrize(
    ("amr", "auth_time", "source_ip", "at", "failures", "verdicts", "deny_applies"),
    COMBINED_CASES,
)
def test_every_condition_must_hold_and_one_failure_lifts_a_deny(
    amr: tuple[str, ...],
    auth_time: int | None,
    source_ip: str,
    at: float,
    failures: tuple[Reason, ...],
    verdicts: tuple[Verdict, ...],
    deny_applies: bool,
) -> None:
    identity = person(amr=amr, auth_time=auth_time)
    request = facts(at=at, ip=source_ip)

    assert EVERYTHING.allow_failures(identity, request) == failures
    assert [verdict for _, verdict in EVERYTHING.check(identity, request)] == list(verdicts)
    assert [reason for reason, _ in EVERYTHING.check(identity, request)] == [
        Reason.MFA_REQUIRED,
        Reason.AUTH_TOO_OLD,
        Reason.SOURCE_NOT_ALLOWED,
        Reason.OUTSIDE_HOURS,
    ]
    assert EVERYTHING.deny_applies(identity, request) is deny_applies


def test_no_conditions_hold_for_everyone_both_ways() -> None:
    conditions = Conditions()
    nobody = person()

    assert conditions.empty
    assert conditions.check(nobody, facts(ip="garbage")) == []
    assert conditions.allow_failures(nobody, facts(ip="garbage")) == ()
    assert conditions.deny_applies(nobody, facts(ip="garbage")) is True
