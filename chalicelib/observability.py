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
        name = "AccessAllowed"
    elif reason.is_decision_failure:
        name = "DecisionFailed"
    elif reason.is_credential_failure:
        name = "AuthenticationFailed"
    else:
        name = "AccessDenied"
    recorder.add_metric(name=name, unit="Count", value=1)


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
