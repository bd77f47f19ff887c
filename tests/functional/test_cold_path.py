"""Cold start: what importing the deployed code pulls in, measured in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Heavy or request-time-only libraries that importing ``app`` must not load.
LAZY = ("boto3", "botocore", "urllib3", "aws_lambda_powertools")


def loaded_after(code: str) -> set[str]:
    """Top-level names of every module loaded after running ``code`` in a new interpreter."""
    script = textwrap.dedent(code) + textwrap.dedent(
        """
        import json as _json, sys as _sys
        print(_json.dumps(sorted(_sys.modules)))
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    modules: list[str] = json.loads(run.stdout.splitlines()[-1])
    return set(modules)


def test_importing_app_loads_no_aws_http_or_powertools_library() -> None:
    modules = loaded_after("import app")

    assert "app" in modules
    assert "chalicelib.entrypoints" in modules
    loaded = sorted(m for m in modules if m.split(".")[0] in LAZY)
    assert loaded == []


def test_request_path_never_loads_the_xray_sdk_or_the_operator_tooling() -> None:
    modules = loaded_after(
        """
        import pkgutil, importlib
        import chalicelib
        for info in pkgutil.walk_packages(chalicelib.__path__, "chalicelib."):
            importlib.import_module(info.name)
        import chalicelib.authorize.handler, chalicelib.proxy.handler, chalicelib.proxy.upstream
        import chalicelib.identity, chalicelib.policy, chalicelib.audit, chalicelib.entrypoints
        from aws_lambda_powertools import Logger, Metrics
        from chalicelib import observability
        observability.powertools_logger()
        observability.metrics()
        """
    )

    # The imports really happened (the check below would be vacuous otherwise).
    for name in (
        "chalicelib.authorize.handler",
        "chalicelib.proxy.handler",
        "chalicelib.proxy.assertion",
        "chalicelib.audit.writer",
        "chalicelib.identity.tokens",
        "chalicelib.policy.engine",
        "aws_lambda_powertools.logging",
        "aws_lambda_powertools.metrics",
    ):
        assert name in modules, name
    # Powertools' Tracer would import the X-Ray SDK (hundreds of ms of cold start).
    assert sorted(m for m in modules if m.split(".")[0] == "aws_xray_sdk") == []
    # chalicelib never imports app.py, and the CLI / local stack never ride along.
    assert "app" not in modules
    assert sorted(m for m in modules if m.split(".")[0] in {"gatehouse", "moto"}) == []
