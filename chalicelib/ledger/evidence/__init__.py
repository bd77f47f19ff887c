"""Evidence bundles: the events a question selected, each proven in one signed checkpoint.

An auditor asks "what did grant G do?" (or principal P, request R, a named
query). ``gatehouse audit evidence`` answers with one JSON file that needs
no AWS access to check::

    {"format": 1, "kind": "gatehouse-evidence", "stage": "prod", "created_at": "...",
     "selection": {"kind": "grant", "value": "01a...", "from": "...Z", "to": "...Z"},
     "events": [{"leaf_index": 41, "line": "{\\"schema_version\\":1,...}", "path": ["<hex>"]}],
     "range": null | {"first": 41, "last": 57, "lines": [<entries as in events>]},
     "checkpoint": {"digest_key": "audit/v1/digests/...", "document": {<as stored>},
                    "note": "<the checkpoint note, with every published cosignature>"},
     "keys": {"stage": {"jwk": {...}}, "witnesses": ["<vkey>", ...]}}

Every path (RFC 9162) leads from a stored line to the root of one
checkpoint's tree: the earliest format-2 digest whose tree holds every
selected event. With a *range*, every line between the first and the last
selected event is there too, so re-applying the selection
(:func:`matches`) to them shows none was left out.

:func:`check_bundle` checks a bundle offline and says what it proves and
what it cannot; :class:`EvidenceBuilder` builds one from the bucket and the
ledger's state (it is handed a boto3 client; this module imports none).

Exceptions::

    ValueError
     └── EvidenceError        no bundle can be built
          ├── NothingSelected the selection matched no stored event
          └── NotYetDigested  an event is under no signed format-2 digest yet
     └── NotABundle           a file that is not an evidence bundle
"""

from chalicelib.ledger.evidence.build import EvidenceBuilder, StoredLine
from chalicelib.ledger.evidence.check import (
    EvidenceCheck,
    check_bundle,
    spans,
    stage_key_fingerprint,
)
from chalicelib.ledger.evidence.paths import inclusion_path
from chalicelib.ledger.evidence.selection import (
    BUNDLE_FORMAT,
    BUNDLE_KIND,
    FIELD_SELECTORS,
    QUERY_SELECTOR,
    EvidenceError,
    NotABundle,
    NothingSelected,
    NotYetDigested,
    Selection,
    line_matches,
    matches,
)

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_KIND",
    "FIELD_SELECTORS",
    "QUERY_SELECTOR",
    "EvidenceBuilder",
    "EvidenceCheck",
    "EvidenceError",
    "NotABundle",
    "NotYetDigested",
    "NothingSelected",
    "Selection",
    "StoredLine",
    "check_bundle",
    "inclusion_path",
    "line_matches",
    "matches",
    "spans",
    "stage_key_fingerprint",
]
