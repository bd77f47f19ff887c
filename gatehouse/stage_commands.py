"""``gatehouse stage env``: a deployed stage's settings for the CLI, from its stacks.

Operator commands find a deployed stage through ``GATEHOUSE_*`` variables
(:mod:`gatehouse.target`). This command reads them where the deploy left
them, the outputs of the stage's CloudFormation stacks
(``gatehouse-<stage>-infra`` and, when deployed, ``gatehouse-<stage>-athena``),
and prints them for a shell::

    eval "$(gatehouse stage env --stage prod)"

The variables printed are those of ``chalicelib/variables.py`` the CLI reads
(``Reader.CLI`` or ``Reader.BOTH``) that a stack output holds, plus
``AWS_REGION`` (the stacks' region, which the CLI's clients use) and
``GATEHOUSE_GATEWAY_URL`` when this project's ``.chalice/deployed/<stage>.json``
records the API. Exit status 2 when the stage has no stack there, 3 when
AWS cannot be asked (credentials, network, a refusal).
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from gatehouse.errors import InputError, Unavailable

PROJECT_DIR = Path(__file__).resolve().parents[1]
# Variable (without GATEHOUSE_) -> the infra stack's output that holds its value.
INFRA_OUTPUTS: Mapping[str, str] = {
    "STATE_TABLE": "StateTable",
    "AUDIT_BUCKET": "AuditBucket",
    "AUDIT_QUEUE_URL": "AuditQueueUrl",
    "AUDIT_DLQ_URL": "AuditDeadLetterQueueUrl",
    "DIGEST_KEY_ID": "DigestKeyAlias",
    "LEDGER_ANCHOR": "LedgerAnchor",
    "TRAIL_BUCKET": "TrailBucket",
}
ATHENA_OUTPUTS: Mapping[str, str] = {
    "ATHENA_WORKGROUP": "WorkGroupName",
    "ATHENA_DATABASE": "DatabaseName",
}
# Without these the CLI cannot act on the stage at all (resolve_target).
REQUIRED = ("AUDIT_BUCKET", "AUDIT_QUEUE_URL", "STATE_TABLE")


@click.group("stage", short_help="a deployed stage: the CLI's settings for it")
def stage() -> None:
    """A deployed stage, as the CLI sees it."""


@stage.command("env", short_help="print the GATEHOUSE_* settings of a deployed stage")
@click.option("--stage", "stage_name", required=True, help="the stage (dev, prod)")
@click.option("--region", help="the stage's region (default: AWS_REGION, AWS_DEFAULT_REGION)")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["env", "json"]),
    default="env",
    show_default=True,
    help="export lines for a shell's eval, or one JSON object",
)
def env(stage_name: str, region: str | None, output: str) -> int:
    """Print the settings operator commands need for a deployed stage.

    eval "$(gatehouse stage env --stage prod)" sets them in this shell.
    """
    region = region or _configured_region()
    settings = stage_settings(stage_name, region, _cloudformation(region))
    if output == "json":
        click.echo(json.dumps(settings, indent=2))
    else:
        click.echo(render_exports(settings))
    return 0


def stage_settings(
    stage_name: str,
    region: str,
    cloudformation: Any,
    deployed_record: Callable[[str], dict[str, Any] | None] | None = None,
) -> dict[str, str]:
    """The stage's CLI settings, by variable name (``GATEHOUSE_*`` and ``AWS_REGION``).

    Parameters
    ----------
    stage_name, region:
        Which stage, where.
    cloudformation:
        A boto3 CloudFormation client for ``region``.
    deployed_record:
        Chalice's record of the stage (``.chalice/deployed/<stage>.json``),
        for the gateway URL; default: this project's.

    Raises
    ------
    InputError
        When the stage has no infra stack in ``region``, or it lacks an output
        the CLI cannot work without.
    Unavailable
        When CloudFormation cannot be asked.
    """
    from chalicelib.variables import VARIABLES
    from gatehouse.deploy.settings import athena_stack_name, infra_stack_name

    infra_name = infra_stack_name(stage_name)
    infra = _describe(cloudformation, infra_name, region)
    if infra is None:
        raise InputError(
            f"no stack {infra_name} in {region}: check --stage and --region "
            f"(or deploy it: make deploy STAGE={stage_name})"
        )
    values = {"STAGE": stage_name, **_outputs_for(infra, INFRA_OUTPUTS)}
    missing = [name for name in REQUIRED if not values.get(name)]
    if missing:
        outputs = ", ".join(INFRA_OUTPUTS[name] for name in missing)
        raise InputError(
            f"stack {infra_name} ({infra.get('StackStatus', '?')}) has no output {outputs}: "
            "its deploy did not finish; run it again"
        )
    account = _account_of(str(infra.get("StackId", "")))
    if account:
        values["TRAIL_ACCOUNT_ID"] = account
    athena = _describe(cloudformation, athena_stack_name(stage_name), region)
    if athena is not None:
        values.update(_outputs_for(athena, ATHENA_OUTPUTS))
    gateway_url = _gateway_url((deployed_record or _project_record)(stage_name))
    if gateway_url:
        values["GATEWAY_URL"] = gateway_url
    settings = {"AWS_REGION": region}
    # In the table's order, so the output reads like docs/configuration.md.
    for name, variable in VARIABLES.items():
        if name in values:
            settings[variable.env] = values[name]
    return settings


def render_exports(settings: Mapping[str, str]) -> str:
    """``export NAME=value`` lines, each value quoted for a POSIX shell."""
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in settings.items())


def _configured_region() -> str:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        import boto3

        region = boto3.session.Session().region_name
    if not region:
        raise InputError("no AWS region: pass --region R, or set AWS_REGION")
    return str(region)


def _cloudformation(region: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard"}, connect_timeout=5, read_timeout=20)
    return boto3.session.Session(region_name=region).client("cloudformation", config=config)


def _describe(cloudformation: Any, name: str, region: str) -> dict[str, Any] | None:
    """The stack's description, or None when there is none by that name.

    Raises
    ------
    Unavailable
        When CloudFormation cannot be asked (credentials, network, refusal).
    """
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except NoCredentialsError as exc:
        raise Unavailable(
            "no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY), or run `aws sso login`"
        ) from exc
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationError" and "does not exist" in str(error.get("Message")):
            return None
        raise Unavailable(
            f"CloudFormation refused to describe {name} in {region}: "
            f"{error.get('Code', '?')}: {error.get('Message', exc)}"
        ) from exc
    except BotoCoreError as exc:
        raise Unavailable(f"cannot reach CloudFormation in {region}: {exc}") from exc
    return dict(stacks[0]) if stacks else None


def _outputs_for(stack: Mapping[str, Any], wanted: Mapping[str, str]) -> dict[str, str]:
    outputs = {
        str(output["OutputKey"]): str(output["OutputValue"])
        for output in stack.get("Outputs", [])
        if output.get("OutputValue")
    }
    return {name: outputs[key] for name, key in wanted.items() if key in outputs}


def _account_of(stack_id: str) -> str:
    """The account of ``arn:aws:cloudformation:<region>:<account>:stack/...`` ("" if none)."""
    parts = stack_id.split(":")
    return parts[4] if len(parts) > 5 and parts[4].isdigit() else ""


def _project_record(stage_name: str) -> dict[str, Any] | None:
    path = PROJECT_DIR / ".chalice" / "deployed" / f"{stage_name}.json"
    try:
        record: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record


def _gateway_url(record: Mapping[str, Any] | None) -> str:
    for resource in (record or {}).get("resources", []):
        if isinstance(resource, dict) and resource.get("name") == "rest_api":
            return str(resource.get("rest_api_url") or "").rstrip("/")
    return ""
