"""Decisions are counted as CloudWatch EMF metrics through Powertools."""

from __future__ import annotations

import json
from typing import Any

import pytest

import app
from chalicelib import entrypoints, observability
from chalicelib.config import Settings
from chalicelib.container import Container
from tests.helpers import load_event, make_token


def _emf_lines(output: str) -> list[dict[str, Any]]:
    lines = []
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            lines.append(json.loads(line))
    return lines


@pytest.mark.parametrize(
    ("with_token", "metric"),
    [(True, "AccessAllowed"), (False, "AuthenticationFailed")],
    ids=["allowed", "no token"],
)
def test_each_authorizer_invocation_publishes_one_emf_count(
    stage: Container,
    idp: Any,
    rsa_key: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    with_token: bool,
    metric: str,
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    measured = Container(
        Settings.from_environment(), fetch_json=idp, metrics=observability.metrics()
    )
    entrypoints.use_container(measured)
    event = load_event("authorizer_request")
    if with_token:
        header = f"Bearer {make_token(rsa_key, 'RS256', 'rsa-1')}"
        event["headers"]["Authorization"] = header
        event["multiValueHeaders"]["Authorization"] = [header]
    else:
        del event["headers"]["Authorization"], event["multiValueHeaders"]["Authorization"]

    if with_token:
        app.gatehouse_authorizer(event, None)
    else:
        with pytest.raises(Exception, match=r"^Unauthorized$"):
            app.gatehouse_authorizer(event, None)

    (emf,) = _emf_lines(capsys.readouterr().out)
    assert emf[metric] in (1.0, [1.0])
    directive = emf["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Gatehouse"
    assert [m["Name"] for m in directive["Metrics"]] == [metric]
