"""REQUEST authorizers, invoked in process as API Gateway invokes them, and their result cache."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gatehouse.dev.gateway.events import authorizer_event
from gatehouse.dev.gateway.messages import GatewayError
from gatehouse.dev.gateway.policy import evaluate_policy
from gatehouse.dev.lambda_context import LambdaContext

if TYPE_CHECKING:
    from gatehouse.dev.gateway.api import AuthorizerDefinition

EXPLICIT_DENY = "User is not authorized to access this resource with an explicit deny"
IMPLICIT_DENY = "User is not authorized to access this resource"
_IDENTITY_HEADER = "method.request.header."


class AuthorizerInvoker:
    """Decides whether a request may call its method, as API Gateway's authorizer step does.

    Parameters
    ----------
    clock:
        Time for the result cache's TTL (tests move it).
    concurrency:
        How many authorizer invocations run at once, like a function's
        reserved concurrency.

    Attributes
    ----------
    invocations:
        How many times an authorizer Lambda ran (cache hits do not count).
    """

    def __init__(self, *, clock: Callable[[], float], concurrency: int) -> None:
        self._clock = clock
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[float, dict[str, Any]]] = {}
        self._cache_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._counter_lock = threading.Lock()
        self.invocations = 0

    def authorize(
        self,
        authorizer: AuthorizerDefinition,
        event: dict[str, Any],
        method_arn: str,
        facts: dict[str, str],
    ) -> dict[str, str]:
        """The authorizer context for the request ``event`` describes.

        The result comes from the cache (keyed by the identity sources' values)
        while its TTL runs, else from the authorizer Lambda; either way its
        policy is evaluated against ``method_arn``.

        Parameters
        ----------
        authorizer:
            The method's authorizer.
        event:
            The request's proxy event.
        method_arn:
            The ARN of the method called.
        facts:
            The access-log values; the authorizer's status and latency are
            added when its Lambda runs.

        Returns
        -------
        dict
            The context as the integration sees it: every value a string,
            with ``principalId`` and ``integrationLatency``.

        Raises
        ------
        GatewayError
            ``UNAUTHORIZED`` for a missing identity source or an
            "Unauthorized" answer, ``ACCESS_DENIED`` for a policy without an
            applicable Allow, ``AUTHORIZER_FAILURE`` or
            ``AUTHORIZER_CONFIGURATION_ERROR`` for a failing or malformed
            authorizer.
        """
        if authorizer.kind != "request":
            raise GatewayError(
                "AUTHORIZER_CONFIGURATION_ERROR", f"unsupported authorizer type {authorizer.kind!r}"
            )
        sources = _identity_source_values(authorizer, event)
        started = time.monotonic()
        result = self._cached(authorizer, sources) if authorizer.ttl_seconds > 0 else None
        if result is None:
            result = self._invoke_measured(authorizer, event, method_arn, facts, started)
            if authorizer.ttl_seconds > 0:
                with self._cache_lock:
                    self._cache[(authorizer.name, sources)] = (
                        self._clock() + authorizer.ttl_seconds,
                        result,
                    )
        effect = evaluate_policy(result["policyDocument"], method_arn)
        if effect == "Deny":
            raise GatewayError("ACCESS_DENIED", EXPLICIT_DENY)
        if effect != "Allow":
            raise GatewayError("ACCESS_DENIED", IMPLICIT_DENY)
        context = {
            key: _context_string(value) for key, value in (result.get("context") or {}).items()
        }
        context["principalId"] = str(result["principalId"])
        context["integrationLatency"] = str(int((time.monotonic() - started) * 1000))
        return context

    def _cached(
        self, authorizer: AuthorizerDefinition, sources: tuple[str, ...]
    ) -> dict[str, Any] | None:
        with self._cache_lock:
            entry = self._cache.get((authorizer.name, sources))
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def _invoke_measured(
        self,
        authorizer: AuthorizerDefinition,
        event: dict[str, Any],
        method_arn: str,
        facts: dict[str, str],
        started: float,
    ) -> dict[str, Any]:
        # The authorizer's status and latency are logged only when its Lambda ran.
        try:
            result = self._invoke(authorizer, event, method_arn)
        except GatewayError as error:
            facts["authorizerStatus"] = "401" if error.response_type == "UNAUTHORIZED" else "500"
            raise
        finally:
            facts["authorizerLatency"] = str(int((time.monotonic() - started) * 1000))
        facts["authorizerStatus"] = "200"
        return result

    def _invoke(
        self, authorizer: AuthorizerDefinition, event: dict[str, Any], method_arn: str
    ) -> dict[str, Any]:
        request = authorizer_event(event, method_arn)
        with self._counter_lock:
            self.invocations += 1
        with self._slots:
            try:
                result = authorizer.handler(
                    request, LambdaContext(f"gatehouse-dev-{authorizer.name}")
                )
            except Exception as exc:
                if str(exc) == "Unauthorized":
                    raise GatewayError("UNAUTHORIZED") from exc
                raise GatewayError("AUTHORIZER_FAILURE") from exc
        if not _valid_authorizer_result(result):
            raise GatewayError("AUTHORIZER_CONFIGURATION_ERROR")
        return dict(result)


def _identity_source_values(
    authorizer: AuthorizerDefinition, event: dict[str, Any]
) -> tuple[str, ...]:
    values = []
    headers = {name.lower(): value for name, value in event["headers"].items()}
    for source in authorizer.identity_sources:
        value = (
            headers.get(source[len(_IDENTITY_HEADER) :].lower())
            if source.startswith(_IDENTITY_HEADER)
            else None
        )
        if not value:
            # A missing identity source is a 401 before any Lambda runs.
            raise GatewayError("UNAUTHORIZED")
        values.append(value)
    return tuple(values)


def _valid_authorizer_result(result: Any) -> bool:
    if not isinstance(result, dict) or not isinstance(result.get("principalId"), str):
        return False
    document = result.get("policyDocument")
    return isinstance(document, dict) and isinstance(document.get("Statement"), list)


def _context_string(value: Any) -> str:
    # API Gateway passes context values to the integration as strings, and
    # refuses objects and arrays.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise GatewayError("AUTHORIZER_CONFIGURATION_ERROR")
