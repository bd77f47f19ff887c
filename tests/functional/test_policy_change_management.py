"""Policy change management for auditors, against moto: who changed the policy, why, what.

- ``apply``/``rollback --reason`` put the reason in the ``policy_change``
  event, the activation record and its archived copy; a deployed stage
  refuses a change without one (exit 2, one line, nothing changed).
- The operator is the caller's identity: STS ``GetCallerIdentity`` on a
  deployed stage, ``local:<user>`` on the local stack.
- ``diff`` answers like ``git diff --exit-code`` and prints a stable JSON shape.
- ``explain --at`` evaluates the version that was in force at that time.
"""

from __future__ import annotations

import csv
import getpass
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from chalicelib.policy import PolicyStore, parse_policy
from chalicelib.policy.archive import activation_key
from gatehouse.cli import main
from tests.functional.conftest import policy_document, queued_events
from tests.functional.test_policy_admin import with_auditors as admin_with_auditors

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources
    from gatehouse.target import Target

UPSTREAM = "http://127.0.0.1:9"
ISSUER = "https://idp.example.com"


def client(service: str) -> Any:
    return boto3.client(service, region_name="us-east-1")


def with_auditors(document: dict[str, Any]) -> dict[str, Any]:
    """The admin tests' second version, its first rule narrowed to GET (two changes to diff)."""
    document = admin_with_auditors(document)
    document["rules"][0]["actions"] = ["GET"]
    return document


def write(tmp_path: Path, name: str, document: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def policy_changes(aws: Resources) -> list[dict[str, Any]]:
    return [e for e in queued_events(aws) if e["event_type"] == "policy_change"]


def store(aws: Resources) -> PolicyStore:
    return PolicyStore(client("dynamodb"), aws.state_table)


@pytest.fixture
def deployed(aws: Resources, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """``gatehouse --state-dir <empty>``: no local stack, a deployed stage from GATEHOUSE_*."""
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("GATEHOUSE_AUDIT_BUCKET", aws.audit_bucket)
    monkeypatch.setenv("GATEHOUSE_AUDIT_QUEUE_URL", aws.audit_queue_url)
    monkeypatch.setenv("GATEHOUSE_STATE_TABLE", aws.state_table)
    monkeypatch.setenv("GATEHOUSE_STAGE", "prod")
    return ["--state-dir", str(tmp_path / "no-local-stack")]


@pytest.fixture
def local(aws: Resources, monkeypatch: pytest.MonkeyPatch) -> Target:
    """The local stack as the CLI finds it (its resources in moto)."""
    from gatehouse import target as target_module
    from gatehouse.target import Target

    stack = Target(
        region="us-east-1",
        endpoint_url=None,
        audit_bucket=aws.audit_bucket,
        audit_queue_url=aws.audit_queue_url,
        audit_dlq_url=aws.audit_dlq_url,
        state_table=aws.state_table,
        local=True,
        stage="dev",
        issuer=ISSUER,
        audience="gatehouse",
    )
    monkeypatch.setattr(target_module, "resolve_target", lambda state_dir=None: stack)
    return stack


# --- the reason ------------------------------------------------------------------------------


def test_apply_and_rollback_record_their_reason_everywhere_an_auditor_looks(
    aws: Resources, deployed: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = write(tmp_path, "v1.json", policy_document(UPSTREAM))
    v2 = write(tmp_path, "v2.json", with_auditors(policy_document(UPSTREAM)))

    assert main([*deployed, "policy", "apply", v1, "--reason", "initial policy"]) == 0
    assert main([*deployed, "policy", "apply", v2, "--reason", "  auditors read Q3  "]) == 0
    assert main([*deployed, "policy", "rollback", "1", "--reason", "reports leak"]) == 0

    changes = [event["policy_change"] for event in policy_changes(aws)]
    assert [(c["action"], c["reason"]) for c in changes] == [
        ("apply", "initial policy"),
        ("apply", "auditors read Q3"),
        ("rollback", "reports leak"),
    ]
    assert list(changes[1])[-1] == "reason"  # appended after every older member
    activations = store(aws).activations()
    assert [a.reason for a in activations] == ["reports leak", "auditors read Q3", "initial policy"]
    body = client("s3").get_object(Bucket=aws.audit_bucket, Key=activation_key(2))["Body"].read()
    assert json.loads(body)["reason"] == "auditors read Q3"
    capsys.readouterr()
    assert main([*deployed, "policy", "history", "-o", "json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert [(h["activation"], h["action"], h["reason"]) for h in history] == [
        (3, "rollback", "reports leak"),
        (2, "apply", "auditors read Q3"),
        (1, "apply", "initial policy"),
    ]


@pytest.mark.parametrize(
    ("command", "extra"),
    [("apply", []), ("rollback", []), ("apply", ["--reason", "   "])],
    ids=["apply without", "rollback without", "apply with a blank one"],
)
def test_a_deployed_stage_refuses_a_change_without_a_reason(
    aws: Resources,
    deployed: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    extra: list[str],
) -> None:
    v1 = write(tmp_path, "v1.json", policy_document(UPSTREAM))
    v2 = write(tmp_path, "v2.json", with_auditors(policy_document(UPSTREAM)))
    assert main([*deployed, "policy", "apply", v1, "--reason", "first"]) == 0
    assert main([*deployed, "policy", "apply", v2, "--reason", "second"]) == 0
    queued_events(aws)
    capsys.readouterr()

    argument = v1 if command == "apply" else "1"
    assert main([*deployed, "policy", command, argument, *extra]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("gatehouse: --reason ")
    assert err.count("\n") == 1
    assert "Traceback" not in err
    active = store(aws).load_active()
    assert active is not None
    assert (active.version, active.activation) == (2, 2)
    assert policy_changes(aws) == []


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("x" * 501, "--reason is 501 characters; at most 500"),
        ("ticket\x1b[2Jcleared", "--reason holds U+001B"),
        ("two\nlines", "--reason holds U+000A"),
    ],
    ids=["too long", "terminal escape", "newline"],
)
def test_a_reason_the_trail_could_not_show_as_written_is_refused(
    aws: Resources,
    deployed: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    reason: str,
    message: str,
) -> None:
    v1 = write(tmp_path, "v1.json", policy_document(UPSTREAM))

    assert main([*deployed, "policy", "apply", v1, "--reason", reason]) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"gatehouse: {message}")
    assert err.count("\n") == 1
    assert store(aws).load_active() is None


def test_the_local_stack_needs_no_reason_and_leaves_the_member_out(
    aws: Resources, local: Target, tmp_path: Path
) -> None:
    v1 = write(tmp_path, "v1.json", policy_document(UPSTREAM))

    assert main(["policy", "apply", v1]) == 0

    (event,) = policy_changes(aws)
    assert "reason" not in event["policy_change"]
    assert store(aws).activations()[0].reason is None


# --- the operator ----------------------------------------------------------------------------


def test_on_a_deployed_stage_the_operator_is_the_sts_caller(
    aws: Resources, deployed: list[str], tmp_path: Path
) -> None:
    caller = client("sts").get_caller_identity()["Arn"]
    v1 = write(tmp_path, "v1.json", policy_document(UPSTREAM))

    assert main([*deployed, "policy", "apply", v1, "--reason", "first"]) == 0

    (event,) = policy_changes(aws)
    assert event["aws"]["caller_arn"] == caller
    assert caller.startswith("arn:aws:")
    activation = store(aws).activations()[0]
    assert activation.activated_by == caller
    assert not activation.activated_by.startswith("local:")


def test_on_the_local_stack_the_operator_is_the_local_user(
    aws: Resources, local: Target, tmp_path: Path
) -> None:
    v1 = write(tmp_path, "v1.json", policy_document(UPSTREAM))

    assert main(["policy", "apply", v1, "--reason", "trying it"]) == 0

    (event,) = policy_changes(aws)
    assert event["aws"]["caller_arn"] == f"local:{getpass.getuser()}"
    assert event["policy_change"]["reason"] == "trying it"


# --- diff ------------------------------------------------------------------------------------


def test_diff_exits_1_with_changes_0_without_and_2_on_bad_input(
    aws: Resources, deployed: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = write(tmp_path, "v1.json", policy_document(UPSTREAM))
    v2 = write(tmp_path, "v2.json", with_auditors(policy_document(UPSTREAM)))
    invalid = write(tmp_path, "bad.json", {"version": 1, "rules": [{"id": "x"}]})

    assert main([*deployed, "policy", "diff", v1]) == 1  # nothing active yet: all of it
    assert main([*deployed, "policy", "apply", v1, "--reason", "first"]) == 0
    capsys.readouterr()
    assert main([*deployed, "policy", "diff", v1]) == 0
    assert main([*deployed, "policy", "diff", v2]) == 1
    capsys.readouterr()
    for bad in ([invalid], [str(tmp_path / "missing.yaml")], [v2, "-o", "xml"]):
        assert main([*deployed, "policy", "diff", *bad]) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err.count("\n") >= 1
        assert "Traceback" not in err


def test_diff_table_shows_old_and_new_values(
    aws: Resources, deployed: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = write(tmp_path, "v1.json", policy_document(UPSTREAM))
    v2 = write(tmp_path, "v2.json", with_auditors(policy_document(UPSTREAM)))
    assert main([*deployed, "policy", "apply", v1, "--reason", "first"]) == 0
    active = store(aws).load_active()
    assert active is not None
    capsys.readouterr()

    assert main([*deployed, "policy", "diff", v2]) == 1

    checksum = parse_policy(with_auditors(policy_document(UPSTREAM))).checksum
    assert capsys.readouterr().out.splitlines() == [
        f"--- active version 1 ({active.checksum})",
        f"+++ {v2} ({checksum})",
        "+ rule auditors",
        "    effect: allow",
        "    routes: [demo]",
        "    subjects.groups: [auditors]",
        "    actions: [GET]",
        "    paths: [/reports/**]",
        "~ rule eng-read",
        "    actions: [GET, HEAD, OPTIONS] -> [GET]",
    ]


def test_diff_json_has_the_documented_shape(
    aws: Resources, deployed: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = policy_document(UPSTREAM)
    v1 = write(tmp_path, "v1.json", document)
    changed = with_auditors(document)
    changed["rules"][0]["when"] = {"mfa": True}
    del changed["rules"][2]
    v2 = write(tmp_path, "v2.json", changed)
    assert main([*deployed, "policy", "apply", v1, "--reason", "first"]) == 0
    capsys.readouterr()

    assert main([*deployed, "policy", "diff", v2, "-o", "json"]) == 1

    assert json.loads(capsys.readouterr().out) == {
        "format": 1,
        "changed": True,
        "active": {"version": 1, "checksum": parse_policy(document).checksum},
        "proposed": {"source": v2, "checksum": parse_policy(changed).checksum, "version": None},
        "order_only": False,
        "route_order_changed": [],
        "changes": [
            {
                "section": "rules",
                "id": "auditors",
                "change": "added",
                "fields": [
                    {"field": "effect", "old": None, "new": "allow"},
                    {"field": "routes", "old": None, "new": ["demo"]},
                    {"field": "subjects.groups", "old": None, "new": ["auditors"]},
                    {"field": "actions", "old": None, "new": ["GET"]},
                    {"field": "paths", "old": None, "new": ["/reports/**"]},
                ],
            },
            {
                "section": "rules",
                "id": "no-billing-for-contractors",
                "change": "removed",
                # In the stored document's order (canonical JSON: sorted keys).
                "fields": [
                    {"field": "actions", "old": ["*"], "new": None},
                    {"field": "effect", "old": "deny", "new": None},
                    {"field": "paths", "old": ["/api/billing/**"], "new": None},
                    {"field": "routes", "old": ["demo"], "new": None},
                    {"field": "subjects.groups", "old": ["contractors"], "new": None},
                ],
            },
            {
                "section": "rules",
                "id": "eng-read",
                "change": "changed",
                "fields": [
                    {"field": "actions", "old": ["GET", "HEAD", "OPTIONS"], "new": ["GET"]},
                    {"field": "when.mfa", "old": None, "new": True},
                ],
            },
        ],
    }


def test_diff_json_against_a_stored_version_and_with_no_changes(
    aws: Resources, deployed: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = write(tmp_path, "v1.json", policy_document(UPSTREAM))
    v2 = write(tmp_path, "v2.json", with_auditors(policy_document(UPSTREAM)))
    assert main([*deployed, "policy", "apply", v1, "--reason", "first"]) == 0
    assert main([*deployed, "policy", "apply", v2, "--reason", "second"]) == 0
    capsys.readouterr()

    assert main([*deployed, "policy", "diff", v1, "-o", "json"]) == 1
    back = json.loads(capsys.readouterr().out)
    assert (back["active"]["version"], back["proposed"]["version"]) == (2, 1)
    assert main([*deployed, "policy", "diff", v2, "-o", "json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert (same["changed"], same["changes"], same["proposed"]["version"]) == (False, [], 2)


def test_diff_csv_is_one_row_per_field(
    aws: Resources, deployed: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = write(tmp_path, "v1.json", policy_document(UPSTREAM))
    v2 = write(tmp_path, "v2.json", with_auditors(policy_document(UPSTREAM)))
    assert main([*deployed, "policy", "apply", v1, "--reason", "first"]) == 0
    capsys.readouterr()

    assert main([*deployed, "policy", "diff", v2, "-o", "csv"]) == 1

    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["section", "id", "change", "field", "old", "new"]
    assert ["rules", "auditors", "added", "subjects.groups", "", "[auditors]"] in rows
    assert ["rules", "eng-read", "changed", "actions", "[GET, HEAD, OPTIONS]", "[GET]"] in rows
    assert len(rows) == 1 + 5 + 1


def test_variables_fill_in_the_file_for_diff_and_apply(
    aws: Resources, deployed: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "p.json", policy_document("${BACKEND}/app"))

    assert main([*deployed, "policy", "diff", path]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"gatehouse: {path}: routes[demo].upstream: ${{BACKEND}} is not set: "
        "pass --var BACKEND=VALUE\n"
    )
    variables = ["--var", "BACKEND=http://127.0.0.1:9"]
    assert main([*deployed, "policy", "apply", path, "--reason", "first", *variables]) == 0
    active = store(aws).load_active()
    assert active is not None
    assert active.document["routes"][0]["upstream"] == "http://127.0.0.1:9/app"
    assert main([*deployed, "policy", "diff", path, *variables]) == 0


# --- validate and history output -------------------------------------------------------------


def test_validate_prints_json_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = policy_document(UPSTREAM)
    path = write(tmp_path, "p.json", document)
    checksum = parse_policy(document).checksum

    assert main(["policy", "validate", path, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "file": path,
        "valid": True,
        "routes": 1,
        "rules": 3,
        "checksum": checksum,
    }
    assert main(["policy", "validate", path, "-o", "csv"]) == 0
    assert capsys.readouterr().out == (
        f"file,valid,routes,rules,checksum\n{path},true,1,3,{checksum}\n"
    )


def test_history_prints_csv_with_reason_and_counts(
    aws: Resources, deployed: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = write(tmp_path, "v1.json", policy_document(UPSTREAM))
    v2 = write(tmp_path, "v2.json", with_auditors(policy_document(UPSTREAM)))
    assert main([*deployed, "policy", "apply", v1, "--reason", "first"]) == 0
    assert main([*deployed, "policy", "apply", v2, "--reason", "auditors, Q3"]) == 0
    capsys.readouterr()

    assert main([*deployed, "policy", "history", "-o", "csv"]) == 0

    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["activation"], r["reason"]) for r in rows] == [("2", "auditors, Q3"), ("1", "first")]
    assert (rows[0]["previous_version"], rows[0]["version"]) == ("1", "2")
    assert (rows[0]["rules_added"], rows[0]["rules_changed"]) == ("1", "1")
    assert rows[1]["previous_version"] == ""


def test_history_of_a_stage_without_a_policy_says_so(
    aws: Resources, deployed: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*deployed, "policy", "history"]) == 0
    assert capsys.readouterr().out == "no policy has been activated\n"
    assert main([*deployed, "policy", "history", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


# --- explain --at ----------------------------------------------------------------------------

MONDAY = "2026-11-02T09:00:00+00:00"
TUESDAY = "2026-11-03T09:00:00+00:00"


@pytest.fixture
def two_versions(
    aws: Resources,
    deployed: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> list[str]:
    """Version 1 activated on Monday, version 2 (auditors may read reports) on Tuesday."""
    from chalicelib.policy import store as store_module

    monkeypatch.setenv(
        "GATEHOUSE_TRUSTED_ISSUERS", json.dumps([{"issuer": ISSUER, "audiences": ["gatehouse"]}])
    )
    v1 = write(tmp_path, "v1.json", policy_document(UPSTREAM))
    v2 = write(tmp_path, "v2.json", with_auditors(policy_document(UPSTREAM)))
    monkeypatch.setattr(store_module, "now_text", lambda: MONDAY)
    assert main([*deployed, "policy", "apply", v1, "--reason", "first"]) == 0
    monkeypatch.setattr(store_module, "now_text", lambda: TUESDAY)
    assert main([*deployed, "policy", "apply", v2, "--reason", "auditors"]) == 0
    capsys.readouterr()
    return [
        *deployed, "policy", "explain", "--sub", "frank", "--groups", "auditors",
        "--method", "GET", "--host", "h", "--path", "/reports/q3",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("at", "version", "allowed", "basis"),
    [
        ("2026-11-02T12:00:00Z", 1, False, "in_force_at"),
        ("2026-11-02T09:00:00Z", 1, False, "in_force_at"),
        ("2026-11-03T08:59:59Z", 1, False, "in_force_at"),
        ("2026-11-03T09:00:00Z", 2, True, "in_force_at"),
        ("2026-12-25T00:00:00Z", 2, True, "in_force_at"),
        (None, 2, True, "active"),
    ],
    ids=["monday noon", "monday at activation", "just before tuesday", "tuesday", "later", "now"],
)
def test_explain_at_evaluates_the_version_in_force_then(
    two_versions: list[str],
    capsys: pytest.CaptureFixture[str],
    at: str | None,
    version: int,
    allowed: bool,
    basis: str,
) -> None:
    when = ["--at", at] if at else []

    assert main([*two_versions, *when, "--json"]) == (0 if allowed else 1)

    decision = json.loads(capsys.readouterr().out)
    assert (decision["policy_version"], decision["allowed"]) == (version, allowed)
    choice = decision["policy_choice"]
    assert (choice["basis"], choice["version"]) == (basis, version)
    if basis == "in_force_at":
        assert choice["activation"] == version
        assert choice["activated_at"] == (MONDAY if version == 1 else TUESDAY)


def test_explain_says_which_version_it_used_and_why(
    two_versions: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    caller = client("sts").get_caller_identity()["Arn"]

    assert main([*two_versions, "--at", "2026-11-02T12:00:00Z"]) == 1

    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == (
        "  version used:  1: in force at 2026-11-02T12:00:00+00:00: activation #1 "
        f"(apply by {caller} at {MONDAY})"
    )


def test_version_wins_over_at(two_versions: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*two_versions, "--at", "2026-11-02T12:00:00Z", "--version", "2", "--json"]) == 0

    decision = json.loads(capsys.readouterr().out)
    assert decision["policy_version"] == 2
    assert decision["policy_choice"]["basis"] == "version"
    assert decision["policy_choice"]["activation"] is None


def test_explain_at_before_the_first_activation_is_refused(
    two_versions: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*two_versions, "--at", "2026-11-01T00:00:00Z"]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "gatehouse: no policy was in force at 2026-11-01T00:00:00+00:00 (the first "
        f"activation was at {MONDAY}): pass a later --at, or --version to evaluate a "
        "version at that time\n"
    )


# --- the in-force rule on its own ------------------------------------------------------------


def activation(number: int, at: str) -> Any:
    from chalicelib.policy.store import Activation

    return Activation(number, number, f"sha256:{number}", None, None, "apply", at, "me")


@pytest.mark.parametrize(
    ("times", "at", "expected"),
    [
        ([MONDAY, TUESDAY], "2026-11-02T23:59:59+00:00", 1),
        ([MONDAY, TUESDAY], TUESDAY, 2),
        ([MONDAY, MONDAY], MONDAY, 2),
        ([MONDAY, "2026-11-03T10:00:00+01:00"], TUESDAY, 2),
        ([MONDAY], "2026-11-01T00:00:00+00:00", None),
        ([], TUESDAY, None),
    ],
    ids=["between", "at the second", "same second", "other offset", "before", "no history"],
)
def test_the_activation_in_force_is_the_latest_at_or_before_the_time(
    times: list[str], at: str, expected: int | None
) -> None:
    from datetime import datetime

    from chalicelib.policy.in_force import activation_in_force

    history = [activation(number, when) for number, when in enumerate(times, start=1)]
    found = activation_in_force(reversed(history), datetime.fromisoformat(at).timestamp())

    assert (found.activation if found else None) == expected


@pytest.mark.parametrize("stored", ["yesterday", "2026-11-02T09:00:00"], ids=["text", "no offset"])
def test_an_unreadable_activation_time_is_unavailable_not_a_guess(stored: str) -> None:
    from chalicelib.policy import PolicyUnavailable
    from chalicelib.policy.in_force import activation_in_force

    with pytest.raises(PolicyUnavailable, match="activation 1"):
        activation_in_force([activation(1, stored)], 2e9)
