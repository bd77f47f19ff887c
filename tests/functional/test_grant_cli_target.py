"""Where the grant CLI's commands point: the stage it targets and the issuers that stage trusts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from chalicelib.config import TrustedIssuer
from chalicelib.policy import PolicyStore
from gatehouse.dev.idp import DevIssuer, SigningKey
from gatehouse.target import NoTarget, Target
from tests.functional.conftest import GRANTS, policy_document
from tests.helpers import AUDIENCE

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources


@pytest.fixture
def dev_issuer(rsa_key: Any, tmp_path: Path) -> Iterator[DevIssuer]:
    """The local stack's issuer, serving discovery and JWKS over http on loopback."""
    issuer = DevIssuer([SigningKey("RS256", "dev-rsa", rsa_key, tmp_path / "idp-rs256.pem")])
    issuer.start()
    yield issuer
    issuer.stop()


@pytest.fixture
def target(aws: Resources, dev_issuer: DevIssuer) -> Target:
    """The local stage, with the grants block in its active policy."""
    document = policy_document("http://127.0.0.1:9")
    document["grants"] = GRANTS
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    PolicyStore(dynamodb, aws.state_table).publish(document, actor="test")
    return local_target(aws, dev_issuer)


def local_target(aws: Resources, dev_issuer: DevIssuer) -> Target:
    return Target(
        region="us-east-1",
        endpoint_url=None,
        audit_bucket=aws.audit_bucket,
        audit_queue_url=aws.audit_queue_url,
        audit_dlq_url=None,
        state_table=aws.state_table,
        local=True,
        stage="test",
        issuer=dev_issuer.url,
        audience=AUDIENCE,
    )


def test_a_deployed_stage_trusts_the_issuers_in_its_environment(
    target: Target, dev_issuer: DevIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What `policy explain` defaults --issuer to, away from the local stack.
    remote = replace(target, local=False, issuer=None, audience=None)
    with pytest.raises(NoTarget, match="GATEHOUSE_TRUSTED_ISSUERS is not set"):
        _ = replace(remote).trusted_issuers
    issuers = [{"issuer": dev_issuer.url, "audiences": [AUDIENCE]}]
    monkeypatch.setenv("GATEHOUSE_TRUSTED_ISSUERS", json.dumps(issuers))
    with pytest.raises(NoTarget, match="must be an https URL"):
        _ = replace(remote).trusted_issuers
    monkeypatch.setenv("GATEHOUSE_ALLOW_HTTP_ISSUERS", "true")

    assert replace(remote).trusted_issuers == (TrustedIssuer(dev_issuer.url, (AUDIENCE,)),)
