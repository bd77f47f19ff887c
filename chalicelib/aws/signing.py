"""SigV4 signing of upstream requests with a principal's role session.

The signature covers the method, path, query, body and the headers ``host``,
``x-amz-date``, ``x-amz-security-token`` and ``content-type``; the other
forwarded headers are sent unsigned, because proxies and CDNs in front of AWS
endpoints rewrite some of them (``X-Forwarded-For``) and a signature over
them would break in transit. Client-sent ``X-Amz-*``, ``X-Amzn-*``, ``X-Apigw-*``
and ``Authorization`` headers never reach an AWS upstream: the request speaks for the role session
alone. The ``User-Agent`` ends with ``gatehouse/<request id>`` so that every
CloudTrail record the call causes names the request (SigV4 does not sign
``User-Agent``, so the suffix cannot break the signature).

botocore is imported on first use: it is in the Lambda runtime, but costs
time that routes without an AWS upstream must not pay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from chalicelib.aws.errors import SigningFailed

if TYPE_CHECKING:
    from chalicelib.aws.sessions import RoleSession

USER_AGENT_MARK = "gatehouse/"
# The client's own User-Agent is kept in front of the mark, cut so that the
# mark always survives a service that truncates long agents.
MAX_CLIENT_USER_AGENT = 200
_SIGNED_FROM_CLIENT = frozenset({"content-type"})
# Headers AWS front ends act on (x-apigw-api-id picks the API behind a VPC
# endpoint, x-amzn-* are theirs): a client may not send them to an AWS upstream.
_AWS_HEADER_PREFIXES = ("x-amz-", "x-amzn-", "x-apigw-")


def gatehouse_user_agent(client_user_agent: str | None, request_id: str) -> str:
    """``<client agent, cut> gatehouse/<request id>``.

    A mark inside the client's own agent is defused (``gatehouse_/``): a
    caller could otherwise send ``gatehouse/<someone else's request id>`` and
    have its AWS calls correlated with another person's request. The only
    mark left is ours, at the end.
    """
    mark = USER_AGENT_MARK + request_id
    if not client_user_agent:
        return mark
    client = client_user_agent[:MAX_CLIENT_USER_AGENT].replace(USER_AGENT_MARK, "gatehouse_/")
    return f"{client} {mark}"


def sign_upstream_request(
    session: RoleSession,
    *,
    service: str,
    region: str,
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    request_id: str,
) -> list[tuple[str, str]]:
    """The headers to send: ``headers`` without AWS ones, plus the SigV4 headers and User-Agent.

    Raises
    ------
    SigningFailed
        botocore could not sign the request (the message names no credential).
    """
    kept: list[tuple[str, str]] = []
    client_agent = None
    signed: dict[str, str] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered == "user-agent":
            client_agent = value
        elif lowered != "authorization" and not lowered.startswith(_AWS_HEADER_PREFIXES):
            kept.append((name, value))
            if lowered in _SIGNED_FROM_CLIENT:
                signed[lowered] = value
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import ReadOnlyCredentials

        credentials = ReadOnlyCredentials(
            session.access_key_id, session.secret_access_key, session.session_token
        )
        request = AWSRequest(method=method, url=url, headers=signed, data=body)
        SigV4Auth(credentials, service, region).add_auth(request)
        kept.extend(
            (name, str(request.headers[name]))
            for name in ("X-Amz-Date", "X-Amz-Security-Token", "Authorization")
        )
    except Exception as exc:  # botocore's failures are not one hierarchy
        raise SigningFailed(
            f"SigV4 signing for {service}/{region} failed: {type(exc).__name__}"
        ) from exc
    kept.append(("User-Agent", gatehouse_user_agent(client_agent, request_id)))
    return kept
