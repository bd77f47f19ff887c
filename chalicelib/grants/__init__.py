"""Just-in-time access: grants, their store, the per-container cache, their lifecycle.

Offers :class:`Grant`, :class:`GrantStore` (DynamoDB), :class:`ActiveGrants`
(what the authorizer consults), :class:`GrantDesk` (request, approve, deny,
revoke, each audited), :class:`~chalicelib.grants.api.GrantApi` (the HTTP
routes that are the only way to reach the desk), and for the scheduled
sweeper :func:`sweep_expired` and :func:`redeliver_outbox`.

Exceptions::

    GrantError
     ├── GrantsUnavailable   grants could not be read or written (decisions go on without them)
     ├── GrantInvalid        a request or an action is refused; says why
     │    └── GrantForbidden  the caller may not take this action
     ├── GrantNotFound       no grant has that id
     ├── GrantConflict       the grant is not in the state the action needs
     └── GrantNotAudited     the change was stored but its audit event could not be enqueued
"""

from chalicelib.grants.cache import ActiveGrants
from chalicelib.grants.errors import (
    GrantConflict,
    GrantError,
    GrantForbidden,
    GrantInvalid,
    GrantNotAudited,
    GrantNotFound,
    GrantsUnavailable,
)
from chalicelib.grants.lifecycle import GrantDesk, actor_name, redeliver_outbox, sweep_expired
from chalicelib.grants.store import GrantStore
from chalicelib.policy.grant import Grant

__all__ = [
    "ActiveGrants",
    "Grant",
    "GrantConflict",
    "GrantDesk",
    "GrantError",
    "GrantForbidden",
    "GrantInvalid",
    "GrantNotAudited",
    "GrantNotFound",
    "GrantStore",
    "GrantsUnavailable",
    "actor_name",
    "redeliver_outbox",
    "sweep_expired",
]
