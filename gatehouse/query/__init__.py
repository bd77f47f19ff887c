"""Querying the audit trail with Athena SQL: on Athena, or locally on DuckDB.

Public API (the query contract)::

    from gatehouse.query import (QueryError, NamedQuery, QueryParam, load_named_query,
                                 named_queries, QueryResult, LocalEngine, AthenaEngine)

Names are imported on first use, so ``import gatehouse.query`` stays cheap
(DuckDB and sqlglot load only when an engine or a named query is needed).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gatehouse.query.athena import AthenaEngine
    from gatehouse.query.errors import (
        CacheSyncError,
        NotTranslatable,
        QueryError,
        QueryFailed,
        QueryNotReadOnly,
        QueryParamError,
        QuerySyntaxError,
        UnknownNamedQuery,
    )
    from gatehouse.query.local import LocalEngine
    from gatehouse.query.params import NamedQuery, QueryParam, load_named_query, named_queries
    from gatehouse.query.result import QueryResult, athena_cost_usd

_EXPORTS = {
    "AthenaEngine": "gatehouse.query.athena",
    "LocalEngine": "gatehouse.query.local",
    "NamedQuery": "gatehouse.query.params",
    "QueryParam": "gatehouse.query.params",
    "load_named_query": "gatehouse.query.params",
    "named_queries": "gatehouse.query.params",
    "QueryResult": "gatehouse.query.result",
    "athena_cost_usd": "gatehouse.query.result",
    "QueryError": "gatehouse.query.errors",
    "QueryParamError": "gatehouse.query.errors",
    "QuerySyntaxError": "gatehouse.query.errors",
    "QueryNotReadOnly": "gatehouse.query.errors",
    "UnknownNamedQuery": "gatehouse.query.errors",
    "NotTranslatable": "gatehouse.query.errors",
    "QueryFailed": "gatehouse.query.errors",
    "CacheSyncError": "gatehouse.query.errors",
}

__all__ = [
    "AthenaEngine",
    "CacheSyncError",
    "LocalEngine",
    "NamedQuery",
    "NotTranslatable",
    "QueryError",
    "QueryFailed",
    "QueryNotReadOnly",
    "QueryParam",
    "QueryParamError",
    "QueryResult",
    "QuerySyntaxError",
    "UnknownNamedQuery",
    "athena_cost_usd",
    "load_named_query",
    "named_queries",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gatehouse.query' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
