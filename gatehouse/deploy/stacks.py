"""CloudFormation stacks through boto3: create or update, wait, read the outputs, delete."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatehouse.deploy.errors import StackFailed

# CloudFormation's limit for a template passed inline (TemplateBody).
MAX_INLINE_TEMPLATE_BYTES = 51_200
_CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
_NO_CHANGES = "No updates are to be performed"


@dataclass(frozen=True, slots=True)
class StackResult:
    """What a deploy did to a stack, and its outputs afterwards."""

    name: str
    action: str  # created | updated | unchanged
    outputs: dict[str, str]


def stack_status(cfn: Any, name: str) -> str | None:
    """The stack's status, or None when there is no such stack."""
    from botocore.exceptions import ClientError

    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return str(stacks[0]["StackStatus"]) if stacks else None


def stack_parameters(cfn: Any, name: str) -> dict[str, str] | None:
    """The parameters the stack was last deployed with, or None when there is no such stack."""
    from botocore.exceptions import ClientError

    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    if not stacks:
        return None
    return {
        parameter["ParameterKey"]: parameter.get("ParameterValue", "")
        for parameter in stacks[0].get("Parameters", [])
    }


def stack_outputs(cfn: Any, name: str) -> dict[str, str]:
    """The stack's outputs by key."""
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def _protected(cfn: Any, name: str) -> bool:
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return bool(stack.get("EnableTerminationProtection"))


def inline_body(template_path: Path) -> str:
    """The template as sent: as written, or as compact JSON when that is over the inline limit."""
    body = template_path.read_text(encoding="utf-8")
    if len(body.encode()) <= MAX_INLINE_TEMPLATE_BYTES:
        return body
    import json

    from gatehouse.deploy.templates import load_template

    return json.dumps(load_template(template_path), separators=(",", ":"))


def deploy_stack(
    cfn: Any,
    name: str,
    template_path: Path,
    parameters: dict[str, str],
    *,
    termination_protection: bool = False,
    waiter_delay: int = 10,
) -> StackResult:
    """Create ``name`` from the template, or update it; wait until it is done.

    Raises
    ------
    StackFailed
        When the stack ends in a failed or rolled-back state, or must be
        deleted before it can be created again.
    """
    from botocore.exceptions import ClientError, WaiterError

    body = inline_body(template_path)
    if len(body.encode()) > MAX_INLINE_TEMPLATE_BYTES:
        raise StackFailed(
            f"{template_path} is over CloudFormation's {MAX_INLINE_TEMPLATE_BYTES:,}-byte inline "
            "limit; upload it to S3 and deploy it with a TemplateURL"
        )
    arguments = {
        "StackName": name,
        "TemplateBody": body,
        "Parameters": [
            {"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()
        ],
        "Capabilities": _CAPABILITIES,
        "Tags": [{"Key": "gatehouse:stack", "Value": name}],
    }
    status = stack_status(cfn, name)
    if status == "ROLLBACK_COMPLETE":
        raise StackFailed(
            f"stack {name} failed to create and must be deleted first "
            f"(aws cloudformation delete-stack --stack-name {name}); see its events for why"
        )
    waiter_config = {"Delay": waiter_delay, "MaxAttempts": 360}
    try:
        if status is None:
            cfn.create_stack(
                **arguments,
                EnableTerminationProtection=termination_protection,
                OnFailure="ROLLBACK",
            )
            cfn.get_waiter("stack_create_complete").wait(StackName=name, WaiterConfig=waiter_config)
            action = "created"
        else:
            try:
                cfn.update_stack(**arguments)
            except ClientError as exc:
                if _NO_CHANGES not in str(exc):
                    raise
                return StackResult(name, "unchanged", stack_outputs(cfn, name))
            cfn.get_waiter("stack_update_complete").wait(StackName=name, WaiterConfig=waiter_config)
            action = "updated"
        if termination_protection and not _protected(cfn, name):
            cfn.update_termination_protection(EnableTerminationProtection=True, StackName=name)
    except WaiterError as exc:
        raise StackFailed(
            f"stack {name} ended {stack_status(cfn, name)}; see "
            f"`aws cloudformation describe-stack-events --stack-name {name}`"
        ) from exc
    except ClientError as exc:
        raise StackFailed(f"stack {name}: {exc}") from exc
    return StackResult(name, action, stack_outputs(cfn, name))


def delete_stack(cfn: Any, name: str, *, waiter_delay: int = 10) -> bool:
    """Delete ``name`` (termination protection off first) and wait; False when there was none.

    Raises
    ------
    StackFailed
        When CloudFormation cannot delete it.
    """
    from botocore.exceptions import WaiterError

    if stack_status(cfn, name) is None:
        return False
    if _protected(cfn, name):
        cfn.update_termination_protection(EnableTerminationProtection=False, StackName=name)
    cfn.delete_stack(StackName=name)
    try:
        cfn.get_waiter("stack_delete_complete").wait(
            StackName=name, WaiterConfig={"Delay": waiter_delay, "MaxAttempts": 360}
        )
    except WaiterError as exc:
        raise StackFailed(f"stack {name} could not be deleted: {stack_status(cfn, name)}") from exc
    return True
