"""Checkpoints as signed notes (C2SP tlog-checkpoint, signed-note, tlog-cosignature).

The ledger states what it holds in the format transparency logs share (Go's
checksum database, Sigstore's Rekor, the witness network)::

    s3.amazonaws.com/acme-audit
    4200
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
    gatehouse-digest ZWNhMTk...=

    — s3.amazonaws.com/acme-audit Az3grl...
    — witness.example.com/w1 jWbPPw...

The text (the *body*) is the origin, the tree size, the root hash in
base64, and one extension line binding the digest document the checkpoint
belongs to (its SHA-256 over the canonical JSON). The body is a few hundred
bytes whatever the digest holds, so the stage's key always signs it as one
message (KMS ``MessageType=RAW``).

Signature lines are ``— <key name> base64(key id || signature)``:

- the log's: ECDSA P-256 over the body, ASN.1 DER (type ``0x02``; its key id
  is the first four bytes of the SHA-256 of the key's DER SubjectPublicKeyInfo);
- a witness's cosignature (type ``0x04``): an 8-byte big-endian timestamp
  and an Ed25519 signature over ``cosignature/v1\\ntime <t>\\n`` followed by
  the body; its key id is the first four bytes of
  ``SHA-256(name || "\\n" || 0x04 || public key)``.

A witness's public key travels as a C2SP *vkey*:
``<name>+<key id hex>+<base64(0x04 || public key)>``.

This module imports ``cryptography`` only when a key is used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

DIGEST_EXTENSION = "gatehouse-digest"
COSIGNATURE_HEADER = b"cosignature/v1\n"
ECDSA_TYPE = 0x02
COSIGNATURE_TYPE = 0x04
# Verifiers must accept at least 16 signatures (signed-note); more is refused.
MAX_SIGNATURES = 64
MAX_NOTE_BYTES = 16384
_DASH = "\u2014 "


class NoteError(ValueError):
    """A note, a checkpoint or a key that is not well formed."""


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"{what} is not base64") from exc


def _check_name(name: str) -> str:
    if not name or any(ch.isspace() or ch == "+" for ch in name):
        raise NoteError(f"a key name is non-empty, without spaces or '+': {name!r}")
    return name


@dataclass(frozen=True, slots=True)
class CheckpointBody:
    """The text of a checkpoint: origin, tree size, root hash, extension lines."""

    origin: str
    tree_size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The note text (ends with a newline)."""
        lines = [self.origin, str(self.tree_size), base64.b64encode(self.root).decode("ascii")]
        return "\n".join([*lines, *self.extensions]) + "\n"

    def extension(self, name: str) -> str | None:
        """The value of the extension line ``<name> <value>`` (None: absent)."""
        for line in self.extensions:
            head, _, value = line.partition(" ")
            if head == name:
                return value
        return None

    @classmethod
    def parse(cls, text: str) -> CheckpointBody:
        """Parse a checkpoint's note text.

        Raises
        ------
        NoteError
            When it is not three or more non-empty lines ending in a newline,
            with a decimal size (no leading zero) and a 32-byte base64 root.
        """
        if not text.endswith("\n"):
            raise NoteError("a checkpoint's text ends with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3 or any(not line for line in lines):
            raise NoteError("a checkpoint is at least three non-empty lines")
        origin, size, root = lines[:3]
        if not size.isascii() or not size.isdigit() or (size != "0" and size.startswith("0")):
            raise NoteError(f"a checkpoint's tree size is a decimal number, not {size!r}")
        digest = _b64decode(root, "a checkpoint's root hash")
        if len(digest) != 32:
            raise NoteError("a checkpoint's root hash is 32 bytes")
        return cls(origin, int(size), digest, tuple(lines[3:]))


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the key's name and id, and the signature's bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """``— <name> base64(key id || signature)`` with its newline."""
        payload = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{_DASH}{self.name} {payload}\n"

    @property
    def encoded(self) -> str:
        """The base64 part of the line."""
        return base64.b64encode(self.key_id + self.signature).decode("ascii")


@dataclass(frozen=True, slots=True)
class SignedNote:
    """A note: its text and its signature lines."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def serialize(self) -> str:
        """The note as stored: text, a blank line, the signature lines."""
        return self.text + "\n" + "".join(signature.line() for signature in self.signatures)

    def with_signature(self, signature: NoteSignature) -> SignedNote:
        """This note with ``signature`` added (an identical line is not added twice)."""
        if signature in self.signatures:
            return self
        return SignedNote(self.text, (*self.signatures, signature))

    @classmethod
    def parse(cls, note: str) -> SignedNote:
        """Parse a signed note.

        Raises
        ------
        NoteError
            When it is not text, a blank line and one or more signature lines.
        """
        if len(note.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
            raise NoteError(f"a note is at most {MAX_NOTE_BYTES} bytes")
        if any(ord(ch) < 0x20 and ch != "\n" for ch in note):
            raise NoteError("a note holds no control characters but newlines")
        if not note.endswith("\n"):
            raise NoteError("a note ends with a newline")
        split = note.rfind("\n\n")
        if split < 0:
            raise NoteError("a note's text and signatures are separated by a blank line")
        text, lines = note[: split + 1], note[split + 2 : -1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise NoteError(f"a note carries at most {MAX_SIGNATURES} signatures")
        signatures = []
        for line in lines:
            if not line.startswith(_DASH):
                raise NoteError("a signature line starts with an em dash and a space")
            name, _, payload = line[len(_DASH) :].partition(" ")
            raw = _b64decode(payload, "a signature")
            if len(raw) < 5:
                raise NoteError("a signature is a key id and at least one byte")
            signatures.append(NoteSignature(_check_name(name), raw[:4], raw[4:]))
        return cls(text, tuple(signatures))


def digest_extension(document_sha256: bytes) -> str:
    """The extension line binding a checkpoint to its digest document."""
    return f"{DIGEST_EXTENSION} {base64.b64encode(document_sha256).decode('ascii')}"


# --- the log's key -------------------------------------------------------------------------------


class LogKey:
    """The stage's P-256 key as a note verifier (signature type ``0x02``).

    Parameters
    ----------
    origin:
        The log's origin: the key's name in its signature lines.
    public_key:
        The stage's ledger public key.
    """

    def __init__(self, origin: str, public_key: EllipticCurvePublicKey) -> None:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        self.name = _check_name(origin)
        self.public_key = public_key
        spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        self.key_id = hashlib.sha256(spki).digest()[:4]

    def signature(self, raw_signature: bytes) -> NoteSignature:
        """The signature line for an ES256 signature (raw ``r || s``) of the body."""
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        if len(raw_signature) != 64:
            raise NoteError("an ES256 signature is 64 bytes (r || s)")
        r, s = int.from_bytes(raw_signature[:32], "big"), int.from_bytes(raw_signature[32:], "big")
        return NoteSignature(self.name, self.key_id, encode_dss_signature(r, s))

    def signed_by(self, note: SignedNote) -> NoteSignature | None:
        """The line of ``note`` this key made over its text (None: none verifies)."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        for signature in note.signatures:
            if signature.name != self.name or signature.key_id != self.key_id:
                continue
            try:
                self.public_key.verify(
                    signature.signature, note.text.encode(), ec.ECDSA(hashes.SHA256())
                )
            except (InvalidSignature, ValueError):
                return None  # a known key's failed signature rejects the note
            return signature
        return None


# --- witnesses -----------------------------------------------------------------------------------


def cosigned_message(body: str, timestamp: int) -> bytes:
    """What a witness signs: the header, the time line, the checkpoint's text."""
    return COSIGNATURE_HEADER + b"time %d\n" % timestamp + body.encode()


def _witness_key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([COSIGNATURE_TYPE]) + public).digest()[:4]


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A verified cosignature: which witness, and when it cosigned."""

    witness: str
    timestamp: int
    signature: NoteSignature


class WitnessKey:
    """A witness's Ed25519 public key (cosignature/v1).

    Parameters
    ----------
    name:
        The witness's name (its signature lines' key name).
    public_key:
        Its Ed25519 public key.
    """

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        self.name = _check_name(name)
        self.public_key = public_key
        self.raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = _witness_key_id(name, self.raw)

    def vkey(self) -> str:
        """The key as a C2SP vkey: ``name+keyid+base64(0x04 || key)``."""
        payload = base64.b64encode(bytes([COSIGNATURE_TYPE]) + self.raw).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{payload}"

    @classmethod
    def from_vkey(cls, vkey: str) -> WitnessKey:
        """Parse a vkey of type ``0x04``.

        Raises
        ------
        NoteError
            When it is not ``name+keyid+base64`` of an Ed25519 cosigner key,
            or its key id does not match.
        """
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        name, _, rest = vkey.strip().partition("+")
        key_id, _, payload = rest.partition("+")
        raw = _b64decode(payload, "a witness key")
        if len(raw) != 33 or raw[0] != COSIGNATURE_TYPE:
            raise NoteError("a witness key is a cosignature/v1 (0x04) Ed25519 vkey")
        key = cls(_check_name(name), Ed25519PublicKey.from_public_bytes(raw[1:]))
        if key_id != key.key_id.hex():
            raise NoteError(f"the witness key {name!r} names key id {key_id!r}, not its own")
        return key

    def cosigned(self, note: SignedNote) -> Cosignature | None:
        """This witness's verified cosignature of ``note`` (None: it has none that verifies)."""
        from cryptography.exceptions import InvalidSignature

        for signature in note.signatures:
            if signature.name != self.name or signature.key_id != self.key_id:
                continue
            if len(signature.signature) != 72:
                return None
            (timestamp,) = struct.unpack(">Q", signature.signature[:8])
            try:
                self.public_key.verify(
                    signature.signature[8:], cosigned_message(note.text, timestamp)
                )
            except InvalidSignature:
                return None
            return Cosignature(self.name, timestamp, signature)
        return None

    def signed_record(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this witness's, over a record it signed."""
        from cryptography.exceptions import InvalidSignature

        try:
            self.public_key.verify(signature, RECORD_HEADER + message)
        except (InvalidSignature, ValueError):
            return False
        return True


RECORD_HEADER = b"gatehouse-witness-record/v1\n"


class WitnessSigner:
    """A witness's Ed25519 private key: cosigns checkpoints.

    Parameters
    ----------
    name:
        The witness's name.
    private_key:
        Its Ed25519 private key.
    """

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.private_key = private_key
        self.key = WitnessKey(name, private_key.public_key())

    @property
    def name(self) -> str:
        return self.key.name

    def cosign(self, body: str, timestamp: int) -> NoteSignature:
        """The cosignature line of the checkpoint ``body`` at ``timestamp`` (epoch seconds)."""
        if not 0 <= timestamp < 2**63:
            raise NoteError("a cosignature's time is a POSIX timestamp")
        signed = self.private_key.sign(cosigned_message(body, timestamp))
        return NoteSignature(self.key.name, self.key.key_id, struct.pack(">Q", timestamp) + signed)

    def sign_record(self, message: bytes) -> bytes:
        """An Ed25519 signature of ``message`` (a refusal record's canonical JSON)."""
        return self.private_key.sign(RECORD_HEADER + message)
