"""``gatehouse demo`` (``make demo``): the whole stack, real traffic, what happened.

Starts ``gatehouse dev`` as a separate process (as a user would), waits for
its state file, sends real requests through the gateway over real HTTP,
flushes the audit queue, reads the records back from the Object Lock bucket,
prints all of it, stops the stack, and exits 0 only if every request ended
the way it should have.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from gatehouse.dev.process import StackStartFailed, start_dev_process

if TYPE_CHECKING:
    from gatehouse.state import DevState
    from gatehouse.target import Target

STARTUP_SECONDS = 90
STOP_SECONDS = 20


@dataclass(frozen=True)
class Scenario:
    """One request of the demo and what must come of it."""

    title: str
    method: str
    path: str
    expected_status: int
    expected_reason: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Exchange:
    """A request sent and its answer."""

    scenario: Scenario
    status: int
    request_id: str
    body: dict[str, Any]


@click.command("demo", short_help="start the local stack, send real traffic, show what happened")
def demo() -> int:
    """Start the local stack, send real traffic through it, and show what happened.

    Exit status 0 only if every request ended the way it should have.
    """
    return run_demo()


def run_demo() -> int:
    """Run the demo; return the exit status."""
    with tempfile.TemporaryDirectory(prefix="gatehouse-demo-") as state_dir:
        parts = "moto, dev OIDC issuer, demo backend, gateway, audit writer"
        print(f"Starting the local stack ({parts})...", flush=True)
        stack = start_dev_process(
            Path(state_dir), environment={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        try:
            state = stack.wait_for_state(STARTUP_SECONDS)
            return _show(state, Path(state_dir))
        except StackStartFailed as exc:
            print(exc, file=sys.stderr)
            return 1
        finally:
            code = stack.interrupt(STOP_SECONDS)
            print(f"\nLocal stack stopped ({'killed' if code is None else f'exit status {code}'}).")


def scenarios(state: DevState) -> list[Scenario]:
    """The requests, with tokens minted by the dev issuer."""
    from gatehouse.dev import idp

    keys = {alg: _signing_key(state, alg) for alg in ("RS256", "ES256")}

    def token(key: idp.SigningKey | tuple[str, str, Any], **claims: Any) -> str:
        return idp.mint_token(key, issuer=state.issuer, audience=state.audience, **claims)

    alice = token(
        keys["ES256"],
        subject="alice",
        email="alice@example.com",
        groups=["engineering"],
        amr=["pwd", "mfa"],
    )
    carol = token(
        keys["RS256"],
        subject="carol",
        email="carol@contractor.example",
        groups=["engineering", "contractors"],
    )
    expired = token(
        keys["RS256"],
        subject="alice",
        email="alice@example.com",
        groups=["engineering"],
        ttl_seconds=-300,
    )
    rogue_key = ("RS256", keys["RS256"].kid + "-rogue", idp.generate_key("RS256"))
    forged = token(
        rogue_key, subject="mallory", email="mallory@example.com", groups=["engineering"]
    )
    forged_assertion = idp.mint_token(
        rogue_key, issuer=state.gateway_url, audience="demo", subject="root", groups=["admins"]
    )
    bob = token(
        keys["RS256"], subject="bob", email="bob@example.com", groups=["engineering"], amr=["pwd"]
    )
    dana = token(keys["ES256"], subject="dana", email="dana@example.com", groups=["oncall"])
    return [
        Scenario(
            "allowed: engineer reads the API",
            "GET",
            "/api/projects/42/files?tag=red&tag=blue",
            200,
            "allow_rule_matched",
            {"Authorization": f"Bearer {alice}"},
        ),
        Scenario(
            "denied by policy: contractor reads billing",
            "GET",
            "/api/billing/invoices",
            403,
            "deny_rule_matched",
            {"Authorization": f"Bearer {carol}"},
        ),
        Scenario(
            "expired token",
            "GET",
            "/api/projects",
            401,
            "token_expired",
            {"Authorization": f"Bearer {expired}"},
        ),
        Scenario(
            "token signed by an unknown key",
            "GET",
            "/api/projects",
            401,
            "unknown_key",
            {"Authorization": f"Bearer {forged}"},
        ),
        Scenario("no token", "GET", "/api/projects", 401, "missing_credentials", {}),
        Scenario(
            "forged X-Gatehouse-Assertion from the client",
            "POST",
            "/api/projects",
            200,
            "allow_rule_matched",
            {
                "Authorization": f"Bearer {alice}",
                "X-Gatehouse-Assertion": forged_assertion,
                "Content-Type": "application/json",
            },
        ),
        Scenario(
            "denied by a condition: engineer opens the admin console without MFA",
            "GET",
            "/admin/console",
            403,
            "mfa_required",
            {"Authorization": f"Bearer {bob}"},
        ),
        Scenario(
            "allowed: the same console with MFA",
            "GET",
            "/admin/console",
            200,
            "allow_rule_matched",
            {"Authorization": f"Bearer {alice}"},
        ),
        Scenario(
            "break-glass: on-call engineer, no rule allows, justification given",
            "DELETE",
            "/api/cache",
            200,
            "break_glass",
            {
                "Authorization": f"Bearer {dana}",
                "X-Gatehouse-Justification": "INC-4711 stale cache takes checkout down",
            },
        ),
        Scenario(
            "ambiguous path: an encoded dot segment",
            "GET",
            "/api/%2e%2e/admin/console",
            400,
            "ambiguous_path",
            {"Authorization": f"Bearer {alice}"},
        ),
        Scenario(
            "ambiguous path: a # the backend would cut billing's path at (contractor)",
            "GET",
            "/api/billing#invoices",
            400,
            "ambiguous_path",
            {"Authorization": f"Bearer {carol}"},
        ),
    ]


def _signing_key(state: DevState, alg: str) -> Any:
    from cryptography.hazmat.primitives import serialization

    from gatehouse.dev.idp import SigningKey

    info = state.idp_keys[alg]
    private_key = serialization.load_pem_private_key(Path(info["path"]).read_bytes(), password=None)
    return SigningKey(alg, info["kid"], private_key, Path(info["path"]))  # type: ignore[arg-type]


def send(state: DevState, scenario: Scenario) -> Exchange:
    """Send one scenario's request over HTTP."""
    parts = urlsplit(state.gateway_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    body = json.dumps({"name": "demo"}).encode() if scenario.method == "POST" else None
    try:
        connection.request(scenario.method, scenario.path, body=body, headers=scenario.headers)
        response = connection.getresponse()
        payload = response.read()
        request_id = response.getheader("x-amzn-RequestId", "")
    finally:
        connection.close()
    try:
        parsed = json.loads(payload) if payload else {}
    except ValueError:
        parsed = {"raw": payload[:200].decode(errors="replace")}
    return Exchange(
        scenario, response.status, request_id, parsed if isinstance(parsed, dict) else {}
    )


def _show(state: DevState, state_dir: Path) -> int:
    from gatehouse.demo_sign_in import browser_session

    print(f"  gateway {state.gateway_url}   issuer {state.issuer}   backend {state.backend_url}\n")
    exchanges = [send(state, scenario) for scenario in scenarios(state)]
    exchanges += _administration(state, state_dir)
    events = _stored_events(state_dir, expected=len(exchanges))
    failures = 0
    for number, exchange in enumerate(exchanges, 1):
        failures += _print_exchange(number, exchange, events)
    _print_audit(events)
    verified = _print_verification(state_dir)
    failures += 0 if _print_aws_correlation(state, state_dir) else 1
    failures += 0 if _write_report(state_dir) else 1
    failures += 0 if _query_trail(state_dir) else 1
    failures += 0 if browser_session(state, state_dir) else 1
    failures += 0 if _print_alerts(state_dir) else 1
    if failures:
        print(f"\n{failures} request(s) did not end as expected.")
        return 1
    if not verified:
        print("\nThe ledger did not verify.")
        return 1
    print("\nEvery request ended as expected, and every one of them is in the audit trail.")
    return 0


# The alerts the demo's traffic raises on purpose (docs/detection.md): the on-call
# engineer's break-glass request, and the browser session used after sign-out.
EXPECTED_ALERTS = frozenset({"break-glass-used", "revoked-session-used"})


def _print_alerts(state_dir: Path, deadline_seconds: float = 20.0) -> bool:
    """The alerts detection raised (as the console prints them): exactly the expected rules."""
    import time

    from chalicelib.detect.alerts import alert_line
    from gatehouse.target import resolve_target

    target = resolve_target(state_dir)
    table = target.client("dynamodb")
    deadline = time.monotonic() + deadline_seconds
    while True:
        items = table.query(
            TableName=target.state_table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :alert)",
            ExpressionAttributeValues={":pk": {"S": "DETECT"}, ":alert": {"S": "ALERT#"}},
        )["Items"]
        alerts = sorted(
            (json.loads(item["alert"]["S"]) for item in items), key=lambda a: a["raised_at"]
        )
        fired = {alert["rule"] for alert in alerts}
        if fired >= EXPECTED_ALERTS or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    print(
        f"\nDetection: {len(alerts)} alert(s), expected from {', '.join(sorted(EXPECTED_ALERTS))}:"
    )
    for alert in alerts:
        print(f"  {alert_line(alert)}")
    if fired != EXPECTED_ALERTS:
        unexpected, missing = sorted(fired - EXPECTED_ALERTS), sorted(EXPECTED_ALERTS - fired)
        print(f"  unexpected: {unexpected}; missing: {missing}")
        return False
    return True


def _print_aws_correlation(state: DevState, state_dir: Path) -> bool:
    """One request through the AWS route, and the CloudTrail record it caused (emulated locally)."""
    import gzip

    from gatehouse.dev import idp
    from gatehouse.target import resolve_target

    token = idp.mint_token(
        _signing_key(state, "RS256"), issuer=state.issuer, audience=state.audience,
        subject="alice", email="alice@example.com", groups=["engineering"],
    )  # fmt: skip
    scenario = Scenario(
        "AWS upstream: SigV4 with alice's own STS session", "GET", "/aws/orders/42", 200,
        "allow_rule_matched", {"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    exchange = send(state, scenario)
    aws = exchange.body.get("aws") or {}
    print(f"\nAWS correlation: {scenario.method} {scenario.path} -> HTTP {exchange.status}")
    print(f"  upstream signature {aws.get('signature', 'REJECTED')}: role {aws.get('role_arn')}")
    print(f"  session {aws.get('session_name')}  SourceIdentity {aws.get('source_identity')}")
    print(f"  access key id {aws.get('access_key_id')}  (also in the response event's aws section)")
    s3 = resolve_target(state_dir).client("s3")
    prefix = f"AWSLogs/{state.account_id}/CloudTrail/{state.region}/"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        listed = s3.list_objects_v2(Bucket=state.trail_bucket, Prefix=prefix)
        for item in listed.get("Contents", []):
            body = s3.get_object(Bucket=state.trail_bucket, Key=item["Key"])["Body"].read()
            for record in json.loads(gzip.decompress(body))["Records"]:
                if f"gatehouse/{exchange.request_id}" in record.get("userAgent", ""):
                    context = record["userIdentity"]["sessionContext"]
                    print(f"  CloudTrail record (emulated locally): s3://{state.trail_bucket}/")
                    print(f"    {item['Key']}")
                    print(
                        f"    {record['eventSource']} {record['eventName']} by "
                        f"{record['userIdentity']['arn']}, sourceIdentity "
                        f"{context['sourceIdentity']}"
                    )
                    return exchange.status == 200 and aws.get("signature") == "valid"
        time.sleep(0.5)
    print("  no CloudTrail record names this request")
    return False


def _print_verification(state_dir: Path) -> bool:
    """Sign a digest now, then verify the whole ledger as an auditor would."""
    from gatehouse.audit_commands import sign_digest, verify
    from gatehouse.audit_commands.ledger import witness_keys
    from gatehouse.target import resolve_target

    target = resolve_target(state_dir)
    checkpoint = sign_digest(target)
    print(f"\nLedger: digest signed with the stage's KMS key: {checkpoint.key}")
    print(f"  tree size {checkpoint.tree_size}, root {checkpoint.root}")
    print(f"  anchored at {target.ledger_anchor}")
    print(f"  checkpoint (C2SP signed note, {len(checkpoint.note.encode())} bytes):")
    for line in checkpoint.note.splitlines():
        print(f"    {line[:100]}")
    witnesses = witness_keys(target, ())
    for witness in witnesses:
        cosigned = _wait_for_cosignature(target, witness.key_id.hex(), checkpoint.key)
        print(f"  witness {witness.name}: {'cosigned' if cosigned else 'NOT cosigned'}")
    report = verify(target, witnesses=witnesses, require_witnesses=len(witnesses))
    print(
        f"gatehouse audit verify --require-witnesses {len(witnesses)}: "
        f"{'ok' if report.ok else 'FAILED'}: {report.digests} digests, "
        f"{report.objects} objects, {report.events} events re-derived from the bucket, newest "
        f"checkpoint cosigned by {', '.join(report.cosigned_by) or 'no witness'} "
        f"({report.seconds:.2f} s)"
    )
    for finding in report.findings:
        print(f"  {finding.kind}: {finding.where}: {finding.detail}")
    return report.ok


def _wait_for_cosignature(target: Target, key_id: str, digest: str) -> bool:
    """Whether the witness ``key_id`` published its cosignature of ``digest`` within 15 s."""
    from botocore.exceptions import ClientError

    from chalicelib.ledger.layout import cosigned_key

    s3 = target.client("s3")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            s3.head_object(Bucket=target.audit_bucket, Key=cosigned_key(key_id, digest))
            return True
        except ClientError:
            time.sleep(0.25)
    return False


def _write_report(state_dir: Path) -> bool:
    """The audit report of the last hour (all of this demo) into .gatehouse/report/."""
    from datetime import UTC, datetime, timedelta

    from gatehouse.audit_commands import report
    from gatehouse.query.errors import QueryError
    from gatehouse.report import ReportError, Window
    from gatehouse.target import resolve_target

    now = datetime.now(UTC)
    window = Window(now - timedelta(hours=1), now + timedelta(minutes=1))
    out = Path(".gatehouse", "report").resolve()
    try:  # the cache in the demo's own state directory: every run starts from an empty one
        written = report(resolve_target(state_dir), window, out, "local", state_dir / "cache")
    except (ReportError, QueryError) as exc:
        print(f"\ngatehouse audit report FAILED: {exc}")
        return False
    print(f"\nAudit report (report.json, {len(written.csv)} CSV tables): {written.html}")
    return True


def _query_trail(state_dir: Path) -> bool:
    """One named query (route_usage over the last hour) on the local engine, as a table."""
    from datetime import UTC, datetime, timedelta

    from gatehouse.query.command import build_engine, format_table
    from gatehouse.query.errors import QueryError
    from gatehouse.target import resolve_target

    now = datetime.now(UTC)
    params = {
        "from": (now - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S"),
        "to": (now + timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S"),
    }
    try:
        engine = build_engine(resolve_target(state_dir), "local", state_dir / "cache")
        result = engine.run_named("route_usage", params)
    except QueryError as exc:
        print(f"\ngatehouse audit query FAILED: {exc}")
        return False
    print(
        "\ngatehouse audit query --named route_usage --engine local "
        f"--param from='{params['from']}' --param to='{params['to']}'"
        "\n  (the Athena SQL of infra/athena/queries, run by DuckDB over the stack's bucket):"
    )
    shown = ["route_id", "requests", "allowed", "denied", "gateway_only", "latency_p50_ms"]
    indexes = [result.columns.index(name) for name in shown if name in result.columns]
    rows = [tuple(row[index] for index in indexes) for row in result.rows]
    table = format_table([result.columns[index] for index in indexes], rows)
    print("  " + table.replace("\n", "\n  "))
    return bool(result.rows)


def _administration(state: DevState, state_dir: Path) -> list[Exchange]:
    """A JIT grant requested, approved and used; a policy change applied and replayed."""
    from gatehouse import grant_commands, policy_commands, policy_output
    from gatehouse.dev import idp
    from gatehouse.target import resolve_target

    target = resolve_target(state_dir)
    key = _signing_key(state, "RS256")

    def token(subject: str, groups: list[str]) -> str:
        email = f"{subject}@example.com"
        return idp.mint_token(
            key, issuer=state.issuer, audience=state.audience, subject=subject, email=email,
            groups=groups,
        )  # fmt: skip

    erin, sam = token("erin", ["support"]), token("sam", ["security"])
    # Through the stage's grant API, as `gatehouse grant request|approve` do.
    grant = grant_commands.GrantApiClient(state.gateway_url, erin).call(
        "POST",
        "",
        body={
            "routes": ["demo"],
            "actions": ["GET"],
            "paths": ["/api/customers/**"],
            "duration": "15m",
            "justification": "TICKET-9: customer escalation",
        },
    )
    approved = grant_commands.GrantApiClient(state.gateway_url, sam).call(
        "POST", f"/{grant['id']}/approve"
    )
    print("Administration, as operators would do it with the `gatehouse` CLI:")
    print(f"  grant request  {grant['id']} by erin (support): GET /api/customers/** for 15m")
    print(f"  grant approve  by sam (security), in force until {approved['expires_at']}\n")

    frank = token("frank", ["auditors"])
    document = policy_commands.load_policy_file(_demo_policy_file())
    text = json.dumps(document).replace("${BACKEND_URL}", state.backend_url)
    document = json.loads(text)
    document["rules"].append(
        {
            "id": "auditors-read-reports",
            "effect": "allow",
            "routes": ["demo"],
            "subjects": {"groups": ["auditors"]},
            "actions": ["GET"],
            "paths": ["/reports/**"],
        }
    )
    change = policy_commands.admin(target).apply(document, source_name="demo change")
    for line in policy_output.describe_change(change, "policy apply"):
        print(f"  {line}")
    time.sleep(1.5)  # the stack refreshes its policy every second
    replay = _replay(target, frank)
    print(f"  policy explain frank GET /reports/q3: {replay}\n")
    later = [
        Scenario(
            "JIT grant: support engineer, approved by security",
            "GET",
            "/api/customers/42",
            200,
            "grant_matched",
            {"Authorization": f"Bearer {erin}"},
        ),
        Scenario(
            "policy change in force: auditors may now read reports",
            "GET",
            "/reports/q3",
            200,
            "allow_rule_matched",
            {"Authorization": f"Bearer {frank}"},
        ),
    ]
    return [send(state, scenario) for scenario in later]


def _replay(target: Any, token: str) -> str:
    from chalicelib.policy import AccessRequest
    from gatehouse import grant_commands, policy_explain

    identity = grant_commands.verify_token(target, token)
    request = AccessRequest("gatehouse.local", "GET", "/reports/q3")
    answers = []
    for version in (1, 2):
        decision = policy_explain.load_policy(target, version).evaluate(identity, request)
        verdict = "allow" if decision.allowed else "deny"
        answers.append(f"v{version} {verdict} {[r.value for r in decision.reasons]}")
    return ", ".join(answers)


def _demo_policy_file() -> Path:
    from gatehouse.dev.stack import DEMO_POLICY

    return DEMO_POLICY


def _stored_events(state_dir: Path, expected: int) -> list[dict[str, Any]]:
    """Flush the queue and read everything back, polling until all requests are stored."""
    from gatehouse.audit_commands import flush, tail
    from gatehouse.audit_commands.queue import stage_detector
    from gatehouse.target import resolve_target

    target = resolve_target(state_dir)
    detector = stage_detector(target)  # what the demo stores is checked like the rest
    deadline = time.monotonic() + 30
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        flush(target, detector=detector)
        events = tail(target, 1000)
        decided = {e["request"]["id"] for e in events if e["event_type"] == "decision"}
        if len(decided) >= expected:
            break
        time.sleep(0.2)
    return events


def _print_exchange(number: int, exchange: Exchange, events: list[dict[str, Any]]) -> int:
    scenario = exchange.scenario
    mine = [e for e in events if (e["request"] or {}).get("id") == exchange.request_id]
    decision = next((e["decision"] for e in mine if e["event_type"] == "decision"), None)
    reasons = decision["reasons"] if decision else []
    ok = exchange.status == scenario.expected_status and scenario.expected_reason in reasons
    outcome = decision["outcome"] if decision else "NOT AUDITED"
    expected = f"   <-- expected HTTP {scenario.expected_status} {scenario.expected_reason}"
    print(f"{number}. {scenario.title}")
    print(f"   {scenario.method} {scenario.path}  ->  HTTP {exchange.status}")
    print(f"   decision: {outcome} {reasons}{'' if ok else expected}")
    if decision and decision["matched_rules"]:
        rules = ", ".join(decision["matched_rules"])
        print(f"   matched rules: {rules} (policy v{decision['policy_version']})")
    if decision and decision.get("detail"):
        print(f"   detail: {decision['detail']}")
    elevation = next((e["elevation"] for e in mine if e["elevation"]), None)
    if elevation:
        print(
            f"   elevation: break_glass={elevation['break_glass']} grant={elevation['grant_id']}"
            f" justification={elevation['justification']!r}"
        )
    if exchange.status == 200:
        ok = _print_backend_view(exchange.body, mine) and ok
    kinds = ", ".join(e["event_type"] for e in mine) or "none"
    print(f"   audit events: {kinds}   request id {exchange.request_id}\n")
    return 0 if ok else 1


def _print_backend_view(seen: dict[str, Any], mine: list[dict[str, Any]]) -> bool:
    assertion = seen.get("assertion", {})
    claims = assertion.get("claims", {})
    headers = {name.lower(): values for name, values in seen.get("headers", {}).items()}
    indent = " " * 16
    print(f"   backend saw: {seen.get('method')} {seen.get('path')} query={seen.get('query')}")
    print(f"{indent}X-Forwarded-For={headers.get('x-forwarded-for')}")
    print(f"{indent}Authorization forwarded={'authorization' in headers}")
    if assertion.get("valid"):
        print(f"{indent}assertion VALID (verified by PyJWT with the gateway's JWKS):")
        print(
            f"{indent}  sub={claims.get('sub')} email={claims.get('email')} "
            f"groups={claims.get('groups')} aud={claims.get('aud')} rid={claims.get('rid')}"
        )
    else:
        print(f"{indent}assertion INVALID: {assertion.get('error')}")
    response_event = next((e for e in mine if e["event_type"] == "response"), None)
    if response_event and response_event["anomalies"]:
        flagged = ", ".join(response_event["anomalies"])
        print(f"   audit flagged: {flagged} (the client's header was dropped)")
    return bool(assertion.get("valid")) and len(headers.get("x-gatehouse-assertion", [])) == 1


def _print_audit(events: list[dict[str, Any]]) -> None:
    from gatehouse.audit_commands import format_event

    print(f"Audit records read back from the Object Lock bucket ({len(events)} events):")
    for event in events:
        print("  " + format_event(event))
    if events:
        print("\nOne full record (the first decision):")
        first = next(e for e in events if e["event_type"] == "decision")
        print("  " + json.dumps(first, indent=2).replace("\n", "\n  "))
