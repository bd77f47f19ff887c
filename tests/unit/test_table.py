"""The table adapter: keys, value conversion and the one mapping of DynamoDB's refusals."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.aws.table import Table
from chalicelib.aws.table_errors import CorruptItem, TableUnavailable, WriteRefused
from chalicelib.aws.table_items import deserialize, integer, serialize
from chalicelib.aws.table_layout import GRANT, POLICY_ACTIVE, POLICY_VERSION


def test_keys_are_built_per_kind() -> None:
    assert POLICY_VERSION.key(42) == {"pk": "POLICY", "sk": "VERSION#0000000042"}
    assert POLICY_ACTIVE.key() == {"pk": "POLICY", "sk": "ACTIVE"}
    assert GRANT.key("g-1") == {"pk": "GRANT", "sk": "g-1"}
    assert POLICY_VERSION.number({"sk": "VERSION#0000000042"}) == 42


def test_values_keep_the_text_the_stores_always_wrote() -> None:
    typed = serialize({"at": 1_800_000_000.123456, "n": 7, "s": "München"})
    assert typed == {"at": {"N": "1800000000.123456"}, "n": {"N": "7"}, "s": {"S": "München"}}
    assert float(deserialize(typed)["at"]) == 1_800_000_000.123456


@pytest.mark.parametrize("value", [{"N": "two hours"}, {"X": "?"}])
def test_an_unreadable_attribute_is_a_corrupt_item(value: dict[str, str]) -> None:
    with pytest.raises(CorruptItem):
        deserialize({"a": value})


def test_a_fraction_is_not_a_whole_number() -> None:
    with pytest.raises(CorruptItem):
        integer({"n": Decimal("1.5")}, "n")


@pytest.mark.parametrize(
    ("code", "fields", "reasons", "lost_race"),
    [
        ("ConditionalCheckFailedException", {}, ("ConditionalCheckFailed",), True),
        (
            "TransactionCanceledException",
            {"CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}]},
            ("None", "TransactionConflict"),
            True,
        ),
        (
            "TransactionCanceledException",
            {"CancellationReasons": [{"Code": "ThrottlingError"}, {"Code": "None"}]},
            ("ThrottlingError", "None"),
            False,
        ),
    ],
)
def test_a_refused_write_says_why(
    code: str, fields: dict[str, Any], reasons: tuple[str, ...], lost_race: bool
) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error(
            "transact_write_items", service_error_code=code, modeled_fields=fields
        )
        with pytest.raises(WriteRefused) as caught:
            Table(client, "t").transact([Table(client, "t").delete_action(GRANT.key("g-1"))])
    assert (caught.value.reasons, caught.value.lost_race) == (reasons, lost_race)


def test_any_other_failure_is_unavailable() -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_item", service_error_code="ProvisionedThroughputExceededException"
        )
        with pytest.raises(TableUnavailable):
            Table(client, "t").get(GRANT.key("g-1"))
