"""Logging and metrics through Powertools for AWS Lambda, set up on first use.

Powertools costs tens of milliseconds to import, so nothing here imports it
until a handler runs. Modules log through ``get_logger(__name__)``: those
loggers sit under the ``gatehouse`` logger that Powertools formats as JSON.
The X-Ray SDK (Powertools ``Tracer``) is deliberately not used: it costs
hundreds of milliseconds of cold start on the request path.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from chalicelib.reasons import Reason

SERVICE = "gatehouse"
NAMESPACE = "Gatehouse"


class MetricsRecorder(Protocol):
    """The slice of Powertools ``Metrics`` the handlers use."""

    def add_metric(self, name: str, unit: str, value: float) -> None:
        """Record one data point."""


def count_decision(
    recorder: MetricsRecorder, reason: Reason, *, allowed: bool, break_glass: bool
) -> None:
    """Count one access decision, whichever handler made it.

    The authorizer and the proxy (which decides again what API Gateway let
    through on a cached answer) both count here, so that every decision is
    counted once and a break-glass use always reaches its alarm.
    """
    if break_glass:
        # Its own metric, so that an alarm can page on every use.
        recorder.add_metric(name="BreakGlassUsed", unit="Count", value=1)
    if allowed:
        name, outcome = "AccessAllowed", "allow"
    elif reason.is_decision_failure:
        name, outcome = "DecisionFailed", "error"
    elif reason.is_credential_failure:
        name, outcome = "AuthenticationFailed", "unauthenticated"
    else:
        name, outcome = "AccessDenied", "deny"
    recorder.add_metric(name=name, unit="Count", value=1)
    if recorder is _metrics:
        # By outcome and reason code: dimensions of their own, so a line of its own
        # (the invocation's other metrics keep the one dimension their alarms name).
        put_dimensioned("Decisions", "Count", 1, {"Outcome": outcome, "Reason": reason.value})


def measure_upstream(recorder: MetricsRecorder | None, elapsed_ms: float | None) -> None:
    """Record how long the upstream took to answer one proxied request (if it was called)."""
    if recorder is not None and elapsed_ms is not None:
        recorder.add_metric(name="UpstreamLatency", unit="Milliseconds", value=elapsed_ms)


def measure_decision(recorder: MetricsRecorder | None, elapsed_ms: float) -> None:
    """Record how long one authorizer invocation took to decide (and audit) a request."""
    if recorder is not None:
        recorder.add_metric(name="DecisionLatency", unit="Milliseconds", value=elapsed_ms)


def put_dimensioned(name: str, unit: str, value: float, dimensions: dict[str, str]) -> None:
    """Publish one metric with ``dimensions`` (and ``service``) as its own EMF line, now.

    Nothing is printed when Powertools metrics are disabled
    (``POWERTOOLS_METRICS_DISABLED``), as for the invocation's other metrics.
    """
    from aws_lambda_powertools.metrics import MetricUnit, single_metric
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    if is_metrics_disabled():
        return
    labels = {"service": SERVICE, **dimensions}
    with single_metric(
        name=name,
        unit=MetricUnit(unit),
        value=value,
        namespace=NAMESPACE,
        default_dimensions=labels,
    ):
        pass


_logger: Any = None
_metrics: Any = None


def get_logger(module: str) -> logging.Logger:
    """A standard logger whose records reach the Powertools JSON handler."""
    return logging.getLogger(f"{SERVICE}.{module}")


def powertools_logger() -> Any:
    """The service's Powertools ``Logger`` (built once)."""
    global _logger
    if _logger is None:
        from aws_lambda_powertools import Logger

        _logger = Logger(service=SERVICE)
    return _logger


def metrics() -> Any:
    """The service's Powertools ``Metrics`` (EMF, built once)."""
    global _metrics
    if _metrics is None:
        from aws_lambda_powertools import Metrics

        _metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
    return _metrics


def flush_metrics() -> None:
    """Publish this invocation's metrics (one EMF line), if there are any."""
    if _metrics is not None and _metrics.metric_set:
        _metrics.flush_metrics()
        # Powertools keeps the set when metrics are disabled; one invocation's
        # metrics must never be published with the next one's.
        _metrics.clear_metrics()
