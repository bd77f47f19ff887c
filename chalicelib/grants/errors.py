"""Exceptions of the grants package.

::

    GrantError
     ├── GrantsUnavailable   grants could not be read (decisions go on without them)
     ├── GrantInvalid        a request or an action on a grant is refused; says why
     ├── GrantNotFound       no grant has that id
     └── GrantConflict       the grant is not in the state the action needs (already approved...)
"""

from __future__ import annotations


class GrantError(Exception):
    """Base class for grant failures."""


class GrantsUnavailable(GrantError):
    """Grants could not be read or written (decisions go on without them: fail closed)."""


class GrantInvalid(GrantError):
    """A grant request or action is refused (bad scope, wrong approver, grants disabled...)."""


class GrantNotFound(GrantError):
    """No grant has that id."""


class GrantConflict(GrantError):
    """The grant is not in the state the action needs, e.g. approving an approved grant."""
