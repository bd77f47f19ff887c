"""`gatehouse audit keys`: what an auditor needs from the stage, and nothing else."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import boto3
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_der_public_key

from chalicelib.ledger.notes import WitnessSigner
from gatehouse.audit_commands.ledger import load_public_key
from gatehouse.cli import main

if TYPE_CHECKING:
    from pathlib import Path

    from gatehouse.dev.bootstrap import Resources

WITNESS = WitnessSigner("audit.example.org/ci", Ed25519PrivateKey.generate())


@pytest.fixture
def stage(aws: Resources, monkeypatch: pytest.MonkeyPatch) -> Resources:
    for name, value in {
        "GATEHOUSE_AUDIT_BUCKET": aws.audit_bucket,
        "GATEHOUSE_STATE_TABLE": aws.state_table,
        "GATEHOUSE_AUDIT_QUEUE_URL": aws.audit_queue_url,
        "GATEHOUSE_DIGEST_KEY_ID": aws.digest_key_alias,
        "GATEHOUSE_STAGE": "test",
        "GATEHOUSE_WITNESS_KEYS": WITNESS.key.vkey(),
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    return aws


def keys(tmp_path: Path, *args: str) -> int:
    return main(["--state-dir", str(tmp_path / "no-stack"), "audit", "keys", *args])


def test_keys_names_the_origin_the_stage_key_and_the_witnesses(
    stage: Resources, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kms_key = load_der_public_key(
        boto3.client("kms", region_name="us-east-1").get_public_key(KeyId=stage.digest_key_alias)[
            "PublicKey"
        ]
    )

    assert keys(tmp_path) == 0
    described = json.loads(capsys.readouterr().out)

    assert described["origin"] == f"s3.amazonaws.com/{stage.audit_bucket}"
    assert described["witnesses"] == [WITNESS.key.vkey()]
    as_jwk = load_public_key(json.dumps(described["stage_key"]).encode())
    assert as_jwk.public_numbers() == kms_key.public_numbers()  # type: ignore[union-attr]
    for output in ("pem", "jwks"):
        assert keys(tmp_path, "-o", output) == 0
        printed = load_public_key(capsys.readouterr().out.encode())
        assert printed.public_numbers() == kms_key.public_numbers()  # type: ignore[union-attr]


def test_keys_without_kms_is_one_line_and_exit_3(
    stage: Resources,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GATEHOUSE_DIGEST_KEY_ID", "alias/no-such-key")

    assert keys(tmp_path) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("gatehouse: cannot read the ledger key from KMS")
