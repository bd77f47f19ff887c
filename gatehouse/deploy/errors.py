"""Why a deployment step could not be done.

Exceptions::

    RuntimeError
     └── DeployError               a step of deploy, package or destroy failed
          ├── StackFailed          CloudFormation left a stack in a failed state
          ├── ChaliceFailed        ``chalice deploy|package|delete`` exited non-zero
          ├── UnfilledPlaceholder  a function's environment still names a stack output
          ├── NotDeployed          a resource the wiring needs does not exist (deploy first)
          └── QueuesNotEmpty       destroy would delete audit events not yet in the ledger
"""

from __future__ import annotations


class DeployError(RuntimeError):
    """A step of ``deploy``, ``package`` or ``destroy`` failed."""


class StackFailed(DeployError):
    """CloudFormation could not create, update or delete a stack."""


class ChaliceFailed(DeployError):
    """The Chalice CLI exited non-zero."""


class UnfilledPlaceholder(DeployError):
    """A function's environment still holds a ``REPLACE_WITH_STACK_OUTPUT_*`` value."""


class NotDeployed(DeployError):
    """A resource the wiring acts on is missing: the stage is not deployed (yet)."""


class QueuesNotEmpty(DeployError):
    """The audit queue or its dead-letter queue still holds events (destroy would lose them)."""
