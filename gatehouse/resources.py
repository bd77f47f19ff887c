"""Names of the stateful AWS resources, shared by the local bootstrap and ``infra/``.

The CloudFormation template builds the same names from its ``Stage``
parameter; ``tests/unit/test_infra.py`` keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ResourceNames:
    """The names of one stage's resources."""

    stage: str
    account: str
    region: str

    @property
    def state_table(self) -> str:
        return f"gatehouse-{self.stage}-state"

    @property
    def audit_bucket(self) -> str:
        return f"gatehouse-{self.stage}-audit-{self.account}-{self.region}"

    @property
    def anchor_bucket(self) -> str:
        """Where the newest ledger checkpoint is also kept (apart from the audit bucket)."""
        return f"gatehouse-{self.stage}-anchor-{self.account}-{self.region}"

    @property
    def trail_bucket(self) -> str:
        """Where CloudTrail delivers (the local stack emulates the trail's files)."""
        return f"gatehouse-{self.stage}-trail-{self.account}-{self.region}"

    @property
    def audit_queue(self) -> str:
        return f"gatehouse-{self.stage}-audit"

    @property
    def audit_dlq(self) -> str:
        return f"gatehouse-{self.stage}-audit-dlq"

    @property
    def alert_topic(self) -> str:
        """The stage's alert topic (alarms, tampering rules, detection's alerts)."""
        return f"gatehouse-{self.stage}-alerts"

    @property
    def alert_console_queue(self) -> str:
        """Local stack only: subscribed to the alert topic, read by the dev console."""
        return f"gatehouse-{self.stage}-alerts-console"

    @property
    def alert_events_queue(self) -> str:
        """Local stack only: the target of the EventBridge rule matching alerts (tests read it)."""
        return f"gatehouse-{self.stage}-alert-events"

    @property
    def assertion_key_alias(self) -> str:
        """The key that certifies the proxy's assertion keys (only ``api_handler`` signs)."""
        return f"alias/gatehouse-{self.stage}-assertion"

    @property
    def digest_key_alias(self) -> str:
        """The key that signs the ledger digests (only ``ledger_digest`` signs)."""
        return f"alias/gatehouse-{self.stage}-digest"

    @property
    def signing_key_alias(self) -> str:
        """The digest key's former alias, from when one key signed both (no policy names it)."""
        return f"alias/gatehouse-{self.stage}-signing"


# Settings the template also uses.
AUDIT_QUEUE_VISIBILITY_SECONDS = 60
AUDIT_QUEUE_MAX_RECEIVES = 5
AUDIT_RETENTION_DAYS = {"dev": 1, "prod": 2555}
AUDIT_RETENTION_MODE = {"dev": "GOVERNANCE", "prod": "COMPLIANCE"}
