"""Exceptions of the grants package.

::

    GrantError
     ├── GrantsUnavailable   grants could not be read or written (decisions go on without them)
     ├── GrantInvalid        a request or an action on a grant is refused; says why
     │    └── GrantForbidden  the caller may not take this action (not an approver, own grant)
     ├── GrantNotFound       no grant has that id
     ├── GrantConflict       the grant is not in the state the action needs (already approved...)
     └── GrantNotAudited     the change was stored but its audit event could not be enqueued
"""

from __future__ import annotations


class GrantError(Exception):
    """Base class for grant failures."""


class GrantsUnavailable(GrantError):
    """Grants could not be read or written (decisions go on without them: fail closed)."""


class GrantInvalid(GrantError):
    """A grant request or action is refused (bad scope, wrong approver, grants disabled...)."""


class GrantForbidden(GrantInvalid):
    """The caller may not take this action: not an approver, their own grant, not theirs."""


class GrantNotFound(GrantError):
    """No grant has that id."""


class GrantConflict(GrantError):
    """The grant is not in the state the action needs, e.g. approving an approved grant."""


class GrantNotAudited(GrantError):
    """A grant changed state but the audit event saying so could not be enqueued.

    The change is not undone (a second writer may already rely on it); the
    event has been logged in full by the emitter, so it can be recovered.

    Attributes
    ----------
    grant_ids:
        The grants whose events are missing from the queue.
    action:
        The lifecycle action (``approved``, ``expired``...).
    """

    def __init__(self, message: str, *, grant_ids: tuple[str, ...], action: str) -> None:
        super().__init__(message)
        self.grant_ids = grant_ids
        self.action = action
