"""``make package``'s template: ``chalice package --merge-template`` run once, offline.

The project is copied with an empty ``requirements.txt`` (the template does not
depend on the dependencies, and Chalice then has nothing to download). Chalice
runs in a network namespace of its own when ``unshare`` allows it, and always
with a dead proxy and no package index, so any attempt to reach the network
fails the packaging instead of passing unnoticed.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from gatehouse.deploy.chalice_cli import chalice_executable
from gatehouse.deploy.errors import ChaliceFailed
from gatehouse.deploy.package import package
from gatehouse.deploy.settings import FUNCTIONS, StageSettings
from gatehouse.deploy.templates import FUNCTION_LOGICAL_IDS, ROLE_LOGICAL_IDS
from tests.functional.conftest import SIGN_IN_ROUTES

ROOT = Path(__file__).resolve().parents[2]
STAGE = "prod"
OFFLINE = {
    "AWS_DEFAULT_REGION": "eu-west-1",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "",
    "PIP_NO_INDEX": "1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
STATE_SERVICES = ("dynamodb", "s3", "sqs", "kms")
# prod is never packaged with the committed config's example.com issuers.
REAL_ISSUERS = {
    "GATEHOUSE_GATEWAY_ISSUER": "https://gatehouse.corp.test",
    "GATEHOUSE_TRUSTED_ISSUERS": '[{"issuer": "https://idp.corp.test", "audiences": ["gh"]}]',
}
FORBIDDEN_ACTIONS = ("s3:PutObjectRetention", "s3:BypassGovernanceRetention", "s3:DeleteObject*")


def _unshare_works() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def _offline_chalice(
    project_dir: Path, *arguments: str, env: Mapping[str, str] | None = None
) -> str:
    prefix = ["unshare", "-rn"] if _unshare_works() else []
    completed = subprocess.run(
        [*prefix, chalice_executable(), "--project-dir", str(project_dir), *arguments],
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE, **(env or {})},
        check=False,
    )
    if completed.returncode != 0:
        raise ChaliceFailed(completed.stdout + completed.stderr)
    return completed.stdout


def test_the_packaging_sandbox_has_no_network() -> None:
    if not _unshare_works():
        pytest.skip("no user namespaces here: packaging ran with a dead proxy and no index only")
    import sys

    reach = "import socket; socket.create_connection(('198.51.100.1', 443), timeout=2)"
    result = subprocess.run(
        ["unshare", "-rn", sys.executable, "-c", reach], capture_output=True, check=False
    )
    assert result.returncode != 0
    assert b"unreachable" in result.stderr or b"Error" in result.stderr


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    project = tmp_path_factory.mktemp("project")
    shutil.copy2(ROOT / "app.py", project / "app.py")
    shutil.copytree(
        ROOT / "chalicelib", project / "chalicelib", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(ROOT / "infra", project / "infra")
    (project / ".chalice").mkdir()
    for source in (ROOT / ".chalice").glob("*.json"):
        shutil.copy2(source, project / ".chalice" / source.name)
    (project / "requirements.txt").write_text("")
    template_path = package(
        StageSettings(stage=STAGE, project_dir=project),
        project / "out",
        overrides=REAL_ISSUERS,
        chalice=_offline_chalice,
    )
    return json.loads(template_path.read_text()), template_path


@pytest.fixture(scope="module")
def template(packaged: tuple[dict[str, Any], Path]) -> dict[str, Any]:
    return packaged[0]


@pytest.fixture(scope="module")
def api(template: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    return body


def test_the_authorizer_is_a_request_authorizer_with_the_stage_ttl(api: dict[str, Any]) -> None:
    authorizer = api["securityDefinitions"]["gatehouse_authorizer"][
        "x-amazon-apigateway-authorizer"
    ]

    assert authorizer["type"] == "request"
    # GATEHOUSE_AUTHORIZER_TTL_SECONDS is 0: no cache, hence no identity source
    # (a missing source would make API Gateway answer 401 unaudited).
    assert authorizer["authorizerResultTtlInSeconds"] == 0
    assert "identitySource" not in authorizer
    assert "GatehouseAuthorizer.Arn" in json.dumps(authorizer["authorizerUri"])


PROXY_METHODS = {"get", "head", "post", "put", "patch", "delete", "options"}


def test_routes_methods_and_who_guards_them(api: dict[str, Any]) -> None:
    paths = api["paths"]

    assert set(paths) == {
        "/",
        "/{proxy+}",
        "/.well-known/gatehouse/jwks.json",
        "/.well-known/gatehouse/key-certificates.json",
        "/.gatehouse/grants",
        "/.gatehouse/grants/{grant_id}/approve",
        "/.gatehouse/grants/{grant_id}/deny",
        "/.gatehouse/grants/{grant_id}/revoke",
        "/.gatehouse/health",
        *SIGN_IN_ROUTES,
    }
    for path in ("/", "/{proxy+}"):
        assert set(paths[path]) == PROXY_METHODS, path
        for method in PROXY_METHODS:
            assert paths[path][method]["security"] == [{"gatehouse_authorizer": []}]
    assert set(paths["/.gatehouse/grants"]) == {"get", "post"}
    for action in ("approve", "deny", "revoke"):
        assert set(paths[f"/.gatehouse/grants/{{grant_id}}/{action}"]) == {"post"}
    for path, methods in SIGN_IN_ROUTES.items():
        assert set(paths[path]) == methods, path
    assert set(paths["/.gatehouse/health"]) == {"get", "head"}
    # The grant API verifies tokens itself; the JWKS and the key certificates are public;
    # sign-in is how a person gets credentials at all; health says nothing about anyone.
    for path in (
        "/.gatehouse/health",
        "/.gatehouse/grants",
        "/.well-known/gatehouse/jwks.json",
        "/.well-known/gatehouse/key-certificates.json",
        *SIGN_IN_ROUTES,
    ):
        assert all("security" not in operation for operation in paths[path].values()), path


def test_every_body_is_binary(api: dict[str, Any]) -> None:
    assert api["x-amazon-apigateway-binary-media-types"] == ["*/*"]


def test_the_writer_reads_the_queue_reporting_partial_batch_failures(
    template: dict[str, Any],
) -> None:
    mapping = template["Resources"]["AuditWriterEventSource"]

    assert mapping["Type"] == "AWS::Lambda::EventSourceMapping"
    properties = mapping["Properties"]
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["FunctionName"] == {"Ref": "AuditWriter"}
    assert properties["EventSourceArn"] == {"Fn::GetAtt": ["AuditQueue", "Arn"]}
    assert properties["BatchSize"] == 1000
    assert properties["MaximumBatchingWindowInSeconds"] == 30
    # The writer's timeout stays under the queue's visibility timeout.
    writer = template["Resources"]["AuditWriter"]["Properties"]
    queue = template["Resources"]["AuditQueue"]["Properties"]
    assert writer["Timeout"] < queue["VisibilityTimeout"]


def test_prod_locks_the_audit_trail_in_compliance_mode(template: dict[str, Any]) -> None:
    stage = template["Parameters"]["Stage"]
    assert (stage["AllowedValues"], stage["Default"]) == ([STAGE], STAGE)
    for bucket in ("AuditBucket", "AnchorBucket"):
        lock = template["Resources"][bucket]["Properties"]["ObjectLockConfiguration"]
        assert lock["ObjectLockEnabled"] == "Enabled"
        # Decided when packaging: the template cannot be deployed into GOVERNANCE mode.
        assert lock["Rule"]["DefaultRetention"] == {
            "Mode": "COMPLIANCE",
            "Days": {"Ref": "AuditRetentionDays"},
        }, bucket
    assert template["Parameters"]["AuditRetentionDays"]["Default"] == 2555
    assert "IsProd" not in json.dumps(template)


def test_the_functions_environment_comes_from_the_infra_resources(template: dict[str, Any]) -> None:
    assert "REPLACE_WITH_STACK_OUTPUT" not in json.dumps(template)
    for function in FUNCTIONS:
        variables = template["Resources"][FUNCTION_LOGICAL_IDS[function]]["Properties"][
            "Environment"
        ]["Variables"]
        assert variables["GATEHOUSE_AUDIT_BUCKET"] == {"Ref": "AuditBucket"}
        assert variables["GATEHOUSE_AUDIT_QUEUE_URL"] == {"Ref": "AuditQueue"}
        assert variables["GATEHOUSE_STAGE"] == STAGE


def test_each_function_has_its_own_role_named_as_the_table_policy_expects(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    roles = {
        function: resources[FUNCTION_LOGICAL_IDS[function]]["Properties"]["Role"]
        for function in FUNCTIONS
    }
    assert roles == {
        function: {"Fn::GetAtt": [ROLE_LOGICAL_IDS[function], "Arn"]} for function in FUNCTIONS
    }
    names = {
        resources[ROLE_LOGICAL_IDS[function]]["Properties"]["RoleName"] for function in FUNCTIONS
    }
    assert names == {f"gatehouse-{STAGE}-{function}" for function in FUNCTIONS}
    statements = resources["StateTable"]["Properties"]["ResourcePolicy"]["PolicyDocument"][
        "Statement"
    ]
    exempted = {
        arn["Fn::Sub"].rsplit("/", 1)[1].replace("${Stage}", STAGE)
        for statement in statements
        for arn in statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    }
    assert exempted <= names
    assert f"gatehouse-{STAGE}-access_log_ingest" not in exempted


def _identity_policies(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::IAM::Role":
            for policy in properties.get("Policies", []):
                yield name, policy["PolicyDocument"]
        elif resource.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield name, properties["PolicyDocument"]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_least_privilege_in_every_identity_policy(template: dict[str, Any]) -> None:
    documents = list(_identity_policies(template))
    assert {name for name, _ in documents} >= set(ROLE_LOGICAL_IDS.values())
    for name, document in documents:
        for statement in document["Statement"]:
            if statement["Effect"] != "Allow":
                continue
            actions = _as_list(statement["Action"])
            resources = _as_list(statement.get("Resource", []))
            assert "*" not in actions, name
            assert not any(a.endswith(":*") for a in actions), (name, actions)
            if any(action.split(":")[0] in STATE_SERVICES for action in actions):
                assert "*" not in resources, (name, statement.get("Sid"))
            for action in actions:
                for forbidden in FORBIDDEN_ACTIONS:
                    # Either way round: a wildcard action that covers a forbidden one counts.
                    assert not fnmatch.fnmatch(forbidden.rstrip("*"), action), (name, action)
                    assert not fnmatch.fnmatch(action, forbidden), (name, action)


def test_only_the_api_gateway_logging_role_uses_a_managed_policy(template: dict[str, Any]) -> None:
    managed = {
        name: resource["Properties"].get("ManagedPolicyArns")
        for name, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::IAM::Role"
        and resource["Properties"].get("ManagedPolicyArns")
    }
    assert list(managed) == ["ApiGatewayCloudWatchRole"]


def test_memory_timeouts_and_reserved_concurrency_are_the_configured_ones(
    template: dict[str, Any],
) -> None:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    for function, settings in config["stages"][STAGE]["lambda_functions"].items():
        properties = template["Resources"][FUNCTION_LOGICAL_IDS[function]]["Properties"]
        assert properties["MemorySize"] == settings["lambda_memory_size"], function
        assert properties["Timeout"] == settings["lambda_timeout"], function
        assert properties.get("ReservedConcurrentExecutions") == settings.get(
            "reserved_concurrency"
        ), function
    assert template["Resources"]["APIHandler"]["Properties"]["Timeout"] <= 29


def test_schedules_and_their_permissions_come_from_chalice(template: dict[str, Any]) -> None:
    for function, rate in (("GrantSweeper", "rate(1 minute)"), ("LedgerDigest", "rate(1 hour)")):
        events = template["Resources"][function]["Properties"]["Events"]
        [event] = events.values()
        # SAM turns a Schedule event into the rule and its invoke permission.
        assert (event["Type"], event["Properties"]["Schedule"]) == ("Schedule", rate)


def test_the_stage_logs_access_and_the_log_reaches_the_ingest_function(
    template: dict[str, Any], api: dict[str, Any]
) -> None:
    resources = template["Resources"]
    setting = resources["RestAPI"]["Properties"]["AccessLogSetting"]
    assert json.loads(setting["Format"]) == json.loads(
        (ROOT / "infra" / "access_log_format.json").read_text()
    )
    assert not str(setting["DestinationArn"]).endswith(':*"}')
    subscription = resources["AccessLogSubscription"]["Properties"]
    assert subscription["DestinationArn"] == {"Fn::GetAtt": ["AccessLogIngest", "Arn"]}
    assert subscription["LogGroupName"] == {"Ref": "AccessLogGroup"}
    permission = resources["AccessLogIngestPermission"]["Properties"]
    assert permission["Principal"] == "logs.amazonaws.com"
    responses = api["x-amazon-apigateway-gateway-responses"]
    assert responses["AUTHORIZER_FAILURE"]["statusCode"] == 503


def test_the_stage_throttles_the_unauthenticated_health_route_per_method(
    template: dict[str, Any],
) -> None:
    from gatehouse.deploy.settings import HEALTH_BURST_LIMIT, HEALTH_RATE_LIMIT

    settings = template["Resources"]["RestAPI"]["Properties"]["MethodSettings"]
    by_method = {
        (s["ResourcePath"], s["HttpMethod"]): (s["ThrottlingRateLimit"], s["ThrottlingBurstLimit"])
        for s in settings
    }
    # API Gateway spells "/" as "~1" in a method setting's resource path.
    assert by_method == {
        ("/~1.gatehouse~1health", "GET"): (HEALTH_RATE_LIMIT, HEALTH_BURST_LIMIT),
        ("/~1.gatehouse~1health", "HEAD"): (HEALTH_RATE_LIMIT, HEALTH_BURST_LIMIT),
    }
    assert 0 < HEALTH_RATE_LIMIT <= HEALTH_BURST_LIMIT


def _rendered(value: Any) -> str:
    """A name as the packaged template deploys it (Stage is pinned to prod)."""
    if isinstance(value, str):
        return value
    return str(value["Fn::Sub"]).replace("${Stage}", STAGE)


def test_every_function_has_the_name_its_log_group_permissions_and_alarms_use(
    template: dict[str, Any],
) -> None:
    from gatehouse.deploy.templates import LOG_GROUP_LOGICAL_IDS

    resources = template["Resources"]
    names = {
        function: resources[FUNCTION_LOGICAL_IDS[function]]["Properties"]["FunctionName"]
        for function in FUNCTIONS
    }
    assert names == {function: f"gatehouse-{STAGE}-{function}" for function in FUNCTIONS}
    for function, name in names.items():
        log_group = resources[LOG_GROUP_LOGICAL_IDS[function]]["Properties"]["LogGroupName"]
        assert _rendered(log_group) == f"/aws/lambda/{name}"
        # The role may write to that log group only (it may not create another).
        [policy] = resources[ROLE_LOGICAL_IDS[function]]["Properties"]["Policies"]
        [own] = [s for s in policy["PolicyDocument"]["Statement"] if s.get("Sid") == "OwnLogGroup"]
        assert own["Resource"].endswith(f":log-group:/aws/lambda/{name}:*")
    alarmed = {
        _rendered(dimension["Value"])
        for resource in resources.values()
        if resource.get("Type") == "AWS::CloudWatch::Alarm"
        for dimension in resource["Properties"].get("Dimensions", [])
        if dimension["Name"] == "FunctionName"
    }
    assert alarmed
    assert alarmed <= set(names.values())


def test_the_security_review_fixes_survive_packaging(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    assert "ProdKeepsTheAuditTrailAtLeastAYear" in template["Rules"]
    keys = {name for name, r in resources.items() if r.get("Type") == "AWS::KMS::Key"}
    assert keys == {"SigningKey", "AssertionKey", "AlertTopicKey"}
    for bucket in ("AuditBucket", "AnchorBucket", "TrailBucket"):
        [rule] = resources[bucket]["Properties"]["BucketEncryption"][
            "ServerSideEncryptionConfiguration"
        ]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert resources[f"{bucket}Policy"]["DeletionPolicy"] == "Retain"
    assert resources["AuditQueue"]["Properties"]["VisibilityTimeout"] == 300
    assert resources["AuthorizerCannotDecideAlarm"]["Properties"]["MetricName"] == (
        "DecisionFailed"
    )
    rules = [r for r in resources.values() if r.get("Type") == "AWS::Events::Rule"]
    tampering = [r for r in rules if "tampering" in _rendered(r["Properties"].get("Name", ""))]
    assert len(tampering) == 4
    for key in ("SigningKey", "AssertionKey"):
        statements = resources[key]["Properties"]["KeyPolicy"]["Statement"]
        assert any(s.get("Sid") == "NobodyGrants" for s in statements if isinstance(s, dict))
        assert resources[key]["DeletionPolicy"] == "Retain", key
    # The digest key's policy is narrow unless the stack is told otherwise.
    parameter = template["Parameters"]["DigestKeyPolicy"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("narrow", ["narrow", "legacy"])
    outputs = template["Outputs"]
    assert {"AssertionKeyAlias", "AssertionKeyArn", "DigestKeyAlias", "SigningKeyArn"} <= set(
        outputs
    )


# Each signing key's alias and the one function whose role may sign with it.
SIGNING_ALIASES = {
    f"alias/gatehouse-{STAGE}-assertion": "api_handler",
    f"alias/gatehouse-{STAGE}-digest": "ledger_digest",
}


def test_each_role_signs_only_with_its_own_key(template: dict[str, Any]) -> None:
    from gatehouse.resources import ResourceNames

    names = ResourceNames(STAGE, "123456789012", "eu-west-1")
    assert set(SIGNING_ALIASES) == {names.assertion_key_alias, names.digest_key_alias}
    resources = template["Resources"]
    signs: dict[str, set[str]] = {}
    for function in FUNCTIONS:
        [policy] = resources[ROLE_LOGICAL_IDS[function]]["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = _as_list(statement["Action"])
            if not any(action.startswith("kms:") for action in actions):
                continue
            assert set(actions) == {"kms:Sign", "kms:GetPublicKey"}, function
            aliases = statement["Condition"]["ForAnyValue:StringEquals"]["kms:ResourceAliases"]
            for alias in _as_list(aliases):
                signs.setdefault(alias, set()).add(function)
    assert signs == {alias: {function} for alias, function in SIGNING_ALIASES.items()}
    # The functions find the keys by those aliases.
    for function in FUNCTIONS:
        variables = resources[FUNCTION_LOGICAL_IDS[function]]["Properties"]["Environment"][
            "Variables"
        ]
        assert variables["GATEHOUSE_ASSERTION_KEY_ID"] == names.assertion_key_alias
        assert variables["GATEHOUSE_DIGEST_KEY_ID"] == names.digest_key_alias


def test_cfn_lint_passes_on_the_packaged_template(packaged: tuple[dict[str, Any], Path]) -> None:
    _, path = packaged
    lint = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "cfn-lint"
    result = subprocess.run(
        [str(lint if lint.exists() else "cfn-lint"), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
