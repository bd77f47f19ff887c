"""infra/athena.yaml is what the SQL files under infra/athena/ say, and says what Athena needs."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlglot
import yaml
from sqlglot import exp

from chalicelib.audit.gateway_events import gateway_event
from chalicelib.audit.schema import (
    EVENT_TYPES,
    DecisionRecord,
    RequestRecord,
    ResourceRecord,
    build_admin_event,
    build_alert_event,
    build_event,
    build_session_event,
)
from chalicelib.audit.sections import (
    AlertSection,
    PrincipalSection,
    SessionSection,
    SigningKeySection,
)
from gatehouse import infra_athena
from gatehouse.infra_athena import (
    QUERIES_DIR,
    TABLES_DIR,
    TEMPLATE_PATH,
    AthenaTemplateError,
    build_template,
    generate,
    hive_type,
    load_queries,
    load_tables,
    parse_table_ddl,
    render_template,
    stack_value,
)

QUERY_FILES = sorted(QUERIES_DIR.glob("*.sql"))
TABLE_FILES = sorted(TABLES_DIR.glob("*.sql"))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    # Long-form intrinsics only (the generator writes no short tags): safe_load reads it.
    loaded: dict[str, Any] = yaml.safe_load(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return loaded


def resources_of(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [res["Properties"] for res in template["Resources"].values() if res["Type"] == kind]


def test_the_checked_in_template_is_what_the_generator_builds_now() -> None:
    # Editing a SQL file without `make infra` fails here.
    assert TEMPLATE_PATH.read_text(encoding="utf-8") == generate(), "run `make infra`"
    assert infra_athena.main(["--check"]) == 0


def test_an_edited_query_makes_the_template_stale(tmp_path: Path) -> None:
    queries = tmp_path / "queries"
    shutil.copytree(QUERIES_DIR, queries)
    edited = queries / QUERY_FILES[0].name
    edited.write_text(edited.read_text(encoding="utf-8") + "\n-- a late edit\n", encoding="utf-8")
    rebuilt = render_template(build_template(load_tables(), load_queries(queries)))
    assert rebuilt != TEMPLATE_PATH.read_text(encoding="utf-8")
    assert "-- a late edit" in rebuilt


def test_every_query_file_is_a_named_query_with_its_exact_text(template: dict[str, Any]) -> None:
    named = {
        props["Name"]["Fn::Sub"].removeprefix("gatehouse-${Stage}-"): props
        for props in resources_of(template, "AWS::Athena::NamedQuery")
    }
    assert sorted(named) == [path.stem for path in QUERY_FILES]
    assert len(QUERY_FILES) >= 8
    for path in QUERY_FILES:
        props = named[path.stem]
        assert props["QueryString"] == path.read_text(encoding="utf-8")
        assert props["Database"] == {"Ref": "Database"}
        assert props["WorkGroup"] == {"Ref": "WorkGroup"}
        assert 0 < len(props["Description"]) <= 1024


def test_the_workgroup_limits_bytes_scanned_per_query(template: dict[str, Any]) -> None:
    (workgroup,) = resources_of(template, "AWS::Athena::WorkGroup")
    config = workgroup["WorkGroupConfiguration"]
    assert config["BytesScannedCutoffPerQuery"] == {"Ref": "BytesScannedCutoffPerQuery"}
    cutoff = template["Parameters"]["BytesScannedCutoffPerQuery"]
    assert cutoff["MinValue"] == 10_000_000  # Athena's floor
    assert 10_000_000 <= cutoff["Default"] <= 10_000_000_000
    # Clients cannot lift the limit (nor the result location) per query.
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["EngineVersion"] == {"SelectedEngineVersion": "Athena engine version 3"}
    encryption = config["ResultConfiguration"]["EncryptionConfiguration"]
    assert encryption["EncryptionOption"] in ("SSE_S3", "SSE_KMS", "CSE_KMS")


def test_the_results_bucket_is_private_and_encrypted_when_the_stack_creates_it(
    template: dict[str, Any],
) -> None:
    bucket = template["Resources"]["ResultsBucket"]
    assert bucket["Condition"] == "CreateResultsBucket"
    props = bucket["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    statement = template["Resources"]["ResultsBucketPolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ][0]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def glue_tables(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        props["TableInput"]["Name"]: props["TableInput"]
        for props in resources_of(template, "AWS::Glue::Table")
    }


def test_tables_use_partition_projection(template: dict[str, Any]) -> None:
    tables = glue_tables(template)
    assert set(tables) == {"audit_events", "cloudtrail_logs"}
    for name, table in tables.items():
        parameters = table["Parameters"]
        assert parameters["projection.enabled"] == "true", name
        location_template = parameters["storage.location.template"]["Fn::Sub"][0]
        for key in table["PartitionKeys"]:
            # Every partition key is projected and appears in the location template.
            assert f"projection.{key['Name']}.type" in parameters, (name, key)
            assert f"${{!{key['Name']}}}" in location_template, (name, key)


def test_the_audit_table_is_laid_out_as_the_writer_stores_events(template: dict[str, Any]) -> None:
    table = glue_tables(template)["audit_events"]
    assert [key["Name"] for key in table["PartitionKeys"]] == ["dt", "hour"]
    location, names = table["Parameters"]["storage.location.template"]["Fn::Sub"]
    # chalicelib/audit/writer.py: audit/v1/events/dt=YYYY-MM-DD/hour=HH/<object>
    assert location.startswith("s3://${AuditBucket}/audit/v1/events/dt=${!dt}/hour=${!hour}")
    assert names == {"AuditBucket": {"Ref": "AuditBucketName"}}
    assert table["Parameters"]["projection.dt.format"] == "yyyy-MM-dd"
    assert table["Parameters"]["projection.hour.digits"] == "2"
    serde = table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"]
    assert serde == "org.openx.data.jsonserde.JsonSerDe"


def test_the_cloudtrail_table_reads_the_trail_layout(template: dict[str, Any]) -> None:
    table = glue_tables(template)["cloudtrail_logs"]
    location, names = table["StorageDescriptor"]["Location"]["Fn::Sub"]
    assert location.startswith("s3://${TrailBucket}/AWSLogs/${AccountId}/CloudTrail/")
    assert names["TrailBucket"] == {"Ref": "TrailBucketName"}
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == (
        "com.amazon.emr.hive.serde.CloudTrailSerde"
    )


def ddl_columns(path: Path) -> tuple[list[exp.ColumnDef], list[exp.ColumnDef]]:
    """Columns and partition keys of a DDL file, read here independently of the generator."""
    statement = sqlglot.parse_one(path.read_text(encoding="utf-8"), read="athena")
    partitions = statement.find(exp.PartitionedByProperty)
    keys = list(partitions.this.expressions) if partitions else []
    return list(statement.this.expressions), keys


@pytest.mark.parametrize("path", TABLE_FILES, ids=lambda path: path.stem)
def test_glue_columns_are_the_ddl_columns(template: dict[str, Any], path: Path) -> None:
    table = glue_tables(template)[path.stem]
    columns, keys = ddl_columns(path)
    for glue, ddl in (
        (table["StorageDescriptor"]["Columns"], columns),
        (table["PartitionKeys"], keys),
    ):
        assert [column["Name"] for column in glue] == [column.name for column in ddl]
        for column, definition in zip(glue, ddl, strict=True):
            # The Glue type string, read back, is the DDL's type (nested fields included).
            assert exp.DataType.build(column["Type"], dialect="hive") == definition.args["kind"]


def test_audit_columns_cover_every_top_level_field_of_an_event() -> None:
    request = RequestRecord(
        "r1", None, None, None, "dev", "203.0.113.7", None, "h", "GET", "/", None
    )
    events = [
        build_event(
            "decision",
            request,
            identity=None,
            decision=DecisionRecord("deny", ()),
            resource=ResourceRecord(),
        ),
        build_admin_event("policy_change", stage="dev", details={}, operator="arn:x"),
        build_admin_event(
            "signing_key",
            stage="dev",
            details=SigningKeySection("issued", "k", "kms", 1, 2, "c" * 64),
            operator=None,
        ),
        gateway_event({"requestId": "r1", "requestTime": "1773136800000"}, stage="dev"),
        build_session_event(SessionSection("signed_in", "bs-1"), stage="dev"),
        build_alert_event(
            AlertSection("a1", "r", "break_glass", "high", "s", 1, None, "t", "t", [], None, None),
            stage="dev",
            event_time="2026-12-08T00:00:00.000Z",
        ),
    ]
    assert {event["event_type"] for event in events} | {"response", "grant"} == set(EVENT_TYPES)
    columns, keys = ddl_columns(TABLES_DIR / "audit_events.sql")
    names = {column.name for column in columns}
    for event in events:
        assert set(event) | {"ledger"} <= names, set(event) - names
    assert {key.name for key in keys} == {"dt", "hour"}
    # The columns close as the event does: its last sections, then the writer's ledger.
    assert [column.name for column in columns][-5:] == [
        "gateway",
        "signing_key",
        "session",
        "alert",
        "ledger",
    ]


@pytest.mark.parametrize(
    ("column", "section"),
    [("principal", PrincipalSection), ("session", SessionSection), ("alert", AlertSection)],
)
def test_a_sections_struct_has_its_fields_in_order(column: str, section: type) -> None:
    columns, _ = ddl_columns(TABLES_DIR / "audit_events.sql")
    (definition,) = [c for c in columns if c.name == column]
    members = [member.name for member in definition.args["kind"].expressions]
    assert members == [field.name for field in dataclasses.fields(section)]


def test_hive_types_of_nested_columns() -> None:
    table = parse_table_ddl(
        "CREATE EXTERNAL TABLE t (a STRUCT<b: ARRAY<STRUCT<c: BIGINT>>, d: MAP<STRING, DOUBLE>>, "
        "e DECIMAL(10, 2) COMMENT 'money') PARTITIONED BY (dt STRING) "
        "ROW FORMAT SERDE 'x.Serde' STORED AS TEXTFILE LOCATION 's3://${AuditBucket}/p/' "
        "TBLPROPERTIES ('projection.enabled' = 'true')"
    )
    assert [(column.name, column.type, column.comment) for column in table.columns] == [
        ("a", "struct<b:array<struct<c:bigint>>,d:map<string,double>>", None),
        ("e", "decimal(10,2)", "money"),
    ]
    assert table.input_format == "org.apache.hadoop.mapred.TextInputFormat"
    assert table.properties == {"projection.enabled": "true"}
    assert hive_type(exp.DataType.build("array<int>", dialect="hive")) == "array<int>"


@pytest.mark.parametrize(
    "text",
    [
        "SELECT 1",
        "CREATE EXTERNAL TABLE t (a STRING) LOCATION 's3://b/'",  # no SerDe nor formats
        "CREATE TABLE (",
    ],
)
def test_a_file_that_is_not_a_table_ddl_is_refused(text: str) -> None:
    with pytest.raises(AthenaTemplateError):
        parse_table_ddl(text)


def test_stack_placeholders_are_substituted_and_projection_ones_left_to_athena() -> None:
    assert stack_value("s3://b/x/${dt}/") == "s3://b/x/${dt}/"
    assert stack_value("s3://${AuditBucket}/e/dt=${dt}/hour=${hour}/") == {
        "Fn::Sub": [
            "s3://${AuditBucket}/e/dt=${!dt}/hour=${!hour}/",
            {"AuditBucket": {"Ref": "AuditBucketName"}},
        ]
    }
