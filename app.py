"""Gatehouse's Chalice app: wiring only. All behaviour lives in ``chalicelib``."""

from __future__ import annotations

from typing import Any

from chalicelib import entrypoints
from chalicelib.apigw.chalice_adapter import GatewayApp
from chalicelib.config import authorizer_ttl_from_environment

# The grant routes, verbatim (not imported from chalicelib.grants: app.py stays cheap to import).
GRANT_ACTION_ROUTES = [
    "/.gatehouse/grants/{grant_id}/approve",
    "/.gatehouse/grants/{grant_id}/deny",
    "/.gatehouse/grants/{grant_id}/revoke",
]
PROXY_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
SIGN_IN_PAGES = [
    "/.gatehouse/login",
    "/.gatehouse/callback",
    "/.gatehouse/refresh",
    "/.gatehouse/signed-out",
]
SIGN_IN_FORMS = ["/.gatehouse/logout"]
BACKCHANNEL_LOGOUT = ["/.gatehouse/backchannel-logout"]
# Verbatim too (chalicelib.proxy.health names the same path): unauthenticated, not
# audited per hit, throttled by the stage's method settings (gatehouse/deploy).
HEALTH = ["/.gatehouse/health"]

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


@app.raw_route(["/.well-known/gatehouse/key-certificates.json"], methods=["GET"])
def gateway_key_certificates(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return entrypoints.gateway_key_certificates(event, context)


@app.raw_route(["/.gatehouse/grants"], methods=["GET", "POST"])
def grants_api(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return entrypoints.grants_api(event, context)


@app.raw_route(GRANT_ACTION_ROUTES, methods=["POST"])
def grant_actions(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return entrypoints.grants_api(event, context)


@app.raw_route(SIGN_IN_PAGES, methods=["GET"])
def sign_in_pages(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return entrypoints.sign_in(event, context)


@app.raw_route(SIGN_IN_FORMS, methods=["GET", "POST"])
def sign_out(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return entrypoints.sign_in(event, context)


@app.raw_route(BACKCHANNEL_LOGOUT, methods=["POST"])
def backchannel_logout(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return entrypoints.sign_in(event, context)


@app.raw_route(HEALTH, methods=["GET", "HEAD"])
def health(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.proxy.health import health_answer  # imported on first use: a cheap app.py

    return health_answer(event)


@app.lambda_function(name="audit_writer")
def audit_writer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return entrypoints.write_audit_batch(event, context)


@app.lambda_function(name="access_log_ingest")
def access_log_ingest(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return entrypoints.ingest_access_logs(event, context)


@app.schedule("rate(1 minute)", name="grant_sweeper")
def grant_sweeper(event: Any) -> None:
    entrypoints.sweep_grants()


@app.schedule("rate(1 hour)", name="ledger_digest")
def ledger_digest(event: Any) -> None:
    entrypoints.write_digest()


@app.schedule("rate(5 minutes)", name="ocsf_export")
def ocsf_export(event: Any) -> None:
    entrypoints.export_ocsf(event.to_dict())


@app.schedule("rate(5 minutes)", name="detection_checks")
def detection_checks(event: Any) -> None:
    entrypoints.run_detection_checks()
