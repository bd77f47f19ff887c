"""``gatehouse audit digest|verify|prove|check-proof|consistency|check-consistency``.

The signed ledger of the trail: sign a digest now, verify the bucket, prove
an event's inclusion or one tree's consistency with a later one, and check
such proofs offline.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gatehouse.audit_commands.stage import anchor, digest_key, ledger_state
from gatehouse.times import accepted

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    from chalicelib.ledger.findings import Report
    from chalicelib.ledger.notes import WitnessKey
    from chalicelib.ledger.records import Checkpoint
    from gatehouse.cli import CliContext
    from gatehouse.progress import Progress
    from gatehouse.target import Target


def sign_digest(target: Target) -> Checkpoint:
    """Sign the ledger's next digest now, as the hourly schedule does (local stack)."""
    from chalicelib.aws.signers import KmsSigner
    from chalicelib.ledger import LedgerBusy
    from chalicelib.ledger.digest import DigestWriter

    writer = DigestWriter(
        target.client("s3"),
        target.audit_bucket,
        ledger_state(target),
        KmsSigner(target.client("kms"), digest_key(target)),
        stage=target.stage,
        origin=target.ledger_origin,
        anchor=anchor(target),
    )
    # The schedule (every 30 s on the local stack) may be writing one right now.
    for _ in range(_BUSY_ATTEMPTS - 1):
        try:
            return writer.write()
        except LedgerBusy:
            time.sleep(1.0)
    return writer.write()


_BUSY_ATTEMPTS = 5


def verify(
    target: Target,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    public_key_file: Path | None = None,
    jobs: int | None = None,
    witnesses: Sequence[WitnessKey] = (),
    require_witnesses: int = 0,
    progress: Callable[[int, int, int], None] | None = None,
) -> Report:
    """Verify the ledger from the bucket, the public key and the anchor.

    Only digests whose period ends within ``since``..``until`` (inclusive,
    either open) are checked; see :func:`gatehouse.times.parse_window`.
    ``witnesses`` are trusted; fewer than ``require_witnesses`` of them
    cosigning the newest checkpoint is a finding. ``progress`` is called
    after each digest with (digests checked, digests to check, events read).
    """
    from chalicelib.ledger.verify import LedgerVerifier
    from gatehouse.times import utc_text

    if public_key_file is not None:
        public_key = load_public_key(public_key_file.read_bytes())
    else:
        public_key = ledger_public_key(target)
    stage_anchor = anchor(target)
    verifier = LedgerVerifier(target.client("s3"), target.audit_bucket, public_key, jobs=jobs)
    # The verifier compares digests' period ends as text: give it theirs.
    return verifier.verify(
        anchor_versions=stage_anchor.versions() if stage_anchor else (),
        since=utc_text(since) if since is not None else None,
        until=utc_text(until) if until is not None else None,
        witnesses=witnesses,
        require_witnesses=require_witnesses,
        progress=progress,
    )


def verify_progress(line: Progress) -> Callable[[int, int, int], None]:
    """A verifier callback that shows ``12/40 digests, 3,200 events`` on ``line``."""
    from gatehouse.progress import count

    def show(done: int, total: int, events: int) -> None:
        line.update(f"{done}/{total} digests, {count(events)} events")

    return show


def witness_keys(target: Target, given: Sequence[str]) -> list[WitnessKey]:
    """The trusted witness keys: ``--witness`` vkeys, else the stage's (``GATEHOUSE_WITNESS_KEYS``).

    Raises
    ------
    click.UsageError
        When a vkey is not an Ed25519 cosigner key.
    """
    from chalicelib.ledger.notes import NoteError, WitnessKey

    keys = []
    for text in given or target.witness_keys:
        try:
            keys.append(WitnessKey.from_vkey(text))
        except (NoteError, ValueError) as exc:
            raise click.UsageError(
                f"--witness {text[:40]!r} is not a witness key (name+keyid+base64): {exc}"
            ) from exc
    return keys


# What `gatehouse audit verify --publish-metric` puts, and the stage's
# LedgerVerifyAlarm (infra/gatehouse.yaml) watches.
VERIFY_METRIC_NAMESPACE = "Gatehouse"
VERIFY_METRIC_NAME = "LedgerVerifyFindings"


def verified_nothing(report: Report) -> bool:
    """Whether the verification checked no digest at all: it then proves nothing."""
    return report.digests == 0


def verify_metric_value(report: Report) -> float:
    """The findings, plus one when nothing was verified.

    The alarm fires above 0: a verification that checked nothing (an empty
    window, no digest yet, every digest unreadable) must not report a clean
    ledger, whatever ``--allow-empty`` did to the exit status.
    """
    return float(len(report.findings) + (1 if verified_nothing(report) else 0))


def publish_verify_metric(target: Target, report: Report) -> None:
    """Put :func:`verify_metric_value` (0 only when digests verified clean) for the alarm."""
    target.client("cloudwatch").put_metric_data(
        Namespace=VERIFY_METRIC_NAMESPACE,
        MetricData=[
            {
                "MetricName": VERIFY_METRIC_NAME,
                "Dimensions": [{"Name": "Stage", "Value": target.stage}],
                "Value": verify_metric_value(report),
                "Unit": "Count",
            }
        ],
    )


def prove(target: Target, event_id: str) -> dict[str, Any]:
    """The inclusion proof of ``event_id`` against the signed digest listing its object."""
    from chalicelib.ledger.proof import Prover

    return Prover(target.client("s3"), target.audit_bucket, ledger_state(target)).prove(event_id)


def consistency(target: Target, old_size: int, new_size: int) -> dict[str, Any]:
    """The consistency proof from the ledger's tree of ``old_size`` leaves to ``new_size``'s."""
    from chalicelib.ledger.consistency import ConsistencyProver

    prover = ConsistencyProver(
        target.client("s3"), target.audit_bucket, ledger_state(target), target.stage
    )
    return prover.prove(old_size, new_size)


def load_public_key(data: bytes) -> EllipticCurvePublicKey:
    """A P-256 public key from PEM, a JWK, or a JWKS (its first EC key).

    Raises
    ------
    UnusableKeyFile
        When ``data`` holds none (a ValueError).
    """
    try:
        return _load_public_key(data)
    except UnusableKeyFile:
        raise
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise UnusableKeyFile(
            f"the key file holds no P-256 public key (PEM, JWK or JWKS): {type(exc).__name__}"
        ) from exc


class UnusableKeyFile(ValueError):
    """A ``--public-key`` file that holds no usable P-256 public key."""


def _load_public_key(data: bytes) -> EllipticCurvePublicKey:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        return _p256(load_pem_public_key(text))
    document = json.loads(text)
    keys = document.get("keys", [document]) if isinstance(document, dict) else []
    for jwk in keys:
        if isinstance(jwk, dict) and jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            from chalicelib.identity.keys import parse_jwk

            return _p256(parse_jwk({"kid": "ledger", **jwk}).public_key)
    raise UnusableKeyFile("no P-256 public key (PEM, JWK or JWKS) in the file")


def ledger_public_key(target: Target) -> EllipticCurvePublicKey:
    """The stage's ledger key, read from KMS.

    Raises
    ------
    Unavailable
        When KMS cannot be asked (credentials, network, the key's policy).
    """
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    from gatehouse.errors import Unavailable

    try:
        der = target.client("kms").get_public_key(KeyId=digest_key(target))["PublicKey"]
    except Exception as exc:
        raise Unavailable(
            f"cannot read the ledger key from KMS ({type(exc).__name__}): check your AWS "
            "credentials, or pass --public-key"
        ) from exc
    return _p256(load_der_public_key(der))


def _p256(key: Any) -> EllipticCurvePublicKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("the ledger is signed with a P-256 key; this is not one")
    return key


# --- the commands ----------------------------------------------------------------------------

_FILE = click.Path(path_type=Path, readable=False)


@click.command("digest", short_help="sign the ledger's next digest now")
@click.pass_obj
def digest_command(obj: CliContext) -> int:
    """Sign the ledger's next digest now, as the hourly schedule does."""
    from gatehouse.target import resolve_target

    checkpoint = sign_digest(resolve_target(obj.state_dir))
    print(f"signed {checkpoint.key}: tree size {checkpoint.tree_size}, root {checkpoint.root}")
    return 0


def _at_least_one(ctx: click.Context, param: click.Parameter, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise click.BadParameter(f"{text!r} is not a whole number of at least 1")
    return number


@click.command(
    "verify",
    short_help="re-derive the ledger from the bucket; exit 0 only when all holds",
    help="Re-derive the ledger from the bucket; exit 0 only when all holds.\n\n"
    "Exit status: 0 every digest checked holds; 1 findings, or nothing was "
    "verified (no digest in the window; --allow-empty accepts that); 2 refused, nothing "
    "checked: a time it cannot read, a window whose end is not after its start, or a "
    "stage description that lacks the bucket or key.",
)
@click.option("--since", help=f"first digest period end to check: {accepted('--since')}")
@click.option("--until", help="last digest period end to check (as --since)")
@click.option(
    "--allow-empty",
    is_flag=True,
    help="exit 0 when no digest was checked (the metric still counts it as a finding)",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default=None,
    help="table: findings and a summary line (default); json: the report as one JSON object",
)
@click.option("--json", "as_json", is_flag=True, help="the same as -o json (kept as an alias)")
@click.option(
    "--publish-metric",
    is_flag=True,
    help="also put LedgerVerifyFindings (CloudWatch namespace Gatehouse) for the alarm: "
    "the findings, plus 1 when nothing was verified",
)
@click.option(
    "--jobs",
    callback=_at_least_one,
    metavar="N",
    help="processes that read objects (default: one per CPU; 1: only this one)",
)
@click.option(
    "--public-key",
    type=_FILE,
    help="PEM, JWK or JWKS of the stage's key (default: read it from KMS)",
)
@click.option(
    "--witness",
    "witness_vkeys",
    multiple=True,
    metavar="VKEY",
    help="a trusted witness's key (name+keyid+base64; repeat for several; default: "
    "GATEHOUSE_WITNESS_KEYS, or the local stack's witness)",
)
@click.option(
    "--require-witnesses",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="fail unless N trusted witnesses cosigned the newest checkpoint",
)
@click.pass_obj
def verify_command(
    obj: CliContext,
    *,
    since: str | None,
    until: str | None,
    allow_empty: bool,
    output: str | None,
    as_json: bool,
    publish_metric: bool,
    jobs: int | None,
    public_key: Path | None,
    witness_vkeys: tuple[str, ...],
    require_witnesses: int,
) -> int:
    """Re-derive the ledger from the bucket; see the exit statuses above."""
    from gatehouse.progress import Progress
    from gatehouse.target import resolve_target
    from gatehouse.times import parse_window

    as_json = _json_output(output, as_json)
    target = resolve_target(obj.state_dir)
    # Before any AWS call; an unreadable bound must not quietly check nothing.
    start, end = parse_window(since, until, start_option="--since", end_option="--until")
    trusted = witness_keys(target, witness_vkeys)
    if require_witnesses > len(trusted):
        raise click.UsageError(
            f"--require-witnesses {require_witnesses} needs that many trusted witness keys "
            f"(--witness VKEY); {len(trusted)} given"
        )
    with Progress("verify") as line:
        report = verify(
            target,
            since=start,
            until=end,
            public_key_file=public_key,
            jobs=jobs,
            witnesses=trusted,
            require_witnesses=require_witnesses,
            progress=verify_progress(line),
        )
    if publish_metric:
        publish_verify_metric(target, report)
    empty = verified_nothing(report)
    status = 1 if not report.ok or (empty and not allow_empty) else 0
    if as_json:
        # "ok" says no findings; a script must also be able to see that nothing was checked.
        print(json.dumps({**report.as_dict(), "verified_nothing": empty}, indent=2))
    else:
        _print_verify_report(report, target, empty=empty)
    if empty:
        print(_nothing_verified(start, end, allow_empty=allow_empty), file=sys.stderr)
    return status


def _json_output(output: str | None, as_json: bool) -> bool:
    """Whether ``-o``/``--json`` ask for JSON (``--json`` is ``-o json``; they must agree)."""
    if as_json and output not in (None, "json"):
        raise click.UsageError(f"--json and -o {output} contradict each other: give one")
    return as_json or output == "json"


def _nothing_verified(since: Any, until: Any, *, allow_empty: bool) -> str:
    from gatehouse.times import utc_text

    if since is None and until is None:
        where = "the bucket holds no digest that verifies (a new stage's first is signed hourly)"
    else:
        start = utc_text(since) if since is not None else "the first digest"
        end = utc_text(until) if until is not None else "the newest"
        where = f"no digest's period ends in the window {start} .. {end}"
    if allow_empty:
        return f"gatehouse: nothing verified: {where} (accepted: --allow-empty)"
    return (
        f"gatehouse: nothing verified: {where}; widen the window, or pass --allow-empty "
        "where an empty one is expected"
    )


def _print_verify_report(report: Report, target: Target, *, empty: bool) -> None:
    from gatehouse.terminal import visible

    for finding in report.findings:
        # Findings quote what is stored in the bucket, which an attacker may have written.
        print(visible(f"{finding.kind:18} {finding.where}"))
        print(visible(f"{'':18} {finding.detail}"))
    verdict = "NOTHING VERIFIED" if empty else "ok"
    if not report.ok:
        verdict = f"FAILED: {len(report.findings)} findings"
    print(
        f"{verdict}: {report.digests} digests, {report.objects} objects, {report.events} "
        f"events; tree size {report.tree_size}, root {report.root[:16]}... "
        f"({report.seconds:.2f} s)"
    )
    if report.cosigned_size is not None:
        print(
            f"newest checkpoint (tree size {report.cosigned_size}) cosigned by "
            f"{len(report.cosigned_by)} trusted witness(es)"
            + (f": {', '.join(report.cosigned_by)}" if report.cosigned_by else "")
        )
    if report.untrusted_refusals:
        print(
            f"note: {report.untrusted_refusals} refusal(s) published by witnesses not named "
            "trusted (--witness): not judged"
        )
    if report.undigested_objects:
        print(
            f"{report.undigested_objects} object(s) stored since the newest digest are not "
            "verified yet: the next digest names them"
        )
    if not target.ledger_anchor:
        print("note: no GATEHOUSE_LEDGER_ANCHOR: deleting the newest digests would go unnoticed")


@click.command(
    "prove", short_help="print the inclusion proof of one event (JSON, checkable offline)"
)
@click.argument("event_id", help="the event's id (event_id in the trail)")
@click.option("--out", type=_FILE, help="write the proof here instead of stdout")
@click.pass_obj
def prove_command(obj: CliContext, event_id: str, out: Path | None) -> int:
    """Print the inclusion proof of one event (JSON, checkable offline with check-proof)."""
    from gatehouse.target import resolve_target

    proof = prove(resolve_target(obj.state_dir), event_id)
    text = json.dumps(proof, indent=2)
    if out:
        out.write_text(text + "\n")
        print(f"proof of {event_id} written to {out}")
    else:
        print(text)
    return 0


@click.command("check-proof", short_help="check a proof offline, with only the stage's public key")
@click.argument("proof", type=_FILE, help="a proof file, as audit prove writes it")
@click.option("--public-key", type=_FILE, required=True, help="PEM, JWK or JWKS of the stage's key")
def check_proof_command(proof: Path, public_key: Path) -> int:
    """Check a proof offline, with only the stage's public key (no stage, no AWS).

    Exit status 0 valid, 1 invalid, 2 the proof is not JSON.
    """
    from chalicelib.ledger.proof import check_proof

    key = load_public_key(public_key.read_bytes())
    try:
        document = json.loads(proof.read_text())
    except ValueError as exc:
        print(f"gatehouse: {proof} is not JSON: {exc}", file=sys.stderr)
        return 2
    from gatehouse.terminal import visible

    problems = check_proof(document, key)
    if problems:
        for problem in problems:
            # A proof file is anyone's: its text reaches the terminal escaped.
            print(visible(f"INVALID: {problem}"))
        return 1
    print(
        visible(
            f"valid: event at leaf {document['leaf_index']} of the tree of "
            f"{document['tree_size']} (root {str(document['root'])[:16]}...), signed in "
            f"{document.get('digest_key')} (the digest named is not checked: the signature "
            "and root are)"
        )
    )
    return 0


@click.command(
    "consistency",
    short_help="write the consistency proof between two tree sizes (JSON, checkable offline)",
)
@click.argument("old_size", type=int, help="the older tree's size (leaves), at least 1")
@click.argument("new_size", type=int, help="the newer tree's size, at most the ledger's")
@click.option("--out", type=_FILE, help="write the proof here instead of stdout")
@click.pass_obj
def consistency_command(obj: CliContext, old_size: int, new_size: int, out: Path | None) -> int:
    """Write the proof that the tree of OLD_SIZE leaves is a prefix of that of NEW_SIZE.

    The JSON names both sizes and roots, the proof's nodes (RFC 9162), and
    the signed digest of exactly each size when there is one; check it
    offline with check-consistency. Exit status 2 for sizes the ledger does
    not have (OLD_SIZE below 1, above NEW_SIZE, NEW_SIZE above the ledger's).
    """
    from gatehouse.target import resolve_target

    proof = consistency(resolve_target(obj.state_dir), old_size, new_size)
    text = json.dumps(proof, indent=2)
    if out:
        out.write_text(text + "\n")
        print(f"consistency proof from {old_size} to {new_size} written to {out}")
    else:
        print(text)
    return 0


@click.command(
    "check-consistency",
    short_help="check a consistency proof offline, with only the stage's public key",
)
@click.argument("proof", type=_FILE, help="a proof file, as audit consistency writes it")
@click.option(
    "--public-key",
    type=_FILE,
    help="PEM, JWK or JWKS of the stage's key (needed when the file carries signed digests)",
)
def check_consistency_command(proof: Path, public_key: Path | None) -> int:
    """Check a consistency proof offline (no stage, no AWS).

    The path must lead to both roots, and each signed digest the file
    carries must verify with the key and name that size and root. Exit
    status 0 valid, 1 invalid (each reason printed), 2 the file is not
    JSON, or it carries digests and no --public-key was given.
    """
    from chalicelib.ledger.consistency import check_consistency_proof, signed_sides
    from gatehouse.terminal import visible

    key = load_public_key(public_key.read_bytes()) if public_key is not None else None
    try:
        document = json.loads(proof.read_text())
    except ValueError as exc:
        print(f"gatehouse: {proof} is not JSON: {exc}", file=sys.stderr)
        return 2
    if key is None and signed_sides(document):
        print(
            f"gatehouse: {proof} carries signed digests: pass --public-key to check them",
            file=sys.stderr,
        )
        return 2
    problems = check_consistency_proof(document, key)
    if problems:
        for problem in problems:
            # A proof file is anyone's: its text reaches the terminal escaped.
            print(visible(f"INVALID: {problem}"))
        return 1
    old, new = document["old"], document["new"]
    print(
        visible(
            f"valid: the tree of {old['tree_size']} leaves is a prefix of the tree of "
            f"{new['tree_size']} leaves (stage {document.get('stage')}): no leaf before "
            f"{old['tree_size']} was changed, removed or reordered"
        )
    )
    for name, side in (("old", old), ("new", new)):
        attested = (
            f"signed in {side['digest_key']}"
            if side.get("digest") is not None
            else "not signed in this file: compare it with a root you trust"
        )
        print(visible(f"  {name} root {side['root']}  {attested}"))
    return 0


@click.command("keys", short_help="print what an auditor checks the ledger with: origin and keys")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["json", "pem", "jwks"]),
    default="json",
    show_default=True,
    help="json: origin, stage key (JWK) and witness keys; pem or jwks: the stage key alone",
)
@click.pass_obj
def keys_command(obj: CliContext, output: str) -> int:
    """Print the ledger's origin, the stage's ledger key and the trusted witnesses' keys.

    Give this to auditors (or publish it): with it, `verify`, `check-proof`,
    `check-consistency` and `check-evidence` need nothing else from you.
    """
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from chalicelib.aws.signers import jwk_thumbprint
    from chalicelib.identity.keys import public_jwk
    from gatehouse.target import resolve_target

    target = resolve_target(obj.state_dir)
    public_key = ledger_public_key(target)
    if output == "pem":
        print(public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode())
        return 0
    jwk = public_jwk(public_key, kid="")
    jwk["kid"] = jwk_thumbprint(jwk)
    if output == "jwks":
        print(json.dumps({"keys": [jwk]}, indent=2))
        return 0
    described = {
        "stage": target.stage,
        "origin": target.ledger_origin,
        "stage_key": jwk,
        "witnesses": [key.vkey() for key in witness_keys(target, ())],
    }
    print(json.dumps(described, indent=2))
    return 0
