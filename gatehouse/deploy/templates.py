"""CloudFormation templates as data, and the merge template ``make package`` hands Chalice.

``chalice package --merge-template`` merges a template into the one it
generates, recursively for mappings, replacing lists (Chalice 1.34). The merge
template built here carries the infra stack (and the Athena stack when
``infra/athena.yaml`` exists) plus what ``chalice deploy`` leaves to the
deploy's wiring step, so the packaged template stands on its own:

- the roles Chalice generates get the names ``chalice deploy`` gives them
  (``gatehouse-<stage>-<function>``), which the table's resource policy, the
  queue policy and the signing keys' policies name;
- the functions get the names ``chalice deploy`` gives them too (``chalice
  package`` leaves them to CloudFormation), which the log groups, the roles'
  log permissions and the alarms name;
- the functions' ``REPLACE_WITH_STACK_OUTPUT_*`` variables become references
  to the infra resources (the infra template's own output expressions), and
  ``--set`` values replace theirs;
- each function waits for its log group (its role may not create one);
- the writer's SQS event source mapping (batch size, batching window,
  ``ReportBatchItemFailures``), which ``@app.on_sqs_message`` cannot declare;
- the stage's access log settings, the gateway responses, and the access
  log's subscription filter to ``access_log_ingest`` with its permission;
- the stage's method settings: the unauthenticated health route's own
  throttling (``HEALTH_RATE_LIMIT``/``HEALTH_BURST_LIMIT``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gatehouse.deploy.errors import DeployError
from gatehouse.deploy.settings import (
    ACCESS_LOG_INGEST,
    FUNCTIONS,
    HEALTH_BURST_LIMIT,
    HEALTH_METHODS,
    HEALTH_PATH,
    HEALTH_RATE_LIMIT,
    PLACEHOLDER_PREFIX,
    StageSettings,
    function_name,
    method_setting_path,
)

# The logical ids ``chalice package`` gives each function and its role.
FUNCTION_LOGICAL_IDS = {
    "api_handler": "APIHandler",
    "gatehouse_authorizer": "GatehouseAuthorizer",
    "audit_writer": "AuditWriter",
    "access_log_ingest": "AccessLogIngest",
    "grant_sweeper": "GrantSweeper",
    "ledger_digest": "LedgerDigest",
    "detection_checks": "DetectionChecks",
    "ocsf_export": "OcsfExport",
}
ROLE_LOGICAL_IDS = {
    "api_handler": "ApiHandlerRole",
    "gatehouse_authorizer": "GatehouseAuthorizerRole",
    "audit_writer": "AuditWriterRole",
    "access_log_ingest": "AccessLogIngestRole",
    "grant_sweeper": "GrantSweeperRole",
    "ledger_digest": "LedgerDigestRole",
    "detection_checks": "DetectionChecksRole",
    "ocsf_export": "OcsfExportRole",
}
# The infra template's log group of each function.
LOG_GROUP_LOGICAL_IDS = {
    "api_handler": "ApiHandlerLogGroup",
    "gatehouse_authorizer": "AuthorizerLogGroup",
    "audit_writer": "AuditWriterLogGroup",
    "access_log_ingest": "AccessLogIngestLogGroup",
    "grant_sweeper": "GrantSweeperLogGroup",
    "ledger_digest": "LedgerDigestLogGroup",
    "detection_checks": "DetectionChecksLogGroup",
    "ocsf_export": "OcsfExportLogGroup",
}
# Athena stack parameters the infra stack fills, and from which of its outputs.
ATHENA_PARAMETERS_FROM_INFRA = {"AuditBucketName": "AuditBucket", "TrailBucketName": "TrailBucket"}

# The infra template's condition that tells prod from dev.
STAGE_CONDITION = "IsProd"

_SHORT_TAGS = (
    "And", "Base64", "Cidr", "Condition", "Equals", "FindInMap", "GetAZs", "GetAtt", "If",
    "ImportValue", "Join", "Not", "Or", "Ref", "Select", "Split", "Sub", "Transform",
)  # fmt: skip


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags as their long-form mappings."""


def _construct(tag: str) -> Any:
    name = tag if tag in ("Ref", "Condition") else f"Fn::{tag}"

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {name: value}

    return construct


for _tag in _SHORT_TAGS:
    _CfnLoader.add_constructor(f"!{_tag}", _construct(_tag))


def cfn_yaml_loader() -> type[yaml.SafeLoader]:
    """A safe YAML loader that reads CloudFormation's short-form tags."""
    return _CfnLoader


def load_template(path: Path) -> dict[str, Any]:
    """A CloudFormation template (YAML or JSON) with every intrinsic in long form."""
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(document, dict) or "Resources" not in document:
        raise DeployError(f"{path} is not a CloudFormation template")
    return document


def access_log_format(project_dir: Path) -> str:
    """The stage's access log format (``infra/access_log_format.json``), on one line."""
    document = json.loads((project_dir / "infra" / "access_log_format.json").read_text())
    return json.dumps(document, separators=(",", ":"))


def gateway_responses(project_dir: Path) -> dict[str, Any]:
    """The customised gateway responses (``infra/gateway_responses.json``)."""
    responses: dict[str, Any] = json.loads(
        (project_dir / "infra" / "gateway_responses.json").read_text()
    )
    return responses


def _rewrite_refs(value: Any, renames: dict[str, Any]) -> Any:
    """``value`` with each ``{"Ref": name}`` of ``renames`` replaced (also inside ``Fn::Sub``)."""
    if isinstance(value, list):
        return [_rewrite_refs(item, renames) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"} and value["Ref"] in renames:
        return copy.deepcopy(renames[value["Ref"]])
    if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        used = [name for name in renames if "${" + name + "}" in value["Fn::Sub"]]
        if used:
            return {"Fn::Sub": [value["Fn::Sub"], {name: renames[name] for name in used}]}
    return {key: _rewrite_refs(item, renames) for key, item in value.items()}


def _resolve_stage(value: Any, is_prod: bool) -> Any:
    """``value`` with each ``Fn::If`` on ``IsProd`` replaced by the branch the stage takes."""
    if isinstance(value, list):
        return [_resolve_stage(item, is_prod) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Fn::If"} and value["Fn::If"][0] == STAGE_CONDITION:
        _, when_prod, otherwise = value["Fn::If"]
        return _resolve_stage(when_prod if is_prod else otherwise, is_prod)
    return {key: _resolve_stage(item, is_prod) for key, item in value.items()}


def _merge_stack(merged: dict[str, Any], template: dict[str, Any], source: str) -> None:
    for section in ("Parameters", "Rules", "Conditions", "Resources", "Outputs"):
        for name, value in template.get(section, {}).items():
            existing = merged.setdefault(section, {})
            if name in existing and existing[name] != value:
                raise DeployError(f"{source} and the infra template both define {section}.{name}")
            existing[name] = value


def merge_template(
    settings: StageSettings, overrides: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The template ``chalice package --merge-template`` merges into its own, for one stage.

    ``overrides`` are function environment values (``--set NAME=VALUE``) that
    replace the committed config's.
    """
    project = settings.project_dir
    stage = settings.stage
    # A packaged template is one stage's: Stage cannot be changed at deploy time,
    # and what differs between stages is decided now (prod's template can only
    # lock the audit bucket in COMPLIANCE mode).
    infra = _resolve_stage(load_template(settings.infra_template), stage == "prod")
    infra.get("Conditions", {}).pop(STAGE_CONDITION, None)
    parameters = infra["Parameters"]
    parameters["Stage"] = {**parameters["Stage"], "AllowedValues": [stage], "Default": stage}
    parameters["AuditRetentionDays"] = {
        **parameters["AuditRetentionDays"],
        "Default": settings.audit_retention_days,
    }
    for name, value in (
        ("AlertEmail", settings.alert_email),
        ("KeyAdminRoleArn", settings.key_admin_role_arn),
        ("OperatorRoleArn", settings.operator_role_arn),
        ("DigestKeyPolicy", settings.digest_key_policy or ""),
    ):
        if value:
            parameters[name] = {**parameters[name], "Default": value}
    merged: dict[str, Any] = {
        "Parameters": parameters,
        "Rules": infra.get("Rules", {}),
        "Conditions": infra.get("Conditions", {}),
        "Resources": infra["Resources"],
        "Outputs": infra.get("Outputs", {}),
    }
    outputs = {name: output["Value"] for name, output in infra.get("Outputs", {}).items()}
    if settings.athena_template.exists():
        athena = load_template(settings.athena_template)
        renames = {
            parameter: outputs[output] for parameter, output in ATHENA_PARAMETERS_FROM_INFRA.items()
        }
        athena = _rewrite_refs(athena, renames)
        # Its buckets are the infra's resources; its Stage is the infra's Stage.
        for parameter in [*renames, "Stage"]:
            athena.get("Parameters", {}).pop(parameter, None)
        _merge_stack(merged, athena, "infra/athena.yaml")
    resources = merged["Resources"]
    variables = {**_filled_variables(project, stage, outputs), **dict(overrides or {})}
    for function in FUNCTIONS:
        resources[ROLE_LOGICAL_IDS[function]] = {
            "Properties": {"RoleName": function_name(stage, function)}
        }
        resources[FUNCTION_LOGICAL_IDS[function]] = {
            "DependsOn": [LOG_GROUP_LOGICAL_IDS[function]],
            "Properties": {
                "FunctionName": function_name(stage, function),
                "Environment": {"Variables": copy.deepcopy(variables)},
            },
        }
    resources.update(_wiring_resources(settings))
    resources["RestAPI"] = {
        "Properties": {
            "AccessLogSetting": {
                # API Gateway wants the log group's ARN without GetAtt's ":*" suffix.
                "DestinationArn": {
                    "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}"
                    ":log-group:${AccessLogGroup}"
                },
                "Format": access_log_format(project),
            },
            "DefinitionBody": {"x-amazon-apigateway-gateway-responses": gateway_responses(project)},
            "MethodSettings": health_method_settings(),
        }
    }
    return merged


def health_method_settings() -> list[dict[str, Any]]:
    """The stage's ``MethodSettings``: the health route's throttling, per method."""
    return [
        {
            "ResourcePath": method_setting_path(HEALTH_PATH),
            "HttpMethod": method,
            "ThrottlingRateLimit": HEALTH_RATE_LIMIT,
            "ThrottlingBurstLimit": HEALTH_BURST_LIMIT,
        }
        for method in HEALTH_METHODS
    ]


def _filled_variables(project: Path, stage: str, outputs: dict[str, Any]) -> dict[str, Any]:
    """The stage's placeholder variables, as references to the resources they name."""
    config = json.loads((project / ".chalice" / "config.json").read_text())
    variables = config["stages"][stage].get("environment_variables", {})
    filled: dict[str, Any] = {}
    for name, value in variables.items():
        if isinstance(value, str) and value.startswith(PLACEHOLDER_PREFIX):
            output = value.removeprefix(PLACEHOLDER_PREFIX)
            if output not in outputs:
                raise DeployError(
                    f"{name} names {output}, which the infra template does not output"
                )
            filled[name] = copy.deepcopy(outputs[output])
    return filled


def _wiring_resources(settings: StageSettings) -> dict[str, Any]:
    writer = settings.writer
    ingest = FUNCTION_LOGICAL_IDS[ACCESS_LOG_INGEST]
    return {
        "AuditWriterEventSource": {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {
                "EventSourceArn": {"Fn::GetAtt": ["AuditQueue", "Arn"]},
                "FunctionName": {"Ref": FUNCTION_LOGICAL_IDS["audit_writer"]},
                "BatchSize": writer.events_per_object,
                "MaximumBatchingWindowInSeconds": writer.batching_window_seconds,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "ScalingConfig": {"MaximumConcurrency": writer.max_concurrency},
            },
        },
        "AccessLogIngestPermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": {"Ref": ingest},
                "Action": "lambda:InvokeFunction",
                "Principal": "logs.amazonaws.com",
                "SourceArn": {"Fn::GetAtt": ["AccessLogGroup", "Arn"]},
                "SourceAccount": {"Ref": "AWS::AccountId"},
            },
        },
        "AccessLogSubscription": {
            "Type": "AWS::Logs::SubscriptionFilter",
            "DependsOn": ["AccessLogIngestPermission"],
            "Properties": {
                "LogGroupName": {"Ref": "AccessLogGroup"},
                "FilterPattern": "",
                "DestinationArn": {"Fn::GetAtt": [ingest, "Arn"]},
            },
        },
    }


def write_merge_template(
    settings: StageSettings, path: Path, overrides: Mapping[str, str] | None = None
) -> Path:
    """Write the stage's merge template (JSON) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merge_template(settings, overrides), indent=1) + "\n")
    return path
