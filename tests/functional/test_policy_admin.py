"""Policy administration when a step fails, and decision replay through the CLI.

``test_policy_activation.py`` covers the happy paths and the races; these
tests break one dependency at a time (the archive, the audit queue,
DynamoDB's transaction) and check what stays true: nothing is activated
without its archived document, no activation goes unaudited because the
archive failed, and a lost race is told apart from any other failure.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber

from chalicelib.audit import AuditEmitter, AuditError, SqsAuditSink
from chalicelib.policy import (
    PolicyArchiveError,
    PolicyConflict,
    PolicyRecord,
    PolicyStore,
    PolicyUnavailable,
)
from chalicelib.policy.admin import PolicyAdmin, PolicyChangeIncomplete
from chalicelib.policy.archive import PolicyArchive, activation_key, version_key
from gatehouse.cli import main
from tests.functional.conftest import policy_document, queued_events

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources

OPERATOR = "arn:aws:sts::123456789012:assumed-role/platform/jane"
UPSTREAM = "http://127.0.0.1:9"
ISSUER = "https://idp.example.com"


def client(service: str) -> Any:
    return boto3.client(service, region_name="us-east-1")


def make_admin(aws: Resources, s3: Any = None) -> PolicyAdmin:
    return PolicyAdmin(
        PolicyStore(client("dynamodb"), aws.state_table),
        PolicyArchive(s3 or client("s3"), aws.audit_bucket),
        AuditEmitter(SqsAuditSink(client("sqs"), aws.audit_queue_url)),
        stage="test",
        operator=OPERATOR,
    )


def s3_refusing(prefix: str) -> Any:
    """An S3 client whose PUTs under ``prefix`` never reach S3 (as when it is unreachable)."""
    s3 = client("s3")

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if params["Key"].startswith(prefix):
            raise EndpointConnectionError(endpoint_url="https://s3.us-east-1.amazonaws.com")

    s3.meta.events.register("provide-client-params.s3.PutObject", refuse)
    return s3


def keys(aws: Resources, prefix: str) -> list[str]:
    listing = client("s3").list_objects_v2(Bucket=aws.audit_bucket, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def archived(aws: Resources, key: str) -> dict[str, Any]:
    body = client("s3").get_object(Bucket=aws.audit_bucket, Key=key)["Body"].read()
    copy_: dict[str, Any] = json.loads(body)
    return copy_


def with_auditors(document: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(document)
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
    return document


def policy_changes(aws: Resources) -> list[dict[str, Any]]:
    return [e["policy_change"] for e in queued_events(aws) if e["event_type"] == "policy_change"]


# --- archive and audit failures ------------------------------------------------------------


def test_a_version_that_cannot_be_archived_is_not_activated(aws: Resources) -> None:
    make_admin(aws).apply(policy_document(UPSTREAM))
    queued_events(aws)

    with pytest.raises(PolicyArchiveError, match="cannot archive policy/v1/versions/0000000002"):
        make_admin(aws, s3_refusing("policy/v1/versions/")).apply(
            with_auditors(policy_document(UPSTREAM))
        )

    store = PolicyStore(client("dynamodb"), aws.state_table)
    active = store.load_active()
    assert active is not None
    assert active.version == 1
    assert [a.activation for a in store.activations()] == [1]
    assert policy_changes(aws) == []


def test_a_failed_activation_copy_does_not_cost_the_audit_event(aws: Resources) -> None:
    make_admin(aws).apply(policy_document(UPSTREAM))
    queued_events(aws)
    broken = make_admin(aws, s3_refusing("policy/v1/activations/"))

    with pytest.raises(PolicyChangeIncomplete) as caught:
        broken.apply(with_auditors(policy_document(UPSTREAM)))

    assert caught.value.activation.activation == 2
    message = str(caught.value)
    assert message.startswith("activation 2 (version 2) is in force, but its archive copy")
    assert "audit event" not in message  # the event did go out
    (change,) = policy_changes(aws)
    assert (change["activation"], change["to_version"]) == (2, 2)
    assert activation_key(2) not in keys(aws, "policy/v1/activations/")

    # The next command with a working archive writes the missing copy.
    history = make_admin(aws).history()

    assert [a.activation for a in history] == [2, 1]
    assert archived(aws, activation_key(2))["activated_by"] == OPERATOR


def test_both_failures_are_reported_together(aws: Resources) -> None:
    make_admin(aws).apply(policy_document(UPSTREAM))
    client("sqs").delete_queue(QueueUrl=aws.audit_queue_url)

    with pytest.raises(PolicyChangeIncomplete) as caught:
        make_admin(aws, s3_refusing("policy/v1/activations/")).apply(
            with_auditors(policy_document(UPSTREAM))
        )

    message = str(caught.value)
    assert "archive copy was not written" in message
    assert "policy_change audit event was not enqueued" in message
    assert "kept with activation 2 in the state table" in message


def test_an_event_the_queue_could_not_take_is_enqueued_by_the_next_command(
    aws: Resources,
) -> None:
    make_admin(aws).apply(policy_document(UPSTREAM))
    policy_changes(aws)
    attributes = client("sqs").get_queue_attributes(
        QueueUrl=aws.audit_queue_url, AttributeNames=["VisibilityTimeout"]
    )["Attributes"]
    client("sqs").delete_queue(QueueUrl=aws.audit_queue_url)
    with pytest.raises(PolicyChangeIncomplete, match="not enqueued yet"):
        make_admin(aws).apply(with_auditors(policy_document(UPSTREAM)))
    store = PolicyStore(client("dynamodb"), aws.state_table)
    [(number, kept)] = store.pending_events()
    assert (number, kept["policy_change"]["to_version"]) == (2, 2)

    # While the queue is down, nothing more changes: the next change would be unaudited too.
    with pytest.raises(AuditError):
        make_admin(aws).rollback(1)
    assert (store.load_active() or pytest.fail("no active")).version == 2

    name = aws.audit_queue_url.rsplit("/", 1)[1]
    client("sqs").create_queue(QueueName=name, Attributes=attributes)
    make_admin(aws).history()

    assert queued_events(aws) == [kept]  # the same event, id and all, enqueued once
    assert store.pending_events() == []
    make_admin(aws).history()
    assert policy_changes(aws) == []


def test_repair_archives_the_version_of_an_activation_made_without_the_archive(
    aws: Resources,
) -> None:
    # `gatehouse dev` seeds its first policy with PolicyStore.publish (no archive).
    store = PolicyStore(client("dynamodb"), aws.state_table)
    seeded = store.publish(policy_document(UPSTREAM), actor="gatehouse dev (initial policy)")
    assert keys(aws, "policy/") == []

    assert make_admin(aws).repair_archive() == [1]

    assert keys(aws, "policy/") == [activation_key(1), version_key(1)]
    version = archived(aws, version_key(1))
    assert (version["checksum"], version["document"]) == (seeded.checksum, seeded.document)
    assert make_admin(aws).repair_archive() == []  # nothing left to do, nothing rewritten


def test_an_archived_copy_that_differs_from_the_record_stops_the_change(aws: Resources) -> None:
    make_admin(aws).apply(policy_document(UPSTREAM))
    queued_events(aws)
    # Something else already wrote version 2's key (a second stage sharing the bucket, say).
    client("s3").put_object(
        Bucket=aws.audit_bucket,
        Key=version_key(2),
        Body=b'{"version": 2, "checksum": "sha256:other"}',
        ChecksumAlgorithm="SHA256",
    )

    with pytest.raises(PolicyArchiveError, match="differs from the record"):
        make_admin(aws).apply(with_auditors(policy_document(UPSTREAM)))

    active = PolicyStore(client("dynamodb"), aws.state_table).load_active()
    assert active is not None
    assert active.version == 1
    assert archived(aws, version_key(2))["checksum"] == "sha256:other"  # never overwritten
    assert policy_changes(aws) == []


def test_rewriting_an_identical_copy_is_a_no_op(aws: Resources) -> None:
    result = make_admin(aws).apply(policy_document(UPSTREAM))
    archive = PolicyArchive(client("s3"), aws.audit_bucket)

    assert archive.put_version(result.record) == version_key(1)

    versions = client("s3").list_object_versions(Bucket=aws.audit_bucket, Prefix=version_key(1))
    assert len(versions["Versions"]) == 1


# --- what a refused transaction means --------------------------------------------------------


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        (["None", "ConditionalCheckFailed"], PolicyConflict),
        (["TransactionConflict", "None"], PolicyConflict),
        (["ThrottlingError", "None"], PolicyUnavailable),
        (["ValidationError", "ConditionalCheckFailed"], PolicyUnavailable),
    ],
    ids=["condition failed", "concurrent transaction", "throttled", "invalid item"],
)
def test_only_a_lost_race_is_a_conflict(reasons: list[str], expected: type[Exception]) -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    record = PolicyRecord(2, "sha256:" + "0" * 64, {"version": 1}, "t", "me")
    with Stubber(dynamodb) as stub:
        stub.add_client_error(
            "transact_write_items",
            service_error_code="TransactionCanceledException",
            modeled_fields={"CancellationReasons": [{"Code": code} for code in reasons]},
        )

        with pytest.raises(expected) as caught:
            PolicyStore(dynamodb, "policy").activate(
                record, actor="me", action="apply", expected=None
            )

    assert type(caught.value) is expected


# --- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def cli(aws: Resources, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """``gatehouse --state-dir <empty>``: no local stack, the stage from the environment."""
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("GATEHOUSE_AUDIT_BUCKET", aws.audit_bucket)
    monkeypatch.setenv("GATEHOUSE_AUDIT_QUEUE_URL", aws.audit_queue_url)
    monkeypatch.setenv("GATEHOUSE_STATE_TABLE", aws.state_table)
    monkeypatch.setenv("GATEHOUSE_STAGE", "test")
    return ["--state-dir", str(tmp_path / "no-local-stack")]


def write(tmp_path: Path, name: str, document: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def office_hours(document: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(document)
    document["rules"][0]["when"] = {
        "hours": {"tz": "Europe/Berlin", "days": ["mon", "tue", "wed", "thu", "fri"]}
        | {"from": "08:00", "to": "18:00"}
    }
    return document


FRIDAY_NOON_BERLIN = "2026-11-27T11:00:00Z"
SATURDAY_NOON_BERLIN = "2026-11-28T11:00:00Z"


def test_replay_decides_with_the_version_asked_for_and_at_the_time_asked_for(
    cli: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = write(tmp_path, "v1.json", policy_document(UPSTREAM))
    v2 = write(tmp_path, "v2.json", office_hours(policy_document(UPSTREAM)))
    assert main([*cli, "policy", "apply", v1, "--reason", "first"]) == 0
    assert main([*cli, "policy", "apply", v2, "--reason", "office hours"]) == 0
    capsys.readouterr()
    explain = [
        *cli, "policy", "explain", "--issuer", ISSUER, "--sub", "alice",
        "--groups", "engineering", "--method", "get", "--host", "app.example.com",
        "--path", "/api/projects/42", "--json",
    ]  # fmt: skip

    def decide(*extra: str) -> tuple[int, dict[str, Any]]:
        status = main([*explain, *extra])
        return status, json.loads(capsys.readouterr().out)

    # Both versions were activated after these times: --version says which to replay.
    status, active = decide("--at", SATURDAY_NOON_BERLIN, "--version", "2")
    assert status == 1
    assert (active["policy_version"], active["reasons"]) == (2, ["outside_hours"])
    assert active["matched_rules"] == ["eng-read"]
    status, weekday = decide("--at", FRIDAY_NOON_BERLIN, "--version", "2")
    assert (status, weekday["allowed"], weekday["reasons"]) == (0, True, ["allow_rule_matched"])
    status, before = decide("--at", SATURDAY_NOON_BERLIN, "--version", "1")
    assert (status, before["policy_version"], before["matched_rules"]) == (0, 1, ["eng-read"])
    assert before["policy_checksum"] != active["policy_checksum"]


def test_explain_refuses_bad_input_instead_of_guessing(
    cli: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = write(tmp_path, "p.json", policy_document(UPSTREAM))
    assert main([*cli, "policy", "apply", policy, "--reason", "first"]) == 0
    capsys.readouterr()
    explain = [
        *cli, "policy", "explain", "--sub", "alice", "--groups", "engineering",
        "--method", "GET", "--host", "h", "--path", "/api/x",
    ]  # fmt: skip

    assert main([*explain, "--issuer", ISSUER, "--ip", "10.0.0.300"]) == 2
    assert "--ip '10.0.0.300' is not an IPv4 or IPv6 address" in capsys.readouterr().err
    assert main([*explain, "--issuer", ISSUER, "--auth-time", "yesterday"]) == 2
    assert "--auth-time 'yesterday' is not epoch seconds" in capsys.readouterr().err
    assert main([*explain, "--issuer", ISSUER, "--version", "7"]) == 2
    assert "policy version 7 does not exist" in capsys.readouterr().err
    # A deployed stage's CLI environment may not say which issuer its tokens come from.
    assert main(explain) == 2
    assert "pass --issuer" in capsys.readouterr().err


def test_diff_never_says_no_changes_for_a_document_that_would_be_a_new_version(
    cli: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = policy_document(UPSTREAM)
    first = write(tmp_path, "p.json", document)
    assert main([*cli, "policy", "apply", first, "--reason", "first"]) == 0
    assert "the first policy of this stage" in capsys.readouterr().out
    document["rules"].reverse()
    shuffled = write(tmp_path, "shuffled.json", document)

    assert main([*cli, "policy", "diff", first]) == 0
    assert capsys.readouterr().out == f"no changes: {first} is the active version 1\n"
    assert main([*cli, "policy", "diff", shuffled]) == 1
    assert capsys.readouterr().out.splitlines()[2:] == [
        "~ order of rules or routes only (every decision stays the same)"
    ]
    assert main([*cli, "policy", "apply", shuffled, "--reason", "tidy"]) == 0
    assert "version 2 active as activation 2, replacing version 1" in capsys.readouterr().out


def test_an_activation_that_is_not_fully_recorded_exits_3(
    cli: list[str], aws: Resources, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = write(tmp_path, "p.json", policy_document(UPSTREAM))
    assert main([*cli, "policy", "apply", first, "--reason", "first"]) == 0
    client("sqs").delete_queue(QueueUrl=aws.audit_queue_url)
    capsys.readouterr()

    second = write(tmp_path, "q.json", with_auditors(policy_document(UPSTREAM)))

    assert main([*cli, "policy", "apply", second, "--reason", "auditors"]) == 3

    err = capsys.readouterr().err
    assert "activation 2 (version 2) is in force" in err
    assert "policy_change audit event was not enqueued" in err
    # Nothing more changes while the trail cannot take the event of the last change
    # (exit 3: the queue is unavailable).
    assert main([*cli, "policy", "rollback", "1", "--reason", "undo"]) == 3
    assert "activation 3" not in capsys.readouterr().err
