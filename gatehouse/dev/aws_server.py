"""moto as the local stack's AWS, in a process of its own, safe for concurrent callers.

``python -m gatehouse.dev.aws_server`` serves moto on 127.0.0.1 and prints
``port <n>`` once it accepts connections; :class:`AwsServer` starts it from
the stack and stops it. It runs apart from the gateway and the Lambda
handlers so that moto's (pure Python, CPU-heavy) request handling does not
compete with them for one interpreter's GIL.

moto's backends are not thread-safe: under concurrent SendMessage,
ReceiveMessage and DeleteMessageBatch calls its SQS model corrupts its own
lists (``list.remove(x): x not in list``). Here every request to moto runs
under one lock (:data:`MOTO_LOCK`), so each AWS call is atomic, as it is in
AWS. ReceiveMessage with ``WaitTimeSeconds`` (long polling) waits *without*
the lock and wakes as soon as a message is sent or becomes visible again,
so a long-polling consumer neither blocks senders nor busy-polls. SQS
semantics are moto's own: visibility timeout, receive counts,
``maxReceiveCount`` -> dead-letter queue.

KMS signs ``MessageType=DIGEST`` as AWS does (:mod:`gatehouse.dev.moto_kms`).

Four more changes to moto, none of them to its behaviour:

* its retention check on every received message, and every message sent,
  computed all of the queue's attributes (three of them a scan of the
  queue), making a receive quadratic in the queue's depth and a send
  linear; each attribute is computed when it is read now; and which
  messages are visible is decided against one reading of the clock per
  receive, not two per message (each a datetime computation);
* the backend for a host is looked up once per host, not by matching every
  service's URL patterns on every request;
* no per-request log line (werkzeug's access log; ``--verbose`` keeps it),
  and connections kept open between requests;
* DynamoDB ``Query`` and ``TransactWriteItems`` no longer cost time in
  proportion to the whole table (:mod:`gatehouse.dev.moto_dynamodb`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

# One lock for every request moto serves; long polls wait on MESSAGES_ARRIVED without it.
MOTO_LOCK = threading.RLock()
MESSAGES_ARRIVED = threading.Condition(MOTO_LOCK)
# A long poll re-checks at least this often: messages whose visibility
# timeout ran out become visible again without anyone sending.
_RECHECK_SECONDS = 0.5
_READY_PREFIX = "port "


def install_sqs_serialisation() -> None:
    """Make moto's SQS backend safe for the threaded server (see the module docstring)."""
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend, "_gatehouse_serialised", False):
        return
    receive = SQSBackend.receive_message

    def receive_message(
        self: SQSBackend,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> Any:
        deadline = time.monotonic() + (wait_seconds_timeout or 0)
        with MOTO_LOCK:
            while True:
                result = receive(
                    self, queue_name, count, 0, visibility_timeout, message_attribute_names
                )
                remaining = deadline - time.monotonic()
                if result or remaining <= 0:
                    return result
                MESSAGES_ARRIVED.wait(min(remaining, _RECHECK_SECONDS))

    def notifying(method: Any) -> Any:
        def call(self: SQSBackend, *args: Any, **kwargs: Any) -> Any:
            with MOTO_LOCK:
                try:
                    return method(self, *args, **kwargs)
                finally:
                    MESSAGES_ARRIVED.notify_all()

        call.__name__ = method.__name__
        call.__doc__ = method.__doc__
        return call

    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
    for name in ("send_message", "send_message_batch", "change_message_visibility",
                 "change_message_visibility_batch"):  # fmt: skip
        setattr(SQSBackend, name, notifying(getattr(SQSBackend, name)))
    _install_sqs_shortcuts()
    SQSBackend._gatehouse_serialised = True  # type: ignore[attr-defined]


def _install_sqs_shortcuts() -> None:
    """moto's SQS without its per-message scans of the whole queue (see the module docstring)."""
    from moto.core.utils import unix_time, unix_time_millis
    from moto.sqs.models import Message, Queue, SQSBackend

    def is_message_valid_based_on_retention_period(
        self: SQSBackend, queue_name: str, message: Any
    ) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)  # type: ignore[attr-defined]
        return bool(retention + message.sent_timestamp / 1000 > unix_time())

    def messages(self: Queue) -> list[Any]:
        now = unix_time_millis()  # once, not twice per message
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    def had_receipt_handle(self: Message, receipt_handle: str) -> bool:
        return receipt_handle == self.receipt_handle or receipt_handle in self._old_receipt_handles

    SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )
    Queue.attributes = property(_QueueAttributes)  # type: ignore[assignment,method-assign]
    Queue.messages = property(messages)  # type: ignore[assignment,method-assign]
    Message.had_receipt_handle = had_receipt_handle  # type: ignore[method-assign]


class _QueueAttributes(Mapping[str, Any]):
    """moto's ``Queue.attributes``, each value computed when it is read.

    moto built every attribute of the queue (three of them a scan of all its
    messages) to read one, ``ContentBasedDeduplication``, on every message
    sent: a send cost time in proportion to the queue's depth.
    """

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        names = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        if queue.policy:
            names.append("Policy")
        if queue.redrive_policy:
            names.append("RedrivePolicy")
        self._names = list(dict.fromkeys(names))

    def __getitem__(self, name: str) -> Any:
        from moto.core.utils import camelcase_to_underscores

        if name not in self._names:
            raise KeyError(name)
        queue = self._queue
        if name == "RedrivePolicy" and queue.redrive_policy:
            return json.dumps(queue.redrive_policy)
        value = getattr(queue, camelcase_to_underscores(name))
        return str(value).lower() if isinstance(value, bool) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def moto_application() -> Any:
    """moto's WSGI application, every request under :data:`MOTO_LOCK`."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from gatehouse.dev import moto_dynamodb, moto_kms

    install_sqs_serialisation()
    moto_kms.install()
    moto_dynamodb.install()
    dispatcher = DomainDispatcherApplication(create_backend_app)
    find_backend = dispatcher.get_backend_for_host
    backends: dict[str | None, Any] = {}

    def backend_for_host(host: str | None) -> Any:
        if host not in backends:
            backends[host] = find_backend(host)
        return backends[host]

    dispatcher.get_backend_for_host = backend_for_host  # type: ignore[method-assign]

    def application(environ: dict[str, Any], start_response: Any) -> Any:
        with MOTO_LOCK:
            return dispatcher(environ, start_response)

    return application


def serve(port: int, *, verbose: bool = False) -> None:
    """Serve moto on 127.0.0.1:``port`` (0: any free port) until SIGTERM or SIGINT.

    ``verbose``: print werkzeug's access-log line for every AWS call (on stderr).
    """
    from werkzeug.serving import make_server

    _quiet_werkzeug(verbose)
    server = make_server("127.0.0.1", port, moto_application(), threaded=True,
                         request_handler=_quiet_handler(verbose))  # fmt: skip
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    thread.start()
    # A stack killed before it could stop this process must not leave it behind.
    parent = os.getppid()
    threading.Thread(
        target=_stop_when_orphaned, args=(parent, stop), name="orphan-watch", daemon=True
    ).start()
    print(f"{_READY_PREFIX}{server.server_address[1]}", flush=True)
    sys.stdout = sys.stderr  # nobody reads the pipe after the port: moto's prints go to the console
    stop.wait()
    # moto's state lives in memory only: nothing to flush. Exit at once, rather
    # than wait for threads that hold kept-alive connections open.
    sys.stdout.flush()
    os._exit(0)


def _stop_when_orphaned(parent: int, stop: threading.Event) -> None:
    """Set ``stop`` once the process that started this one is gone."""
    while not stop.wait(1.0):
        if os.getppid() != parent:
            stop.set()


def _quiet_werkzeug(verbose: bool) -> None:
    """werkzeug's logger: its INFO lines (one per request) only when ``verbose``."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.INFO if verbose else logging.WARNING)


def _quiet_handler(verbose: bool = False) -> Any:
    from werkzeug.serving import WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        """werkzeug's handler, keeping connections open between requests.

        werkzeug answers every request with ``Connection: close`` (and then
        lingers up to 10 ms draining the socket), so each AWS call of the
        stack opened a TCP connection and moto started a thread for it. Here
        a request with a ``Content-Length`` (botocore's always have one) is
        read whole, moto's answer is sent with its length, and the
        connection stays open for the next call; anything else (a chunked
        body) is left to werkzeug.
        """

        disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall between headers and body
        protocol_version = "HTTP/1.1"

        def run_wsgi(self) -> None:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                super().run_wsgi()
                return
            _answer_keeping_alive(self)

        def log_request(self, *args: Any, **kwargs: Any) -> None:
            if verbose:
                super().log_request(*args, **kwargs)

    return QuietHandler


def _answer_keeping_alive(handler: Any) -> None:
    """Serve one request with moto on ``handler`` (werkzeug's), leaving the connection open."""
    if handler.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
        handler.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    length = int(handler.headers.get("Content-Length") or 0)
    environ = handler.environ = handler.make_environ()
    environ["wsgi.input"] = io.BytesIO(handler.rfile.read(length) if length else b"")
    started: list[Any] = []
    chunks: list[bytes] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        started[:] = [status, headers]
        return chunks.append

    try:
        result = handler.server.app(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            if hasattr(result, "close"):
                result.close()
    except Exception:
        traceback.print_exc()
        handler.close_connection = True
        handler.send_error(500)
        return
    status, headers = started
    code_text, _, reason = status.partition(" ")
    code = int(code_text)
    body = b"".join(chunks)
    handler.send_response(code, reason)
    for name, value in headers:
        handler.send_header(name, value)
    bodiless = handler.command == "HEAD" or code < 200 or code in (204, 304)
    if not bodiless and all(name.lower() != "content-length" for name, _ in headers):
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD" and body:
        handler.wfile.write(body)


class AwsServer:
    """moto in a child process (``python -m gatehouse.dev.aws_server``).

    Parameters
    ----------
    start_timeout_seconds:
        How long to wait for it to accept connections.
    in_process:
        Serve from a thread of this process instead (tests).
    verbose:
        Print werkzeug's access-log line for every AWS call (``gatehouse dev --verbose``).
    """

    def __init__(
        self,
        start_timeout_seconds: float = 60.0,
        *,
        in_process: bool = False,
        verbose: bool = False,
    ) -> None:
        self._timeout = start_timeout_seconds
        self._verbose = verbose
        self._process: subprocess.Popen[str] | None = None
        self._in_process = in_process
        self._server: Any = None
        self.port = 0

    @property
    def url(self) -> str:
        """The endpoint URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process and wait (bounded) for its port.

        Raises
        ------
        RuntimeError
            When it exits or stays silent first.
        """
        if self._in_process:
            from werkzeug.serving import make_server

            _quiet_werkzeug(self._verbose)
            self._server = make_server("127.0.0.1", 0, moto_application(), threaded=True,
                                       request_handler=_quiet_handler(self._verbose))  # fmt: skip
            threading.Thread(target=self._server.serve_forever, name="moto", daemon=True).start()
            self.port = int(self._server.server_address[1])
            return
        project = str(Path(__file__).resolve().parents[2])
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [project, *filter(None, [environment.get("PYTHONPATH")])]
        )
        self._process = subprocess.Popen(
            [sys.executable, "-m", "gatehouse.dev.aws_server", "--port", "0"]
            + (["--verbose"] if self._verbose else []),
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=environment,
            start_new_session=True,  # Ctrl-C reaches the stack, which stops this in order
        )
        assert self._process.stdout is not None
        found: list[str] = []
        reader = threading.Thread(
            target=lambda: found.append(self._process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(self._timeout)
        line = found[0] if found else ""
        if not line.startswith(_READY_PREFIX):
            self.stop()
            raise RuntimeError(f"moto did not start (its first output: {line!r})")
        self.port = int(line[len(_READY_PREFIX) :])

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 10 s)."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="moto for the Gatehouse local stack")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="print each request's log line")
    arguments = parser.parse_args(argv)
    serve(arguments.port, verbose=arguments.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
