"""The policy document: its types and its parser, under the name callers have always used.

The types live in :mod:`chalicelib.policy.document`, the parser in
:mod:`chalicelib.policy.parser` (its sections in :mod:`chalicelib.policy.route_parser`
and :mod:`chalicelib.policy.rule_parser`), the field tables in
:mod:`chalicelib.policy.fields` and the ``when`` conditions in
:mod:`chalicelib.policy.criteria`; this module re-exports what other
packages import from here.
"""

from chalicelib.policy.document import (
    HTTP_METHODS,
    MAX_GRANT_DURATION_SECONDS,
    REFUSED_AWS_SERVICES,
    RESERVED_PREFIX,
    SCHEMA_VERSION,
    AwsUpstream,
    BreakGlass,
    ClaimValue,
    CorsPolicy,
    Effect,
    GrantSettings,
    PolicyDocument,
    Route,
    Rule,
    Subjects,
    claim_key,
    is_reserved_path,
)
from chalicelib.policy.durations import parse_duration
from chalicelib.policy.parser import canonical_json, document_checksum, parse_policy
from chalicelib.policy.route_parser import UPSTREAM_ROLE_PREFIX

__all__ = [
    "HTTP_METHODS",
    "MAX_GRANT_DURATION_SECONDS",
    "REFUSED_AWS_SERVICES",
    "RESERVED_PREFIX",
    "SCHEMA_VERSION",
    "UPSTREAM_ROLE_PREFIX",
    "AwsUpstream",
    "BreakGlass",
    "ClaimValue",
    "CorsPolicy",
    "Effect",
    "GrantSettings",
    "PolicyDocument",
    "Route",
    "Rule",
    "Subjects",
    "canonical_json",
    "claim_key",
    "document_checksum",
    "is_reserved_path",
    "parse_duration",
    "parse_policy",
]
