"""The ledger writer's cost per event (budgets: <= 20 µs per event end to end
excluding network, >= 10,000 events/s for one writer).

Batches of 1,000 realistic events (about 1.3 KB of JSON each) go through
``AuditWriter.write`` against in-process moto. Every AWS call is timed by a
thin proxy around the clients; "excluding network" is the total minus the
time spent inside those calls (which, against real AWS, is network and
service time; against moto it is moto's Python). So the figures are:

- writer, per event, excluding AWS calls: parse, dedupe, ledger position,
  gzip, SHA-256, Merkle leaves and tree: the budgeted number;
- writer throughput, excluding AWS calls: 1e6 / the above;
- reference: per event including moto's time for the six calls of a batch;
- floor: ``json.loads`` of one event, the least any writer must do per event;
- a model of events/s against AWS: the calls a batch makes, one round trip
  each, index requests 16 at a time (moto's own CPU would swamp any
  simulated latency, so this part is arithmetic over counted calls).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import figure, measure

BATCH = 1000
BATCHES = 8


class Timed:
    """Forwards to a boto3 client and adds to ``spent`` the seconds during which at least
    one call was in flight (calls made in parallel count once)."""

    _lock = threading.Lock()
    _in_flight = 0
    _since = 0.0

    def __init__(self, client: Any, spent: list[float]) -> None:
        self._client = client
        self._spent = spent

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with Timed._lock:
                if Timed._in_flight == 0:
                    Timed._since = time.perf_counter()
                Timed._in_flight += 1
            try:
                return method(*args, **kwargs)
            finally:
                with Timed._lock:
                    Timed._in_flight -= 1
                    if Timed._in_flight == 0:
                        self._spent[0] += time.perf_counter() - Timed._since

        return call


def event_body(n: int) -> str:
    from chalicelib.audit.schema import uuid7

    event_id = uuid7()
    return json.dumps(
        {
            "schema_version": 1,
            "event_id": event_id,
            "event_type": "decision",
            "event_time": "2026-11-28T15:30:12.123Z",
            "stage": "prod",
            "request": {
                "id": f"c6af9ac6-7b61-11e6-9a41-{n:012d}",
                "extended_id": "Cb9Xq0kVoAMEbVw=",
                "lambda_request_id": "0f6a2d4e-1111-4c3b-9d8e-a1b2c3d4e5f6",
                "trace_id": "Root=1-6748a3b1-1f2e3d4c5b6a79880a1b2c3d",
                "decision_id": event_id,
            },
            "principal": {
                "issuer": "https://idp.example.com",
                "subject": f"user-{n % 5000}",
                "email": f"user{n % 5000}@example.com",
                "groups": ["engineering", f"team-{n % 97}"],
                "amr": ["pwd", "otp"],
                "auth_time": 1_800_000_000,
                "client_id": "gatehouse-web",
                "session_id": "s-12345",
                "token_id": "t-67890",
            },
            "source": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)"},
            "resource": {
                "host": "app.example.com",
                "method": "GET",
                "path": f"/api/projects/{n}",
                "query": "view=full",
                "route_id": "app",
                "upstream": "https://10.0.0.5:8443",
                "sensitive": False,
            },
            "action": "read",
            "decision": {
                "outcome": "allow",
                "reasons": ["allow_rule_matched"],
                "matched_rules": ["engineering-read"],
                "policy_version": 12,
                "policy_checksum": "sha256:" + "ab" * 32,
                "decided_by": "authorizer",
                "cached": False,
                "detail": None,
            },
            "outcome": None,
            "elevation": None,
            "aws": None,
            "anomalies": [],
            "policy_change": None,
            "grant": None,
        },
        separators=(",", ":"),
    )


def main() -> None:
    import boto3
    from moto import mock_aws

    from chalicelib.audit import AuditWriter
    from chalicelib.ledger import LedgerState
    from gatehouse.dev.bootstrap import bootstrap
    from gatehouse.resources import ResourceNames

    bodies = [event_body(n) for n in range(BATCH * BATCHES)]
    print(f"events: {len(bodies)} in batches of {BATCH}, {len(bodies[0])} bytes of JSON each")
    floor = measure(lambda: json.loads(bodies[0]), number=5000)
    figure("floor: json.loads of one event", floor)

    with mock_aws():
        resources = bootstrap(
            lambda service: boto3.client(service, region_name="us-east-1"),
            ResourceNames("bench", "123456789012", "us-east-1"),
        )
        spent = [0.0]
        s3 = Timed(boto3.client("s3", region_name="us-east-1"), spent)
        dynamodb = Timed(boto3.client("dynamodb", region_name="us-east-1"), spent)
        writer = AuditWriter(
            s3, resources.audit_bucket, LedgerState(dynamodb, resources.state_table)
        )
        warm = [event_body(n) for n in range(10)]
        writer.write([(body, json.loads(body)["event_id"]) for body in warm])
        per_event_excluding, per_event_total = [], []
        for start in range(0, len(bodies), BATCH):
            batch = [(body, json.loads(body)["event_id"]) for body in bodies[start : start + BATCH]]
            spent[0] = 0.0
            started = time.perf_counter()
            stored, _ = writer.write(batch)
            total = time.perf_counter() - started
            assert stored is not None
            assert stored.event_count == BATCH
            per_event_total.append(total / BATCH)
            per_event_excluding.append((total - spent[0]) / BATCH)
    per_event_excluding.sort()
    per_event_total.sort()
    median = per_event_excluding[len(per_event_excluding) // 2]
    figure(
        "writer, per event, excluding AWS calls",
        median,
        floor=floor,
        budget="<= 20 µs",
    )
    print(
        f"  {'writer throughput, excluding AWS calls':58} {1 / median:9.0f} events/s"
        "   budget: >= 10,000 events/s"
    )
    figure(
        "reference: per event including moto's time for the calls",
        per_event_total[len(per_event_total) // 2],
        floor=floor,
    )
    with_network(median)


def with_network(per_event_cpu: float, rtt: float = 0.010) -> None:
    """A model of one writer's events/s against AWS, from the calls a batch makes.

    Moto's own CPU time would swamp any simulated latency, so this is
    arithmetic, printed as such: the calls of a batch of ``size`` events are
    counted on moto (they depend only on the size), each costs one round
    trip of ``rtt``, the index requests go 16 at a time as shipped (or one
    at a time, for comparison), and the writer's CPU is the figure measured
    above.
    """
    import boto3
    from moto import mock_aws

    from chalicelib.audit import AuditWriter
    from chalicelib.ledger import LedgerState
    from chalicelib.ledger.state import _CONCURRENT_REQUESTS
    from gatehouse.dev.bootstrap import bootstrap
    from gatehouse.resources import ResourceNames

    print(f"model: {rtt * 1000:.0f} ms a round trip, the writer's CPU as measured above")
    for size in (1000, 5000, 10000):
        counts: dict[str, int] = {}
        with mock_aws():
            resources = bootstrap(
                lambda service: boto3.client(service, region_name="us-east-1"),
                ResourceNames("bench", "123456789012", "us-east-1"),
            )
            s3 = Counted(boto3.client("s3", region_name="us-east-1"), counts)
            dynamodb = Counted(boto3.client("dynamodb", region_name="us-east-1"), counts)
            writer = AuditWriter(
                s3, resources.audit_bucket, LedgerState(dynamodb, resources.state_table)
            )
            events = [event_body(n) for n in range(size)]
            stored, _ = writer.write([(body, json.loads(body)["event_id"]) for body in events])
            assert stored is not None
        # Reads (dedupe) and writes (index) are two separate phases of a batch.
        reads, writes = counts.pop("batch_get_item", 0), counts.pop("batch_write_item", 0)
        batched, one_by_one = reads + writes, sum(counts.values())
        for concurrent in (_CONCURRENT_REQUESTS, 1):
            rounds = one_by_one + -(-reads // concurrent) + -(-writes // concurrent)
            seconds = rounds * rtt + size * per_event_cpu
            label = f"batch of {size:,}: {one_by_one + batched} calls, {concurrent} at a time"
            print(
                f"  {label:58} {size / seconds:9.0f} events/s"
                + ("   budget: >= 10,000 events/s" if concurrent > 1 else "")
            )


class Counted:
    """Forwards to a boto3 client, counting calls by operation."""

    def __init__(self, client: Any, counts: dict[str, int]) -> None:
        self._client = client
        self._counts = counts

    def __getattr__(self, name: str) -> Any:
        self._counts[name] = self._counts.get(name, 0) + 1
        return getattr(self._client, name)


if __name__ == "__main__":
    main()
