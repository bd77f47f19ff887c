"""``make deploy``: the infra stack, the Athena stack, ``chalice deploy``, then the wiring.

Every step is idempotent: a second deploy with nothing changed leaves the
stacks ``unchanged``, Chalice updates the functions in place, and the wiring
reports ``unchanged`` throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatehouse.deploy.chalice_cli import (
    deployed_resource,
    keep_deployed_record,
    prepare_build,
    run_chalice,
)
from gatehouse.deploy.errors import DeployError, NotDeployed
from gatehouse.deploy.settings import (
    ACCESS_LOG_INGEST,
    WRITER,
    StageSettings,
    athena_stack_name,
    function_name,
    infra_stack_name,
)
from gatehouse.deploy.stacks import StackResult, deploy_stack, stack_parameters
from gatehouse.deploy.templates import (
    ATHENA_PARAMETERS_FROM_INFRA,
    access_log_format,
    gateway_responses,
    load_template,
)
from gatehouse.deploy.wiring import Change, WiringTarget, wire

Say = Callable[[str], None]
# Values a real stage must not keep: the committed config's examples.
_EXAMPLE_MARK = "example.com"


@dataclass
class DeployReport:
    """What one deploy did."""

    stacks: list[StackResult] = field(default_factory=list)
    api_url: str | None = None
    wiring: list[Change] = field(default_factory=list)


def digest_key_policy(settings: StageSettings, existing: Mapping[str, str] | None) -> str:
    """The infra stack's ``DigestKeyPolicy``: ``narrow`` unless the key policy cannot change.

    ``existing`` is the parameters of the infra stack as deployed (None: no stack
    yet). The ``--digest-key-policy`` setting wins. Otherwise a new stack is
    ``narrow`` (CloudFormation creates the key with its policy in one call); a
    stack that already has the parameter keeps its value (changing it changes
    the key policy, which is the key admin role's to do, on purpose); a stack
    from before the assertion key, whose digest key policy still lets both
    functions sign, is ``legacy``. Without a ``KeyAdminRoleArn`` nobody may put
    that key's policy, so an update that changed it would fail; with one, only
    an update run as that role could, and narrowing the policy before Chalice
    has moved the proxy to the assertion key would stop the proxy signing
    until it has. The key admin role narrows it on a later deploy.
    """
    if settings.digest_key_policy:
        return settings.digest_key_policy
    if existing is None:
        return "narrow"
    return existing.get("DigestKeyPolicy") or "legacy"


def infra_parameters(
    settings: StageSettings, existing: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The infra stack's parameters for the stage (``existing``: the deployed stack's)."""
    return {
        "Stage": settings.stage,
        "AuditRetentionDays": str(settings.audit_retention_days),
        "AlertEmail": settings.alert_email,
        # The deploy sets the account's role itself, and only when none is set.
        "ManageApiGatewayAccount": "false",
        "KeyAdminRoleArn": settings.key_admin_role_arn,
        "OperatorRoleArn": settings.operator_role_arn,
        "DigestKeyPolicy": digest_key_policy(settings, existing),
    }


def _say_digest_key_policy(
    say: Say, parameters: Mapping[str, str], existing: Mapping[str, str] | None
) -> None:
    """Say what the update does to the digest key's policy, when it is not simply narrow."""
    if existing is None:
        return
    chosen, before = parameters["DigestKeyPolicy"], existing.get("DigestKeyPolicy", "")
    admin = existing.get("KeyAdminRoleArn", "")
    if chosen == "legacy":
        later = (
            f"; to narrow it, deploy again as {admin} with --digest-key-policy narrow"
            if admin
            else ""
        )
        say(
            "note: DigestKeyPolicy=legacy: the ledger digest key's policy (SigningKey) also "
            "lets api_handler sign, as before the assertion key; the functions' IAM policies "
            f"let only ledger_digest sign with it (docs/deploy.md, Upgrades){later}"
        )
    elif chosen != before:
        who = (
            f"it must run as the key admin role {admin}"
            if admin
            else "this stage has no key admin role, so CloudFormation cannot and the update "
            "will fail"
        )
        say(
            f"note: this update narrows the ledger digest key's policy (DigestKeyPolicy "
            f"{before or 'unset'} -> {chosen}): {who}; --digest-key-policy legacy keeps it"
        )


def athena_parameters(
    template: dict[str, Any], stage: str, outputs: Mapping[str, str]
) -> dict[str, str]:
    """What the Athena stack declares and the deploy can fill; its defaults for the rest.

    Raises
    ------
    DeployError
        When it declares a parameter without a default that the deploy cannot fill.
    """
    known = {"Stage": stage}
    known.update({name: outputs[output] for name, output in ATHENA_PARAMETERS_FROM_INFRA.items()})
    values = {}
    for name, declared in template.get("Parameters", {}).items():
        if name in known:
            values[name] = known[name]
        elif "Default" not in declared:
            raise DeployError(
                f"infra/athena.yaml wants parameter {name}, which the deploy cannot fill"
            )
    return values


def wiring_target(
    settings: StageSettings, outputs: Mapping[str, str], record: dict[str, Any]
) -> WiringTarget | None:
    """What the wiring acts on, from the infra outputs and Chalice's deployed record."""
    api = deployed_resource(record, "rest_api")
    if api is None:
        return None
    return WiringTarget(
        stage=settings.stage,
        rest_api_id=str(api["rest_api_id"]),
        access_log_group_name=outputs["AccessLogGroupName"],
        access_log_group_arn=outputs["AccessLogGroupArn"],
        audit_queue_arn=outputs["AuditQueueArn"],
        writer_function=function_name(settings.stage, WRITER),
        ingest_function=function_name(settings.stage, ACCESS_LOG_INGEST),
        access_log_format=access_log_format(settings.project_dir),
        gateway_responses=gateway_responses(settings.project_dir),
        api_gateway_role_arn=outputs.get("ApiGatewayCloudWatchRoleArn"),
        writer=settings.writer,
    )


def check_overrides(stage: str, config: dict[str, Any], overrides: Mapping[str, str]) -> None:
    """A prod stage may not go out with the committed config's example issuers.

    Raises
    ------
    DeployError
        When prod's issuers are still ``example.com`` ones.
    """
    variables = {**config["stages"][stage].get("environment_variables", {}), **overrides}
    examples = [name for name, value in variables.items() if _EXAMPLE_MARK in str(value)]
    if examples and stage == "prod":
        raise DeployError(
            f"{', '.join(sorted(examples))} still hold example values: set them in "
            ".chalice/config.json or pass --set NAME=VALUE"
        )


def deploy(
    settings: StageSettings,
    client: Callable[[str], Any],
    *,
    build_dir: Path,
    overrides: Mapping[str, str] | None = None,
    chalice: Callable[..., str] = run_chalice,
    say: Say = print,
) -> DeployReport:
    """Deploy one stage end to end; what was done.

    Raises
    ------
    DeployError
        When any step fails (stack, Chalice, wiring); the steps before it stay done.
    """
    import json

    overrides = dict(overrides or {})
    stage = settings.stage
    config = json.loads((settings.project_dir / ".chalice" / "config.json").read_text())
    check_overrides(stage, config, overrides)
    if not settings.operator_role_arn:
        say(
            "note: no --operator-role-arn: only the functions may use the audit queues, so "
            "`gatehouse policy apply|rollback` and `gatehouse audit dlq` cannot run on this stage"
        )
    report = DeployReport()
    cfn = client("cloudformation")
    existing = stack_parameters(cfn, infra_stack_name(stage))
    parameters = infra_parameters(settings, existing)
    _say_digest_key_policy(say, parameters, existing)
    say(f"infra stack {infra_stack_name(stage)} ...")
    infra = deploy_stack(
        cfn,
        infra_stack_name(stage),
        settings.infra_template,
        parameters,
        termination_protection=stage == "prod",
    )
    report.stacks.append(infra)
    say(f"  {infra.action}")
    if settings.athena_template.exists():
        say(f"athena stack {athena_stack_name(stage)} ...")
        athena = deploy_stack(
            cfn,
            athena_stack_name(stage),
            settings.athena_template,
            athena_parameters(load_template(settings.athena_template), stage, infra.outputs),
            termination_protection=stage == "prod",
        )
        report.stacks.append(athena)
        say(f"  {athena.action}")
    else:
        say("no infra/athena.yaml: the Glue tables and Athena workgroup are not deployed")
    say(f"chalice deploy --stage {stage} ...")
    prepare_build(settings.project_dir, build_dir, stage, infra.outputs, overrides)
    say(chalice(build_dir, "deploy", "--stage", stage).rstrip())
    record = keep_deployed_record(build_dir, settings.project_dir, stage)
    target = wiring_target(settings, infra.outputs, record or {})
    if target is None:
        raise NotDeployed("chalice deploy left no rest_api in .chalice/deployed; nothing to wire")
    api = deployed_resource(record or {}, "rest_api") or {}
    report.api_url = api.get("rest_api_url")
    say("wiring what Chalice cannot declare ...")
    report.wiring = wire(client, target)
    for change in report.wiring:
        say(f"  {change}")
    return report
