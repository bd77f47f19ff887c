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

    # One line for the decision by outcome and reason (dimensions of its own, printed
    # at once), then the invocation's (dimension service: what the alarms name).
    by_reason, emf = _emf_lines(capsys.readouterr().out)
    assert emf[metric] in (1.0, [1.0])
    directive = emf["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Gatehouse"
    assert directive["Dimensions"] == [["service"]]
    assert [m["Name"] for m in directive["Metrics"]] == [metric, "DecisionLatency"]
    latency = emf["DecisionLatency"]
    assert (latency[0] if isinstance(latency, list) else latency) > 0
    assert by_reason["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["service", "Outcome", "Reason"]
    ]
    assert by_reason["Decisions"] in (1.0, [1.0])
    expected = ("allow", "allow_rule_matched") if with_token else (
        "unauthenticated", "missing_credentials")  # fmt: skip
    assert (by_reason["Outcome"], by_reason["Reason"]) == expected


def test_a_proxied_request_records_the_decision_and_upstream_latency(
    stage: Container, backend: Any, idp: Any, rsa_key: Any
) -> None:
    from tests.functional.test_decided_is_forwarded import RecordedMetrics
    from tests.functional.test_proxy import authorize, invoke, proxy_event

    recorded = RecordedMetrics()
    measured = Container(Settings.from_environment(), fetch_json=idp, metrics=recorded)
    entrypoints.use_container(measured)
    event = proxy_event(make_token(rsa_key, "RS256", "rsa-1"), method="GET", body=None)
    authorize(event)

    assert invoke(event).status == 200

    latencies = {name: value for name, value in recorded.points if name.endswith("Latency")}
    assert set(latencies) == {"DecisionLatency", "UpstreamLatency"}
    assert all(value > 0 for value in latencies.values())
    measured.upstream.close()
