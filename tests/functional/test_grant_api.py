"""The grant API (``/.gatehouse/grants``) through ``app.app``, with API Gateway proxy events.

The API is the only way grants change: the caller is whoever the *stage*
trusts their token to be, and every time comes from the function's clock.
Tokens are real (signed, verified through the container's JWKS cache),
DynamoDB and SQS are moto, and every answer is checked against what the
table and the audit queue hold afterwards, refusals included.

The rules behind each answer are in ``test_grant_lifecycle.py``; what the
authorizer makes of a grant in ``test_grant_authorizer.py``. ``test_grant_review.py``
reuses this file's request helpers.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import boto3
import pytest

import app
from chalicelib.grants import redeliver_outbox
from chalicelib.grants.sweeper import OUTBOX_GRACE_SECONDS
from gatehouse.dev.lambda_context import LambdaContext
from tests.functional.conftest import grant_events, queued_events, store
from tests.helpers import ISSUER, claims, load_event, make_token

if TYPE_CHECKING:
    from chalicelib.container import Container
    from gatehouse.dev.bootstrap import Resources

SOURCE_IP = "203.0.113.7"
REQUEST_BODY = {
    "routes": ["demo"],
    "actions": ["GET"],
    "paths": ["/api/customers/**"],
    "duration": "2h",
    "justification": "TICKET-9: customer escalation",
}


def token_for(key: Any, sub: str, groups: list[str], **extra: Any) -> str:
    return make_token(
        key, "RS256", "rsa-1", claims(sub=sub, groups=groups, email=f"{sub}@example.com", **extra)
    )


def grant_event(
    method: str, path: str, token: str | None, body: Any = None, *, request_id: str = "req-1"
) -> dict[str, Any]:
    """The proxy fixture turned into a call on a grant route, as API Gateway sends it."""
    event = load_event("proxy_request")
    resource = "/.gatehouse/grants"
    parameters = None
    if path != resource:
        grant_id, action = path.rsplit("/", 2)[-2:]
        resource, parameters = f"/.gatehouse/grants/{{grant_id}}/{action}", {"grant_id": grant_id}
    context = event["requestContext"]
    context.pop("authorizer")
    event.update(resource=resource, path=path, httpMethod=method, pathParameters=parameters)
    context.update(resourcePath=resource, httpMethod=method, path=f"/dev{path}")
    context["requestId"] = request_id
    context["identity"]["sourceIp"] = SOURCE_IP
    headers = {"Host": "gatehouse.example.com", "User-Agent": "gatehouse-cli"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    event["headers"] = headers
    event["multiValueHeaders"] = {name: [value] for name, value in headers.items()}
    event["queryStringParameters"] = event["multiValueQueryStringParameters"] = None
    encoded = body if isinstance(body, str) or body is None else json.dumps(body)
    event["body"], event["isBase64Encoded"] = encoded, False
    return event


def call(method: str, path: str, token: str | None, body: Any = None) -> tuple[int, Any]:
    response = app.app(
        grant_event(method, path, token, body), LambdaContext(aws_request_id="lambda-grants")
    )
    assert response["headers"]["Content-Type"] == "application/json"
    assert response["headers"]["Cache-Control"] == "no-store"
    return response["statusCode"], json.loads(response["body"])


def test_a_grant_is_requested_approved_listed_and_revoked_through_the_api(
    granting: Container, aws: Resources, rsa_key: Any
) -> None:
    erin = token_for(rsa_key, "erin", ["support"])
    sam = token_for(rsa_key, "sam", ["security"])
    before = time.time()

    status, requested = call("POST", "/.gatehouse/grants", erin, REQUEST_BODY)
    assert (status, requested["status"], requested["subject"]) == (201, "pending", "erin")
    path = f"/.gatehouse/grants/{requested['id']}"
    status, approved = call("POST", f"{path}/approve", sam)
    assert (status, approved["status"]) == (200, "approved")
    assert approved["approver"] == f"{ISSUER}|sam (sam@example.com)"

    stored = store(aws).get(requested["id"])
    # The function's clock, not the caller's: approved now, for exactly the asked 2 h.
    assert stored.approved_at is not None
    assert before <= stored.approved_at <= time.time()
    assert stored.expires_at == stored.approved_at + 7200

    assert [g["id"] for g in call("GET", "/.gatehouse/grants", sam)[1]] == [requested["id"]]
    assert [g["id"] for g in call("GET", "/.gatehouse/grants", erin)[1]] == [requested["id"]]
    mallory = token_for(rsa_key, "mallory", ["support"])
    assert call("GET", "/.gatehouse/grants", mallory) == (200, [])  # not hers, not an approver

    status, revoked = call("POST", f"{path}/revoke", erin, {"reason": "done"})
    assert (status, revoked["status"]) == (200, "revoked")

    events = grant_events(aws)
    assert [e["grant"]["action"] for e in events] == ["requested", "approved", "revoked"]
    assert store(aws).outbox(written_before=time.time() + 1) == []  # each cleared once enqueued
    assert [e["principal"]["subject"] for e in events] == ["erin", "sam", "erin"]
    assert {e["request"]["id"] for e in events} == {"req-1"}
    assert {e["source"]["ip"] for e in events} == {SOURCE_IP}
    assert {e["aws"] for e in events} == {None}  # no operator credentials took part
    assert events[2]["grant"]["reason"] == "done"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param(None, "missing_credentials", id="no token"),
        pytest.param("not.a.token", "malformed_token", id="garbage"),
        pytest.param({"exp": 1_000}, "token_expired", id="expired"),
        pytest.param({"aud": "someone-else"}, "wrong_audience", id="wrong audience"),
        # The attack the CLI allowed: an approver minted by an issuer of the caller's choosing.
        pytest.param({"iss": "https://idp.evil"}, "unknown_issuer", id="attacker's issuer"),
        pytest.param("other-key", "bad_signature", id="forged signature"),
    ],
)
def test_an_approval_without_a_token_the_stage_trusts_is_refused_and_audited(
    granting: Container,
    aws: Resources,
    rsa_key: Any,
    other_rsa_key: Any,
    token: Any,
    reason: str,
) -> None:
    _, pending = call(
        "POST", "/.gatehouse/grants", token_for(rsa_key, "erin", ["support"]), REQUEST_BODY
    )
    queued_events(aws)
    if isinstance(token, dict):
        token = token_for(rsa_key, "sam", ["security"], **token)
    elif token == "other-key":
        token = token_for(other_rsa_key, "sam", ["security"])

    response = app.app(
        grant_event("POST", f"/.gatehouse/grants/{pending['id']}/approve", token),
        LambdaContext(aws_request_id="lambda-grants"),
    )

    assert response["statusCode"] == 401
    assert response["headers"]["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert reason in json.loads(response["body"])["message"]
    assert store(aws).get(pending["id"]).status == "pending"
    assert store(aws).live_grants() == []
    [event] = grant_events(aws)
    assert event["principal"] is None
    assert event["grant"]["action"] == "refused"
    assert event["grant"]["attempted"] == "approve"
    assert event["grant"]["grant_id"] == pending["id"]
    assert event["grant"]["status"] == 401
    if isinstance(token, str) and len(token) > 20:
        assert token not in json.dumps(event)
        assert token.split(".")[2] not in json.dumps(event)


@pytest.mark.parametrize(
    ("actor", "groups", "action", "status", "message"),
    [
        pytest.param(
            "mallory", ["support"], "approve", 403, "only members of security", id="not an approver"
        ),
        pytest.param(
            "erin", ["support", "security"], "approve", 403, "their own grant", id="own grant"
        ),
        pytest.param("erin-2", ["security"], "deny", 403, "their own grant", id="same mailbox"),
        pytest.param(
            "mallory", ["support"], "revoke", 403, "requester or an approver", id="stranger revokes"
        ),
    ],
)
def test_a_caller_who_may_not_act_is_refused_and_audited(
    granting: Container,
    aws: Resources,
    rsa_key: Any,
    actor: str,
    groups: list[str],
    action: str,
    status: int,
    message: str,
) -> None:
    erin = token_for(rsa_key, "erin", ["support"])
    _, pending = call("POST", "/.gatehouse/grants", erin, REQUEST_BODY)
    queued_events(aws)
    extra = {"email": "erin@example.com"} if actor == "erin-2" else {}
    token = make_token(
        rsa_key,
        "RS256",
        "rsa-1",
        claims(sub=actor, groups=groups, **({"email": f"{actor}@example.com"} | extra)),
    )

    answer = call("POST", f"/.gatehouse/grants/{pending['id']}/{action}", token)

    assert answer[0] == status
    assert message in answer[1]["message"]
    assert store(aws).get(pending["id"]).status == "pending"
    [event] = grant_events(aws)
    assert (event["grant"]["action"], event["grant"]["attempted"]) == ("refused", action)
    assert event["principal"]["subject"] == actor


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        pytest.param(
            "POST", "/.gatehouse/grants", "{not json", 400, "not JSON", id="body not JSON"
        ),
        pytest.param("POST", "/.gatehouse/grants", [1], 400, "JSON object", id="body a list"),
        pytest.param(
            "POST",
            "/.gatehouse/grants",
            {**REQUEST_BODY, "duration": "5h"},
            400,
            "exceeds the policy's max_duration 4h",
            id="too long",
        ),
        pytest.param(
            "POST",
            "/.gatehouse/grants",
            {**REQUEST_BODY, "routes": ["nope"]},
            400,
            "unknown route 'nope'",
            id="unknown route",
        ),
        pytest.param(
            "POST",
            "/.gatehouse/grants",
            {**REQUEST_BODY, "routes": "demo"},
            400,
            "routes must be a list",
            id="routes a string",
        ),
        pytest.param(
            "POST",
            "/.gatehouse/grants",
            {**REQUEST_BODY, "justification": None},
            400,
            "justification is required",
            id="no justification",
        ),
        pytest.param(
            "POST",
            "/.gatehouse/grants/01a00000-0000-7000-8000-000000000000/approve",
            None,
            404,
            "no grant",
            id="no such grant",
        ),
        pytest.param(
            "POST", "/.gatehouse/grants/../approve", None, 404, "no grant", id="id not a uuid"
        ),
        pytest.param(
            "PUT", "/.gatehouse/grants", None, 405, "not a grant operation", id="PUT on the list"
        ),
    ],
)
def test_bad_requests_get_a_clear_error_and_change_nothing(
    granting: Container,
    aws: Resources,
    rsa_key: Any,
    method: str,
    path: str,
    body: Any,
    status: int,
    message: str,
) -> None:
    sam = token_for(rsa_key, "sam", ["security"])

    answer = call(method, path, sam, body)

    assert answer[0] == status, answer
    assert message in answer[1]["message"]
    assert store(aws).list_grants() == []
    [event] = grant_events(aws)
    assert event["grant"]["action"] == "refused"
    assert event["grant"]["status"] == status


def test_a_second_approval_conflicts(granting: Container, aws: Resources, rsa_key: Any) -> None:
    _, pending = call(
        "POST", "/.gatehouse/grants", token_for(rsa_key, "erin", ["support"]), REQUEST_BODY
    )
    approve = f"/.gatehouse/grants/{pending['id']}/approve"
    sam, tess = token_for(rsa_key, "sam", ["security"]), token_for(rsa_key, "tess", ["security"])
    assert call("POST", approve, sam)[0] == 200

    status, answer = call("POST", approve, tess)

    assert status == 409
    assert "already approved" in answer["message"]
    assert store(aws).get(pending["id"]).approver == f"{ISSUER}|sam (sam@example.com)"


def test_grants_are_refused_while_the_policy_has_no_grants_block(
    stage: Container, aws: Resources, rsa_key: Any
) -> None:
    status, answer = call(
        "POST", "/.gatehouse/grants", token_for(rsa_key, "erin", ["support"]), REQUEST_BODY
    )

    assert status == 400
    assert "not enabled" in answer["message"]
    assert store(aws).list_grants() == []


def test_a_change_the_queue_cannot_take_is_kept_with_its_event_and_enqueued_later(
    granting: Container, aws: Resources, rsa_key: Any
) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    attributes = sqs.get_queue_attributes(QueueUrl=aws.audit_queue_url, AttributeNames=["All"])
    sqs.delete_queue(QueueUrl=aws.audit_queue_url)
    erin = token_for(rsa_key, "erin", ["support"])

    status, answer = call("POST", "/.gatehouse/grants", erin, REQUEST_BODY)

    # Done (202), and said so: the event waits in the outbox, beside the change.
    assert status == 202
    assert answer["audit"] == "pending"
    assert "the grant sweeper enqueues it" in answer["message"]
    [stored] = store(aws).list_grants()
    assert answer["grant_ids"] == [stored.id]
    [kept] = store(aws).outbox(written_before=time.time() + 1)
    assert kept["grant"]["action"] == "requested"
    assert kept["grant"]["grant_id"] == stored.id
    assert kept["principal"]["subject"] == "erin"

    name = aws.audit_queue_url.rsplit("/", 1)[1]
    sqs.create_queue(QueueName=name, Attributes={
        k: v for k, v in attributes["Attributes"].items() if k in ("VisibilityTimeout",)
    })  # fmt: skip
    # A young entry is left to the request that wrote it; an old one is enqueued once.
    assert redeliver_outbox(granting.grant_store, granting.emitter, time.time()) == []
    later = time.time() + OUTBOX_GRACE_SECONDS + 1
    assert redeliver_outbox(granting.grant_store, granting.emitter, later) == [kept["event_id"]]
    assert redeliver_outbox(granting.grant_store, granting.emitter, later) == []

    [event] = grant_events(aws)
    assert event == kept


def test_requests_waiting_for_a_decision_are_bounded_per_person(
    granting: Container, aws: Resources, rsa_key: Any
) -> None:
    mallory = token_for(rsa_key, "mallory", ["nobody"])
    for _ in range(5):
        assert call("POST", "/.gatehouse/grants", mallory, REQUEST_BODY)[0] == 201

    status, answer = call("POST", "/.gatehouse/grants", mallory, REQUEST_BODY)

    assert status == 400
    assert "5 requests waiting" in answer["message"]
    assert len(store(aws).list_grants()) == 5
    # Someone else is not held up by mallory.
    assert (
        call("POST", "/.gatehouse/grants", token_for(rsa_key, "erin", ["support"]), REQUEST_BODY)[0]
        == 201
    )


def test_a_body_nested_too_deep_is_a_clear_400_and_audited(
    granting: Container, aws: Resources, rsa_key: Any
) -> None:
    body = "[" * 8000 + "]" * 8000

    status, answer = call(
        "POST", "/.gatehouse/grants", token_for(rsa_key, "erin", ["support"]), body
    )

    assert status == 400
    assert "nests too deeply" in answer["message"]
    [event] = grant_events(aws)
    assert event["grant"]["action"] == "refused"
