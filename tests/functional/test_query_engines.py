"""The query engines against AWS (moto in-process): Athena's API, the ledger's objects in S3.

Athena: moto runs no SQL, so its results are seeded (``query_results_queue``)
and, where moto falls short of Athena (no paging, no statistics, never
FAILED), a botocore hook makes its answers Athena's. Local: the real ledger
writer stores events in the versioned bucket and a CloudTrail file sits in
the trail's layout; the engine syncs them by version into its cache.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.athena.models import QueryResults, athena_backends

from chalicelib.audit import AuditWriter
from chalicelib.audit.emitter import serialize_event
from chalicelib.audit.schema import (
    DecisionRecord,
    RequestRecord,
    ResourceRecord,
    build_event,
)
from chalicelib.identity import Identity
from chalicelib.ledger import LedgerState
from chalicelib.reasons import Reason
from gatehouse.cli import main
from gatehouse.dev.bootstrap import Resources, bootstrap
from gatehouse.query import AthenaEngine, LocalEngine, QueryError, QueryParamError
from gatehouse.query.dataset import write_records
from gatehouse.query.errors import QueryFailed, QueryNotReadOnly
from gatehouse.resources import ResourceNames

ACCOUNT = "123456789012"
REGION = "us-east-1"
WORKGROUP = "gatehouse-test"
DATABASE = "gatehouse_test"
TRAIL_BUCKET = "trail-bucket"


@pytest.fixture
def athena() -> Iterator[None]:
    """moto with the workgroup (enough for the Athena engine)."""
    with mock_aws():
        boto3.client("athena", region_name=REGION).create_work_group(Name=WORKGROUP)
        yield


@pytest.fixture
def aws(athena: None) -> Resources:
    """Also every resource of the stack: the audit bucket (versioned) and the ledger's table."""
    names = ResourceNames("test", ACCOUNT, REGION)
    return bootstrap(lambda service: boto3.client(service, region_name=REGION), names)


def seed(columns: list[tuple[str, str]], rows: list[list[str | None]]) -> None:
    """Queue one Athena result: the header row, then ``rows`` (all text, as Athena sends)."""
    header = {"Data": [{"VarCharValue": name} for name, _ in columns]}
    data = [
        {"Data": [{} if cell is None else {"VarCharValue": cell} for cell in row]} for row in rows
    ]
    info = [{"Name": name, "Type": kind} for name, kind in columns]
    athena_backends[ACCOUNT][REGION].query_results_queue.append(QueryResults([header, *data], info))


class AthenaLikeMoto:
    """Makes moto's answers Athena's: pages of ``page_size`` rows, statistics, a state sequence."""

    def __init__(
        self,
        client: Any,
        page_size: int = 2,
        scanned: int = 0,
        states: list[dict[str, str]] | None = None,
    ):
        self.page_size, self.scanned, self.states = page_size, scanned, list(states or [])
        self.tokens: dict[str, int] = {}
        events = client.meta.events
        events.register("before-parameter-build.athena.GetQueryResults", self._remember_token)
        events.register("after-call.athena.GetQueryResults", self._page)
        events.register("after-call.athena.GetQueryExecution", self._execution)

    def _remember_token(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["start"] = int(params.get("NextToken") or 0)

    def _page(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        rows = parsed["ResultSet"]["Rows"]
        start = context.get("start", 0)
        parsed["ResultSet"]["Rows"] = rows[start : start + self.page_size]
        if start + self.page_size < len(rows):
            parsed["NextToken"] = str(start + self.page_size)

    def _execution(self, parsed: dict[str, Any], **_: Any) -> None:
        if self.states:
            parsed["QueryExecution"]["Status"] = self.states.pop(0)
        parsed["QueryExecution"]["Statistics"]["DataScannedInBytes"] = self.scanned


def athena_client() -> Any:
    return boto3.client("athena", region_name=REGION)


def test_athena_runs_in_the_workgroup_pages_types_and_costs(athena: None) -> None:
    client = athena_client()
    AthenaLikeMoto(client, page_size=2, scanned=123_456_789)
    columns = [
        ("who", "varchar"),
        ("n", "bigint"),
        ("at", "timestamp"),
        ("ok", "boolean"),
        ("ms", "double"),
        ("reasons", "array(varchar)"),
        ("day", "date"),
        ("zoned", "timestamp with time zone"),
    ]
    seed(
        columns,
        [
            [
                "alice@example.com",
                "3",
                "2026-03-10 10:00:00.123",
                "true",
                "1.5",
                "[no_rule, mfa]",
                "2026-03-10",
                "2026-03-10 10:00:00.000 UTC",
            ],
            [
                "bob@example.com",
                "0",
                "2026-03-10 11:00:00.000",
                "false",
                "2.0",
                "[]",
                "2026-03-11",
                None,
            ],
            [None, None, None, None, None, None, None, None],
        ],
    )
    engine = AthenaEngine(client, WORKGROUP, DATABASE, poll_interval=0.0)
    result = engine.run_named(
        "principal_activity",
        {"principal": "alice@example.com", "from": "2026-03-10 10:00", "to": "2026-03-10 12:00"},
    )
    assert result.columns == [name for name, _ in columns]
    assert result.rows == [
        (
            "alice@example.com",
            3,
            datetime(2026, 3, 10, 10, 0, 0, 123000),
            True,
            1.5,
            ["no_rule", "mfa"],
            datetime(2026, 3, 10).date(),
            datetime(2026, 3, 10, 10, tzinfo=UTC),
        ),
        (
            "bob@example.com",
            0,
            datetime(2026, 3, 10, 11),
            False,
            2.0,
            [],
            datetime(2026, 3, 11).date(),
            None,
        ),
        (None,) * 8,
    ]
    assert result.bytes_scanned == 123_456_789
    # 123,456,789 bytes is 117.7 MiB, billed as 118 MiB at $5/TiB.
    assert result.cost_usd == pytest.approx(118 * 2**20 * 5 / 2**40)
    (execution,) = athena_backends[ACCOUNT][REGION].executions.values()
    assert execution.workgroup.name == WORKGROUP
    assert execution.context == {"Database": DATABASE}
    assert "lower(:principal)" not in execution.query.lower()
    assert "LOWER('alice@example.com')" in execution.query
    assert "CAST('2026-03-10 10:00:00.000' AS TIMESTAMP)" in execution.query


def test_a_small_query_costs_the_ten_megabyte_minimum(athena: None) -> None:
    client = athena_client()
    AthenaLikeMoto(client, scanned=1000)
    seed([("n", "integer")], [["1"]])
    result = AthenaEngine(client, WORKGROUP, DATABASE, poll_interval=0.0).run("SELECT 1 AS n")
    assert result.rows == [(1,)]
    assert (result.bytes_scanned, result.cost_usd) == (1000, pytest.approx(10 * 2**20 * 5 / 2**40))


def test_athena_polls_with_backoff_until_done(athena: None) -> None:
    client = athena_client()
    running = {"State": "RUNNING"}
    AthenaLikeMoto(client, states=[{"State": "QUEUED"}, running, running, {"State": "SUCCEEDED"}])
    seed([("n", "integer")], [["1"]])
    waits: list[float] = []
    engine = AthenaEngine(
        client, WORKGROUP, DATABASE, poll_interval=0.25, max_poll_interval=0.6, sleep=waits.append
    )
    assert engine.run("SELECT 1 AS n").rows == [(1,)]
    assert waits == [0.25, 0.5, 0.6]


@pytest.mark.parametrize("state", ["FAILED", "CANCELLED"])
def test_a_failed_query_raises_with_athenas_reason(athena: None, state: str) -> None:
    client = athena_client()
    reason = "Query exhausted resources: bytes scanned limit of the workgroup exceeded"
    AthenaLikeMoto(client, states=[{"State": state, "StateChangeReason": reason}])
    engine = AthenaEngine(client, WORKGROUP, DATABASE, poll_interval=0.0)
    with pytest.raises(QueryFailed, match=f"{state}: Query exhausted resources"):
        engine.run("SELECT 1")


def test_bad_input_never_reaches_athena(athena: None) -> None:
    engine = AthenaEngine(athena_client(), WORKGROUP, DATABASE)
    with pytest.raises(QueryParamError, match="missing param"):
        engine.run_named("principal_activity", {"principal": "a"})
    with pytest.raises(QueryParamError, match="not 'YYYY-MM-DD"):
        engine.run_named("principal_activity", {"principal": "a", "from": "soon", "to": "later"})
    with pytest.raises(QueryNotReadOnly):
        engine.run("DROP TABLE audit_events")
    assert athena_backends[ACCOUNT][REGION].executions == {}


# --- the local engine over the bucket ------------------------------------------------------


ALICE = Identity(
    "https://idp.example.com", "sub-alice", "gatehouse", 1_900_000_000, email="alice@example.com"
)


def request_event(request_id: str, path: str, identity: Identity | None = ALICE) -> dict[str, Any]:
    request = RequestRecord(
        request_id,
        None,
        None,
        None,
        "test",
        "203.0.113.7",
        "curl/8",
        "api.example.com",
        "GET",
        path,
        None,
    )
    decision = DecisionRecord("allow", (Reason.ALLOW_RULE_MATCHED,), ("r1",), 3, "c" * 8)
    return build_event(
        "decision", request, identity=identity, decision=decision, resource=ResourceRecord("api")
    )


def store(aws: Resources, events: list[dict[str, Any]]) -> None:
    s3, dynamodb = (
        boto3.client("s3", region_name=REGION),
        boto3.client("dynamodb", region_name=REGION),
    )
    writer = AuditWriter(s3, aws.audit_bucket, LedgerState(dynamodb, aws.state_table))
    stored, _ = writer.write([(json.dumps(event), event["event_id"]) for event in events])
    assert stored is not None


def put_trail_file(records: list[dict[str, Any]], day: str = "2026/03/10") -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=TRAIL_BUCKET)
    name = f"{ACCOUNT}_CloudTrail_{REGION}_20260310T1000Z_x.json.gz"
    key = f"AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/{day}/{name}"
    s3.put_object(
        Bucket=TRAIL_BUCKET, Key=key, Body=gzip.compress(json.dumps({"Records": records}).encode())
    )


TRAIL_RECORD = {
    "eventVersion": "1.09",
    "userIdentity": {
        "type": "AssumedRole",
        "accessKeyId": "ASIAEXAMPLE",
        "sessionContext": {
            "sourceIdentity": "alice@example.com",
            "attributes": {"mfaAuthenticated": "false"},
        },
    },
    "eventTime": "2026-03-10T10:00:01Z",
    "eventSource": "execute-api.amazonaws.com",
    "eventName": "Invoke",
    "awsRegion": REGION,
    "userAgent": "python gatehouse/req-1",
    "requestParameters": {"path": "/orders", "nested": {"a": 1}},
    "readOnly": True,
    "resources": [
        {"ARN": "arn:aws:execute-api:x", "accountId": ACCOUNT, "type": "AWS::ApiGateway::Stage"}
    ],
    "eventID": "ev-1",
}


def test_local_engine_syncs_the_ledger_and_the_trail_by_version(
    aws: Resources, tmp_path: Path
) -> None:
    store(aws, [request_event("req-1", "/api/a"), request_event("req-2", "/api/b")])
    store(aws, [request_event("req-3", "/api/c", identity=None)])
    put_trail_file([TRAIL_RECORD])
    s3 = boto3.client("s3", region_name=REGION)
    engine = LocalEngine(tmp_path, s3, aws.audit_bucket, TRAIL_BUCKET, ACCOUNT)
    assert engine.synced == {
        "audit_objects": 2,
        "trail_objects": 1,
        "downloaded": 3,
        "unledgered": 0,
        "removed": 0,
    }
    now = datetime.now(UTC)
    # Ad-hoc SQL may carry a header typing its params (else they are varchar).
    result = engine.run(
        "-- param: now timestamp  the current time\n"
        "SELECT request.id, principal.email, ledger.sequence FROM audit_events "
        "WHERE dt = date_format(:now, '%Y-%m-%d') AND hour = hour(:now) ORDER BY ledger.sequence",
        {"now": now.strftime("%Y-%m-%d %H:%M:%S")},
    )
    assert result.engine == "local"
    assert result.bytes_scanned is None
    assert [row[:3] for row in result.rows] == [
        ("req-1", "alice@example.com", 0),
        ("req-2", "alice@example.com", 1),
        ("req-3", None, 2),
    ]
    trail = engine.run(
        "SELECT useridentity.sessioncontext.sourceidentity, "
        "json_extract_scalar(requestparameters, '$.path'), "
        "json_extract_scalar(requestparameters, '$.nested'), readonly, resources[1].arn, "
        'region, "timestamp" FROM cloudtrail_logs'
    )
    assert trail.rows == [
        (
            "alice@example.com",
            "/orders",
            None,
            "true",
            "arn:aws:execute-api:x",
            REGION,
            "2026/03/10",
        )
    ]
    # A second engine on the same cache downloads nothing.
    again = LocalEngine(tmp_path, s3, aws.audit_bucket, TRAIL_BUCKET, ACCOUNT)
    assert again.synced["downloaded"] == 0
    assert again.run("SELECT count(*) FROM audit_events").rows == [(3,)]


def test_an_overwritten_ledger_key_is_read_at_its_first_version(
    aws: Resources, tmp_path: Path
) -> None:
    store(aws, [request_event("req-1", "/api/a")])
    s3 = boto3.client("s3", region_name=REGION)
    (key,) = [
        item["Key"]
        for item in s3.list_objects_v2(Bucket=aws.audit_bucket)["Contents"]
        if item["Key"].startswith("audit/v1/events/")
    ]
    forged = request_event("forged", "/api/x")
    s3.put_object(
        Bucket=aws.audit_bucket,
        Key=key,
        Body=gzip.compress(json.dumps(forged).encode()),
        ChecksumAlgorithm="SHA256",
    )
    engine = LocalEngine(tmp_path, s3, aws.audit_bucket)
    assert engine.run("SELECT request.id FROM audit_events").rows == [("req-1",)]


def test_objects_no_digest_names_are_left_out_and_named(aws: Resources, tmp_path: Path) -> None:
    from tests.functional.test_ledger_verify import Ledger, forge

    ledger = Ledger(aws)
    ledger.write(3)
    ledger.digest()
    forged = forge(ledger, 1, b"")  # among sequences the digest covers
    ledger.write(2)  # the tail no digest names yet: read
    s3 = boto3.client("s3", region_name=REGION)

    engine = LocalEngine(tmp_path, s3, aws.audit_bucket)

    assert engine.synced["unledgered"] == 1
    ids = {row[0] for row in engine.run("SELECT event_id FROM audit_events").rows}
    assert len(ids) == 5
    assert "forged" not in ids
    assert any(forged in warning and "unledgered_object" in warning for warning in engine.warnings)
    # The digest is read once: a second engine finds what it names in the cache.
    again = LocalEngine(tmp_path, s3, aws.audit_bucket)
    assert again.synced["unledgered"] == 1
    assert (tmp_path / "digests").is_dir()


def test_objects_gone_from_the_buckets_leave_the_cache(aws: Resources, tmp_path: Path) -> None:
    store(aws, [request_event("req-1", "/api/a")])
    put_trail_file([TRAIL_RECORD])
    s3 = boto3.client("s3", region_name=REGION)
    LocalEngine(tmp_path, s3, aws.audit_bucket, TRAIL_BUCKET, ACCOUNT)
    # Another stack's buckets (a new `gatehouse dev` run) with the same cache: nothing old remains.
    s3.create_bucket(Bucket="other-audit")
    engine = LocalEngine(tmp_path, s3, "other-audit")
    assert engine.synced["removed"] == 2
    assert engine.run("SELECT count(*) FROM audit_events").rows == [(0,)]
    assert engine.run("SELECT count(*) FROM cloudtrail_logs").rows == [(0,)]


def test_local_engine_refuses_writes_and_files_outside_its_cache(tmp_path: Path) -> None:
    engine = LocalEngine.from_records([])
    with pytest.raises(QueryNotReadOnly, match="local engine runs only read-only"):
        engine.run("INSERT INTO audit_events SELECT * FROM audit_events")
    (tmp_path / "secret.csv").write_text("a\n1\n")
    with pytest.raises(QueryError, match="disabled by configuration"):
        engine.run(f"SELECT * FROM read_csv('{tmp_path / 'secret.csv'}')")  # noqa: S608


def test_from_records_partitions_by_event_time() -> None:
    event = request_event("req-1", "/api/a")
    event["event_time"] = "2026-03-10T23:59:59.999Z"
    event["ledger"] = {"sequence": 7}
    engine = LocalEngine.from_records([event], [TRAIL_RECORD])
    assert engine.run("SELECT dt, hour, ledger.sequence FROM audit_events").rows == [
        ("2026-03-10", 23, 7)
    ]
    assert engine.run('SELECT region, "timestamp" FROM cloudtrail_logs').rows == [
        (REGION, "2026/03/10")
    ]


def test_a_cache_built_before_a_column_was_added_is_rebuilt(tmp_path: Path) -> None:
    import duckdb

    from gatehouse.query.dataset import Dataset

    event = request_event("req-1", "/api/a")
    event["event_time"] = "2026-03-10T10:00:00.000Z"
    event["ledger"] = {"sequence": 0}
    cache = tmp_path / "cache"
    write_records(Dataset(cache), [event], [])
    LocalEngine(cache).close()
    # What an older release left: a Parquet file without the session column, and a
    # manifest that names its sources only.
    (built,) = (cache / "parquet" / "audit_events").glob("*.parquet")
    manifest = built.with_suffix(".json")
    document = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({key: document[key] for key in ("sources", "problems")}))
    connection = duckdb.connect()
    older = tmp_path / "older.parquet"
    paths = f"read_parquet('{built}')) TO '{older}'"  # tmp_path: no quote in it
    connection.execute(f"COPY (SELECT * EXCLUDE (session) FROM {paths} (FORMAT parquet)")  # noqa: S608
    connection.close()
    os.replace(older, built)

    engine = LocalEngine(cache)

    rows = engine.run('SELECT request.id, "session".action FROM audit_events').rows
    assert rows == [("req-1", None)]
    assert engine.warnings == []


# --- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def deployed(athena: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The environment of a deployed stage (no local stack running); its audit bucket."""
    monkeypatch.setenv("GATEHOUSE_AUDIT_BUCKET", "audit-bucket")
    monkeypatch.setenv("GATEHOUSE_STAGE", "test")
    monkeypatch.setenv("GATEHOUSE_ATHENA_WORKGROUP", WORKGROUP)
    monkeypatch.setenv("GATEHOUSE_TRAIL_BUCKET", TRAIL_BUCKET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setattr("gatehouse.query.athena.time.sleep", lambda _: None)
    return "audit-bucket"


def cli(tmp_path: Path, *args: str) -> int:
    return main(["--state-dir", str(tmp_path / "no-stack"), "audit", "query", *args])


def test_cli_defaults_to_athena_off_the_local_stack(
    deployed: Resources, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed([("who", "varchar"), ("n", "bigint")], [["alice@example.com", "2"]])
    assert (
        cli(
            tmp_path,
            "--named",
            "denies_with_reasons",
            "--param",
            "from=2026-03-10",
            "--param",
            "to=2026-03-11",
            "--format",
            "csv",
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert out == "who,n\nalice@example.com,2\n"
    assert "athena: scanned 0 bytes, cost $0.000048 (10 MB minimum)" in err
    (execution,) = athena_backends[ACCOUNT][REGION].executions.values()
    assert execution.context == {"Database": "gatehouse_test"}


def test_cli_local_engine_json(
    aws: Resources,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEHOUSE_AUDIT_BUCKET", aws.audit_bucket)
    monkeypatch.setenv("GATEHOUSE_TRAIL_BUCKET", TRAIL_BUCKET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    store(aws, [request_event("req-1", "/api/a")])
    put_trail_file([TRAIL_RECORD])
    start = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    end = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    code = cli(
        tmp_path,
        "--engine",
        "local",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--named",
        "principal_activity",
        "--param",
        "principal=ALICE@example.com",
        "--param",
        f"from={start}",
        "--param",
        f"to={end}",
        "--format",
        "json",
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    (row,) = json.loads(out)
    assert (row["kind"], row["request_id"], row["decision"], row["path"]) == (
        "request",
        "req-1",
        "allow",
        "/api/a",
    )
    assert "local: 1 rows" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--named", "nope"], "no named query 'nope'"),
        (["--named", "policy_changes", "--param", "from"], "expected NAME=VALUE"),
        (
            ["--named", "policy_changes", "--param", "from=2026-01-01", "--param", "to=x"],
            "--param to 'x' is not a time",
        ),
        (["SELECT 1", "--named", "policy_changes"], "either SQL or --named"),
        (["--engine", "local", "DELETE FROM audit_events"], "read-only"),
    ],
)
def test_cli_errors_are_one_line(
    deployed: Resources,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    assert cli(tmp_path, "--cache-dir", str(tmp_path / "cache"), *args) == 2
    assert message in capsys.readouterr().err


def test_cli_lists_the_named_queries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(tmp_path, "--list") == 0
    out = capsys.readouterr().out
    assert "principal_activity\n" in out
    assert "--param from=<timestamp>" in out


# --- unreadable objects ------------------------------------------------------------------

MALFORMED_LINES = {
    "not-json": b"{not json\n",
    "principal-string": b'{"event_id":"bad-1","event_time":"2026-03-10T10:00:00Z",'
    b'"principal":"alice"}\n',
    "sequence-string": b'{"event_id":"bad-2","event_time":"2026-03-10T10:00:00Z",'
    b'"ledger":{"sequence":"x"}}\n',
    "status-too-big": b'{"event_id":"bad-3","event_time":"2026-03-10T10:00:00Z",'
    b'"outcome":{"status":1000000000000000000000000000000}}\n',
    "invalid-utf8": b'{"event_id":"bad-4\xff\xfe","event_time":"2026-03-10T10:00:00Z"}\n',
    "top-level-array": b"[1,2]\n",
    "bad-event-time": b'{"event_id":"bad-5","event_time":"yesterday"}\n',
}


def store_hostile_objects(aws: Resources) -> tuple[str, list[str]]:
    """A real writer object with a lone-surrogate escape, then one bad object per variant.

    Returns the writer's key and the keys of the bad objects (some in the writer's
    partition, the non-gzip and truncated ones in a partition of their own).
    """
    s3 = boto3.client("s3", region_name=REGION)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    writer = AuditWriter(s3, aws.audit_bucket, LedgerState(dynamodb, aws.state_table))
    hostile = request_event("req-surrogate", "/api/s")
    hostile["source"]["user_agent"] = "curl/\udc80"
    good = [request_event(f"req-{n}", f"/api/{n}") for n in range(3)]
    # The emitter escapes what UTF-8 cannot hold as \udc80: JSON the writer accepts.
    body = serialize_event(hostile)
    assert "\\udc80" in body
    stored, _ = writer.write(
        [(body, "m-s")] + [(serialize_event(e), f"m-{n}") for n, e in enumerate(good)]
    )
    assert stored is not None
    (writer_key,) = [
        item["Key"]
        for item in s3.list_objects_v2(Bucket=aws.audit_bucket, Prefix="audit/v1/events/")[
            "Contents"
        ]
    ]
    partition = writer_key.rsplit("/", 1)[0]
    objects = {
        f"{partition}/{name}.ndjson.gz": gzip.compress(line)
        for name, line in MALFORMED_LINES.items()
    }
    full = gzip.compress(b'{"event_id":"cut-1","event_time":"2026-03-10T10:00:00Z"}\n' * 50)
    objects["audit/v1/events/dt=2026-03-10/hour=10/not-gzip.ndjson.gz"] = b"plain text"
    objects["audit/v1/events/dt=2026-03-10/hour=10/truncated.ndjson.gz"] = full[: len(full) // 2]
    objects["audit/v1/events/dt=2026-03-10/hour=10/good.ndjson.gz"] = gzip.compress(
        json.dumps({**request_event("req-10", "/api/10"), "ledger": {"sequence": 99}}).encode()
    )
    for key, data in objects.items():
        s3.put_object(Bucket=aws.audit_bucket, Key=key, Body=data, ChecksumAlgorithm="SHA256")
    return writer_key, sorted(objects)


def test_unreadable_lines_and_objects_are_skipped_counted_and_never_block_the_rest(
    aws: Resources, tmp_path: Path
) -> None:
    writer_key, keys = store_hostile_objects(aws)
    s3 = boto3.client("s3", region_name=REGION)
    engine = LocalEngine(tmp_path / "cache", s3, aws.audit_bucket)
    result = engine.run("SELECT request.id, source.user_agent FROM audit_events")
    found = dict(result.rows)
    # Every good event is there, the surrogate one with U+FFFD in place of the surrogate.
    assert found["req-surrogate"] == "curl/\ufffd"
    assert {"req-0", "req-1", "req-2", "req-10"} <= set(found)
    # The truncated object gives up the lines before the cut; the repairable lines are kept.
    assert 0 < sum(1 for request_id in found if request_id is None) < 60
    ids = engine.run("SELECT event_id FROM audit_events WHERE event_id LIKE 'bad-%'").rows
    assert sorted(ids) == [("bad-1",), ("bad-2",), ("bad-3",), ("bad-4\ufffd\ufffd",)]
    assert (
        engine.run(
            "SELECT principal, ledger.sequence, outcome.status FROM audit_events "
            "WHERE event_id IN ('bad-1', 'bad-2', 'bad-3')"
        ).rows
        == [(None, None, None)] * 3
    )
    skipped, repaired = result.warnings
    skipped_keys = [
        key
        for key in keys
        if key.rsplit("/", 1)[1].split(".")[0]
        in {"not-json", "top-level-array", "bad-event-time", "not-gzip", "truncated"}
    ]
    assert skipped.startswith("4 lines in 5 objects could not be read: ")
    for key in skipped_keys:
        assert key in skipped
    assert "not-gzip.ndjson.gz (unreadable)" in skipped
    assert repaired.startswith("5 lines in 5 objects were read with repairs")
    assert writer_key in repaired
    # A warm cache answers the same, with the same warnings, without re-reading.
    again = LocalEngine(tmp_path / "cache", s3, aws.audit_bucket)
    assert again.synced["downloaded"] == 0
    assert sorted(again.run("SELECT request.id FROM audit_events").rows, key=str) == sorted(
        engine.run("SELECT request.id FROM audit_events").rows, key=str
    )
    assert again.warnings == result.warnings


def test_cli_warns_on_stderr_of_what_could_not_be_read(
    aws: Resources,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEHOUSE_AUDIT_BUCKET", aws.audit_bucket)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    store_hostile_objects(aws)
    cache = tmp_path / "cache"
    code = cli(
        tmp_path,
        "--engine",
        "local",
        "--cache-dir",
        str(cache),
        "SELECT count(*) AS n FROM audit_events WHERE request.id = 'req-10'",
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.splitlines()[2] == "1"
    assert "warning: 4 lines in 5 objects could not be read: audit/v1/events/" in err
    assert "warning: 5 lines in 5 objects were read with repairs" in err


def test_the_cache_is_private_and_duckdb_spills_inside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "x.csv").write_text("a\n1\n")
    previous = os.umask(0o022)
    try:
        engine = LocalEngine(tmp_path / "home" / "cache")
        event = request_event("req-1", "/api/a")
        write_records(engine.dataset, [event], [TRAIL_RECORD])
        engine = LocalEngine(tmp_path / "home" / "cache")
    finally:
        os.umask(previous)
    root = tmp_path / "home" / "cache"
    paths = [root, *root.rglob("*")]
    assert any(path.suffix == ".parquet" for path in paths)
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    # Without a temp_directory, DuckDB would allow queries to read <cwd>/.tmp/.
    for path in ("./.tmp/x.csv", str(tmp_path / ".tmp" / "x.csv")):
        with pytest.raises(QueryError, match="disabled by configuration"):
            engine.run(f"SELECT * FROM read_csv('{path}')")  # noqa: S608
