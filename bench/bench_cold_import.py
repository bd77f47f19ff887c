"""Cold import cost (budget: authorizer module <= 150 ms over a bare interpreter).

Each figure is the best of several fresh interpreters (``python -c``), so the
operating system's file cache is warm but Python's module cache is empty,
as in a Lambda cold start after the first one on a host.

- ``import app``: what Lambda imports for every function (the handler module).
- the authorizer's request path: ``app`` plus every module the authorizer
  imports on its first invocation, except boto3 (network client, imported
  when the first AWS call is made) and Powertools (logging).
- the same with Powertools Logger and Metrics, i.e. everything but boto3.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 9

CASES = [
    ("bare interpreter (floor)", "pass"),
    ("import app", "import app"),
    (
        "authorizer request path (identity, policy, audit, IAM)",
        "import app; import chalicelib.container, chalicelib.authorize.handler, "
        "chalicelib.identity.fetch, chalicelib.audit",
    ),
    (
        "  ... plus Powertools Logger and Metrics",
        "import app; import chalicelib.container, chalicelib.authorize.handler, "
        "chalicelib.identity.fetch, chalicelib.audit; "
        "from aws_lambda_powertools import Logger, Metrics",
    ),
    ("for reference: import boto3", "import boto3"),
]


def best_of(code: str) -> float:
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env=os.environ)
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    print(f"Cold import (best of {RUNS} fresh interpreters)", flush=True)
    floor = best_of("pass")
    for label, code in CASES:
        seconds = best_of(code)
        over = "" if code == "pass" else f"   +{(seconds - floor) * 1000:6.1f} ms over the floor"
        budget = "   budget: <= 150 ms over the floor" if label.startswith("  ...") else ""
        print(f"  {label:58} {seconds * 1000:7.1f} ms{over}{budget}", flush=True)


if __name__ == "__main__":
    main()
