"""Lazily built boto3 clients.

boto3 costs a few hundred milliseconds to import, so it is imported the first
time a client is needed, never when a handler module is loaded. Clients are
built once per container and shared; building is serialised because boto3's
session (unlike its clients) is not thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

# Short timeouts on the request path: a slow AWS dependency must turn into a
# fast, audited failure (fail closed), not a 29 s API Gateway timeout.
_CONNECT_TIMEOUT_SECONDS = 2.0
_READ_TIMEOUT_SECONDS = 5.0


class AwsClients:
    """The boto3 clients one container uses.

    Parameters
    ----------
    region:
        AWS region of the stage.
    endpoint_url:
        Overrides every service endpoint; the local stack points it at moto.
    endpoint_overrides:
        Service name -> endpoint, winning over ``endpoint_url`` (the local
        stack records STS calls as CloudTrail would).
    """

    def __init__(
        self,
        region: str,
        endpoint_url: str | None = None,
        endpoint_overrides: Mapping[str, str] | None = None,
    ) -> None:
        self._region = region
        self._endpoint_url = endpoint_url
        self._endpoint_overrides = dict(endpoint_overrides or {})
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def sqs(self) -> Any:
        """The SQS client."""
        return self._client("sqs")

    @property
    def s3(self) -> Any:
        """The S3 client."""
        return self._client("s3")

    @property
    def dynamodb(self) -> Any:
        """The DynamoDB (low-level) client."""
        return self._client("dynamodb")

    @property
    def kms(self) -> Any:
        """The KMS client."""
        return self._client("kms")

    @property
    def secretsmanager(self) -> Any:
        """The Secrets Manager client (session keys, sign-in client secrets)."""
        return self._client("secretsmanager")

    @property
    def sts(self) -> Any:
        """The STS client (AWS upstreams' role sessions)."""
        return self._client("sts")

    @property
    def sns(self) -> Any:
        """The SNS client (detection's alerts)."""
        return self._client("sns")

    @property
    def events(self) -> Any:
        """The EventBridge client (detection's alerts)."""
        return self._client("events")

    @property
    def cloudwatch(self) -> Any:
        """The CloudWatch client (the scheduled check reads the verify metric)."""
        return self._client("cloudwatch")

    def assumed(self, service: str, credentials: Mapping[str, str]) -> Any:
        """A new client for ``service`` acting with ``credentials`` (an STS answer's).

        Not shared: each set of credentials gets its own, and expires with them.
        """
        with self._lock:
            return self._build(service, credentials)

    def _client(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                client = self._build(service)
                self._clients[service] = client
        return client

    def _build(self, service: str, credentials: Mapping[str, str] | None = None) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            region_name=self._region,
            # A request waiting on STS holds its caller: one retry, not two.
            retries={"mode": "standard", "max_attempts": 2 if service == "sts" else 3},
            connect_timeout=_CONNECT_TIMEOUT_SECONDS,
            read_timeout=_READ_TIMEOUT_SECONDS,
        )
        endpoint_url = self._endpoint_overrides.get(service, self._endpoint_url)
        keys: dict[str, str] = {}
        if credentials is not None:
            keys = {
                "aws_access_key_id": credentials["AccessKeyId"],
                "aws_secret_access_key": credentials["SecretAccessKey"],
                "aws_session_token": credentials["SessionToken"],
            }
        return boto3.session.Session().client(
            service, config=config, endpoint_url=endpoint_url, **keys
        )
