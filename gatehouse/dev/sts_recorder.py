"""A recording reverse proxy in front of moto's STS: CloudTrail for AssumeRole, emulated.

The functions' STS endpoint (``GATEHOUSE_STS_ENDPOINT_URL``) points here.
Every request is passed to moto unchanged and moto's answer returned
unchanged. An ``AssumeRole`` call is also recorded: as a CloudTrail record,
and, when it succeeds, as an :class:`~gatehouse.dev.cloudtrail.IssuedSession`
(with the ``SourceIdentity`` the caller sent, which moto does not return) so
the local AWS upstream can verify signatures made with the session.
"""

from __future__ import annotations

import http.client
import re
import threading
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gatehouse.dev.cloudtrail import IssuedSession, IssuedSessions, TrailWriter, assume_role_record

_NS = {"sts": "https://sts.amazonaws.com/doc/2011-06-15/"}
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "upgrade"}
)


def assume_role_parameters(form: dict[str, list[str]]) -> dict[str, Any]:
    """CloudTrail's ``requestParameters`` of an AssumeRole call, from its query-protocol form."""

    def one(name: str) -> str | None:
        values = form.get(name)
        return values[0] if values else None

    tags = []
    index = 1
    while f"Tags.member.{index}.Key" in form:
        tags.append(
            {"key": one(f"Tags.member.{index}.Key"), "value": one(f"Tags.member.{index}.Value")}
        )
        index += 1
    parameters: dict[str, Any] = {
        "roleArn": one("RoleArn"),
        "roleSessionName": one("RoleSessionName"),
    }
    duration = one("DurationSeconds")
    if duration is not None:
        parameters["durationSeconds"] = int(duration)
    if one("SourceIdentity") is not None:
        parameters["sourceIdentity"] = one("SourceIdentity")
    if tags:
        parameters["tags"] = tags
    return parameters


def _text(root: ElementTree.Element, path: str) -> str:
    found = root.find(path, _NS)
    if found is None or found.text is None:
        raise ValueError(f"STS answer has no {path}")
    return found.text


def issued_session(body: bytes, parameters: dict[str, Any]) -> tuple[IssuedSession, str]:
    """The session in a successful AssumeRole answer (moto's XML), and the answer's request id."""
    root = ElementTree.fromstring(body)  # noqa: S314 (moto's answer, on loopback)
    result = "sts:AssumeRoleResult"
    expires = datetime.fromisoformat(
        _text(root, f"{result}/sts:Credentials/sts:Expiration").replace("Z", "+00:00")
    )
    session = IssuedSession(
        access_key_id=_text(root, f"{result}/sts:Credentials/sts:AccessKeyId"),
        secret_access_key=_text(root, f"{result}/sts:Credentials/sts:SecretAccessKey"),
        session_token=_text(root, f"{result}/sts:Credentials/sts:SessionToken"),
        role_arn=str(parameters["roleArn"]),
        assumed_role_id=_text(root, f"{result}/sts:AssumedRoleUser/sts:AssumedRoleId"),
        assumed_role_arn=_text(root, f"{result}/sts:AssumedRoleUser/sts:Arn"),
        session_name=str(parameters["roleSessionName"]),
        source_identity=parameters.get("sourceIdentity"),
        created=datetime.now(UTC),
        expires=expires.astimezone(UTC) if expires.tzinfo else expires.replace(tzinfo=UTC),
    )
    request_id = root.find("sts:ResponseMetadata/sts:RequestId", _NS)
    return session, (request_id.text or "") if request_id is not None else ""


def _error(body: bytes) -> tuple[str, str]:
    try:
        root = ElementTree.fromstring(body)  # noqa: S314 (moto's answer, on loopback)
    except ElementTree.ParseError:
        return "InternalFailure", body[:200].decode(errors="replace")
    code = root.find(".//{*}Code")
    message = root.find(".//{*}Message")
    return (
        code.text if code is not None and code.text else "Unknown",
        message.text if message is not None and message.text else "",
    )


class StsRecorder:
    """The recording proxy's HTTP server on 127.0.0.1.

    Parameters
    ----------
    moto_url:
        moto's endpoint.
    trail:
        Where the CloudTrail records go.
    sessions:
        Where issued sessions are remembered.
    region:
        The STS region the stack's functions call.
    """

    def __init__(
        self,
        moto_url: str,
        trail: TrailWriter,
        sessions: IssuedSessions,
        region: str,
        port: int = 0,
    ) -> None:
        parts = urlsplit(moto_url)
        self._moto = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.trail = trail
        self.sessions = sessions
        self.region = region
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sts-recorder", daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send the request to moto; return its answer."""
        connection = http.client.HTTPConnection(*self._moto, timeout=10)
        try:
            connection.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP:
                    connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            payload = response.read()
            answer = [(n, v) for n, v in response.getheaders() if n.lower() not in _HOP_BY_HOP]
            return response.status, answer, payload
        finally:
            connection.close()

    def observe(
        self,
        headers: list[tuple[str, str]],
        body: bytes,
        status: int,
        answer: bytes,
        source_ip: str,
    ) -> None:
        """Record the call if it was an AssumeRole."""
        form = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        if form.get("Action", [""])[0] != "AssumeRole":
            return
        lowered = {name.lower(): value for name, value in headers}
        caller = _CREDENTIAL.search(lowered.get("authorization", ""))
        parameters = assume_role_parameters(form)
        session = None
        error = None
        request_id = ""
        if status == 200:
            session, request_id = issued_session(answer, parameters)
            self.sessions.add(session)
        else:
            error = _error(answer)
        account = str(parameters.get("roleArn") or "").split(":")
        self.trail.record(
            assume_role_record(
                caller_access_key_id=caller.group(1) if caller else "",
                account_id=account[4] if len(account) > 4 else self.trail.account_id,
                region=self.region,
                source_ip=source_ip,
                user_agent=lowered.get("user-agent", ""),
                parameters=parameters,
                session=session,
                request_id=request_id,
                error=error,
            )
        )


def _handler_for(recorder: StsRecorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = list(self.headers.items())
            try:
                status, answer_headers, answer = recorder.forward(
                    self.command, self.path, headers, body
                )
            except OSError:
                status, answer_headers, answer = 503, [], b"moto unavailable"
            else:
                try:
                    recorder.observe(headers, body, status, answer, self.client_address[0])
                except (ValueError, KeyError, ElementTree.ParseError):
                    recorder.trail.errors += 1  # an unreadable answer is moto's to report
            self.send_response(status)
            for name, value in answer_headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
