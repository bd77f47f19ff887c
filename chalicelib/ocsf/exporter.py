"""The continuous export: what the ledger committed since the cursor, as Security Lake files.

Amazon Security Lake takes a custom source's data as Parquet files, one OCSF
class per source, under::

    <lake root>/ext/<source name>/region=<region>/accountId=<account>/eventDay=<YYYYMMDD>/

Gatehouse is three sources, one per class it emits (:data:`SOURCES`). Each
run reads the committed ledger objects from the cursor on (by version, each
checked against the SHA-256 the ledger recorded), maps every line, and
writes one file per object, class and event day, named by the object's
sequence range::

    .../eventDay=20261128/0000000000004096-0000000000005095.parquet

Each file is written with ``If-None-Match: *``: a run that dies after
writing and before moving the cursor is repeated by the next one, which
finds its files already there and leaves them. The cursor moves object by
object, so progress is kept however a run ends: exactly once, as far as S3's
conditional writes and one conditional cursor make it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.ledger.errors import LedgerUnavailable
from chalicelib.ledger.reading import gunzip, split_lines
from chalicelib.ocsf.common import LedgerPosition
from chalicelib.ocsf.errors import ExportUnavailable
from chalicelib.ocsf.mapping import CLASSES, to_ocsf_line
from chalicelib.ocsf.parquet import fit_record, write_parquet

if TYPE_CHECKING:
    from chalicelib.ledger.records import ObjectRecord
    from chalicelib.ledger.state import LedgerState
    from chalicelib.ocsf.cursor import ExportCursor

# One custom source per OCSF class (Security Lake wants one class per source).
SOURCES = {uid: "gatehouse-" + name.replace("_", "-") for uid, name in CLASSES.items()}
# How many ledger objects one run exports at most (a 5-minute schedule catches up).
MAX_OBJECTS_PER_RUN = 50


@dataclass(frozen=True, slots=True)
class LakeLocation:
    """Where the lake is: a bucket, the prefix ``ext/`` goes under, the region and account."""

    bucket: str
    prefix: str
    region: str
    account: str

    @classmethod
    def from_uri(cls, uri: str, *, region: str, account: str) -> LakeLocation:
        """``s3://bucket[/prefix]``.

        Raises
        ------
        ValueError
            When ``uri`` is not an ``s3://`` URI with a bucket.
        """
        if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
            raise ValueError(f"{uri!r} is not s3://bucket[/prefix]")
        bucket, _, prefix = uri[5:].partition("/")
        prefix = prefix.strip("/")
        return cls(bucket, f"{prefix}/" if prefix else "", region, account)

    def key(self, class_uid: int, day: str, first: int, last: int) -> str:
        """The key of the file of ``class_uid`` for event day ``day`` (YYYYMMDD), sequences
        ``first`` to ``last``."""
        return (
            f"{self.prefix}ext/{SOURCES[class_uid]}/region={self.region}/"
            f"accountId={self.account}/eventDay={day}/{first:016d}-{last:016d}.parquet"
        )


@dataclass(slots=True)
class ExportRun:
    """What one run did."""

    objects: int = 0
    records: int = 0
    written: list[str] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)
    next_sequence: int = 0


class ProviderRoles:
    """The S3 clients that write each custom source, as the role Security Lake made for it.

    Security Lake makes one provider role per custom source, in the lake's
    account, trusted by the source's account with an external ID. One
    ``AssumeRole`` per source per exporter (per scheduled run: the exporter is
    built per invocation, and a session lasts 15 minutes).

    Parameters
    ----------
    sts:
        A boto3 STS client.
    assumed_s3:
        Builds an S3 client from an STS answer's ``Credentials``.
    role_template:
        The role ARN, ``{source}`` standing for the source's name.
    external_id:
        What the roles' trust policy requires (None: nothing).
    """

    def __init__(
        self,
        sts: Any,
        assumed_s3: Callable[[Mapping[str, str]], Any],
        role_template: str,
        external_id: str | None,
    ) -> None:
        self._sts = sts
        self._assumed_s3 = assumed_s3
        self._template = role_template
        self._external_id = external_id
        self._clients: dict[str, Any] = {}

    def s3_for(self, source: str) -> Any:
        """The S3 client writing ``source``'s files.

        Raises
        ------
        ExportUnavailable
            When the role cannot be assumed (the message names it, and why).
        """
        client = self._clients.get(source)
        if client is None:
            client = self._assumed_s3(self._assume(self._template.replace("{source}", source)))
            self._clients[source] = client
        return client

    def _assume(self, role_arn: str) -> Mapping[str, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        request: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": "gatehouse-ocsf-export",
            "DurationSeconds": 900,
        }
        if self._external_id:
            request["ExternalId"] = self._external_id
        try:
            credentials: Mapping[str, str] = self._sts.assume_role(**request)["Credentials"]
        except (BotoCoreError, ClientError) as exc:
            raise ExportUnavailable(
                f"cannot assume {role_arn} to write the lake: {exc} (its trust policy must "
                "name this account and external ID; ocsf_export's own policy must allow "
                "sts:AssumeRole on it)"
            ) from exc
        return credentials


class OcsfExporter:
    """Exports the ledger's committed objects since the cursor into the lake.

    Parameters
    ----------
    s3:
        A boto3 S3 client that can read the audit bucket and write the lake.
    audit_bucket:
        The audit bucket (the ledger's objects).
    ledger:
        The ledger's state (which objects were committed, their tree heads).
    cursor:
        The export cursor.
    lake:
        Where the files go.
    origin:
        The ledger's checkpoint origin (named in every record).
    lake_s3:
        Source name -> the S3 client that writes its files (None: ``s3``).
    """

    def __init__(
        self,
        s3: Any,
        audit_bucket: str,
        ledger: LedgerState,
        cursor: ExportCursor,
        lake: LakeLocation,
        *,
        origin: str,
        lake_s3: Callable[[str], Any] | None = None,
    ) -> None:
        self._s3 = s3
        self._lake_s3 = lake_s3 or (lambda source: s3)
        self._bucket = audit_bucket
        self._ledger = ledger
        self._cursor = cursor
        self._lake = lake
        self._origin = origin

    def run(self, max_objects: int = MAX_OBJECTS_PER_RUN) -> ExportRun:
        """Export up to ``max_objects`` committed objects past the cursor.

        Raises
        ------
        ExportUnavailable
            When the ledger, a bucket or the cursor cannot be used, or an
            object is not what the ledger committed (nothing after it is
            exported until it is).
        """
        state = self._cursor.read()
        try:
            pending = self._ledger.objects(from_sequence=state.next_sequence)[:max_objects]
        except LedgerUnavailable as exc:
            raise ExportUnavailable(str(exc)) from exc
        done = ExportRun(next_sequence=state.next_sequence)
        for record in pending:
            if record.first_sequence != state.next_sequence:
                raise ExportUnavailable(
                    f"the ledger has no object starting at sequence {state.next_sequence} "
                    f"(next is {record.first_sequence}): the export stops there"
                )
            self._export_object(record, done)
            end = record.first_sequence + record.count
            if not self._cursor.advance(state, end):
                break  # another run moved the cursor: it carries on from there
            state = self._cursor.read()
            done.objects += 1
            done.next_sequence = end
        return done

    def _export_object(self, record: ObjectRecord, done: ExportRun) -> None:
        lines = self._lines(record)
        files: dict[tuple[int, str], list[dict[str, Any]]] = {}
        for offset, line in enumerate(lines):
            position = LedgerPosition(
                record.first_sequence + offset,
                self._origin,
                record.tree_size,
                record.root,
                record.key,
            )
            mapped = to_ocsf_line(line, position)
            day = time.strftime("%Y%m%d", time.gmtime(mapped["time"] / 1000))
            files.setdefault((mapped["class_uid"], day), []).append(mapped)
        last = record.first_sequence + record.count - 1
        for (class_uid, day), records in sorted(files.items()):
            key = self._lake.key(class_uid, day, record.first_sequence, last)
            writer = self._lake_s3(SOURCES[class_uid])
            fitted = [fit_record(class_uid, one) for one in records]
            if self._put_once(writer, key, write_parquet(class_uid, fitted)):
                done.written.append(key)
            else:
                done.already_there.append(key)
            done.records += len(records)

    def _lines(self, record: ObjectRecord) -> list[bytes]:
        from botocore.exceptions import BotoCoreError, ClientError

        from chalicelib.ledger.verify import version_kwargs

        try:
            body = self._s3.get_object(
                Bucket=self._bucket, Key=record.key, **version_kwargs(record.version_id)
            )["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise ExportUnavailable(f"cannot read {record.key}: {exc}") from exc
        if hashlib.sha256(body).hexdigest() != record.sha256:
            raise ExportUnavailable(f"{record.key} is not the object the ledger committed")
        lines = split_lines(gunzip(body))
        if len(lines) != record.count:
            raise ExportUnavailable(f"{record.key} holds {len(lines)} lines, not {record.count}")
        return lines

    def _put_once(self, s3: Any, key: str, body: bytes) -> bool:
        """Write ``key`` unless it exists (False: it did, from an earlier run)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            s3.put_object(
                Bucket=self._lake.bucket,
                Key=key,
                Body=body,
                ContentType="application/vnd.apache.parquet",
                IfNoneMatch="*",
                # A lock-enabled bucket (the local stack's) wants a checksum on every PUT.
                ChecksumAlgorithm="SHA256",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                return False
            raise ExportUnavailable(f"cannot write {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise ExportUnavailable(f"cannot write {key}: {exc}") from exc
        return True
