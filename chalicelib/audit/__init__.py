"""The audit trail: event schema, emitter (SQS), writer (S3) and reader.

Exceptions::

    AuditError
     ├── AuditUnavailable    an event could not be enqueued (the request fails closed)
     └── AuditStorageError   a batch could not be stored in the audit bucket
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from chalicelib.audit.writer import AuditWriter, BatchResult, StoredObject

# The writer (and the ledger under it) loaded when first asked for: the
# authorizer and the proxy import this package on their cold start and only emit.
_LAZY = {name: "chalicelib.audit.writer" for name in ("AuditWriter", "BatchResult", "StoredObject")}


def __getattr__(name: str) -> Any:
    """Load a name of :data:`_LAZY` from its module on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


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
