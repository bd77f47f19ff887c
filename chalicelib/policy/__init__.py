"""Who may do what: the policy model, its store, and the decision engine.

Offers :func:`parse_policy` (validate a document), :class:`CompiledPolicy`
(indexed decisions), :class:`PolicyStore` (DynamoDB versions) with
:class:`ActivePolicy` / :class:`PolicyVersions` (per-container caches), and
:func:`parse_target` (a request's path, parsed once into the :class:`RequestTarget`
that is decided, recorded and forwarded).

Exceptions::

    PolicyError
     ├── PolicyInvalid       a document failed validation; ``.problems`` lists where
     ├── PolicyUnavailable   the active policy cannot be loaded (decisions fail closed)
     ├── PolicyConflict      another operator activated a version first
     └── PolicyArchiveError  a copy in the Object Lock bucket is missing, unwritable or differs
    AmbiguousPath            (ValueError) a request path that cannot be matched safely
"""

from chalicelib.policy.document import AwsUpstream, CorsPolicy, PolicyDocument, Route, Rule
from chalicelib.policy.engine import AccessRequest, CompiledPolicy, Decision, Reach, Scope
from chalicelib.policy.errors import (
    PolicyArchiveError,
    PolicyConflict,
    PolicyError,
    PolicyInvalid,
    PolicyProblem,
    PolicyUnavailable,
)
from chalicelib.policy.parser import parse_policy
from chalicelib.policy.paths import AmbiguousPath, RequestTarget, normalize_path, parse_target
from chalicelib.policy.store import ActivePolicy, PolicyRecord, PolicyStore, PolicyVersions

__all__ = [
    "AccessRequest",
    "ActivePolicy",
    "AmbiguousPath",
    "AwsUpstream",
    "CompiledPolicy",
    "CorsPolicy",
    "Decision",
    "PolicyArchiveError",
    "PolicyConflict",
    "PolicyDocument",
    "PolicyError",
    "PolicyInvalid",
    "PolicyProblem",
    "PolicyRecord",
    "PolicyStore",
    "PolicyUnavailable",
    "PolicyVersions",
    "Reach",
    "RequestTarget",
    "Route",
    "Rule",
    "Scope",
    "normalize_path",
    "parse_policy",
    "parse_target",
]
