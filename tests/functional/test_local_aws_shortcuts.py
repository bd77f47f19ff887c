"""The local stack's moto shortcuts answer as moto does (``gatehouse.dev.moto_dynamodb``, SQS).

Real moto in its own process, as ``gatehouse dev`` runs it: DynamoDB queries
read one partition and cancelled transactions put back only what they
touched; SQS attributes are computed when read; connections are kept open.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from gatehouse.dev.aws_server import AwsServer
from gatehouse.dev.event_source import drain_queue
from gatehouse.dev.loopback_sqs import LoopbackSqs, SqsCallFailed


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = AwsServer()
    server.start()
    yield server.url
    server.stop()


def client(endpoint: str, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def table(endpoint: str) -> Any:
    dynamodb = client(endpoint, "dynamodb")
    dynamodb.create_table(
        TableName="shortcuts",
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for index in range(30):
        dynamodb.put_item(
            TableName="shortcuts",
            Item={
                "pk": {"S": f"p{index % 3}"},
                "sk": {"S": f"s{(index * 7) % 30:02d}"},
                "n": {"N": str(index)},
            },
        )
    return dynamodb


def keys(answer: dict[str, Any]) -> list[str]:
    return [item["sk"]["S"] for item in answer["Items"]]


def test_a_query_reads_its_partition_in_sort_key_order_and_pages(table: Any) -> None:
    query = {
        "TableName": "shortcuts",
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "p1"}},
    }
    assert keys(table.query(**query)) == [f"s{n:02d}" for n in range(1, 30, 3)]
    assert keys(table.query(**query, ScanIndexForward=False))[:2] == ["s28", "s25"]
    first = table.query(**query, Limit=4)
    rest = table.query(**query, ExclusiveStartKey=first["LastEvaluatedKey"])
    assert keys(first) + keys(rest) == keys(table.query(**query))
    nothing = {**query, "ExpressionAttributeValues": {":p": {"S": "absent"}}}
    assert table.query(**nothing)["Items"] == []


def test_a_cancelled_transaction_leaves_every_item_as_it_was(table: Any) -> None:
    before = table.scan(TableName="shortcuts")["Items"]
    key = {"pk": {"S": "p1"}, "sk": {"S": "s01"}}
    with pytest.raises(table.exceptions.TransactionCanceledException):
        table.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "shortcuts", "Item": {"pk": {"S": "p9"}, "sk": {"S": "x"}}}},
                {"Update": {"TableName": "shortcuts", "Key": key, "UpdateExpression": "SET n = :v",
                            "ExpressionAttributeValues": {":v": {"N": "999"}}}},
                {"Delete": {"TableName": "shortcuts",
                            "Key": {"pk": {"S": "p2"}, "sk": {"S": "s02"}}}},
                {"ConditionCheck": {"TableName": "shortcuts",
                                    "Key": {"pk": {"S": "p0"}, "sk": {"S": "s00"}},
                                    "ConditionExpression": "attribute_not_exists(pk)"}},
            ]
        )  # fmt: skip
    assert table.scan(TableName="shortcuts")["Items"] == before

    table.transact_write_items(
        TransactItems=[
            {"Update": {"TableName": "shortcuts", "Key": key, "UpdateExpression": "SET n = :v",
                        "ExpressionAttributeValues": {":v": {"N": "7"}}}},
        ]
    )  # fmt: skip
    assert table.get_item(TableName="shortcuts", Key=key)["Item"]["n"] == {"N": "7"}


def test_queue_attributes_read_as_moto_writes_them(endpoint: str) -> None:
    sqs = client(endpoint, "sqs")
    dlq = sqs.create_queue(QueueName="shortcuts-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]
    redrive = json.dumps({"deadLetterTargetArn": arn["QueueArn"], "maxReceiveCount": "2"})
    queue = sqs.create_queue(QueueName="shortcuts", Attributes={"RedrivePolicy": redrive})
    url = queue["QueueUrl"]
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "m"} for i in range(3)]
    )
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]

    every = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert every["ApproximateNumberOfMessages"] == "2"
    assert every["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert json.loads(every["RedrivePolicy"])["maxReceiveCount"] == 2
    assert (
        "RedrivePolicy"
        not in sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]
    )
    sqs.delete_message(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"])
    with pytest.raises(sqs.exceptions.ClientError):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")


def test_the_mapping_receives_and_deletes_without_botocore(endpoint: str) -> None:
    sqs = client(endpoint, "sqs")
    url = sqs.create_queue(QueueName="loopback")["QueueUrl"]
    for i in range(25):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    seen: list[str] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.extend(record["body"] for record in event["Records"])
        assert all(record["attributes"]["ApproximateReceiveCount"] for record in event["Records"])
        return {"batchItemFailures": []}

    mapping = LoopbackSqs(endpoint, "us-east-1")
    try:
        result = drain_queue(mapping, url, handler, queue_arn="arn")
        with pytest.raises(SqsCallFailed):
            mapping.receive_message(QueueUrl=url + "-absent")
    finally:
        mapping.close()

    assert (result.delivered, result.failed) == (25, 0)
    assert sorted(seen) == sorted(f"m{i}" for i in range(25))
    assert (
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"][
            "ApproximateNumberOfMessagesNotVisible"
        ]
        == "0"
    )
