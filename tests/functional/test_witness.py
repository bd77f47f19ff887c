"""Witnesses of the ledger: cosigning what extends, refusing what contradicts, and verify after.

The ledger is written by the real writer and digested by the real digest
writer (see ``test_ledger_verify``), signed by the stage's KMS key (moto).
Insiders then store digests the stage's key signed over another history: a
fork of the same size, a smaller tree, a rewritten middle, a split view in a
second bucket. Each test asserts the witness's verdicts, what it published
under ``audit/v1/witness/<key id>/``, what it remembers, and what verify
makes of it all.
"""

from __future__ import annotations

import base64
import copy
import json
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from chalicelib.aws.signers import LocalSigner
from chalicelib.ledger.digest import sign_checkpoint
from chalicelib.ledger.layout import (
    WITNESS_PREFIX,
    canonical,
    cosigned_key,
    digest_key,
    refusal_key,
)
from chalicelib.ledger.merkle import CompactRange, consistency_proof, leaf_hash
from chalicelib.ledger.notes import CheckpointBody, LogKey, SignedNote, WitnessKey, WitnessSigner
from chalicelib.ledger.verify import LedgerVerifier
from chalicelib.witness import (
    WitnessSettingsError,
    WitnessStateConflict,
    WitnessUnavailable,
)
from chalicelib.witness.settings import PREFIX, WitnessSettings, load_log_key, load_witness_key
from chalicelib.witness.state import Cosigned, FileWitnessState, TableWitnessState
from chalicelib.witness.witness import SnsAlerts, Verdict, WatchedLog, Witness
from tests.functional.test_ledger_verify import (
    ORIGIN,
    Ledger,
    digest_keys,
    rewrite_lines,
    s3,
    stored_lines,
    write_format_1_digest,
)

if TYPE_CHECKING:
    from chalicelib.ledger.findings import Report
    from gatehouse.dev.bootstrap import Resources

REGION = "us-east-1"
FORK_BUCKET = "gatehouse-test-fork"
STATE_TABLE = "gatehouse-witness-state"
WITNESS_TIME = 1_900_000_000
SUBJECT = "Gatehouse witness refused a checkpoint"


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


class Watcher:
    """A witness of the test ledger: its key, its store, what it logged."""

    def __init__(
        self,
        ledger: Ledger,
        state: Any,
        *,
        name: str = "witness.example.com/a",
        bucket: str | None = None,
        publish_bucket: str | None = None,
        alerts: Any = None,
    ) -> None:
        self.ledger = ledger
        self.signer = WitnessSigner(name, Ed25519PrivateKey.generate())
        self.key = WitnessKey.from_vkey(self.signer.key.vkey())
        self.kid = self.signer.key.key_id.hex()
        self.state = state
        self.lines: list[str] = []
        self.watched = WatchedLog(
            ORIGIN, ledger.public_key, bucket or ledger.aws.audit_bucket, publish_bucket
        )
        self.witness = Witness(
            self.signer,
            state,
            s3(),
            [self.watched],
            alerts=alerts,
            clock=lambda: WITNESS_TIME,
            log=self.lines.append,
        )

    def run(self) -> list[tuple[str, str, int]]:
        """(verdict, digest key, tree size) of each outcome of one run."""
        return [
            (str(outcome.verdict), outcome.digest_key, outcome.tree_size)
            for outcome in self.witness.run().outcomes
        ]

    def last(self) -> Cosigned | None:
        return self.state.get(ORIGIN)


def table_state() -> TableWitnessState:
    dynamodb = client("dynamodb")
    dynamodb.create_table(
        TableName=STATE_TABLE,
        AttributeDefinitions=[{"AttributeName": "origin", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "origin", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return TableWitnessState(dynamodb, STATE_TABLE)


@pytest.fixture
def ledger(aws: Resources) -> Ledger:
    """Two digests over two objects (3 then 5 leaves)."""
    built = Ledger(aws)
    built.write(3)
    built.digest()
    built.write(2)
    built.digest()
    return built


@pytest.fixture
def alerts(aws: Resources) -> tuple[SnsAlerts, str]:
    """An SNS topic whose messages land on an SQS queue; the sink and the queue's URL."""
    sns, sqs = client("sns"), client("sqs")
    topic = sns.create_topic(Name="witness-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="witness-alerts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return SnsAlerts(sns, topic), queue


def received(queue: str) -> list[dict[str, Any]]:
    """The SNS envelopes on ``queue`` (received and deleted)."""
    sqs, found = client("sqs"), []
    while True:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return found
        for message in messages:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])


def document_at(ledger: Ledger, key: str, bucket: str | None = None) -> dict[str, Any]:
    body = s3().get_object(Bucket=bucket or ledger.aws.audit_bucket, Key=key)["Body"].read()
    return json.loads(body)  # type: ignore[no-any-return]


def store_digest(
    ledger: Ledger,
    digest: dict[str, Any],
    *,
    at: float,
    bucket: str | None = None,
    signer: Any = None,
    origin: str = ORIGIN,
) -> str:
    """Sign ``digest`` as the stage's key holder would (or as ``signer``) and store it."""
    signer = signer or ledger.signer
    log_key = LogKey(origin, load_log_key(json.dumps(signer.jwk())))
    note = sign_checkpoint(digest, log_key, signer)
    key = digest_key(at, digest["tree"]["size"])
    s3().put_object(
        Bucket=bucket or ledger.aws.audit_bucket,
        Key=key,
        Body=canonical({"digest": digest, "checkpoint": note.serialize()}),
    )
    return key


def tree_of(leaves: list[bytes]) -> CompactRange:
    tree = CompactRange()
    for leaf in leaves:
        tree.append(leaf)
    return tree


def with_tree(digest: dict[str, Any], leaves: list[bytes], size: int) -> dict[str, Any]:
    """``digest`` re-rooted on the first ``size`` of ``leaves``."""
    changed = copy.deepcopy(digest)
    tree = tree_of(leaves[:size])
    changed["tree"].update(size=size, root=tree.root().hex(), frontier=tree.to_json())
    return changed


def published(bucket: str) -> dict[str, bytes]:
    listed = s3().list_objects_v2(Bucket=bucket, Prefix=WITNESS_PREFIX).get("Contents", [])
    return {
        item["Key"]: s3().get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        for item in listed
    }


def verify(ledger: Ledger, witnesses: list[WitnessKey], required: int = 0) -> Report:
    verifier = LedgerVerifier(s3(), ledger.aws.audit_bucket, ledger.public_key, jobs=1)
    return verifier.verify(
        anchor_versions=ledger.anchor.versions(),
        witnesses=witnesses,
        require_witnesses=required,
    )


def kinds(report: Report) -> set[str]:
    return {finding.kind for finding in report.findings}


def the_refusal(watcher: Watcher, key: str, bucket: str | None = None) -> dict[str, Any]:
    """The refusal ``watcher`` published of ``key``, its signature checked."""
    stored = json.loads(
        s3()
        .get_object(
            Bucket=bucket or watcher.ledger.aws.audit_bucket, Key=refusal_key(watcher.kid, key)
        )["Body"]
        .read()
    )
    assert set(stored) == {"refusal", "signature"}
    signature = base64.b64decode(stored["signature"], validate=True)
    assert watcher.key.signed_record(canonical(stored["refusal"]), signature)
    return stored["refusal"]  # type: ignore[no-any-return]


# --- cosigning -----------------------------------------------------------------------------------


def test_the_first_run_cosigns_every_checkpoint_in_order_and_later_runs_only_new_ones(
    ledger: Ledger,
) -> None:
    first, second = digest_keys(ledger)
    watcher = Watcher(ledger, table_state())

    assert watcher.run() == [("cosigned", first, 3), ("cosigned", second, 5)]
    assert watcher.lines[0].startswith(f"witness {watcher.signer.name}: cosigned {ORIGIN} size 3")
    assert "the first checkpoint this witness sees" in watcher.lines[0]

    stored = published(ledger.aws.audit_bucket)
    assert set(stored) == {cosigned_key(watcher.kid, first), cosigned_key(watcher.kid, second)}
    assert all(key.startswith(f"audit/v1/witness/{watcher.kid}/cosigned/") for key in stored)
    log_key = LogKey(ORIGIN, ledger.public_key)
    for key in (first, second):
        checkpoint = SignedNote.parse(document_at(ledger, key)["checkpoint"])
        note = SignedNote.parse(stored[cosigned_key(watcher.kid, key)].decode())
        assert note.text == checkpoint.text
        assert [line.name for line in note.signatures] == [ORIGIN, watcher.signer.name]
        assert log_key.signed_by(note) == checkpoint.signatures[0]
        cosignature = watcher.key.cosigned(note)
        assert cosignature is not None
        assert cosignature.timestamp == WITNESS_TIME
    last = watcher.last()
    assert last is not None
    assert (last.tree_size, last.digest_key, last.at) == (5, second, WITNESS_TIME)
    assert last.root == document_at(ledger, second)["digest"]["tree"]["root"]
    assert last.note == stored[cosigned_key(watcher.kid, second)].decode()

    assert watcher.run() == []  # nothing new
    assert watcher.last() == last

    ledger.write(4)
    third = ledger.digest()
    carried = document_at(ledger, third)["digest"]["consistency"]
    assert carried["from_size"] == 5
    assert carried["path"]

    assert watcher.run() == [("cosigned", third, 9)]
    assert watcher.last().tree_size == 9  # type: ignore[union-attr]

    report = verify(ledger, [watcher.key], 1)
    assert report.ok, report.findings
    assert report.cosigned_by == [watcher.signer.name]
    assert report.cosigned_size == 9

    absent = WitnessKey.from_vkey(
        WitnessSigner("witness.example.com/b", Ed25519PrivateKey.generate()).key.vkey()
    )
    short = verify(ledger, [watcher.key, absent], 2)
    assert kinds(short) == {"missing_cosignatures"}
    assert short.findings[0].where == third
    assert "cosigned by 1 of the 2" in short.findings[0].detail
    assert short.cosigned_by == [watcher.signer.name]
    # A key no one trusts cosigns nothing.
    assert verify(ledger, [absent], 1).cosigned_by == []


def test_an_empty_period_is_cosigned_as_the_same_tree(ledger: Ledger) -> None:
    watcher = Watcher(ledger, table_state())
    watcher.run()
    empty = ledger.digest()

    assert document_at(ledger, empty)["digest"]["consistency"] == {"from_size": 5, "path": []}
    assert watcher.run() == [("cosigned", empty, 5)]
    assert watcher.last().digest_key == empty  # type: ignore[union-attr]


def test_a_witness_that_cosigned_the_empty_tree_cosigns_its_growth(aws: Resources) -> None:
    ledger = Ledger(aws)
    empty = ledger.digest()  # a fresh stage's first scheduled digest: nothing happened yet
    watcher = Watcher(ledger, table_state())
    assert watcher.run() == [("cosigned", empty, 0)]

    ledger.write(3)
    grown = ledger.digest()

    assert watcher.run() == [("cosigned", grown, 3)]


def test_format_1_digests_are_passed_over(aws: Resources) -> None:
    ledger = Ledger(aws)
    ledger.write(2)
    write_format_1_digest(ledger)
    ledger.write(3)
    write_format_1_digest(ledger)
    ledger.write(1)
    current = ledger.digest()
    watcher = Watcher(ledger, table_state())

    assert watcher.run() == [("cosigned", current, 6)]
    assert set(published(aws.audit_bucket)) == {cosigned_key(watcher.kid, current)}
    assert watcher.run() == []


# --- refusals ------------------------------------------------------------------------------------


def test_a_fork_is_refused_signed_published_alerted_once_and_the_state_kept(
    ledger: Ledger, alerts: tuple[SnsAlerts, str]
) -> None:
    sink, queue = alerts
    watcher = Watcher(ledger, table_state(), alerts=sink)
    first, second = digest_keys(ledger)
    watcher.run()
    before = watcher.last()
    assert before is not None
    # The insider holds the stage's key: another tree of the same 5 leaves, correctly signed.
    forked = copy.deepcopy(document_at(ledger, second)["digest"])
    forked["tree"]["root"] = "ab" * 32
    fork = store_digest(ledger, forked, at=ledger.clock + 60)
    fork_note = document_at(ledger, fork)["checkpoint"]

    assert watcher.run() == [("fork", fork, 5)]

    record = the_refusal(watcher, fork)
    assert record == {
        "witness": watcher.signer.name,
        "key_id": watcher.kid,
        "origin": ORIGIN,
        "digest_key": fork,
        "verdict": "fork",
        "detail": record["detail"],
        "at": "2030-03-17T17:46:40Z",
        "seen": fork_note,
        "cosigned": {"tree_size": 5, "root": before.root, "note": before.note},
    }
    assert record["detail"].startswith("the tree of 5 with root abababababababab...")
    assert second in record["detail"]
    assert set(published(ledger.aws.audit_bucket)) == {
        cosigned_key(watcher.kid, first),
        cosigned_key(watcher.kid, second),
        refusal_key(watcher.kid, fork),
    }
    assert any(
        line.startswith(f"ERROR witness {watcher.signer.name} refused {fork}: fork")
        for line in watcher.lines
    )
    (envelope,) = received(queue)
    assert envelope["Subject"] == SUBJECT
    alert = json.loads(envelope["Message"])
    assert alert == {
        "alert": "witness_refused",
        "severity": "high",
        **record,
        "seen": None,
    }
    assert watcher.last() == before

    # Judged again on the next run (the state did not move), not alerted again.
    stored = published(ledger.aws.audit_bucket)
    assert watcher.run() == [("fork", fork, 5)]
    assert received(queue) == []
    assert published(ledger.aws.audit_bucket) == stored
    assert watcher.last() == before

    trusted = verify(ledger, [watcher.key])
    refused = [f for f in trusted.findings if f.kind == "witness_refused"]
    assert [f.where for f in refused] == [fork]
    assert f"witness {watcher.signer.name} refused it" in refused[0].detail
    assert ": fork: " in refused[0].detail
    assert trusted.untrusted_refusals == 0
    untrusted = verify(ledger, [])
    assert "witness_refused" not in kinds(untrusted)
    assert untrusted.untrusted_refusals == 1

    # The honest log carries on from what the witness cosigned.
    ledger.write(2)
    honest = ledger.digest()
    assert watcher.run() == [("fork", fork, 5), ("cosigned", honest, 7)]
    assert received(queue) == []
    assert watcher.last().tree_size == 7  # type: ignore[union-attr]


def test_a_smaller_tree_signed_later_is_a_rollback(ledger: Ledger) -> None:
    watcher = Watcher(ledger, table_state())
    first, second = digest_keys(ledger)
    watcher.run()
    before = watcher.last()
    older = document_at(ledger, first)
    rollback = digest_key(ledger.clock + 60, 3)
    s3().put_object(Bucket=ledger.aws.audit_bucket, Key=rollback, Body=canonical(older))

    assert watcher.run() == [("rollback", rollback, 3)]
    record = the_refusal(watcher, rollback)
    assert record["verdict"] == "rollback"
    assert record["detail"] == (
        f"a tree of 3 signed after the tree of 5 this witness cosigned ({second})"
    )
    assert record["seen"] == older["checkpoint"]
    assert watcher.last() == before
    assert set(published(ledger.aws.audit_bucket)) == {
        cosigned_key(watcher.kid, first),
        cosigned_key(watcher.kid, second),
        refusal_key(watcher.kid, rollback),
    }


def rewritten_leaves(ledger: Ledger, *, in_place: bool = True) -> list[bytes]:
    """The ledger's leaves with an event line of its first object rewritten (in the bucket)."""
    if in_place:
        rewrite_lines(
            ledger, 0, lambda lines: [lines[0], lines[1].replace('"n":1', '"n":99'), *lines[2:]]
        )
        lines = stored_lines(ledger)
    else:
        lines = stored_lines(ledger)
        lines[1] = lines[1].replace(b'"n":1', b'"n":99')
    assert b'"n":99' in lines[1]
    return [leaf_hash(line) for line in lines]


@pytest.mark.parametrize(
    ("carried", "detail"),
    [
        pytest.param(
            lambda leaves: {
                "from_size": 5,
                "path": [n.hex() for n in consistency_proof(leaves, 5)],
            },
            "its proof does not lead from the tree of 5 this witness cosigned",
            id="a-proof-from-5-that-cannot-hold",
        ),
        pytest.param(
            lambda leaves: None,
            "it carries no proof from the tree of 5 this witness cosigned "
            "(its proof starts at None)",
            id="no-proof",
        ),
        pytest.param(
            lambda leaves: {
                "from_size": 3,
                "path": [n.hex() for n in consistency_proof(leaves, 3)],
            },
            "it carries no proof from the tree of 5 this witness cosigned (its proof starts at 3)",
            id="a-proof-from-another-size",
        ),
    ],
)
def test_a_rewritten_middle_is_inconsistent(ledger: Ledger, carried: Any, detail: str) -> None:
    watcher = Watcher(ledger, table_state())
    watcher.run()
    before = watcher.last()
    ledger.write(3)
    leaves = rewritten_leaves(ledger)
    assert len(leaves) == 8
    newest = document_at(ledger, digest_keys(ledger)[-1])["digest"]
    forged = with_tree(newest, leaves, 8)
    forged["consistency"] = carried(leaves)
    key = store_digest(ledger, forged, at=ledger.clock + 3600)

    assert watcher.run() == [("inconsistent", key, 8)]
    record = the_refusal(watcher, key)
    assert record["verdict"] == "inconsistent"
    assert record["detail"].startswith(detail)
    assert watcher.last() == before
    assert "witness_refused" in kinds(verify(ledger, [watcher.key]))


def stranger_signed(ledger: Ledger, digest: dict[str, Any], at: float) -> str:
    stranger = LocalSigner(ec.generate_private_key(ec.SECP256R1()))
    return store_digest(ledger, digest, at=at, signer=stranger)


def unbound(ledger: Ledger, digest: dict[str, Any], at: float) -> str:
    key = store_digest(ledger, digest, at=at)
    document = document_at(ledger, key)
    document["digest"]["objects"] = []  # the note binds the digest as it was signed
    s3().put_object(Bucket=ledger.aws.audit_bucket, Key=key, Body=canonical(document))
    return key


def garbage(ledger: Ledger, digest: dict[str, Any], at: float) -> str:
    key = digest_key(at, 6)
    s3().put_object(Bucket=ledger.aws.audit_bucket, Key=key, Body=b"{not json")
    return key


def no_checkpoint(ledger: Ledger, digest: dict[str, Any], at: float) -> str:
    key = digest_key(at, 6)
    s3().put_object(Bucket=ledger.aws.audit_bucket, Key=key, Body=canonical({"digest": digest}))
    return key


def bad_note(ledger: Ledger, digest: dict[str, Any], at: float) -> str:
    key = store_digest(ledger, digest, at=at)
    document = document_at(ledger, key)
    document["checkpoint"] = document["checkpoint"].replace("\u2014 ", "- ")
    s3().put_object(Bucket=ledger.aws.audit_bucket, Key=key, Body=canonical(document))
    return key


def other_origin(ledger: Ledger, digest: dict[str, Any], at: float) -> str:
    changed = {**digest, "origin": "example.com/other"}
    return store_digest(ledger, changed, at=at, origin="example.com/other")


@pytest.mark.parametrize(
    ("forge", "detail"),
    [
        pytest.param(stranger_signed, "not signed by the log's key", id="another-key"),
        pytest.param(unbound, "not signed by the log's key, or not binding", id="not-binding"),
        pytest.param(garbage, "not a digest with a checkpoint", id="garbage-json"),
        pytest.param(no_checkpoint, "no checkpoint", id="neither-checkpoint-nor-signature"),
        pytest.param(bad_note, "not a digest with a checkpoint", id="malformed-note"),
        pytest.param(other_origin, "its origin is 'example.com/other'", id="another-origin"),
    ],
)
def test_a_checkpoint_not_the_logs_is_a_bad_checkpoint(
    ledger: Ledger, forge: Any, detail: str
) -> None:
    watcher = Watcher(ledger, table_state())
    watcher.run()
    before = watcher.last()
    ledger.write(1)
    newest = document_at(ledger, digest_keys(ledger)[-1])["digest"]
    leaves = [leaf_hash(line) for line in stored_lines(ledger)]
    grown = with_tree(newest, leaves, 6)
    grown["consistency"] = {"from_size": 5, "path": [n.hex() for n in consistency_proof(leaves, 5)]}
    key = forge(ledger, grown, ledger.clock + 60)

    outcomes = watcher.witness.run().outcomes
    assert [(o.verdict, o.digest_key, o.tree_size) for o in outcomes] == [
        (Verdict.BAD_CHECKPOINT, key, -1)
    ]
    assert detail in outcomes[0].detail
    record = the_refusal(watcher, key)
    assert (record["verdict"], record["seen"]) == ("bad_checkpoint", None)
    assert record["cosigned"]["tree_size"] == 5
    assert watcher.last() == before
    assert set(published(ledger.aws.audit_bucket)) == {
        *(cosigned_key(watcher.kid, k) for k in digest_keys(ledger) if k != key),
        refusal_key(watcher.kid, key),
    }


def test_a_correct_digest_signed_by_the_stage_after_a_refusal_is_cosigned(ledger: Ledger) -> None:
    # The control for the table above: the same grown digest, honestly signed, is cosigned.
    watcher = Watcher(ledger, table_state())
    watcher.run()
    ledger.write(1)
    newest = document_at(ledger, digest_keys(ledger)[-1])["digest"]
    leaves = [leaf_hash(line) for line in stored_lines(ledger)]
    grown = with_tree(newest, leaves, 6)
    grown["consistency"] = {"from_size": 5, "path": [n.hex() for n in consistency_proof(leaves, 5)]}
    key = store_digest(ledger, grown, at=ledger.clock + 60)

    assert watcher.run() == [("cosigned", key, 6)]


# --- a split view ------------------------------------------------------------------------------


def test_a_split_view_is_a_forked_checkpoint_and_too_few_cosignatures(
    ledger: Ledger, tmp_path: Path
) -> None:
    # The insider serves witness B a second bucket holding another history, every digest
    # re-signed with the stage's key; B cosigns it and publishes into the real bucket.
    s3().create_bucket(Bucket=FORK_BUCKET)
    leaves = rewritten_leaves(ledger, in_place=False)
    keys = digest_keys(ledger)
    previous_size = None
    for key in keys:
        digest = document_at(ledger, key)["digest"]
        size = digest["tree"]["size"]
        forked = with_tree(digest, leaves, size)
        if previous_size is not None:
            forked["consistency"] = {
                "from_size": previous_size,
                "path": [n.hex() for n in consistency_proof(leaves[:size], previous_size)],
            }
        note = sign_checkpoint(forked, LogKey(ORIGIN, ledger.public_key), ledger.signer)
        s3().put_object(
            Bucket=FORK_BUCKET,
            Key=key,
            Body=canonical({"digest": forked, "checkpoint": note.serialize()}),
        )
        previous_size = size
    a = Watcher(ledger, table_state(), name="witness.example.com/a")
    b = Watcher(
        ledger,
        FileWitnessState(tmp_path / "b.json"),
        name="witness.example.com/b",
        bucket=FORK_BUCKET,
        publish_bucket=ledger.aws.audit_bucket,
    )
    assert a.run() == [("cosigned", keys[0], 3), ("cosigned", keys[1], 5)]
    assert b.run() == [("cosigned", keys[0], 3), ("cosigned", keys[1], 5)]
    assert published(FORK_BUCKET) == {}
    assert {cosigned_key(b.kid, key) for key in keys} <= set(published(ledger.aws.audit_bucket))

    report = verify(ledger, [a.key])
    assert kinds(report) == {"forked_checkpoint"}
    assert sorted(f.where for f in report.findings) == sorted(cosigned_key(b.kid, k) for k in keys)
    assert "signed by the stage's key" in report.findings[0].detail
    assert report.cosigned_by == [a.signer.name]

    both = verify(ledger, [a.key, b.key], 2)
    assert kinds(both) == {"forked_checkpoint", "missing_cosignatures"}
    assert both.cosigned_by == [a.signer.name]


def test_a_published_note_with_an_origin_no_key_can_have_does_not_stop_verify(
    ledger: Ledger,
) -> None:
    root = base64.b64encode(b"\0" * 32).decode()
    note = f"evil origin\n5\n{root}\n\n\u2014 evil AAAAAAAAAA==\n"
    assert CheckpointBody.parse(SignedNote.parse(note).text).origin == "evil origin"
    s3().put_object(
        Bucket=ledger.aws.audit_bucket,
        Key=f"{WITNESS_PREFIX}00000000/cosigned/dt=2027-01-01/hour=00/x.note",
        Body=note.encode(),
    )

    report = verify(ledger, [])

    assert report.ok, report.findings


class FlakyAlerts:
    """An alert sink that is down for its first ``failures`` alerts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[dict[str, Any]] = []

    def raise_alert(self, alert: dict[str, Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise WitnessUnavailable("cannot publish the alert: topic down")
        self.sent.append(alert)


def test_an_alert_that_could_not_be_sent_is_sent_on_the_next_run(ledger: Ledger) -> None:
    sink = FlakyAlerts(failures=1)
    watcher = Watcher(ledger, table_state(), alerts=sink)
    watcher.run()
    rollback = digest_key(ledger.clock + 60, 3)
    s3().put_object(
        Bucket=ledger.aws.audit_bucket,
        Key=rollback,
        Body=canonical(document_at(ledger, digest_keys(ledger)[0])),
    )
    with pytest.raises(WitnessUnavailable, match="topic down"):
        watcher.run()

    assert watcher.run() == [("rollback", rollback, 3)]
    assert [alert["digest_key"] for alert in sink.sent] == [rollback]


# --- the witness's memory ----------------------------------------------------------------------


def cosigned(size: int) -> Cosigned:
    return Cosigned(
        size, f"{size:02x}" * 32, f"audit/v1/digests/k-{size}.json", f"note {size}\n", size
    )


def round_trip(state: Any) -> None:
    assert state.get(ORIGIN) is None
    state.put(ORIGIN, cosigned(3), None)
    assert state.get(ORIGIN) == cosigned(3)
    assert state.get("example.com/other") is None
    state.put(ORIGIN, cosigned(5), cosigned(3))
    assert state.get(ORIGIN) == cosigned(5)
    with pytest.raises(WitnessStateConflict, match=ORIGIN):
        state.put(ORIGIN, cosigned(7), cosigned(3))  # another run moved it meanwhile
    with pytest.raises(WitnessStateConflict):
        state.put(ORIGIN, cosigned(7), None)
    assert state.get(ORIGIN) == cosigned(5)
    state.put("example.com/other", cosigned(1), None)
    assert (state.get(ORIGIN), state.get("example.com/other")) == (cosigned(5), cosigned(1))


def test_the_table_state_moves_only_from_what_it_holds(aws: Resources) -> None:
    state = table_state()
    round_trip(state)
    item = client("dynamodb").get_item(TableName=STATE_TABLE, Key={"origin": {"S": ORIGIN}})["Item"]
    assert item["tree_size"] == {"N": "5"}

    client("dynamodb").put_item(
        TableName=STATE_TABLE, Item={"origin": {"S": ORIGIN}, "cosigned": {"S": "{}"}}
    )
    with pytest.raises(WitnessUnavailable, match="malformed item"):
        state.get(ORIGIN)
    missing = TableWitnessState(client("dynamodb"), "no-such-table")
    with pytest.raises(WitnessUnavailable, match="cannot read"):
        missing.get(ORIGIN)
    with pytest.raises(WitnessUnavailable, match="cannot write"):
        missing.put(ORIGIN, cosigned(3), None)


def test_the_file_state_moves_only_from_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "witness.json"
    round_trip(FileWitnessState(path))
    assert json.loads(path.read_text())[ORIGIN]["tree_size"] == 5
    assert not path.with_suffix(".tmp").exists()
    assert FileWitnessState(path).get(ORIGIN) == cosigned(5)  # another process reads it

    for corrupt, problem in [
        ("{not json", "cannot read"),
        ("[]", "not a witness state file"),
        (json.dumps({ORIGIN: {"tree_size": 1}}), "malformed entry"),
    ]:
        path.write_text(corrupt)
        with pytest.raises(WitnessUnavailable, match=problem):
            FileWitnessState(path).get(ORIGIN)
    path.write_text("{not json")
    with pytest.raises(WitnessUnavailable, match="cannot read"):
        FileWitnessState(path).put(ORIGIN, cosigned(7), None)
    assert path.read_text() == "{not json"


def test_a_witness_whose_store_cannot_be_read_stops_and_publishes_nothing(
    ledger: Ledger, tmp_path: Path
) -> None:
    path = tmp_path / "witness.json"
    path.write_text("{not json")
    watcher = Watcher(ledger, FileWitnessState(path))

    with pytest.raises(WitnessUnavailable):
        watcher.witness.run()
    assert published(ledger.aws.audit_bucket) == {}


# --- the Lambda function ---------------------------------------------------------------------


def pem_private(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


def pem_public(key: Any) -> str:
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture
def handler(monkeypatch: pytest.MonkeyPatch) -> Any:
    from chalicelib.witness import handler as module

    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    module.witness.cache_clear()
    yield module
    module.witness.cache_clear()


def test_the_function_cosigns_and_refuses_with_its_settings(
    ledger: Ledger, handler: Any, monkeypatch: pytest.MonkeyPatch, alerts: tuple[SnsAlerts, str]
) -> None:
    _, queue = alerts
    key = Ed25519PrivateKey.generate()
    client("secretsmanager").create_secret(Name="witness-key", SecretString=pem_private(key))
    table_state()
    # The witness's own topic (the stage's bootstrap makes the stage's alert topic too).
    topic = next(
        t["TopicArn"]
        for t in client("sns").list_topics()["Topics"]
        if t["TopicArn"].endswith(":witness-alerts")
    )
    environment = {
        "NAME": "witness.example.com/lambda",
        "KEY_SECRET": "witness-key",
        "STATE_TABLE": STATE_TABLE,
        "ALERT_TOPIC": topic,
        "LOGS": json.dumps(
            [
                {
                    "origin": ORIGIN,
                    "public_key": pem_public(ledger.public_key),
                    "bucket": ledger.aws.audit_bucket,
                }
            ]
        ),
    }
    for name, value in environment.items():
        monkeypatch.setenv(PREFIX + name, value)
    first, second = digest_keys(ledger)
    kid = WitnessSigner("witness.example.com/lambda", key).key.key_id.hex()

    assert handler.run({}, None) == {
        "cosigned": [
            {
                "origin": ORIGIN,
                "digest_key": first,
                "tree_size": 3,
                "verdict": "cosigned",
                "detail": "the first checkpoint this witness sees",
            },
            {
                "origin": ORIGIN,
                "digest_key": second,
                "tree_size": 5,
                "verdict": "cosigned",
                "detail": "",
            },
        ],
        "refused": [],
    }
    assert set(published(ledger.aws.audit_bucket)) == {
        cosigned_key(kid, first),
        cosigned_key(kid, second),
    }
    stored = TableWitnessState(client("dynamodb"), STATE_TABLE).get(ORIGIN)
    assert stored is not None
    assert (stored.tree_size, stored.digest_key) == (5, second)

    forked = copy.deepcopy(document_at(ledger, second)["digest"])
    forked["tree"]["root"] = "cd" * 32
    fork = store_digest(ledger, forked, at=ledger.clock + 60)
    answer = handler.run({}, None)
    assert answer["cosigned"] == []
    assert [(o["verdict"], o["digest_key"]) for o in answer["refused"]] == [("fork", fork)]
    (envelope,) = received(queue)
    assert json.loads(envelope["Message"])["verdict"] == "fork"


def test_the_function_without_a_usable_key_is_unavailable(
    ledger: Ledger, handler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    client("secretsmanager").create_secret(
        Name="witness-key",
        SecretString=p256.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode(),
    )
    environment = {
        "NAME": "witness.example.com/lambda",
        "KEY_SECRET": "witness-key",
        "STATE_TABLE": STATE_TABLE,
        "LOGS": json.dumps(
            [{"origin": ORIGIN, "public_key": pem_public(ledger.public_key), "bucket": "b"}]
        ),
    }
    for name, value in environment.items():
        monkeypatch.setenv(PREFIX + name, value)
    with pytest.raises(WitnessUnavailable, match="cannot read the witness's key: ValueError"):
        handler.run()
    monkeypatch.setenv(PREFIX + "KEY_SECRET", "no-such-secret")
    handler.witness.cache_clear()
    with pytest.raises(WitnessUnavailable, match="cannot read the witness's key"):
        handler.run()


def test_the_function_without_its_settings_names_each_one(
    handler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NAME", "KEY_SECRET", "STATE_TABLE", "LOGS", "ALERT_TOPIC"):
        monkeypatch.delenv(PREFIX + name, raising=False)
    with pytest.raises(WitnessSettingsError) as raised:
        handler.run()
    for name in ("NAME", "KEY_SECRET", "STATE_TABLE", "LOGS"):
        assert f"{PREFIX}{name} is required" in str(raised.value)


P256_PEM = pem_public(ec.generate_private_key(ec.SECP256R1()).public_key())


def a_log(**changes: Any) -> dict[str, Any]:
    entry = {"origin": ORIGIN, "public_key": P256_PEM, "bucket": "audit"}
    entry.update(changes)
    return {key: value for key, value in entry.items() if value is not None}


@pytest.mark.parametrize(
    ("logs", "problem"),
    [
        pytest.param("not json", "JSON list", id="not-json"),
        pytest.param("[]", "a non-empty list", id="empty-list"),
        pytest.param(json.dumps(a_log()), "a non-empty list", id="an-object-not-a-list"),
        pytest.param(json.dumps(["audit"]), "JSON list", id="an-entry-not-an-object"),
        pytest.param(json.dumps([a_log(bucket=None)]), "'bucket'", id="no-bucket"),
        pytest.param(json.dumps([a_log(origin=None)]), "'origin'", id="no-origin"),
        pytest.param(json.dumps([a_log(public_key=None)]), "'public_key'", id="no-key"),
        pytest.param(
            json.dumps(
                [a_log(public_key=pem_public(ec.generate_private_key(ec.SECP384R1()).public_key()))]
            ),
            "P-256",
            id="a-p384-key",
        ),
        pytest.param(
            json.dumps([a_log(public_key=pem_public(Ed25519PrivateKey.generate().public_key()))]),
            "P-256",
            id="an-ed25519-key",
        ),
        pytest.param(
            json.dumps([a_log(public_key="-----BEGIN nonsense")]), "JSON list", id="bad-pem"
        ),
        pytest.param(
            json.dumps([a_log(public_key=json.dumps({"keys": [{}, {}]}))]),
            "exactly one key",
            id="a-jwks-of-two",
        ),
    ],
)
def test_malformed_logs_are_named(logs: str, problem: str) -> None:
    environ = {
        f"{PREFIX}NAME": "bad name",
        f"{PREFIX}KEY_SECRET": "s",
        f"{PREFIX}STATE_TABLE": "t",
        f"{PREFIX}LOGS": logs,
    }
    with pytest.raises(WitnessSettingsError) as raised:
        WitnessSettings.from_environment(environ)
    message = str(raised.value)
    assert f"{PREFIX}LOGS is a JSON list of {{origin, public_key, bucket}}" in message
    assert problem in message
    assert f"{PREFIX}NAME has no spaces" in message  # every problem at once


def test_well_formed_settings_are_read(ledger: Ledger) -> None:
    jwk = ledger.signer.jwk()
    settings = WitnessSettings.from_environment(
        {
            f"{PREFIX}NAME": " witness.example.com/w1 ",
            f"{PREFIX}KEY_SECRET": "s",
            f"{PREFIX}STATE_TABLE": "t",
            f"{PREFIX}LOGS": json.dumps(
                [
                    a_log(public_key=json.dumps({"keys": [jwk]}), publish_bucket="elsewhere"),
                    a_log(origin="example.com/two", public_key=json.dumps(jwk)),
                ]
            ),
        }
    )
    assert (settings.name, settings.key_secret, settings.state_table) == (
        "witness.example.com/w1",
        "s",
        "t",
    )
    assert settings.alert_topic is None
    assert [(log.origin, log.publish_to) for log in settings.logs] == [
        (ORIGIN, "elsewhere"),
        ("example.com/two", "audit"),
    ]
    assert settings.logs[0].public_key.public_numbers() == ledger.public_key.public_numbers()


# --- the CLI -------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


def test_keygen_writes_a_private_key_and_prints_its_vkey_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gatehouse.cli import main

    out = tmp_path / "witness.pem"
    assert main(["witness", "keygen", "--name", "witness.example.com/cli", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("\n") == 1
    vkey = WitnessKey.from_vkey(printed.strip())
    assert vkey.name == "witness.example.com/cli"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = load_witness_key(out.read_bytes())
    assert WitnessSigner("witness.example.com/cli", key).key.vkey() == printed.strip()

    pem = out.read_bytes()
    assert main(["witness", "keygen", "--name", "witness.example.com/cli", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"gatehouse: {out} exists: a witness key is never overwritten\n"
    assert out.read_bytes() == pem

    spaced = tmp_path / "spaced.pem"
    assert main(["witness", "keygen", "--name", "two words", "--out", str(spaced)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("gatehouse: --name: ")
    assert error.count("\n") == 1
    assert not spaced.exists()


def cli_files(ledger: Ledger, tmp_path: Path) -> list[str]:
    key = tmp_path / "witness.pem"
    key.write_text(pem_private(Ed25519PrivateKey.generate()))
    log_key = tmp_path / "log.pem"
    log_key.write_text(pem_public(ledger.public_key))
    return [
        "--bucket",
        ledger.aws.audit_bucket,
        "--key",
        str(key),
        "--name",
        "witness.example.com/cli",
        "--state",
        str(tmp_path / "state.json"),
        "--origin",
        ORIGIN,
        "--log-key",
        str(log_key),
    ]


def test_run_with_a_bucket_needs_the_witnesss_files(
    ledger: Ledger, cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gatehouse.cli import main

    assert main(["witness", "run", "--bucket", ledger.aws.audit_bucket]) == 2
    error = capsys.readouterr().err
    assert error == (
        "gatehouse: with --bucket, also give --key, --name, --state, --origin, --log-key\n"
    )

    flags = cli_files(ledger, tmp_path)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    at = flags.index("--key") + 1
    assert main(["witness", "run", *flags[:at], str(bad), *flags[at + 1 :]]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"gatehouse: --key {bad}: not an Ed25519 private key")
    assert error.count("\n") == 1
    assert "Traceback" not in error

    at = flags.index("--log-key") + 1
    assert main(["witness", "run", *flags[:at], str(flags[flags.index("--key") + 1])]) == 2
    assert capsys.readouterr().err.startswith("gatehouse: --log-key ")
    assert published(ledger.aws.audit_bucket) == {}


def test_run_cosigns_prints_verdicts_and_exits_1_after_a_fork(
    ledger: Ledger, cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gatehouse.cli import main

    flags = cli_files(ledger, tmp_path)
    first, second = digest_keys(ledger)

    assert main(["witness", "run", *flags]) == 0
    printed = capsys.readouterr().out
    rows = [row for row in printed.splitlines() if not row.startswith(" ")]
    assert [row.split()[:2] for row in rows] == [["cosigned", "3"], ["cosigned", "5"]]
    assert first in rows[0]
    assert "the first checkpoint this witness sees" in printed
    assert second in rows[1]
    state = json.loads((tmp_path / "state.json").read_text())
    assert state[ORIGIN]["tree_size"] == 5

    assert main(["witness", "run", *flags]) == 0
    assert capsys.readouterr().out == "nothing new to witness\n"

    forked = copy.deepcopy(document_at(ledger, second)["digest"])
    forked["tree"]["root"] = "ef" * 32
    fork = store_digest(ledger, forked, at=ledger.clock + 60)

    assert main(["witness", "run", *flags, "-o", "json"]) == 1
    (outcome,) = json.loads(capsys.readouterr().out)
    assert (outcome["verdict"], outcome["digest_key"], outcome["tree_size"]) == ("fork", fork, 5)
    assert json.loads((tmp_path / "state.json").read_text()) == state
    assert main(["witness", "run", *flags]) == 1
    printed = capsys.readouterr().out
    assert printed.split()[:2] == ["fork", "5"]
    assert fork in printed
    assert "the tree of 5 with root efefefefefefefef..." in printed


def test_run_prints_each_detail_on_its_own_indented_line(
    ledger: Ledger, cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gatehouse.cli import main

    first, second = digest_keys(ledger)

    assert main(["witness", "run", *cli_files(ledger, tmp_path)]) == 0

    assert capsys.readouterr().out.splitlines() == [
        f"{'cosigned':15} {3:>10}  {first}",
        f"{'':27}the first checkpoint this witness sees",
        f"{'cosigned':15} {5:>10}  {second}",
    ]
