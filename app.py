"""Gatehouse's Chalice app: wiring only. All behaviour lives in ``chalicelib``."""

from __future__ import annotations

from typing import Any

from chalicelib import entrypoints
from chalicelib.apigw.chalice_adapter import GatewayApp
from chalicelib.config import authorizer_ttl_from_environment

PROXY_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

app = GatewayApp(app_name="gatehouse")
app.api.binary_types = ["*/*"]


@app.request_authorizer(name="gatehouse_authorizer", ttl_seconds=authorizer_ttl_from_environment)
def gatehouse_authorizer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return entrypoints.authorize(event, context)


@app.raw_route(["/", "/{proxy+}"], methods=PROXY_METHODS, authorizer=gatehouse_authorizer)
def proxy(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return entrypoints.proxy(event, context)


@app.raw_route(["/.well-known/gatehouse/jwks.json"], methods=["GET"])
def gateway_jwks(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return entrypoints.gateway_jwks(event, context)


@app.lambda_function(name="audit_writer")
def audit_writer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return entrypoints.write_audit_batch(event, context)


@app.schedule("rate(1 minute)", name="grant_sweeper")
def grant_sweeper(event: Any) -> None:
    entrypoints.sweep_grants()
