"""Assertion keys in the audit trail: ``signing_key`` events.

Each key's issuance (``issued``: a container's first key; ``rotated``: one
that takes over from ``replaces``) is recorded before the key signs anything,
and its expiry by the sweeper once its certificate has ended. The event names
the key and its certificate's digest, never any private material.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from chalicelib.audit.schema import build_admin_event
from chalicelib.audit.sections import SigningKeySection

if TYPE_CHECKING:
    from chalicelib.audit import AuditEmitter
    from chalicelib.signing.delegated import KeyEvent


def signing_key_section(event: KeyEvent) -> SigningKeySection:
    """The ``signing_key`` section of ``event``."""
    certificate = event.certificate
    return SigningKeySection(
        action=event.action,
        kid=certificate.kid,
        certified_by=certificate.certified_by,
        not_before=certificate.not_before,
        not_after=certificate.not_after,
        certificate_sha256=hashlib.sha256(certificate.token.encode("ascii")).hexdigest(),
        replaces=event.replaces,
    )


def key_event_recorder(emitter: AuditEmitter, stage: str) -> Callable[[KeyEvent], None]:
    """Records key events through ``emitter`` (raising when one cannot be enqueued)."""

    def record(event: KeyEvent) -> None:
        emitter.emit(
            build_admin_event(
                "signing_key", stage=stage, details=signing_key_section(event), operator=None
            )
        )

    return record
