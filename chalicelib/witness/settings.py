"""The witness's settings, from its environment (its own, not a stage's).

==================================  ==================================================
``GATEHOUSE_WITNESS_NAME``          its name in signature lines (``example.com/w1``)
``GATEHOUSE_WITNESS_KEY_SECRET``    the Secrets Manager secret holding its Ed25519
                                    private key (PKCS#8 PEM)
``GATEHOUSE_WITNESS_STATE_TABLE``   its DynamoDB table (partition key ``origin``)
``GATEHOUSE_WITNESS_LOGS``          the logs it watches, JSON: ``[{"origin": ...,
                                    "public_key": "<PEM or JWK>", "bucket": ...,
                                    "publish_bucket": ...}]`` (``publish_bucket``
                                    optional: the log's bucket)
``GATEHOUSE_WITNESS_ALERT_TOPIC``   an SNS topic ARN refusals are sent to (optional)
==================================  ==================================================
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.witness.errors import WitnessSettingsError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from chalicelib.witness.witness import WatchedLog

PREFIX = "GATEHOUSE_WITNESS_"


@dataclass(frozen=True, slots=True)
class WitnessSettings:
    """Everything the witness function needs."""

    name: str
    key_secret: str
    state_table: str
    logs: tuple[WatchedLog, ...]
    alert_topic: str | None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> WitnessSettings:
        """Read the settings.

        Raises
        ------
        WitnessSettingsError
            Naming every missing or malformed variable.
        """
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def required(name: str) -> str:
            value = env.get(PREFIX + name, "").strip()
            if not value:
                problems.append(f"{PREFIX}{name} is required")
            return value

        name = required("NAME")
        if any(ch.isspace() or ch == "+" for ch in name):
            problems.append(f"{PREFIX}NAME has no spaces or '+' (like example.com/w1)")
        key_secret, table, logs_text = (
            required("KEY_SECRET"),
            required("STATE_TABLE"),
            required("LOGS"),
        )
        logs: tuple[WatchedLog, ...] = ()
        if logs_text:
            try:
                logs = parse_logs(logs_text)
            except WitnessSettingsError as exc:
                problems.append(str(exc))
        if problems:
            raise WitnessSettingsError("; ".join(problems))
        return cls(name, key_secret, table, logs, env.get(PREFIX + "ALERT_TOPIC") or None)


def parse_logs(text: str) -> tuple[WatchedLog, ...]:
    """The logs of ``GATEHOUSE_WITNESS_LOGS``.

    Raises
    ------
    WitnessSettingsError
        When it is not a JSON list of logs with an origin, a P-256 public key and a bucket.
    """
    from chalicelib.witness.witness import WatchedLog

    try:
        entries = json.loads(text)
        if not isinstance(entries, list) or not entries:
            raise ValueError("a non-empty list")
        return tuple(
            WatchedLog(
                origin=str(entry["origin"]),
                public_key=load_log_key(str(entry["public_key"])),
                bucket=str(entry["bucket"]),
                publish_bucket=entry.get("publish_bucket") or None,
            )
            for entry in entries
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise WitnessSettingsError(
            f"{PREFIX}LOGS is a JSON list of {{origin, public_key, bucket}}: {exc}"
        ) from exc


def load_log_key(text: str) -> EllipticCurvePublicKey:
    """A log's P-256 public key from PEM, a JWK or a JWKS of one key.

    Raises
    ------
    ValueError
        When it is none of those, or not a P-256 key.
    """
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        key = load_pem_public_key(stripped.encode())
    else:
        from chalicelib.identity.keys import InvalidKey, parse_jwk

        value = json.loads(stripped)
        if isinstance(value, dict) and isinstance(value.get("keys"), list):
            if len(value["keys"]) != 1:
                raise ValueError("a JWKS of exactly one key")
            value = value["keys"][0]
        try:
            key = parse_jwk({**value, "alg": "ES256"}).public_key
        except InvalidKey as exc:
            raise ValueError(str(exc)) from exc
    if not isinstance(key, EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("the log's key is a P-256 public key")
    return key


def load_witness_key(pem: bytes) -> Ed25519PrivateKey:
    """The witness's Ed25519 private key from PKCS#8 PEM.

    Raises
    ------
    ValueError
        When it is not one.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the witness's key is an Ed25519 private key")
    return key
