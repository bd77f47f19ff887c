"""An approver reads exactly what they approve, and approves only someone else's grant.

Through the real handlers (``app.app`` on API Gateway events, moto behind)
and the real ``gatehouse`` CLI (``cli.main``), whose HTTP goes to a loopback
server that hands each request to ``app.app`` as API Gateway would:

- the grant API refuses control, format (bidi, zero-width, tag), separator
  and lone surrogate characters in every field a person reads, and any
  whitespace in globs and identifiers;
- an approval needs both verified emails, and ``erin+x@`` is ``erin@``;
- the CLI escapes client text wherever it prints it for people, even text
  the API would refuse (written straight into the table, as an attacker with
  table access could), and ``grant approve`` shows the scope and asks first;
- ``gatehouse audit tail`` shows a client's hostile path escaped.
"""

from __future__ import annotations

import json
import os
import pty
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest

import app
from chalicelib.grants import Grant
from chalicelib.grants.items import grant_item
from chalicelib.policy.globs import compile_glob
from gatehouse import cli
from gatehouse.dev.lambda_context import LambdaContext
from tests.functional.conftest import queued_events, store
from tests.functional.test_access_policy import decide
from tests.functional.test_grant_api import (
    REQUEST_BODY,
    call,
    grant_event,
    grant_events,
    token_for,
)
from tests.helpers import ISSUER, claims, make_token

if TYPE_CHECKING:
    from chalicelib.container import Container
    from chalicelib.policy.grant import GrantStatus
    from gatehouse.dev.bootstrap import Resources

GRANTS_PATH = "/.gatehouse/grants"
# Characters that rewrite, reorder or hide what a terminal shows: never printed raw.
HOSTILE = "\x1b\r\x07\u202e\u2066\u2069\u200b"


def person(key: Any, sub: str, groups: list[str], email: str | None) -> str:
    """A token for ``sub``; ``email=None`` leaves the claim out altogether."""
    return make_token(key, "RS256", "rsa-1", claims(sub=sub, groups=groups, email=email))


# --- (A) 1: the API refuses what could hide a scope from its approver --------------------


@pytest.mark.parametrize(
    ("changes", "label", "character"),
    [
        pytest.param({"paths": ["/api/x\u202e**/"]}, "path glob 1", "U+202E", id="glob RLO"),
        pytest.param({"paths": ["\x1b[2K"]}, "path glob 1", "U+001B", id="glob erase line"),
        pytest.param(
            {"paths": ["/api/customers/**", "/api/\x1b[1A\x1b[2K/**"]},
            "path glob 2",
            "U+001B",
            id="second glob cursor up",
        ),
        pytest.param({"paths": ["/api/\r/**"]}, "path glob 1", "U+000D", id="glob CR"),
        pytest.param({"paths": ["/api/\x00/**"]}, "path glob 1", "U+0000", id="glob NUL"),
        pytest.param({"paths": ["/api/\x7f/**"]}, "path glob 1", "U+007F", id="glob DEL"),
        pytest.param({"paths": ["/api/\x9b2K/**"]}, "path glob 1", "U+009B", id="glob C1 CSI"),
        pytest.param(
            {"paths": ["/api/\u2066x\u2069/**"]}, "path glob 1", "U+2066", id="glob isolate"
        ),
        pytest.param({"paths": ["/api/\u202a/**"]}, "path glob 1", "U+202A", id="glob LRE"),
        pytest.param({"paths": ["/api/\u200b**"]}, "path glob 1", "U+200B", id="glob ZWSP"),
        pytest.param({"paths": ["/api/a\u200db"]}, "path glob 1", "U+200D", id="glob ZWJ"),
        pytest.param({"paths": ["/api/\u200f/**"]}, "path glob 1", "U+200F", id="glob RLM"),
        pytest.param({"paths": ["/api/\ufeff/**"]}, "path glob 1", "U+FEFF", id="glob BOM"),
        pytest.param({"paths": ["/api/\U000e0041"]}, "path glob 1", "U+E0041", id="glob tag"),
        pytest.param({"paths": ["/api/\u2028/**"]}, "path glob 1", "U+2028", id="glob LS"),
        pytest.param({"paths": ["/api/\u2029/**"]}, "path glob 1", "U+2029", id="glob PS"),
        pytest.param({"paths": ["/api/\ud800/**"]}, "path glob 1", "U+D800", id="glob surrogate"),
        pytest.param({"paths": ["/api/ /**"]}, "path glob 1", "U+0020", id="glob space"),
        pytest.param({"paths": ["/api/\t**"]}, "path glob 1", "U+0009", id="glob tab"),
        pytest.param({"paths": ["/api/a\u00a0/**"]}, "path glob 1", "U+00A0", id="glob NBSP"),
        pytest.param({"paths": ["/api/\u3000/**"]}, "path glob 1", "U+3000", id="glob CJK space"),
        pytest.param({"routes": ["demo\u202e"]}, "route 1", "U+202E", id="route RLO"),
        pytest.param({"routes": ["demo", "demo "]}, "route 2", "U+0020", id="route space"),
        pytest.param({"routes": ["de\x1b[8mmo"]}, "route 1", "U+001B", id="route conceal"),
        pytest.param({"actions": ["GET\x1b[2K"]}, "action 1", "U+001B", id="action escape"),
        pytest.param(
            {"justification": "TICKET-9 \u202egnp.exe"}, "justification", "U+202E", id="just RLO"
        ),
        pytest.param(
            {"justification": "TICKET-9\x1b]8;;http://evil.example\x07x"},
            "justification",
            "U+001B",
            id="just OSC-8 link",
        ),
        pytest.param(
            {"justification": "TICKET-9\rapproved by CISO"}, "justification", "U+000D", id="just CR"
        ),
        pytest.param(
            {"justification": "TICKET-9\u2028forged"}, "justification", "U+2028", id="just LS"
        ),
        pytest.param(
            {"justification": "TICKET\u200b-9"}, "justification", "U+200B", id="just ZWSP"
        ),
        pytest.param(
            {"justification": "TICKET-9 \udc80"}, "justification", "U+DC80", id="just surrogate"
        ),
    ],
)
def test_a_request_a_reviewer_could_misread_is_refused_and_audited(
    granting: Container,
    aws: Resources,
    rsa_key: Any,
    changes: dict[str, Any],
    label: str,
    character: str,
) -> None:
    erin = token_for(rsa_key, "erin", ["support"])

    status, answer = call("POST", GRANTS_PATH, erin, {**REQUEST_BODY, **changes})

    assert status == 400, answer
    assert f"{label} holds {character}" in answer["message"]
    # Named, never echoed: the refusal is safe to print anywhere.
    refused = chr(int(character.removeprefix("U+"), 16))
    assert refused == " " or refused not in answer["message"]
    assert store(aws).list_grants() == []
    [event] = grant_events(aws)
    assert (event["grant"]["action"], event["grant"]["attempted"]) == ("refused", "request")
    assert event["grant"]["status"] == 400
    assert event["principal"]["subject"] == "erin"


def test_every_problem_is_named_at_once(granting: Container, aws: Resources, rsa_key: Any) -> None:
    body = {
        **REQUEST_BODY,
        "routes": ["demo\u202e"],
        "paths": ["/ok/**", "/x\u200b"],
        "justification": "a\rb",
    }

    status, answer = call("POST", GRANTS_PATH, token_for(rsa_key, "erin", ["support"]), body)

    assert status == 400
    for part in ("route 1 holds U+202E", "path glob 2 holds U+200B", "justification holds U+000D"):
        assert part in answer["message"]
    assert store(aws).list_grants() == []


@pytest.mark.parametrize(
    "justification",
    [
        pytest.param("Kunde München — 顧客 ✓", id="other scripts"),
        pytest.param("TICKET-9: two  spaces and\u00a0a no-break space", id="spaces"),
        pytest.param("مرحبا TICKET-9", id="right-to-left script without controls"),
    ],
)
def test_justifications_in_any_script_with_spaces_are_fine(
    granting: Container, aws: Resources, rsa_key: Any, justification: str
) -> None:
    body = {**REQUEST_BODY, "justification": justification}

    status, answer = call("POST", GRANTS_PATH, token_for(rsa_key, "erin", ["support"]), body)

    assert status == 201, answer
    assert store(aws).get(answer["id"]).justification == justification


def test_a_reason_with_an_escape_sequence_is_refused(
    granting: Container, aws: Resources, rsa_key: Any
) -> None:
    erin = token_for(rsa_key, "erin", ["support"])
    _, pending = call("POST", GRANTS_PATH, erin, REQUEST_BODY)

    status, answer = call(
        "POST", f"{GRANTS_PATH}/{pending['id']}/revoke", erin, {"reason": "done\x1b[2K"}
    )

    assert status == 400
    assert "the reason holds U+001B" in answer["message"]
    assert store(aws).get(pending["id"]).status == "pending"


# --- (B) one mailbox, one person; unknown mailboxes approve nothing ----------------------


@pytest.mark.parametrize(
    ("requester_email", "approver_email", "status", "message"),
    [
        pytest.param(
            None,
            "sam@example.com",
            403,
            "its requester has no verified email, so one person, one mailbox cannot be",
            id="requester has no email",
        ),
        pytest.param(
            "erin@example.com",
            None,
            403,
            "the approver has no verified email",
            id="approver has no email",
        ),
        pytest.param(
            None, None, 403, "neither its requester nor the approver has", id="neither has one"
        ),
        pytest.param(
            "erin@example.com", "erin+sec@example.com", 403, "their own grant", id="approver +tag"
        ),
        pytest.param(
            "erin+jit@example.com", "erin@example.com", 403, "their own grant", id="requester +tag"
        ),
        pytest.param(
            "erin+a@example.com", "erin+b@example.com", 403, "their own grant", id="both tagged"
        ),
        pytest.param(
            "erin@example.com",
            "ERIN+Sec@Example.COM",
            403,
            "their own grant",
            id="tagged and shouting",
        ),
        pytest.param(
            "erin@example.com", "erin@example.com.", 403, "their own grant", id="root dot"
        ),
        pytest.param(
            "erin@b\u00fccher.example",
            "erin@xn--bcher-kva.example",
            403,
            "their own grant",
            id="IDN spelled two ways",
        ),
        pytest.param(
            "erin@example.com",
            '"erin"@example.com',
            403,
            "is not a plain address",
            id="quoted local part",
        ),
        pytest.param(
            "erin@[127.0.0.1]", "sam@example.com", 403, "is not a plain address", id="literal"
        ),
        pytest.param("erin@example.com", "sam@example.com", 200, None, id="different people"),
        pytest.param(
            "erin@example.com", "erinx+erin@example.com", 200, None, id="a tag is not a prefix"
        ),
        pytest.param("erin@example.com", "erin@example.org", 200, None, id="another domain"),
    ],
)
def test_an_approval_needs_two_known_and_different_mailboxes(
    granting: Container,
    aws: Resources,
    rsa_key: Any,
    requester_email: str | None,
    approver_email: str | None,
    status: int,
    message: str | None,
) -> None:
    erin = person(rsa_key, "erin", ["support"], requester_email)
    _, pending = call("POST", GRANTS_PATH, erin, REQUEST_BODY)
    queued_events(aws)
    approver = person(rsa_key, "sam", ["security"], approver_email)

    answer = call("POST", f"{GRANTS_PATH}/{pending['id']}/approve", approver)

    assert answer[0] == status, answer
    [event] = grant_events(aws)
    assert event["principal"]["subject"] == "sam"
    if message is None:
        assert store(aws).get(pending["id"]).status == "approved"
        assert event["grant"]["action"] == "approved"
        return
    assert message in answer[1]["message"]
    assert store(aws).get(pending["id"]).status == "pending"
    assert store(aws).live_grants() == []
    assert (event["grant"]["action"], event["grant"]["status"]) == ("refused", 403)


def test_a_grant_without_a_known_mailbox_can_still_be_denied(
    granting: Container, aws: Resources, rsa_key: Any
) -> None:
    # Denying grants nothing: no proof of two people is needed to say no.
    erin = person(rsa_key, "erin", ["support"], None)
    _, pending = call("POST", GRANTS_PATH, erin, REQUEST_BODY)

    status, denied = call(
        "POST", f"{GRANTS_PATH}/{pending['id']}/deny", token_for(rsa_key, "sam", ["security"])
    )

    assert (status, denied["status"]) == (200, "denied")


def test_a_plus_addressed_second_account_may_not_deny_either(
    granting: Container, aws: Resources, rsa_key: Any
) -> None:
    _, pending = call("POST", GRANTS_PATH, token_for(rsa_key, "erin", ["support"]), REQUEST_BODY)
    alias = person(rsa_key, "erin-2", ["security"], "erin+sec@example.com")

    status, answer = call("POST", f"{GRANTS_PATH}/{pending['id']}/deny", alias)

    assert status == 403
    assert "their own grant" in answer["message"]
    assert store(aws).get(pending["id"]).status == "pending"


# --- the CLI, against the real handler -----------------------------------------------------


class _ToTheHandler(BaseHTTPRequestHandler):
    """Hands each HTTP request to ``app.app`` as an API Gateway proxy event."""

    def _forward(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else None
        authorization = self.headers.get("Authorization")
        token = authorization.removeprefix("Bearer ") if authorization else None
        event = grant_event(self.command, parts.path, token, body)
        query = dict(parse_qsl(parts.query))
        if query:
            event["queryStringParameters"] = query
            event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
        response = app.app(event, LambdaContext(aws_request_id="lambda-grants"))
        payload = response["body"].encode()
        self.send_response(response["statusCode"])
        for name, value in response["headers"].items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _forward

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def gateway(granting: Container, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The stage's grant API on loopback; the CLI finds it through GATEHOUSE_GATEWAY_URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ToTheHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("GATEHOUSE_GATEWAY_URL", url)
    monkeypatch.delenv("GATEHOUSE_TOKEN", raising=False)
    yield url
    server.shutdown()
    server.server_close()


Gatehouse = Callable[..., tuple[int, str, str]]


@pytest.fixture
def gatehouse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Gatehouse:
    """Run ``gatehouse ARGS...`` (no local stack: the stage's environment); exit, out, err."""

    def run(*arguments: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main(["--state-dir", str(tmp_path / "no-stack"), *arguments])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def no_terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """stdin is a pipe with nothing in it (a script, CI)."""
    read, write = os.pipe()
    os.close(write)
    with os.fdopen(read, "r") as pipe:
        monkeypatch.setattr(sys, "stdin", pipe)
        yield


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """stdin is a real pseudo-terminal; the returned function types on it."""
    main, replica = pty.openpty()
    stdin = os.fdopen(replica, "r")
    monkeypatch.setattr(sys, "stdin", stdin)

    def type_on_it(text: str) -> None:
        os.write(main, text.encode())

    yield type_on_it
    stdin.close()
    os.close(main)


def hostile_grant(status: GrantStatus = "pending") -> Grant:
    """A grant the API would refuse, as someone with write access to the table could store it."""
    now = time.time()
    return Grant(
        id="01a00000-0000-7000-8000-0000000000bb",
        issuer=ISSUER,
        subject="erin\r",
        email="erin\u202e@example.com",
        routes=("demo",),
        actions=frozenset({"GET"}),
        paths=(
            compile_glob("/api/customers/42"),
            # Erases its own line, then moves the cursor up over the previous one.
            compile_glob("/**/x\x1b[2K\x1b[1A\r"),
            compile_glob("/api/x\u202e/**"),
        ),
        duration_seconds=7200,
        justification="TICKET-9\x1b]8;;http://evil.example\x07see ticket\x1b]8;;\x07",
        status=status,
        requested_at=now - 60,
    )


def store_directly(aws: Resources, grant: Grant) -> None:
    boto3.client("dynamodb", region_name="us-east-1").put_item(
        TableName=aws.state_table, Item=grant_item("GRANT", grant)
    )


def assert_inert(text: str) -> None:
    """Nothing in ``text`` can rewrite or reorder a terminal."""
    for char in HOSTILE + "\ud800\udc80":
        assert char not in text, (char, text)


def test_grant_list_escapes_what_the_api_would_have_refused(
    gateway: str, gatehouse: Gatehouse, aws: Resources, rsa_key: Any
) -> None:
    store_directly(aws, hostile_grant())
    sam = token_for(rsa_key, "sam", ["security"])

    code, out, _ = gatehouse("grant", "list", "--token", sam)

    assert code == 0
    assert_inert(out)
    assert "/**/x\\x1b[2K\\x1b[1A\\x0d" in out
    assert "/api/x\\u202e/**" in out
    assert "erin\\u202e@example.com" in out
    assert "\\x1b]8;;http://evil.example\\x07see ticket" in out


def test_grant_list_json_stays_json_and_is_inert(
    gateway: str, gatehouse: Gatehouse, aws: Resources, rsa_key: Any
) -> None:
    grant = hostile_grant()
    store_directly(aws, grant)

    sam = token_for(rsa_key, "sam", ["security"])

    code, out, _ = gatehouse("grant", "list", "--json", "--token", sam)

    assert code == 0
    assert out.isascii()
    assert_inert(out)
    [listed] = json.loads(out)
    # Nothing lost: the JSON reader gets exactly what is stored.
    assert listed["paths"] == [glob.pattern for glob in grant.paths]
    assert listed["justification"] == grant.justification


def test_grant_show_puts_each_glob_escaped_on_its_own_line(
    gateway: str, gatehouse: Gatehouse, aws: Resources, rsa_key: Any
) -> None:
    grant = hostile_grant()
    store_directly(aws, grant)

    sam = token_for(rsa_key, "sam", ["security"])

    code, out, _ = gatehouse("grant", "show", grant.id, "--token", sam)

    assert code == 0
    assert_inert(out)
    lines = out.splitlines()
    assert lines[lines.index("  paths:") + 1 : lines.index("  paths:") + 4] == [
        "    /api/customers/42",
        "    /**/x\\x1b[2K\\x1b[1A\\x0d",
        "    /api/x\\u202e/**",
    ]
    assert f"  requester:      {ISSUER}|erin\\x0d (erin\\u202e@example.com)" in lines


def test_a_refusal_naming_client_text_is_printed_inert(
    gateway: str, gatehouse: Gatehouse, aws: Resources, rsa_key: Any
) -> None:
    code, out, err = gatehouse(
        "grant", "request", "--route", "demo", "--path", "/api/x\u202e**/", "--duration", "1h",
        "--justification", "TICKET-9", "--token", token_for(rsa_key, "erin", ["support"]),
    )  # fmt: skip

    assert code == 2
    assert "refused (400): path glob 1 holds U+202E RIGHT-TO-LEFT OVERRIDE" in err
    assert_inert(out + err)
    assert store(aws).list_grants() == []


def request_grant(rsa_key: Any, paths: list[str]) -> dict[str, Any]:
    status, grant = call(
        "POST",
        GRANTS_PATH,
        token_for(rsa_key, "erin", ["support"]),
        {**REQUEST_BODY, "paths": paths},
    )
    assert status == 201, grant
    assert isinstance(grant, dict)
    return grant


SCOPE = [
    "  requester:      https://idp.test.example|erin (erin@example.com)",
    "  routes:         demo",
    "  methods:        GET",
    "  paths:",
    "    /api/customers/**",
    "    /api/orders/*",
    "  duration:       2h from approval",
]


def test_approve_yes_shows_the_exact_scope_then_approves(
    gateway: str, gatehouse: Gatehouse, aws: Resources, rsa_key: Any, no_terminal: None
) -> None:
    pending = request_grant(rsa_key, ["/api/customers/**", "/api/orders/*"])
    sam = token_for(rsa_key, "sam", ["security"])

    code, out, _ = gatehouse("grant", "approve", pending["id"], "--yes", "--token", sam)

    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"grant {pending['id']}  (pending)"
    assert lines[1 : 1 + len(SCOPE)] == SCOPE
    assert "  justification:  TICKET-9: customer escalation" in lines
    assert lines[-1].startswith(f"grant {pending['id']} approved until ")
    assert store(aws).get(pending["id"]).status == "approved"


def test_approve_without_a_terminal_or_yes_refuses_and_changes_nothing(
    gateway: str, gatehouse: Gatehouse, aws: Resources, rsa_key: Any, no_terminal: None
) -> None:
    pending = request_grant(rsa_key, ["/api/customers/**", "/api/orders/*"])
    queued_events(aws)
    sam = token_for(rsa_key, "sam", ["security"])

    code, out, err = gatehouse("grant", "approve", pending["id"], "--token", sam)

    assert code == 2
    assert "stdin is not one" in err
    assert "pass --yes" in err
    assert out.splitlines()[1 : 1 + len(SCOPE)] == SCOPE  # what a script's log keeps
    assert store(aws).get(pending["id"]).status == "pending"
    assert grant_events(aws) == []


@pytest.mark.parametrize(
    ("typed", "code", "status"),
    [
        pytest.param("y\n", 0, "approved", id="y"),
        pytest.param("YES\n", 0, "approved", id="YES"),
        pytest.param("n\n", 1, "pending", id="n"),
        pytest.param("\n", 1, "pending", id="enter (the default is no)"),
        pytest.param("yes please\n", 1, "pending", id="anything else"),
    ],
)
def test_approve_on_a_terminal_asks_first(
    gateway: str,
    gatehouse: Gatehouse,
    aws: Resources,
    rsa_key: Any,
    terminal: Callable[[str], None],
    typed: str,
    code: int,
    status: str,
) -> None:
    pending = request_grant(rsa_key, ["/api/customers/**"])
    terminal(typed)

    exit_code, out, err = gatehouse(
        "grant", "approve", pending["id"], "--token", token_for(rsa_key, "sam", ["security"])
    )

    assert exit_code == code
    assert f"approve grant {pending['id']} for erin@example.com, exactly as shown above?" in err
    assert "    /api/customers/**" in out.splitlines()
    assert store(aws).get(pending["id"]).status == status
    if status == "pending":
        assert "not approved: nothing changed" in err


def test_approve_shows_a_stored_hostile_scope_escaped_before_asking(
    gateway: str, gatehouse: Gatehouse, aws: Resources, rsa_key: Any, no_terminal: None
) -> None:
    grant = hostile_grant()
    store_directly(aws, grant)

    code, out, err = gatehouse(
        "grant", "approve", grant.id, "--token", token_for(rsa_key, "sam", ["security"])
    )

    assert code == 2
    assert_inert(out + err)
    assert "    /**/x\\x1b[2K\\x1b[1A\\x0d" in out.splitlines()
    assert store(aws).get(grant.id).status == "pending"


@pytest.mark.parametrize(
    ("who", "groups", "grant_id"),
    [
        pytest.param("mallory", ["support"], None, id="someone else's grant, not an approver"),
        pytest.param("sam", ["security"], "01a00000-0000-7000-8000-000000000000", id="no such"),
        pytest.param("sam", ["security"], "../approve", id="not an id"),
    ],
)
def test_approve_refuses_a_grant_it_cannot_show(
    gateway: str,
    gatehouse: Gatehouse,
    aws: Resources,
    rsa_key: Any,
    who: str,
    groups: list[str],
    grant_id: str | None,
) -> None:
    pending = request_grant(rsa_key, ["/api/customers/**"])

    code, out, err = gatehouse(
        "grant", "approve", grant_id or pending["id"], "--yes",
        "--token", token_for(rsa_key, who, groups),
    )  # fmt: skip

    assert code == 2
    assert "that you may see" in err
    assert out == ""
    assert store(aws).get(pending["id"]).status == "pending"


def test_the_requester_sees_their_own_grant_and_is_still_refused(
    gateway: str, gatehouse: Gatehouse, aws: Resources, rsa_key: Any
) -> None:
    pending = request_grant(rsa_key, ["/api/customers/**"])
    erin = token_for(rsa_key, "erin", ["support", "security"])

    code, out, err = gatehouse("grant", "approve", pending["id"], "--yes", "--token", erin)

    assert code == 2
    assert "    /api/customers/**" in out.splitlines()
    assert "refused (403): nobody approves or denies their own grant" in err
    assert store(aws).get(pending["id"]).status == "pending"


# --- (C) audit tail and policy explain print client text inert --------------------------


def test_audit_tail_shows_a_hostile_path_and_subject_escaped(
    stage: Container, aws: Resources, rsa_key: Any, gatehouse: Gatehouse
) -> None:
    token = make_token(rsa_key, "RS256", "rsa-1", claims(sub="mallory\x1b[2K\r", email=None))
    user_agent = "curl\x1b]8;;http://evil.example\x07\r\u202e"
    # Allowed or refused as ambiguous, the decision is on the trail with the raw path.
    decide(token, path="/api/x\x1b[2K\r\u202egnp.exe", **{"User-Agent": user_agent})
    assert gatehouse("audit", "flush")[0] == 0

    code, out, _ = gatehouse("audit", "tail", "-n", "5")
    json_code, as_json, _ = gatehouse("audit", "tail", "-n", "5", "--json")

    assert (code, json_code) == (0, 0)
    assert_inert(out)
    assert "/api/x\\x1b[2K\\x0d\\u202egnp.exe" in out
    assert "mallory\\x1b[2K\\x0d" in out
    assert as_json.isascii()
    assert_inert(as_json)
    [event] = [
        event
        for event in map(json.loads, as_json.splitlines())
        if event["event_type"] == "decision"
    ]
    assert event["resource"]["path"] == "/api/x\x1b[2K\r\u202egnp.exe"
    assert event["source"]["user_agent"] == user_agent


def test_policy_explain_shows_a_stored_approver_escaped(
    granting: Container, aws: Resources, gatehouse: Gatehouse
) -> None:
    now = time.time()
    grant = hostile_grant("approved")
    forged = Grant(
        **{
            **vars(grant),
            "subject": "erin",
            "approver": "sam\x1b[2K\rnobody",
            "approved_at": now - 30,
            "expires_at": now + 3600,
        }
    )
    store_directly(aws, forged)

    code, out, _ = gatehouse(
        "policy", "explain", "--issuer", ISSUER, "--sub", "erin", "--groups", "support",
        "--method", "GET", "--host", "gatehouse.example.com", "--path", "/api/customers/42",
    )  # fmt: skip

    assert code == 0, out
    assert_inert(out)
    assert f"  grant:         {grant.id} approved by sam\\x1b[2K\\x0dnobody" in out.splitlines()


def test_policy_explain_names_a_revoked_grant_as_the_authorizer_does(
    granting: Container, aws: Resources, gatehouse: Gatehouse
) -> None:
    now = time.time()
    revoked = Grant(
        id="01a00000-0000-7000-8000-0000000000cc",
        issuer=ISSUER,
        subject="erin",
        email="erin@example.com",
        routes=("demo",),
        actions=frozenset({"GET"}),
        paths=(compile_glob("/api/customers/**"),),
        duration_seconds=7200,
        justification="TICKET-9",
        status="revoked",
        requested_at=now - 120,
        approved_at=now - 90,
        expires_at=now + 7110,
        approver=f"{ISSUER}|sam (sam@example.com)",
        ended_at=now - 30,
        ended_by=f"{ISSUER}|sam (sam@example.com)",
    )
    store_directly(aws, revoked)
    asked = (
        "policy", "explain", "--issuer", ISSUER, "--sub", "erin", "--groups", "support",
        "--method", "GET", "--host", "gatehouse.example.com", "--path", "/api/customers/42",
    )  # fmt: skip

    code, out, _ = gatehouse(*asked)
    json_code, as_json, _ = gatehouse(*asked, "--json")
    active = granting.policy_store.load_active()
    assert active is not None
    at = ("--at", str(int(now - 60)), "--version", str(active.version))
    before_code, before, before_err = gatehouse(*asked, *at)

    assert code == 1, out
    assert "  reasons:       grant_revoked" in out.splitlines()
    assert f"  ended grant:   grant {revoked.id} revoked at " in out
    assert json.loads(as_json)["ended_grant_id"] == revoked.id
    assert json_code == 1
    # A minute before its revocation, the same grant allowed the request.
    assert before_code == 0, before_err
    assert f"  grant:         {revoked.id} approved by" in before
