"""Checkpoints as C2SP signed notes: the text, the note, the log's key and a witness's key.

Everything a signature or a key id is made of is recomputed here from the
specifications (C2SP signed-note, tlog-checkpoint, tlog-cosignature), not
taken from the module under test.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from chalicelib.ledger.notes import (
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    CheckpointBody,
    LogKey,
    NoteError,
    NoteSignature,
    SignedNote,
    WitnessKey,
    WitnessSigner,
    digest_extension,
)

ORIGIN = "example.com/gatehouse-test"
ROOT = hashlib.sha256(b"root").digest()
ROOT_B64 = base64.b64encode(ROOT).decode()
EXTENSION = digest_extension(hashlib.sha256(b"document").digest())
TEXT = f"{ORIGIN}\n4200\n{ROOT_B64}\n{EXTENSION}\n"
DASH = "\u2014"
WITNESS = "witness.example.com/w1"


def body() -> CheckpointBody:
    return CheckpointBody(ORIGIN, 4200, ROOT, (EXTENSION,))


def raw_es256(private_key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """An ES256 signature as KMS gives it after conversion: raw ``r || s``."""
    r, s = decode_dss_signature(private_key.sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def log_signed(private_key: ec.EllipticCurvePrivateKey, text: str = TEXT) -> SignedNote:
    key = LogKey(ORIGIN, private_key.public_key())
    return SignedNote(text, (key.signature(raw_es256(private_key, text.encode())),))


@pytest.fixture(scope="module")
def stage_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def witness_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def line(name: str, payload: bytes) -> str:
    return f"{DASH} {name} {base64.b64encode(payload).decode()}\n"


# --- the checkpoint's text --------------------------------------------------------------------


def test_a_checkpoint_text_is_origin_size_root_and_extensions_and_round_trips() -> None:
    assert body().text() == TEXT
    parsed = CheckpointBody.parse(TEXT)
    assert parsed == body()
    assert parsed.text() == TEXT
    assert parsed.extension("gatehouse-digest") == EXTENSION.split(" ", 1)[1]
    assert parsed.extension("other") is None
    bare = CheckpointBody.parse(f"{ORIGIN}\n0\n{ROOT_B64}\n")
    assert (bare.tree_size, bare.extensions) == (0, ())


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(TEXT[:-1], "ends with a newline", id="no-trailing-newline"),
        pytest.param(f"{ORIGIN}\n4200\n", "at least three", id="two-lines"),
        pytest.param(f"{ORIGIN}\n", "at least three", id="one-line"),
        pytest.param("\n", "at least three", id="empty"),
        pytest.param(f"{ORIGIN}\n4200\n\n{ROOT_B64}\n", "non-empty", id="empty-line"),
        pytest.param(f"{ORIGIN}\n4200\n{ROOT_B64}\n\n", "non-empty", id="trailing-empty-line"),
        pytest.param(f"\n4200\n{ROOT_B64}\n", "non-empty", id="empty-origin"),
        pytest.param(f"{ORIGIN}\n04200\n{ROOT_B64}\n", "decimal", id="size-leading-zero"),
        pytest.param(f"{ORIGIN}\n00\n{ROOT_B64}\n", "decimal", id="size-double-zero"),
        pytest.param(f"{ORIGIN}\n-1\n{ROOT_B64}\n", "decimal", id="size-negative"),
        pytest.param(f"{ORIGIN}\n+1\n{ROOT_B64}\n", "decimal", id="size-plus"),
        pytest.param(f"{ORIGIN}\n0x10\n{ROOT_B64}\n", "decimal", id="size-hex"),
        pytest.param(f"{ORIGIN}\n1 2\n{ROOT_B64}\n", "decimal", id="size-space"),
        pytest.param(f"{ORIGIN}\n\u0664\u0662\n{ROOT_B64}\n", "decimal", id="size-arabic-digits"),
        pytest.param(f"{ORIGIN}\n4200\nnot base64!\n", "not base64", id="root-not-base64"),
        pytest.param(
            f"{ORIGIN}\n4200\n{base64.b64encode(ROOT[:31]).decode()}\n",
            "32 bytes",
            id="root-31-bytes",
        ),
        pytest.param(
            f"{ORIGIN}\n4200\n{base64.b64encode(ROOT + b'x').decode()}\n",
            "32 bytes",
            id="root-33-bytes",
        ),
    ],
)
def test_a_malformed_checkpoint_text_is_refused(text: str, problem: str) -> None:
    with pytest.raises(NoteError, match=problem):
        CheckpointBody.parse(text)


# --- the signed note ---------------------------------------------------------------------------


def test_a_signed_note_round_trips_and_adding_a_line_twice_keeps_one() -> None:
    first = NoteSignature(ORIGIN, b"\x01\x02\x03\x04", b"signature")
    second = NoteSignature(WITNESS, b"\x05\x06\x07\x08", b"other")
    note = SignedNote(TEXT, (first,))
    stored = note.serialize()

    assert stored == TEXT + "\n" + line(ORIGIN, b"\x01\x02\x03\x04signature")
    assert SignedNote.parse(stored) == note
    assert first.encoded == base64.b64encode(b"\x01\x02\x03\x04signature").decode()
    assert note.with_signature(first) is note
    both = note.with_signature(second)
    assert both.signatures == (first, second)
    assert both.with_signature(second).with_signature(first) == both
    assert SignedNote.parse(both.serialize()) == both


def test_the_last_blank_line_separates_text_and_signatures() -> None:
    # As Go's note.Open: the text is everything up to the last blank line.
    note = SignedNote.parse("a\n\nb\n\n" + line("k", b"12345"))
    assert note.text == "a\n\nb\n"


def test_a_note_of_the_most_signatures_allowed_parses() -> None:
    lines = "".join(line(f"w{n}", b"abcd" + bytes([n])) for n in range(MAX_SIGNATURES))
    assert len(SignedNote.parse(TEXT + "\n" + lines).signatures) == MAX_SIGNATURES


GOOD_LINE = line(ORIGIN, b"\x01\x02\x03\x04signature")


@pytest.mark.parametrize(
    ("note", "problem"),
    [
        pytest.param(TEXT + "\n" + GOOD_LINE[:-1], "ends with a newline", id="no-final-newline"),
        pytest.param(TEXT + GOOD_LINE, "blank line", id="no-blank-line"),
        pytest.param(TEXT + "\n", "em dash", id="no-signature-line"),
        pytest.param(TEXT + "\n\n", "em dash", id="empty-signature-line"),
        pytest.param(TEXT + "\n" + GOOD_LINE[2:], "em dash", id="no-em-dash"),
        pytest.param(TEXT + "\n- " + GOOD_LINE[2:], "em dash", id="hyphen-for-em-dash"),
        pytest.param(TEXT + "\n" + DASH + GOOD_LINE[2:], "em dash", id="no-space-after-dash"),
        pytest.param(TEXT + "\n" + f"{DASH} {ORIGIN} not*base64\n", "base64", id="bad-base64"),
        pytest.param(TEXT + "\n" + f"{DASH} {ORIGIN} AQID\n", "at least one byte", id="short"),
        pytest.param(TEXT + "\n" + f"{DASH} {ORIGIN}\n", "at least one byte", id="no-payload"),
        pytest.param(TEXT + "\n" + line("a+b", b"12345"), "without spaces", id="plus-in-name"),
        pytest.param(TEXT + "\n" + line("", b"12345"), "without spaces", id="empty-name"),
        pytest.param(
            TEXT + "\n" + f"{DASH} two words {base64.b64encode(b'12345').decode()}\n",
            "base64",
            id="space-in-name",
        ),
        pytest.param(TEXT + "\n" + line("a\u00a0b", b"12345"), "without spaces", id="nbsp-in-name"),
        pytest.param(TEXT.replace("\n", "\r\n", 1) + "\n" + GOOD_LINE, "control", id="cr"),
        pytest.param("a\tb\n" + TEXT[1:] + "\n" + GOOD_LINE, "control", id="tab"),
        pytest.param(TEXT + "\n" + GOOD_LINE.replace(" ", "\x00", 1), "control", id="nul"),
        pytest.param(
            TEXT + "\n" + "".join(line(f"w{n}", b"12345") for n in range(MAX_SIGNATURES + 1)),
            f"at most {MAX_SIGNATURES} signatures",
            id="too-many-signatures",
        ),
        pytest.param(
            "x" * MAX_NOTE_BYTES + "\n\n" + GOOD_LINE,
            f"at most {MAX_NOTE_BYTES} bytes",
            id="oversized",
        ),
        pytest.param(
            "\u00e9" * (MAX_NOTE_BYTES // 2) + "\n\n" + GOOD_LINE,
            "bytes",
            id="oversized-in-utf8-bytes-not-characters",
        ),
    ],
)
def test_a_malformed_note_is_refused(note: str, problem: str) -> None:
    with pytest.raises(NoteError, match=problem):
        SignedNote.parse(note)


# --- the log's key (ECDSA P-256, type 0x02) ----------------------------------------------------


def test_the_log_key_id_is_the_first_four_bytes_of_the_sha256_of_its_der_spki(
    stage_key: ec.EllipticCurvePrivateKey,
) -> None:
    spki = stage_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    key = LogKey(ORIGIN, stage_key.public_key())
    assert key.key_id == hashlib.sha256(spki).digest()[:4]
    assert key.name == ORIGIN


def test_the_log_signs_the_text_as_der_ecdsa_and_its_line_verifies(
    stage_key: ec.EllipticCurvePrivateKey,
) -> None:
    note = log_signed(stage_key)
    (signature,) = note.signatures
    key = LogKey(ORIGIN, stage_key.public_key())

    assert key.signed_by(note) == signature
    assert key.signed_by(SignedNote.parse(note.serialize())) == signature
    assert (signature.name, signature.key_id) == (ORIGIN, key.key_id)
    # The line's bytes after the key id are a DER ECDSA signature over exactly the text.
    stage_key.public_key().verify(signature.signature, TEXT.encode(), ec.ECDSA(hashes.SHA256()))
    decode_dss_signature(signature.signature)


@pytest.mark.parametrize("length", [0, 63, 65])
def test_an_es256_signature_is_64_raw_bytes(
    stage_key: ec.EllipticCurvePrivateKey, length: int
) -> None:
    with pytest.raises(NoteError, match="64 bytes"):
        LogKey(ORIGIN, stage_key.public_key()).signature(b"\x01" * length)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda text: text.replace("4200", "4201"), id="size"),
        pytest.param(lambda text: text.replace(ORIGIN, ORIGIN + "x"), id="origin"),
        pytest.param(
            lambda text: text.replace(ROOT_B64, base64.b64encode(b"\0" * 32).decode()), id="root"
        ),
        pytest.param(lambda text: text + "extra line\n", id="line-added"),
        pytest.param(lambda text: text.replace(EXTENSION + "\n", ""), id="extension-removed"),
    ],
)
def test_the_log_signature_fails_after_any_change_to_the_text(
    stage_key: ec.EllipticCurvePrivateKey, change: Any
) -> None:
    note = log_signed(stage_key)
    changed = SignedNote(change(note.text), note.signatures)
    assert changed.text != note.text
    assert LogKey(ORIGIN, stage_key.public_key()).signed_by(changed) is None


def test_only_the_log_keys_own_line_counts(stage_key: ec.EllipticCurvePrivateKey) -> None:
    key = LogKey(ORIGIN, stage_key.public_key())
    other = ec.generate_private_key(ec.SECP256R1())
    impostor = log_signed(other)  # same name, another key id: ignored
    assert key.signed_by(impostor) is None

    honest = log_signed(stage_key).signatures[0]
    # The honest line after a same-name line of another key still verifies.
    assert key.signed_by(SignedNote(TEXT, (*impostor.signatures, honest))) == honest
    # The right key id with a signature that does not verify rejects the note.
    forged = NoteSignature(ORIGIN, key.key_id, impostor.signatures[0].signature)
    assert key.signed_by(SignedNote(TEXT, (forged,))) is None
    assert key.signed_by(SignedNote(TEXT, (forged, honest))) is None
    garbage = NoteSignature(ORIGIN, key.key_id, b"not der")
    assert key.signed_by(SignedNote(TEXT, (garbage,))) is None
    # Another name with the right key id is not this key's line either.
    renamed = NoteSignature("example.com/other", key.key_id, honest.signature)
    assert key.signed_by(SignedNote(TEXT, (renamed,))) is None


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb"])
def test_a_log_key_name_has_no_spaces_or_plus(
    stage_key: ec.EllipticCurvePrivateKey, name: str
) -> None:
    with pytest.raises(NoteError, match="key name"):
        LogKey(name, stage_key.public_key())


# --- a witness's key (Ed25519, cosignature/v1, type 0x04) --------------------------------------


def expected_witness_key_id(name: str, private_key: Ed25519PrivateKey) -> bytes:
    public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + b"\x04" + public).digest()[:4]


def test_a_witness_vkey_is_name_keyid_and_typed_key_and_round_trips(
    witness_key: Ed25519PrivateKey,
) -> None:
    signer = WitnessSigner(WITNESS, witness_key)
    public = witness_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key_id = expected_witness_key_id(WITNESS, witness_key)

    vkey = signer.key.vkey()

    assert signer.key.key_id == key_id
    typed = base64.b64encode(bytes([4]) + public).decode()
    assert vkey == f"{WITNESS}+{key_id.hex()}+{typed}"
    parsed = WitnessKey.from_vkey(vkey + "\n")
    assert (parsed.name, parsed.key_id, parsed.raw) == (WITNESS, key_id, public)
    assert parsed.vkey() == vkey
    # The key id commits to the name: the same key under another name has another id.
    assert WitnessKey("other.example.com/w", witness_key.public_key()).key_id != key_id


def vkey_parts(witness_key: Ed25519PrivateKey) -> tuple[str, str, bytes]:
    name, key_id, payload = WitnessSigner(WITNESS, witness_key).key.vkey().split("+", 2)
    return name, key_id, base64.b64decode(payload)


@pytest.mark.parametrize(
    ("build", "problem"),
    [
        pytest.param(
            lambda n, k, p: f"{n}+{k}+{base64.b64encode(bytes([1]) + p[1:]).decode()}",
            "0x04",
            id="ed25519-note-key-type",
        ),
        pytest.param(
            lambda n, k, p: f"{n}+{k}+{base64.b64encode(p[1:]).decode()}",
            "0x04",
            id="no-type-byte",
        ),
        pytest.param(
            lambda n, k, p: f"{n}+{k}+{base64.b64encode(p + b'x').decode()}",
            "0x04",
            id="too-long",
        ),
        pytest.param(
            lambda n, k, p: f"{n}+00000000+{base64.b64encode(p).decode()}", "key id", id="wrong-id"
        ),
        pytest.param(
            lambda n, k, p: (
                f"{n}+{k.upper()}+{base64.b64encode(p).decode()}"
                if k.upper() != k
                else f"{n}+{k}0+{base64.b64encode(p).decode()}"
            ),
            "key id",
            id="id-not-lowercase-hex",
        ),
        pytest.param(
            lambda n, k, p: f"other.example.com/w+{k}+{base64.b64encode(p).decode()}",
            "key id",
            id="renamed",
        ),
        pytest.param(lambda n, k, p: f"{n}+{k}+not*base64", "base64", id="bad-base64"),
        pytest.param(lambda n, k, p: f"{n}+{k}", "0x04", id="no-key"),
        pytest.param(
            lambda n, k, p: f"a b+{k}+{base64.b64encode(p).decode()}", "key name", id="space"
        ),
        pytest.param(
            lambda n, k, p: f"+{k}+{base64.b64encode(p).decode()}", "key name", id="no-name"
        ),
    ],
)
def test_a_malformed_vkey_is_refused(
    witness_key: Ed25519PrivateKey, build: Any, problem: str
) -> None:
    with pytest.raises(NoteError, match=problem):
        WitnessKey.from_vkey(build(*vkey_parts(witness_key)))


def test_a_cosignature_is_the_c2sp_cosignature_v1_of_the_text(
    stage_key: ec.EllipticCurvePrivateKey, witness_key: Ed25519PrivateKey
) -> None:
    signer = WitnessSigner(WITNESS, witness_key)
    note = log_signed(stage_key)
    at = 1_800_000_123

    cosigned = note.with_signature(signer.cosign(note.text, at))
    parsed = SignedNote.parse(cosigned.serialize())

    found = signer.key.cosigned(parsed)
    assert found is not None
    assert (found.witness, found.timestamp) == (WITNESS, at)
    assert found.signature == parsed.signatures[1]
    assert LogKey(ORIGIN, stage_key.public_key()).signed_by(parsed) == note.signatures[0]
    # The line: key id || 8-byte big-endian time || Ed25519 over the exact message.
    line_bytes = base64.b64decode(cosigned.serialize().splitlines()[-1].split(" ")[2])
    assert line_bytes[:4] == expected_witness_key_id(WITNESS, witness_key)
    assert struct.unpack(">Q", line_bytes[4:12]) == (at,)
    message = f"cosignature/v1\ntime {at}\n".encode() + TEXT.encode()
    witness_key.public_key().verify(line_bytes[12:], message)
    with pytest.raises(InvalidSignature):
        witness_key.public_key().verify(line_bytes[12:], TEXT.encode())
    assert len(line_bytes) == 4 + 8 + 64


def test_a_cosignature_fails_when_its_time_or_the_text_changes(
    witness_key: Ed25519PrivateKey,
) -> None:
    signer = WitnessSigner(WITNESS, witness_key)
    line_ = signer.cosign(TEXT, 1000)
    assert signer.key.cosigned(SignedNote(TEXT, (line_,))) is not None

    later = NoteSignature(line_.name, line_.key_id, struct.pack(">Q", 1001) + line_.signature[8:])
    assert signer.key.cosigned(SignedNote(TEXT, (later,))) is None
    assert signer.key.cosigned(SignedNote(TEXT.replace("4200", "4201"), (line_,))) is None
    short = NoteSignature(line_.name, line_.key_id, line_.signature[:-1])
    assert signer.key.cosigned(SignedNote(TEXT, (short,))) is None
    other = WitnessSigner(WITNESS, Ed25519PrivateKey.generate())
    assert other.key.cosigned(SignedNote(TEXT, (line_,))) is None  # same name, other key id
    assert signer.key.cosigned(SignedNote(TEXT, (other.cosign(TEXT, 1000),))) is None


@pytest.mark.parametrize("at", [-1, 2**63])
def test_a_cosignature_time_is_a_posix_timestamp(witness_key: Ed25519PrivateKey, at: int) -> None:
    with pytest.raises(NoteError, match="POSIX"):
        WitnessSigner(WITNESS, witness_key).cosign(TEXT, at)


def test_a_witness_signs_records_under_their_own_header(witness_key: Ed25519PrivateKey) -> None:
    signer = WitnessSigner(WITNESS, witness_key)
    record = b'{"verdict":"fork"}'
    signature = signer.sign_record(record)

    assert signer.key.signed_record(record, signature)
    witness_key.public_key().verify(signature, b"gatehouse-witness-record/v1\n" + record)
    assert not signer.key.signed_record(b'{"verdict":"rollback"}', signature)
    assert not signer.key.signed_record(record, signature[:-1] + bytes([signature[-1] ^ 1]))
    assert not signer.key.signed_record(record, b"short")
    # A cosignature is not a record signature, nor the other way round.
    raw = witness_key.sign(record)
    assert not signer.key.signed_record(record, raw)
    assert (
        signer.key.cosigned(
            SignedNote(TEXT, (NoteSignature(WITNESS, signer.key.key_id, b"\0" * 8 + signature),))
        )
        is None
    )
