"""Signed digests, the anchor, and `verify` naming every kind of tampering.

The ledger is written by the real writer and digested by the real digest
writer, signed by the stage's KMS key (moto). Then an insider tampers as one
with GOVERNANCE bypass could: deleting versions, rewriting bytes at the
storage layer (including S3's own stored checksum), removing digests. Each
test asserts that verification names exactly that kind of finding.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from cryptography.hazmat.primitives.serialization import load_der_public_key
from moto.s3.models import s3_backends

from chalicelib.aws.signers import KmsSigner
from chalicelib.ledger import LedgerState
from chalicelib.ledger.digest import DigestWriter, S3Anchor, sign_checkpoint
from chalicelib.ledger.layout import DIGESTS_PREFIX, canonical
from chalicelib.ledger.notes import CheckpointBody, LogKey, SignedNote
from chalicelib.ledger.verify import LedgerVerifier
from tests.functional.test_audit_writer import deliver, events

if TYPE_CHECKING:
    from chalicelib.ledger.findings import Report
    from gatehouse.dev.bootstrap import Resources

ANCHOR_BUCKET = "gatehouse-test-anchor"
ORIGIN = "example.com/gatehouse-test"


def s3() -> Any:
    return boto3.client("s3", region_name="us-east-1")


class Ledger:
    """A stage's ledger with a few objects and digests, and the means to check it."""

    def __init__(self, aws: Resources) -> None:
        self.aws = aws
        s3().create_bucket(Bucket=ANCHOR_BUCKET)
        s3().put_bucket_versioning(
            Bucket=ANCHOR_BUCKET, VersioningConfiguration={"Status": "Enabled"}
        )
        kms = boto3.client("kms", region_name="us-east-1")
        self.kms = kms
        self.signer = KmsSigner(kms, aws.digest_key_alias)
        der = kms.get_public_key(KeyId=aws.digest_key_alias)["PublicKey"]
        self.public_key: Any = load_der_public_key(der)
        self.state = LedgerState(boto3.client("dynamodb", region_name="us-east-1"), aws.state_table)
        self.anchor = S3Anchor.from_uri(s3(), f"s3://{ANCHOR_BUCKET}/ledger", "test")
        self.clock = 1_800_000_000.0
        self.messages: list[tuple[str, str]] = []

    def write(self, count: int) -> None:
        batch = events(count)
        assert deliver(self.aws, batch)
        self.messages += batch

    def digest(self) -> str:
        self.clock += 3600
        writer = DigestWriter(
            s3(),
            self.aws.audit_bucket,
            self.state,
            self.signer,
            stage="test",
            origin=ORIGIN,
            anchor=self.anchor,
            clock=lambda: self.clock,
        )
        return writer.write().key

    def resign(self, key: str, document: dict[str, Any]) -> None:
        """Sign ``document`` anew with the stage's key and store it over the digest at ``key``."""
        checkpoint = sign_checkpoint(
            document["digest"], LogKey(ORIGIN, self.public_key), self.signer
        )
        document["checkpoint"] = checkpoint.serialize()
        version = s3().head_object(Bucket=self.aws.audit_bucket, Key=key)["VersionId"]
        tamper(self.aws.audit_bucket, key, version, canonical(document))

    def verify(self, **bounds: str) -> Report:
        verifier = LedgerVerifier(s3(), self.aws.audit_bucket, self.public_key)
        return verifier.verify(anchor_versions=self.anchor.versions(), **bounds)


@pytest.fixture
def ledger(aws: Resources) -> Ledger:
    """Three digests over five objects, the middle period empty."""
    built = Ledger(aws)
    built.write(4)
    built.write(3)
    built.digest()
    built.digest()  # nothing happened: still a signed statement
    built.write(5)
    built.write(2)
    built.write(6)
    built.digest()
    return built


def kinds(report: Report) -> set[str]:
    return {finding.kind for finding in report.findings}


def tamper(bucket: str, key: str, version: str | None, body: bytes) -> None:
    """Rewrite a stored version's bytes, and S3's stored checksum with them."""
    stored = s3_backends["123456789012"]["aws"].get_object(bucket, key, version_id=version)
    stored.value = body
    stored.checksum_value = base64.b64encode(hashlib.sha256(body).digest()).decode()


def delete(bucket: str, key: str, version: str | None = None) -> None:
    """Delete a version, as an insider allowed to bypass GOVERNANCE retention."""
    if version is None:
        version = s3().head_object(Bucket=bucket, Key=key)["VersionId"]
    s3().delete_object(Bucket=bucket, Key=key, VersionId=version, BypassGovernanceRetention=True)


def objects(ledger: Ledger) -> list[Any]:
    return ledger.state.objects()


def rewrite_lines(ledger: Ledger, index: int, change: Any) -> None:
    record = objects(ledger)[index]
    body = s3().get_object(Bucket=ledger.aws.audit_bucket, Key=record.key)["Body"].read()
    lines = gzip.decompress(body).decode().splitlines()
    lines = change(lines)
    altered = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
    tamper(ledger.aws.audit_bucket, record.key, record.version_id, altered)


def digest_keys(ledger: Ledger) -> list[str]:
    listed = s3().list_objects_v2(Bucket=ledger.aws.audit_bucket, Prefix=DIGESTS_PREFIX)
    return sorted(item["Key"] for item in listed.get("Contents", []))


# --- the untouched ledger -------------------------------------------------------------------


def test_an_untouched_ledger_verifies(ledger: Ledger) -> None:
    report = ledger.verify()

    assert report.findings == []
    assert report.ok
    assert (report.digests, report.objects, report.events) == (3, 5, 20)
    assert report.tree_size == 20
    assert report.root == ledger.state.head().tree.root().hex()


def test_each_digest_is_signed_chained_and_anchored(ledger: Ledger) -> None:
    keys = digest_keys(ledger)
    documents = [
        json.loads(s3().get_object(Bucket=ledger.aws.audit_bucket, Key=key)["Body"].read())
        for key in keys
    ]
    digests = [document["digest"] for document in documents]

    assert [d["tree"]["size"] for d in digests] == [7, 7, 20]
    assert [len(d["objects"]) for d in digests] == [2, 0, 3]
    assert digests[0]["previous"] is None
    notes = [SignedNote.parse(document["checkpoint"]) for document in documents]
    links = [note.signatures[0].encoded for note in notes]
    for link, later, key in zip(links, digests[1:], keys, strict=False):
        assert later["previous"] == {"key": key, "signature": link}
    assert all(entry["version_id"] for d in digests for entry in d["objects"])
    # Each checkpoint is a C2SP note: origin, size, root, the digest's hash; signed by the
    # stage's key (ECDSA, DER) under the origin's name, as the only signature line.
    for note, digest in zip(notes, digests, strict=True):
        body = CheckpointBody.parse(note.text)
        assert (body.origin, body.tree_size, body.root.hex()) == (
            ORIGIN,
            digest["tree"]["size"],
            digest["tree"]["root"],
        )
        bound = base64.b64encode(hashlib.sha256(canonical(digest)).digest()).decode()
        assert body.extensions == (f"gatehouse-digest {bound}",)
        assert LogKey(ORIGIN, ledger.public_key).signed_by(note) == note.signatures[0]
        assert len(note.text.encode()) < 300
    # Each digest after the first carries the proof that it extends the one before.
    assert digests[0]["consistency"] is None
    assert digests[1]["consistency"] == {"from_size": 7, "path": []}
    assert digests[2]["consistency"]["from_size"] == 7
    assert digests[2]["consistency"]["path"]
    checkpoint = ledger.anchor.read()
    assert checkpoint is not None
    assert (checkpoint.key, checkpoint.tree_size) == (keys[-1], 20)
    assert checkpoint.signature == links[-1]
    assert checkpoint.note == documents[-1]["checkpoint"]


def test_a_bounded_check_starts_from_the_signed_frontier(ledger: Ledger) -> None:
    ledger.write(3)
    ledger.digest()
    last_end = json.loads(
        s3().get_object(Bucket=ledger.aws.audit_bucket, Key=digest_keys(ledger)[-1])["Body"].read()
    )["digest"]["period"]["end"]

    report = ledger.verify(since=last_end)

    assert report.ok, report.findings
    assert (report.digests, report.objects, report.events) == (1, 1, 3)
    assert report.tree_size == 23


# --- one test per kind of finding -----------------------------------------------------------


def test_a_deleted_object_version_is_a_missing_object(ledger: Ledger) -> None:
    record = objects(ledger)[1]
    delete(ledger.aws.audit_bucket, record.key, record.version_id)

    report = ledger.verify()

    assert kinds(report) == {"missing_object"}
    assert record.key in report.findings[0].where


def test_bytes_rewritten_in_place_are_an_altered_object(ledger: Ledger) -> None:
    # A line's content changed (deny -> allow), still a valid event in sequence.
    rewrite_lines(ledger, 0, lambda lines: [lines[0].replace('"n":0', '"n":99'), *lines[1:]])

    assert kinds(ledger.verify()) == {"altered_object"}


def test_bytes_that_no_longer_match_s3s_checksum_are_an_altered_object(ledger: Ledger) -> None:
    record = objects(ledger)[2]
    stored = s3_backends["123456789012"]["aws"].get_object(
        ledger.aws.audit_bucket, record.key, version_id=record.version_id
    )
    stored.value = b"garbage"  # S3's own stored checksum left as it was

    assert kinds(ledger.verify()) == {"altered_object"}


def test_a_line_that_is_no_event_is_an_altered_line(ledger: Ledger) -> None:
    rewrite_lines(ledger, 3, lambda lines: [lines[0], "not an event", *lines[2:]])

    assert "altered_line" in kinds(ledger.verify())


def test_swapped_lines_are_reordered_lines(ledger: Ledger) -> None:
    rewrite_lines(ledger, 2, lambda lines: [lines[1], lines[0], *lines[2:]])

    assert "reordered_lines" in kinds(ledger.verify())


def test_a_removed_line_is_a_sequence_gap(ledger: Ledger) -> None:
    rewrite_lines(ledger, 2, lambda lines: [lines[0], *lines[2:]])

    assert "sequence_gap" in kinds(ledger.verify())


def test_a_line_stored_twice_is_a_duplicate_event(ledger: Ledger) -> None:
    def duplicate(lines: list[str]) -> list[str]:
        first = json.loads(lines[0])
        copy = json.loads(lines[1])
        copy["event_id"] = first["event_id"]  # the same event, under the next sequence
        return [lines[0], json.dumps(copy, separators=(",", ":")), *lines[2:]]

    rewrite_lines(ledger, 4, duplicate)

    assert "duplicate_event" in kinds(ledger.verify())


def test_a_deleted_middle_digest_breaks_the_chain(ledger: Ledger) -> None:
    delete(ledger.aws.audit_bucket, digest_keys(ledger)[1])

    assert kinds(ledger.verify()) == {"broken_chain"}


def test_an_edited_digest_has_a_bad_signature(ledger: Ledger) -> None:
    key = digest_keys(ledger)[0]
    document = json.loads(s3().get_object(Bucket=ledger.aws.audit_bucket, Key=key)["Body"].read())
    document["digest"]["objects"] = document["digest"]["objects"][:1]  # hide an object
    version = s3().head_object(Bucket=ledger.aws.audit_bucket, Key=key)["VersionId"]
    tamper(ledger.aws.audit_bucket, key, version, canonical(document))

    report = ledger.verify()

    assert "bad_signature" in kinds(report)
    assert any(f.where == key for f in report.findings if f.kind == "bad_signature")


def test_a_signed_digest_whose_root_the_lines_do_not_give_is_an_inconsistent_tree(
    ledger: Ledger,
) -> None:
    # A writer bug (or a stolen key) signs a root the objects do not produce.
    key = digest_keys(ledger)[-1]
    document = json.loads(s3().get_object(Bucket=ledger.aws.audit_bucket, Key=key)["Body"].read())
    document["digest"]["tree"]["root"] = "00" * 32
    document["digest"]["consistency"] = None
    ledger.resign(key, document)

    assert "inconsistent_tree" in kinds(ledger.verify())


def stored_lines(ledger: Ledger) -> list[bytes]:
    lines = []
    for record in objects(ledger):
        body = (
            s3()
            .get_object(
                Bucket=ledger.aws.audit_bucket, Key=record.key, VersionId=record.version_id
            )["Body"]
            .read()
        )
        lines += [line for line in gzip.decompress(body).splitlines() if line]
    return lines


def test_a_digest_signed_over_a_rewritten_history_is_inconsistent_digests(
    ledger: Ledger,
) -> None:
    # Someone with the key re-signs the newest digest (20 leaves) over a history in
    # which an event the first digest (7 leaves) already signed reads otherwise; its
    # root and frontier agree with each other, its object entries are untouched.
    from chalicelib.ledger.merkle import CompactRange, leaf_hash

    lines = stored_lines(ledger)
    lines[2] = lines[2].replace(b'"n":2', b'"n":99')
    rewritten = CompactRange()
    for line in lines:
        rewritten.append(leaf_hash(line))
    before, key = digest_keys(ledger)[-2:]
    document = json.loads(s3().get_object(Bucket=ledger.aws.audit_bucket, Key=key)["Body"].read())
    document["digest"]["tree"].update(root=rewritten.root().hex(), frontier=rewritten.to_json())
    document["digest"]["consistency"] = None  # no proof leads to the rewritten root
    ledger.resign(key, document)
    end = document["digest"]["period"]["end"]

    for report in (ledger.verify(), ledger.verify(since=end)):
        inconsistent = [f for f in report.findings if f.kind == "inconsistent_digests"]
        assert [f.where for f in inconsistent] == [key]
        # Named against the digest before it (the empty period's, still 7 leaves), from
        # whose signed frontier a bounded check starts.
        assert "does not extend the tree of 7" in inconsistent[0].detail
        assert inconsistent[0].detail.endswith(f"signed in {before}")


def test_successive_digests_over_one_history_are_consistent(ledger: Ledger) -> None:
    ledger.write(9)  # past a power of two, so the proof from 20 is more than one node
    ledger.digest()
    ledger.digest()

    report = ledger.verify()

    assert report.ok, report.findings
    assert report.digests == 5


def test_deleting_the_newest_digest_is_a_truncated_tail(ledger: Ledger) -> None:
    delete(ledger.aws.audit_bucket, digest_keys(ledger)[-1])

    report = ledger.verify()

    assert kinds(report) == {"truncated_tail"}


def test_a_delete_marker_on_the_newest_digest_and_a_rolled_back_anchor_are_named(
    ledger: Ledger,
) -> None:
    # No locked version is touched: a delete marker hides the newest digest, and the
    # anchor gets a new version naming the digest before it, as if it were the newest.
    newest, previous = digest_keys(ledger)[-1], digest_keys(ledger)[-2]
    s3().delete_object(Bucket=ledger.aws.audit_bucket, Key=newest)
    older = json.loads(s3().get_object(Bucket=ledger.aws.audit_bucket, Key=previous)["Body"].read())
    rolled_back = dict(ledger.anchor.read().as_dict())  # type: ignore[union-attr]
    rolled_back.update(
        key=previous,
        signature=SignedNote.parse(older["checkpoint"]).signatures[0].encoded,
        tree_size=older["digest"]["tree"]["size"],
        root=older["digest"]["tree"]["root"],
    )
    s3().put_object(Bucket=ANCHOR_BUCKET, Key=ledger.anchor.key, Body=canonical(rolled_back))

    report = ledger.verify()

    assert kinds(report) == {"hidden_version", "truncated_tail"}
    hidden = [finding for finding in report.findings if finding.kind == "hidden_version"]
    assert [finding.where for finding in hidden] == [newest]
    assert report.events == 20  # the hidden digest's objects are still checked


def test_a_version_written_over_a_digested_object_is_a_hidden_version(ledger: Ledger) -> None:
    record = objects(ledger)[1]
    s3().put_object(
        Bucket=ledger.aws.audit_bucket,
        Key=record.key,
        Body=gzip.compress(b'{"forged":true}\n'),
        ChecksumAlgorithm="SHA256",
    )

    report = ledger.verify()

    assert findings(report) == [("hidden_version", f"{record.key}?versionId={record.version_id}")]
    assert report.events == 20  # the digested version is the one read


def test_a_delete_marker_on_a_digested_object_is_a_hidden_version(ledger: Ledger) -> None:
    record = objects(ledger)[0]
    s3().delete_object(Bucket=ledger.aws.audit_bucket, Key=record.key)

    report = ledger.verify()

    assert kinds(report) == {"hidden_version"}
    assert "a delete marker" in report.findings[0].detail


def forge(ledger: Ledger, first_sequence: int, body: bytes) -> str:
    """Put an object at a new key among the ledger's, as anyone allowed to PutObject could."""
    from chalicelib.ledger.layout import object_key

    key = object_key(1_800_000_000, first_sequence, 99)
    event = {"schema_version": 1, "event_id": "forged", "ledger": {"sequence": first_sequence}}
    s3().put_object(
        Bucket=ledger.aws.audit_bucket,
        Key=key,
        Body=body or gzip.compress(json.dumps(event).encode() + b"\n"),
        ChecksumAlgorithm="SHA256",
    )
    return key


def test_an_object_no_digest_names_is_an_unledgered_object(ledger: Ledger) -> None:
    key = forge(ledger, 3, b"")

    report = ledger.verify()

    assert [(finding.kind, finding.where.partition("?")[0]) for finding in report.findings] == [
        ("unledgered_object", key)
    ]


def test_a_fence_is_not_an_unledgered_object(ledger: Ledger) -> None:
    from chalicelib.ledger.layout import FENCE

    forge(ledger, 3, FENCE)

    assert ledger.verify().findings == []


def test_objects_past_the_newest_digest_are_counted_not_judged(ledger: Ledger) -> None:
    ledger.write(2)

    report = ledger.verify()

    assert report.findings == []
    assert report.undigested_objects == 1


def test_an_object_past_the_digests_but_older_than_the_newest_is_an_unledgered_object(
    ledger: Ledger,
) -> None:
    from datetime import timedelta

    key = forge(ledger, 10**12, b"")
    stored = s3_backends["123456789012"]["aws"].get_object(ledger.aws.audit_bucket, key)
    stored.last_modified = stored.last_modified - timedelta(days=1)

    report = ledger.verify()

    assert kinds(report) == {"unledgered_object"}
    assert report.undigested_objects == 0


# --- the CLI -------------------------------------------------------------------------------


@pytest.fixture
def cli(ledger: Ledger, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> list[str]:
    aws = ledger.aws
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("GATEHOUSE_STAGE", "test")
    monkeypatch.setenv("GATEHOUSE_AUDIT_BUCKET", aws.audit_bucket)
    monkeypatch.setenv("GATEHOUSE_AUDIT_QUEUE_URL", aws.audit_queue_url)
    monkeypatch.setenv("GATEHOUSE_STATE_TABLE", aws.state_table)
    monkeypatch.setenv("GATEHOUSE_DIGEST_KEY_ID", aws.digest_key_alias)
    monkeypatch.setenv("GATEHOUSE_LEDGER_ANCHOR", f"s3://{ANCHOR_BUCKET}/ledger")
    return ["--state-dir", str(tmp_path / "no-local-stack")]


def test_verify_exits_0_only_when_all_holds_and_names_each_finding(
    ledger: Ledger, cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from gatehouse.cli import main

    assert main([*cli, "audit", "verify"]) == 0
    assert capsys.readouterr().out.startswith("ok: 3 digests, 5 objects, 20 events")

    delete(ledger.aws.audit_bucket, digest_keys(ledger)[-1])

    assert main([*cli, "audit", "verify", "--json", "--jobs", "2"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert [finding["kind"] for finding in report["findings"]] == ["truncated_tail"]

    assert main([*cli, "audit", "verify", "--jobs", "0"]) == 2
    assert "'0' is not a whole number of at least 1" in capsys.readouterr().err


def test_verify_with_the_published_jwks_instead_of_kms(
    ledger: Ledger, cli: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    from gatehouse.cli import main

    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [ledger.signer.jwk()]}))

    assert main([*cli, "audit", "verify", "--public-key", str(jwks)]) == 0

    other = tmp_path / "other.pem"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
    other.write_bytes(
        stranger.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    capsys.readouterr()
    assert main([*cli, "audit", "verify", "--public-key", str(other)]) == 1
    assert "bad_signature" in capsys.readouterr().out


def test_a_digest_is_signed_now_on_request(
    ledger: Ledger, cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from gatehouse.cli import main

    ledger.write(2)

    assert main([*cli, "audit", "digest"]) == 0

    assert "tree size 22" in capsys.readouterr().out
    assert ledger.verify().ok


# --- inclusion proofs ----------------------------------------------------------------------


def stored_event_ids(ledger: Ledger) -> list[str]:
    return [json.loads(body)["event_id"] for _, body in ledger.messages]


@pytest.mark.parametrize("position", [0, 3, 4, 6, 7, 12, 19])
def test_a_proof_of_any_event_checks_offline_with_only_the_public_key(
    ledger: Ledger, cli: list[str], tmp_path: Any, capsys: pytest.CaptureFixture[str], position: int
) -> None:
    from gatehouse.cli import main

    event_id = stored_event_ids(ledger)[position]
    proof_file, key_file = tmp_path / "proof.json", tmp_path / "jwks.json"
    key_file.write_text(json.dumps({"keys": [ledger.signer.jwk()]}))
    assert main([*cli, "audit", "prove", event_id, "--out", str(proof_file)]) == 0
    proof = json.loads(proof_file.read_text())
    assert proof["leaf_index"] == position
    assert json.loads(proof["event"])["event_id"] == event_id
    capsys.readouterr()

    # No stage at all: a fresh state dir and no environment.
    offline = ["--state-dir", str(tmp_path / "nowhere")]
    assert (
        main([*offline, "audit", "check-proof", str(proof_file), "--public-key", str(key_file)])
        == 0
    )
    assert capsys.readouterr().out.startswith(f"valid: event at leaf {position} ")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda p: p.update(event=p["event"].replace('"n":', '"m":')), "audit path"),
        (lambda p: p.update(leaf_index=p["leaf_index"] + 1), "ledger sequence"),
        (lambda p: p["path"].__setitem__(0, "00" * 32), "audit path"),
        (lambda p: p.update(root="11" * 32), "no tree head"),
        (lambda p: p["digest"]["digest"]["tree"].update(size=999), "signature"),
    ],
    ids=["altered event", "wrong index", "altered path", "another root", "edited digest"],
)
def test_a_doctored_proof_is_refused(ledger: Ledger, change: Any, problem: str) -> None:
    from chalicelib.ledger.proof import Prover, check_proof

    prover = Prover(s3(), ledger.aws.audit_bucket, ledger.state)
    proof = prover.prove(stored_event_ids(ledger)[5])
    assert check_proof(proof, ledger.public_key) == []
    change(proof)

    problems = check_proof(proof, ledger.public_key)

    assert any(problem in text for text in problems), problems


def test_an_event_not_yet_digested_has_no_proof_yet(ledger: Ledger) -> None:
    from chalicelib.ledger.merkle import ProofError
    from chalicelib.ledger.proof import Prover

    ledger.write(2)
    prover = Prover(s3(), ledger.aws.audit_bucket, ledger.state)

    with pytest.raises(ProofError, match="not in a signed digest yet"):
        prover.prove(stored_event_ids(ledger)[-1])
    with pytest.raises(ProofError, match="not in the ledger"):
        prover.prove("01a00000-0000-7000-8000-000000000000")


# --- many objects: read by worker processes ---------------------------------------------------


@pytest.fixture
def many_objects(aws: Resources) -> Ledger:
    """Enough objects (18, in two digests) for the verifier to read them in worker processes."""
    from chalicelib.ledger.feed import POOL_MIN_OBJECTS

    built = Ledger(aws)
    for n in range(POOL_MIN_OBJECTS + 2):
        built.write(1 + n % 3)
        if n == 8:
            built.digest()
    built.digest()
    return built


def findings(report: Report) -> list[tuple[str, str]]:
    return [(finding.kind, finding.where) for finding in report.findings]


def repeat_an_earlier_event(ledger: Ledger) -> None:
    """Object 12's first line becomes object 3's event (same id), at object 12's position."""
    record = objects(ledger)[3]
    body = s3().get_object(Bucket=ledger.aws.audit_bucket, Key=record.key)["Body"].read()
    earlier = json.loads(gzip.decompress(body).decode().splitlines()[0])["event_id"]

    def reuse(lines: list[str]) -> list[str]:
        line = json.loads(lines[0])
        line["event_id"] = earlier
        return [json.dumps(line, separators=(",", ":")), *lines[1:]]

    rewrite_lines(ledger, 12, reuse)


@pytest.mark.parametrize(
    ("tampering", "expected"),
    [
        pytest.param(lambda ledger: None, set(), id="untouched"),
        pytest.param(
            repeat_an_earlier_event,
            {"altered_object", "duplicate_event"},
            id="an event from an earlier object",
        ),
        pytest.param(
            lambda ledger: rewrite_lines(ledger, 10, lambda ls: [*ls[1:], ls[0]]),
            {"altered_object", "reordered_lines"},
            id="lines reordered",
        ),
        pytest.param(
            lambda ledger: rewrite_lines(ledger, 7, lambda ls: ["{}", *ls[1:]]),
            {"altered_object", "altered_line"},
            id="a line that is no event",
        ),
        pytest.param(
            lambda ledger: delete(
                ledger.aws.audit_bucket, objects(ledger)[5].key, objects(ledger)[5].version_id
            ),
            {"missing_object"},
            id="an object deleted",
        ),
        pytest.param(
            lambda ledger: tamper(
                ledger.aws.audit_bucket,
                objects(ledger)[14].key,
                objects(ledger)[14].version_id,
                b"not gzip",
            ),
            {"altered_object", "altered_line"},
            id="bytes replaced",
        ),
    ],
)
def test_worker_processes_find_exactly_what_one_process_finds(
    many_objects: Ledger, tampering: Any, expected: set[str]
) -> None:
    tampering(many_objects)
    anchor = many_objects.anchor.read()
    bucket = many_objects.aws.audit_bucket

    alone = LedgerVerifier(s3(), bucket, many_objects.public_key, jobs=1).verify(anchor=anchor)
    pooled = LedgerVerifier(s3(), bucket, many_objects.public_key, jobs=2).verify(anchor=anchor)

    assert kinds(pooled) - {"inconsistent_tree", "sequence_gap"} == expected
    assert findings(pooled) == findings(alone)
    assert (pooled.events, pooled.objects, pooled.tree_size, pooled.root) == (
        alone.events,
        alone.objects,
        alone.tree_size,
        alone.root,
    )


# --- checkpoints: the signed note, the proof each digest carries, the format before them ------


def test_a_carried_consistency_proof_that_does_not_hold_is_inconsistent_digests(
    ledger: Ledger,
) -> None:
    # The history is intact; only the proof a witness would check is wrong.
    key = digest_keys(ledger)[-1]
    document = json.loads(s3().get_object(Bucket=ledger.aws.audit_bucket, Key=key)["Body"].read())
    document["digest"]["consistency"]["path"][0] = "ab" * 32
    ledger.resign(key, document)

    report = ledger.verify()

    inconsistent = [f for f in report.findings if f.kind == "inconsistent_digests"]
    assert [f.where for f in inconsistent] == [key]
    assert "the consistency proof it carries" in inconsistent[0].detail
    # Besides: the re-signed checkpoint is not the one the anchor kept.
    assert kinds(report) == {"inconsistent_digests", "truncated_tail"}


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda text: text.replace("\n20\n", "\n21\n", 1), id="size"),
        pytest.param(lambda text: text.replace(ORIGIN, "example.com/other", 1), id="origin"),
        pytest.param(
            lambda text: text.replace("gatehouse-digest ", "gatehouse-digest A", 1),
            id="bound-digest",
        ),
        pytest.param(
            lambda text: text.rsplit("\u2014", 1)[0] + "\u2014 x AAAAAAA=\n", id="signature-line"
        ),
        pytest.param(lambda text: text.split("\n\n")[0] + "\n", id="no-signature"),
    ],
)
def test_a_checkpoint_changed_in_any_part_is_a_bad_signature(ledger: Ledger, change: Any) -> None:
    key = digest_keys(ledger)[-1]
    document = json.loads(s3().get_object(Bucket=ledger.aws.audit_bucket, Key=key)["Body"].read())
    document["checkpoint"] = change(document["checkpoint"])
    version = s3().head_object(Bucket=ledger.aws.audit_bucket, Key=key)["VersionId"]
    tamper(ledger.aws.audit_bucket, key, version, canonical(document))

    report = ledger.verify()

    assert ("bad_signature", key) in {(f.kind, f.where) for f in report.findings}


def test_a_checkpoint_signed_by_another_key_is_a_bad_signature(ledger: Ledger) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from chalicelib.aws.signers import LocalSigner

    stranger = ec.generate_private_key(ec.SECP256R1())
    key = digest_keys(ledger)[-1]
    document = json.loads(s3().get_object(Bucket=ledger.aws.audit_bucket, Key=key)["Body"].read())
    note = sign_checkpoint(
        document["digest"], LogKey(ORIGIN, stranger.public_key()), LocalSigner(stranger)
    )
    document["checkpoint"] = note.serialize()
    version = s3().head_object(Bucket=ledger.aws.audit_bucket, Key=key)["VersionId"]
    tamper(ledger.aws.audit_bucket, key, version, canonical(document))

    assert ("bad_signature", key) in {(f.kind, f.where) for f in ledger.verify().findings}


def test_a_digest_of_many_objects_is_signed_as_a_small_checkpoint_and_verifies(
    ledger: Ledger,
) -> None:
    # KMS signs at most 4 KB as RAW: the digest document is far larger, the note is not.
    sent: list[str] = []
    ledger.kms.meta.events.register(
        "provide-client-params.kms.Sign", lambda params, **_: sent.append(params["MessageType"])
    )
    for _ in range(24):
        ledger.write(2)
    key = ledger.digest()
    assert sent == ["RAW"]

    stored = s3().get_object(Bucket=ledger.aws.audit_bucket, Key=key)["Body"].read()
    document = json.loads(stored)

    assert len(canonical(document["digest"])) > 4096
    assert len(SignedNote.parse(document["checkpoint"]).text) < 300
    report = ledger.verify()
    assert report.ok, report.findings
    assert report.tree_size == 68


def write_format_1_digest(ledger: Ledger) -> str:
    """A digest as stages wrote them before checkpoints: the signature over the JSON."""
    from chalicelib.ledger.layout import digest_key, utc_text
    from chalicelib.ledger.records import Checkpoint, Digest, DigestEntry, DigestLink

    ledger.clock += 3600
    previous, version = ledger.state.checkpoint()
    records = ledger.state.objects(from_sequence=previous.tree_size if previous else 0)
    last = records[-1]
    document = Digest(
        stage="test",
        start=previous.end if previous else None,
        end=utc_text(ledger.clock),
        tree_size=last.tree_size,
        root=last.root,
        frontier=last.frontier,
        objects=tuple(DigestEntry.of(record) for record in records),
        previous=DigestLink(previous.key, previous.signature) if previous else None,
        signing_kid=ledger.signer.jwk()["kid"],
        format=1,
    ).to_document()
    assert "checkpoint" not in document
    assert "origin" not in document
    signature = base64.b64encode(ledger.signer.sign(canonical(document))).decode()
    key = digest_key(ledger.clock, last.tree_size)
    s3().put_object(
        Bucket=ledger.aws.audit_bucket,
        Key=key,
        Body=canonical({"digest": document, "signature": signature}),
        ChecksumAlgorithm="SHA256",
    )
    ledger.state.advance_checkpoint(
        version,
        Checkpoint(
            key, signature, last.tree_size, last.root, utc_text(ledger.clock), last.frontier
        ),
    )
    return key


def test_digests_of_the_format_before_checkpoints_still_verify_and_chain_on(aws: Resources) -> None:
    ledger = Ledger(aws)
    ledger.write(4)
    first = write_format_1_digest(ledger)
    ledger.write(3)
    second = write_format_1_digest(ledger)
    ledger.write(5)
    third = ledger.digest()  # today's format, chained to the old

    report = ledger.verify()

    assert report.ok, report.findings
    assert (report.digests, report.tree_size) == (3, 12)
    stored = json.loads(s3().get_object(Bucket=aws.audit_bucket, Key=third)["Body"].read())
    old = json.loads(s3().get_object(Bucket=aws.audit_bucket, Key=second)["Body"].read())
    assert stored["digest"]["previous"] == {"key": second, "signature": old["signature"]}
    assert stored["digest"]["consistency"]["from_size"] == 7

    # An old digest edited is still named.
    old["digest"]["objects"] = []
    version = s3().head_object(Bucket=aws.audit_bucket, Key=first)["VersionId"]
    edited = json.loads(s3().get_object(Bucket=aws.audit_bucket, Key=first)["Body"].read())
    edited["digest"]["period"]["end"] = "2000-01-01T00:00:00Z"
    tamper(aws.audit_bucket, first, version, canonical(edited))
    assert ("bad_signature", first) in {(f.kind, f.where) for f in ledger.verify().findings}


def test_a_digest_whose_bytes_no_longer_match_s3s_checksum_is_a_bad_signature(
    ledger: Ledger,
) -> None:
    key = digest_keys(ledger)[0]
    version = s3().head_object(Bucket=ledger.aws.audit_bucket, Key=key)["VersionId"]
    stored = s3_backends["123456789012"]["aws"].get_object(
        ledger.aws.audit_bucket, key, version_id=version
    )
    stored.value = stored.value.replace(b'"stage":"test"', b'"stage":"tset"')

    report = ledger.verify()

    assert ("bad_signature", key) in {(f.kind, f.where) for f in report.findings}


def test_a_digest_over_an_altered_object_is_still_signed_without_a_proof(ledger: Ledger) -> None:
    # The trail stays signed; verify names the object; a witness refuses the checkpoint.
    ledger.write(3)
    rewrite_lines(ledger, 5, lambda lines: [lines[0].replace('"n":0', '"n":7'), *lines[1:]])
    key = ledger.digest()

    stored = json.loads(s3().get_object(Bucket=ledger.aws.audit_bucket, Key=key)["Body"].read())

    assert stored["digest"]["consistency"] is None
    assert stored["digest"]["tree"]["size"] == 23
    assert kinds(ledger.verify()) == {"altered_object"}


def test_a_digest_that_failed_to_sign_leaves_the_chain_free_for_the_next_attempt(
    ledger: Ledger,
) -> None:
    from chalicelib.aws.errors import SigningError

    class Refusing:
        def jwk(self) -> dict[str, str]:
            return ledger.signer.jwk()

        def sign(self, message: bytes) -> bytes:
            raise SigningError("KMS did not sign: ThrottlingException")

    before = digest_keys(ledger)
    failing = DigestWriter(
        s3(), ledger.aws.audit_bucket, ledger.state, Refusing(), stage="test", origin=ORIGIN,
        anchor=ledger.anchor, clock=lambda: ledger.clock + 1800,
    )  # fmt: skip
    with pytest.raises(SigningError):
        failing.write()

    assert digest_keys(ledger) == before
    ledger.digest()  # at once: the failed attempt's claim was given back
    assert len(digest_keys(ledger)) == len(before) + 1
    assert ledger.verify().ok


def test_of_two_writers_that_read_the_chain_at_once_only_one_stores_a_digest(
    ledger: Ledger,
) -> None:
    from chalicelib.ledger import LedgerBusy

    class ReadEarlier(LedgerState):
        """Reads the chain as it stood before the other writer moved it."""

        def __init__(self, seen: Any) -> None:
            super().__init__(
                boto3.client("dynamodb", region_name="us-east-1"), ledger.aws.state_table
            )
            self._seen = seen

        def checkpoint(self) -> Any:
            return self._seen

    seen = ledger.state.checkpoint()
    ledger.write(2)
    ledger.digest()
    late = DigestWriter(
        s3(), ledger.aws.audit_bucket, ReadEarlier(seen), ledger.signer, stage="test",
        origin=ORIGIN, anchor=ledger.anchor, clock=lambda: ledger.clock + 60,
    )  # fmt: skip
    before = digest_keys(ledger)

    with pytest.raises(LedgerBusy):
        late.write()

    assert digest_keys(ledger) == before
    assert ledger.verify().ok
