"""The audit writer (``app.audit_writer``, an ``AuditWriter``) fed SQS events, storing into moto.

What a delivery stores: one Object Lock'ed ndjson.gz object a batch, each
event with its ledger position, malformed bodies reported and not stored.
The event bodies there are the real messages the authorizer put on the audit
queue; the bucket is the Object Lock bucket the bootstrap creates
(GOVERNANCE, one day, for a test stage).

Exactly once, whatever crashes and however SQS redelivers: a crash is
injected after every AWS call of a batch in turn (the call took effect, the
process died before the next step), and before the first one; then SQS
delivers the batch again, as it would, and the ledger must hold every event
exactly once, with sequences from 0 without gaps, every object as recorded
(key, version, SHA-256), and a Merkle root that matches the lines. The
faults are raised at the AWS client boundary: the writer's own code runs
unchanged against moto.
"""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

import app
from chalicelib import entrypoints
from chalicelib.audit import AuditWriter
from chalicelib.audit.schema import uuid7
from chalicelib.config import Settings
from chalicelib.container import Container
from chalicelib.ledger import LedgerBusy, LedgerState
from chalicelib.ledger.layout import EVENTS_PREFIX, FENCE
from chalicelib.ledger.merkle import leaf_hash, root
from tests.helpers import FakeIdp, claims, load_event, make_token

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources

KEY = re.compile(r"audit/v1/events/dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/(\d{16})-r(\d+)\.ndjson\.gz")


def s3() -> Any:
    return boto3.client("s3", region_name="us-east-1")


def clients() -> tuple[Any, Any]:
    return s3(), boto3.client("dynamodb", region_name="us-east-1")


def real_messages(aws: Resources, rsa_key: Any) -> list[tuple[str, str]]:
    """(message id, body) of three real decision events: allow, deny, unauthorized."""
    base = load_event("authorizer_request")
    requests = [
        (make_token(rsa_key, "RS256", "rsa-1"), False),
        (make_token(rsa_key, "RS256", "rsa-1", claims(groups=["sales"])), False),
        ("not-a-token", True),
    ]
    for token, unauthorized in requests:
        event = copy.deepcopy(base)
        event["headers"]["Authorization"] = f"Bearer {token}"
        event["multiValueHeaders"]["Authorization"] = [f"Bearer {token}"]
        if unauthorized:
            with pytest.raises(Exception, match=r"^Unauthorized$"):
                app.gatehouse_authorizer(event, None)
        else:
            app.gatehouse_authorizer(event, None)
    sqs = boto3.client("sqs", region_name="us-east-1")
    messages: list[tuple[str, str]] = []
    while len(messages) < len(requests):
        received = sqs.receive_message(QueueUrl=aws.audit_queue_url, MaxNumberOfMessages=10)
        batch = received.get("Messages", [])
        assert batch, "the authorizer did not queue its events"
        messages += [(m["MessageId"], m["Body"]) for m in batch]
    return messages


def sqs_event(messages: list[tuple[str, str]]) -> dict[str, Any]:
    """An SQS event for the Lambda, in AWS's format, carrying ``messages``."""
    template = load_event("sqs_batch")["Records"][0]
    records = []
    for message_id, body in messages:
        record = copy.deepcopy(template)
        record["messageId"] = message_id
        record["body"] = body
        record["md5OfBody"] = hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()
        records.append(record)
    return {"Records": records}


def stored_keys(bucket: str) -> list[str]:
    listed = s3().list_objects_v2(Bucket=bucket, Prefix=EVENTS_PREFIX)
    return [item["Key"] for item in listed.get("Contents", [])]


def stored_lines(bucket: str, key: str) -> list[str]:
    payload = s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    text = gzip.decompress(payload).decode("utf-8")
    assert text.endswith("\n")
    return text[:-1].split("\n")


def ledger_lines(bodies: list[str], first: int = 0) -> list[str]:
    """The stored form of ``bodies``: each with its ledger position appended."""
    return [
        f'{body[:-1]},"ledger":{{"sequence":{first + offset}}}}}'
        for offset, body in enumerate(bodies)
    ]


def renamed(message: tuple[str, str]) -> tuple[str, str]:
    """The same event under a new event id (and message id): a different event."""
    message_id, body = message
    event = json.loads(body)
    event["event_id"] = uuid7()
    return f"{message_id}-{event['event_id']}", json.dumps(event, separators=(",", ":"))


def failures(answer: dict[str, Any]) -> list[str]:
    assert set(answer) == {"batchItemFailures"}
    return [item["itemIdentifier"] for item in answer["batchItemFailures"]]


# --- what a delivery stores ------------------------------------------------------------------


def test_a_batch_is_stored_as_one_locked_ndjson_gz_object(
    stage: Container, aws: Resources, rsa_key: Any
) -> None:
    messages = real_messages(aws, rsa_key)
    before = time.time()

    answer = app.audit_writer(sqs_event(messages), None)

    after = time.time()
    assert failures(answer) == []
    [key] = stored_keys(aws.audit_bucket)
    match = KEY.fullmatch(key)
    assert match, key
    partitions = {time.strftime("%Y-%m-%d/%H", time.gmtime(moment)) for moment in (before, after)}
    assert f"{match[1]}/{match[2]}" in partitions
    assert match[3] == "0" * 16  # the first object holds sequences from 0
    assert stored_lines(aws.audit_bucket, key) == ledger_lines([body for _, body in messages])

    client = s3()
    head = client.head_object(Bucket=aws.audit_bucket, Key=key, ChecksumMode="ENABLED")
    payload = client.get_object(Bucket=aws.audit_bucket, Key=key)["Body"].read()
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(payload).digest()).decode()
    assert head["ContentType"] == "application/x-ndjson"
    assert head["ContentEncoding"] == "gzip"
    version = head["VersionId"]
    assert version
    assert version != "null"
    # The bucket's default retention applied to this version. (moto does not implement
    # GetObjectRetention; HeadObject reports the same two facts.)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    expected = datetime.now(UTC) + timedelta(days=1)
    assert abs(head["ObjectLockRetainUntilDate"] - expected) < timedelta(minutes=5)


def test_the_stored_version_cannot_be_deleted_without_bypass(
    stage: Container, aws: Resources, rsa_key: Any
) -> None:
    app.audit_writer(sqs_event(real_messages(aws, rsa_key)), None)
    [key] = stored_keys(aws.audit_bucket)
    client = s3()
    version = client.head_object(Bucket=aws.audit_bucket, Key=key)["VersionId"]

    with pytest.raises(ClientError) as refused:
        client.delete_object(Bucket=aws.audit_bucket, Key=key, VersionId=version)

    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    still = client.get_object(Bucket=aws.audit_bucket, Key=key, VersionId=version)
    assert gzip.decompress(still["Body"].read()).count(b"\n") == 3


MALFORMED_BODIES = [
    ("not-json", "this is not json"),
    ("json-array", '[{"event_id": "x"}]'),
    ("json-string", '"event_id"'),
    ("object-without-event-id", '{"event_type": "decision"}'),
    ("two-lines", '{"event_id": "a"}\n{"event_id": "b"}'),
    ("empty", ""),
    ("truncated", '{"event_id": "01938a4e-0000-7000-8000-00000000000'),
    ("carries-a-ledger-position", '{"event_id": "a", "ledger": {"sequence": 0}}'),
    ("event-id-not-a-string", '{"event_id": 7}'),
]


def test_malformed_bodies_are_reported_and_not_stored(
    stage: Container, aws: Resources, rsa_key: Any, subtests: pytest.Subtests
) -> None:
    real = real_messages(aws, rsa_key)[:2]
    stored_before: set[str] = set()
    sequence = 0
    for case, body in MALFORMED_BODIES:
        with subtests.test(case):
            valid = [renamed(message) for message in real]  # new events each time
            bad = (f"bad-{case}", body)

            answer = app.audit_writer(sqs_event([valid[0], bad, valid[1]]), None)

            assert failures(answer) == [f"bad-{case}"]
            new = set(stored_keys(aws.audit_bucket)) - stored_before
            stored_before |= new
            [key] = new
            expected = ledger_lines([valid[0][1], valid[1][1]], sequence)
            assert stored_lines(aws.audit_bucket, key) == expected
            sequence += 2

    with subtests.test("only-malformed"):
        batch = [(f"bad-{case}", body) for case, body in MALFORMED_BODIES]

        answer = app.audit_writer(sqs_event(batch), None)

        assert failures(answer) == [message_id for message_id, _ in batch]
        assert set(stored_keys(aws.audit_bucket)) == stored_before

    with subtests.test("empty-batch"):
        assert failures(app.audit_writer({"Records": []}, None)) == []
        assert set(stored_keys(aws.audit_bucket)) == stored_before


def test_every_message_is_reported_failed_when_s3_refuses(
    stage: Container,
    aws: Resources,
    idp: FakeIdp,
    rsa_key: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    messages = real_messages(aws, rsa_key)
    monkeypatch.setenv("GATEHOUSE_AUDIT_BUCKET", "gatehouse-test-no-such-bucket")
    entrypoints.use_container(Container(Settings.from_environment(), fetch_json=idp))
    batch = [*messages, ("bad-one", "not json")]

    answer = app.audit_writer(sqs_event(batch), None)

    assert sorted(failures(answer)) == sorted(message_id for message_id, _ in batch)
    assert stored_keys(aws.audit_bucket) == []


# --- exactly once, whatever crashes and however SQS redelivers -------------------------------


class Crash(BaseException):
    """The writer's process dies here (not an Exception: nothing may catch it)."""


class Calls:
    """Counts AWS calls across clients; crashes after the ``crash_after``-th one.

    ``meanwhile`` runs just before the call named ``before``: another writer's
    turn while this one is paused (a slow PUT, a long GC pause).
    """

    def __init__(
        self,
        crash_after: int | None = None,
        *,
        before: str = "",
        meanwhile: Any = None,
    ) -> None:
        self.count = 0
        self.crash_after = crash_after
        self.names: list[str] = []
        self.before = before
        self.meanwhile = meanwhile


class Faulty:
    """A boto3 client whose calls are counted, one of which the process does not survive."""

    def __init__(self, client: Any, calls: Calls) -> None:
        self._client = client
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._calls.crash_after == 0:
                raise Crash("before the first call")
            if name == self._calls.before and self._calls.meanwhile is not None:
                meanwhile, self._calls.meanwhile = self._calls.meanwhile, None
                meanwhile()
            result = method(*args, **kwargs)
            self._calls.count += 1
            self._calls.names.append(name)
            if self._calls.count == self._calls.crash_after:
                raise Crash(f"after call {self._calls.count} ({name})")
            return result

        return call


def writer(aws: Resources, calls: Calls | None = None, *, stale_after: float = 0.0) -> AuditWriter:
    """The writer; by default one that comes after the queue's visibility timeout, for which
    a reservation left pending is stale (as every redelivery after a crash is)."""
    s3, dynamodb = clients()
    if calls is not None:
        s3, dynamodb = Faulty(s3, calls), Faulty(dynamodb, calls)
    state = LedgerState(dynamodb, aws.state_table)
    return AuditWriter(s3, aws.audit_bucket, state, stale_after_seconds=stale_after)


def events(count: int) -> list[tuple[str, str]]:
    """``count`` queue messages: (message id, one JSON event)."""
    bodies = []
    for n in range(count):
        event = {"schema_version": 1, "event_id": uuid7(), "event_type": "decision", "n": n}
        body = json.dumps(event, separators=(",", ":"))  # as the emitter writes it
        bodies.append((f"m-{n}-{event['event_id'][-6:]}", body))
    return bodies


def deliver(
    aws: Resources,
    messages: list[tuple[str, str]],
    calls: Calls | None = None,
    *,
    stale_after: float = 0.0,
) -> bool:
    """One delivery of ``messages`` to the writer; True when SQS would delete them all."""
    try:
        answer = writer(aws, calls, stale_after=stale_after).handle_sqs_batch(sqs_event(messages))
    except Crash:
        return False
    return answer.failed_message_ids == ()


def assert_ledger_holds_exactly(aws: Resources, messages: list[tuple[str, str]]) -> None:
    """The ledger is sound and holds each of ``messages``' events exactly once."""
    s3, dynamodb = clients()
    state = LedgerState(dynamodb, aws.state_table)
    head = state.head()
    assert head.pending is None
    records = state.objects()
    lines: list[bytes] = []
    for record in records:
        assert record.first_sequence == len(lines), "a gap or an overlap in sequences"
        stored = s3.get_object(Bucket=aws.audit_bucket, Key=record.key, VersionId=record.version_id)
        payload = stored["Body"].read()
        assert hashlib.sha256(payload).hexdigest() == record.sha256
        object_lines = [line for line in gzip.decompress(payload).split(b"\n") if line]
        assert len(object_lines) == record.count
        lines += object_lines
        assert record.tree_size == len(lines)
        assert record.root == root([leaf_hash(line) for line in lines]).hex()
    stored_events = [json.loads(line) for line in lines]
    assert [event["ledger"]["sequence"] for event in stored_events] == list(range(len(lines)))
    assert sorted(event["event_id"] for event in stored_events) == sorted(
        json.loads(body)["event_id"] for _, body in messages
    )
    assert head.next_sequence == len(lines)
    assert head.tree.root() == root([leaf_hash(line) for line in lines])
    assert head.objects == len(records)
    # Anything else under the prefix is a fence: an empty object at an abandoned key.
    recorded = {record.key for record in records}
    listed = s3.list_objects_v2(Bucket=aws.audit_bucket, Prefix=EVENTS_PREFIX)
    for item in listed.get("Contents", []):
        if item["Key"] not in recorded:
            body = s3.get_object(Bucket=aws.audit_bucket, Key=item["Key"])["Body"].read()
            assert body == FENCE, f"{item['Key']} is neither recorded nor a fence"


def calls_of_one_batch(aws: Resources, messages: list[tuple[str, str]]) -> list[str]:
    counted = Calls()
    assert deliver(aws, messages, counted)
    return counted.names


def test_one_batch_makes_these_calls(aws: Resources) -> None:
    # The steps the crash test walks through, in order.
    assert calls_of_one_batch(aws, events(3)) == [
        "get_item",  # read the head
        "batch_get_item",  # which events are stored already
        "update_item",  # reserve sequences
        "batch_write_item",  # index the events under the reservation
        "put_object",  # the object, if its key is new
        "transact_write_items",  # commit: head and object record
    ]


@pytest.mark.parametrize("crash_after", range(7))
def test_a_crash_after_any_step_loses_and_duplicates_nothing(
    aws: Resources, crash_after: int
) -> None:
    earlier, batch, later = events(4), events(5), events(2)
    assert deliver(aws, earlier)

    deliver(aws, batch, Calls(crash_after))  # the process dies mid-batch (or right after)
    assert deliver(aws, batch)  # SQS delivers the batch again after its visibility timeout
    assert deliver(aws, later)

    assert_ledger_holds_exactly(aws, earlier + batch + later)


@pytest.mark.parametrize("first_crash", range(1, 7))
@pytest.mark.parametrize("second_crash", [1, 2, 3, 4])
def test_a_crash_while_recovering_from_a_crash_loses_and_duplicates_nothing(
    aws: Resources, first_crash: int, second_crash: int
) -> None:
    batch, later = events(6), events(3)

    deliver(aws, batch, Calls(first_crash))
    deliver(aws, batch, Calls(second_crash))  # dies again, possibly mid-recovery
    assert deliver(aws, batch)
    assert deliver(aws, later)

    assert_ledger_holds_exactly(aws, batch + later)


def test_a_batch_delivered_again_after_it_was_stored_is_acknowledged_and_not_stored_twice(
    aws: Resources,
) -> None:
    batch = events(5)
    assert deliver(aws, batch)  # stored; SQS never got to delete the messages

    answer = writer(aws).handle_sqs_batch(sqs_event(batch))

    assert answer.failed_message_ids == ()
    assert answer.stored is None
    assert answer.duplicates == 5
    assert_ledger_holds_exactly(aws, batch)


def test_repeats_within_a_batch_and_across_batches_are_stored_once(aws: Resources) -> None:
    first, second = events(3), events(3)
    mixed = [first[0], *second, first[1], second[0], (second[2][0] + "-again", second[2][1])]
    assert deliver(aws, first)

    answer = writer(aws).handle_sqs_batch(sqs_event(mixed))

    assert answer.failed_message_ids == ()
    assert answer.stored is not None
    assert answer.stored.event_count == 3
    assert answer.duplicates == len(mixed) - 3
    assert_ledger_holds_exactly(aws, first + second)


def test_a_writer_that_lost_the_head_commits_nothing(aws: Resources) -> None:
    # Two writers read the same head; the second to reserve must not write over the first.
    _, dynamodb = clients()
    state = LedgerState(dynamodb, aws.state_table)
    seen = state.head()
    state.reserve(seen, 2, "k1")

    with pytest.raises(LedgerBusy):
        state.reserve(seen, 3, "k2")


def test_an_object_written_before_a_crash_is_committed_by_the_next_writer(
    aws: Resources,
) -> None:
    batch = events(4)
    # Dies right after the PUT (call 5): the object is there, the head does not know it.
    deliver(aws, batch, Calls(5))
    s3, dynamodb = clients()
    pending = LedgerState(dynamodb, aws.state_table).head().pending
    assert pending is not None
    landed = s3.get_object(Bucket=aws.audit_bucket, Key=pending.key)["Body"].read()
    assert landed != FENCE

    assert deliver(aws, events(1))  # any next batch settles the reservation first

    [first, _] = LedgerState(dynamodb, aws.state_table).objects()
    assert (first.key, first.count) == (pending.key, 4)
    assert deliver(aws, batch)  # the redelivery finds them stored
    assert LedgerState(dynamodb, aws.state_table).head().next_sequence == 5


def test_a_reservation_whose_object_never_landed_is_fenced_and_abandoned(
    aws: Resources,
) -> None:
    batch = events(4)
    deliver(aws, batch, Calls(4))  # dies after indexing, before the PUT
    s3, dynamodb = clients()
    pending = LedgerState(dynamodb, aws.state_table).head().pending
    assert pending is not None

    assert deliver(aws, batch)

    fence = s3.get_object(Bucket=aws.audit_bucket, Key=pending.key)["Body"].read()
    assert fence == FENCE
    # A writer still alive behind the crash could not land its object there any more.
    with pytest.raises(Exception, match="PreconditionFailed"):
        s3.put_object(
            Bucket=aws.audit_bucket,
            Key=pending.key,
            Body=b"late",
            ChecksumAlgorithm="SHA256",
            IfNoneMatch="*",
        )
    assert_ledger_holds_exactly(aws, batch)


def test_a_writer_paused_before_its_put_cannot_land_behind_a_recovery(aws: Resources) -> None:
    # Writer A reserves, then stalls before its PUT; writer B takes the reservation for a
    # crash, fences the key and abandons it. A's late PUT must not land an object that no
    # ledger record names (its events would then be stored twice).
    batch, other = events(3), events(2)
    stalled = Calls(before="put_object", meanwhile=lambda: deliver(aws, other))

    assert not deliver(aws, batch, stalled)  # A's PUT is refused: all its messages fail

    assert deliver(aws, batch)
    assert_ledger_holds_exactly(aws, other + batch)


def test_a_writer_overtaken_by_another_retries_at_once_instead_of_failing_the_batch(
    aws: Resources,
) -> None:
    # Between this writer's reading the head and reserving, another commits a batch.
    mine, theirs = events(4), events(3)
    overtaken = Calls(before="update_item", meanwhile=lambda: deliver(aws, theirs))

    assert deliver(aws, mine, overtaken)  # no message left to SQS's visibility timeout

    # The head read twice: the lost reservation (refused, so not counted), then the won one.
    assert overtaken.names.count("get_item") == 2
    assert_ledger_holds_exactly(aws, theirs + mine)


def test_a_writer_at_work_is_waited_for_not_fenced(aws: Resources) -> None:
    # Writer A stalls before its PUT, and B arrives within the staleness window: B does
    # not fence A's young reservation. (Here A cannot move while B waits, so B gives its
    # batch back to SQS; in production A finishes in milliseconds and B's retry succeeds.)
    batch, other = events(3), events(2)
    b_stored: list[bool] = []
    stalled = Calls(
        before="put_object",
        meanwhile=lambda: b_stored.append(deliver(aws, other, stale_after=50.0)),
    )

    assert deliver(aws, batch, stalled)  # A's object lands and is committed

    assert b_stored == [False]  # B left its messages to SQS
    assert deliver(aws, other)  # and stores them on the next delivery
    assert_ledger_holds_exactly(aws, batch + other)


# --- large batches: index requests in parallel ------------------------------------------------


def test_a_thousand_events_are_indexed_in_parallel_and_stored_once(aws: Resources) -> None:
    messages = events(1000)
    counted = Calls()

    assert deliver(aws, messages, counted)
    assert counted.names.count("batch_write_item") == 40  # 25 items a request
    assert counted.names.count("batch_get_item") == 10  # 100 keys a request
    assert deliver(aws, messages)  # SQS delivers it all again: nothing new is stored
    assert_ledger_holds_exactly(aws, messages)
    state = LedgerState(clients()[1], aws.state_table)
    assert [record.count for record in state.objects()] == [1000]


@pytest.mark.parametrize("crash_after", [5, 20, 43])
def test_a_crash_among_parallel_index_requests_loses_and_duplicates_nothing(
    aws: Resources, crash_after: int
) -> None:
    # Calls 4..43 are the 40 index requests; the others keep running when one dies.
    messages = events(1000)

    assert not deliver(aws, messages, Calls(crash_after))
    assert deliver(aws, messages)
    assert_ledger_holds_exactly(aws, messages)


class Throttled:
    """DynamoDB under throttling: each batch write stores only its first item, the rest
    comes back unprocessed (``forever``: nothing is ever processed)."""

    def __init__(self, client: Any, *, forever: bool = False) -> None:
        self._client = client
        self._forever = forever
        self.batch_writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.batch_writes += 1
        ((table, requests),) = RequestItems.items()
        if self._forever:
            return {"UnprocessedItems": RequestItems}
        self._client.batch_write_item(RequestItems={table: requests[:1]})
        return {"UnprocessedItems": {table: requests[1:]} if requests[1:] else {}}


def test_items_left_unprocessed_are_retried_until_indexed(aws: Resources) -> None:
    s3, dynamodb = clients()
    throttled = Throttled(dynamodb)
    state = LedgerState(throttled, aws.state_table)
    messages = events(4)

    answer = AuditWriter(s3, aws.audit_bucket, state).handle_sqs_batch(sqs_event(messages))

    assert answer.failed_message_ids == ()
    assert throttled.batch_writes == 4  # one item a try
    assert_ledger_holds_exactly(aws, messages)


def test_a_table_that_never_processes_the_index_fails_the_batch_for_a_later_delivery(
    aws: Resources,
) -> None:
    from chalicelib.ledger.state import _UNPROCESSED_ATTEMPTS

    s3, dynamodb = clients()
    throttled = Throttled(dynamodb, forever=True)
    state = LedgerState(throttled, aws.state_table)
    messages = events(3)

    answer = AuditWriter(s3, aws.audit_bucket, state).handle_sqs_batch(sqs_event(messages))

    assert set(answer.failed_message_ids) == {message_id for message_id, _ in messages}
    assert throttled.batch_writes == _UNPROCESSED_ATTEMPTS  # bounded, then given up
    assert deliver(aws, messages)  # the next delivery, with DynamoDB healthy again
    assert_ledger_holds_exactly(aws, messages)
