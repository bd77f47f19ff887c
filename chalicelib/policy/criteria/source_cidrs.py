"""``source_cidrs``: the client address is in one of these networks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.policy.cidrs import CidrSet, InvalidCidr, parse_address
from chalicelib.policy.criterion import (
    FAILS,
    HOLDS,
    UNKNOWN,
    Criterion,
    Problems,
    Verdict,
    register,
)
from chalicelib.reasons import Reason

if TYPE_CHECKING:
    from chalicelib.identity import Identity
    from chalicelib.policy.criterion import Check, RequestFacts


def parse(value: Any, where: str, problems: Problems) -> CidrSet | None:
    """The networks, merged for O(log n) lookups."""
    texts = problems.string_list(value, where)
    try:
        return CidrSet.parse(texts) if texts else None
    except InvalidCidr as exc:
        problems.problem(where, str(exc))
        return None


@dataclass(frozen=True, slots=True)
class SourceCidrs:
    """The networks a request must come from."""

    networks: CidrSet

    def check(self, identity: Identity, facts: RequestFacts) -> Verdict:
        """HOLDS inside, FAILS outside, UNKNOWN when the source is not an address."""
        address = parse_address(facts.source_ip)
        if address is None:
            return UNKNOWN
        return HOLDS if address in self.networks else FAILS


def compile_check(setting: CidrSet) -> Check:
    """The bound method: one call per request."""
    return SourceCidrs(setting).check


SOURCE_CIDRS = register(
    Criterion(
        name="source_cidrs",
        reason=Reason.SOURCE_NOT_ALLOWED,
        parse=parse,
        compile=compile_check,
        summary="The client address is in one of these networks.",
        schema={"$ref": "#/$defs/strings"},
        example=["10.0.0.0/8", "2001:db8::/32"],
        notes=(
            "IPv4 and IPv6 CIDRs or bare addresses; host bits must be zero. An IPv4-mapped IPv6 "
            "address (`::ffff:10.0.0.1`) is the IPv4 address it carries. The address is the one "
            "API Gateway saw; a request whose source cannot be placed does not satisfy the "
            "condition, and does not lift a deny.",
        ),
    )
)
