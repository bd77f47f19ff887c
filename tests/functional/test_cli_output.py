"""What the CLI prints for scripts: ``-o json`` shapes, the output aliases, the report's integrity.

Against moto, through ``gatehouse.cli.main`` with the stage taken from the
environment (no local stack): the dead-letter queue, a named query on the
local engine over a real ledger (written by the real writer, digested by the
real digest writer, cosigned by a witness), the grant API on loopback, and
``audit report`` over that ledger. The golden shapes are the members a script
reads; a change to them is a change to the CLI's contract.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from html import unescape
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from chalicelib.audit.schema import uuid7
from gatehouse.cli import main
from gatehouse.state import STATE_FILE_NAME
from tests.functional.test_evidence import GRANT, WINDOW, WITNESS, Trail, an_event, s3, when
from tests.functional.test_grant_api import REQUEST_BODY, call, token_for
from tests.functional.test_grant_review import GRANTS_PATH, _ToTheHandler

if TYPE_CHECKING:
    from chalicelib.container import Container
    from gatehouse.dev.bootstrap import Resources

DLQ_MEMBERS = ["message_id", "receive_count", "sent_at", "event_id", "problem", "preview"]
PRINCIPAL_ACTIVITY_COLUMNS = [
    "at",
    "kind",
    "request_id",
    "action",
    "method",
    "host",
    "path",
    "route_id",
    "decision",
    "reasons",
    "status",
    "source_ip",
    "user_agent",
    "grant_id",
    "break_glass",
]
GRANT_MEMBERS = [
    "id",
    "status",
    "issuer",
    "subject",
    "email",
    "routes",
    "actions",
    "paths",
    "duration_seconds",
    "justification",
    "requested_at",
    "approver",
    "approved_at",
    "expires_at",
    "ended_at",
    "ended_by",
    "first_used_at",
]


def gatehouse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """``gatehouse ARGS...`` with no local stack (the stage's environment): exit, out, err."""
    capsys.readouterr()
    code = main(["--state-dir", str(tmp_path / "no-stack"), *args])
    out, err = capsys.readouterr()
    return code, out, err


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def stage_env(aws: Resources, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Resources:
    """A deployed stage's environment (its witness trusted), the query cache under tmp_path."""
    for name, value in {
        "GATEHOUSE_AUDIT_BUCKET": aws.audit_bucket,
        "GATEHOUSE_STATE_TABLE": aws.state_table,
        "GATEHOUSE_AUDIT_QUEUE_URL": aws.audit_queue_url,
        "GATEHOUSE_AUDIT_DLQ_URL": aws.audit_dlq_url,
        "GATEHOUSE_DIGEST_KEY_ID": aws.digest_key_alias,
        "GATEHOUSE_STAGE": "test",
        "GATEHOUSE_WITNESS_KEYS": WITNESS.key.vkey(),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }.items():
        monkeypatch.setenv(name, value)
    return aws


@pytest.fixture
def ledger(stage_env: Resources) -> Trail:
    """Five events (two erin's, one under a grant), a digest (size 3), a cosigned one (size 5)."""
    built = Trail(stage_env)
    built.write(an_event(subject="erin", request_id="req-erin-1"), an_event(), an_event())
    built.first_digest = built.digest()
    built.write(an_event(subject="erin", grant_id=GRANT, request_id="req-erin-2"), an_event())
    built.second_digest = built.digest()
    built.cosign(built.second_digest)
    return built


@pytest.fixture
def grant_gateway(granting: Container, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The stage's grant API on loopback; the CLI finds it through GATEHOUSE_GATEWAY_URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ToTheHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("GATEHOUSE_GATEWAY_URL", url)
    monkeypatch.delenv("GATEHOUSE_TOKEN", raising=False)
    yield url
    server.shutdown()
    server.server_close()


def stored_tree(key: str, bucket: str) -> dict[str, Any]:
    """The signed tree (size, root) of the stored digest ``key``, read from the bucket."""
    document = json.loads(s3().get_object(Bucket=bucket, Key=key)["Body"].read())
    tree: dict[str, Any] = document["digest"]["tree"]
    return tree


def without_count(ndjson: str) -> list[dict[str, Any]]:
    """The letters of ``dlq -o json``, less ``receive_count`` (each listing receives them)."""
    letters = [json.loads(line) for line in ndjson.splitlines()]
    return [{k: v for k, v in letter.items() if k != "receive_count"} for letter in letters]


# --- audit dlq -------------------------------------------------------------------------------


def test_dlq_json_is_one_object_per_message_with_the_documented_members(
    stage_env: Resources, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event_id = uuid7()
    event = {"schema_version": 1, "event_id": event_id, "event_type": "decision"}
    body = json.dumps(event, separators=(",", ":"))  # as the emitter writes it
    boto3.client("sqs", region_name="us-east-1").send_message(
        QueueUrl=stage_env.audit_dlq_url, MessageBody=body
    )

    code, out, _ = gatehouse(tmp_path, capsys, "audit", "dlq", "-o", "json")

    assert code == 1  # non-zero while anything waits
    [line] = out.splitlines()
    letter = json.loads(line)
    assert list(letter) == DLQ_MEMBERS
    assert letter["event_id"] == event_id
    assert letter["receive_count"] >= 1
    assert letter["problem"].startswith("valid event")

    # Listing receives the message again (its count grows): the rest must agree.
    code, again, _ = gatehouse(tmp_path, capsys, "audit", "dlq", "--json")
    assert code == 1
    assert without_count(again) == without_count(out)
    code, csv_out, _ = gatehouse(tmp_path, capsys, "audit", "dlq", "-o", "csv")
    assert code == 1
    assert csv_out.splitlines()[0] == ",".join(DLQ_MEMBERS)
    assert event_id in csv_out.splitlines()[1]


@pytest.mark.parametrize("other", ["table", "csv"])
def test_dlq_json_alias_against_another_output_is_a_usage_error(
    stage_env: Resources, tmp_path: Path, capsys: pytest.CaptureFixture[str], other: str
) -> None:
    code, out, err = gatehouse(tmp_path, capsys, "audit", "dlq", "--json", "-o", other)

    assert code == 2
    assert out == ""
    assert f"--json and -o {other} contradict each other" in err


# --- audit query -----------------------------------------------------------------------------


def test_a_named_query_as_json_is_one_array_of_its_columns_and_defaults_to_the_last_day(
    ledger: Trail, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No --param from/to: the window defaults to the last 24 hours, which holds the trail.
    args = ["audit", "query", "--engine", "local", "--named", "principal_activity"]
    code, out, err = gatehouse(tmp_path, capsys, *args, "--param", "principal=erin", "-o", "json")

    assert code == 0, err
    rows = json.loads(out)
    assert isinstance(rows, list)
    assert [list(row) for row in rows] == [PRINCIPAL_ACTIVITY_COLUMNS] * 2
    assert sorted(row["request_id"] for row in rows) == ["req-erin-1", "req-erin-2"]
    assert {row["kind"] for row in rows} == {"request"}

    for alias in (["--format", "json"], ["-o", "json", "--format", "json"]):
        same = gatehouse(tmp_path, capsys, *args, "--param", "principal=erin", *alias)
        assert same[:2] == (0, out), alias


@pytest.mark.parametrize(
    ("given", "other"),
    [(["-o", "json", "--format", "csv"], "csv"), (["-o", "table", "--format", "json"], "json")],
)
def test_query_output_and_format_that_disagree_are_a_usage_error(
    stage_env: Resources,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    given: list[str],
    other: str,
) -> None:
    code, out, err = gatehouse(tmp_path, capsys, "audit", "query", "SELECT 1", *given)

    assert code == 2
    assert out == ""
    assert f"--format {other} contradict each other" in err


def test_athena_on_the_local_stack_is_refused_with_the_way_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A local stack's dev.json naming a running process (this one): nothing is called on it.
    state_dir = tmp_path / "stack"
    state_dir.mkdir()
    (state_dir / STATE_FILE_NAME).write_text(
        json.dumps(
            {
                "gateway_url": "http://127.0.0.1:9",
                "aws_endpoint_url": "http://127.0.0.1:9",
                "region": "us-east-1",
                "issuer": "http://127.0.0.1:9/idp",
                "audience": "gatehouse",
                "idp_private_key_path": str(tmp_path / "missing.pem"),
                "idp_kid": "k",
                "idp_alg": "RS256",
                "backend_url": "http://127.0.0.1:9",
                "audit_bucket": "b",
                "state_table": "t",
                "audit_queue_url": "http://127.0.0.1:9/q",
                "pid": os.getpid(),
            }
        )
    )
    args = ["--state-dir", str(state_dir), "audit", "query", "--engine", "athena", "SELECT 1"]

    code = main(args)

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.strip() == "gatehouse: the local stack has no Athena: use --engine local"


# --- grant list ------------------------------------------------------------------------------


def test_grant_list_json_is_one_array_of_grants_as_the_api_answers(
    grant_gateway: str, rsa_key: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    erin = token_for(rsa_key, "erin", ["support"])
    status, requested = call("POST", GRANTS_PATH, erin, REQUEST_BODY)
    assert status == 201, requested
    sam = token_for(rsa_key, "sam", ["security"])

    code, out, err = gatehouse(tmp_path, capsys, "grant", "list", "-o", "json", "--token", sam)

    assert code == 0, err
    [listed] = json.loads(out)
    assert list(listed) == GRANT_MEMBERS
    assert (listed["id"], listed["status"], listed["email"]) == (
        requested["id"],
        "pending",
        "erin@example.com",
    )
    assert listed["paths"] == REQUEST_BODY["paths"]

    assert gatehouse(tmp_path, capsys, "grant", "list", "--json", "--token", sam)[:2] == (0, out)
    code, err_out, err = gatehouse(
        tmp_path, capsys, "grant", "list", "--json", "-o", "table", "--token", sam
    )
    assert (code, err_out) == (2, "")
    assert "--json and -o table contradict each other" in err


# --- the report's integrity section -------------------------------------------------------


def integrity_text(page: str) -> str:
    """The visible text of report.html's integrity section (to the next section heading)."""
    start = page.index('<h3 id="integrity"')
    end = page.find("<h2", start)
    section = page[start : end if end != -1 else len(page)]
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", section)).split())


def test_the_report_shows_what_verify_found_for_the_window(
    ledger: Trail, stage_env: Resources, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    window = ["--from", when(WINDOW[0]), "--to", when(WINDOW[1])]

    code, printed, err = gatehouse(
        tmp_path, capsys, "audit", "report", *window, "--engine", "local", "--out", str(out)
    )

    assert code == 0, err
    assert "report written to" in printed
    newest = stored_tree(ledger.second_digest, stage_env.audit_bucket)
    assert newest["size"] == 5  # every event written above
    integrity = json.loads((out / "report.json").read_text())["compliance"]["integrity"]
    assert integrity["result"] == "ok"
    assert integrity["ok"] is True
    assert integrity["verified_nothing"] is False
    assert integrity["findings"] == []
    assert (integrity["digests"], integrity["events"]) == (2, 5)
    assert (integrity["tree_size"], integrity["root"]) == (newest["size"], newest["root"])
    assert integrity["checkpoint_size"] == 5
    assert integrity["cosigned_by"] == [WITNESS.name]
    assert integrity["error"] is None

    text = integrity_text((out / "report.html").read_text())
    assert "result ok" in text
    assert "tree size 5" in text
    assert f"root {newest['root']}" in text
    assert f"cosigned by {WITNESS.name}" in text
    assert f"--since {when(WINDOW[0])[:-1]}.000Z" in text
