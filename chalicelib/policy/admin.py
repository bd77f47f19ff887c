"""Policy administration: apply, roll back, history — each change archived and audited.

An activation goes: validate -> store the version (immutable, content-hashed)
-> archive the version in the Object Lock bucket -> activate (one conditional
transaction) -> archive the activation record -> emit a ``policy_change``
audit event naming the operator and summarising the diff. Nothing is
activated whose document is not archived first. If a step after the
activation fails, the change stands and the error says what is missing;
the next ``apply``, ``rollback`` or ``history`` re-archives missing records
(activation records and the versions they activated).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.audit.errors import AuditError
from chalicelib.audit.schema import build_admin_event
from chalicelib.audit.sections import ArchiveKeys, PolicyChangeSection
from chalicelib.policy.archive import activation_key, version_key
from chalicelib.policy.diff import PolicyDiff, diff_documents
from chalicelib.policy.errors import PolicyError, PolicyUnavailable
from chalicelib.policy.parser import parse_policy

if TYPE_CHECKING:
    from chalicelib.audit import AuditEmitter
    from chalicelib.policy.archive import PolicyArchive
    from chalicelib.policy.store import Activation, PolicyRecord, PolicyStore


class PolicyChangeIncomplete(PolicyError):
    """The policy was activated, but a later step (archive copy, audit event) failed.

    ``activation`` is the activation that is in force; the message says what is missing.
    """

    def __init__(self, message: str, activation: Activation) -> None:
        super().__init__(message)
        self.activation = activation


@dataclass(frozen=True)
class ChangeResult:
    """What an apply or rollback did."""

    record: PolicyRecord
    diff: PolicyDiff
    activation: Activation | None  # None: the document was already active
    created_version: bool


class PolicyAdmin:
    """Carries out policy changes for an operator.

    Parameters
    ----------
    store, archive, emitter:
        DynamoDB versions, the Object Lock copies, the audit queue.
    stage:
        The stage name, for events.
    operator:
        The AWS caller identity making the change.
    """

    def __init__(
        self,
        store: PolicyStore,
        archive: PolicyArchive,
        emitter: AuditEmitter,
        *,
        stage: str,
        operator: str,
    ) -> None:
        self._store = store
        self._archive = archive
        self._emitter = emitter
        self._stage = stage
        self._operator = operator

    def diff(self, document: dict[str, Any]) -> PolicyDiff:
        """What applying ``document`` would change against the active policy."""
        active = self._store.load_active()
        return diff_documents(active.document if active else None, document)

    def apply(
        self, document: dict[str, Any], *, source_name: str = "policy", reason: str | None = None
    ) -> ChangeResult:
        """Validate, store, archive and activate ``document``.

        ``reason`` (the operator's words) is recorded on the activation and in
        its ``policy_change`` event.

        Raises
        ------
        PolicyInvalid
            Listing every problem; nothing is written.
        PolicyConflict
            When another operator activated a version meanwhile.
        PolicyChangeIncomplete
            When the activation happened but its archive copy or event did not.
        """
        parse_policy(document, source_name=source_name)
        self.repair()
        active = self._store.load_active()
        record, created = self._store.store_version(document, self._operator)
        self._archive.put_version(record)
        return self._activate(record, active, "apply", created, reason)

    def rollback(self, version: int, *, reason: str | None = None) -> ChangeResult:
        """Activate an earlier version again (``reason`` recorded as by :meth:`apply`).

        Raises
        ------
        PolicyError
            When the version does not exist, is already active, or is one this
            release can no longer enforce (activating it would leave every
            container without a usable policy: fail closed for everyone).
        """
        from chalicelib.policy.store import parse_record

        record = self._store.load_version(version)
        if record is None:
            raise PolicyError(f"policy version {version} does not exist")
        try:
            parse_record(record)  # what every container would compile
        except PolicyUnavailable as exc:
            raise PolicyError(
                f"policy version {version} cannot be rolled back to: {exc}; "
                "apply a corrected document instead"
            ) from exc
        self.repair()
        active = self._store.load_active()
        if active is not None and active.version == version:
            raise PolicyError(f"policy version {version} is already active")
        self._archive.put_version(record)
        return self._activate(record, active, "rollback", False, reason)

    def history(self, limit: int = 20) -> list[Activation]:
        """The newest activations, newest first (re-archiving any missing copy)."""
        self.repair()
        return self._store.activations(limit)

    def repair(self) -> None:
        """Finish what an interrupted change left undone: archive copies, then audit events.

        Raises
        ------
        PolicyArchiveError, AuditError
            When the bucket or the queue is still unavailable.
        """
        self.repair_archive()
        self.redeliver_events()

    def repair_archive(self) -> list[int]:
        """Archive recent activations (and their versions) whose copy is missing.

        Returns the numbers of the activations whose record was re-archived.
        An activation made without the archive (``PolicyStore.publish`` seeds
        the local stack that way, or a crash between the two writes) is
        archived with the version it activated, so the bucket can prove it.
        """
        # A copy goes missing only when an apply fails midway, so the newest few suffice.
        recent = self._store.activations(10)
        missing = set(self._archive.missing_activations(recent))
        versions = self._archive.missing_versions(sorted({a.version for a in recent}))
        for version in versions:
            record = self._store.load_version(version)
            if record is not None:
                self._archive.put_version(record)
        for activation in recent:
            if activation.activation in missing:
                self._archive.put_activation(activation)
        return sorted(missing)

    def _activate(
        self,
        record: PolicyRecord,
        active: PolicyRecord | None,
        action: str,
        created: bool,
        reason: str | None,
    ) -> ChangeResult:
        diff = diff_documents(active.document if active else None, record.document)
        if active is not None and active.checksum == record.checksum:
            return ChangeResult(record, diff, None, created)
        # The event is stored with the activation (one transaction), so it
        # outlives a failed enqueue: any later admin command enqueues it.
        events: list[dict[str, Any]] = []

        def event(activation: Activation) -> dict[str, Any]:
            events.append(self._event(activation))
            return events[-1]

        activation = self._store.activate(
            record,
            actor=self._operator,
            action=action,
            expected=active,
            summary=diff.summary(),
            event=event,
            reason=reason,
        )
        # The change stands from here on: each record of it is attempted on
        # its own, so a failed archive copy never costs the audit event.
        problems = []
        try:
            self._archive.put_activation(activation)
        except PolicyError as exc:
            problems.append(
                f"its archive copy was not written ({exc}); any later `gatehouse policy "
                "apply`, `rollback` or `history` writes it"
            )
        try:
            self._enqueue(activation.activation, events[-1])
        except AuditError as exc:
            problems.append(
                f"its policy_change audit event was not enqueued yet ({exc}); it is kept with "
                f"activation {activation.activation} in the state table, and any later "
                "`gatehouse policy apply`, `rollback` or `history` enqueues it"
            )
        if problems:
            raise PolicyChangeIncomplete(
                f"activation {activation.activation} (version {record.version}) is in force, "
                "but " + "; and ".join(problems),
                activation,
            )
        return ChangeResult(record, diff, activation, created)

    def redeliver_events(self) -> list[int]:
        """Enqueue the kept events of recent activations whose enqueue failed.

        Returns the activation numbers whose events were enqueued now.

        Raises
        ------
        AuditError
            When the queue is still unavailable (the events stay kept).
        """
        delivered = []
        for number, event in self._store.pending_events():
            self._enqueue(number, event)
            delivered.append(number)
        return delivered

    def _enqueue(self, activation: int, event: dict[str, Any]) -> None:
        self._emitter.emit(event)
        # Should this fail, the event is enqueued again later under the same id.
        with contextlib.suppress(PolicyError):
            self._store.clear_event(activation)

    def _event(self, activation: Activation) -> dict[str, Any]:
        details = PolicyChangeSection(
            action=activation.action,
            activation=activation.activation,
            from_version=activation.previous_version,
            from_checksum=activation.previous_checksum,
            to_version=activation.version,
            to_checksum=activation.checksum,
            summary=activation.summary,
            archive=ArchiveKeys(
                version=version_key(activation.version),
                activation=activation_key(activation.activation),
            ),
            reason=activation.reason,
        )
        return build_admin_event(
            "policy_change", stage=self._stage, details=details, operator=self._operator
        )
