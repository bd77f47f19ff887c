"""The ``GATEHOUSE_*`` environment variables: one table of name, default and range.

The functions read their stage from these variables
(:meth:`chalicelib.config.Settings.from_environment`), and the operator CLI
finds a deployed stage from the same ones, so every name, default and bound is
written here once. ``docs/configuration.md`` is generated from this table
(``python -m chalicelib.variables [--check]``).

This module imports nothing of Gatehouse's and nothing costly: the
authorizer's cold start reads it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Final

PREFIX: Final = "GATEHOUSE_"

# API Gateway caps an authorizer's result TTL at one hour.
MAX_AUTHORIZER_TTL_SECONDS: Final = 3600
# An identity assertion lives five minutes at most: a replayed one is short-lived.
MAX_ASSERTION_TTL_SECONDS: Final = 300
# Lambda's synchronous payload limit is 6 MB for the whole event/response;
# binary bodies travel base64-encoded (x4/3), so the raw body must stay lower.
LAMBDA_PAYLOAD_LIMIT_BYTES: Final = 6 * 1024 * 1024
DEFAULT_MAX_BODY_BYTES: Final = 4 * 1024 * 1024


class Reader(Enum):
    """Who reads a variable."""

    FUNCTIONS = "functions"  # the Lambda functions (and the local stack's)
    CLI = "cli"  # operator commands acting on a deployed stage
    BOTH = "functions, cli"


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable.

    Attributes
    ----------
    name:
        Without the ``GATEHOUSE_`` prefix.
    default:
        The value when the variable is unset or empty; None when it is
        required (``required``) or when unset means "none".
    low, high:
        Inclusive bounds of a number.
    required:
        A stage cannot run without it.
    reader:
        Who reads it.
    description:
        One sentence for the reference.
    """

    name: str
    description: str
    reader: Reader = Reader.FUNCTIONS
    default: str | int | float | None = None
    low: int | float | None = None
    high: int | float | None = None
    required: bool = False

    @property
    def env(self) -> str:
        """The variable's full name."""
        return PREFIX + self.name

    def int_default(self) -> int:
        """The default of an integer variable."""
        assert isinstance(self.default, int)  # the table below declares it so
        return self.default

    def float_default(self) -> float:
        """The default of a number variable."""
        assert isinstance(self.default, int | float)  # the table below declares it so
        return float(self.default)


def _table(*variables: Variable) -> dict[str, Variable]:
    return {variable.name: variable for variable in variables}


VARIABLES: Final = _table(
    Variable("STAGE", "The stage's name.", Reader.BOTH, default="dev"),
    Variable(
        "AWS_ENDPOINT_URL",
        "An AWS endpoint for every service (the local stack's moto); unset in AWS.",
        Reader.BOTH,
    ),
    Variable(
        "STS_ENDPOINT_URL",
        "STS only, for AWS upstreams' sessions (the local stack's CloudTrail recorder).",
    ),
    Variable(
        "STATE_TABLE",
        "The DynamoDB table of policies, grants and the ledger's state.",
        Reader.BOTH,
        required=True,
    ),
    Variable(
        "AUDIT_BUCKET", "The Object Lock bucket of the audit trail.", Reader.BOTH, required=True
    ),
    Variable(
        "AUDIT_QUEUE_URL", "The SQS queue audit events go through.", Reader.BOTH, required=True
    ),
    Variable(
        "AUDIT_DLQ_URL",
        "The audit queue's dead-letter queue (the scheduled detection check watches it; "
        "default: the audit queue's URL with -dlq appended, as the stack names it).",
        Reader.BOTH,
    ),
    Variable(
        "ASSERTION_KEY_ID",
        "The KMS key (id, ARN or alias) that certifies the proxy's short-lived assertion keys.",
        required=True,
    ),
    Variable(
        "DIGEST_KEY_ID",
        "The KMS key (id, ARN or alias) that signs ledger digests; `audit verify` reads it.",
        Reader.BOTH,
        required=True,
    ),
    Variable(
        "GATEWAY_ISSUER",
        "The gateway's URL: the `iss` of its identity assertions.",
        required=True,
    ),
    Variable(
        "TRUSTED_ISSUERS",
        "JSON list of OIDC issuers: issuer, audiences, jwks_uri, groups_claim, "
        "email_verified_required; for browser sign-in also name, display_name, client_id, "
        "client_secret_id (a Secrets Manager secret) and scopes. The first is the default "
        "issuer: policy subjects that name no issuer are its.",
        Reader.BOTH,
        required=True,
    ),
    Variable(
        "ALLOW_HTTP_ISSUERS",
        "`true` accepts plain-http issuers (the local stack only).",
        default="false",
    ),
    Variable(
        "AUTHORIZER_TTL_SECONDS",
        "API Gateway's authorizer result cache; 0 decides every request.",
        default=0,
        low=0,
        high=MAX_AUTHORIZER_TTL_SECONDS,
    ),
    Variable(
        "POLICY_REFRESH_SECONDS",
        "How long a container trusts its copy of the active policy.",
        default=10.0,
        low=0.0,
        high=300.0,
    ),
    Variable(
        "JWKS_REFRESH_COOLDOWN_SECONDS",
        "The least time between two key-set fetches of one issuer.",
        default=30.0,
        low=1.0,
        high=3600.0,
    ),
    Variable(
        "JWKS_MAX_AGE_SECONDS",
        "How long a fetched key set is used before it is fetched again.",
        default=3600.0,
        low=60.0,
        high=86400.0,
    ),
    Variable(
        "JWKS_FETCH_TIMEOUT_SECONDS",
        "Timeout of one key-set fetch.",
        default=2.0,
        low=0.1,
        high=10.0,
    ),
    Variable(
        "CLOCK_SKEW_SECONDS",
        "Leeway on token times (exp, nbf, iat).",
        default=60,
        low=0,
        high=60,
    ),
    Variable(
        "MAX_TOKEN_BYTES",
        "Longer bearer tokens are refused unread.",
        default=8192,
        low=512,
        high=65536,
    ),
    Variable(
        "ASSERTION_TTL_SECONDS",
        "Lifetime of the identity assertion sent upstream.",
        default=60,
        low=1,
        high=MAX_ASSERTION_TTL_SECONDS,
    ),
    Variable(
        "ASSERTION_KEY_ROTATE_SECONDS",
        "How long a proxy container signs with one assertion key before it makes the next "
        "(each key's certificate lasts an hour longer).",
        default=7200,
        low=10,
        high=7200,
    ),
    Variable(
        "SESSION_KEYS_SECRET",
        "The Secrets Manager secret (name or ARN) of the keys that seal browser session "
        "cookies; unset: no browser sign-in (`gatehouse session rotate-key` writes it).",
        Reader.BOTH,
    ),
    Variable(
        "SESSION_MAX_SECONDS",
        "A browser session's absolute lifetime, from sign-in.",
        default=43200,
        low=300,
        high=2592000,
    ),
    Variable(
        "SESSION_IDLE_SECONDS",
        "A browser session unused this long ends.",
        default=3600,
        low=60,
        high=86400,
    ),
    Variable(
        "SESSION_REFRESH_SECONDS",
        "How long a session's claims are used before the identity provider is asked again "
        "(with its refresh token, else a new sign-in).",
        default=900,
        low=30,
        high=86400,
    ),
    Variable(
        "SESSION_REVOCATION_REFRESH_SECONDS",
        "How often a container reads the revoked sessions: the most a revocation waits.",
        default=3.0,
        low=0.0,
        high=60.0,
    ),
    Variable(
        "UPSTREAM_CONNECT_TIMEOUT_SECONDS",
        "Timeout of the connection to a backend.",
        default=2.0,
        low=0.1,
        high=10.0,
    ),
    Variable(
        "UPSTREAM_READ_TIMEOUT_SECONDS",
        "Timeout of a backend's answer (API Gateway gives up at 29 s).",
        default=25.0,
        low=0.1,
        high=28.0,
    ),
    Variable(
        "MAX_REQUEST_BODY_BYTES",
        "Larger request bodies are refused (413).",
        default=DEFAULT_MAX_BODY_BYTES,
        low=0,
        high=LAMBDA_PAYLOAD_LIMIT_BYTES,
    ),
    Variable(
        "MAX_RESPONSE_BODY_BYTES",
        "Larger backend answers become 502.",
        default=DEFAULT_MAX_BODY_BYTES,
        low=0,
        high=DEFAULT_MAX_BODY_BYTES,
    ),
    Variable(
        "AUDIT_QUERY_REDACTION",
        "Regular expression: query parameters whose names match are recorded as redacted "
        "(default: a built-in rule for token, secret, password, session and key-like names).",
    ),
    Variable(
        "AUDIT_QUERY_VALUE_REDACTION",
        "Regular expression: query values that match are redacted whatever their name; "
        "default: a built-in rule for JWTs, AWS keys, vendor tokens and long random strings; "
        "empty turns the rule off.",
    ),
    Variable(
        "LEDGER_ANCHOR",
        "s3://bucket[/prefix]: where the newest ledger checkpoint also goes.",
        Reader.BOTH,
    ),
    Variable(
        "LEDGER_ORIGIN",
        "The origin line of the ledger's checkpoints (default s3.amazonaws.com/<audit bucket>).",
        Reader.FUNCTIONS,
    ),
    Variable(
        "OCSF_EXPORT_LOCATION",
        "s3://bucket[/prefix]: the Security Lake root the OCSF export writes its custom "
        "sources under (ext/gatehouse-<class>/...; docs/ocsf.md); empty turns the export off.",
        Reader.FUNCTIONS,
    ),
    Variable(
        "OCSF_EXPORT_ROLE_ARN",
        "The role the OCSF export assumes to write each custom source (the provider role "
        "Security Lake made for it, e.g. arn:aws:iam::<lake account>:role/"
        "AmazonSecurityLake-Provider-{source}-<region>; `{source}` becomes the source's name); "
        "empty: the export writes with its own role.",
        Reader.FUNCTIONS,
    ),
    Variable(
        "OCSF_EXPORT_EXTERNAL_ID",
        "The external ID the provider roles of OCSF_EXPORT_ROLE_ARN require (empty: none).",
        Reader.FUNCTIONS,
    ),
    Variable(
        "DETECTION_RULES",
        "The detection rules (a JSON rules file, relative to the deployment; "
        "`gatehouse alerts list --rules FILE -o json` writes one); default: the shipped "
        "chalicelib/detect/default_rules.json. `off` turns detection off.",
        Reader.BOTH,
    ),
    Variable(
        "ALERT_TOPIC_ARN",
        "The SNS topic alerts are published to (the stage's alert topic); unset: none.",
    ),
    Variable(
        "ALERT_EVENT_BUS",
        "The EventBridge bus alerts are put on (source gatehouse, detail-type Gatehouse Alert).",
        default="default",
    ),
    Variable(
        "WITNESS_KEYS",
        "The witnesses' public keys (C2SP vkeys, space-separated) that verify and evidence trust.",
        Reader.CLI,
    ),
    Variable("GATEWAY_URL", "The stage's gateway URL (grant commands).", Reader.CLI),
    Variable("TRAIL_BUCKET", "CloudTrail's bucket, for correlation queries.", Reader.CLI),
    Variable("TRAIL_ACCOUNT_ID", "The account under AWSLogs/ in the trail bucket.", Reader.CLI),
    Variable("ATHENA_WORKGROUP", "The Athena workgroup (default gatehouse-<stage>).", Reader.CLI),
    Variable("ATHENA_DATABASE", "The Glue database (default gatehouse_<stage>).", Reader.CLI),
)


def reference() -> str:
    """The Markdown reference of every variable (``docs/configuration.md``)."""
    lines = [
        "# Configuration: the GATEHOUSE_* environment variables",
        "",
        "Generated from `chalicelib/variables.py` by `python -m chalicelib.variables`; "
        "do not edit by hand.",
        "",
        "The functions read them from the stage's `environment_variables` in "
        "`.chalice/config.json` (the local stack sets them itself). Operator commands "
        "acting on a deployed stage read the ones marked *cli*. Every problem is "
        "reported at once, on the first invocation.",
        "",
        "| Variable | Read by | Default | Range | Meaning |",
        "|---|---|---|---|---|",
    ]
    for variable in VARIABLES.values():
        default = "required" if variable.required else _text(variable.default)
        bounds = (
            f"{_text(variable.low)} .. {_text(variable.high)}"
            if variable.low is not None and variable.high is not None
            else ""
        )
        lines.append(
            f"| `{variable.env}` | {variable.reader.value} | {default} | {bounds} "
            f"| {variable.description} |"
        )
    lines += [
        "",
        "`AWS_REGION` (or `AWS_DEFAULT_REGION`) names the region, as for any AWS tool.",
        "",
    ]
    return "\n".join(lines)


def _text(value: str | int | float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return f"`{value}`"
    return f"{value:g}" if isinstance(value, float) else str(value)


REFERENCE_PATH: Final = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def main(argv: list[str]) -> int:
    """Write the reference, or with ``--check`` say whether it is current."""
    text = reference()
    if "--check" in argv:
        if not REFERENCE_PATH.exists() or REFERENCE_PATH.read_text() != text:
            print(f"{REFERENCE_PATH.name} is stale: run python -m chalicelib.variables")
            return 1
        return 0
    REFERENCE_PATH.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
