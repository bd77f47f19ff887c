"""Which policy version was in force at a moment: decision replay by time.

``gatehouse policy explain --at T`` evaluates the version an activation put
in force at or before ``T`` and no later activation had replaced by then.
Activation times are stored to the second (:func:`chalicelib.policy.store.now_text`),
so a moment within the second of an activation counts as after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from chalicelib.policy.errors import PolicyUnavailable

if TYPE_CHECKING:
    from chalicelib.policy.store import Activation


def activated_epoch(activation: Activation) -> float:
    """When ``activation`` happened, in epoch seconds.

    Raises
    ------
    PolicyUnavailable
        When its stored time is not an ISO 8601 time with an offset (a corrupt record).
    """
    try:
        moment = datetime.fromisoformat(activation.activated_at)
    except ValueError as exc:
        raise PolicyUnavailable(
            f"activation {activation.activation} has no readable time ({activation.activated_at!r})"
        ) from exc
    if moment.tzinfo is None:
        raise PolicyUnavailable(
            f"activation {activation.activation}'s time has no offset ({activation.activated_at!r})"
        )
    return moment.timestamp()


def activation_in_force(activations: Iterable[Activation], at: float) -> Activation | None:
    """The activation in force at ``at`` (epoch seconds); None when none had happened yet.

    That is the latest activation (by its counter, which orders activations
    even when two share a second) made at or before ``at``.

    Raises
    ------
    PolicyUnavailable
        When an activation's stored time cannot be read.
    """
    earlier = [item for item in activations if activated_epoch(item) <= at]
    return max(earlier, key=lambda item: item.activation, default=None)
