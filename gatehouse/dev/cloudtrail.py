"""CloudTrail, emulated: the local stack writes the records AWS would write for the proxy's calls.

moto writes no CloudTrail. The local stack sees every AWS call the proxy
makes (the STS recorder in front of moto sees AssumeRole; the local AWS
upstream sees each signed call) and turns each into a record in CloudTrail's
documented schema, delivered like a trail delivers them: gzip'd
``{"Records": [...]}`` objects under
``AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<unique>.json.gz``,
every couple of seconds rather than AWS's ~5 minutes.

What differs from AWS, on purpose: ``responseElements.credentials`` of an
AssumeRole record carries no ``sessionToken`` (AWS logs it; secrets never
reach our logs), and moto returns no ``SourceIdentity``, so the records take
it from what the proxy sent STS (recorded here, in :class:`IssuedSessions`).
"""

from __future__ import annotations

import gzip
import json
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

EVENT_VERSION = "1.09"


def cloudtrail_time(moment: datetime) -> str:
    """CloudTrail's ``eventTime`` / ``creationDate`` format: ``2024-05-01T12:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _expiration_text(moment: datetime) -> str:
    """How CloudTrail writes an AssumeRole credential's expiration: ``May 1, 2024, 12:15:00 PM``."""
    moment = moment.astimezone(UTC)
    hour = moment.hour % 12 or 12
    return f"{moment:%b} {moment.day}, {moment.year}, {hour}:{moment:%M:%S} {moment:%p}"


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """A role session STS issued through the recorder, as the local AWS side knows it."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    role_arn: str
    assumed_role_id: str
    assumed_role_arn: str
    session_name: str
    source_identity: str | None
    created: datetime
    expires: datetime

    @property
    def account_id(self) -> str:
        """The role's account."""
        return self.role_arn.split(":")[4]

    def user_identity(self) -> dict[str, Any]:
        """``userIdentity`` of a call made with this session."""
        role_id = self.assumed_role_id.split(":", 1)[0]
        return {
            "type": "AssumedRole",
            "principalId": self.assumed_role_id,
            "arn": self.assumed_role_arn,
            "accountId": self.account_id,
            "accessKeyId": self.access_key_id,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": role_id,
                    "arn": self.role_arn,
                    "accountId": self.account_id,
                    "userName": self.role_arn.rsplit("/", 1)[-1],
                },
                "attributes": {
                    "creationDate": cloudtrail_time(self.created),
                    "mfaAuthenticated": "false",
                },
                "sourceIdentity": self.source_identity,
            },
        }


class IssuedSessions:
    """Sessions by access key id, so the local AWS upstream can check signatures."""

    def __init__(self) -> None:
        self._sessions: dict[str, IssuedSession] = {}
        self._lock = threading.Lock()

    def add(self, session: IssuedSession) -> None:
        """Remember ``session``."""
        with self._lock:
            self._sessions[session.access_key_id] = session

    def get(self, access_key_id: str) -> IssuedSession | None:
        """The session of ``access_key_id``, if STS issued it through the recorder."""
        with self._lock:
            return self._sessions.get(access_key_id)


def assume_role_record(
    *,
    caller_access_key_id: str,
    account_id: str,
    region: str,
    source_ip: str,
    user_agent: str,
    parameters: dict[str, Any],
    session: IssuedSession | None,
    request_id: str,
    error: tuple[str, str] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The record of one ``sts:AssumeRole`` call (failed calls are recorded too, with the error).

    The caller is the identity moto gives the local stack's credentials
    (``user/moto``); in AWS it is the functions' role session.
    """
    record: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAMOTOLOCALSTACK",
            "arn": f"arn:aws:iam::{account_id}:user/moto",
            "accountId": account_id,
            "accessKeyId": caller_access_key_id,
            "userName": "moto",
        },
        "eventTime": cloudtrail_time(now or datetime.now(UTC)),
        "eventSource": "sts.amazonaws.com",
        "eventName": "AssumeRole",
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": user_agent,
        "requestParameters": parameters,
        "responseElements": None,
        "requestID": request_id,
        "eventID": str(uuid.uuid4()),
        "readOnly": True,
        "resources": [
            {"accountId": account_id, "type": "AWS::IAM::Role", "ARN": parameters.get("roleArn")}
        ],
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account_id,
        "eventCategory": "Management",
    }
    if error is not None:
        record["errorCode"], record["errorMessage"] = error
    elif session is not None:
        record["responseElements"] = {
            "credentials": {
                "accessKeyId": session.access_key_id,
                "expiration": _expiration_text(session.expires),
            },
            "assumedRoleUser": {
                "assumedRoleId": session.assumed_role_id,
                "arn": session.assumed_role_arn,
            },
            "sourceIdentity": session.source_identity,
        }
    return record


def upstream_call_record(
    session: IssuedSession,
    *,
    service: str,
    region: str,
    event_name: str,
    method: str,
    path: str,
    source_ip: str,
    user_agent: str,
    request_id: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The (data event) record of one signed call to an AWS upstream."""
    return {
        "eventVersion": EVENT_VERSION,
        "userIdentity": session.user_identity(),
        "eventTime": cloudtrail_time(now or datetime.now(UTC)),
        "eventSource": f"{service}.amazonaws.com",
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": user_agent,
        "requestParameters": {"httpMethod": method, "path": path},
        "responseElements": None,
        "requestID": request_id,
        "eventID": str(uuid.uuid4()),
        "readOnly": method in ("GET", "HEAD", "OPTIONS"),
        "resources": [],
        "eventType": "AwsApiCall",
        "managementEvent": False,
        "recipientAccountId": session.account_id,
        "eventCategory": "Data",
    }


def log_file_key(account_id: str, region: str, moment: datetime, unique: str) -> str:
    """Where a trail delivers a log file, in CloudTrail's documented layout."""
    moment = moment.astimezone(UTC)
    return (
        f"AWSLogs/{account_id}/CloudTrail/{region}/{moment:%Y/%m/%d}/"
        f"{account_id}_CloudTrail_{region}_{moment:%Y%m%dT%H%MZ}_{unique}.json.gz"
    )


class TrailWriter:
    """Buffers records and delivers them to the trail bucket, one object per region and minute.

    Parameters
    ----------
    s3:
        Returns the S3 client (pointed at moto).
    bucket, account_id:
        The trail bucket and the account whose ``AWSLogs/`` prefix is written.
    interval_seconds:
        How often buffered records are delivered.
    """

    def __init__(
        self,
        s3: Callable[[], Any],
        bucket: str,
        account_id: str,
        interval_seconds: float = 2.0,
    ) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.account_id = account_id
        self._interval = interval_seconds
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cloudtrail", daemon=True)
        self.delivered: list[str] = []
        self.errors = 0

    def record(self, record: dict[str, Any]) -> None:
        """Queue ``record`` for the next delivery."""
        with self._lock:
            self._pending.append(record)

    def flush(self) -> list[str]:
        """Deliver everything buffered; return the keys written."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, []
            groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for record in pending:
                minute = record["eventTime"][:16]  # YYYY-MM-DDTHH:MM
                groups.setdefault((record["awsRegion"], minute), []).append(record)
            written = []
            for (region, minute), records in sorted(groups.items()):
                moment = datetime.strptime(minute, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
                key = log_file_key(self.account_id, region, moment, secrets.token_hex(8).upper())
                body = gzip.compress(json.dumps({"Records": records}).encode("utf-8"))
                try:
                    self._s3().put_object(
                        Bucket=self.bucket, Key=key, Body=body, ContentType="application/json"
                    )
                except Exception as exc:
                    self.errors += 1
                    from gatehouse.dev.event_source import print_poller_error

                    print_poller_error("cloudtrail", f"cannot deliver {key}: {exc} (retried)")
                    with self._lock:  # keep them for the next delivery
                        self._pending[:0] = records
                    continue
                written.append(key)
            self.delivered.extend(written)
            return written

    def start(self) -> None:
        """Deliver every ``interval_seconds`` in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop delivering, after one last delivery."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()
