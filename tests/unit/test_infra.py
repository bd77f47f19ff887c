"""The CloudFormation template and the local bootstrap build the same resources."""

from __future__ import annotations

import copy
import fnmatch
import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from chalicelib.audit.writer import STALE_RESERVATION_SECONDS
from gatehouse.deploy.templates import load_template
from gatehouse.resources import (
    AUDIT_QUEUE_MAX_RECEIVES,
    AUDIT_QUEUE_VISIBILITY_SECONDS,
    AUDIT_RETENTION_MODE,
    ResourceNames,
)

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "gatehouse.yaml"
GATEWAY_RESPONSES = TEMPLATE.with_name("gateway_responses.json")


@functools.cache
def _loaded() -> dict[str, Any]:
    return load_template(TEMPLATE)


def _template() -> dict[str, Any]:
    return copy.deepcopy(_loaded())


def _render(value: Any, stage: str, account: str, region: str) -> str:
    """Render an ``Fn::Sub`` string the way CloudFormation would."""
    text = value["Fn::Sub"]
    variables = {"Stage": stage, "AWS::AccountId": account, "AWS::Region": region}
    return re.sub(r"\$\{([^}]+)\}", lambda match: variables[match.group(1)], text)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_template_names_match_the_bootstrap(stage: str) -> None:
    resources = _template()["Resources"]
    names = ResourceNames(stage, "123456789012", "eu-west-1")
    rendered = {
        "StateTable": _render(
            resources["StateTable"]["Properties"]["TableName"], stage, "123456789012", "eu-west-1"
        ),
        "AuditBucket": _render(
            resources["AuditBucket"]["Properties"]["BucketName"], stage, "123456789012", "eu-west-1"
        ),
        "AuditQueue": _render(
            resources["AuditQueue"]["Properties"]["QueueName"], stage, "123456789012", "eu-west-1"
        ),
        "AnchorBucket": _render(
            resources["AnchorBucket"]["Properties"]["BucketName"],
            stage,
            "123456789012",
            "eu-west-1",
        ),
        "AuditDeadLetterQueue": _render(
            resources["AuditDeadLetterQueue"]["Properties"]["QueueName"],
            stage,
            "123456789012",
            "eu-west-1",
        ),
        "SigningKeyAlias": _render(
            resources["SigningKeyAlias"]["Properties"]["AliasName"],
            stage,
            "123456789012",
            "eu-west-1",
        ),
        "AssertionKeyAlias": _render(
            resources["AssertionKeyAlias"]["Properties"]["AliasName"],
            stage,
            "123456789012",
            "eu-west-1",
        ),
        "DigestKeyAlias": _render(
            resources["DigestKeyAlias"]["Properties"]["AliasName"],
            stage,
            "123456789012",
            "eu-west-1",
        ),
        "TrailBucket": _render(
            resources["TrailBucket"]["Properties"]["BucketName"], stage, "123456789012", "eu-west-1"
        ),
    }
    assert rendered == {
        "StateTable": names.state_table,
        "AuditBucket": names.audit_bucket,
        "AuditQueue": names.audit_queue,
        "AnchorBucket": names.anchor_bucket,
        "AuditDeadLetterQueue": names.audit_dlq,
        "SigningKeyAlias": names.signing_key_alias,
        "AssertionKeyAlias": names.assertion_key_alias,
        "DigestKeyAlias": names.digest_key_alias,
        "TrailBucket": names.trail_bucket,
    }


def test_template_settings_match_the_bootstrap() -> None:
    resources = _template()["Resources"]
    queue = resources["AuditQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == AUDIT_QUEUE_MAX_RECEIVES
    bucket = resources["AuditBucket"]["Properties"]
    assert bucket["ObjectLockEnabled"] is True
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    mode = bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Mode"]["Fn::If"]
    assert mode == ["IsProd", AUDIT_RETENTION_MODE["prod"], AUDIT_RETENTION_MODE["dev"]]
    for name in SIGNING_KEYS:
        key = resources[name]["Properties"]
        assert (key["KeySpec"], key["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY"), name
        assert (resources[name]["DeletionPolicy"], resources[name]["UpdateReplacePolicy"]) == (
            "Retain",
            "Retain",
        ), name


def test_gateway_responses_carry_the_request_id_and_fail_closed_with_503() -> None:
    responses = json.loads(GATEWAY_RESPONSES.read_text())
    assert responses["AUTHORIZER_FAILURE"]["statusCode"] == 503
    assert responses["UNAUTHORIZED"]["statusCode"] == 401
    for name, response in responses.items():
        body = response["responseTemplates"]["application/json"]
        assert "$context.requestId" in body, name
        json.loads(body.replace("$context.requestId", "x"))


# chalicelib/grants/store.py
GRANT_PARTITIONS = {"GRANT", "GRANT-LIVE", "GRANT-ENDED", "GRANT-OUTBOX"}
LEDGER_PARTITIONS = {"LEDGER", "LEDGER-EVENT"}  # chalicelib/ledger/state.py
ITEM_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}


GRANT_WRITERS = {"api_handler", "gatehouse_authorizer", "grant_sweeper"}
LEDGER_WRITERS = {"audit_writer", "ledger_digest"}
DETECT_WRITERS = {"audit_writer", "detection_checks"}  # chalicelib/detect/state.py
FUNCTIONS = GRANT_WRITERS | LEDGER_WRITERS | DETECT_WRITERS | {"access_log_ingest", "ocsf_export"}


def _roles(statement: dict[str, Any]) -> set[str]:
    arns = statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    prefix = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/gatehouse-${Stage}-"
    assert all(arn["Fn::Sub"].startswith(prefix) for arn in arns), arns
    return {arn["Fn::Sub"].removeprefix(prefix) for arn in arns}


def test_only_the_functions_that_write_a_partition_may_write_it() -> None:
    from chalicelib.aws.table_layout import (
        SESSION,
        SESSION_REVOKED,
        SIGNING_KEY,
        SIGNING_KEY_EXPIRED,
    )
    from chalicelib.grants import store
    from chalicelib.ledger import state
    from chalicelib.ocsf.cursor import OCSF_CURSOR

    assert {store._PK, store._LIVE, store._ENDED, store._OUTBOX} == GRANT_PARTITIONS
    assert {state._PK, state._EVENTS} == LEDGER_PARTITIONS
    table = _template()["Resources"]["StateTable"]["Properties"]
    statements = table["ResourcePolicy"]["PolicyDocument"]["Statement"]
    (
        grants,
        live,
        ledger,
        signing_keys,
        key_expiries,
        sessions,
        revocations,
        detect,
        ocsf_cursor,
        blind,
    ) = statements
    every_write = ITEM_WRITES | {
        "dynamodb:BatchWriteItem",
        "dynamodb:PartiQLInsert",
        "dynamodb:PartiQLUpdate",
        "dynamodb:PartiQLDelete",
    }
    for deny in statements:
        assert (deny["Effect"], deny["Principal"]) == ("Deny", "*")
        # Every way to write an item, one at a time, in batches, or through PartiQL
        # (but for the one write anyone may make: adding a revocation).
        expected = every_write - {"dynamodb:PutItem"} if deny is revocations else every_write
        assert set(deny["Action"]) == expected
    # ForAnyValue: one protected key in a batch is enough to refuse it.
    assert set(grants["Condition"]["ForAnyValue:StringLike"]["dynamodb:LeadingKeys"]) == (
        GRANT_PARTITIONS - {"GRANT-LIVE", "GRANT-ENDED"}
    )
    assert _roles(grants) == GRANT_WRITERS
    # The authorizer only reads the live and the ended copies.
    assert live["Condition"]["ForAnyValue:StringLike"]["dynamodb:LeadingKeys"] == [
        "GRANT-LIVE",
        "GRANT-ENDED",
    ]
    assert _roles(live) == {"api_handler", "grant_sweeper"}
    assert set(ledger["Condition"]["ForAnyValue:StringLike"]["dynamodb:LeadingKeys"]) == (
        LEDGER_PARTITIONS
    )
    assert _roles(ledger) == LEDGER_WRITERS
    # Only the proxy adds a key to the JWKS; the sweeper notes expiries apart.
    assert signing_keys["Condition"]["ForAnyValue:StringLike"]["dynamodb:LeadingKeys"] == [
        SIGNING_KEY.partition
    ]
    assert _roles(signing_keys) == {"api_handler"}
    assert key_expiries["Condition"]["ForAnyValue:StringLike"]["dynamodb:LeadingKeys"] == [
        SIGNING_KEY_EXPIRED.partition
    ]
    assert _roles(key_expiries) == {"grant_sweeper"}
    # Only the proxy writes sessions; anyone may add a revocation (an operator's
    # `gatehouse session revoke`), only the proxy could change or remove one.
    assert sessions["Condition"]["ForAnyValue:StringLike"]["dynamodb:LeadingKeys"] == [
        SESSION.partition
    ]
    assert _roles(sessions) == {"api_handler"}
    assert revocations["Condition"]["ForAnyValue:StringLike"]["dynamodb:LeadingKeys"] == [
        SESSION_REVOKED.partition
    ]
    assert _roles(revocations) == {"api_handler"}
    assert "dynamodb:PutItem" not in revocations["Action"]
    # Detection's state: the writer (windows, first-seen sets) and the scheduled check.
    from chalicelib.detect.state import PARTITION

    assert detect["Condition"]["ForAnyValue:StringLike"]["dynamodb:LeadingKeys"] == [PARTITION]
    assert _roles(detect) == DETECT_WRITERS
    assert ocsf_cursor["Condition"]["ForAnyValue:StringLike"]["dynamodb:LeadingKeys"] == [
        OCSF_CURSOR.partition
    ]
    assert _roles(ocsf_cursor) == {"ocsf_export"}
    # ... and the proxy's own IAM policy lets it add revocations, not change them.
    for stage in ("dev", "prod"):
        for function in FUNCTIONS:
            for statement in _statements(stage, function).values():
                leading = statement.get("Condition", {}).get("ForAllValues:StringEquals", {})
                keys = set(leading.get("dynamodb:LeadingKeys", []))
                if SESSION_REVOKED.partition in keys and _writes(statement):
                    assert function == "api_handler", (stage, function)
                    assert _writes(statement) == {"dynamodb:PutItem"}, (stage, statement)
                if SESSION.partition in keys and _writes(statement):
                    assert function == "api_handler", (stage, function)
    # Writes whose partition keys IAM cannot see are refused to all but the writers.
    assert blind["Condition"]["Null"] == {"dynamodb:LeadingKeys": "true"}
    assert _roles(blind) == GRANT_WRITERS | LEDGER_WRITERS


def _statements(stage: str, function: str) -> dict[str, dict[str, Any]]:
    policy_file = TEMPLATE.parents[1] / ".chalice" / f"policy-{stage}-{function}.json"
    return {s["Sid"]: s for s in json.loads(policy_file.read_text())["Statement"]}


def _writes(statement: dict[str, Any]) -> set[str]:
    return {action for action in statement["Action"] if not action.endswith(("GetItem", "Query"))}


def _table_denies(function: str, partition: str) -> bool:
    """Whether the table's resource policy refuses ``function``'s item writes to ``partition``."""
    table = _template()["Resources"]["StateTable"]["Properties"]
    for deny in table["ResourcePolicy"]["PolicyDocument"]["Statement"]:
        keys = deny["Condition"].get("ForAnyValue:StringLike", {}).get("dynamodb:LeadingKeys", [])
        if partition in keys and function not in _roles(deny):
            return True
    return False


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_a_function_may_write_a_partition_only_if_the_table_lets_it(stage: str) -> None:
    for function in FUNCTIONS:
        for statement in _statements(stage, function).values():
            leading = statement.get("Condition", {}).get("ForAllValues:StringEquals", {})
            partitions = set(leading.get("dynamodb:LeadingKeys", []))
            if not _writes(statement) or not partitions:
                continue
            for partition in partitions:
                assert not _table_denies(function, partition), (function, partition)
            if partitions & GRANT_PARTITIONS:
                assert function in GRANT_WRITERS, (function, statement["Sid"])
            if partitions & LEDGER_PARTITIONS:
                assert function in LEDGER_WRITERS, (function, statement["Sid"])


def grant_rights(stage: str, function: str) -> set[tuple[str, str]]:
    """The (action, partition) pairs a function's policy allows on the grant partitions."""
    rights = set()
    for statement in _statements(stage, function).values():
        leading = statement.get("Condition", {}).get("ForAllValues:StringEquals", {})
        for partition in set(leading.get("dynamodb:LeadingKeys", [])) & GRANT_PARTITIONS:
            assert statement["Resource"].endswith(f":table/gatehouse-{stage}-state")
            rights |= {(action, partition) for action in statement["Action"]}
    return rights


# What each function's code does to the grant partitions (chalicelib/grants/store.py and
# lifecycle.py; tests/functional/test_deploy_grant_rights.py records it against moto).
# TransactWriteItems is authorised per item, with each item's own action.
AUTHORIZER_GRANT_CALLS = {
    ("dynamodb:Query", "GRANT-LIVE"),  # ActiveGrants: the live grants
    ("dynamodb:Query", "GRANT-ENDED"),  # ... and those ended within a day
    ("dynamodb:GetItem", "GRANT"),  # mark_used re-reads a grant after a lost race
    ("dynamodb:UpdateItem", "GRANT"),  # mark_used: first_used_at
    ("dynamodb:PutItem", "GRANT-OUTBOX"),  # ... with its `used` event in the outbox
    ("dynamodb:DeleteItem", "GRANT-OUTBOX"),  # deliver: cleared once enqueued
}
SWEEPER_GRANT_CALLS = {
    ("dynamodb:Query", "GRANT-LIVE"),  # sweep_expired: the live grants
    ("dynamodb:Query", "GRANT-OUTBOX"),  # redeliver_outbox
    ("dynamodb:UpdateItem", "GRANT"),  # expire: status=expired
    ("dynamodb:DeleteItem", "GRANT-LIVE"),  # ... the live copy removed
    ("dynamodb:PutItem", "GRANT-ENDED"),  # ... the ended copy written
    ("dynamodb:PutItem", "GRANT-OUTBOX"),  # ... with its `expired` event in the outbox
    ("dynamodb:DeleteItem", "GRANT-OUTBOX"),  # deliver: cleared once enqueued
}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_authorizer_and_the_sweeper_may_make_only_the_grant_calls_they_make(
    stage: str,
) -> None:
    assert grant_rights(stage, "gatehouse_authorizer") == AUTHORIZER_GRANT_CALLS
    assert grant_rights(stage, "grant_sweeper") == SWEEPER_GRANT_CALLS


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_grant_api_may_make_every_grant_write_the_store_makes(stage: str) -> None:
    lifecycle = _statements(stage, "api_handler")["GrantLifecycle"]

    # TransactWriteItems is authorised per item: Put, Update, Delete and ConditionCheck.
    assert set(lifecycle["Action"]) == ITEM_WRITES | {"dynamodb:ConditionCheckItem"}
    assert lifecycle["Resource"].endswith(f":table/gatehouse-{stage}-state")
    leading = lifecycle["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
    assert set(leading) == GRANT_PARTITIONS - {"GRANT-ENDED"}
    # The ended copies are put, never changed nor removed (that would hide a misuse).
    ended = {right for right in grant_rights(stage, "api_handler") if right[1] == "GRANT-ENDED"}
    assert ended == {("dynamodb:PutItem", "GRANT-ENDED"), ("dynamodb:Query", "GRANT-ENDED")}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_writer_may_make_every_call_the_ledger_makes(stage: str) -> None:
    statements = _statements(stage, "audit_writer")
    ledger = statements["Ledger"]

    # LedgerState: get_item, batch_get_item, query, update_item, batch_write_item, and
    # transact_write_items of an Update and a Put.
    assert set(ledger["Action"]) == {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:PutItem",
    }
    leading = ledger["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
    assert set(leading) == LEDGER_PARTITIONS
    # Recovery reads back an object a crashed writer may have stored.
    assert set(statements["AuditStore"]["Action"]) == {"s3:PutObject", "s3:GetObject"}
    # The event source mapping polls with the function's role.
    assert set(statements["AuditQueueSource"]["Action"]) >= {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    }


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_digest_signs_and_stores_only_digests_and_the_anchor(stage: str) -> None:
    from chalicelib.ledger.layout import DIGESTS_PREFIX, EVENTS_PREFIX

    statements = _statements(stage, "ledger_digest")
    assert statements["DigestStore"]["Resource"].endswith(f"/{DIGESTS_PREFIX}*")
    assert _statements(stage, "audit_writer")["AuditStore"]["Resource"].endswith(
        f"/{EVENTS_PREFIX}*"
    )
    assert statements["LedgerAnchor"]["Resource"].endswith(f"/ledger/{stage}/checkpoint.json")
    names = ResourceNames(stage, ACCOUNT, "eu-west-1")
    assert set(statements["DigestKey"]["Action"]) == {"kms:Sign", "kms:GetPublicKey"}
    assert statements["DigestKey"]["Condition"]["ForAnyValue:StringEquals"] == {
        "kms:ResourceAliases": names.digest_key_alias
    }


ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/"
BREAK_GLASS = f"{ROLE}gatehouse-break-glass"
OPERATOR = f"{ROLE}gatehouse-operator"


def _resolve(value: Any, parameters: dict[str, str]) -> Any:
    """``value`` as CloudFormation would deploy it (the intrinsics this template uses)."""
    conditions = {
        "HasKeyAdminRole": bool(parameters.get("KeyAdminRoleArn")),
        "HasOperatorRole": bool(parameters.get("OperatorRoleArn")),
        "IsProd": parameters.get("Stage") == "prod",
        "DigestKeyPolicyIsLegacy": parameters.get("DigestKeyPolicy", "narrow") == "legacy",
    }
    variables = {"AWS::Partition": "aws", "AWS::AccountId": ACCOUNT, "AWS::Region": "eu-west-1"}
    variables.update(parameters)
    no_value = object()

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [item for item in (walk(item) for item in node) if item is not no_value]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"}:
            return no_value if node["Ref"] == "AWS::NoValue" else variables[node["Ref"]]
        if set(node) == {"Fn::If"}:
            name, then, otherwise = node["Fn::If"]
            return walk(then if conditions[name] else otherwise)
        if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
            return re.sub(r"\$\{([^}]+)\}", lambda m: variables[m.group(1)], node["Fn::Sub"])
        if set(node) == {"Fn::GetAtt"}:
            return f"<{'.'.join(node['Fn::GetAtt'])}>"
        resolved = {key: walk(item) for key, item in node.items()}
        return {key: item for key, item in resolved.items() if item is not no_value}

    return walk(value)


def _condition_holds(condition: dict[str, Any], principal: str) -> bool:
    for operator, tests in condition.items():
        [(key, patterns)] = tests.items()
        assert key == "aws:PrincipalArn", key
        matched = any(fnmatch.fnmatchcase(principal, p) for p in _as_list(patterns))
        if operator in ("ArnEquals", "ArnLike") and not matched:
            return False
        if operator in ("ArnNotEquals", "ArnNotLike") and matched:
            return False
    return True


def _principals(statement: dict[str, Any]) -> list[str]:
    principal = statement["Principal"]
    return ["*"] if principal == "*" else _as_list(principal.get("AWS", []))


def _key_policy(
    key: str, *, key_admin: str = "", stage: str = "prod", digest_key_policy: str = "narrow"
) -> dict[str, Any]:
    """The key's policy as CloudFormation would put it."""
    policy: dict[str, Any] = _resolve(
        _template()["Resources"][key]["Properties"]["KeyPolicy"],
        {"Stage": stage, "KeyAdminRoleArn": key_admin, "DigestKeyPolicy": digest_key_policy},
    )
    return policy


def key_policy_decision(
    principal: str,
    action: str,
    *,
    key_admin: str = "",
    stage: str = "prod",
    key: str = "SigningKey",
    digest_key_policy: str = "narrow",
) -> str:
    """What ``key``'s policy says to ``principal`` (a role) doing ``action``.

    ``allow`` when a statement lets it (the account root's statements: when IAM also
    allows), ``deny`` on an explicit deny, ``none`` otherwise.
    """
    policy = _key_policy(key, key_admin=key_admin, stage=stage, digest_key_policy=digest_key_policy)
    decision = "none"
    for statement in policy["Statement"]:
        actions = _as_list(statement["Action"])
        if not any(fnmatch.fnmatchcase(action, pattern) for pattern in actions):
            continue
        principals = _principals(statement)
        if not ("*" in principals or principal in principals or f"{ROLE[:-5]}root" in principals):
            continue
        if not _condition_holds(statement.get("Condition", {}), principal):
            continue
        if statement["Effect"] == "Deny":
            return "deny"
        decision = "allow"
    return decision


# Each signing key, its aliases, and the one function that may sign with it.
SIGNING_KEYS = {"AssertionKey": "api_handler", "SigningKey": "ledger_digest"}
DIGEST_KEY_POLICIES = ("narrow", "legacy")


def _key_aliases(key: str, stage: str) -> set[str]:
    """The aliases the template gives ``key``."""
    return {
        _render(resource["Properties"]["AliasName"], stage, ACCOUNT, "eu-west-1")
        for resource in _template()["Resources"].values()
        if resource["Type"] == "AWS::KMS::Alias"
        and resource["Properties"]["TargetKeyId"] == {"Ref": key}
    }


def iam_allows(stage: str, function: str, action: str, key: str) -> bool:
    """Whether the function's policy allows ``action`` on ``key`` (named by alias)."""
    aliases = _key_aliases(key, stage)
    for statement in _statements(stage, function).values():
        if statement["Effect"] != "Allow" or action not in _as_list(statement["Action"]):
            continue
        assert statement["Resource"] == "arn:aws:kms:*:*:key/*", statement["Sid"]
        named = statement["Condition"]["ForAnyValue:StringEquals"]["kms:ResourceAliases"]
        if set(_as_list(named)) & aliases:
            return True
    return False


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_key_has_its_own_aliases_named_as_the_bootstrap_and_the_config_name_them(
    stage: str,
) -> None:
    names = ResourceNames(stage, ACCOUNT, "eu-west-1")
    assert _key_aliases("AssertionKey", stage) == {names.assertion_key_alias}
    # The digest key keeps its old alias, which no policy names any more.
    assert _key_aliases("SigningKey", stage) == {names.digest_key_alias, names.signing_key_alias}
    config = json.loads((TEMPLATE.parents[1] / ".chalice" / "config.json").read_text())
    variables = config["stages"][stage]["environment_variables"]
    assert variables["GATEHOUSE_ASSERTION_KEY_ID"] == names.assertion_key_alias
    assert variables["GATEHOUSE_DIGEST_KEY_ID"] == names.digest_key_alias
    for function in FUNCTIONS:
        policy = json.dumps(_statements(stage, function))
        assert names.signing_key_alias not in policy, function
        assert '"SigningKey"' not in policy, function


@pytest.mark.parametrize("stage", ["dev", "prod"])
@pytest.mark.parametrize("digest_key_policy", DIGEST_KEY_POLICIES)
def test_only_the_proxy_signs_assertions_and_only_the_digest_signs_digests(
    stage: str, digest_key_policy: str
) -> None:
    for key, signer in SIGNING_KEYS.items():
        for function in FUNCTIONS:
            role = f"{ROLE}gatehouse-{stage}-{function}"
            decision = key_policy_decision(
                role, "kms:Sign", stage=stage, key=key, digest_key_policy=digest_key_policy
            )
            iam = iam_allows(stage, function, "kms:Sign", key)
            # The key policy delegates to IAM through the account: both must allow.
            assert (decision == "allow" and iam) == (function == signer), (key, function)
            # IAM alone already keeps every other function from signing with the key.
            assert iam == (function == signer), (key, function)
            # So does each key's policy, but for the digest key's legacy policy.
            legacy = key == "SigningKey" and digest_key_policy == "legacy"
            allowed = {signer, "api_handler"} if legacy else {signer}
            assert decision == ("allow" if function in allowed else "deny"), (key, function)
        # The other stage's roles, an administrator, the break-glass role: explicitly refused.
        other = "dev" if stage == "prod" else "prod"
        for someone in (
            f"{ROLE}gatehouse-{other}-{signer}",
            f"{ROLE}gatehouse-{other}-api_handler",
            f"{ROLE}Admin",
            BREAK_GLASS,
        ):
            decision = key_policy_decision(
                someone,
                "kms:Sign",
                stage=stage,
                key=key,
                key_admin=BREAK_GLASS,
                digest_key_policy=digest_key_policy,
            )
            assert decision == "deny", (key, someone)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_function_reads_only_the_public_key_it_signs_with(stage: str) -> None:
    for key, signer in SIGNING_KEYS.items():
        for function in FUNCTIONS:
            assert iam_allows(stage, function, "kms:GetPublicKey", key) == (function == signer)


def test_the_legacy_digest_key_policy_is_the_policy_from_before_the_assertion_key() -> None:
    """What CloudFormation compares: legacy must not change the deployed key policy at all."""
    api, digest = (f"{ROLE}gatehouse-prod-{function}" for function in SIGNER_ROLES)
    for key_admin in ("", BREAK_GLASS):
        legacy = _key_policy("SigningKey", key_admin=key_admin, digest_key_policy="legacy")
        narrow = _key_policy("SigningKey", key_admin=key_admin, digest_key_policy="narrow")
        statements = {s["Sid"]: s for s in legacy["Statement"]}
        assert list(statements) == [
            "AccountAdministersTheKey",
            *(["TheKeyAdminRoleChangesThePolicyAndTheAlias"] if key_admin else []),
            "TheSigningFunctionsSign",
            "NobodyElseSigns",
            "NobodyGrants",
            "OnlyTheKeyAdminRoleChangesThePolicyOrTheAlias",
        ]
        assert statements["TheSigningFunctionsSign"]["Condition"] == {
            "ArnEquals": {"aws:PrincipalArn": [api, digest]}
        }
        assert statements["NobodyElseSigns"]["Condition"] == {
            "ArnNotLike": {"aws:PrincipalArn": [api, digest]}
        }
        # narrow differs in those two lists only.
        for statement in narrow["Statement"]:
            for condition in statement.get("Condition", {}).values():
                if condition.get("aws:PrincipalArn") == [digest]:
                    condition["aws:PrincipalArn"] = [api, digest]
        assert narrow == legacy
    parameter = _template()["Parameters"]["DigestKeyPolicy"]
    assert (parameter["AllowedValues"], parameter["Default"]) == (["narrow", "legacy"], "narrow")


SIGNER_ROLES = ("api_handler", "ledger_digest")
KEY_TAKEOVER = ("kms:PutKeyPolicy", "kms:UpdateAlias", "kms:DeleteAlias")


@pytest.mark.parametrize("key", sorted(SIGNING_KEYS))
def test_nobody_may_grant_and_only_the_break_glass_role_may_rewrite_the_policy_or_alias(
    key: str,
) -> None:
    admin = f"{ROLE}Admin"
    signer = f"{ROLE}gatehouse-prod-{SIGNING_KEYS[key]}"

    def decision(who: str, action: str, key_admin: str = "") -> str:
        return key_policy_decision(who, action, key=key, key_admin=key_admin)

    for who in (admin, signer, BREAK_GLASS):
        # A grant would let anyone sign: refused to everyone, the signer included.
        assert decision(who, "kms:CreateGrant", BREAK_GLASS) == "deny"
        # Without a break-glass role nobody may take the key over.
        for action in KEY_TAKEOVER:
            assert decision(who, action) == "deny", (who, action)
    for action in KEY_TAKEOVER:
        assert decision(admin, action, BREAK_GLASS) == "deny"
        assert decision(signer, action, BREAK_GLASS) == "deny"
        assert decision(BREAK_GLASS, action, BREAK_GLASS) == "allow"
    # Administration goes on: reading, tagging, disabling (which the tampering rule reports).
    for action in ("kms:DescribeKey", "kms:GetPublicKey", "kms:DisableKey", "kms:TagResource"):
        assert decision(admin, action) == "allow", action


@pytest.mark.parametrize("key", sorted(SIGNING_KEYS))
def test_the_key_administrators_have_exact_actions_and_the_key_can_be_created(key: str) -> None:
    resource = _template()["Resources"][key]
    statements = resource["Properties"]["KeyPolicy"]["Statement"]
    admin = next(
        s for s in statements if isinstance(s, dict) and s["Sid"] == "AccountAdministersTheKey"
    )
    assert not any("*" in action for action in admin["Action"]), admin["Action"]
    assert not {"kms:Sign", "kms:CreateGrant", *KEY_TAKEOVER} & set(admin["Action"])
    # Both keys are administered alike.
    other = next(name for name in SIGNING_KEYS if name != key)
    other_statements = _template()["Resources"][other]["Properties"]["KeyPolicy"]["Statement"]
    assert admin in other_statements
    # KMS refuses a policy its creator could not change later unless told to: by design
    # nobody (or only the break-glass role) can.
    assert resource["Properties"]["BypassPolicyLockoutSafetyCheck"] is True
    # CloudFormation never deletes an alias (deleting it is refused to all but break-glass).
    for alias in _template()["Resources"].values():
        if alias["Type"] == "AWS::KMS::Alias" and alias["Properties"]["TargetKeyId"] == {
            "Ref": key
        }:
            assert (alias["DeletionPolicy"], alias["UpdateReplacePolicy"]) == ("Retain", "Retain")
    parameter = _template()["Parameters"]["KeyAdminRoleArn"]
    assert parameter["Default"] == ""
    assert re.fullmatch(parameter["AllowedPattern"], BREAK_GLASS)
    assert not re.fullmatch(parameter["AllowedPattern"], "arn:aws:iam::123456789012:user/x")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_upstream_role_sessions_belong_to_the_proxy_alone() -> None:
    for stage in ("dev", "prod"):
        for function in FUNCTIONS:
            statements = _statements(stage, function)
            assert ("UpstreamRoleSessions" in statements) == (function == "api_handler")
        upstream = _statements(stage, "api_handler")["UpstreamRoleSessions"]
        assert upstream["Resource"] == "arn:aws:iam::*:role/gatehouse-upstream-*"
        assert upstream["Condition"] == {"Null": {"sts:SourceIdentity": "false"}}


def test_prod_policies_are_dev_policies_for_the_prod_stage() -> None:
    for function in FUNCTIONS:
        dev = (TEMPLATE.parents[1] / ".chalice" / f"policy-dev-{function}.json").read_text()
        prod = (TEMPLATE.parents[1] / ".chalice" / f"policy-prod-{function}.json").read_text()
        assert prod == dev.replace("gatehouse-dev-", "gatehouse-prod-").replace(
            "/ledger/dev/", "/ledger/prod/"
        ).replace(":secret:gatehouse/dev/", ":secret:gatehouse/prod/"), function


def test_the_config_gives_each_function_its_reviewed_policy() -> None:
    config = json.loads((TEMPLATE.parents[1] / ".chalice" / "config.json").read_text())
    assert config["autogen_policy"] is False
    assert set(config["stages"]) == {"dev", "prod"}
    for stage, settings in config["stages"].items():
        functions = settings["lambda_functions"]
        assert set(functions) == FUNCTIONS
        for function, options in functions.items():
            assert options["iam_policy_file"] == f"policy-{stage}-{function}.json"
            assert {"lambda_memory_size", "lambda_timeout"} <= set(options)
        # Not a stage-wide file: a function without its own would get it.
        assert "iam_policy_file" not in settings
        # The writer finishes before its reservation counts as abandoned.
        assert functions["audit_writer"]["lambda_timeout"] < STALE_RESERVATION_SECONDS


def test_a_batch_stays_hidden_while_lambda_may_still_hold_it() -> None:
    from gatehouse.deploy.settings import DEFAULT_BATCHING_WINDOW_SECONDS

    config = json.loads((TEMPLATE.parents[1] / ".chalice" / "config.json").read_text())
    visibility = _template()["Resources"]["AuditQueue"]["Properties"]["VisibilityTimeout"]
    for settings in config["stages"].values():
        timeout = settings["lambda_functions"]["audit_writer"]["lambda_timeout"]
        # Lambda holds the messages through the batching window and the run; AWS
        # advises six times the function's timeout.
        assert visibility >= DEFAULT_BATCHING_WINDOW_SECONDS + timeout
        assert visibility >= 6 * timeout
    assert visibility == 300
    # The local stack's queue (no batching window) still outlasts a stale reservation.
    assert STALE_RESERVATION_SECONDS < AUDIT_QUEUE_VISIBILITY_SECONDS


def test_a_non_empty_dead_letter_queue_raises_an_alarm() -> None:
    alarm = _template()["Resources"]["AuditDeadLetterAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
    )
    [dimension] = alarm["Dimensions"]
    assert dimension["Value"] == {"Fn::GetAtt": ["AuditDeadLetterQueue", "QueueName"]}
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)


# --- encryption: nothing a key administrator can make unreadable ---------------------------


def test_the_trail_buckets_use_s3_managed_keys_and_refuse_kms_objects() -> None:
    resources = _template()["Resources"]
    for bucket in ("AuditBucket", "AnchorBucket", "TrailBucket"):
        [rule] = resources[bucket]["Properties"]["BucketEncryption"][
            "ServerSideEncryptionConfiguration"
        ]
        assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}, bucket
    for bucket in ("AuditBucket", "AnchorBucket"):
        statements = resources[f"{bucket}Policy"]["Properties"]["PolicyDocument"]["Statement"]
        deny = next(s for s in statements if s["Sid"] == "DenyKmsEncryptedObjects")
        assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "s3:PutObject")
        assert deny["Condition"] == {
            "StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": "AES256"}
        }
    # The one other key encrypts the alert topic only, and is no bucket's.
    keys = {name for name, r in resources.items() if r["Type"] == "AWS::KMS::Key"}
    assert keys == {*SIGNING_KEYS, "AlertTopicKey"}
    assert resources["AlertTopic"]["Properties"]["KmsMasterKeyId"] == {"Ref": "AlertTopicKey"}
    assert "AlertTopicKey" not in json.dumps(
        {name: r for name, r in resources.items() if r["Type"] == "AWS::S3::Bucket"}
    )


def test_only_the_ledger_functions_add_objects_under_the_ledgers_prefixes() -> None:
    from chalicelib.ledger.layout import DIGESTS_PREFIX, EVENTS_PREFIX

    statements = _template()["Resources"]["AuditBucketPolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    for sid, prefix, function in (
        ("OnlyTheWriterAddsLedgerObjects", EVENTS_PREFIX, "audit_writer"),
        ("OnlyTheDigestFunctionAddsDigests", DIGESTS_PREFIX, "ledger_digest"),
    ):
        deny = next(statement for statement in statements if statement["Sid"] == sid)
        assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "s3:PutObject")
        assert deny["Resource"] == {"Fn::Sub": f"${{AuditBucket.Arn}}/{prefix}*"}
        exempt = deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]["Fn::Sub"]
        assert exempt.endswith(f":role/gatehouse-${{Stage}}-{function}")


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_no_function_may_use_a_data_key(stage: str) -> None:
    for function in FUNCTIONS:
        for statement in _statements(stage, function).values():
            actions = set(_as_list(statement["Action"]))
            assert not actions & {"kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt"}, function


def test_alarms_and_rules_may_use_the_topic_key_without_a_condition_that_drops_them() -> None:
    key = _template()["Resources"]["AlertTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
    services = next(s for s in key if "Service" in s["Principal"])
    assert set(services["Principal"]["Service"]) == {
        "cloudwatch.amazonaws.com",
        "events.amazonaws.com",
    }
    assert set(services["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert "Condition" not in services


# --- alarms ---------------------------------------------------------------------------------


class _MetricsRecorder:
    """Collects the metric names a handler records (the MetricsRecorder protocol)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def add_metric(self, name: str, unit: str, value: float) -> None:
        self.names.append(name)


def test_the_authorizer_alarm_watches_the_metric_the_code_emits_when_it_cannot_decide() -> None:
    import inspect

    from aws_lambda_powertools import Metrics

    from chalicelib import entrypoints, observability
    from chalicelib.reasons import Reason

    alarm = _template()["Resources"]["AuthorizerCannotDecideAlarm"]["Properties"]
    # The name every handler counts each decision it cannot reach under (and no other).
    counted: dict[Any, set[str]] = {}
    for reason in Reason:
        recorder = _MetricsRecorder()
        observability.count_decision(recorder, reason, allowed=False, break_glass=False)
        counted[reason] = set(recorder.names)
    assert {r for r, names in counted.items() if alarm["MetricName"] in names} == {
        Reason.POLICY_UNAVAILABLE,
        Reason.ISSUER_UNAVAILABLE,
        Reason.NO_IDENTITY_CONTEXT,
        Reason.SESSIONS_UNAVAILABLE,
    }
    assert alarm["MetricName"] == "DecisionFailed"
    # Namespace and dimensions as Powertools writes them for the service's metrics object.
    emitted = Metrics(namespace=observability.NAMESPACE, service=observability.SERVICE)
    emitted.add_metric(name="DecisionFailed", unit="Count", value=1)
    [directive] = emitted.serialize_metric_set()["_aws"]["CloudWatchMetrics"]
    emitted.clear_metrics()
    assert alarm["Namespace"] == directive["Namespace"] == "Gatehouse"
    [dimension_names] = directive["Dimensions"]
    assert [d["Name"] for d in alarm["Dimensions"]] == dimension_names == ["service"]
    assert alarm["Dimensions"][0]["Value"] == observability.SERVICE
    # Not Lambda's Errors metric, which counts every 401.
    assert "AWS/Lambda" not in json.dumps(alarm)
    # A decision that cannot be audited is a 503 before anything is counted: its log line.
    audit = _template()["Resources"]["AuthorizerCannotAuditMetric"]["Properties"]
    message = re.search(r'\$\.message = "([^"]+)"', audit["FilterPattern"])
    assert message is not None
    assert f'log.error("{message.group(1)}"' in inspect.getsource(entrypoints.authorize)
    assert audit["LogGroupName"] == {"Ref": "AuthorizerLogGroup"}


def _emf_directive(metric: str) -> dict[str, Any]:
    """The EMF directive Powertools writes for ``metric`` of the service's metrics object."""
    from aws_lambda_powertools import Metrics

    from chalicelib import observability

    emitted = Metrics(namespace=observability.NAMESPACE, service=observability.SERVICE)
    emitted.add_metric(name=metric, unit="Count", value=1)
    [directive] = emitted.serialize_metric_set()["_aws"]["CloudWatchMetrics"]
    emitted.clear_metrics()
    return dict(directive)


# Alarms on metrics the code emits: (metric, period, threshold, comparison).
CODE_METRIC_ALARMS = {
    "BreakGlassUsedAlarm": ("BreakGlassUsed", 60, 1, "GreaterThanOrEqualToThreshold"),
    "AccessLogLinesRejectedAlarm": ("AccessLogLinesRejected", 300, 0, "GreaterThanThreshold"),
    # chalicelib/detect/detector.py (a batch) and entrypoints.run_detection_checks.
    "DetectionFailedAlarm": ("DetectionFailed", 300, 0, "GreaterThanThreshold"),
}


@pytest.mark.parametrize("name", sorted(CODE_METRIC_ALARMS))
def test_code_metric_alarms_watch_what_the_code_emits_and_alert_the_topic(name: str) -> None:
    from chalicelib import observability

    alarm = _template()["Resources"][name]
    properties = alarm["Properties"]
    metric, period, threshold, comparison = CODE_METRIC_ALARMS[name]
    directive = _emf_directive(metric)

    assert alarm["Type"] == "AWS::CloudWatch::Alarm"
    assert properties["MetricName"] == metric
    assert properties["Namespace"] == directive["Namespace"] == "Gatehouse"
    [dimension_names] = directive["Dimensions"]
    assert [d["Name"] for d in properties["Dimensions"]] == dimension_names == ["service"]
    assert [d["Value"] for d in properties["Dimensions"]] == [observability.SERVICE]
    assert (properties["Statistic"], properties["Period"]) == ("Sum", period)
    assert (properties["Threshold"], properties["ComparisonOperator"]) == (threshold, comparison)
    assert (properties["EvaluationPeriods"], properties.get("DatapointsToAlarm", 1)) == (1, 1)
    assert properties["TreatMissingData"] == "notBreaching"
    assert properties["AlarmActions"] == [{"Ref": "AlertTopic"}]
    assert properties["AlarmName"] == {"Fn::Sub": f"gatehouse-${{Stage}}-{_kebab(metric)}"}


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


@pytest.mark.parametrize("allowed", [True, False], ids=["allowed", "not allowed"])
def test_every_break_glass_decision_and_no_other_reaches_the_break_glass_alarm(
    allowed: bool,
) -> None:
    from chalicelib import observability
    from chalicelib.reasons import Reason

    metric = _template()["Resources"]["BreakGlassUsedAlarm"]["Properties"]["MetricName"]
    for reason in Reason:
        for break_glass in (True, False):
            recorder = _MetricsRecorder()
            observability.count_decision(recorder, reason, allowed=allowed, break_glass=break_glass)
            # One use is one data point: the alarm's threshold of 1 in a minute.
            assert recorder.names.count(metric) == int(break_glass), (reason, break_glass)


# --- tampering with the controls --------------------------------------------------------------

TAMPERING = {
    "TamperingWithTheTrailRule": (
        "aws.cloudtrail",
        {"StopLogging", "DeleteTrail", "PutEventSelectors", "UpdateTrail"},
    ),
    "TamperingWithTheBucketsRule": (
        "aws.s3",
        {
            "PutBucketPolicy",
            "DeleteBucketPolicy",
            "PutBucketLifecycle",
            "PutBucketLifecycleConfiguration",
            "PutObjectLockConfiguration",
            "PutBucketVersioning",
        },
    ),
    "TamperingWithTheSigningKeyRule": (
        "aws.kms",
        {
            "PutKeyPolicy",
            "CreateGrant",
            "UpdateAlias",
            "DeleteAlias",
            "DisableKey",
            "ScheduleKeyDeletion",
        },
    ),
    "TamperingWithTheTableRule": (
        "aws.dynamodb",
        {"PutResourcePolicy", "DeleteResourcePolicy", "UpdateTable", "DeleteTable"},
    ),
}


def test_tampering_with_the_controls_reaches_the_alert_topic() -> None:
    resources = _template()["Resources"]
    topic_policy = resources["AlertTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    [events] = [s for s in topic_policy if s["Sid"] == "TheTamperingRulesPublish"]
    assert events["Action"] == "sns:Publish"
    source_arns = _resolve(events["Condition"]["ArnLike"]["aws:SourceArn"], {"Stage": "prod"})
    for name, (source, calls) in TAMPERING.items():
        rule = resources[name]["Properties"]
        pattern = rule["EventPattern"]
        assert pattern["source"] == [source]
        assert pattern["detail-type"] == ["AWS API Call via CloudTrail"]
        assert calls <= set(pattern["detail"]["eventName"]), name
        assert rule["Targets"] == [{"Id": "AlertTopic", "Arn": {"Ref": "AlertTopic"}}]
        # The topic lets exactly these rules publish.
        arn = _resolve({"Fn::Sub": f"arn:aws:events:eu-west-1:{ACCOUNT}:rule/"}, {})
        assert fnmatch.fnmatchcase(arn + _resolve(rule["Name"], {"Stage": "prod"}), source_arns)
    detail = {name: resources[name]["Properties"]["EventPattern"]["detail"] for name in TAMPERING}
    # Each rule is about Gatehouse's own resources.
    assert detail["TamperingWithTheBucketsRule"]["requestParameters"]["bucketName"] == [
        {"Ref": "AuditBucket"},
        {"Ref": "AnchorBucket"},
        {"Ref": "TrailBucket"},
    ]
    assert detail["TamperingWithTheSigningKeyRule"]["resources"] == {
        "ARN": [{"Fn::GetAtt": ["SigningKey", "Arn"]}, {"Fn::GetAtt": ["AssertionKey", "Arn"]}]
    }
    assert {"requestParameters": {"tableName": [{"Ref": "StateTable"}]}} in detail[
        "TamperingWithTheTableRule"
    ]["$or"]
    assert _resolve(
        detail["TamperingWithTheTrailRule"]["requestParameters"]["name"], {"Stage": "prod"}
    ) == ["gatehouse-prod", f"arn:aws:cloudtrail:eu-west-1:{ACCOUNT}:trail/gatehouse-prod"]


def test_detection_alerts_reach_the_topic_through_their_rule_alone() -> None:
    from chalicelib.detect.alerts import DETAIL_TYPE, EVENT_SOURCE

    resources = _template()["Resources"]
    topic_policy = resources["AlertTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    [publish] = [s for s in topic_policy if s["Sid"] == "TheDetectionRulePublishes"]
    rule = resources["DetectionAlertsRule"]["Properties"]
    arn = f"arn:aws:events:eu-west-1:{ACCOUNT}:rule/" + _resolve(rule["Name"], {"Stage": "prod"})
    assert _resolve(publish["Condition"]["ArnEquals"]["aws:SourceArn"], {"Stage": "prod"}) == arn
    assert rule["EventPattern"]["source"] == [EVENT_SOURCE]
    assert rule["EventPattern"]["detail-type"] == [DETAIL_TYPE]
    # The topic receives the alert's JSON itself, not EventBridge's envelope.
    assert rule["Targets"] == [
        {"Id": "AlertTopic", "Arn": {"Ref": "AlertTopic"}, "InputPath": "$.detail"}
    ]
    # The functions never hold the topic key: they put events, the rule publishes.
    for function in DETECT_WRITERS:
        actions = {a for s in _statements("prod", function).values() for a in _as_list(s["Action"])}
        assert "events:PutEvents" in actions, function
        assert "sns:Publish" not in actions, function


def test_prod_refuses_an_audit_retention_under_a_year() -> None:
    from gatehouse.deploy.errors import DeployError
    from gatehouse.deploy.settings import MIN_PROD_RETENTION_DAYS, StageSettings

    rule = _template()["Rules"]["ProdKeepsTheAuditTrailAtLeastAYear"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}
    [assertion] = rule["Assertions"]
    [[refused, value]] = [assertion["Assert"]["Fn::Not"][0]["Fn::Contains"]]
    assert value == {"Ref": "AuditRetentionDays"}
    assert refused == [str(days) for days in range(1, MIN_PROD_RETENTION_DAYS)]
    # The deploy refuses before CloudFormation does.
    with pytest.raises(DeployError, match="at least 365 days"):
        StageSettings("prod", TEMPLATE.parents[1], retention_days=364)
    StageSettings("prod", TEMPLATE.parents[1], retention_days=365)
    StageSettings("dev", TEMPLATE.parents[1], retention_days=1)


# --- the queues -----------------------------------------------------------------------------


def _queue_decision(principal: str, action: str, queue: str, operator: str = "") -> str:
    policy = _resolve(
        _template()["Resources"]["AuditQueuePolicy"]["Properties"]["PolicyDocument"],
        {"Stage": "prod", "OperatorRoleArn": operator},
    )
    for statement in policy["Statement"]:
        if statement["Sid"] == "DenyInsecureTransport":
            continue
        if action not in _as_list(statement["Action"]) or queue not in _as_list(
            statement["Resource"]
        ):
            continue
        if _condition_holds(statement.get("Condition", {}), principal):
            return "deny"
    return "iam decides"


def test_the_queues_are_used_only_by_who_needs_them() -> None:
    queue, dlq = "<AuditQueue.Arn>", "<AuditDeadLetterQueue.Arn>"
    role = {function: f"{ROLE}gatehouse-prod-{function}" for function in FUNCTIONS}
    admin = f"{ROLE}Admin"
    emitters = {"api_handler", "gatehouse_authorizer", "access_log_ingest", "grant_sweeper"}
    emitters |= DETECT_WRITERS  # alerts are audit events too
    for function in FUNCTIONS:
        sends = "AuditEnqueue" in _statements("prod", function)
        assert sends == (function in emitters), function
        expected = "iam decides" if function in emitters else "deny"
        assert _queue_decision(role[function], "sqs:SendMessage", queue) == expected, function
    assert _queue_decision(admin, "sqs:SendMessage", queue) == "deny"
    assert _queue_decision(OPERATOR, "sqs:SendMessage", queue, OPERATOR) == "iam decides"
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"):
        assert _queue_decision(role["audit_writer"], action, queue) == "iam decides"
        for someone in (role["api_handler"], admin, OPERATOR):
            assert _queue_decision(someone, action, queue, OPERATOR) == "deny", (someone, action)
        # The dead letters: the operator role only (nobody without one).
        assert _queue_decision(OPERATOR, action, dlq, OPERATOR) == "iam decides"
        assert _queue_decision(OPERATOR, action, dlq) == "deny"
        for someone in (role["audit_writer"], admin):
            assert _queue_decision(someone, action, dlq, OPERATOR) == "deny"
    assert _queue_decision(OPERATOR, "sqs:StartMessageMoveTask", dlq, OPERATOR) == "iam decides"
    for someone in (*role.values(), admin, OPERATOR):
        for target in (queue, dlq):
            assert _queue_decision(someone, "sqs:PurgeQueue", target, OPERATOR) == "deny"
    transport = _template()["Resources"]["AuditQueuePolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ][0]
    assert (transport["Sid"], transport["Effect"], transport["Action"]) == (
        "DenyInsecureTransport",
        "Deny",
        "sqs:*",
    )
    assert transport["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


# --- what destroy keeps -----------------------------------------------------------------------


def test_kept_buckets_keep_their_policies() -> None:
    resources = _template()["Resources"]
    for bucket in ("AuditBucket", "AnchorBucket", "TrailBucket"):
        assert resources[bucket]["DeletionPolicy"] == "Retain"
        policy = resources[f"{bucket}Policy"]
        assert (policy["DeletionPolicy"], policy["UpdateReplacePolicy"]) == ("Retain", "Retain")


# The response types API Gateway accepts (developer guide, "Gateway response types").
GATEWAY_RESPONSE_TYPES = {
    "ACCESS_DENIED", "API_CONFIGURATION_ERROR", "AUTHORIZER_CONFIGURATION_ERROR",
    "AUTHORIZER_FAILURE", "BAD_REQUEST_PARAMETERS", "BAD_REQUEST_BODY", "DEFAULT_4XX",
    "DEFAULT_5XX", "EXPIRED_TOKEN", "INTEGRATION_FAILURE", "INTEGRATION_TIMEOUT",
    "INVALID_API_KEY", "INVALID_SIGNATURE", "MISSING_AUTHENTICATION_TOKEN", "QUOTA_EXCEEDED",
    "REQUEST_TOO_LARGE", "RESOURCE_NOT_FOUND", "THROTTLED", "UNAUTHORIZED",
    "UNSUPPORTED_MEDIA_TYPE", "WAF_FILTERED",
}  # fmt: skip


def test_every_customised_gateway_response_is_a_type_api_gateway_knows() -> None:
    from gatehouse.dev.gateway import DEFAULT_GATEWAY_RESPONSES

    declared = set(json.loads(GATEWAY_RESPONSES.read_text()))
    assert declared <= GATEWAY_RESPONSE_TYPES, declared - GATEWAY_RESPONSE_TYPES
    assert set(DEFAULT_GATEWAY_RESPONSES) <= GATEWAY_RESPONSE_TYPES


def test_the_local_gateway_writes_the_stage_access_log_as_api_gateway_does() -> None:
    import app
    from chalicelib.audit.access_logs import LOG_FIELDS
    from chalicelib.audit.gateway_events import gateway_events
    from gatehouse.deploy.templates import access_log_format
    from gatehouse.dev.gateway import (
        ACCESS_LOG_KEYS,
        ApiGatewayEmulator,
        IncomingRequest,
        load_api_definition,
    )
    from tests.unit.test_gateway_access_logs import subscription_event

    assert set(ACCESS_LOG_KEYS) == set(LOG_FIELDS)
    definition = load_api_definition(app, GATEWAY_RESPONSES)
    with pytest.raises(ValueError, match="access_log_format"):
        ApiGatewayEmulator(definition, app.app, access_log=print)
    lines: list[str] = []
    emulator = ApiGatewayEmulator(
        definition,
        app.app,
        access_log=lines.append,
        access_log_format=access_log_format(TEMPLATE.parents[1]),
    )
    agent = 'curl/8 ", "status": "200'
    # The JWKS route takes GET only: API Gateway answers a PUT by itself.
    request = IncomingRequest(
        "PUT",
        "/.well-known/gatehouse/jwks.json",
        "",
        [("Host", "localhost"), ("User-Agent", agent)],
        b"",
        "203.0.113.9",
    )

    answer = emulator.handle(request)

    [line] = lines
    assert f'"userAgent":"{agent}"}}' in line  # unescaped, as API Gateway writes it
    (event,), rejected = gateway_events(subscription_event(lines), stage="dev")
    assert rejected == []
    assert event["request"]["id"] == dict(answer.headers)["x-amzn-RequestId"]
    assert event["outcome"]["status"] == answer.status
    assert event["source"] == {"ip": "203.0.113.9", "user_agent": agent}
    assert event["anomalies"] == ["access_log_not_json"]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_only_the_proxy_may_write_assertion_keys_and_only_the_sweeper_their_expiry(
    stage: str,
) -> None:
    writers: dict[str, set[str]] = {"SIGNING-KEY": set(), "SIGNING-KEY-EXPIRED": set()}
    for function in FUNCTIONS:
        for statement in _statements(stage, function).values():
            leading = statement.get("Condition", {}).get("ForAllValues:StringEquals", {})
            for partition in set(leading.get("dynamodb:LeadingKeys", [])) & set(writers):
                if _writes(statement):
                    writers[partition].add(function)
                    # No UpdateItem: it could rewrite a served key's attributes.
                    assert set(statement["Action"]) == {"dynamodb:PutItem"} | (
                        {"dynamodb:Query"} if "dynamodb:Query" in statement["Action"] else set()
                    ), (function, statement["Sid"])

    assert writers == {"SIGNING-KEY": {"api_handler"}, "SIGNING-KEY-EXPIRED": {"grant_sweeper"}}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_digest_reads_the_objects_whose_consistency_it_proves(stage: str) -> None:
    from chalicelib.ledger.layout import EVENTS_PREFIX

    read = _statements(stage, "ledger_digest")["LedgerObjectsRead"]
    assert set(read["Action"]) == {"s3:GetObject", "s3:GetObjectVersion"}
    assert read["Resource"].endswith(f"/{EVENTS_PREFIX}*")


def test_only_the_named_witnesses_may_publish_and_they_read_only_digests() -> None:
    from chalicelib.ledger.layout import DIGESTS_PREFIX, WITNESS_PREFIX

    resources = _template()["Resources"]
    statements = resources["AuditBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    deny = next(
        s for s in statements if isinstance(s, dict) and s.get("Sid") == "OnlyWitnessesPublish"
    )
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == "*"
    assert deny["Resource"] == {"Fn::Sub": f"${{AuditBucket.Arn}}/{WITNESS_PREFIX}*"}
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": {"Ref": "WitnessRoleArns"}}}
    allowed = {
        s["Fn::If"][1]["Sid"]: s["Fn::If"][1]
        for s in statements
        if isinstance(s, dict) and "Fn::If" in s and s["Fn::If"][0] == "HasWitnesses"
    }
    assert allowed["WitnessesReadDigests"]["Action"] == "s3:GetObject"
    assert allowed["WitnessesReadDigests"]["Resource"]["Fn::Sub"].endswith(f"/{DIGESTS_PREFIX}*")
    assert allowed["WitnessesListDigests"]["Condition"] == {
        "StringLike": {"s3:prefix": f"{DIGESTS_PREFIX}*"}
    }
    assert allowed["WitnessesPublish"]["Resource"]["Fn::Sub"].endswith(f"/{WITNESS_PREFIX}*")
