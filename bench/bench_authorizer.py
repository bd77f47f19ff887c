"""Authorizer decision cost (against its budgets).

- Warm decision for a fresh RS256 token with 100 rules <= 3.0x the raw
  ``cryptography`` RSA verify of the same token (the floor); the signature and
  registered claims go through joserfc, which alone costs about 2.7x.
- Warm decision for a repeated token <= 15 µs.

"Decision" is the authorizer handler end to end for one REQUEST event:
event parsing, token verification, path normalisation, policy evaluation,
the audit event, and the IAM answer. The audit sink is in memory: the SQS
send is network time, measured separately against moto for reference.
"""

from __future__ import annotations

import contextlib
import copy
import json
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import re

import boto3
import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from moto import mock_aws

from bench.common import (
    AUDIENCE,
    ISSUER,
    claims,
    figure,
    gateway_event,
    hundred_rule_policy,
    measure,
    measure_each,
    moto_policy_store,
)
from chalicelib.audit import AuditEmitter, SqsAuditSink
from chalicelib.authorize import Authorizer, Decider, Unauthorized
from chalicelib.config import DEFAULT_QUERY_REDACTION, TrustedIssuer
from chalicelib.identity import JwksCache, TokenVerifier
from chalicelib.identity.keys import b64url_decode
from chalicelib.policy import ActivePolicy


class MemorySink:
    """Keeps serialised events in memory (stands in for the SQS network call)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def send(self, line: str) -> None:
        self.lines.append(line)
        if len(self.lines) > 10_000:
            self.lines.clear()


METHOD_ARN_BASE = "arn:aws:execute-api:us-east-1:123456789012:abc123/dev"


def authorizer_event(token: str) -> dict[str, Any]:
    """A REQUEST authorizer event as API Gateway sends it."""
    event = gateway_event(
        "GET", "/app3/api/v1/items", str(uuid.uuid4()), authorization=f"Bearer {token}"
    )
    event["type"] = "REQUEST"
    event["methodArn"] = (
        "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/GET/app3/api/v1/items"
    )
    return event


def main() -> None:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))
    public_jwk.update({"kid": "bench-rsa", "alg": "RS256", "use": "sig"})
    keys = JwksCache(lambda url: {"keys": [public_jwk]}, cooldown_seconds=30, max_age_seconds=3600)
    issuer = TrustedIssuer(ISSUER, (AUDIENCE,), jwks_uri=f"{ISSUER}/jwks")

    def mint(**extra: Any) -> str:
        return jwt.encode(
            claims(jti=str(uuid.uuid4()), **extra),
            private_key,
            "RS256",
            headers={"kid": "bench-rsa"},
        )

    with mock_aws():
        resources, store = moto_policy_store(hundred_rule_policy())
        policy = ActivePolicy(store, default_issuer=ISSUER, refresh_seconds=3600)
        policy.current()

        def build(sink: Any) -> Authorizer:
            return Authorizer(
                decider=Decider(
                    verifier=TokenVerifier([issuer], keys, cache_size=100_000), policy=policy
                ),
                policy=policy,
                emitter=AuditEmitter(sink),
                query_redaction=re.compile(DEFAULT_QUERY_REDACTION),
                ttl_seconds=0,
            )

        authorizer = build(MemorySink())
        print("Authorizer (RS256 2048-bit, 100-rule policy, in-memory audit sink)", flush=True)

        # Floor: the raw RSA verify of one token, exactly as cryptography does it.
        token = mint()
        header_b64, payload_b64, signature_b64 = token.split(".")
        signing_input = f"{header_b64}.{payload_b64}".encode()
        signature = b64url_decode(signature_b64)
        public_key = private_key.public_key()
        floor = measure(
            lambda: public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        )
        figure("floor: raw cryptography RSA-2048 verify", floor)

        from chalicelib.apigw.events import parse_authorizer_event

        fresh_events = [authorizer_event(mint()) for _ in range(2100)]
        fresh_requests = [parse_authorizer_event(e) for e in fresh_events[:1050]]
        fresh_decide = measure_each([lambda r=r: authorizer.decide(r) for r in fresh_requests])
        figure(
            "decision, fresh RS256 token (verify + 100 rules)",
            fresh_decide,
            floor=floor,
            budget="<= 3.0x floor",
        )
        fresh = measure_each(
            [lambda e=e: authorizer.handle(e, "bench") for e in fresh_events[1050:]]
        )
        figure("  whole authorizer invocation, fresh token", fresh, floor=floor)

        repeated_event = authorizer_event(token)
        repeated_request = parse_authorizer_event(repeated_event)
        authorizer.handle(repeated_event, "bench")
        repeated_decide = measure(lambda: authorizer.decide(repeated_request), number=20000)
        figure(
            "decision, repeated token (cached verification, memo)",
            repeated_decide,
            budget="<= 15 µs",
        )
        repeated = measure(lambda: authorizer.handle(repeated_event, "bench"), number=5000)
        figure("  whole authorizer invocation, repeated token", repeated, floor=floor)
        other_paths = [
            parse_authorizer_event({**repeated_event, "path": f"/app3/api/v1/items/{n}"})
            for n in range(20000)
        ]
        cursor = iter(other_paths)
        figure(
            "decision, repeated token, a new path each time (no memo)",
            measure(lambda: authorizer.decide(next(cursor)), number=2000),
        )

        denied_event = authorizer_event(token)
        denied_event["path"] = "/app3/private"
        denied_event["methodArn"] = denied_event["methodArn"].replace("api/v1/items", "private")
        denied = measure(lambda: authorizer.handle(denied_event, "bench"), number=5000)
        figure("decision, repeated token, denied by default", denied)

        missing = copy.deepcopy(repeated_event)
        del missing["headers"]["Authorization"], missing["multiValueHeaders"]["Authorization"]

        def unauthorized() -> None:
            with contextlib.suppress(Unauthorized):  # the 401 path raises by design
                authorizer.handle(missing, "bench")

        figure("decision, no credentials (401 path)", measure(unauthorized, number=5000))

        sqs_authorizer = build(
            SqsAuditSink(boto3.client("sqs", region_name="us-east-1"), resources.audit_queue_url)
        )
        sqs = measure(lambda: sqs_authorizer.handle(repeated_event, "bench"), number=300)
        figure("for reference: repeated token + SQS send to moto (in-process)", sqs)


if __name__ == "__main__":
    main()
