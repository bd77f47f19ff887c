"""The local "AWS upstream": an IAM-authorised API that checks SigV4 for real.

Mounted on the demo backend's server under :data:`MOUNT` (so the demo policy
reaches it through ``${BACKEND_URL}``). Each request must be SigV4-signed
with credentials STS issued through the recorder: the signature is
recomputed with that session's secret key and compared, the session token
must match and be signed, the date must be within five minutes, and the
credential scope must name this API's region and service. A request that
fails any check gets 403 with the reason, as AWS answers; a verified one gets
a JSON answer like the demo backend's (what was received, and who signed it)
and becomes a CloudTrail data event with the session's ``userIdentity``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from gatehouse.dev.cloudtrail import IssuedSessions, TrailWriter, upstream_call_record

MOUNT = "/aws-upstream"
MAX_CLOCK_SKEW = timedelta(minutes=5)
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/"
    r"(?P<service>[^/,\s]+)/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
_EVENT_NAMES = {"execute-api": "Invoke", "lambda": "InvokeFunctionUrl"}


class SignatureRejected(Exception):
    """The request is not validly signed by an issued session (the answer is 403)."""


@dataclass(frozen=True, slots=True)
class Verified:
    """Who signed a request, once the signature checked out."""

    access_key_id: str
    source_identity: str | None
    session_name: str
    role_arn: str
    assumed_role_arn: str
    signed_headers: tuple[str, ...]


class AwsUpstream:
    """Verifies signatures and answers like the demo backend.

    Parameters
    ----------
    sessions:
        The sessions STS issued (recorded by the STS recorder).
    trail:
        Where each verified call is recorded.
    region, service:
        This API's signing region and service.
    """

    def __init__(
        self,
        sessions: IssuedSessions,
        trail: TrailWriter,
        *,
        region: str,
        service: str = "execute-api",
    ) -> None:
        self.sessions = sessions
        self.trail = trail
        self.region = region
        self.service = service
        self.verified_requests = 0

    def verify(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        now: datetime | None = None,
    ) -> Verified:
        """Check the request's SigV4 signature.

        Raises
        ------
        SignatureRejected
            Naming the first check that failed.
        """
        grouped: dict[str, list[str]] = {}
        for name, value in headers:
            grouped.setdefault(name.lower(), []).append(value)
        authorization = grouped.get("authorization") or []
        match = _AUTHORIZATION.fullmatch(authorization[0].strip()) if authorization else None
        if match is None or len(authorization) != 1:
            raise SignatureRejected("missing or malformed SigV4 Authorization header")
        session = self.sessions.get(match["key"])
        if session is None:
            raise SignatureRejected("the security token included in the request is invalid")
        now = now or datetime.now(UTC)
        if session.expires <= now:
            raise SignatureRejected("the security token included in the request is expired")
        signed = tuple(match["signed"].split(";"))
        self._check_signed_headers(match, signed, grouped, session.session_token, now)
        amz_date = grouped["x-amz-date"][0]
        expected = _signature(
            method,
            f"http://{grouped['host'][0]}{target}",
            {name: grouped[name][0] for name in signed},
            body,
            (session.access_key_id, session.secret_access_key, session.session_token),
            self.region,
            self.service,
            amz_date,
        )
        if not hmac.compare_digest(expected, match["signature"]):
            raise SignatureRejected(
                "the request signature we calculated does not match the signature you provided"
            )
        return Verified(
            session.access_key_id,
            session.source_identity,
            session.session_name,
            session.role_arn,
            session.assumed_role_arn,
            signed,
        )

    def _check_signed_headers(
        self,
        match: re.Match[str],
        signed: tuple[str, ...],
        grouped: dict[str, list[str]],
        session_token: str,
        now: datetime,
    ) -> None:
        for required in ("host", "x-amz-date", "x-amz-security-token"):
            if required not in signed:
                raise SignatureRejected(f"{required} is not signed")
        if any(len(grouped.get(name, [])) != 1 for name in signed):
            raise SignatureRejected("a signed header is missing or repeated")
        token = grouped["x-amz-security-token"][0]
        if not hmac.compare_digest(token.encode(), session_token.encode()):
            raise SignatureRejected("the security token does not belong to the access key")
        amz_date = grouped["x-amz-date"][0]
        try:
            signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError as exc:
            raise SignatureRejected("x-amz-date is not a SigV4 timestamp") from exc
        if abs(now - signed_at) > MAX_CLOCK_SKEW or match["date"] != amz_date[:8]:
            raise SignatureRejected("signature expired or dated in the future")
        if (match["region"], match["service"]) != (self.region, self.service):
            raise SignatureRejected(
                f"credential scope {match['region']}/{match['service']} is not "
                f"{self.region}/{self.service}"
            )

    def answer(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
    ) -> tuple[int, dict[str, Any]]:
        """Status and JSON answer for one request; a verified one is recorded in the trail."""
        try:
            verified = self.verify(method, target, headers, body)
        except SignatureRejected as exc:
            return 403, {"message": str(exc)}
        self.verified_requests += 1
        session = self.sessions.get(verified.access_key_id)
        assert session is not None  # verify found it
        parts = urlsplit(target)
        user_agent = next((v for n, v in headers if n.lower() == "user-agent"), "")
        request_id = str(uuid.uuid4())
        record = upstream_call_record(
            session,
            service=self.service,
            region=self.region,
            event_name=_EVENT_NAMES.get(self.service, method),
            method=method,
            path=parts.path,
            source_ip=source_ip,
            user_agent=user_agent,
            request_id=request_id,
        )
        self.trail.record(record)
        grouped: dict[str, list[str]] = {}
        for name, value in headers:
            if name.lower() not in ("authorization", "x-amz-security-token"):
                grouped.setdefault(name, []).append(value)
        return 200, {
            "method": method,
            "path": parts.path,
            "query": parse_qsl(parts.query, keep_blank_values=True),
            "headers": grouped,
            "body_bytes": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "aws": {
                "signature": "valid",
                "signed_headers": list(verified.signed_headers),
                "access_key_id": verified.access_key_id,
                "source_identity": verified.source_identity,
                "session_name": verified.session_name,
                "role_arn": verified.role_arn,
                "assumed_role_arn": verified.assumed_role_arn,
                "region": self.region,
                "service": self.service,
                "request_id": request_id,
                "cloudtrail_event_id": record["eventID"],
            },
        }


def _signature(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    credentials: tuple[str, str, str],
    region: str,
    service: str,
    amz_date: str,
) -> str:
    """SigV4 over exactly the signed headers, at the request's own timestamp."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import ReadOnlyCredentials

    request = AWSRequest(method=method, url=url, headers=headers, data=body)
    request.context["timestamp"] = amz_date
    auth = SigV4Auth(ReadOnlyCredentials(*credentials), service, region)
    canonical = auth.canonical_request(request)
    return str(auth.signature(auth.string_to_sign(request, canonical), request))
