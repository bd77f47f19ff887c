"""What a deployment of one stage is made of: names, knobs and their limits.

Chalice names every function ``gatehouse-<stage>-<function>`` and, with
``autogen_policy: false``, gives each its own role of the same name
(``chalice/deploy/appgraph.py``, 1.34). The routes all run in one function,
``api_handler``: the proxy, the grant API and the JWKS route share its role.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gatehouse.deploy.errors import DeployError
from gatehouse.resources import AUDIT_RETENTION_DAYS

APP_NAME = "gatehouse"
STAGES = ("dev", "prod")
# Chalice's function names (the keys of ``lambda_functions`` in .chalice/config.json).
FUNCTIONS = (
    "api_handler",
    "gatehouse_authorizer",
    "audit_writer",
    "access_log_ingest",
    "grant_sweeper",
    "ledger_digest",
    "detection_checks",
    "ocsf_export",
)
WRITER = "audit_writer"
ACCESS_LOG_INGEST = "access_log_ingest"

# Events per ledger object: the writer's SQS batch size. SQS allows up to
# 10,000; below 1,000 objects get small and many (one PUT, one index round each).
DEFAULT_EVENTS_PER_OBJECT = 1000
MIN_EVENTS_PER_OBJECT = 1000
MAX_EVENTS_PER_OBJECT = 10000
# How long Lambda gathers a batch before it invokes the writer with fewer
# events (a batch over 10 messages needs a window; 300 s is SQS's maximum).
DEFAULT_BATCHING_WINDOW_SECONDS = 30
MAX_BATCHING_WINDOW_SECONDS = 300
# Writers at once: the writers serialise on the ledger head, so more only
# contend. 2 is the lowest ScalingConfig.MaximumConcurrency SQS allows.
WRITER_MAX_CONCURRENCY = 2

# The unauthenticated health route (app.py, chalicelib/proxy/health.py) is
# throttled by API Gateway itself, per method, below the stage's limits: it
# answers anyone, so its budget must not be the rest of the API's.
HEALTH_PATH = "/.gatehouse/health"
HEALTH_METHODS = ("GET", "HEAD")
HEALTH_RATE_LIMIT = 10.0  # requests per second, steady state
HEALTH_BURST_LIMIT = 20  # requests at once


def method_setting_path(path: str) -> str:
    """A resource path as API Gateway's method settings spell it (``/`` as ``~1``)."""
    return "/" + path.replace("~", "~0").replace("/", "~1")


PLACEHOLDER_PREFIX = "REPLACE_WITH_STACK_OUTPUT_"
# The infra template's DigestKeyPolicy values: who the ledger digest key's policy
# lets sign (narrow: ledger_digest; legacy: api_handler too, as before the split).
DIGEST_KEY_POLICIES = ("narrow", "legacy")
# prod's shortest audit retention; the infra template's rule refuses less too.
MIN_PROD_RETENTION_DAYS = 365


def infra_stack_name(stage: str) -> str:
    """The CloudFormation stack of the stateful resources."""
    return f"{APP_NAME}-{stage}-infra"


def athena_stack_name(stage: str) -> str:
    """The CloudFormation stack of the Glue tables and Athena workgroup."""
    return f"{APP_NAME}-{stage}-athena"


def function_name(stage: str, function: str) -> str:
    """The Lambda function (and role) name Chalice gives ``function``."""
    return f"{APP_NAME}-{stage}-{function}"


@dataclass(frozen=True, slots=True)
class WriterSource:
    """How the audit writer reads the queue: events per object and the batching window."""

    events_per_object: int = DEFAULT_EVENTS_PER_OBJECT
    batching_window_seconds: int = DEFAULT_BATCHING_WINDOW_SECONDS
    max_concurrency: int = WRITER_MAX_CONCURRENCY

    def __post_init__(self) -> None:
        if not MIN_EVENTS_PER_OBJECT <= self.events_per_object <= MAX_EVENTS_PER_OBJECT:
            raise DeployError(
                f"events per object must be {MIN_EVENTS_PER_OBJECT:,}-{MAX_EVENTS_PER_OBJECT:,}, "
                f"got {self.events_per_object}"
            )
        if not 1 <= self.batching_window_seconds <= MAX_BATCHING_WINDOW_SECONDS:
            raise DeployError(
                f"the batching window must be 1-{MAX_BATCHING_WINDOW_SECONDS} s "
                f"(a batch of over 10 messages needs one), got {self.batching_window_seconds}"
            )
        if self.max_concurrency < 2:
            raise DeployError("SQS event sources allow a maximum concurrency of 2 or more")


@dataclass(frozen=True, slots=True)
class StageSettings:
    """One stage's deployment knobs."""

    stage: str
    project_dir: Path
    writer: WriterSource = field(default_factory=WriterSource)
    retention_days: int | None = None
    alert_email: str = ""
    key_admin_role_arn: str = ""
    operator_role_arn: str = ""
    # None: the deploy decides from the existing stack (deploy.digest_key_policy).
    digest_key_policy: str | None = None

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise DeployError(f"stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        if self.digest_key_policy is not None and (
            self.digest_key_policy not in DIGEST_KEY_POLICIES
        ):
            raise DeployError(
                f"the digest key policy must be one of {', '.join(DIGEST_KEY_POLICIES)}, "
                f"got {self.digest_key_policy!r}"
            )
        if self.retention_days is not None and self.retention_days < 1:
            raise DeployError(f"retention must be 1 day or more, got {self.retention_days}")
        if self.stage == "prod" and self.audit_retention_days < MIN_PROD_RETENTION_DAYS:
            raise DeployError(
                f"prod keeps its audit trail at least {MIN_PROD_RETENTION_DAYS} days, "
                f"got {self.audit_retention_days}"
            )

    @property
    def audit_retention_days(self) -> int:
        """The audit bucket's default retention (prod: 7 years unless told otherwise)."""
        return self.retention_days or AUDIT_RETENTION_DAYS[self.stage]

    @property
    def infra_template(self) -> Path:
        return self.project_dir / "infra" / "gatehouse.yaml"

    @property
    def athena_template(self) -> Path:
        return self.project_dir / "infra" / "athena.yaml"
