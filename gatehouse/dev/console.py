"""The local stack's console: whole lines only, whichever thread prints.

In Lambda each container has its own stdout. The local stack runs every
function in threads of one process, and ``print`` writes its text and its
newline as two calls: two handlers printing at once (an EMF metrics line
from the authorizer and one from the proxy) could interleave into one line
that no log reader can parse. :class:`LineAtomicStream` keeps each thread's
partial line to itself and writes a line only once it is complete, in one
call, under one lock.

It also prints one line per gateway request (:class:`RequestConsole`):
method, path, status, decision, reason code and milliseconds, e.g.::

    gateway: GET /api/hello 200 allow allow_rule_matched 14ms

The decision and its reason codes come from the ``decision`` audit event the
authorizer (or the proxy, when it decides again) sent to the audit queue for
that request, seen as it is sent (:class:`DecisionTap`, a botocore event hook
on the functions' SQS client): the authorizer's answer to API Gateway carries
no reason code (a 401 carries nothing at all), and the audit event is what
the trail records. A request the gateway answered without a decision shows
``gateway`` and its gateway response type (``missing_authentication_token``,
``throttled``); one no decision concerns (an open route: JWKS, sign-in) ``-``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

if TYPE_CHECKING:
    from gatehouse.dev.gateway.messages import Exchange, GatewayAnswer, IncomingRequest

# The serialised decision event, as the emitter writes it (compact JSON): a cheap
# test before parsing, since the same queue carries access-log and admin events.
_DECISION_MARK = '"event_type":"decision"'


class LineAtomicStream:
    """A text stream that writes each thread's complete lines whole.

    Parameters
    ----------
    target
        The stream the lines end up on (the process's real stdout).
    """

    def __init__(self, target: TextIO) -> None:
        self._target = target
        self._lock = threading.Lock()
        self._pending = threading.local()

    def write(self, text: str) -> int:
        """Keep ``text``; write every line it completes, whole."""
        pending: str = getattr(self._pending, "text", "") + text
        complete, newline, partial = pending.rpartition("\n")
        self._pending.text = partial
        if newline:
            self._emit(complete + newline)
        return len(text)

    def flush(self) -> None:
        """Write this thread's partial line too (a prompt, a progress count)."""
        partial: str = getattr(self._pending, "text", "")
        self._pending.text = ""
        self._emit(partial)

    def _emit(self, text: str) -> None:
        with self._lock:
            if text:
                self._target.write(text)
            self._target.flush()

    def isatty(self) -> bool:
        """Whether the target is a terminal."""
        return self._target.isatty()

    def fileno(self) -> int:
        """The target's file descriptor."""
        return self._target.fileno()

    @property
    def encoding(self) -> str:
        """The target's encoding."""
        return self._target.encoding


@contextlib.contextmanager
def whole_lines() -> Iterator[LineAtomicStream]:
    """Route ``sys.stdout`` through a :class:`LineAtomicStream` for the block."""
    original = sys.stdout
    stream = LineAtomicStream(original)
    sys.stdout = stream
    try:
        yield stream
    finally:
        stream.flush()
        sys.stdout = original


class Decided(NamedTuple):
    """What was decided for one request: ``allow``, ``deny`` or ``error``, and the codes."""

    outcome: str
    reasons: tuple[str, ...]


class DecisionTap:
    """Remembers the decision of each request as its audit event goes to the audit queue.

    Parameters
    ----------
    queue_url:
        The audit queue; messages to other queues are not looked at.
    limit:
        How many decisions not yet taken are kept (the oldest go first).
    """

    def __init__(self, queue_url: str, limit: int = 1024) -> None:
        self._queue_url = queue_url
        self._limit = limit
        self._decided: OrderedDict[str, Decided] = OrderedDict()
        self._lock = threading.Lock()

    def install(self, sqs: Any) -> None:
        """Watch what ``sqs`` (a boto3 SQS client) sends, through botocore's event hooks."""
        events = sqs.meta.events
        events.register("before-parameter-build.sqs.SendMessage", self._sent_one)
        events.register("before-parameter-build.sqs.SendMessageBatch", self._sent_batch)

    def take(self, request_id: str) -> Decided | None:
        """The decision recorded for ``request_id`` (forgotten once taken), or None."""
        with self._lock:
            return self._decided.pop(request_id, None)

    def seen(self, body: str) -> None:
        """Record the decision ``body`` (one serialised audit event) carries, if it is one."""
        if _DECISION_MARK not in body:
            return
        try:
            event = json.loads(body)
            request_id = str(event["request"]["id"])
            decision = event["decision"]
            decided = Decided(str(decision["outcome"]), tuple(map(str, decision["reasons"])))
        except (ValueError, KeyError, TypeError):
            return  # not a decision event after all: the writer will say what is wrong
        with self._lock:
            self._decided[request_id] = decided  # the proxy's re-decision replaces the first
            self._decided.move_to_end(request_id)
            while len(self._decided) > self._limit:
                self._decided.popitem(last=False)

    def _sent_one(self, params: dict[str, Any], **_: Any) -> None:
        if params.get("QueueUrl") == self._queue_url:
            self.seen(str(params.get("MessageBody", "")))

    def _sent_batch(self, params: dict[str, Any], **_: Any) -> None:
        if params.get("QueueUrl") == self._queue_url:
            for entry in params.get("Entries", []):
                self.seen(str(entry.get("MessageBody", "")))


def request_line(
    method: str, path: str, status: int, decision: str, reason: str, milliseconds: int
) -> str:
    """One console line for a gateway request (control characters made visible)."""
    from gatehouse.terminal import visible

    return visible(f"gateway: {method} {path} {status} {decision} {reason} {milliseconds}ms")


class RequestConsole:
    """Prints one line per gateway request, when its answer is known.

    An ``on_complete`` hook of
    :class:`~gatehouse.dev.gateway.emulator.ApiGatewayEmulator`.

    Parameters
    ----------
    decisions:
        Where the requests' decisions are read.
    write:
        Where each line goes (default: ``print`` to ``sys.stdout``, flushed).
    clock:
        ``time.monotonic`` (tests pass their own).
    """

    def __init__(
        self,
        decisions: DecisionTap,
        write: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._decisions = decisions
        self._write = write or _print_line
        self._clock = clock

    def __call__(self, request: IncomingRequest, exchange: Exchange, answer: GatewayAnswer) -> None:
        """Print the line of ``request``, answered with ``answer``."""
        decided = self._decisions.take(exchange.request_id)
        gateway_error = exchange.facts.get("errorResponseType")
        if decided is not None:
            decision, reason = decided.outcome, ",".join(decided.reasons) or "-"
        elif gateway_error:
            decision, reason = "gateway", gateway_error.lower()
        else:
            decision, reason = "-", "-"
        milliseconds = round((self._clock() - exchange.started) * 1000)
        line = request_line(
            request.method, request.raw_path, answer.status, decision, reason, milliseconds
        )
        try:
            self._write(line)
        except Exception as exc:  # a console that cannot be written must not fail the request
            with contextlib.suppress(Exception):
                print(f"gatehouse dev: console: {exc!r}", file=sys.stderr, flush=True)


def _print_line(line: str) -> None:
    print(line, flush=True)
