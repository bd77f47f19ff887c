"""Where operator commands find the stage they act on.

Order: explicit flags, then a running local stack (``.gatehouse/dev.json``,
looked for in the current directory and its parents up to the project's root:
:func:`gatehouse.state.default_state_dir`), then the same ``GATEHOUSE_*``
environment variables the functions use (``gatehouse stage env`` prints them
for a deployed stage). A ``dev.json`` whose process is gone is an error
(:class:`~gatehouse.state.StaleLocalStack`), not a reason to fall through to
the environment's stage.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatehouse.state import NoLocalStack, find_state

if TYPE_CHECKING:
    from chalicelib.config import TrustedIssuer


class NoTarget(RuntimeError):
    """Neither a local stack nor a configured stage was found."""


@dataclass(frozen=True)
class Target:
    """The AWS resources of one stage."""

    region: str
    endpoint_url: str | None
    audit_bucket: str
    audit_queue_url: str
    audit_dlq_url: str | None
    state_table: str
    local: bool
    stage: str = "dev"
    issuer: str | None = None
    audience: str | None = None
    gateway_url: str | None = None
    digest_key_id: str | None = None  # the KMS key that signs ledger digests
    ledger_anchor: str | None = None
    trail_bucket: str | None = None  # CloudTrail's bucket (AWSLogs/...), for correlation queries
    account_id: str | None = None  # the account under AWSLogs/ in the trail bucket
    athena_workgroup: str | None = None  # default gatehouse-<stage>
    athena_database: str | None = None  # default gatehouse_<stage>
    ledger_origin_setting: str | None = None  # GATEHOUSE_LEDGER_ORIGIN
    # The witnesses' public keys (C2SP vkeys) that verify and evidence trust.
    witness_keys: tuple[str, ...] = ()
    alert_topic_arn: str | None = None  # GATEHOUSE_ALERT_TOPIC_ARN
    alert_event_bus: str = "default"  # GATEHOUSE_ALERT_EVENT_BUS

    @property
    def ledger_origin(self) -> str:
        """The origin line of the ledger's checkpoints (what the stage's functions use)."""
        from chalicelib.config import ledger_origin

        return ledger_origin(self.audit_bucket, self.ledger_origin_setting)

    @property
    def workgroup(self) -> str:
        """The stage's Athena workgroup (GATEHOUSE_ATHENA_WORKGROUP, else gatehouse-<stage>)."""
        return self.athena_workgroup or f"gatehouse-{self.stage}"

    @property
    def database(self) -> str:
        """The Glue database of the stage (GATEHOUSE_ATHENA_DATABASE, else gatehouse_<stage>)."""
        return self.athena_database or f"gatehouse_{self.stage}"

    @cached_property
    def trusted_issuers(self) -> tuple[TrustedIssuer, ...]:
        """Whose tokens identify people to operator commands (grants): the stage's issuers."""
        from chalicelib.config import SettingsError, TrustedIssuer, trusted_issuers_from_environment

        if self.issuer and self.audience:
            return (TrustedIssuer(issuer=self.issuer, audiences=(self.audience,)),)
        try:
            return trusted_issuers_from_environment(os.environ)
        except SettingsError as exc:
            raise NoTarget(f"cannot verify tokens: {exc}") from exc

    @cached_property
    def operator(self) -> str:
        """Who is acting, as the audit trail records it: the AWS caller identity."""
        if self.local:
            import getpass

            return f"local:{getpass.getuser()}"
        return str(self.client("sts").get_caller_identity()["Arn"])

    @cached_property
    def session(self) -> Any:
        """A boto3 session (fake credentials for the local stack)."""
        import boto3

        if self.local:
            return boto3.session.Session(
                aws_access_key_id="testing",
                aws_secret_access_key="testing",  # noqa: S106 - moto accepts anything
                region_name=self.region,
            )
        return boto3.session.Session(region_name=self.region)

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` in this stage."""
        return self.session.client(service, endpoint_url=self.endpoint_url, region_name=self.region)


def resolve_target(state_dir: Path | None = None) -> Target:
    """The stage operator commands act on.

    Raises
    ------
    NoTarget
        When there is no running local stack and no ``GATEHOUSE_*`` settings.
    StaleLocalStack
        When the local stack's ``dev.json`` names a process that is not running.
    """
    try:
        state = find_state(state_dir)
    except NoLocalStack as local_error:
        setting = _deployed_stage_setting(os.environ)
        bucket = setting("AUDIT_BUCKET")
        if not bucket:
            raise NoTarget(
                f"{local_error}; or set {_names('AUDIT_BUCKET', 'AUDIT_QUEUE_URL', 'STATE_TABLE')} "
                'to act on a deployed stage (`eval "$(gatehouse stage env --stage NAME)"`)'
            ) from local_error
        return Target(
            region=os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1",
            endpoint_url=setting("AWS_ENDPOINT_URL"),
            audit_bucket=bucket,
            audit_queue_url=setting("AUDIT_QUEUE_URL") or "",
            audit_dlq_url=setting("AUDIT_DLQ_URL"),
            state_table=setting("STATE_TABLE") or "",
            local=False,
            stage=setting("STAGE") or "",
            gateway_url=setting("GATEWAY_URL"),
            digest_key_id=setting("DIGEST_KEY_ID"),
            ledger_anchor=setting("LEDGER_ANCHOR"),
            ledger_origin_setting=setting("LEDGER_ORIGIN"),
            witness_keys=tuple((setting("WITNESS_KEYS") or "").split()),
            alert_topic_arn=setting("ALERT_TOPIC_ARN"),
            alert_event_bus=setting("ALERT_EVENT_BUS") or "default",
            trail_bucket=setting("TRAIL_BUCKET"),
            account_id=setting("TRAIL_ACCOUNT_ID"),
            athena_workgroup=setting("ATHENA_WORKGROUP"),
            athena_database=setting("ATHENA_DATABASE"),
        )
    return Target(
        region=state.region,
        endpoint_url=state.aws_endpoint_url,
        audit_bucket=state.audit_bucket,
        audit_queue_url=state.audit_queue_url,
        audit_dlq_url=state.audit_dlq_url or None,
        state_table=state.state_table,
        local=True,
        stage=state.stage,
        issuer=state.issuer,
        audience=state.audience,
        gateway_url=state.gateway_url,
        digest_key_id=state.digest_key_id or None,
        ledger_anchor=state.ledger_anchor or None,
        witness_keys=tuple(state.witness_keys),
        alert_topic_arn=state.alert_topic_arn or None,
        trail_bucket=state.trail_bucket or None,
        account_id=state.account_id or None,
        athena_workgroup=_deployed_stage_setting(os.environ)("ATHENA_WORKGROUP"),
        athena_database=_deployed_stage_setting(os.environ)("ATHENA_DATABASE"),
    )


def _deployed_stage_setting(environ: Mapping[str, str]) -> Callable[[str], str | None]:
    """Reads one variable of the functions' table (its default when unset; None if none)."""
    from chalicelib.variables import VARIABLES

    def setting(name: str) -> str | None:
        variable = VARIABLES[name]
        value = environ.get(variable.env) or variable.default
        return None if value is None else str(value)

    return setting


def _names(*names: str) -> str:
    from chalicelib.variables import VARIABLES

    return (
        ", ".join(VARIABLES[name].env for name in names[:-1]) + f" and {VARIABLES[names[-1]].env}"
    )
