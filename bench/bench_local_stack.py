"""The local stack under load: ``gatehouse dev`` as a browser (or ``xargs -P 8 curl``) uses it.

Goal: >= 100 allowed requests/s at concurrency 8 with p99 <= 100 ms through
the gateway on a 2-core machine, every decision and response event stored
exactly once after ``gatehouse audit flush``; a burst (1,500 requests at
concurrency 8) is served or refused cleanly (429), and the writer catches
up within a minute of its end with nothing in the DLQ.

Floor: the same requests, over the same keep-alive client, straight to the
demo backend (no gateway, no authorizer, no proxy Lambda), measured in the
same run.

The stack runs as a subprocess, started the way the e2e tier starts it
(``gatehouse dev --port 0``); tokens are minted from its dev issuer's key.

Usage: ``bench/bench_local_stack.py [--requests N] [--burst N] [--no-burst]``
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bench.common import local_stack_environment
from chalicelib.audit.reader import list_event_objects, read_event_object
from gatehouse.dev.idp import SigningKey, mint_token
from gatehouse.dev.process import DevProcess, start_dev_process

if TYPE_CHECKING:
    from gatehouse.state import DevState

PROJECT_DIR = Path(__file__).resolve().parents[1]
PATH = "/api/hello"
CATCH_UP_DEADLINE_SECONDS = 120.0


@dataclass
class Run:
    """What one load run saw."""

    label: str
    wall_seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    request_ids: list[str] = field(default_factory=list)  # of the 2xx answers
    errors: Counter[str] = field(default_factory=Counter)
    ended: float = 0.0


def token(state: DevState) -> str:
    info = state.idp_keys["RS256"]
    path = Path(info["path"])
    private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return mint_token(
        SigningKey("RS256", info["kid"], private_key, path),
        issuer=state.issuer,
        audience=state.audience,
        subject="alice",
        email="alice@example.com",
        groups=["engineering"],
        ttl_seconds=3600,
    )


def load(label: str, base_url: str, auth: str | None, count: int, concurrency: int) -> Run:
    """``count`` GETs of PATH over ``concurrency`` keep-alive connections."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    remaining = iter(range(count))
    lock = threading.Lock()
    run = Run(label, 0.0)

    def worker() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        while True:
            with lock:
                if next(remaining, None) is None:
                    break
            headers = {"Authorization": f"Bearer {auth}"} if auth else {}
            started = time.perf_counter()
            try:
                connection.request("GET", PATH, headers=headers)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=60)
                with lock:
                    run.errors[type(exc).__name__] += 1
                continue
            elapsed = time.perf_counter() - started
            with lock:
                run.latencies.append(elapsed)
                run.statuses[response.status] += 1
                request_id = response.getheader("x-amzn-RequestId")
                if 200 <= response.status < 300 and request_id:
                    run.request_ids.append(request_id)
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.wall_seconds = time.perf_counter() - started
    run.ended = time.monotonic()
    return run


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def report(run: Run, floor: Run | None = None) -> None:
    served = len(run.latencies)
    rate = served / run.wall_seconds if run.wall_seconds else 0.0
    ok = sum(n for status, n in run.statuses.items() if 200 <= status < 300)
    p50, p95, p99 = (percentile(run.latencies, f) * 1000 for f in (0.50, 0.95, 0.99))
    line = (
        f"  {run.label:34} {rate:8.1f} req/s  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms"
        f"  p99 {p99:7.1f} ms"
    )
    if floor is not None and floor.latencies:
        floor_rate = len(floor.latencies) / floor.wall_seconds
        floor_p50 = statistics.median(floor.latencies) * 1000
        line += f"   {floor_rate / rate if rate else 0:5.1f}x floor time/req"
        line += f" (p50 +{p50 - floor_p50:.1f} ms)"
    print(line, flush=True)
    statuses = ", ".join(f"{status}: {n}" for status, n in sorted(run.statuses.items()))
    errors = ", ".join(f"{name}: {n}" for name, n in run.errors.items()) or "none"
    print(f"  {'':34} allowed {ok}; statuses {statuses}; client errors {errors}", flush=True)


def aws(state: DevState, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=state.aws_endpoint_url,
        region_name=state.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials
    )


def stored_events(state: DevState) -> dict[str, Counter[str]]:
    """By request id: how many events of each type the audit bucket holds."""
    s3 = aws(state, "s3")
    stored: dict[str, Counter[str]] = {}
    for key in list_event_objects(s3, state.audit_bucket, days=2):
        for event in read_event_object(s3, state.audit_bucket, key):
            request = event.get("request") or {}
            if event.get("event_type") in ("decision", "response") and request.get("id"):
                stored.setdefault(request["id"], Counter())[event["event_type"]] += 1
    return stored


def exactly_once(stored: dict[str, Counter[str]], request_ids: list[str]) -> tuple[int, int, int]:
    """(complete, missing, duplicated) among ``request_ids``."""
    complete = missing = duplicated = 0
    for request_id in request_ids:
        counts = stored.get(request_id, Counter())
        if counts["decision"] == 1 and counts["response"] == 1:
            complete += 1
        elif counts["decision"] > 1 or counts["response"] > 1:
            duplicated += 1
        else:
            missing += 1
    return complete, missing, duplicated


def queue_depth(state: DevState, url: str) -> int:
    attributes = aws(state, "sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def flush(dev: DevProcess) -> float:
    started = time.perf_counter()
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "gatehouse.cli",
            "--state-dir",
            str(dev.state_dir),
            "audit",
            "flush",
        ],
        cwd=PROJECT_DIR,
        env=local_stack_environment(),
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if completed.returncode != 0:
        print(f"  `gatehouse audit flush` exited {completed.returncode}:", flush=True)
        print("    " + (completed.stderr or completed.stdout).strip()[-600:], flush=True)
    return time.perf_counter() - started


def check_stored(dev: DevProcess, state: DevState, runs: list[Run]) -> None:
    took = flush(dev)
    ids = [request_id for run in runs for request_id in run.request_ids]
    complete, missing, duplicated = exactly_once(stored_events(state), ids)
    print(
        f"  stored after flush ({took:.1f} s): {complete}/{len(ids)} allowed requests with one"
        f" decision and one response; missing {missing}, duplicated {duplicated}",
        flush=True,
    )


def catch_up(state: DevState, run: Run) -> None:
    """How long after ``run`` ended the writer (not a flush) had stored every event."""
    deadline = time.monotonic() + CATCH_UP_DEADLINE_SECONDS
    ids = run.request_ids
    while True:
        complete, missing, duplicated = exactly_once(stored_events(state), ids)
        depth = queue_depth(state, state.audit_queue_url)
        if (complete + duplicated == len(ids) and depth == 0) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    waited = time.monotonic() - run.ended
    caught_up = "caught up" if complete + duplicated == len(ids) else "NOT caught up"
    dlq = queue_depth(state, state.audit_dlq_url) if state.audit_dlq_url else 0
    print(
        f"  writer {caught_up} {waited:.1f} s after the burst ended (budget: 60 s):"
        f" {complete}/{len(ids)} complete, missing {missing}, duplicated {duplicated};"
        f" queue {depth}, DLQ {dlq}",
        flush=True,
    )


def stack_status(dev: DevProcess) -> None:
    path = dev.state_dir / "dev-status.json"
    if path.exists():
        print(f"  stack status: {path.read_text().strip()}", flush=True)
    log = [line for line in dev.log_tail(400).splitlines() if "error" in line.lower()]
    print(f"  stack log lines mentioning errors: {len(log)}", flush=True)
    for line in log[-5:]:
        print(f"    {line}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=1500)
    parser.add_argument("--no-burst", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-") as directory:
        dev = start_dev_process(Path(directory) / "state", environment=local_stack_environment())
        try:
            state = dev.wait_for_state(120)
            auth = token(state)
            print(f"Local stack under load (GET {PATH} as alice, {os.cpu_count()} CPUs)")
            load("warm-up", state.gateway_url, auth, 50, 2)
            load("warm-up floor", state.backend_url, None, 50, 2)
            runs = []
            for concurrency in (1, 8):
                count = args.requests if concurrency > 1 else max(args.requests // 4, 100)
                # Side by side, in the same minute: the floor, then the gateway.
                floor = load(f"floor c={concurrency}", state.backend_url, None, count, concurrency)
                run = load(f"gateway c={concurrency}", state.gateway_url, auth, count, concurrency)
                report(floor)
                report(run, floor)
                runs.append(run)
            check_stored(dev, state, runs)
            if not args.no_burst:
                print(f"Burst: {args.burst} requests at concurrency 8")
                burst = load("burst c=8", state.gateway_url, auth, args.burst, 8)
                report(burst)
                catch_up(state, burst)
                check_stored(dev, state, [burst])
            stack_status(dev)
        finally:
            code = dev.interrupt(30)
            print(f"stack exit status after Ctrl-C: {code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
