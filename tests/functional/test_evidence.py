"""Evidence bundles from a real ledger (moto): built by the CLI, checked offline.

The ledger is written by the real writer and digested by the real digest
writer (KMS in moto); a witness publishes its cosignature of the second
digest where witnesses do. Bundles are built for a grant, a principal, a
request and a named query (on the local engine), then checked by
``check-evidence`` with the keys pinned.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)

from chalicelib.audit.schema import uuid7
from chalicelib.aws.signers import KmsSigner
from chalicelib.ledger import LedgerState
from chalicelib.ledger.digest import DigestWriter
from chalicelib.ledger.evidence import check_bundle
from chalicelib.ledger.layout import cosigned_key
from chalicelib.ledger.notes import SignedNote, WitnessSigner
from gatehouse.audit_commands.evidence import grant_bundles
from gatehouse.cli import main
from gatehouse.report import write_report
from gatehouse.report.model import GrantEvent, Window
from gatehouse.target import resolve_target
from tests.functional.test_audit_writer import deliver
from tests.unit.test_report_render import empty_report

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources

ORIGIN = "example.com/gatehouse-evidence"
GRANT = "01a00000-0000-7000-8000-0000000000e1"
ISSUER = "https://idp.example.com/"
WITNESS = WitnessSigner("witness.example.com/w1", Ed25519PrivateKey.generate())
NOW = datetime.now(UTC).replace(microsecond=0)
WINDOW = (NOW - timedelta(hours=1), NOW + timedelta(hours=1))


def s3() -> Any:
    return boto3.client("s3", region_name="us-east-1")


def when(text: datetime) -> str:
    return text.strftime("%Y-%m-%dT%H:%M:%SZ")


def an_event(
    *,
    subject: str = "sam",
    request_id: str | None = None,
    grant_id: str | None = None,
    event_type: str = "decision",
    **extra: Any,
) -> dict[str, Any]:
    """An event of the shape the trail stores (the sections the selections read)."""
    return {
        "schema_version": 1,
        "event_id": uuid7(),
        "event_type": event_type,
        "event_time": NOW.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "stage": "test",
        "request": {"id": request_id or f"req-{uuid7()[-8:]}"},
        "principal": {"issuer": ISSUER, "subject": subject},
        "elevation": {"grant_id": grant_id, "break_glass": False} if grant_id else None,
        "grant": None,
        **extra,
    }


class Trail:
    """A stage's ledger with two digests, the second cosigned by a witness."""

    def __init__(self, aws: Resources) -> None:
        self.aws = aws
        kms = boto3.client("kms", region_name="us-east-1")
        self.signer = KmsSigner(kms, aws.digest_key_alias)
        self.public_key: Any = load_der_public_key(
            kms.get_public_key(KeyId=aws.digest_key_alias)["PublicKey"]
        )
        self.state = LedgerState(boto3.client("dynamodb", region_name="us-east-1"), aws.state_table)
        self.events: list[dict[str, Any]] = []
        self.clock = NOW.timestamp()

    def write(self, *events: dict[str, Any]) -> None:
        bodies = [(f"m-{e['event_id']}", json.dumps(e, separators=(",", ":"))) for e in events]
        assert deliver(self.aws, bodies)
        self.events += events

    def digest(self) -> str:
        self.clock += 60
        writer = DigestWriter(
            s3(),
            self.aws.audit_bucket,
            self.state,
            self.signer,
            stage="test",
            origin=ORIGIN,
            anchor=None,
            clock=lambda: self.clock,
        )
        return writer.write().key

    def cosign(self, digest_key: str) -> None:
        """Publish the witness's cosignature of the digest, as a witness does."""
        stored = json.loads(
            s3().get_object(Bucket=self.aws.audit_bucket, Key=digest_key)["Body"].read()
        )
        note = SignedNote.parse(stored["checkpoint"])
        note = note.with_signature(WITNESS.cosign(note.text, int(self.clock)))
        s3().put_object(
            Bucket=self.aws.audit_bucket,
            Key=cosigned_key(WITNESS.key.key_id.hex(), digest_key),
            Body=note.serialize().encode(),
        )

    def ids(self, **where: Any) -> set[str]:
        """The ids of the events written whose sections hold ``where`` (section.field=value)."""
        found = set()
        for event in self.events:
            if all(
                (event.get(section) or {}).get(name) == value
                for (section, name), value in ((key.split("__"), v) for key, v in where.items())
            ):
                found.add(event["event_id"])
        return found


@pytest.fixture
def trail(aws: Resources, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Trail:
    """Nine events, a digest (size 9), six more (one under the grant), a cosigned digest (15)."""
    for name, value in {
        "GATEHOUSE_AUDIT_BUCKET": aws.audit_bucket,
        "GATEHOUSE_STATE_TABLE": aws.state_table,
        "GATEHOUSE_AUDIT_QUEUE_URL": aws.audit_queue_url,
        "GATEHOUSE_DIGEST_KEY_ID": aws.digest_key_alias,
        "GATEHOUSE_STAGE": "test",
        "GATEHOUSE_WITNESS_KEYS": WITNESS.key.vkey(),
        "AWS_DEFAULT_REGION": "us-east-1",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }.items():
        monkeypatch.setenv(name, value)
    built = Trail(aws)
    built.write(
        an_event(subject="erin", grant_id=GRANT),
        an_event(),
        an_event(subject="erin", request_id="req-shared"),
        an_event(event_type="grant", grant={"action": "approved", "grant_id": GRANT}),
    )
    built.write(
        an_event(),
        an_event(subject="erin", grant_id=GRANT, request_id="req-shared"),
        an_event(),
        an_event(),
        an_event(
            event_type="policy_change",
            policy_change={"action": "apply", "activation": 2, "to_version": 2},
            aws={"caller_arn": "arn:aws:iam::123456789012:user/ops"},
        ),
    )
    built.first_digest = built.digest()
    built.write(an_event(), an_event(subject="erin"), an_event())
    built.write(an_event(subject="erin", grant_id=GRANT), an_event(), an_event())
    built.second_digest = built.digest()
    built.cosign(built.second_digest)
    return built


def cli(tmp_path: Path, *args: str) -> int:
    return main(["--state-dir", str(tmp_path / "no-stack"), "audit", *args])


def window_args() -> list[str]:
    return ["--from", when(WINDOW[0]), "--to", when(WINDOW[1])]


def pem(trail: Trail, tmp_path: Path) -> Path:
    path = tmp_path / "stage.pem"
    path.write_bytes(trail.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return path


def lines_of(bundle: dict[str, Any], member: list[dict[str, Any]] | None = None) -> list[dict]:
    return [json.loads(entry["line"]) for entry in (member or bundle["events"])]


def test_a_grant_bundle_proves_every_event_of_the_grant_under_the_covering_checkpoint(
    trail: Trail, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "grant.json"
    assert cli(tmp_path, "evidence", "--grant", GRANT, *window_args(), "--out", str(out)) == 0
    bundle = json.loads(out.read_text())

    selected = {event["event_id"] for event in lines_of(bundle)}
    assert selected == trail.ids(elevation__grant_id=GRANT) | trail.ids(grant__grant_id=GRANT)
    assert len(selected) == 4
    # The one under the grant after the first digest needs the second (cosigned) one.
    assert bundle["checkpoint"]["digest_key"] == trail.second_digest
    assert bundle["selection"] == {
        "kind": "grant",
        "value": GRANT,
        "from": when(WINDOW[0]),
        "to": when(WINDOW[1]),
    }
    assert bundle["keys"]["witnesses"] == [WITNESS.key.vkey()]
    assert bundle["keys"]["stage"]["jwk"]["kid"] == trail.signer.jwk()["kid"]
    assert f"written to {out}" in capsys.readouterr().out

    result = check_bundle(
        bundle, stage_key=trail.public_key, witness_keys=[WITNESS.key], require_witnesses=1
    )
    assert result.failures == []
    assert result.tree_size == 15
    assert result.witnesses == [WITNESS.name]

    code = cli(
        tmp_path,
        "check-evidence",
        str(out),
        "--public-key",
        str(pem(trail, tmp_path)),
        "--witness",
        WITNESS.key.vkey(),
        "--require-witnesses",
        "1",
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "proves: these 4 event(s) are in the log" in printed
    assert f"signed by the stage (origin {ORIGIN}) and cosigned by 1 witness(es)" in printed
    assert "rerun with --range" in printed
    assert "not pinned" not in printed


def test_the_earliest_covering_digest_is_chosen_and_unpinned_keys_are_named(
    trail: Trail, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "request.json"
    args = ["evidence", "--request", "req-shared", *window_args(), "--out", str(out)]
    assert cli(tmp_path, *args) == 0
    bundle = json.loads(out.read_text())

    assert {event["event_id"] for event in lines_of(bundle)} == trail.ids(request__id="req-shared")
    assert bundle["checkpoint"]["digest_key"] == trail.first_digest  # size 9 holds both

    capsys.readouterr()
    assert cli(tmp_path, "check-evidence", str(out), "-o", "json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"]
    assert result["tree_size"] == 9
    assert any(trail.signer.jwk()["kid"] in note for note in result["unpinned"])
    # The first digest was never cosigned: a witness requirement fails.
    code = cli(
        tmp_path, "check-evidence", str(out), "--witness", WITNESS.key.vkey(),
        "--require-witnesses", "1",
    )  # fmt: skip
    assert code == 1
    assert "1 pinned witness cosignature(s) required, 0 found" in capsys.readouterr().out


def test_a_principal_range_proves_completeness_between_its_first_and_last_event(
    trail: Trail, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "erin.json"
    args = ["evidence", "--principal", f"{ISSUER}|erin", *window_args(), "--range"]
    assert cli(tmp_path, *args, "--out", str(out)) == 0
    bundle = json.loads(out.read_text())

    positions = [entry["leaf_index"] for entry in bundle["events"]]
    assert {event["event_id"] for event in lines_of(bundle)} == trail.ids(principal__subject="erin")
    ranged = bundle["range"]
    assert (ranged["first"], ranged["last"]) == (positions[0], positions[-1])
    assert [entry["leaf_index"] for entry in ranged["lines"]] == list(
        range(positions[0], positions[-1] + 1)
    )
    capsys.readouterr()
    assert cli(tmp_path, "check-evidence", str(out), "--public-key", str(pem(trail, tmp_path))) == 0
    printed = capsys.readouterr().out
    assert f"no event between positions {positions[0]} and {positions[-1]}" in printed

    # Leaving one of erin's events out of the answer is caught by the range.
    del bundle["events"][1]
    out.write_text(json.dumps(bundle))
    assert cli(tmp_path, "check-evidence", str(out)) == 1
    assert "matches the selection but is left out of the events" in capsys.readouterr().out


def test_a_named_query_on_the_local_engine_is_located_through_the_ledger(
    trail: Trail, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "changes.json"
    args = ["evidence", "--query", "policy_changes", *window_args(), "--engine", "local"]
    assert cli(tmp_path, *args, "--out", str(out)) == 0, capsys.readouterr().err
    bundle = json.loads(out.read_text())

    assert [event["event_type"] for event in lines_of(bundle)] == ["policy_change"]
    assert bundle["selection"]["query"] == "policy_changes"
    assert "FROM audit_events" in bundle["selection"]["sql"]
    capsys.readouterr()
    assert cli(tmp_path, "check-evidence", str(out)) == 0
    assert "the query itself is not re-run offline" in capsys.readouterr().out


def test_a_query_without_event_ids_is_refused(
    trail: Trail, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "denies.json"
    args = ["evidence", "--query", "denies_with_reasons", *window_args(), "--engine", "local"]

    assert cli(tmp_path, *args, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "returns no event_id column" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_nothing_matched_writes_nothing(
    trail: Trail, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "none.json"
    args = ["evidence", "--grant", "no-such-grant", *window_args(), "--out", str(out)]

    assert cli(tmp_path, *args) == 1
    assert capsys.readouterr().err.strip() == "gatehouse: nothing matched the grant selection"
    assert not out.exists()


def test_an_event_under_no_digest_yet_says_to_digest_first(
    trail: Trail, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trail.write(an_event(request_id="req-late"))
    out = tmp_path / "late.json"
    args = ["evidence", "--request", "req-late", *window_args(), "--out", str(out)]

    assert cli(tmp_path, *args) == 1
    assert "run `gatehouse audit digest`" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grant", GRANT, "--request", "r"], "exactly one of"),
        ([], "exactly one of"),
        (["--grant", GRANT, "--param", "a=b"], "--param goes with --query"),
        (["--grant", GRANT, "--witness", "not-a-vkey"], "--witness 'not-a-vkey'"),
    ],
    ids=["two selectors", "no selector", "param without query", "bad witness"],
)
def test_usage_errors_are_one_line_and_exit_2(
    trail: Trail,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    out = tmp_path / "x.json"
    assert cli(tmp_path, "evidence", *args, *window_args(), "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_check_evidence_refuses_what_is_not_a_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_json = tmp_path / "a.json"
    not_json.write_text("{")
    not_bundle = tmp_path / "b.json"
    not_bundle.write_text('{"format": 1}')

    assert cli(tmp_path, "check-evidence", str(not_json)) == 2
    assert "is not JSON" in capsys.readouterr().err
    assert cli(tmp_path, "check-evidence", str(not_bundle)) == 2
    assert "not an evidence bundle" in capsys.readouterr().err


def test_the_report_links_each_grant_to_its_bundle(trail: Trail, tmp_path: Path) -> None:
    window = Window(*WINDOW)
    report = replace(
        empty_report(),
        window=window,
        grant_events=[
            GrantEvent(NOW, "approved", GRANT, "erin", "sam", "sam", "TICKET-1", "demo", None),
            GrantEvent(NOW, "approved", "never-used", "erin", "sam", "sam", "T", "demo", None),
        ],
    )
    out = tmp_path / "report"
    links = grant_bundles(resolve_target(tmp_path / "no-stack"), report, out / "evidence", out)
    written = write_report(report, out, links)
    page = written.html.read_text()

    assert links == {GRANT: f"evidence/evidence-grant-{GRANT}.json"}
    assert f'<a href="evidence/evidence-grant-{GRANT}.json">evidence</a>' in page
    assert check_bundle(json.loads((out / links[GRANT]).read_text()), stage_key=trail.public_key).ok
    # A grant without a bundle shows the command that would write one.
    assert "gatehouse audit evidence --grant never-used --from " in page

    plain = write_report(report, tmp_path / "plain").html.read_text()
    assert f"gatehouse audit evidence --grant {GRANT} --from " in plain
    assert "evidence-grant-" not in plain.split("--out ")[0]
    assert 'href="evidence' not in plain


def test_report_evidence_writes_and_links_the_bundles_from_the_command_line(
    trail: Trail, tmp_path: Path
) -> None:
    out = tmp_path / "report"

    status = cli(
        tmp_path, "report", *window_args(), "--out", str(out), "--evidence", str(out / "ev"),
        "--engine", "local",
    )  # fmt: skip

    assert status == 0
    bundle = out / "ev" / f"evidence-grant-{GRANT}.json"
    assert check_bundle(json.loads(bundle.read_text()), stage_key=trail.public_key).ok
    assert (
        f'<a href="ev/evidence-grant-{GRANT}.json">evidence</a>'
        in (out / "report.html").read_text()
    )
