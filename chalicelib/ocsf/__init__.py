"""The audit trail in OCSF: each stored event as an OCSF record, and its export.

- :mod:`.mapping`: one stored event (a ledger line) and its ledger position in,
  one OCSF record out (``to_ocsf``); pure functions, one module per class:
  :mod:`.http` (HTTP Activity, 4002), :mod:`.authentication` (Authentication,
  3002), :mod:`.management` (Entity Management, 3004), :mod:`.findings`
  (Detection Finding, 2004), the parts they share in :mod:`.common`;
- :mod:`.parquet`: records of one class as one Parquet file, under a fixed
  schema per class, written by :mod:`.parquet_writer` (pure Python, with
  :mod:`.parquet_thrift` for its footer);
- :mod:`.cursor`: how far the continuous export got, in the state table;
- :mod:`.exporter`: the scheduled export of what the ledger committed since
  the cursor, into the layout Amazon Security Lake expects of a custom source.

``docs/ocsf.md`` documents the mapping field by field.

Exceptions::

    OcsfError
     ├── NotMappable        a line that is not a stored audit event
     └── ExportUnavailable  the ledger, the bucket or the cursor cannot be used now
"""

from chalicelib.ocsf.errors import ExportUnavailable, NotMappable, OcsfError
from chalicelib.ocsf.mapping import OCSF_VERSION, LedgerPosition, to_ocsf

__all__ = [
    "OCSF_VERSION",
    "ExportUnavailable",
    "LedgerPosition",
    "NotMappable",
    "OcsfError",
    "to_ocsf",
]
