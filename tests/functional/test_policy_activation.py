"""Policy administration against moto: versions, activations, archive copies, races, events.

Every assertion reads back what a real deployment would hold: DynamoDB
items, objects in the Object Lock bucket, and audit events on the queue.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from chalicelib.policy import PolicyConflict, PolicyError, PolicyInvalid, PolicyStore
from chalicelib.policy.admin import PolicyChangeIncomplete
from chalicelib.policy.archive import activation_key, version_key
from gatehouse.cli import main
from tests.functional.conftest import policy_document, queued_events
from tests.functional.test_policy_admin import OPERATOR, UPSTREAM, client, make_admin

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources


def second_document() -> dict[str, Any]:
    document = policy_document(UPSTREAM)
    document["rules"].append(
        {
            "id": "auditors",
            "effect": "allow",
            "routes": ["demo"],
            "subjects": {"groups": ["auditors"]},
            "actions": ["GET"],
            "paths": ["/reports/**"],
        }
    )
    document["rules"][0]["actions"] = ["GET"]
    return document


def archived(aws: Resources, key: str) -> dict[str, Any]:
    body = client("s3").get_object(Bucket=aws.audit_bucket, Key=key)["Body"].read()
    document: dict[str, Any] = json.loads(body)
    return document


def policy_changes(aws: Resources) -> list[dict[str, Any]]:
    return [e for e in queued_events(aws) if e["event_type"] == "policy_change"]


def test_apply_stores_archives_activates_and_audits(aws: Resources) -> None:
    admin = make_admin(aws)

    first = admin.apply(policy_document(UPSTREAM))
    second = admin.apply(second_document())

    assert (first.record.version, second.record.version) == (1, 2)
    assert second.activation is not None
    assert second.activation.activation == 2
    store = PolicyStore(client("dynamodb"), aws.state_table)
    active = store.load_active()
    assert active is not None
    assert (active.version, active.checksum) == (2, second.record.checksum)
    # The archive holds both documents and both activation records.
    for record in (first.record, second.record):
        copy = archived(aws, version_key(record.version))
        assert copy["checksum"] == record.checksum
        assert copy["document"] == record.document
    assert archived(aws, activation_key(2))["previous_version"] == 1
    # The audit trail names the operator and what changed.
    first_event, second_event = policy_changes(aws)
    assert second_event["aws"] == {"caller_arn": OPERATOR}
    change = second_event["policy_change"]
    assert (change["from_version"], change["to_version"], change["activation"]) == (1, 2, 2)
    assert change["to_checksum"] == second.record.checksum
    assert change["summary"]["rules"]["added"] == ["auditors"]
    assert change["summary"]["rules"]["changed"] == {"eng-read": ["actions"]}
    assert change["archive"] == {"version": version_key(2), "activation": activation_key(2)}
    assert first_event["policy_change"]["from_version"] is None


def test_the_same_content_is_one_version(aws: Resources) -> None:
    admin = make_admin(aws)
    admin.apply(policy_document(UPSTREAM))
    admin.apply(second_document())
    queued_events(aws)

    again = admin.apply(second_document())  # identical to the active one
    back = admin.apply(policy_document(UPSTREAM))  # identical to version 1

    assert again.activation is None
    assert (back.record.version, back.created_version) == (1, False)
    assert back.activation is not None
    assert back.activation.activation == 3
    history = admin.history()
    assert [(a.activation, a.version) for a in history] == [(3, 1), (2, 2), (1, 1)]
    assert [e["policy_change"]["to_version"] for e in policy_changes(aws)] == [1]


def test_an_invalid_document_writes_nothing(aws: Resources) -> None:
    admin = make_admin(aws)
    admin.apply(policy_document(UPSTREAM))
    queued_events(aws)
    bad = second_document()
    bad["rules"][-1]["when"] = {"hours": {"tz": "Mars/Olympus"}}

    with pytest.raises(PolicyInvalid) as caught:
        admin.apply(bad, source_name="bad.yaml")

    assert "bad.yaml: rules[auditors].when.hours.tz" in str(caught.value)
    store = PolicyStore(client("dynamodb"), aws.state_table)
    assert store.load_version(2) is None
    assert [a.activation for a in store.activations()] == [1]
    listing = client("s3").list_objects_v2(Bucket=aws.audit_bucket, Prefix="policy/v1/versions/")
    assert [o["Key"] for o in listing["Contents"]] == [version_key(1)]
    assert queued_events(aws) == []


def test_rollback(aws: Resources) -> None:
    admin = make_admin(aws)
    admin.apply(policy_document(UPSTREAM))
    admin.apply(second_document())

    result = admin.rollback(1)

    assert result.activation is not None
    assert (result.activation.action, result.activation.previous_version) == ("rollback", 2)
    with pytest.raises(PolicyError, match="already active"):
        admin.rollback(1)
    with pytest.raises(PolicyError, match="does not exist"):
        admin.rollback(9)
    assert policy_changes(aws)[-1]["policy_change"]["action"] == "rollback"


def test_rollback_refuses_a_version_this_release_cannot_enforce(aws: Resources) -> None:
    admin = make_admin(aws)
    admin.apply(policy_document(UPSTREAM))
    admin.apply(second_document())
    # Version 1 as an older release stored it: "deny when MFA", refused today.
    dynamodb = client("dynamodb")
    key = {"pk": {"S": "POLICY"}, "sk": {"S": "VERSION#0000000001"}}
    item = dynamodb.get_item(TableName=aws.state_table, Key=key)["Item"]
    document = json.loads(item["document"]["S"])
    document["rules"].append(
        {"id": "odd", "effect": "deny", "routes": ["demo"], "actions": ["GET"],
         "when": {"mfa": True}}
    )  # fmt: skip
    item["document"] = {"S": json.dumps(document)}
    dynamodb.put_item(TableName=aws.state_table, Item=item)
    policy_changes(aws)  # drain the queue

    with pytest.raises(PolicyError, match=r"(?s)version 1 cannot be rolled back to: .*deny rule"):
        admin.rollback(1)

    active = PolicyStore(dynamodb, aws.state_table).load_active()
    assert active is not None
    assert active.version == 2
    assert policy_changes(aws) == []


# The race is interleaved by hand, not with threads: moto's in-process
# transact_write_items is not thread-safe (it deep-copies tables while other
# threads write), so a threaded test would measure moto, not the condition.
def test_two_operators_racing_cannot_both_win(aws: Resources) -> None:
    first_operator = PolicyStore(client("dynamodb"), aws.state_table)
    second_operator = PolicyStore(client("dynamodb"), aws.state_table)
    first_operator.publish(policy_document(UPSTREAM), actor="seed")
    seen_by_first = first_operator.load_active()
    seen_by_second = second_operator.load_active()
    mine, _ = first_operator.store_version(second_document(), "one")
    theirs_document = second_document()
    theirs_document["rules"].pop()
    theirs, _ = second_operator.store_version(theirs_document, "two")

    first_operator.activate(mine, actor="one", action="apply", expected=seen_by_first)
    with pytest.raises(PolicyConflict):
        second_operator.activate(theirs, actor="two", action="apply", expected=seen_by_second)

    active = first_operator.load_active()
    assert active is not None
    assert active.version == mine.version
    assert [(a.activation, a.activated_by) for a in first_operator.activations()] == [
        (2, "one"),
        (1, "seed"),
    ]


def test_a_stale_reader_cannot_win_after_a_b_a(aws: Resources) -> None:
    store = PolicyStore(client("dynamodb"), aws.state_table)
    store.publish(policy_document(UPSTREAM), actor="seed")
    stale = store.load_active()
    v2 = store.publish(second_document(), actor="x")
    store.activate(
        store.load_version(1) or v2, actor="x", action="rollback", expected=store.load_active()
    )
    # Version 1 is active again, as when `stale` was read; the counter moved on.
    with pytest.raises(PolicyConflict):
        store.activate(v2, actor="late", action="apply", expected=stale)


def test_an_unaudited_activation_is_reported_and_the_archive_repaired(aws: Resources) -> None:
    admin = make_admin(aws)
    admin.apply(policy_document(UPSTREAM))
    client("sqs").delete_queue(QueueUrl=aws.audit_queue_url)

    with pytest.raises(PolicyChangeIncomplete, match=r"activation 2 .* is in force"):
        admin.apply(second_document())

    store = PolicyStore(client("dynamodb"), aws.state_table)
    active = store.load_active()
    assert active is not None
    assert active.version == 2
    # An activation made without the archive step (e.g. a crash) is re-archived later.
    store.activate(
        store.load_version(1) or active, actor="crash", action="rollback", expected=active
    )
    assert admin.repair_archive() == [3]
    assert archived(aws, activation_key(3))["activated_by"] == "crash"


# --- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def cli_env(aws: Resources, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> list[str]:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("GATEHOUSE_AUDIT_BUCKET", aws.audit_bucket)
    monkeypatch.setenv("GATEHOUSE_AUDIT_QUEUE_URL", aws.audit_queue_url)
    monkeypatch.setenv("GATEHOUSE_STATE_TABLE", aws.state_table)
    monkeypatch.setenv("GATEHOUSE_STAGE", "test")
    monkeypatch.setenv(
        "GATEHOUSE_TRUSTED_ISSUERS",
        json.dumps([{"issuer": "https://idp.example.com", "audiences": ["gatehouse"]}]),
    )
    return ["--state-dir", str(tmp_path / "no-local-stack")]


def write(tmp_path: Any, name: str, document: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def test_cli_apply_diff_history_rollback_and_replay(
    cli_env: list[str], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = write(tmp_path, "v1.json", policy_document(UPSTREAM))
    v2 = write(tmp_path, "v2.json", second_document())
    assert main([*cli_env, "policy", "apply", v1, "--reason", "first policy"]) == 0
    capsys.readouterr()

    assert main([*cli_env, "policy", "diff", v2]) == 1
    assert capsys.readouterr().out.splitlines()[2:] == [
        "+ rule auditors",
        "    effect: allow",
        "    routes: [demo]",
        "    subjects.groups: [auditors]",
        "    actions: [GET]",
        "    paths: [/reports/**]",
        "~ rule eng-read",
        "    actions: [GET, HEAD, OPTIONS] -> [GET]",
    ]
    assert main([*cli_env, "policy", "apply", v2, "--reason", "auditors read reports"]) == 0
    assert "version 2 active as activation 2" in capsys.readouterr().out
    assert main([*cli_env, "policy", "diff", v2]) == 0
    assert capsys.readouterr().out.strip() == f"no changes: {v2} is the active version 2"

    explain = [
        *cli_env, "policy", "explain", "--sub", "frank", "--groups", "auditors",
        "--method", "GET", "--host", "h", "--path", "/reports/q3",
    ]  # fmt: skip
    assert main([*explain, "--version", "1"]) == 1
    assert "no_matching_rule" in capsys.readouterr().out
    assert main([*explain, "--version", "2", "--json"]) == 0
    replayed = json.loads(capsys.readouterr().out)
    assert (replayed["matched_rules"], replayed["policy_version"]) == (["auditors"], 2)
    assert main([*explain[:-1], "/reports/%2e%2e/x"]) == 1
    assert "ambiguous_path" in capsys.readouterr().out

    assert main([*cli_env, "policy", "rollback", "1", "--reason", "reports leak"]) == 0
    capsys.readouterr()
    assert main([*cli_env, "policy", "history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["rollback", "apply", "apply"]
    assert lines[0].endswith('reason: "reports leak"')
    assert main([*cli_env, "policy", "rollback", "1", "--reason", "again"]) == 2
    assert "already active" in capsys.readouterr().err


def test_cli_refuses_an_invalid_file_naming_file_rule_and_field(
    cli_env: list[str], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    document = second_document()
    document["rules"][-1]["when"] = {"mfa": "yes"}
    bad = write(tmp_path, "bad.json", document)

    assert main([*cli_env, "policy", "apply", bad, "--reason", "auditors"]) == 2

    assert f"{bad}: rules[auditors].when.mfa: must be true or false" in capsys.readouterr().err
    assert PolicyStore(client("dynamodb"), aws_table(cli_env)).load_active() is None


def aws_table(cli_env: list[str]) -> str:
    import os

    return os.environ["GATEHOUSE_STATE_TABLE"]
