"""The deploy's pure parts: the merge template, the generated config, the Athena parameters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatehouse.deploy.chalice_cli import filled_config
from gatehouse.deploy.deploy import athena_parameters, check_overrides, infra_parameters
from gatehouse.deploy.errors import DeployError, UnfilledPlaceholder
from gatehouse.deploy.settings import FUNCTIONS, StageSettings
from gatehouse.deploy.templates import (
    FUNCTION_LOGICAL_IDS,
    LOG_GROUP_LOGICAL_IDS,
    ROLE_LOGICAL_IDS,
    merge_template,
)

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = {
    "AuditBucket": "gatehouse-dev-audit-1-r",
    "AuditQueueUrl": "https://sqs/q",
    "LedgerAnchor": "s3://gatehouse-dev-anchor-1-r/ledger",
    "TrailBucket": "gatehouse-dev-trail-1-r",
}


def _config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return config


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The project's infra and config, without any infra/athena.yaml (tests add their own)."""
    (tmp_path / "infra").mkdir()
    for name in ("gatehouse.yaml", "access_log_format.json", "gateway_responses.json"):
        shutil.copy2(ROOT / "infra" / name, tmp_path / "infra" / name)
    shutil.copytree(
        ROOT / ".chalice", tmp_path / ".chalice", ignore=shutil.ignore_patterns("deploy*")
    )
    return tmp_path


def test_dev_packages_governance_and_its_own_names(project: Path) -> None:
    merged = merge_template(StageSettings("dev", project))

    assert merged["Parameters"]["Stage"]["AllowedValues"] == ["dev"]
    assert merged["Parameters"]["AuditRetentionDays"]["Default"] == 1
    rule = merged["Resources"]["AuditBucket"]["Properties"]["ObjectLockConfiguration"]["Rule"]
    assert rule["DefaultRetention"]["Mode"] == "GOVERNANCE"
    assert {
        merged["Resources"][ROLE_LOGICAL_IDS[f]]["Properties"]["RoleName"] for f in FUNCTIONS
    } == {f"gatehouse-dev-{function}" for function in FUNCTIONS}


def test_the_anchor_variable_becomes_the_infra_output_expression(project: Path) -> None:
    merged = merge_template(StageSettings("prod", project))

    variables = merged["Resources"]["LedgerDigest"]["Properties"]["Environment"]["Variables"]
    assert variables["GATEHOUSE_LEDGER_ANCHOR"] == {"Fn::Sub": "s3://${AnchorBucket}/ledger"}
    assert set(variables) == {
        "GATEHOUSE_AUDIT_BUCKET",
        "GATEHOUSE_AUDIT_QUEUE_URL",
        "GATEHOUSE_LEDGER_ANCHOR",
    }


def test_the_athena_stack_is_merged_with_its_buckets_from_the_infra(project: Path) -> None:
    athena = {
        "Parameters": {
            "Stage": {"Type": "String", "AllowedValues": ["dev", "prod"], "Default": "dev"},
            "AuditBucketName": {"Type": "String"},
            "TrailBucketName": {"Type": "String"},
        },
        "Resources": {
            "Database": {
                "Type": "AWS::Glue::Database",
                "Properties": {"Name": {"Ref": "AuditBucketName"}},
            },
            "Table": {
                "Type": "AWS::Glue::Table",
                "Properties": {"Location": {"Fn::Sub": "s3://${TrailBucketName}/AWSLogs/"}},
            },
        },
    }
    (project / "infra" / "athena.yaml").write_text(yaml.safe_dump(athena))

    merged = merge_template(StageSettings("prod", project))

    assert "AuditBucketName" not in merged["Parameters"]
    assert merged["Resources"]["Database"]["Properties"]["Name"] == {"Ref": "AuditBucket"}
    assert merged["Resources"]["Table"]["Properties"]["Location"] == {
        "Fn::Sub": ["s3://${TrailBucketName}/AWSLogs/", {"TrailBucketName": {"Ref": "TrailBucket"}}]
    }
    assert merged["Parameters"]["Stage"]["AllowedValues"] == ["prod"]


def test_an_athena_resource_that_collides_with_the_infra_is_refused(project: Path) -> None:
    clash = {"Resources": {"AuditQueue": {"Type": "AWS::SQS::Queue"}}}
    (project / "infra" / "athena.yaml").write_text(yaml.safe_dump(clash))

    with pytest.raises(DeployError, match=r"Resources\.AuditQueue"):
        merge_template(StageSettings("dev", project))


def test_the_generated_config_holds_one_stage_with_its_outputs_filled() -> None:
    generated = filled_config(
        _config(), "dev", OUTPUTS, {"GATEHOUSE_GATEWAY_ISSUER": "https://gh.corp"}
    )

    assert list(generated["stages"]) == ["dev"]
    variables = generated["stages"]["dev"]["environment_variables"]
    assert variables["GATEHOUSE_AUDIT_BUCKET"] == OUTPUTS["AuditBucket"]
    assert variables["GATEHOUSE_LEDGER_ANCHOR"] == OUTPUTS["LedgerAnchor"]
    assert variables["GATEHOUSE_GATEWAY_ISSUER"] == "https://gh.corp"
    assert "REPLACE_WITH" not in json.dumps(generated)
    # The committed config is untouched.
    assert "REPLACE_WITH" in json.dumps(_config())


def test_a_missing_output_is_refused() -> None:
    with pytest.raises(UnfilledPlaceholder, match="LedgerAnchor"):
        filled_config(
            _config(), "prod", {k: v for k, v in OUTPUTS.items() if k != "LedgerAnchor"}, {}
        )


def test_prod_does_not_go_out_with_example_issuers() -> None:
    with pytest.raises(DeployError, match="GATEHOUSE_GATEWAY_ISSUER"):
        check_overrides("prod", _config(), {"GATEHOUSE_TRUSTED_ISSUERS": "[]"})
    check_overrides(
        "prod",
        _config(),
        {"GATEHOUSE_GATEWAY_ISSUER": "https://gh.corp", "GATEHOUSE_TRUSTED_ISSUERS": "[]"},
    )
    check_overrides("dev", _config(), {})


def test_athena_parameters_are_filled_from_the_infra_or_left_to_their_defaults() -> None:
    template = {
        "Parameters": {
            "Stage": {"Type": "String"},
            "AuditBucketName": {"Type": "String"},
            "TrailBucketName": {"Type": "String"},
            "TrailAccountId": {"Type": "String", "Default": ""},
        }
    }
    assert athena_parameters(template, "prod", OUTPUTS) == {
        "Stage": "prod",
        "AuditBucketName": OUTPUTS["AuditBucket"],
        "TrailBucketName": OUTPUTS["TrailBucket"],
    }
    template["Parameters"]["Unknown"] = {"Type": "String"}
    with pytest.raises(DeployError, match="Unknown"):
        athena_parameters(template, "prod", OUTPUTS)


def test_prod_keeps_its_audit_trail_seven_years_unless_told_otherwise(project: Path) -> None:
    assert infra_parameters(StageSettings("prod", project))["AuditRetentionDays"] == "2555"
    assert (
        infra_parameters(StageSettings("prod", project, retention_days=3650))["AuditRetentionDays"]
        == "3650"
    )
    assert infra_parameters(StageSettings("dev", project))["ManageApiGatewayAccount"] == "false"


def test_a_template_over_the_inline_limit_is_sent_as_compact_json(tmp_path: Path) -> None:
    from gatehouse.deploy.stacks import MAX_INLINE_TEMPLATE_BYTES, inline_body

    resources = {
        f"Queue{i}": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Ref": "Stage"}}}
        for i in range(500)
    }
    path = tmp_path / "big.yaml"
    path.write_text(json.dumps({"Resources": resources}, indent=12))  # JSON is YAML too
    assert len(path.read_bytes()) > MAX_INLINE_TEMPLATE_BYTES

    body = inline_body(path)

    assert len(body.encode()) <= MAX_INLINE_TEMPLATE_BYTES
    assert json.loads(body)["Resources"]["Queue499"]["Properties"]["QueueName"] == {"Ref": "Stage"}


def test_every_function_gets_the_name_its_log_group_role_and_alarms_expect(
    project: Path,
) -> None:
    merged = merge_template(StageSettings("prod", project))
    resources = merged["Resources"]

    for function in FUNCTIONS:
        name = resources[FUNCTION_LOGICAL_IDS[function]]["Properties"]["FunctionName"]
        assert name == f"gatehouse-prod-{function}"
        log_group = resources[LOG_GROUP_LOGICAL_IDS[function]]["Properties"]["LogGroupName"]
        assert log_group == {"Fn::Sub": f"/aws/lambda/gatehouse-${{Stage}}-{function}"}
    writer_errors = resources["AuditWriterErrorsAlarm"]["Properties"]["Dimensions"]
    assert writer_errors == [
        {"Name": "FunctionName", "Value": {"Fn::Sub": "gatehouse-${Stage}-audit_writer"}}
    ]


def test_the_packaged_template_keeps_the_prod_retention_rule(project: Path) -> None:
    merged = merge_template(StageSettings("prod", project))

    assert "ProdKeepsTheAuditTrailAtLeastAYear" in merged["Rules"]


def test_set_values_reach_every_function_of_the_packaged_template(project: Path) -> None:
    issuer = {"GATEHOUSE_GATEWAY_ISSUER": "https://gh.corp"}
    merged = merge_template(StageSettings("prod", project), issuer)

    for function in FUNCTIONS:
        variables = merged["Resources"][FUNCTION_LOGICAL_IDS[function]]["Properties"][
            "Environment"
        ]["Variables"]
        assert variables["GATEHOUSE_GATEWAY_ISSUER"] == "https://gh.corp"
        assert variables["GATEHOUSE_AUDIT_BUCKET"] == {"Ref": "AuditBucket"}


def test_package_refuses_prod_with_example_issuers_before_running_chalice(
    project: Path, tmp_path: Path
) -> None:
    from gatehouse.deploy.package import package

    ran: list[tuple[Any, ...]] = []

    def chalice(*arguments: Any, **options: Any) -> str:
        ran.append(arguments)
        return ""

    with pytest.raises(DeployError, match="GATEHOUSE_GATEWAY_ISSUER"):
        package(StageSettings("prod", project), tmp_path / "out", chalice=chalice)
    assert ran == []
    assert not (tmp_path / "out-merge.json").exists()

    real = {
        "GATEHOUSE_GATEWAY_ISSUER": "https://gh.corp",
        "GATEHOUSE_TRUSTED_ISSUERS": '[{"issuer": "https://idp.corp", "audiences": ["gh"]}]',
    }
    package(StageSettings("prod", project), tmp_path / "out", overrides=real, chalice=chalice)
    [arguments] = ran
    assert arguments[1:4] == ("package", "--stage", "prod")
    merge = json.loads((tmp_path / "out-merge.json").read_text())
    variables = merge["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert variables["GATEHOUSE_TRUSTED_ISSUERS"] == real["GATEHOUSE_TRUSTED_ISSUERS"]
    # dev may keep the examples.
    package(StageSettings("dev", project), tmp_path / "dev", chalice=chalice)


def test_the_break_glass_and_operator_roles_reach_the_infra_stack(project: Path) -> None:
    settings = StageSettings(
        "prod",
        project,
        key_admin_role_arn="arn:aws:iam::123456789012:role/break-glass",
        operator_role_arn="arn:aws:iam::123456789012:role/operator",
    )
    parameters = infra_parameters(settings)
    assert parameters["KeyAdminRoleArn"] == "arn:aws:iam::123456789012:role/break-glass"
    assert parameters["OperatorRoleArn"] == "arn:aws:iam::123456789012:role/operator"
    merged = merge_template(settings)
    assert merged["Parameters"]["OperatorRoleArn"]["Default"] == parameters["OperatorRoleArn"]
    assert infra_parameters(StageSettings("dev", project))["KeyAdminRoleArn"] == ""


# --- the digest key's policy --------------------------------------------------------------

BREAK_GLASS = "arn:aws:iam::123456789012:role/break-glass"


@pytest.mark.parametrize(
    ("existing", "chosen"),
    [
        # A new stack: the key is created with the narrow policy in one call.
        (None, "narrow"),
        # A stack from before the assertion key, without a key admin role: nobody may put
        # the key's policy, so it stays as it is.
        ({"Stage": "prod", "KeyAdminRoleArn": ""}, "legacy"),
        ({"Stage": "prod"}, "legacy"),
        # ... with one too: narrowing it is the key admin's own, later deploy (the proxy
        # keeps signing until Chalice has moved it to the assertion key).
        ({"Stage": "prod", "KeyAdminRoleArn": BREAK_GLASS}, "legacy"),
        # A stack that has the parameter keeps its value.
        ({"KeyAdminRoleArn": "", "DigestKeyPolicy": "narrow"}, "narrow"),
        ({"KeyAdminRoleArn": BREAK_GLASS, "DigestKeyPolicy": "legacy"}, "legacy"),
    ],
)
def test_the_deploy_keeps_a_digest_key_policy_nobody_may_change(
    project: Path, existing: dict[str, str] | None, chosen: str
) -> None:
    parameters = infra_parameters(StageSettings("prod", project), existing)

    assert parameters["DigestKeyPolicy"] == chosen
    # Whatever the key policy says, the digest key is only ledger_digest's in IAM.
    for stage in ("dev", "prod"):
        policy = (project / ".chalice" / f"policy-{stage}-api_handler.json").read_text()
        assert f"alias/gatehouse-{stage}-digest" not in policy


def test_an_explicit_digest_key_policy_wins_and_reaches_the_packaged_template(
    project: Path,
) -> None:
    pre_split = {"Stage": "prod", "KeyAdminRoleArn": ""}
    for value in ("narrow", "legacy"):
        settings = StageSettings("prod", project, digest_key_policy=value)
        assert infra_parameters(settings, pre_split)["DigestKeyPolicy"] == value
        assert infra_parameters(settings)["DigestKeyPolicy"] == value
        assert merge_template(settings)["Parameters"]["DigestKeyPolicy"]["Default"] == value
    default = merge_template(StageSettings("prod", project))["Parameters"]["DigestKeyPolicy"]
    assert default["Default"] == "narrow"
    with pytest.raises(DeployError, match="digest key policy"):
        StageSettings("prod", project, digest_key_policy="wide")


def test_the_deploy_says_when_the_digest_key_policy_is_legacy_or_narrows(project: Path) -> None:
    from gatehouse.deploy.deploy import _say_digest_key_policy

    def said(existing: dict[str, str] | None, **options: Any) -> str:
        lines: list[str] = []
        parameters = infra_parameters(StageSettings("prod", project, **options), existing)
        _say_digest_key_policy(lines.append, parameters, existing)
        return "\n".join(lines)

    assert said(None) == ""
    assert said({"KeyAdminRoleArn": "", "DigestKeyPolicy": "narrow"}) == ""
    assert "DigestKeyPolicy=legacy" in said({"KeyAdminRoleArn": ""})
    assert "--digest-key-policy narrow" not in said({"KeyAdminRoleArn": ""})
    legacy = said({"KeyAdminRoleArn": BREAK_GLASS})
    assert f"deploy again as {BREAK_GLASS} with --digest-key-policy narrow" in legacy
    narrowing = said({"KeyAdminRoleArn": BREAK_GLASS}, digest_key_policy="narrow")
    assert "narrows" in narrowing
    assert BREAK_GLASS in narrowing
    doomed = said({"KeyAdminRoleArn": ""}, digest_key_policy="narrow")
    assert "will fail" in doomed
    assert "--digest-key-policy legacy" in doomed


def test_the_infra_outputs_name_both_keys_and_the_config_names_their_aliases(
    project: Path,
) -> None:
    from gatehouse.resources import ResourceNames

    merged = merge_template(StageSettings("dev", project))
    outputs = merged["Outputs"]
    assert outputs["AssertionKeyAlias"]["Value"] == {"Ref": "AssertionKeyAlias"}
    assert outputs["AssertionKeyArn"]["Value"] == {"Fn::GetAtt": ["AssertionKey", "Arn"]}
    assert outputs["DigestKeyAlias"]["Value"] == {"Ref": "DigestKeyAlias"}
    assert outputs["SigningKeyArn"]["Value"] == {"Fn::GetAtt": ["SigningKey", "Arn"]}
    names = ResourceNames("dev", "1", "r")
    generated = filled_config(_config(), "dev", OUTPUTS, {})
    variables = generated["stages"]["dev"]["environment_variables"]
    assert variables["GATEHOUSE_ASSERTION_KEY_ID"] == names.assertion_key_alias
    assert variables["GATEHOUSE_DIGEST_KEY_ID"] == names.digest_key_alias
