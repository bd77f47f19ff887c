"""The authorizer notices a new active policy within the refresh bound (default 10 s).

A controllable clock stands in for time; DynamoDB (moto), the store and the
cache are real. The bound is proven at its edge: just before it the old
version still decides, at it the new one does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from chalicelib.config import Settings
from chalicelib.policy import ActivePolicy, PolicyStore, PolicyUnavailable
from tests.functional.conftest import environment, policy_document
from tests.helpers import ISSUER

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_default_refresh_bound_is_at_most_ten_seconds(
    aws: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(aws)
    del env["GATEHOUSE_POLICY_REFRESH_SECONDS"]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GATEHOUSE_POLICY_REFRESH_SECONDS", raising=False)

    assert Settings.from_environment().policy_refresh_seconds <= 10.0


@pytest.mark.parametrize("refresh", [10.0, 2.5])
def test_a_new_version_is_in_force_exactly_when_the_bound_elapses(
    aws: Resources, refresh: float
) -> None:
    import boto3

    store = PolicyStore(boto3.client("dynamodb", region_name="us-east-1"), aws.state_table)
    first = policy_document("http://127.0.0.1:9")
    store.publish(first, actor="test")
    clock = Clock()
    cache = ActivePolicy(store, default_issuer=ISSUER, refresh_seconds=refresh, clock=clock)
    assert cache.current().version == 1

    second: dict[str, Any] = policy_document("http://127.0.0.1:9")
    second["rules"] = second["rules"][:1]
    store.publish(second, actor="test")

    clock.now += refresh - 0.001
    assert cache.current().version == 1  # within the bound the cached version may serve
    clock.now += 0.001
    assert cache.current().version == 2  # at the bound the new one is in force


def test_a_store_outage_serves_the_last_version_only_up_to_the_stale_limit(
    aws: Resources,
) -> None:
    import boto3

    client = boto3.client("dynamodb", region_name="us-east-1")
    store = PolicyStore(client, aws.state_table)
    store.publish(policy_document("http://127.0.0.1:9"), actor="test")
    clock = Clock()
    cache = ActivePolicy(
        store, default_issuer=ISSUER, refresh_seconds=1.0, max_stale_seconds=60.0, clock=clock
    )
    assert cache.current().version == 1

    client.delete_table(TableName=aws.state_table)
    clock.now += 59.0
    assert cache.current().version == 1
    clock.now += 1.0
    with pytest.raises(PolicyUnavailable):
        cache.current()
