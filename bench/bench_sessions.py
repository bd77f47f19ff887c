"""Browser sessions: what a session cookie costs the authorizer and the proxy.

- Per request, establishing identity from a session cookie (open the
  AES-256-GCM cookie, check its clocks, look it up in the revoked set)
  against the floor, a repeated bearer token's cached verification; and the
  whole ``Decider.decide`` for either credential. Goal: a session request's
  decision within about 1.5x a bearer request's.
- AWS calls: none per request. The keys (Secrets Manager) are read once per
  key refresh, the revoked set (one DynamoDB Query) once per revocation
  refresh, whatever the traffic: 10,000 decisions over a simulated 60 s.
- The sealed cookie's size by number of groups (sign-in refuses one over
  4,000 bytes).
- The proxy's renewal: nothing sealed unless a tenth of the idle limit passed.

Everything runs in this process; AWS is moto (in-process). Timings are the
median of several rounds; the bearer and session figures that are compared
are measured in alternating rounds, so a noisy neighbour hits both alike.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import json
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3
import botocore.client
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from moto import mock_aws

from bench.common import (
    AUDIENCE,
    ISSUER,
    claims,
    figure,
    gateway_event,
    measure,
    measure_each,
    moto_policy_store,
)
from chalicelib.apigw.events import GatewayRequest, parse_authorizer_event
from chalicelib.authenticate.credentials import SessionCredentials
from chalicelib.authorize import Decider
from chalicelib.aws.table import Table
from chalicelib.config import TrustedIssuer
from chalicelib.identity import JwksCache, TokenVerifier
from chalicelib.policy import ActivePolicy
from chalicelib.reasons import Reason
from chalicelib.sessions import (
    MAX_COOKIE_BYTES,
    SESSION_COOKIE,
    BrowserSession,
    CookieTooLarge,
    RevokedSessions,
    SessionKeySource,
    SessionStore,
    new_session_id,
    rotate_session_keys,
)

KEYS_NAME = "gatehouse/bench/session-keys"  # the Secrets Manager secret
IDLE_SECONDS = 3600  # SESSION_IDLE_SECONDS' default
REVOCATION_REFRESH_SECONDS = 3.0  # SESSION_REVOCATION_REFRESH_SECONDS' default
KEY_REFRESH_SECONDS = 300.0  # SessionKeySource's default
GROUPS = ("engineering", "team-3", "team-7")  # as bench.common.claims
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/GET/app/api/v1/items"
POLICY = {
    "version": 1,
    "routes": [
        {
            "id": "app",
            "host": "*",
            "path_prefix": "/app",
            "upstream": "http://127.0.0.1:9",
            "audience": "app",
        }
    ],
    "rules": [
        {
            "id": "eng-read",
            "effect": "allow",
            "routes": ["app"],
            "subjects": {"groups": ["engineering"]},
            "actions": ["GET", "HEAD"],
            "paths": ["/app/api/**"],
        }
    ],
}


class FakeClock:
    """Epoch seconds that move only when told to."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def browser_session(now: float, groups: tuple[str, ...] = GROUPS, **changes: Any) -> BrowserSession:
    """A session as sign-in makes it: an Okta-like issuer's claims, just seen."""
    moment = int(now)
    session = BrowserSession(
        session_id=new_session_id(),
        issuer=ISSUER,
        idp="idp.bench.example",
        client_id=AUDIENCE,
        subject="00u1a2b3c4d5e6f7g8h9",
        email="alice@example.com",
        groups=groups,
        groups_claimed=True,
        amr=("pwd", "mfa"),
        auth_time=moment - 5,
        idp_session_id="102ABCdefGHIjkl0123",
        claims={},
        signed_in_at=moment - 60,
        seen_at=moment,
        refresh_at=moment + 900,
        expires_at=moment + 43200,
    )
    return dataclasses.replace(session, **changes)


def request(*, authorization: str | None = None, cookie: str | None = None) -> GatewayRequest:
    """A REQUEST authorizer event for GET /app/api/v1/items, parsed."""
    event = gateway_event(
        "GET", "/app/api/v1/items", str(uuid.uuid4()), authorization=authorization
    )
    if cookie is not None:
        event["headers"]["Cookie"] = cookie
        event["multiValueHeaders"]["Cookie"] = [cookie]
    event["type"] = "REQUEST"
    event["methodArn"] = METHOD_ARN
    return parse_authorizer_event(event)


def cookie_header(value: str) -> str:
    """A browser's Cookie header: the session among a site's other cookies."""
    return f"_ga=GA1.2.1234567890.1733900000; {SESSION_COOKIE}={value}; theme=dark"


def paired(
    first: Callable[[], Any],
    second: Callable[[], Any],
    *,
    numbers: tuple[int, int],
    rounds: int = 9,
) -> tuple[float, float, float]:
    """Medians of seconds per call of two functions timed in alternating rounds.

    ``numbers`` are the calls per round of each (a round of each about as long).
    Returns (first, second, median of the per-round ratios second/first).
    """
    first()
    second()
    samples: tuple[list[float], list[float]] = ([], [])
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            for function, number, into in zip((first, second), numbers, samples, strict=True):
                started = time.perf_counter()
                for _ in range(number):
                    function()
                into.append((time.perf_counter() - started) / number)
    finally:
        gc.enable()
    ratios = [b / a for a, b in zip(*samples, strict=True)]
    return statistics.median(samples[0]), statistics.median(samples[1]), statistics.median(ratios)


@contextmanager
def aws_calls() -> Iterator[Counter[str]]:
    """Counts every boto3 API call made in the block, by ``Service.Operation``."""
    calls: Counter[str] = Counter()
    original = botocore.client.BaseClient._make_api_call

    def counted(client: Any, operation: str, params: Any) -> Any:
        calls[f"{client.meta.service_model.service_id.replace(' ', '')}.{operation}"] += 1
        return original(client, operation, params)

    botocore.client.BaseClient._make_api_call = counted
    try:
        yield calls
    finally:
        botocore.client.BaseClient._make_api_call = original


class Stage:
    """moto with the state table, the session keys and the policy; a bearer token verifier."""

    def __init__(self) -> None:
        resources, store = moto_policy_store(POLICY)
        self.policy = ActivePolicy(store, default_issuer=ISSUER, refresh_seconds=3600)
        self.policy.current()
        self.secrets = boto3.client("secretsmanager", region_name="us-east-1")
        rotate_session_keys(self.secrets, KEYS_NAME)
        self.table = Table(boto3.client("dynamodb", region_name="us-east-1"), resources.state_table)
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))
        public_jwk.update({"kid": "bench-rsa", "alg": "RS256", "use": "sig"})
        keys = JwksCache(
            lambda url: {"keys": [public_jwk]}, cooldown_seconds=30, max_age_seconds=3600
        )
        self.verifier = TokenVerifier(
            [TrustedIssuer(ISSUER, (AUDIENCE,), jwks_uri=f"{ISSUER}/jwks")],
            keys,
            cache_size=100_000,
        )
        self._private_key = private_key
        self.token = self.mint()

    def mint(self) -> str:
        """A fresh RS256 ID token of alice (groups: engineering, team-3, team-7)."""
        return jwt.encode(
            claims(jti=str(uuid.uuid4())), self._private_key, "RS256", headers={"kid": "bench-rsa"}
        )

    def credentials(
        self, clock: Callable[[], float]
    ) -> tuple[SessionKeySource, SessionCredentials]:
        """The keys and the session credentials as a container builds them, on ``clock``.

        Nothing is read yet: the first request reads the keys and the revoked set.
        """
        keys = SessionKeySource(
            lambda: self.secrets, KEYS_NAME, refresh_seconds=KEY_REFRESH_SECONDS, clock=clock
        )
        revoked = RevokedSessions(
            self.table, refresh_seconds=REVOCATION_REFRESH_SECONDS, clock=clock
        )
        return keys, SessionCredentials(keys, revoked, idle_seconds=IDLE_SECONDS, clock=clock)

    def decider(self, credentials: SessionCredentials) -> Decider:
        return Decider(verifier=self.verifier, policy=self.policy, sessions=credentials)


def identity_costs(stage: Stage) -> float:
    """1. Establishing identity, and the whole decision, bearer token against session cookie.

    Returns the floor: a repeated bearer token's verification, seconds per call.
    """
    now = time.time()
    # A container between two refreshes: keys and revoked set in hand, no AWS call.
    keys, credentials = stage.credentials(FakeClock(now))
    value = keys.keyring().seal(browser_session(now).to_payload(), purpose=SESSION_COOKIE)
    cookies = [cookie_header(value)]
    ring = keys.keyring()
    print("\n1. per request: establishing identity, and the decision (1-rule policy, allowed)")

    bearer, session, ratio = paired(
        lambda: stage.verifier.verify(stage.token),
        lambda: credentials.session(cookies).identity(),
        numbers=(50_000, 1000),
    )
    figure("(a) floor: bearer token, TokenVerifier.verify (cached)", bearer)
    figure("(b) session cookie: SessionCredentials.session + identity", session, floor=bearer)
    print(f"  {'    (b)/(a) session/bearer, median of paired rounds':58} {ratio:9.2f} x")
    payload = ring.open(value, purpose=SESSION_COOKIE)
    for label, function in (
        (
            "(c) Keyring.open alone (base64 + AES-GCM + JSON)",
            lambda: ring.open(value, purpose=SESSION_COOKIE),
        ),
        (
            "    SessionKeySource.open (+ key id read, a 2nd decode)",
            lambda: keys.open(value, purpose=SESSION_COOKIE),
        ),
        ("    BrowserSession.from_payload", lambda: BrowserSession.from_payload(payload)),
    ):
        figure(label, measure(function, rounds=9, number=2000), floor=bearer)

    decider = stage.decider(credentials)
    by_token = request(authorization=f"Bearer {stage.token}")
    by_cookie = request(cookie=cookies[0])
    for outcome in (decider.decide(by_token), decider.decide(by_cookie)):
        assert outcome.allowed, outcome
    with_token, with_cookie, decide_ratio = paired(
        lambda: decider.decide(by_token), lambda: decider.decide(by_cookie), numbers=(2000, 800)
    )
    figure("(d) Decider.decide, bearer token (cached verification)", with_token, floor=bearer)
    figure("(d) Decider.decide, session cookie", with_cookie, floor=bearer)
    print(
        f"  {'    (d) session/bearer decision, median of paired rounds':58} {decide_ratio:9.2f} x"
        "   goal: <= ~1.5x"
    )
    fresh = [request(authorization=f"Bearer {stage.mint()}") for _ in range(7 * 60)]
    figure(
        "for reference: Decider.decide, a fresh RS256 token",
        measure_each([functools.partial(decider.decide, r) for r in fresh]),
        floor=bearer,
    )
    return bearer


def aws_round_trips(stage: Stage, *, requests: int = 10_000, seconds: float = 60.0) -> None:
    """2. AWS calls of ``requests`` session decisions spread over ``seconds`` (simulated)."""
    start = time.time()
    clock = FakeClock(start)
    # Some revoked sessions, so the revocation Query returns items.
    store = SessionStore(stage.table, SessionKeySource(lambda: stage.secrets, KEYS_NAME))
    revoked_ids = [new_session_id() for _ in range(25)]
    for session_id in revoked_ids:
        store.revoke(
            session_id,
            by="bench",
            reason=Reason.SESSION_REVOKED,
            expires_at=int(start) + 43200,
            mark_session=False,
        )
    _, credentials = stage.credentials(clock)
    decider = stage.decider(credentials)
    ring = SessionKeySource(lambda: stage.secrets, KEYS_NAME).keyring()
    people = [browser_session(start) for _ in range(50)]
    requests_by_cookie = [
        request(cookie=cookie_header(ring.seal(p.to_payload(), purpose=SESSION_COOKIE)))
        for p in people
    ]
    revoked_request = request(
        cookie=cookie_header(
            ring.seal(
                browser_session(start, session_id=revoked_ids[0]).to_payload(),
                purpose=SESSION_COOKIE,
            )
        )
    )
    step = seconds / requests
    allowed = 0
    with aws_calls() as calls:
        for index in range(requests):
            clock.now = start + index * step
            allowed += decider.decide(requests_by_cookie[index % len(people)]).allowed
        refused = decider.decide(revoked_request).reason
    print(
        f"\n2. AWS calls: {requests:,} session decisions over a simulated {seconds:.0f} s "
        f"(revocation refresh {REVOCATION_REFRESH_SECONDS:g} s, key refresh "
        f"{KEY_REFRESH_SECONDS:g} s; the policy's own refresh excluded)"
    )
    print(f"  allowed {allowed:,} of {requests:,}; a revoked session's cookie: {refused.value}")
    print(f"  {'call':<40} {'calls':>7} {'per 1,000 requests':>20}")
    for call, n in sorted(calls.items()):
        print(f"  {call:<40} {n:>7} {1000 * n / requests:>20.2f}")
    expected = {
        "DynamoDB.Query": int(seconds / REVOCATION_REFRESH_SECONDS),
        "SecretsManager.GetSecretValue": 1,
    }
    print(
        f"  {'total':<40} {sum(calls.values()):>7} {1000 * sum(calls.values()) / requests:>20.2f}"
    )
    print(f"  expected: {', '.join(f'{c} {n}' for c, n in expected.items())}; none per request")


def cookie_sizes(stage: Stage) -> None:
    """3. The sealed cookie's size by number of groups of about 20 characters."""
    ring = SessionKeySource(lambda: stage.secrets, KEYS_NAME).keyring()
    now = time.time()
    print(
        f"\n3. session cookie size (name=value), groups of ~20 characters; max {MAX_COOKIE_BYTES}"
    )
    for count in (0, 10, 50, 200):
        groups = tuple(f"app-team-{index:05d}-users" for index in range(count))  # 20 characters
        payload = browser_session(now, groups=groups).to_payload()
        try:
            value = ring.seal(payload, purpose=SESSION_COOKIE)
            size = len(SESSION_COOKIE) + 1 + len(value)
        except CookieTooLarge as exc:
            size = exc.size
        mark = "  OVER: sign-in refuses it" if size > MAX_COOKIE_BYTES else ""
        print(f"  {count:>4} groups {size:>7} bytes{mark}")


def renewal_costs(stage: Stage, floor: float) -> None:
    """4. The proxy's renewal: nothing when not due (most responses), one seal when due."""
    now = time.time()
    keys, credentials = stage.credentials(FakeClock(now))
    ring = keys.keyring()
    fresh = browser_session(now)
    stale = browser_session(now, seen_at=int(now - credentials.renew_after - 1))
    fresh_cookies = [cookie_header(ring.seal(fresh.to_payload(), purpose=SESSION_COOKIE))]
    stale_cookies = [cookie_header(ring.seal(stale.to_payload(), purpose=SESSION_COOKIE))]
    assert credentials.renewed_cookie(fresh_cookies, fresh.session_id) is None
    assert credentials.renewed_cookie(stale_cookies, stale.session_id) is not None
    not_due, due, ratio = paired(
        lambda: credentials.renewed_cookie(fresh_cookies, fresh.session_id),
        lambda: credentials.renewed_cookie(stale_cookies, stale.session_id),
        numbers=(1000, 700),
    )
    print(
        f"\n4. proxy renewal (renew after {credentials.renew_after:g} s: a tenth of the idle "
        f"limit {IDLE_SECONDS} s); floor as in 1."
    )
    figure("renewed_cookie, not due (open + compare; no seal)", not_due, floor=floor)
    figure("renewed_cookie, due (open + seal + Set-Cookie)", due, floor=floor)
    print(f"  {'    due/not due, median of paired rounds':58} {ratio:9.2f} x")


def main() -> None:
    started = time.perf_counter()
    load = os.getloadavg()
    print(
        f"Browser sessions (moto in-process; {os.cpu_count()} CPUs, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; medians of 9 rounds)",
        flush=True,
    )
    with mock_aws():
        stage = Stage()
        floor = identity_costs(stage)
        aws_round_trips(stage)
        cookie_sizes(stage)
        renewal_costs(stage, floor)
    after = os.getloadavg()
    print(f"\n  {time.perf_counter() - started:.1f} s; load average after: {after[0]:.2f}")


if __name__ == "__main__":
    main()
