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

from typing import TYPE_CHECKING, Any

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
from chalicelib.grants.store import GrantStore
from chalicelib.policy.grant import Grant

if TYPE_CHECKING:
    from chalicelib.grants.lifecycle import GrantDesk, actor_name
    from chalicelib.grants.sweeper import redeliver_outbox, sweep_expired

# What the grant routes and the sweeper use, loaded when first asked for: the
# authorizer imports this package on its cold start and needs none of it.
_LAZY = {
    "GrantDesk": "chalicelib.grants.lifecycle",
    "actor_name": "chalicelib.grants.lifecycle",
    "redeliver_outbox": "chalicelib.grants.sweeper",
    "sweep_expired": "chalicelib.grants.sweeper",
}


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
