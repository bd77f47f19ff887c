"""Exceptions of the query engines.

Every failure a caller can act on is a :class:`QueryError`::

    Exception
     └── QueryError                 any query that cannot be answered (the CLI prints it)
          ├── QueryParamError       an unknown, missing or ill-typed parameter
          ├── QuerySyntaxError      SQL sqlglot cannot read, or not one statement
          ├── QueryNotReadOnly      DDL or DML: the engines only read
          ├── UnknownNamedQuery     no such file under infra/athena/queries
          ├── NotTranslatable       Athena SQL the local engine cannot run faithfully
          ├── QueryFailed           the engine refused or failed the query (Athena's reason)
          └── CacheSyncError        the local cache could not be filled from S3
"""

from __future__ import annotations


class QueryError(Exception):
    """A query that cannot be answered; the message says why."""


class QueryParamError(QueryError):
    """A parameter that is unknown, missing, or not of its declared type."""


class QuerySyntaxError(QueryError):
    """SQL that cannot be parsed, or more (or less) than one statement."""


class QueryNotReadOnly(QueryError):
    """A statement that would change something (DDL, DML): refused."""


class UnknownNamedQuery(QueryError):
    """A named query that does not exist."""


class NotTranslatable(QueryError):
    """Athena SQL the local engine would answer differently than Athena: refused, not guessed."""


class QueryFailed(QueryError):
    """The engine ran the query and it failed (Athena FAILED/CANCELLED, a DuckDB error)."""


class CacheSyncError(QueryError):
    """The local engine's cache could not be filled from S3."""
