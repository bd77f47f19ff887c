"""One run of a witness over the logs it watches.

For each log, the digests signed since the one the witness cosigned last
are read in the order they were signed (their keys sort by time). Each
format-2 digest's checkpoint is judged against what the witness holds:

==================  ==============================================================
``cosigned``        signed by the log, and its tree extends the one cosigned last
                    (or it is the first the witness sees: trust on first use)
``bad_checkpoint``  not signed by the log's key, or not binding its digest (refused)
``fork``            the same tree size as the one cosigned last, another root
``rollback``        a smaller tree than the one cosigned last, signed later
``inconsistent``    a larger tree that the proof it carries does not lead to
                    from the tree cosigned last (or it carries none from there)
==================  ==============================================================

A cosigned checkpoint is published whole (the log's signature and the
witness's) at :func:`~chalicelib.ledger.layout.cosigned_key`, then
remembered. A refusal is signed, raised as an alert, then published at
:func:`~chalicelib.ledger.layout.refusal_key` (once: a refusal already
published is not raised again, one whose alert failed is raised again); the witness's memory
does not move, so every later checkpoint must extend what it cosigned.
Format-1 digests (before checkpoints) are passed over.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.ledger.layout import (
    DIGESTS_PREFIX,
    canonical,
    cosigned_key,
    refusal_key,
    utc_text,
)
from chalicelib.ledger.merkle import verify_consistency
from chalicelib.ledger.notes import CheckpointBody, NoteError, SignedNote
from chalicelib.witness.errors import WitnessUnavailable
from chalicelib.witness.state import Cosigned

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    from chalicelib.ledger.notes import WitnessSigner
    from chalicelib.witness.state import WitnessState


class Verdict(StrEnum):
    """What the witness made of one checkpoint (the table above); values are stable output."""

    COSIGNED = "cosigned"
    BAD_CHECKPOINT = "bad_checkpoint"
    FORK = "fork"
    ROLLBACK = "rollback"
    INCONSISTENT = "inconsistent"


@dataclass(frozen=True, slots=True)
class WatchedLog:
    """A log the witness watches.

    Parameters
    ----------
    origin:
        The checkpoints' origin line (the stage's ``ledger_origin``).
    public_key:
        The stage's ledger key (P-256).
    bucket:
        The audit bucket the digests are read from.
    publish_bucket:
        Where cosignatures and refusals go (default: ``bucket``).
    """

    origin: str
    public_key: EllipticCurvePublicKey
    bucket: str
    publish_bucket: str | None = None

    @property
    def publish_to(self) -> str:
        return self.publish_bucket or self.bucket


@dataclass(frozen=True, slots=True)
class Outcome:
    """The verdict on one digest's checkpoint."""

    origin: str
    digest_key: str
    tree_size: int
    verdict: Verdict
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "digest_key": self.digest_key,
            "tree_size": self.tree_size,
            "verdict": str(self.verdict),
            "detail": self.detail,
        }


@dataclass
class RunReport:
    """What one run did."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def refused(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.verdict != Verdict.COSIGNED]

    @property
    def cosigned(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.verdict == Verdict.COSIGNED]


class AlertSink(Protocol):
    """Where a refusal is raised."""

    def raise_alert(self, alert: dict[str, Any]) -> None:
        """Send ``alert`` (JSON-serialisable).

        Raises
        ------
        WitnessUnavailable
            When it cannot be sent.
        """


class SnsAlerts:
    """Refusals as SNS messages (subject ``Gatehouse witness refused a checkpoint``)."""

    def __init__(self, sns: Any, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    def raise_alert(self, alert: dict[str, Any]) -> None:
        try:
            self._sns.publish(
                TopicArn=self._topic_arn,
                Subject="Gatehouse witness refused a checkpoint",
                Message=json.dumps(alert, sort_keys=True),
            )
        except Exception as exc:
            raise WitnessUnavailable(f"cannot publish the alert: {exc}") from exc


@dataclass(frozen=True, slots=True)
class _Seen:
    key: str
    note: SignedNote
    body: CheckpointBody
    from_size: int | None
    path: tuple[bytes, ...]


class Witness:
    """Cosigns the checkpoints of the logs it watches.

    Parameters
    ----------
    signer:
        The witness's Ed25519 key and name.
    state:
        What it cosigned last, per origin.
    s3:
        A boto3 S3 client that can read the logs' digests and publish to them.
    logs:
        The logs it watches.
    alerts:
        Where refusals are raised (None: only published and logged).
    clock:
        Epoch seconds now.
    log:
        Where one line per verdict goes.
    """

    def __init__(
        self,
        signer: WitnessSigner,
        state: WitnessState,
        s3: Any,
        logs: Sequence[WatchedLog],
        *,
        alerts: AlertSink | None = None,
        clock: Callable[[], float] = time.time,
        log: Callable[[str], None] = print,
    ) -> None:
        self._signer = signer
        self._state = state
        self._s3 = s3
        self._logs = logs
        self._alerts = alerts
        self._clock = clock
        self._log = log

    @property
    def key_id(self) -> str:
        """The witness's key id (hex): the folder its publications go to."""
        return self._signer.key.key_id.hex()

    def run(self) -> RunReport:
        """Judge every new checkpoint of every log.

        Raises
        ------
        WitnessUnavailable
            When a bucket, the store or the alert topic cannot be used (what
            was done before stays done; the next run carries on from it).
        WitnessStateConflict
            When another run of this witness moved the store meanwhile.
        """
        report = RunReport()
        for watched in self._logs:
            self._run_log(watched, report)
        return report

    def _run_log(self, watched: WatchedLog, report: RunReport) -> None:
        last = self._state.get(watched.origin)
        for key in self._digest_keys(watched.bucket, last.digest_key if last else None):
            seen = self._read(watched, key)
            if seen is None:
                continue  # a digest of the format before checkpoints
            if isinstance(seen, Outcome):
                outcome = seen
                self._refuse(watched, outcome, None, last)
            else:
                outcome = self._judge(watched, seen, last)
                if outcome.verdict == Verdict.COSIGNED:
                    last = self._cosign(watched, seen, last)
                else:
                    self._refuse(watched, outcome, seen, last)
            report.outcomes.append(outcome)
            self._log(
                f"witness {self._signer.name}: {outcome.verdict} {watched.origin} "
                f"size {outcome.tree_size} ({key}){': ' + outcome.detail if outcome.detail else ''}"
            )

    def _judge(self, watched: WatchedLog, seen: _Seen, last: Cosigned | None) -> Outcome:
        size, root = seen.body.tree_size, seen.body.root

        def outcome(verdict: Verdict, detail: str = "") -> Outcome:
            return Outcome(watched.origin, seen.key, size, verdict, detail)

        if last is None:
            return outcome(Verdict.COSIGNED, "the first checkpoint this witness sees")
        if last.tree_size == 0:
            return outcome(Verdict.COSIGNED)  # the empty tree is a prefix of every tree
        last_root = bytes.fromhex(last.root)
        if size < last.tree_size:
            return outcome(
                Verdict.ROLLBACK,
                f"a tree of {size} signed after the tree of {last.tree_size} this witness "
                f"cosigned ({last.digest_key})",
            )
        if size == last.tree_size:
            if root != last_root:
                return outcome(
                    Verdict.FORK,
                    f"the tree of {size} with root {root.hex()[:16]}..., where this witness "
                    f"cosigned root {last.root[:16]}... ({last.digest_key})",
                )
            return outcome(Verdict.COSIGNED)
        if seen.from_size != last.tree_size:
            return outcome(
                Verdict.INCONSISTENT,
                f"it carries no proof from the tree of {last.tree_size} this witness cosigned "
                f"(its proof starts at {seen.from_size})",
            )
        if not verify_consistency(last.tree_size, size, last_root, root, list(seen.path)):
            return outcome(
                Verdict.INCONSISTENT,
                f"its proof does not lead from the tree of {last.tree_size} this witness "
                f"cosigned ({last.digest_key}) to its own",
            )
        return outcome(Verdict.COSIGNED)

    def _cosign(self, watched: WatchedLog, seen: _Seen, last: Cosigned | None) -> Cosigned:
        now = int(self._clock())
        note = seen.note.with_signature(self._signer.cosign(seen.note.text, now))
        self._publish(watched.publish_to, cosigned_key(self.key_id, seen.key), note.serialize())
        cosigned = Cosigned(
            seen.body.tree_size, seen.body.root.hex(), seen.key, note.serialize(), now
        )
        self._state.put(watched.origin, cosigned, last)
        return cosigned

    def _refuse(
        self, watched: WatchedLog, outcome: Outcome, seen: _Seen | None, last: Cosigned | None
    ) -> None:
        record = {
            "witness": self._signer.name,
            "key_id": self.key_id,
            "origin": watched.origin,
            "digest_key": outcome.digest_key,
            "verdict": str(outcome.verdict),
            "detail": outcome.detail,
            "at": utc_text(self._clock()),
            "seen": seen.note.serialize() if seen else None,
            "cosigned": (
                {"tree_size": last.tree_size, "root": last.root, "note": last.note}
                if last
                else None
            ),
        }
        signature = base64.b64encode(self._signer.sign_record(canonical(record))).decode("ascii")
        body = canonical({"refusal": record, "signature": signature}).decode()
        key = refusal_key(self.key_id, outcome.digest_key)
        if self._exists(watched.publish_to, key):
            return  # refused and raised on an earlier run
        self._log(
            f"ERROR witness {self._signer.name} refused {outcome.digest_key}: "
            f"{outcome.verdict}: {outcome.detail}"
        )
        # Raised before it is published: an alert that could not be sent leaves
        # nothing behind, so the next run raises it again.
        if self._alerts is not None:
            self._alerts.raise_alert(
                {"alert": "witness_refused", "severity": "high", **record, "seen": None}
            )
        self._publish(watched.publish_to, key, body)

    def _exists(self, bucket: str, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise WitnessUnavailable(f"cannot read s3://{bucket}/{key}: {exc}") from exc
        except Exception as exc:
            raise WitnessUnavailable(f"cannot read s3://{bucket}/{key}: {exc}") from exc
        return True

    def _publish(self, bucket: str, key: str, body: str) -> bool:
        """Store ``body`` at ``key`` once; False when it was already there."""
        from botocore.exceptions import ClientError

        try:
            self._s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=body.encode(),
                ContentType="text/plain; charset=utf-8",
                ChecksumAlgorithm="SHA256",
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "PreconditionFailed":
                return False
            raise WitnessUnavailable(f"cannot publish s3://{bucket}/{key}: {exc}") from exc
        except Exception as exc:
            raise WitnessUnavailable(f"cannot publish s3://{bucket}/{key}: {exc}") from exc
        return True

    def _digest_keys(self, bucket: str, after: str | None) -> list[str]:
        keys: list[str] = []
        try:
            paginator = self._s3.get_paginator("list_objects_v2")
            start = {"StartAfter": after} if after else {}
            for page in paginator.paginate(Bucket=bucket, Prefix=DIGESTS_PREFIX, **start):
                keys += [str(item["Key"]) for item in page.get("Contents", [])]
        except Exception as exc:
            raise WitnessUnavailable(f"cannot list the digests in s3://{bucket}: {exc}") from exc
        return sorted(key for key in keys if key.endswith(".json"))

    def _read(self, watched: WatchedLog, key: str) -> _Seen | Outcome | None:
        from chalicelib.ledger.verify import digest_signature

        try:
            body = self._s3.get_object(Bucket=watched.bucket, Key=key)["Body"].read()
        except Exception as exc:
            raise WitnessUnavailable(f"cannot read s3://{watched.bucket}/{key}: {exc}") from exc
        try:
            document = json.loads(body)
            if "checkpoint" not in document:
                return None if "signature" in document else self._bad(watched, key, "no checkpoint")
            note = SignedNote.parse(document["checkpoint"])
            checkpoint = CheckpointBody.parse(note.text)
            step = document["digest"].get("consistency") or {}
            from_size = step.get("from_size")
            path = tuple(bytes.fromhex(node) for node in step.get("path", []))
        except (ValueError, KeyError, TypeError, AttributeError, NoteError) as exc:
            return self._bad(watched, key, f"not a digest with a checkpoint ({exc})")
        if checkpoint.origin != watched.origin:
            return self._bad(watched, key, f"its origin is {checkpoint.origin!r}")
        if digest_signature(watched.public_key, document) is None:
            return self._bad(watched, key, "not signed by the log's key, or not binding its digest")
        return _Seen(key, note, checkpoint, from_size if isinstance(from_size, int) else None, path)

    def _bad(self, watched: WatchedLog, key: str, detail: str) -> Outcome:
        return Outcome(watched.origin, key, -1, Verdict.BAD_CHECKPOINT, detail)
