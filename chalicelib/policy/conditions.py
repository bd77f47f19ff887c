"""A rule's ``when`` block: the registered conditions it sets, bound for evaluation.

Which conditions exist is the registry's business
(:mod:`chalicelib.policy.criterion`, one module each under
:mod:`chalicelib.policy.criteria`); this container only holds the ones a rule
sets and evaluates them: an allow rule applies only when every condition
holds; a deny rule applies unless a condition positively fails, so missing
facts never open access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.policy.criterion import (
    FAILS,
    HOLDS,
    UNKNOWN,
    Check,
    Criterion,
    Facts,
    RequestFacts,
    Verdict,
    criterion_named,
    registered,
)

if TYPE_CHECKING:
    from chalicelib.identity import Identity
    from chalicelib.reasons import Reason

__all__ = ["FAILS", "HOLDS", "UNKNOWN", "Conditions", "Facts", "RequestFacts", "Verdict"]


class Conditions:
    """The conditions a rule sets; none means the rule is unconditional.

    Parameters
    ----------
    **settings:
        Parsed settings by condition name (``mfa=True``, ``max_auth_age=3600``,
        ``source_cidrs=CidrSet(...)``, ``hours=Hours(...)``); a setting that
        imposes nothing (None, ``mfa=False``) is left out.

    Raises
    ------
    TypeError
        When a name is not a registered condition.

    A condition's setting reads as an attribute (``conditions.hours``), its
    ``unset`` value when the rule does not set it.
    """

    __slots__ = ("_checks", "_settings")

    def __init__(self, **settings: object) -> None:
        if not settings:
            # Most rules: nothing to look up (a policy compiles thousands of them).
            self._settings: tuple[tuple[Criterion[Any], object], ...] = ()
            self._checks: tuple[tuple[Check, Reason], ...] = ()
            return
        unknown = sorted(name for name in settings if criterion_named(name) is None)
        if unknown:
            raise TypeError(f"unknown condition(s): {', '.join(unknown)}")
        chosen = tuple(
            (criterion, settings[criterion.name])
            for criterion in registered()
            if criterion.imposes(settings.get(criterion.name))
        )
        self._settings = chosen
        # Bound once per rule: evaluation is a loop of plain calls.
        self._checks = tuple(
            (criterion.compile(setting), criterion.reason) for criterion, setting in chosen
        )

    def __getattr__(self, name: str) -> Any:
        criterion = criterion_named(name)
        if criterion is None:
            raise AttributeError(name)
        return self.setting(criterion.name)

    def setting(self, name: str) -> object:
        """The setting of the condition called ``name`` (its ``unset`` value when not set)."""
        for criterion, setting in self._settings:
            if criterion.name == name:
                return setting
        known = criterion_named(name)
        return None if known is None else known.unset

    @property
    def settings(self) -> dict[str, object]:
        """Condition name -> setting, for the conditions this rule sets, in evaluation order."""
        return {criterion.name: setting for criterion, setting in self._settings}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Conditions):
            return NotImplemented
        return self.settings == other.settings

    def __hash__(self) -> int:
        return hash(tuple(self.settings.items()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={setting!r}" for name, setting in self.settings.items())
        return f"Conditions({fields})"

    @property
    def empty(self) -> bool:
        """True when the rule has no conditions."""
        return not self._checks

    def check(self, identity: Identity, facts: RequestFacts) -> list[tuple[Reason, Verdict]]:
        """Each condition's verdict, with the reason code it reports when it does not hold."""
        return [(reason, check(identity, facts)) for check, reason in self._checks]

    def allow_failures(self, identity: Identity, facts: RequestFacts) -> tuple[Reason, ...]:
        """Why an allow rule with these conditions does not apply (empty: it applies)."""
        # A plain loop, the list made only on a failure: this runs on every
        # request a conditional allow rule matches.
        failures: list[Reason] | None = None
        for check, reason in self._checks:
            if check(identity, facts) is not HOLDS:
                if failures is None:
                    failures = [reason]
                else:
                    failures.append(reason)
        return () if failures is None else tuple(failures)

    def deny_applies(self, identity: Identity, facts: RequestFacts) -> bool:
        """Whether a deny rule with these conditions applies (unknown counts as holding)."""
        # A loop rather than all(): no generator frame per decision.
        for check, _ in self._checks:  # noqa: SIM110
            if check(identity, facts) is FAILS:
                return False
        return True
