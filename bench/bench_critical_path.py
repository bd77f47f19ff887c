"""AWS calls per allowed request, on the critical path and off it, through the local stack.

The whole stack runs in this process (moto in its own, as ``gatehouse dev``
runs it), and every AWS call any boto3 client of this process makes is
counted by the thread that made it:

- **critical path**: the gateway's request threads, i.e. the authorizer and
  proxy Lambdas while the client waits for its answer;
- **off the path, per request**: the audit writer storing what those
  requests enqueued (run here once, after the load, as its event source
  mapping would);
- **periodic**: the scheduled functions (grant and key sweeper, access-log
  ingestion, ledger digest), independent of traffic, per minute.

Goal: KMS ``Sign`` <= 5 per 1,000 requests in steady state; no more than the
two audit enqueues (decision, response) on an allowed request's critical path.

The table ends with a model of the latency those calls add in AWS: each
critical-path call's count times its per-call latency, which ``--latency
service.Operation=ms`` overrides (defaults: typical same-region figures).

Usage: ``bench/bench_critical_path.py [--requests N] [--concurrency N] [--latency S.Op=MS]``
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import botocore.client

from bench.bench_local_stack import load, token
from chalicelib.audit import SqsAuditSink
from gatehouse.dev.stack import LocalStack, StackOptions

PATH = "/api/hello"
# Typical same-region latencies of one call from Lambda, in ms (p50; override with --latency).
DEFAULT_LATENCY_MS = {
    "SQS.SendMessage": 6.0,
    "DynamoDB.GetItem": 4.0,
    "DynamoDB.Query": 5.0,
    "DynamoDB.PutItem": 6.0,
    "DynamoDB.UpdateItem": 6.0,
    "DynamoDB.TransactWriteItems": 12.0,
    "KMS.Sign": 10.0,
    "KMS.GetPublicKey": 8.0,
    "STS.AssumeRole": 25.0,
}
FALLBACK_LATENCY_MS = 8.0
CRITICAL = "critical path"
# Pollers whose work grows with traffic: the access log's one gateway event per request.
PER_REQUEST_POLLERS = {"access-log"}
PERIODIC_POLLERS = {"grant-sweeper", "ledger-digest"}


class CallCounter:
    """Counts every boto3 API call of this process by (where, service.operation).

    Audit enqueues are counted per event, by the thread that sent it: in Lambda
    each is one ``SendMessage`` of the request that made it. (In this one
    process, events sent at once share a ``SendMessageBatch`` made by one of
    the senders, see ``SqsAuditSink``; those batch calls are not counted.)
    """

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._original = botocore.client.BaseClient._make_api_call
        self._original_send = SqsAuditSink.send
        self._in_sink = threading.local()

    def install(self) -> None:
        counter = self

        def counted(client: Any, operation: str, params: Any) -> Any:
            if not getattr(counter._in_sink, "active", False):
                service = client.meta.service_model.service_id.replace(" ", "")
                counter.count(f"{service}.{operation}")
            return counter._original(client, operation, params)

        def sent(sink: SqsAuditSink, line: str) -> None:
            counter.count("SQS.SendMessage")
            counter._in_sink.active = True
            try:
                counter._original_send(sink, line)
            finally:
                counter._in_sink.active = False

        botocore.client.BaseClient._make_api_call = counted  # type: ignore[method-assign]
        SqsAuditSink.send = sent  # type: ignore[method-assign]

    def uninstall(self) -> None:
        botocore.client.BaseClient._make_api_call = self._original  # type: ignore[method-assign]
        SqsAuditSink.send = self._original_send  # type: ignore[method-assign]

    def count(self, call: str) -> None:
        name = threading.current_thread().name
        where = CRITICAL if "process_request" in name else name
        with self._lock:
            self.calls[(where, call)] += 1

    def take(self) -> Counter[tuple[str, str]]:
        with self._lock:
            taken, self.calls = self.calls, Counter()
        return taken


def send(base_url: str, token: str, count: int, concurrency: int) -> tuple[int, float]:
    """``count`` allowed GETs over ``concurrency`` keep-alive connections; (2xx answers, s)."""
    run = load("load", base_url, token, count, concurrency)
    return sum(n for status, n in run.statuses.items() if 200 <= status < 300), run.wall_seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency", action="append", default=[], metavar="SERVICE.OP=MS")
    args = parser.parse_args()
    latency = dict(DEFAULT_LATENCY_MS)
    for item in args.latency:
        name, _, value = item.partition("=")
        latency[name] = float(value)

    counter = CallCounter()
    counter.install()
    with tempfile.TemporaryDirectory() as state_dir:
        # The writer's poller stays idle during the load: its work is counted after it.
        stack = LocalStack(
            StackOptions(
                state_dir=Path(state_dir),
                gateway_port=0,
                writer_interval_seconds=3600.0,
                max_in_flight=64,
            )
        )
        try:
            state = stack.start()
            auth = token(state)
            send(state.gateway_url, auth, 20, 1)  # warm: the key is certified, caches filled
            stack.drain_audit_queue()
            counter.take()
            print(f"{args.requests} allowed requests at concurrency {args.concurrency}", flush=True)
            started = time.monotonic()
            ok, seconds = send(state.gateway_url, auth, args.requests, args.concurrency)
            during = counter.take()
            periodic_seconds = time.monotonic() - started
            delivered = 0
            with _thread_named("audit-writer (after the load)"):
                while True:
                    result = stack.drain_audit_queue()
                    delivered += result.delivered
                    if result.delivered == 0:
                        break
            writer = counter.take()
        finally:
            with contextlib.suppress(Exception):
                stack.stop()
            counter.uninstall()
    if ok != args.requests:
        print(f"only {ok} of {args.requests} requests were allowed", file=sys.stderr)
        return 1
    _report(ok, seconds, during, writer, periodic_seconds, delivered, latency)
    return 0


def _off_the_path(
    during: Counter[tuple[str, str]], writer: Counter[tuple[str, str]]
) -> tuple[Counter[str], Counter[tuple[str, str]]]:
    """(per-request work off the path by call, periodic work during the load by poller)."""
    off_path: Counter[str] = Counter()
    periodic: Counter[tuple[str, str]] = Counter()
    for phase in (during, writer):
        for (where, call), n in phase.items():
            if where == CRITICAL:
                continue
            if where in PERIODIC_POLLERS:
                if phase is during:
                    periodic[(where, call)] += n
            elif where in PER_REQUEST_POLLERS:
                off_path[f"{where}: {call}"] += n
            else:  # the writer's drain and the threads it starts
                off_path[f"audit writer: {call}"] += n
    return off_path, periodic


@contextlib.contextmanager
def _thread_named(name: str) -> Any:
    thread = threading.current_thread()
    before, thread.name = thread.name, name
    try:
        yield
    finally:
        thread.name = before


def _report(
    requests: int,
    seconds: float,
    during: Counter[tuple[str, str]],
    writer: Counter[tuple[str, str]],
    periodic_seconds: float,
    delivered: int,
    latency: dict[str, float],
) -> None:
    print(f"  served in {seconds:.1f} s ({requests / seconds:.0f} req/s)")
    print(f"\n  {'where':<34} {'call':<30} {'per request':>12} {'per 1,000':>10}")
    print("  (critical-path DynamoDB reads: the policy and grant refresh, once per container per")
    print("   GATEHOUSE_POLICY_REFRESH_SECONDS: 1 s in the local stack, 10 s by default)")
    critical = {call: n for (where, call), n in during.items() if where == CRITICAL}
    for call, n in sorted(critical.items()):
        print(f"  {CRITICAL:<34} {call:<30} {n / requests:>12.3f} {1000 * n / requests:>10.1f}")
    off_path, periodic = _off_the_path(during, writer)
    for call, n in sorted(off_path.items()):
        print(f"  {'off the path':<34} {call:<30} {n / requests:>12.3f}")
    print(f"\n  periodic work during the load ({periodic_seconds:.0f} s), per minute:")
    for (where, call), n in sorted(periodic.items()):
        print(f"  {where:<34} {call:<30} {60 * n / periodic_seconds:>12.1f}")
    kms_signs = sum(n for (w, c), n in during.items() if c == "KMS.Sign" and w == CRITICAL)
    enqueues = critical.get("SQS.SendMessage", 0) / requests
    print(
        f"\n  KMS Sign on the critical path: {1000 * kms_signs / requests:.1f} per 1,000 requests"
        "  (goal <= 5)"
    )
    print(f"  audit enqueues on the critical path: {enqueues:.2f} per request  (goal <= 2)")
    print(f"  events stored by the writer: {delivered} ({delivered / requests:.2f} per request)")
    print("\n  latency the critical-path calls add in AWS (model: count x per-call latency):")
    total = 0.0
    for call, n in sorted(critical.items()):
        each = latency.get(call, FALLBACK_LATENCY_MS)
        added = n / requests * each
        total += added
        print(f"    {call:<30} {n / requests:>6.3f} x {each:>5.1f} ms = {added:>6.2f} ms")
    print(f"    {'total per allowed request':<30} {'':>17} {total:>6.2f} ms")


if __name__ == "__main__":
    sys.exit(main())
