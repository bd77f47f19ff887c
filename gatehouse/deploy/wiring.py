"""What ``chalice deploy`` cannot declare, wired idempotently with boto3 after it.

Chalice 1.34 has no setting for a stage's access log, its method settings
(the health route's throttling), gateway responses, an SQS
event source that reports partial batch failures (``@app.on_sqs_message``
cannot: aws/chalice#2029, so the writer is an ``@app.lambda_function``), or a
CloudWatch Logs subscription. Each ``ensure_*`` reads what is there, changes
only what differs, and says what it did; running :func:`wire` twice changes
nothing the second time. The EventBridge schedules and their invoke
permissions are Chalice's own (``@app.schedule``) and are not touched here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gatehouse.deploy.errors import NotDeployed
from gatehouse.deploy.settings import (
    HEALTH_BURST_LIMIT,
    HEALTH_METHODS,
    HEALTH_PATH,
    HEALTH_RATE_LIMIT,
    WriterSource,
    method_setting_path,
)

ClientFactory = Callable[[str], Any]

SUBSCRIPTION_FILTER_NAME = "gatehouse-access-log-ingest"
LOGS_PERMISSION_SID = "gatehouse-access-log-subscription"
PARTIAL_BATCH_FAILURES = ["ReportBatchItemFailures"]


@dataclass(frozen=True, slots=True)
class Change:
    """One wiring step's outcome."""

    what: str
    action: str  # created | updated | unchanged | deleted | absent | kept
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.what}: {self.action}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True, slots=True)
class WiringTarget:
    """The deployed stage's pieces that get wired together."""

    stage: str
    rest_api_id: str
    access_log_group_name: str
    access_log_group_arn: str
    audit_queue_arn: str
    writer_function: str
    ingest_function: str
    access_log_format: str
    gateway_responses: dict[str, Any] = field(default_factory=dict)
    api_gateway_role_arn: str | None = None
    writer: WriterSource = field(default_factory=WriterSource)

    @property
    def log_group_arn_for_api_gateway(self) -> str:
        """API Gateway refuses the ``:*`` suffix that CloudFormation's ``Arn`` carries."""
        return self.access_log_group_arn.removesuffix(":*")

    @property
    def log_group_arn_for_logs(self) -> str:
        """CloudWatch Logs is the caller of the subscription: its source ARN ends in ``:*``."""
        return self.log_group_arn_for_api_gateway + ":*"


def wire(client: ClientFactory, target: WiringTarget) -> list[Change]:
    """Every wiring step, in order; each a no-op when already in place.

    Raises
    ------
    NotDeployed
        When the API, a function or the log group does not exist.
    """
    apigateway = client("apigateway")
    lambda_ = client("lambda")
    logs = client("logs")
    changes = []
    if target.api_gateway_role_arn:
        changes.append(ensure_api_gateway_account_role(apigateway, target.api_gateway_role_arn))
    # Responses first: they may redeploy the stage (moto, unlike API Gateway,
    # drops a stage's settings when a deployment names it).
    changes.append(ensure_gateway_responses(apigateway, target))
    changes.append(ensure_stage_access_log(apigateway, target))
    changes.append(ensure_writer_event_source(lambda_, target))
    changes.append(ensure_ingest_permission(lambda_, target))
    changes.append(ensure_access_log_subscription(logs, lambda_, target))
    # After the responses, which may redeploy the stage (see above).
    changes.append(ensure_health_throttling(apigateway, target))
    return changes


def ensure_api_gateway_account_role(apigateway: Any, role_arn: str) -> Change:
    """Give the region's API Gateway a CloudWatch role when it has none (access logs need one).

    A role already set is kept: it is account-wide and may serve other APIs.
    """
    current = apigateway.get_account().get("cloudwatchRoleArn")
    if current:
        action = "unchanged" if current == role_arn else "kept"
        return Change("API Gateway account CloudWatch role", action, current)
    apigateway.update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": role_arn}]
    )
    return Change("API Gateway account CloudWatch role", "updated", role_arn)


def ensure_stage_access_log(apigateway: Any, target: WiringTarget) -> Change:
    """Point the stage's access log at the log group, in the JSON format of ``infra/``."""
    what = f"access log of stage {target.stage}"
    stage = _stage(apigateway, target)
    wanted = {
        "destinationArn": target.log_group_arn_for_api_gateway,
        "format": target.access_log_format,
    }
    current = stage.get("accessLogSettings") or {}
    if all(current.get(key) == value for key, value in wanted.items()):
        return Change(what, "unchanged")
    apigateway.update_stage(
        restApiId=target.rest_api_id,
        stageName=target.stage,
        patchOperations=[
            {"op": "replace", "path": f"/accessLogSettings/{key}", "value": value}
            for key, value in wanted.items()
        ],
    )
    return Change(what, "updated" if current else "created", target.access_log_group_name)


def ensure_health_throttling(apigateway: Any, target: WiringTarget) -> Change:
    """Throttle the unauthenticated health route per method, in the stage's method settings."""
    what = f"throttling of {HEALTH_PATH} in stage {target.stage}"
    settings = _stage(apigateway, target).get("methodSettings") or {}
    resource = method_setting_path(HEALTH_PATH)
    operations = []
    for method in HEALTH_METHODS:
        current = settings.get(f"{resource[1:]}/{method}") or {}
        wanted = {"rateLimit": HEALTH_RATE_LIMIT, "burstLimit": HEALTH_BURST_LIMIT}
        have = {
            "rateLimit": current.get("throttlingRateLimit"),
            "burstLimit": current.get("throttlingBurstLimit"),
        }
        operations += [
            {"op": "replace", "path": f"{resource}/{method}/throttling/{key}", "value": str(value)}
            for key, value in wanted.items()
            if not _same_number(have[key], value)
        ]
    if not operations:
        return Change(what, "unchanged")
    apigateway.update_stage(
        restApiId=target.rest_api_id, stageName=target.stage, patchOperations=operations
    )
    detail = f"{HEALTH_RATE_LIMIT:g}/s, burst {HEALTH_BURST_LIMIT}"
    return Change(what, "updated", detail)


def _same_number(have: Any, wanted: float) -> bool:
    return isinstance(have, int | float) and float(have) == float(wanted)


def ensure_gateway_responses(apigateway: Any, target: WiringTarget) -> Change:
    """The customised gateway responses (503 on authorizer failure, request ids in bodies).

    ``chalice deploy`` re-imports the API definition, which drops them; when any
    had to be put back the stage is redeployed, since a stage serves the
    responses of its deployment.
    """
    what = f"gateway responses of API {target.rest_api_id}"
    current = {
        item["responseType"]: item
        for item in _paginate(apigateway, "get_gateway_responses", restApiId=target.rest_api_id)
    }
    put = []
    for response_type, wanted in sorted(target.gateway_responses.items()):
        have = current.get(response_type, {})
        want = {
            "statusCode": str(wanted["statusCode"]),
            "responseParameters": wanted.get("responseParameters", {}),
            "responseTemplates": wanted.get("responseTemplates", {}),
        }
        if (
            str(have.get("statusCode")) == want["statusCode"]
            and (have.get("responseParameters") or {}) == want["responseParameters"]
            and (have.get("responseTemplates") or {}) == want["responseTemplates"]
        ):
            continue
        apigateway.put_gateway_response(
            restApiId=target.rest_api_id, responseType=response_type, **want
        )
        put.append(response_type)
    if not put:
        return Change(what, "unchanged")
    apigateway.create_deployment(
        restApiId=target.rest_api_id,
        stageName=target.stage,
        description="gatehouse deploy: gateway responses",
    )
    return Change(what, "updated", f"{', '.join(put)}; stage {target.stage} redeployed")


def _writer_mapping_settings(target: WiringTarget) -> dict[str, Any]:
    return {
        "BatchSize": target.writer.events_per_object,
        "MaximumBatchingWindowInSeconds": target.writer.batching_window_seconds,
        "FunctionResponseTypes": PARTIAL_BATCH_FAILURES,
        "ScalingConfig": {"MaximumConcurrency": target.writer.max_concurrency},
    }


def writer_event_sources(lambda_: Any, target: WiringTarget) -> list[dict[str, Any]]:
    """The event source mappings from the audit queue to the writer."""
    return list(
        _paginate(
            lambda_,
            "list_event_source_mappings",
            result_key="EventSourceMappings",
            EventSourceArn=target.audit_queue_arn,
            FunctionName=target.writer_function,
        )
    )


def ensure_writer_event_source(lambda_: Any, target: WiringTarget) -> Change:
    """The writer reads the audit queue: events per object, batching window, partial failures."""
    what = f"event source {target.audit_queue_arn.rsplit(':', 1)[-1]} -> {target.writer_function}"
    _function_arn(lambda_, target.writer_function)
    wanted = _writer_mapping_settings(target)
    mappings = writer_event_sources(lambda_, target)
    for extra in mappings[1:]:  # one writer mapping: another would only add contention
        lambda_.delete_event_source_mapping(UUID=extra["UUID"])
    if not mappings:
        created = lambda_.create_event_source_mapping(
            EventSourceArn=target.audit_queue_arn,
            FunctionName=target.writer_function,
            Enabled=True,
            **wanted,
        )
        return Change(what, "created", f"{created['UUID']}, batch size {wanted['BatchSize']}")
    mapping = mappings[0]
    differs = [key for key, value in wanted.items() if mapping.get(key) != value]
    if mapping.get("State") in ("Disabled", "Disabling"):
        differs.append("Enabled")
    if not differs and len(mappings) == 1:
        return Change(what, "unchanged", mapping["UUID"])
    lambda_.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True, **wanted)
    detail = ", ".join(differs) or f"removed {len(mappings) - 1} duplicate mapping(s)"
    return Change(what, "updated", detail)


def ensure_ingest_permission(lambda_: Any, target: WiringTarget) -> Change:
    """CloudWatch Logs may invoke ``access_log_ingest``, from the access log group only."""
    what = f"invoke permission of {target.ingest_function} for logs.amazonaws.com"
    account = target.audit_queue_arn.split(":")[4]
    statement = _permission_statement(lambda_, target.ingest_function, LOGS_PERMISSION_SID)
    if statement is not None:
        condition = statement.get("Condition", {})
        source_arn = condition.get("ArnLike", {}).get("AWS:SourceArn")
        source_account = condition.get("StringEquals", {}).get("AWS:SourceAccount")
        if (source_arn, source_account) == (target.log_group_arn_for_logs, account):
            return Change(what, "unchanged")
        lambda_.remove_permission(
            FunctionName=target.ingest_function, StatementId=LOGS_PERMISSION_SID
        )
    lambda_.add_permission(
        FunctionName=target.ingest_function,
        StatementId=LOGS_PERMISSION_SID,
        Action="lambda:InvokeFunction",
        Principal="logs.amazonaws.com",
        SourceArn=target.log_group_arn_for_logs,
        SourceAccount=account,
    )
    return Change(what, "updated" if statement is not None else "created")


def ensure_access_log_subscription(logs: Any, lambda_: Any, target: WiringTarget) -> Change:
    """Every line of the stage's access log goes to ``access_log_ingest``."""
    what = f"subscription {target.access_log_group_name} -> {target.ingest_function}"
    destination = _function_arn(lambda_, target.ingest_function)
    current = _subscription(logs, target.access_log_group_name)
    if current is not None and (current.get("destinationArn"), current.get("filterPattern")) == (
        destination,
        "",
    ):
        return Change(what, "unchanged")
    logs.put_subscription_filter(
        logGroupName=target.access_log_group_name,
        filterName=SUBSCRIPTION_FILTER_NAME,
        filterPattern="",
        destinationArn=destination,
    )
    return Change(what, "updated" if current else "created")


def unwire(client: ClientFactory, target: WiringTarget) -> list[Change]:
    """Remove what :func:`wire` added outside the API (the API's settings go with the API)."""
    lambda_ = client("lambda")
    logs = client("logs")
    changes = []
    mappings = _ignoring_missing(lambda: writer_event_sources(lambda_, target), [])
    for mapping in mappings:
        lambda_.delete_event_source_mapping(UUID=mapping["UUID"])
    changes.append(Change("writer event source", "deleted" if mappings else "absent"))
    subscription = _ignoring_missing(
        lambda: _subscription(logs, target.access_log_group_name), None
    )
    if subscription is not None:
        logs.delete_subscription_filter(
            logGroupName=target.access_log_group_name, filterName=SUBSCRIPTION_FILTER_NAME
        )
    changes.append(Change("access log subscription", "deleted" if subscription else "absent"))
    return changes


def _stage(apigateway: Any, target: WiringTarget) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    try:
        stage: dict[str, Any] = apigateway.get_stage(
            restApiId=target.rest_api_id, stageName=target.stage
        )
    except ClientError as exc:
        raise NotDeployed(f"no stage {target.stage} of API {target.rest_api_id}: {exc}") from exc
    return stage


def _function_arn(lambda_: Any, name: str) -> str:
    from botocore.exceptions import ClientError

    try:
        return str(lambda_.get_function(FunctionName=name)["Configuration"]["FunctionArn"])
    except ClientError as exc:
        raise NotDeployed(f"no function {name}: run `chalice deploy` first ({exc})") from exc


def _permission_statement(lambda_: Any, function: str, sid: str) -> dict[str, Any] | None:
    import json

    from botocore.exceptions import ClientError

    try:
        policy = json.loads(lambda_.get_policy(FunctionName=function)["Policy"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise
    for statement in policy.get("Statement", []):
        if statement.get("Sid") == sid:
            return dict(statement)
    return None


def _subscription(logs: Any, log_group: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        filters = logs.describe_subscription_filters(
            logGroupName=log_group, filterNamePrefix=SUBSCRIPTION_FILTER_NAME
        )["subscriptionFilters"]
    except ClientError as exc:
        raise NotDeployed(f"no log group {log_group}: deploy the infra stack first") from exc
    for found in filters:
        if found.get("filterName") == SUBSCRIPTION_FILTER_NAME:
            return dict(found)
    return None


def _paginate(client: Any, operation: str, *, result_key: str = "items", **kwargs: Any) -> Any:
    token_in, token_out = (
        ("Marker", "NextMarker")
        if result_key == "EventSourceMappings"
        else ("position", "position")
    )
    while True:
        page = getattr(client, operation)(**kwargs)
        yield from page.get(result_key, [])
        token = page.get(token_out)
        if not token:
            return
        kwargs[token_in] = token


def _ignoring_missing(read: Callable[[], Any], default: Any) -> Any:
    from botocore.exceptions import ClientError

    try:
        return read()
    except (ClientError, NotDeployed):
        return default
