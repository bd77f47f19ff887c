"""The audit trail: event schema, emitter (SQS), writer (S3) and reader.

Exceptions::

    AuditError
     ├── AuditUnavailable    an event could not be enqueued (the request fails closed)
     └── AuditStorageError   a batch could not be stored in the audit bucket
"""

from chalicelib.audit.emitter import AuditEmitter, SqsAuditSink, serialize_event
from chalicelib.audit.errors import AuditError, AuditStorageError, AuditUnavailable
from chalicelib.audit.schema import (
    DecisionRecord,
    RequestRecord,
    ResourceRecord,
    build_event,
    uuid7,
)
from chalicelib.audit.sections import ResponseRecord
from chalicelib.audit.writer import AuditWriter, BatchResult, StoredObject

__all__ = [
    "AuditEmitter",
    "AuditError",
    "AuditStorageError",
    "AuditUnavailable",
    "AuditWriter",
    "BatchResult",
    "DecisionRecord",
    "RequestRecord",
    "ResourceRecord",
    "ResponseRecord",
    "SqsAuditSink",
    "StoredObject",
    "build_event",
    "serialize_event",
    "uuid7",
]
