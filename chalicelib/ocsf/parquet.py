"""OCSF records of one class as one Parquet file, under a fixed schema per class.

Security Lake (and Glue's crawler behind it) wants every file of a source to
have one schema, so the columns are declared here (:data:`SCHEMAS`), not
inferred from a batch. A member a record has and its class's schema lacks is
refused (``ValueError``), never dropped, and the tests read every mapped
record back.

The file is written by :mod:`.parquet_writer`, a small Parquet writer in pure
Python (GZIP pages, the footer in Thrift's compact protocol): the scheduled
exporter runs in the same Lambda package as every other function, which
stays small and needs no layer. DuckDB (about 60 MB) or pyarrow (about
136 MB) would have had to ship with the proxy and the authorizer, or in a
layer of the exporter's own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from chalicelib.ocsf.common import valid_text
from chalicelib.ocsf.parquet_writer import (
    BOOLEAN,
    INT32,
    INT64,
    STRING,
    STRING_MAP,
    ColumnType,
    ListOf,
    Primitive,
    StringMap,
    Struct,
    struct,
    write_table,
)

_NAMED = struct(name=STRING)
_USER = struct(
    uid=STRING, name=STRING, email_addr=STRING, type_id=INT32, type=STRING, groups=ListOf(_NAMED)
)
_POLICY = struct(name=STRING, uid=STRING, version=STRING, desc=STRING, is_applied=BOOLEAN)
_ACTOR = struct(
    user=_USER,
    session=struct(
        uid=STRING, issuer=STRING, credential_uid=STRING, is_mfa=BOOLEAN, expiration_time=INT64
    ),
    idp=struct(name=STRING),
    app_uid=STRING,
    authorizations=ListOf(struct(decision=STRING, policy=_POLICY)),
)
_METADATA = struct(
    version=STRING,
    uid=STRING,
    product=struct(name=STRING, vendor_name=STRING, uid=STRING),
    sequence=INT64,
    log_name=STRING,
    log_provider=STRING,
    original_time=STRING,
    correlation_uid=STRING,
    profiles=ListOf(STRING),
)
_COMMON: dict[str, ColumnType] = {
    "activity_id": INT32,
    "activity_name": STRING,
    "category_uid": INT32,
    "category_name": STRING,
    "class_uid": INT32,
    "class_name": STRING,
    "type_uid": INT64,
    "type_name": STRING,
    "severity_id": INT32,
    "severity": STRING,
    "time": INT64,
    "metadata": _METADATA,
    "status_id": INT32,
    "status": STRING,
    "status_code": STRING,
    "status_detail": STRING,
    "message": STRING,
    "actor": _ACTOR,
    "src_endpoint": struct(ip=STRING),
    "unmapped": STRING_MAP,
}
# A finding names no request: no status, actor or source of its own.
_NOT_FINDINGS = frozenset({"status_id", "status", "status_code", "status_detail", "actor"})
_NOT_FINDINGS |= {"src_endpoint"}
SCHEMAS: dict[int, dict[str, ColumnType]] = {
    4002: {
        **_COMMON,
        "duration": INT64,
        "http_request": struct(
            uid=STRING,
            http_method=STRING,
            user_agent=STRING,
            url=struct(
                hostname=STRING,
                path=STRING,
                query_string=STRING,
                scheme=STRING,
                url_string=STRING,
            ),
        ),
        "http_response": struct(code=INT32, length=INT64, latency=INT32, message=STRING),
        "dst_endpoint": struct(hostname=STRING, svc_name=STRING),
        "action_id": INT32,
        "action": STRING,
        "disposition_id": INT32,
        "disposition": STRING,
        "firewall_rule": struct(uid=STRING, name=STRING),
    },
    3002: {
        **_COMMON,
        "auth_protocol_id": INT32,
        "auth_protocol": STRING,
        "user": _USER,
        "session": struct(
            uid=STRING, issuer=STRING, expiration_time=INT64, expiration_reason=STRING
        ),
        "http_request": struct(uid=STRING, user_agent=STRING),
    },
    2004: {
        **{name: kind for name, kind in _COMMON.items() if name not in _NOT_FINDINGS},
        "finding_info": struct(
            uid=STRING,
            title=STRING,
            desc=STRING,
            analytic=struct(uid=STRING, name=STRING, type_id=INT32),
            first_seen_time=INT64,
            last_seen_time=INT64,
            related_events=ListOf(struct(uid=STRING)),
            related_events_count=INT32,
        ),
    },
    3004: {
        **_COMMON,
        "comment": STRING,
        "entity": struct(
            type_id=INT32,
            type=STRING,
            uid=STRING,
            name=STRING,
            version=STRING,
            user=_USER,
            policy=_POLICY,
        ),
    },
}


def write_parquet(class_uid: int, records: Sequence[dict[str, Any]]) -> bytes:
    """One Parquet file (GZIP) of ``records``, all of class ``class_uid``, in their order.

    Raises
    ------
    KeyError
        For a class without a schema here.
    ValueError
        When a record is of another class, has a member its class's schema
        lacks, or a value of another type than its column's (the message
        names the row and the column).
    """
    columns = SCHEMAS[class_uid]
    if any(record.get("class_uid") != class_uid for record in records):
        raise ValueError(f"every record of one file is of class {class_uid}")
    return write_table(columns, records, codec="gzip")


# Where fit_record keeps what a column could not hold: unmapped["gatehouse.unfit.<path>"].
UNFIT_PREFIX = "gatehouse.unfit."
_RANGES = {INT32: (-(2**31), 2**31 - 1), INT64: (-(2**63), 2**63 - 1)}


def fit_record(class_uid: int, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` made to fit its class's schema, nothing lost: what does not fit moves.

    The mapping writes what the schema holds; a stored event can still carry
    anything JSON can (the queue takes any object an emitter sends), and one
    value of the wrong type must not stop the export of everything after it.
    Each value no column can hold (a number where text is, text where a
    number is, an integer out of range, a member the schema lacks, a
    struct or list that is not one) becomes null in its column, and its JSON
    goes into ``unmapped`` under ``gatehouse.unfit.<path>``. Text is made
    valid Unicode (a lone surrogate becomes U+FFFD), map keys included.

    Raises
    ------
    KeyError
        For a class without a schema here.
    """
    unfit: dict[str, str] = {}
    fitted = _fit_struct(struct(**SCHEMAS[class_uid]), record, "", unfit)
    if unfit:
        unmapped = fitted.get("unmapped") or {}
        fitted["unmapped"] = {**unmapped, **unfit}
    return fitted


def _fit(kind: ColumnType, value: Any, path: str, unfit: dict[str, str]) -> Any:
    if value is None:
        return None
    if isinstance(kind, Struct):
        if isinstance(value, dict):
            return _fit_struct(kind, value, f"{path}.", unfit)
    elif isinstance(kind, ListOf):
        if isinstance(value, list):
            return [_fit(kind.element, item, f"{path}[{n}]", unfit) for n, item in enumerate(value)]
    elif isinstance(kind, StringMap):
        if isinstance(value, dict):
            return {valid_text(str(key)): _map_value(item) for key, item in value.items()}
    elif _holds(kind, value):
        return valid_text(value) if kind is STRING else value
    unfit[UNFIT_PREFIX + path] = valid_text(json.dumps(value, ensure_ascii=False, default=str))
    return None


def _fit_struct(
    kind: Struct, value: dict[str, Any], prefix: str, unfit: dict[str, str]
) -> dict[str, Any]:
    members = dict(kind.fields)
    fitted: dict[str, Any] = {}
    for name, member in value.items():
        if name in members:
            fitted[name] = _fit(members[name], member, prefix + name, unfit)
        elif member is not None:
            unfit[UNFIT_PREFIX + prefix + valid_text(str(name))] = valid_text(
                json.dumps(member, ensure_ascii=False, default=str)
            )
    return fitted


def _holds(kind: Primitive, value: Any) -> bool:
    if kind is STRING:
        return isinstance(value, str)
    if kind is BOOLEAN:
        return isinstance(value, bool)
    low, high = _RANGES[kind]
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _map_value(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return None if value is None else valid_text(value)
    return valid_text(json.dumps(value, ensure_ascii=False, default=str))
