"""OCSF records of one class as one Parquet file, under a fixed schema per class.

Security Lake (and Glue's crawler behind it) wants every file of a source to
have one schema, so the columns are declared here, not inferred from a batch:
a member a record has and its class's schema lacks would be lost, which the
tests rule out by reading every mapped record back. DuckDB writes the file
(zstd); it is imported only when a file is written.

Why DuckDB: it is one ~60 MB native module with no dependencies (pyarrow is
~136 MB; fastparquet needs numpy and pandas, ~120 MB), it writes nested
structs, lists and maps, the CLI already pins it, and it runs offline: its
JSON and Parquet support are built in, and extension downloads are turned off.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chalicelib.ocsf.errors import ExportUnavailable

_TEXT = "VARCHAR"
_NAMED = "STRUCT(name VARCHAR)"
_USER = (
    "STRUCT(uid VARCHAR, name VARCHAR, email_addr VARCHAR, type_id INTEGER, type VARCHAR, "
    f"groups {_NAMED}[])"
)
_POLICY = 'STRUCT(name VARCHAR, uid VARCHAR, version VARCHAR, "desc" VARCHAR, is_applied BOOLEAN)'
_ACTOR = (
    f"STRUCT(user {_USER}, session STRUCT(uid VARCHAR, issuer VARCHAR, credential_uid VARCHAR, "
    "is_mfa BOOLEAN, expiration_time BIGINT), idp STRUCT(name VARCHAR), app_uid VARCHAR, "
    f"authorizations STRUCT(decision VARCHAR, policy {_POLICY})[])"
)
_METADATA = (
    "STRUCT(version VARCHAR, uid VARCHAR, "
    "product STRUCT(name VARCHAR, vendor_name VARCHAR, uid VARCHAR), sequence BIGINT, "
    "log_name VARCHAR, log_provider VARCHAR, original_time VARCHAR, correlation_uid VARCHAR, "
    "profiles VARCHAR[])"
)
_COMMON: dict[str, str] = {
    "activity_id": "INTEGER",
    "activity_name": _TEXT,
    "category_uid": "INTEGER",
    "category_name": _TEXT,
    "class_uid": "INTEGER",
    "class_name": _TEXT,
    "type_uid": "BIGINT",
    "type_name": _TEXT,
    "severity_id": "INTEGER",
    "severity": _TEXT,
    "time": "BIGINT",
    "metadata": _METADATA,
    "status_id": "INTEGER",
    "status": _TEXT,
    "status_code": _TEXT,
    "status_detail": _TEXT,
    "message": _TEXT,
    "actor": _ACTOR,
    "src_endpoint": "STRUCT(ip VARCHAR)",
    "unmapped": "MAP(VARCHAR, VARCHAR)",
}
# A finding names no request: no status, actor or source of its own.
_NOT_FINDINGS = frozenset({"status_id", "status", "status_code", "status_detail", "actor"})
_NOT_FINDINGS |= {"src_endpoint"}
SCHEMAS: dict[int, dict[str, str]] = {
    4002: {
        **_COMMON,
        "duration": "BIGINT",
        "http_request": (
            "STRUCT(uid VARCHAR, http_method VARCHAR, user_agent VARCHAR, url STRUCT("
            "hostname VARCHAR, path VARCHAR, query_string VARCHAR, scheme VARCHAR, "
            "url_string VARCHAR))"
        ),
        "http_response": ("STRUCT(code INTEGER, length BIGINT, latency INTEGER, message VARCHAR)"),
        "dst_endpoint": "STRUCT(hostname VARCHAR, svc_name VARCHAR)",
        "action_id": "INTEGER",
        "action": _TEXT,
        "disposition_id": "INTEGER",
        "disposition": _TEXT,
        "firewall_rule": "STRUCT(uid VARCHAR, name VARCHAR)",
    },
    3002: {
        **_COMMON,
        "auth_protocol_id": "INTEGER",
        "auth_protocol": _TEXT,
        "user": _USER,
        "session": (
            "STRUCT(uid VARCHAR, issuer VARCHAR, expiration_time BIGINT, expiration_reason VARCHAR)"
        ),
        "http_request": "STRUCT(uid VARCHAR, user_agent VARCHAR)",
    },
    2004: {
        **{name: kind for name, kind in _COMMON.items() if name not in _NOT_FINDINGS},
        "finding_info": (
            'STRUCT(uid VARCHAR, title VARCHAR, "desc" VARCHAR, analytic STRUCT(uid VARCHAR, '
            "name VARCHAR, type_id INTEGER), first_seen_time BIGINT, last_seen_time BIGINT, "
            "related_events STRUCT(uid VARCHAR)[], related_events_count INTEGER)"
        ),
    },
    3004: {
        **_COMMON,
        "comment": _TEXT,
        "entity": (
            "STRUCT(type_id INTEGER, type VARCHAR, uid VARCHAR, name VARCHAR, version VARCHAR, "
            f"user {_USER}, policy {_POLICY})"
        ),
    },
}


def write_parquet(class_uid: int, records: Sequence[dict[str, Any]]) -> bytes:
    """One Parquet file (zstd) of ``records``, all of class ``class_uid``, in their order.

    Raises
    ------
    KeyError
        For a class without a schema here.
    ValueError
        When a record is of another class.
    """
    columns = SCHEMAS[class_uid]
    if any(record.get("class_uid") != class_uid for record in records):
        raise ValueError(f"every record of one file is of class {class_uid}")
    try:
        import duckdb
    except ImportError as exc:
        # DuckDB is the CLI's (and the local stack's), never in every function's package:
        # a deployed exporter needs it from a layer of its own.
        raise ExportUnavailable(
            "the OCSF export writes Parquet with DuckDB, which this function's package lacks: "
            "attach a DuckDB layer to ocsf_export (docs/ocsf.md)"
        ) from exc

    with tempfile.TemporaryDirectory(prefix="gatehouse-ocsf-") as scratch:
        folder = Path(scratch)
        source, target = folder / "records.ndjson", folder / "records.parquet"
        source.write_text(
            "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records),
            encoding="utf-8",
        )
        connection = duckdb.connect(
            config={
                # Offline and inside Lambda: nothing fetched, only /tmp written.
                "autoinstall_known_extensions": False,
                "home_directory": scratch,
                "temp_directory": scratch,
            }
        )
        try:
            connection.execute(
                # The target is this function's own temporary file (DuckDB binds no COPY path).
                "COPY (SELECT * FROM read_json(?, format = 'newline_delimited', columns = ?)) "  # noqa: S608
                "TO '" + str(target).replace("'", "''") + "' (FORMAT parquet, COMPRESSION zstd)",
                [str(source), columns],
            )
        finally:
            connection.close()
        return target.read_bytes()
