"""The OCSF export against a real ledger (moto): Security Lake files, the CLI, the checks.

The ledger is written by the real writer and digested by the real digest
writer (KMS in moto). The exporter (run through the scheduled handler, as
EventBridge runs it) writes Parquet under the Security Lake layout; the
files are read back with DuckDB and every row validated against OCSF 1.7.0.
An exported record's sequence and tree head are then checked against the
ledger: its stored line re-hashed and proven included under that head, and
that head signed in a digest.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import duckdb
import pytest
from cryptography.hazmat.primitives.serialization import load_der_public_key

from chalicelib import entrypoints
from chalicelib.audit.schema import uuid7
from chalicelib.aws.signers import KmsSigner
from chalicelib.config import Settings
from chalicelib.container import Container
from chalicelib.ledger import LedgerState
from chalicelib.ledger.digest import DigestWriter
from chalicelib.ledger.merkle import leaf_hash, verify_inclusion
from chalicelib.ledger.proof import Prover, check_proof, inclusion_path
from chalicelib.ledger.reading import gunzip, split_lines
from chalicelib.ocsf.common import compact
from chalicelib.ocsf.cursor import OCSF_CURSOR, ExportCursor
from chalicelib.ocsf.errors import ExportUnavailable
from chalicelib.ocsf.exporter import SOURCES, LakeLocation, OcsfExporter
from gatehouse.cli import main
from tests.functional.conftest import environment
from tests.functional.test_audit_writer import deliver
from tests.ocsf_validation import validate_record

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "audit_wire" / "golden.json"
ACCOUNT = "123456789012"
REGION = "us-east-1"
ORIGIN = "example.com/gatehouse-ocsf"
LAKE_PREFIX = "lake"


def s3() -> Any:
    return boto3.client("s3", region_name=REGION)


def dynamodb() -> Any:
    return boto3.client("dynamodb", region_name=REGION)


def fresh_events() -> list[dict[str, Any]]:
    """One event of every kind the trail holds (the golden lines), each with its own id, now."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    events = []
    for line in json.loads(GOLDEN.read_text()).values():
        event = json.loads(line)
        event["event_id"] = uuid7()
        event["event_time"] = now
        events.append(event)
    return events


def write(aws: Resources, events: list[dict[str, Any]]) -> None:
    bodies = [(f"m-{e['event_id']}", json.dumps(e, separators=(",", ":"))) for e in events]
    assert deliver(aws, bodies)


def scheduled_event() -> dict[str, Any]:
    return {"detail-type": "Scheduled Event", "source": "aws.events", "account": ACCOUNT,
            "region": REGION, "time": "2026-12-08T00:00:00Z", "detail": {}}  # fmt: skip


@pytest.fixture
def stage(aws: Resources, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Resources]:
    """A stage that exports into the audit bucket under ``lake/`` (as the local stack does)."""
    variables = environment(
        aws,
        GATEHOUSE_OCSF_EXPORT_LOCATION=f"s3://{aws.audit_bucket}/{LAKE_PREFIX}",
        GATEHOUSE_LEDGER_ORIGIN=ORIGIN,
        AWS_DEFAULT_REGION=REGION,
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    entrypoints.use_container(Container(Settings.from_environment()))
    yield aws
    entrypoints.use_container(None)


def exporter(aws: Resources) -> OcsfExporter:
    return OcsfExporter(
        s3(),
        aws.audit_bucket,
        LedgerState(dynamodb(), aws.state_table),
        ExportCursor(dynamodb(), aws.state_table),
        LakeLocation.from_uri(
            f"s3://{aws.audit_bucket}/{LAKE_PREFIX}", region=REGION, account=ACCOUNT
        ),
        origin=ORIGIN,
    )


def lake_files(aws: Resources) -> dict[str, bytes]:
    listed = s3().list_objects_v2(Bucket=aws.audit_bucket, Prefix=f"{LAKE_PREFIX}/")
    return {
        item["Key"]: s3().get_object(Bucket=aws.audit_bucket, Key=item["Key"])["Body"].read()
        for item in listed.get("Contents", [])
    }


def parquet_rows(payload: bytes, tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / f"{uuid7()}.parquet"
    path.write_bytes(payload)
    rows = duckdb.sql(f"SELECT to_json(t) FROM read_parquet('{path}') t").fetchall()  # noqa: S608
    return [compact(json.loads(row[0])) for row in rows]


def stored_lines(aws: Resources) -> list[bytes]:
    lines: list[bytes] = []
    for record in LedgerState(dynamodb(), aws.state_table).objects():
        body = (
            s3()
            .get_object(Bucket=aws.audit_bucket, Key=record.key, VersionId=record.version_id)[
                "Body"
            ]
            .read()
        )
        lines += split_lines(gunzip(body))
    return lines


def test_the_scheduled_export_writes_valid_parquet_in_the_security_lake_layout(
    stage: Resources, tmp_path: Path
) -> None:
    events = fresh_events()
    write(stage, events[:10])
    write(stage, events[10:])

    entrypoints.export_ocsf(scheduled_event())

    files = lake_files(stage)
    day = time.strftime("%Y%m%d", time.gmtime())
    sequences: list[int] = []
    for key, payload in files.items():
        source = key.split("/")[2]
        assert source in SOURCES.values()
        assert key.startswith(f"{LAKE_PREFIX}/ext/{source}/region={REGION}/accountId={ACCOUNT}/")
        assert f"/eventDay={day}/" in key
        rows = parquet_rows(payload, tmp_path)
        assert rows
        for row in rows:
            assert validate_record(row) == []
            assert SOURCES[row["class_uid"]] == source  # one class per source
            sequences.append(row["metadata"]["sequence"])
    # Every stored event exactly once, none left out (each file one object's range).
    assert sorted(sequences) == list(range(len(events)))
    assert {len(key.split("/")) for key in files} == {7}
    cursor = ExportCursor(dynamodb(), stage.state_table).read()
    assert cursor.next_sequence == len(events)


def test_a_second_run_writes_nothing_and_a_repeated_run_writes_nothing_twice(
    stage: Resources,
) -> None:
    write(stage, fresh_events()[:5])
    first = exporter(stage).run()
    assert first.written
    assert first.next_sequence == 5

    again = exporter(stage).run()
    assert (again.written, again.already_there, again.objects) == ([], [], 0)

    # A run that died after writing its files and before moving the cursor: the
    # next run finds every file already there and writes none of them again.
    dynamodb().delete_item(TableName=stage.state_table, Key={
        "pk": {"S": OCSF_CURSOR.partition}, "sk": {"S": OCSF_CURSOR.sort_key()}})  # fmt: skip
    before = lake_files(stage)
    repeated = exporter(stage).run()
    assert repeated.written == []
    assert sorted(repeated.already_there) == sorted(first.written)
    assert lake_files(stage) == before
    assert repeated.next_sequence == 5

    write(stage, fresh_events()[:3])
    later = exporter(stage).run()
    assert later.objects == 1
    assert all("/0000000000000005-0000000000000007.parquet" in key for key in later.written)


def test_the_exporter_stops_at_an_object_that_is_not_what_the_ledger_committed(
    stage: Resources,
) -> None:
    from chalicelib.ocsf import ExportUnavailable

    write(stage, fresh_events()[:2])
    (record,) = LedgerState(dynamodb(), stage.state_table).objects()
    # The ledger recorded other bytes than the bucket holds (an altered object, as far
    # as the exporter can tell): nothing is exported and the cursor stays.
    dynamodb().update_item(
        TableName=stage.state_table,
        Key={"pk": {"S": "LEDGER"}, "sk": {"S": f"OBJECT#{record.first_sequence:016d}"}},
        UpdateExpression="SET sha256 = :other",
        ExpressionAttributeValues={":other": {"S": "0" * 64}},
    )
    with pytest.raises(ExportUnavailable, match="not the object the ledger committed"):
        exporter(stage).run()
    assert ExportCursor(dynamodb(), stage.state_table).read().next_sequence == 0


def window() -> list[str]:
    """From an hour ago to an hour from now."""
    now = time.time()
    moments = (time.gmtime(now - 3600), time.gmtime(now + 3600))
    return [part for option, moment in zip(("--from", "--to"), moments, strict=True)
            for part in (option, time.strftime("%Y-%m-%dT%H:%M:%SZ", moment))]  # fmt: skip


def cli(tmp_path: Path, *args: str) -> int:
    return main(["--state-dir", str(tmp_path / "no-stack"), "audit", *args])


def test_audit_export_writes_one_valid_ocsf_record_per_stored_event_of_the_window(
    stage: Resources, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = fresh_events()
    write(stage, events)
    out = tmp_path / "trail.ocsf.ndjson"

    code = cli(tmp_path, "export", "--format", "ocsf", *window(), "--out", str(out))

    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [record["metadata"]["sequence"] for record in records] == list(range(len(events)))
    assert [record["metadata"]["uid"] for record in records] == [e["event_id"] for e in events]
    assert all(validate_record(record) == [] for record in records)
    assert f"{len(events)} ocsf record(s) written to {out}" in capsys.readouterr().out


def test_audit_export_ndjson_is_the_stored_lines_and_a_window_leaves_out_the_rest(
    stage: Resources, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = fresh_events()[:4]
    events[0]["event_time"] = "2020-01-01T00:00:00.000Z"  # long before the window
    write(stage, events)

    assert cli(tmp_path, "export", "--format", "ndjson", *window()) == 0

    printed = capsys.readouterr()
    assert printed.out.encode().splitlines() == stored_lines(stage)[1:]
    assert printed.err == ""  # progress only on a terminal


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["--from", "tomorrow-ish", "--to", "now"], 2),
        (["--from", "now", "--to", "-1h"], 2),
        (["--from", "-1h", "--to", "now", "--format", "csv"], 2),
        (["--from", "-1h", "--to", "now", "--out", "/nonexistent/dir/file"], 2),
    ],
    ids=["unreadable time", "empty window", "unknown format", "unwritable file"],
)
def test_audit_export_refuses_what_it_cannot_do_without_a_traceback(
    stage: Resources,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    status: int,
) -> None:
    assert cli(tmp_path, "export", *args) == status
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip()


def test_an_exported_record_checks_against_the_ledger_and_its_signed_checkpoint(
    stage: Resources, tmp_path: Path
) -> None:
    write(stage, fresh_events()[:6])
    write(stage, fresh_events()[6:11])
    kms = boto3.client("kms", region_name=REGION)
    state = LedgerState(dynamodb(), stage.state_table)
    signer = KmsSigner(kms, stage.digest_key_alias)
    digests = DigestWriter(
        s3(), stage.audit_bucket, state, signer, stage="test", origin=ORIGIN, anchor=None
    )
    digests.write()
    out = tmp_path / "out.ndjson"
    assert cli(tmp_path, "export", *window(), "--out", str(out)) == 0
    record = [json.loads(line) for line in out.read_text().splitlines()][8]

    # What a SIEM's copy says: the sequence, and the tree head under the checkpoint's origin.
    sequence = record["metadata"]["sequence"]
    unmapped = record["unmapped"]
    size, root = int(unmapped["gatehouse.ledger.tree_size"]), unmapped["gatehouse.ledger.root"]
    assert unmapped["gatehouse.ledger.origin"] == ORIGIN

    # The ledger's side: the stored line at that sequence, re-hashed, is included under it.
    objects = state.objects()
    (holder,) = [o for o in objects if o.first_sequence <= sequence < o.first_sequence + o.count]
    assert (holder.tree_size, holder.root) == (size, root)
    assert holder.key == unmapped["gatehouse.ledger.object"]
    body = s3().get_object(Bucket=stage.audit_bucket, Key=holder.key, VersionId=holder.version_id)
    lines = split_lines(gunzip(body["Body"].read()))
    line = lines[sequence - holder.first_sequence]
    assert json.loads(line)["event_id"] == record["metadata"]["uid"]
    before = state.object_before(holder.first_sequence)
    frontier = [(n, bytes.fromhex(h)) for n, h in (before.frontier if before else ())]
    path = inclusion_path(frontier, [leaf_hash(each) for each in lines], sequence)
    assert verify_inclusion(leaf_hash(line), sequence, size, path, bytes.fromhex(root))
    # A line that is not the stored one is not included.
    assert not verify_inclusion(leaf_hash(line + b" "), sequence, size, path, bytes.fromhex(root))

    # And that head is one the signed digest lists: the proof checks with the stage's key.
    proof = Prover(s3(), stage.audit_bucket, state).prove(record["metadata"]["uid"])
    assert (proof["leaf_index"], proof["tree_size"], proof["root"]) == (sequence, size, root)
    public_key: Any = load_der_public_key(
        kms.get_public_key(KeyId=stage.digest_key_alias)["PublicKey"]
    )
    assert check_proof(proof, public_key) == []
    assert proof["digest"]["digest"]["origin"] == ORIGIN


# --- writing the lake as Security Lake's provider roles ------------------------------------

LAKE_ACCOUNT = "111122223333"
PROVIDER_ROLE = f"arn:aws:iam::{LAKE_ACCOUNT}:role/AmazonSecurityLake-Provider-{{source}}-{REGION}"


def test_the_export_writes_each_source_as_its_provider_role(
    stage: Resources, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GATEHOUSE_OCSF_EXPORT_ROLE_ARN", PROVIDER_ROLE)
    monkeypatch.setenv("GATEHOUSE_OCSF_EXPORT_EXTERNAL_ID", "lake-ext-7")
    container = Container(Settings.from_environment())
    asked: list[dict[str, Any]] = []
    answered: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        asked.append(dict(params))

    def keep(parsed: dict[str, Any], **_: Any) -> None:
        answered.append(parsed["Credentials"])

    container.clients.sts.meta.events.register("provide-client-params.sts.AssumeRole", record)
    container.clients.sts.meta.events.register("after-call.sts.AssumeRole", keep)
    entrypoints.use_container(container)
    write(stage, fresh_events())

    entrypoints.export_ocsf(scheduled_event())

    sources = {key.split("/")[2] for key in lake_files(stage)}
    assert sources == set(SOURCES.values())  # every class of the golden lines
    # One session per source, each the role Security Lake made for it, with the external ID.
    assert sorted(call["RoleArn"] for call in asked) == sorted(
        PROVIDER_ROLE.replace("{source}", source) for source in sources
    )
    assert {(call["ExternalId"], call["RoleSessionName"]) for call in asked} == {
        ("lake-ext-7", "gatehouse-ocsf-export")
    }
    # The credentials the files were written with are those sessions'.
    for credentials in answered:
        who = boto3.client(
            "sts",
            region_name=REGION,
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        ).get_caller_identity()
        assert who["Arn"].startswith(f"arn:aws:sts::{LAKE_ACCOUNT}:assumed-role/")
        assert who["Arn"].endswith("/gatehouse-ocsf-export")


def test_a_provider_role_that_cannot_be_assumed_stops_the_export_naming_it(
    stage: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEHOUSE_OCSF_EXPORT_ROLE_ARN", PROVIDER_ROLE)
    # STS cannot be reached (a closed port): the role cannot be assumed.
    monkeypatch.setenv("GATEHOUSE_STS_ENDPOINT_URL", "http://127.0.0.1:9")
    entrypoints.use_container(Container(Settings.from_environment()))
    write(stage, fresh_events())

    with pytest.raises(ExportUnavailable, match="cannot assume arn:aws:iam::111122223333:role/"):
        entrypoints.export_ocsf(scheduled_event())

    assert lake_files(stage) == {}
    assert ExportCursor(dynamodb(), stage.state_table).read().next_sequence == 0


def test_an_event_with_values_no_column_holds_is_exported_not_stuck(
    stage: Resources, tmp_path: Path
) -> None:
    # What anyone who may send to the audit queue could plant: the writer stores it.
    events = fresh_events()[:3]
    [planted] = [event for event in events if event.get("principal")][:1]
    planted["resource"]["host"] = 123
    planted["principal"]["email"] = ["a@example.com"]
    write(stage, events)

    entrypoints.export_ocsf(scheduled_event())

    rows = [
        row for payload in lake_files(stage).values() for row in parquet_rows(payload, tmp_path)
    ]
    assert sorted(row["metadata"]["sequence"] for row in rows) == [0, 1, 2]
    [odd] = [row for row in rows if row["metadata"]["uid"] == planted["event_id"]]
    kept = {k: v for k, v in odd["unmapped"].items() if k.startswith("gatehouse.unfit.")}
    assert set(kept.values()) == {'["a@example.com"]', "123"}
    assert ExportCursor(dynamodb(), stage.state_table).read().next_sequence == 3
