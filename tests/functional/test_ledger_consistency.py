"""Consistency proofs of a real ledger: written by the operator, checked offline by an auditor.

The ledger is written by the real writer and digested by the real digest
writer (moto, signed by the stage's KMS key): three digests of 7, 7 and 20
leaves over objects ending at 4, 7, 12, 14 and 20.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from chalicelib.ledger.consistency import ConsistencyProver, check_consistency_proof
from chalicelib.ledger.errors import LedgerCorrupt
from chalicelib.ledger.merkle import consistency_proof, leaf_hash, root
from tests.functional import test_ledger_verify as ledger_verify_tests
from tests.functional.test_ledger_verify import (
    Ledger,
    digest_keys,
    rewrite_lines,
    s3,
    stored_lines,
)

# verify's ledger (three digests: 7, 7 and 20 leaves) and its CLI stage, shared.
ledger = ledger_verify_tests.ledger
cli = ledger_verify_tests.cli


def stored_leaves(ledger: Ledger) -> list[bytes]:
    """Every leaf, read independently of the prover: each object's lines, in order."""
    return [leaf_hash(line) for line in stored_lines(ledger)]


def prover(ledger: Ledger) -> ConsistencyProver:
    return ConsistencyProver(s3(), ledger.aws.audit_bucket, ledger.state, "test")


def test_an_operator_writes_a_proof_an_auditor_checks_offline(
    ledger: Ledger,
    cli: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gatehouse.cli import main

    proof_file, key_file = tmp_path / "proof.json", tmp_path / "jwks.json"
    key_file.write_text(json.dumps({"keys": [ledger.signer.jwk()]}))

    assert main([*cli, "audit", "consistency", "7", "20", "--out", str(proof_file)]) == 0
    assert capsys.readouterr().out == f"consistency proof from 7 to 20 written to {proof_file}\n"

    proof = json.loads(proof_file.read_text())
    leaves = stored_leaves(ledger)
    keys = digest_keys(ledger)
    assert (proof["format"], proof["proof"], proof["stage"]) == (1, "consistency", "test")
    assert proof["old"]["tree_size"] == 7
    assert proof["old"]["root"] == root(leaves[:7]).hex()
    assert proof["new"]["tree_size"] == 20
    assert proof["new"]["root"] == ledger.state.head().tree.root().hex()
    assert proof["path"] == [node.hex() for node in consistency_proof(leaves, 7)]
    # The first digest of each size, as stored and signed.
    assert (proof["old"]["digest_key"], proof["new"]["digest_key"]) == (keys[0], keys[2])
    stored = s3().get_object(Bucket=ledger.aws.audit_bucket, Key=keys[0])["Body"].read()
    assert proof["old"]["digest"] == json.loads(stored)

    # No stage at all: a fresh state dir and no environment.
    for name in [n for n in os.environ if n.startswith("GATEHOUSE_")]:
        monkeypatch.delenv(name)
    offline = ["--state-dir", str(tmp_path / "nowhere")]
    check = [*offline, "audit", "check-consistency", str(proof_file)]
    assert main([*check, "--public-key", str(key_file)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("valid: the tree of 7 leaves is a prefix of the tree of 20 leaves")
    assert f"signed in {keys[0]}" in out
    assert f"signed in {keys[2]}" in out

    proof["path"][-1] = "00" * 32
    proof_file.write_text(json.dumps(proof))
    assert main([*check, "--public-key", str(key_file)]) == 1
    assert capsys.readouterr().out.startswith("INVALID: the path does not lead to both roots")


@pytest.mark.parametrize(
    ("old", "new", "signed"),
    [
        (1, 20, (False, True)),
        (4, 12, (False, False)),
        (5, 13, (False, False)),
        (7, 7, (True, True)),
        (7, 14, (True, False)),
        (12, 20, (False, True)),
        (20, 20, (True, True)),
    ],
)
def test_a_proof_between_any_two_sizes_checks_with_the_public_key(
    ledger: Ledger, old: int, new: int, signed: tuple[bool, bool]
) -> None:
    leaves = stored_leaves(ledger)

    proof = prover(ledger).prove(old, new)

    assert check_consistency_proof(proof, ledger.public_key) == []
    assert proof["path"] == [node.hex() for node in consistency_proof(leaves[:new], old)]
    assert (proof["old"]["root"], proof["new"]["root"]) == (
        root(leaves[:old]).hex(),
        root(leaves[:new]).hex(),
    )
    assert (proof["old"]["digest"] is not None, proof["new"]["digest"] is not None) == signed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["0", "5"], "gatehouse: the older size must be at least 1, not 0"),
        (["9", "3"], "gatehouse: the older size 9 is larger than the newer size 3"),
        (["3", "21"], "gatehouse: the ledger holds 20 events: there is no tree of 21"),
        (["three", "5"], "'three' is not a valid integer"),
        (["7"], "Missing argument 'NEW_SIZE'"),
    ],
)
def test_sizes_the_ledger_does_not_have_are_one_line_and_exit_2(
    cli: list[str], capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    from gatehouse.cli import main

    assert main([*cli, "audit", "consistency", *argv]) == 2

    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_without_a_stage_consistency_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gatehouse.cli import main

    for name in [n for n in os.environ if n.startswith("GATEHOUSE_")]:
        monkeypatch.delenv(name)

    assert main(["--state-dir", str(tmp_path / "nowhere"), "audit", "consistency", "1", "2"]) == 2

    err = capsys.readouterr().err
    assert err.startswith("gatehouse: ")
    assert len(err.strip().splitlines()) == 1


def test_a_proof_is_not_written_over_altered_objects(ledger: Ledger) -> None:
    rewrite_lines(ledger, 3, lambda lines: [lines[0].replace('"n":0', '"n":99'), *lines[1:]])

    with pytest.raises(LedgerCorrupt, match="is not the object the ledger recorded"):
        prover(ledger).prove(7, 20)
    # A proof that does not need that object is still written.
    assert check_consistency_proof(prover(ledger).prove(4, 12), ledger.public_key) == []
