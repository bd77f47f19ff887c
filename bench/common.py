"""Shared benchmark helpers: timing loops, figures, a 100-rule policy, tokens.

Benchmarks print figures and ratios against a floor measured in the same
run; they do not pass or fail. Compare the printed ratios with the budgets.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

ISSUER = "https://idp.bench.example"
AUDIENCE = "gatehouse"


def measure(function: Callable[[], Any], *, rounds: int = 7, number: int = 2000) -> float:
    """Median over ``rounds`` of the mean seconds per call of ``function``."""
    function()  # warm
    samples = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(number):
                function()
            samples.append((time.perf_counter() - started) / number)
    finally:
        gc.enable()
    return statistics.median(samples)


def measure_each(functions: list[Callable[[], Any]], *, rounds: int = 7) -> float:
    """Like :func:`measure`, but each call uses the next function (fresh inputs)."""
    samples = []
    per_round = len(functions) // rounds
    gc.collect()
    gc.disable()
    try:
        for index in range(rounds):
            batch = functions[index * per_round : (index + 1) * per_round]
            started = time.perf_counter()
            for function in batch:
                function()
            samples.append((time.perf_counter() - started) / len(batch))
    finally:
        gc.enable()
    return statistics.median(samples)


def figure(label: str, seconds: float, *, floor: float | None = None, budget: str = "") -> None:
    """Print one figure (µs), its ratio to the floor, and the budget it answers to."""
    ratio = f"  {seconds / floor:5.2f}x floor" if floor else ""
    note = f"   budget: {budget}" if budget else ""
    print(f"  {label:58} {seconds * 1e6:9.2f} µs{ratio}{note}", flush=True)


def hundred_rule_policy(upstream: str = "http://127.0.0.1:9") -> dict[str, Any]:
    """A realistic policy: 10 routes, 100 rules over users, groups and domains."""
    routes = [
        {
            "id": f"app{index}",
            "host": "*",
            "path_prefix": f"/app{index}",
            "upstream": upstream,
            "audience": f"app{index}",
        }
        for index in range(10)
    ]
    rules = []
    for index in range(100):
        route = f"app{index % 10}"
        kind = index % 4
        subjects: dict[str, list[str]] = (
            {"groups": [f"team-{index % 17}"]}
            if kind == 0
            else {"users": [f"user{index}@example.com"]}
            if kind == 1
            else {"domains": ["example.com"]}
            if kind == 2
            else {"groups": ["engineering", f"team-{index % 5}"]}
        )
        rules.append(
            {
                "id": f"rule-{index}",
                "effect": "deny" if index % 10 == 9 else "allow",
                "routes": [route],
                "subjects": subjects,
                "actions": ["GET", "HEAD"] if index % 3 else ["*"],
                "paths": [f"/{route}/api/v{index % 3}/**", f"/{route}/items/*/detail"],
            }
        )
    return {"version": 1, "routes": routes, "rules": rules}


def claims(subject: str = "alice", **extra: Any) -> dict[str, Any]:
    """Typical ID token claims."""
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "email": f"{subject}@example.com",
        "email_verified": True,
        "groups": ["engineering", "team-3", "team-7"],
        "amr": ["pwd", "mfa"],
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "auth_time": now,
        **extra,
    }


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def gateway_event(
    method: str, path: str, request_id: str, *, authorization: str | None = None
) -> dict[str, Any]:
    """A REST v1 event as API Gateway builds it (the fields both Lambdas read)."""
    headers = {
        "Accept": "*/*",
        "Content-Type": "application/json",
        "Host": "gatehouse.example.com",
        "User-Agent": "bench/1.0",
        "X-Amzn-Trace-Id": "Root=1-6748a3b1-1f2e3d4c5b6a79880a1b2c3d",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Proto": "https",
    }
    if authorization is not None:
        headers["Authorization"] = authorization
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {"page": "2"},
        "multiValueQueryStringParameters": {"page": ["2"]},
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "stage": "dev",
            "requestId": request_id,
            "extendedRequestId": "abc=",
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "bench/1.0"},
            "domainName": "gatehouse.example.com",
            "apiId": "abc123",
        },
    }


def moto_policy_store(policy: dict[str, Any]) -> tuple[Any, Any]:
    """Inside ``mock_aws``: every resource bootstrapped, ``policy`` active.

    Returns the bootstrapped resources and the PolicyStore.
    """
    import boto3

    from chalicelib.policy import PolicyStore
    from gatehouse.dev.bootstrap import bootstrap
    from gatehouse.resources import ResourceNames

    resources = bootstrap(
        lambda service: boto3.client(service, region_name="us-east-1"),
        ResourceNames("bench", "123456789012", "us-east-1"),
    )
    store = PolicyStore(boto3.client("dynamodb", region_name="us-east-1"), resources.state_table)
    store.publish(policy, actor="bench")
    return resources, store


def local_stack_environment() -> dict[str, str]:
    """This process's environment pointed at nothing real, for a local stack subprocess.

    As the e2e tier runs ``gatehouse dev``: fake credentials, no AWS config files.
    """
    import os

    isolated = ("AWS_", "GATEHOUSE_", "POWERTOOLS_", "BOTO_")
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith(isolated)
    }
    environment.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return environment
