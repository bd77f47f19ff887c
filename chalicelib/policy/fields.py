"""The policy format's field tables: every field of every object, declared once.

The parser takes each object's known field names from here (anything else is
refused as an unknown field), and the published JSON schema and the
reference (``docs/policy.schema.json``, ``docs/policy.md``, see
:mod:`chalicelib.policy.reference`) are generated from the same tables and
from the registry of ``when`` conditions. Each field carries the JSON schema
of its value, a summary and an example; the examples, put together, form a
document the parser accepts (a unit test checks it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.policy.criterion import registered
from chalicelib.policy.document import HTTP_METHODS, REFUSED_AWS_SERVICES, SCHEMA_VERSION
from chalicelib.policy.durations import DURATION_PATTERN

# HTTP_METHODS in the order people read them.
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
assert frozenset(METHOD_ORDER) == HTTP_METHODS

STRINGS = {"$ref": "#/$defs/strings"}
DURATION = {"$ref": "#/$defs/duration"}

# Shared definitions, referenced by fields and by conditions' schemas.
SHARED_DEFS: Mapping[str, Any] = {
    "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]{0,63}$"},
    "strings": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
    "duration": {
        "description": 'Seconds, or a duration such as "90s", "30m", "4h", "1d", "1h30m".',
        "oneOf": [
            {"type": "integer", "minimum": 1},
            {"type": "string", "pattern": DURATION_PATTERN},
        ],
    },
    "claim_value": {"type": ["string", "integer", "boolean"]},
}


@dataclass(frozen=True)
class Field:
    """One field of a policy object.

    Attributes
    ----------
    name:
        The key.
    summary:
        One line: what it means.
    schema:
        The JSON schema of its value (empty when ``section`` describes it).
    example:
        A value as a policy would write it (None when ``section`` gives it).
    required:
        Whether the object must have it.
    section:
        The name of the :class:`Section` describing its value, when it is an object.
    notes:
        Further paragraphs for the reference.
    """

    name: str
    summary: str
    schema: Mapping[str, Any] = field(default_factory=dict)
    example: object = None
    required: bool = False
    section: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Section:
    """One object of the format: where it sits, and its fields.

    Attributes
    ----------
    name:
        The section's name (``route``), also its ``$defs`` key when ``shared``.
    location:
        Where it sits in a document (``routes[]``).
    summary:
        What it is.
    fields:
        Its fields, in document order.
    extra_schema:
        Schema keywords beyond the fields (``minProperties``, ``if``/``then``).
    shared:
        Whether the schema defines it once under ``$defs`` (it is a list's items).
    """

    name: str
    location: str
    summary: str
    fields: tuple[Field, ...]
    extra_schema: Mapping[str, Any] = field(default_factory=dict)
    shared: bool = False

    @property
    def names(self) -> set[str]:
        """The field names, for the parser's unknown-field check."""
        return {f.name for f in self.fields}


BOOLEAN_FALSE = {"type": "boolean", "default": False}

DOCUMENT = Section(
    name="document",
    location="",
    summary=(
        "Default deny; any matching deny beats every allow, grant and break-glass. "
        "`gatehouse policy validate` checks more than this schema can say (route references, "
        "glob syntax, CIDR host bits, time zones) and names the rule and field of every problem."
    ),
    fields=(
        Field("version", "The format's version.", {"const": SCHEMA_VERSION}, 1, required=True),
        Field(
            "routes",
            "Where requests go: at least one route.",
            {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/route"}},
            required=True,
            section="route",
        ),
        Field(
            "rules",
            "Who may do what; without rules, every request is denied.",
            {"type": "array", "items": {"$ref": "#/$defs/rule"}},
            section="rule",
        ),
        Field(
            "grants", "Just-in-time access: who approves, for how long at most.", section="grants"
        ),
        Field(
            "break_glass",
            "Members of these groups pass any denial except a deny rule, with a justification "
            "(header X-Gatehouse-Justification); every use is flagged.",
            section="break_glass",
        ),
    ),
)

ROUTE = Section(
    name="route",
    location="routes[]",
    summary="Where requests for a host and path prefix go.",
    shared=True,
    fields=(
        Field(
            "id",
            "Names the route in rules, grants and the audit log.",
            {"$ref": "#/$defs/id"},
            "orders",
            required=True,
        ),
        Field(
            "host",
            'A lower-case host name, or "*" for any host (an exact host wins).',
            {"type": "string", "default": "*"},
            "orders.example.com",
        ),
        Field(
            "path_prefix",
            "Requests under this path (on a segment boundary, any letter case); the longest "
            "prefix wins. Two routes of one host may not differ only in case.",
            {"type": "string", "pattern": "^/", "default": "/"},
            "/orders",
        ),
        Field(
            "upstream",
            "The backend's base URL (http or https, no query or fragment).",
            {"type": "string", "pattern": "^https?://"},
            "https://orders.internal:8443",
            required=True,
        ),
        Field(
            "audience",
            "The `aud` of the assertion Gatehouse signs for the backend.",
            {"type": "string", "minLength": 1},
            "orders-api",
            required=True,
        ),
        Field(
            "pass_authorization",
            "Forward the caller's Authorization header to the backend.",
            BOOLEAN_FALSE,
            False,
        ),
        Field(
            "sensitive",
            "Record request details for every decision on this route.",
            BOOLEAN_FALSE,
            True,
        ),
        Field(
            "aws",
            "An AWS upstream (IAM-authorised API, Lambda function URL, ...): requests are "
            "SigV4-signed with an STS session of this role per principal, SourceIdentity = the "
            "principal. The upstream must be https (http only on loopback) and "
            "pass_authorization false.",
            section="aws",
        ),
        Field(
            "cors",
            "Let pages of these browser origins call the route: Gatehouse answers their CORS "
            "preflights itself (without credentials, never forwarding them) and adds "
            "Access-Control-Allow-Origin to the route's answers to them.",
            section="cors",
            notes=(
                "A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) "
                "from a listed origin, for a listed method and only listed headers, is "
                "answered 204 with the `Access-Control-Allow-*` headers, the origin echoed "
                "and `Vary: Origin`; any other preflight to the route is answered 403 "
                "without them (a preflight carries no credentials: an `OPTIONS` that "
                "sends `Authorization` or a cookie is an ordinary request). Each is a "
                "decision in the audit trail "
                "(`cors_preflight_allowed`, `cors_origin_not_allowed`, "
                "`cors_method_not_allowed`, `cors_headers_not_allowed`). Other requests, "
                "`OPTIONS` without those headers included, are decided by the rules as "
                "always. Preflights carry no token: they reach Gatehouse only while "
                "`GATEHOUSE_AUTHORIZER_TTL_SECONDS` is 0 (with a cache, API Gateway "
                "answers a request without Authorization 401 itself).",
            ),
        ),
        Field(
            "identity_headers",
            "Send the verified principal upstream in plain headers: X-Gatehouse-User, "
            "X-Gatehouse-Email and X-Gatehouse-Groups (the signed assertion is sent either "
            "way; headers of that name from clients are always dropped).",
            BOOLEAN_FALSE,
            True,
            notes=(
                "`X-Gatehouse-User` is the `sub` for the stage's default issuer and "
                "`<issuer>|<sub>` for any other (or when the `sub` itself would read so); "
                "`X-Gatehouse-Email` is the verified email, `X-Gatehouse-Groups` the groups, "
                "comma-separated. Values are percent-encoded outside printable ASCII "
                "(and `%`, and `,` within a group), so no value can break a header line "
                "or pass for another; a header whose value would exceed its bound (user "
                "and email 512, groups 4096 characters) or has nothing to say is left out.",
            ),
        ),
    ),
    extra_schema={
        "if": {"required": ["aws"]},
        "then": {"properties": {"pass_authorization": {"const": False}}},
    },
)

AWS = Section(
    name="aws",
    location="routes[].aws",
    summary="The IAM role, signing name and region of an AWS upstream.",
    fields=(
        Field(
            "role_arn",
            "The role assumed per principal; its name starts with gatehouse-upstream-.",
            {
                "type": "string",
                "pattern": "^arn:(aws|aws-cn|aws-us-gov):iam::[0-9]{12}:role/"
                "([\\x21-\\x29\\x2b-\\x3e\\x40-\\x7e]{0,510}/)?"
                "gatehouse-upstream-[A-Za-z0-9_+=,.@-]{1,45}$",
            },
            "arn:aws:iam::123456789012:role/gatehouse-upstream-orders",
            required=True,
        ),
        Field(
            "service",
            "The SigV4 signing name; not one whose answers are credentials, nor s3.",
            {
                "type": "string",
                "pattern": "^[a-z][a-z0-9-]{0,30}[a-z0-9]$",
                "not": {"enum": sorted(REFUSED_AWS_SERVICES)},
            },
            "execute-api",
            required=True,
        ),
        Field(
            "region",
            "The signing region, in the role's partition.",
            {"type": "string", "pattern": "^[a-z]{2}(-[a-z]+){1,2}-[0-9]{1,2}$"},
            "eu-central-1",
            required=True,
        ),
    ),
)

CORS = Section(
    name="cors",
    location="routes[].cors",
    summary="The browser origins that may call a route, and what their preflights may ask.",
    fields=(
        Field(
            "origins",
            "Exact origins (scheme://host[:port], lower case, no default port, no path), or "
            '"*" alone for any origin (not with credentials).',
            {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "string",
                    "pattern": "^(\\*|https?://[a-z0-9.:\\[\\]-]+)$",
                },
            },
            ["https://app.example.com", "http://localhost:3000"],
            required=True,
        ),
        Field(
            "methods",
            "The methods a preflight may ask for (no wildcard).",
            {"type": "array", "minItems": 1, "items": {"enum": list(METHOD_ORDER)}},
            ["GET", "POST"],
            required=True,
        ),
        Field(
            "headers",
            "The request headers a preflight may ask for, any case (no wildcard); omitted: "
            "none beyond what browsers send without asking.",
            {
                "type": "array",
                "items": {"type": "string", "pattern": "^[!#$%&'*+.^`|~0-9A-Za-z-]+$"},
            },
            ["Content-Type", "X-Requested-With"],
        ),
        Field(
            "max_age",
            "Seconds a browser may reuse a preflight's answer (Access-Control-Max-Age); "
            "omitted: the browser's default.",
            {"type": "integer", "minimum": 0, "maximum": 86400},
            600,
        ),
        Field(
            "credentials",
            "Let the browser send cookies and Authorization (Access-Control-Allow-Credentials).",
            BOOLEAN_FALSE,
            True,
        ),
    ),
    extra_schema={
        "if": {"required": ["credentials"], "properties": {"credentials": {"const": True}}},
        "then": {"properties": {"origins": {"not": {"contains": {"const": "*"}}}}},
    },
)

RULE = Section(
    name="rule",
    location="rules[]",
    summary="One allow or deny rule: who, on which routes, which methods and paths, when.",
    shared=True,
    fields=(
        Field(
            "id",
            "Names the rule in decisions and the audit log.",
            {"$ref": "#/$defs/id"},
            "orders-read",
            required=True,
        ),
        Field(
            "effect",
            "allow, or deny (any matching deny beats every allow).",
            {"enum": ["allow", "deny"]},
            "allow",
            required=True,
        ),
        Field("routes", "The ids of the routes it covers.", STRINGS, ["orders"], required=True),
        Field(
            "subjects",
            "Any listed user, group, domain or claim may match (OR), of the listed issuers "
            "(none listed: the default issuer's); omitted means anyone any trusted issuer "
            "signs in.",
            section="subjects",
        ),
        Field(
            "actions",
            'HTTP methods, or "*" for all; a deny on GET also denies HEAD.',
            {"type": "array", "minItems": 1, "items": {"enum": [*METHOD_ORDER, "*"]}},
            ["GET", "HEAD"],
            required=True,
        ),
        Field(
            "paths",
            "Path globs (`*` one segment, `**` any depth); omitted means every path of the "
            "routes. Deny globs ignore letter case and also match a last segment with a "
            "format suffix (`/billing.json`); allow globs are exact.",
            {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^/"}},
            ["/orders/**", "/orders/*/detail"],
        ),
        Field("when", "Every listed condition must hold (AND).", section="when"),
    ),
)

SUBJECTS = Section(
    name="subjects",
    location="rules[].subjects",
    summary=(
        "Who a rule applies to: any listed users, groups, domains or claims (OR), as asserted "
        "by the listed issuers, or by the stage's default issuer when none is listed; "
        "issuers alone: anyone they sign in."
    ),
    fields=(
        Field(
            "users",
            "Verified emails (with @, any case) or subjects (`sub`, exact), of the rule's issuers.",
            STRINGS,
            ["alice@example.com", "00u1abc"],
        ),
        Field(
            "groups",
            "Group names from the groups claim of the rule's issuers' tokens.",
            STRINGS,
            ["engineering"],
        ),
        Field(
            "domains", "Domains of emails the rule's issuers verified.", STRINGS, ["example.com"]
        ),
        Field(
            "issuers",
            "Issuer URLs (trailing slashes and the case of scheme and host do not count). With "
            "users, groups, domains or claims: whose they are. Alone: everyone those identity "
            "providers sign in.",
            STRINGS,
            ["https://idp.example.com"],
            notes=(
                "Without `issuers`, the users, groups, domains and claims a rule names are "
                "those of the stage's default issuer, the first of its trusted issuers "
                "(`GATEHOUSE_TRUSTED_ISSUERS`). See [Several identity providers]"
                "(#several-identity-providers).",
            ),
        ),
        Field(
            "claims",
            "Every named claim must match: equal to the value, or (list claim) containing it; "
            "a list of values accepts any of them.",
            {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": {
                    "oneOf": [
                        {"$ref": "#/$defs/claim_value"},
                        {
                            "type": "array",
                            "minItems": 1,
                            "items": {"$ref": "#/$defs/claim_value"},
                        },
                    ]
                },
            },
            {"department": ["security", "it"], "level": 3},
            notes=(
                "Registered claims (`iss`, `sub`, `aud`, `exp`, ...) and claims with a subject "
                "kind of their own (`email`, `email_verified`, `groups`) cannot be named here.",
            ),
        ),
    ),
    extra_schema={"minProperties": 1},
)

GRANTS = Section(
    name="grants",
    location="grants",
    summary="Just-in-time access: who approves, for how long at most.",
    fields=(
        Field(
            "approver_groups",
            "Members of these groups approve grant requests.",
            STRINGS,
            ["security"],
            required=True,
        ),
        Field(
            "max_duration",
            "The longest a grant lasts (at most 7d); shortening it shortens "
            "grants already approved.",
            DURATION,
            "4h",
            required=True,
        ),
    ),
)

BREAK_GLASS = Section(
    name="break_glass",
    location="break_glass",
    summary="Emergency access for on-call members, flagged in the audit log.",
    fields=(
        Field(
            "groups",
            "Members of these groups (the default issuer's) may break glass.",
            STRINGS,
            ["oncall"],
            required=True,
        ),
        Field(
            "require_justification",
            "Refuse break-glass without an X-Gatehouse-Justification header.",
            {"type": "boolean", "default": True},
            True,
        ),
    ),
)


# The reference's section on issuers: its paragraphs, and a policy that shows them.
ISSUERS_TITLE = "Several identity providers"
ISSUERS_GUIDE = (
    "A stage may trust several OpenID Connect issuers (`GATEHOUSE_TRUSTED_ISSUERS`); the "
    "first one listed is its *default issuer*. Users, groups, domains and claims belong to "
    "the issuer that asserts them: the group `admins` of one identity provider is not the "
    "group `admins` of another, and a subject (`sub`) or a verified email of one issuer "
    "does not name a principal of another.",
    "- A rule that names `users`, `groups`, `domains` or `claims` without `issuers` names "
    "those of the default issuer only. A policy written for a stage that trusts one issuer "
    "keeps its meaning when a second issuer is added, and the second issuer's principals "
    "match only rules that name it.\n"
    "- Next to `users`, `groups`, `domains` or `claims`, `issuers` says whose they are: "
    "`{issuers: [https://okta.example.com], groups: [admins]}` matches the members of "
    "`admins` that okta.example.com asserts, and nobody else. With two issuers listed, each "
    "issuer's members of those groups match.\n"
    "- `issuers` alone matches anyone those issuers sign in.\n"
    "- A rule without `subjects` matches anyone signed in by any trusted issuer.\n"
    "- A deny rule that names groups (emails, domains, a claim) also applies to principals "
    "of *its* issuers whose tokens lack the groups claim (a verified email, that claim): "
    "to the default issuer's principals when it names no issuer.\n"
    "- Break-glass groups (`break_glass.groups`) are the default issuer's.\n"
    "- Issuer URLs are compared without trailing slashes and with the scheme and host in "
    "lower case: `https://IdP.example.com/` and `https://idp.example.com` are one issuer "
    "(the path's case counts).",
    "Before a stage trusted several issuers, `issuers` next to other subjects was one more "
    "alternative (anyone from the issuer, or the other subjects); it now narrows them.",
    "A stage whose default issuer is https://login.example.com that also trusts a "
    "partner's identity provider:",
)
ISSUERS_EXAMPLE: Mapping[str, Any] = {
    "version": SCHEMA_VERSION,
    "routes": [
        {
            "id": "wiki",
            "host": "wiki.example.com",
            "upstream": "https://wiki.internal",
            "audience": "wiki",
        }
    ],
    "rules": [
        {
            "id": "staff-read",
            "effect": "allow",
            "routes": ["wiki"],
            "subjects": {"groups": ["staff"]},
            "actions": ["GET", "HEAD"],
        },
        {
            "id": "partner-engineers-read",
            "effect": "allow",
            "routes": ["wiki"],
            "subjects": {"issuers": ["https://partner-idp.example.net"], "groups": ["engineers"]},
            "actions": ["GET", "HEAD"],
            "paths": ["/shared/**"],
        },
        {
            "id": "admins-edit",
            "effect": "allow",
            "routes": ["wiki"],
            "subjects": {
                "issuers": ["https://login.example.com", "https://partner-idp.example.net"],
                "groups": ["wiki-admins"],
            },
            "actions": ["*"],
        },
        {
            "id": "no-contractors",
            "effect": "deny",
            "routes": ["wiki"],
            "subjects": {"groups": ["contractors"]},
            "actions": ["*"],
            "paths": ["/hr/**"],
        },
    ],
}
ISSUERS_EXAMPLE_NOTES = (
    "`staff-read` and `no-contractors` are about the default issuer's `staff` and "
    "`contractors` (the deny also covers its principals whose tokens carry no groups claim); "
    "`partner-engineers-read` admits the partner's `engineers` only; `admins-edit` admits "
    "the `wiki-admins` of both. A partner principal whose `sub` or group names equal "
    "someone's at login.example.com matches none of that person's rules.",
)


def when_section() -> Section:
    """The ``when`` block, from the registry of conditions."""
    return Section(
        name="when",
        location="rules[].when",
        summary="Every listed condition must hold (AND).",
        fields=tuple(
            Field(c.name, c.summary, c.schema, c.example, notes=c.notes) for c in registered()
        ),
        extra_schema={"minProperties": 1},
    )


def sections() -> dict[str, Section]:
    """Every section by name, in reference order."""
    return {
        s.name: s
        for s in (DOCUMENT, ROUTE, AWS, CORS, RULE, SUBJECTS, when_section(), GRANTS, BREAK_GLASS)
    }
