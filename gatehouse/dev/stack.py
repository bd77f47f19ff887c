"""The local stack: moto, a dev OIDC issuer, a demo backend, the gateway, the writer.

Everything binds 127.0.0.1 and runs offline. :class:`LocalStack` starts the
parts in dependency order, loads ``app.py`` the way Lambda would (its
settings come from environment variables), seeds the demo policy, and writes
the state file that operator commands read (``.gatehouse/dev.json``).

The gateway's port is the only one an operator chooses; it is bound first,
so that a port in use is said (:class:`PortInUse`) before anything starts.
Every other part binds a free port of its own.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from types import ModuleType
from typing import Any

import boto3

from chalicelib.config import ledger_origin
from gatehouse.deploy.templates import access_log_format
from gatehouse.dev.aws_server import AwsServer
from gatehouse.dev.aws_upstream import AwsUpstream
from gatehouse.dev.backend import DemoBackend
from gatehouse.dev.bootstrap import Resources, bootstrap
from gatehouse.dev.cloudtrail import IssuedSessions, TrailWriter
from gatehouse.dev.console import DecisionTap, RequestConsole
from gatehouse.dev.event_source import (
    DrainResult,
    EventSourcePoller,
    drain_queue,
    log_subscription_event,
    print_poller_error,
    queue_arn_of,
    scheduled_event,
)
from gatehouse.dev.gateway import ApiGatewayEmulator, GatewayServer, load_api_definition
from gatehouse.dev.idp import DevIssuer, SigningKey, load_or_create_key
from gatehouse.dev.loopback_sqs import LoopbackSqs
from gatehouse.dev.sts_recorder import StsRecorder
from gatehouse.dev.witness import LocalWitness, start_local_witness
from gatehouse.errors import InputError
from gatehouse.policy_files import is_json, parse_policy_text, read_policy_text
from gatehouse.resources import ResourceNames
from gatehouse.state import STATE_FILE_NAME, STATUS_FILE_NAME, DevState, write_status

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEMO_POLICY = Path(__file__).with_name("demo-policy.yaml")
GATEWAY_RESPONSES = PROJECT_DIR / "infra" / "gateway_responses.json"
ACCOUNT = "123456789012"
# Where the local stack's OCSF export goes: the audit bucket, under its own prefix.
OCSF_PREFIX = "ocsf"
AUDIENCE = "gatehouse"
# The gateway's OAuth client at the dev issuer (browser sign-in).
SIGN_IN_CLIENT_ID = "gatehouse-dev"
_FAKE_SESSION = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


class PortInUse(InputError):
    """A port the stack must bind is taken, or not ours to bind (exit status 2)."""


def bind_gateway(port: int) -> GatewayServer:
    """The gateway's server, bound to 127.0.0.1:``port`` (0: any free port).

    Raises
    ------
    PortInUse
        When the port is in use, or this user may not bind it.
    """
    try:
        return GatewayServer(port=port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(
                f"port {port} (the gateway) is in use: pass --port N (0 picks a free port), "
                f"or stop what holds it (`lsof -i :{port}` shows what does)"
            ) from exc
        if exc.errno == errno.EACCES:
            raise PortInUse(
                f"port {port} (the gateway) may not be bound by this user: pass --port N "
                "above 1023 (0 picks a free port)"
            ) from exc
        raise


def initial_policy(path: Path, backend_url: str) -> dict[str, Any]:
    """The policy the stack starts with: ``path`` with ``${BACKEND_URL}`` filled in.

    Read exactly as ``gatehouse policy apply`` reads a file, duplicate keys and all.

    Raises
    ------
    PolicyFileError
        When the file cannot be read or parsed (as
        :func:`gatehouse.policy_files.load_policy_file`).
    """
    text = Template(read_policy_text(path)).safe_substitute(BACKEND_URL=backend_url)
    return parse_policy_text(text, str(path), json_format=is_json(path))


@dataclass
class StackOptions:
    """How to run the local stack."""

    state_dir: Path = field(default_factory=lambda: Path(".gatehouse"))
    gateway_port: int = 8787
    stage: str = "dev"
    region: str = "us-east-1"
    authorizer_ttl_seconds: int = 0
    policy_file: Path | None = None
    # The writer long-polls: it wakes when events arrive rather than once a second.
    writer_interval_seconds: float = 0.0
    writer_wait_seconds: int = 2
    metrics: bool = False
    # Requests the gateway serves at once; more get 429 THROTTLED at once, as a
    # saturated API Gateway answers, instead of queueing without bound.
    max_in_flight: int = 32
    # One console line per gateway request (``gatehouse dev``; not benchmarks).
    request_console: bool = False
    # moto's own access log (werkzeug's line per AWS call) on the console.
    verbose: bool = False


class LocalStack:
    """Starts and stops every part of the local stack."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self._stoppers: list[Any] = []
        self.moto: Any = None
        self.idp: DevIssuer | None = None
        self.backend: DemoBackend | None = None
        self.trail: TrailWriter | None = None
        self.sts_recorder: StsRecorder | None = None
        self.gateway: GatewayServer | None = None
        self.app_module: ModuleType | None = None
        self.resources: Resources | None = None
        self.state: DevState | None = None
        self.poller: EventSourcePoller | None = None
        self.pollers: list[EventSourcePoller] = []
        self._audit_queue_arn: str | None = None
        self._mapping_sqs: LoopbackSqs | None = None
        self._status_lock = threading.Lock()
        self._access_log_lines: list[str] = []
        self._shipped = 0
        self.witness: LocalWitness | None = None
        # What was still on the audit queue (and its DLQ) when the stack stopped.
        self.discarded: tuple[int, int] | None = None

    def start(self) -> DevState:
        """Start everything; return the state written to ``dev.json``."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> DevState:
        options = self.options
        options.state_dir.mkdir(parents=True, exist_ok=True)
        # First: the one port an operator picks; taken, it costs no start-up.
        gateway = bind_gateway(options.gateway_port)
        self.gateway = gateway
        self._stoppers.append(gateway)
        endpoint = self._start_moto()
        session = boto3.session.Session(region_name=options.region, **_FAKE_SESSION)
        names = ResourceNames(options.stage, ACCOUNT, options.region)
        region = options.region
        self.resources = bootstrap(
            lambda service: session.client(service, endpoint_url=endpoint, region_name=region),
            names,
        )
        keys = [load_or_create_key(options.state_dir, alg) for alg in ("RS256", "ES256")]
        self.idp = self._started(DevIssuer(keys))
        self.backend = self._started(DemoBackend())
        # CloudTrail, emulated: STS calls through the recorder, signed calls at the AWS upstream.
        trail_s3 = session.client("s3", endpoint_url=endpoint, region_name=region)
        self.trail = self._started(
            TrailWriter(lambda: trail_s3, self.resources.trail_bucket, ACCOUNT)
        )
        issued = IssuedSessions()
        self.sts_recorder = self._started(StsRecorder(endpoint, self.trail, issued, region))
        self.backend.aws_upstream = AwsUpstream(issued, self.trail, region=region)
        if self.sign_in:
            self._prepare_sign_in(
                session.client("secretsmanager", endpoint_url=endpoint), gateway.url
            )
        self._configure_environment(endpoint, gateway.url)
        self.app_module = load_app()
        definition = load_api_definition(self.app_module, GATEWAY_RESPONSES)
        gateway.attach(
            ApiGatewayEmulator(
                definition,
                self.app_module.app,
                stage=options.stage,
                region=options.region,
                account=ACCOUNT,
                access_log=self._access_log_lines.append,
                access_log_format=access_log_format(PROJECT_DIR),
                max_in_flight=options.max_in_flight,
                on_complete=self._request_console(),
            )
        )
        gateway.start()
        self.backend.trust_gateway(gateway.url, issuer=gateway.url)
        self._seed_policy()
        self.poller = self._poller(
            self.drain_audit_queue, options.writer_interval_seconds, "audit-writer"
        )
        self._poller(self.sweep_grants, 1.0, "grant-sweeper")
        # The stage's access log, delivered by its CloudWatch Logs subscription.
        self._poller(self.ship_access_logs, 1.0, "access-log")
        # Hourly in AWS; every half minute here, so the trail is always nearly all digested.
        self._poller(self.sign_digest, 30.0, "ledger-digest")
        # Every 5 minutes in AWS; every 5 seconds here (into the audit bucket, under ocsf/).
        self._poller(self.export_ocsf, 5.0, "ocsf-export")
        # A witness runs elsewhere on a schedule; here it looks every two seconds.
        self.witness = start_local_witness(
            options.state_dir,
            session.client("s3", endpoint_url=endpoint, region_name=region),
            session.client("kms", endpoint_url=endpoint, region_name=region),
            bucket=self.resources.audit_bucket,
            digest_key=self.resources.digest_key_alias,
            origin=ledger_origin(self.resources.audit_bucket),
        )
        self._poller(self.witness.witness.run, 2.0, "witness")
        # Detection's scheduled check (every 5 minutes in AWS), and the console's alert lines.
        self._poller(self.run_detection_checks, 30.0, "detection-checks")
        self._poller(self.print_alerts, 1.0, "alerts")
        self.state = self._write_state(endpoint, keys)
        self._write_status()
        return self.state

    def _request_console(self) -> RequestConsole | None:
        """The console's line per request, its decisions read as the functions send them."""
        if not self.options.request_console:
            return None
        from chalicelib import entrypoints

        assert self.resources is not None
        decisions = DecisionTap(self.resources.audit_queue_url)
        # The client the functions' audit emitter sends with (one per container).
        decisions.install(entrypoints.container().clients.sqs)
        return RequestConsole(decisions)

    def _poller(
        self, drain: Callable[[], object], interval_seconds: float, name: str
    ) -> EventSourcePoller:
        poller = EventSourcePoller(drain, interval_seconds, name=name, report=self._poller_error)
        self.pollers.append(poller)
        self._started(poller)
        return poller

    def _poller_error(self, name: str, message: str) -> None:
        """A background poller failed: one line on the console, counted in the status file."""
        print_poller_error(name, message)
        self._write_status()

    def status(self) -> dict[str, Any]:
        """What the pollers and the gateway have counted so far."""
        emulator = self.gateway.emulator if self.gateway is not None else None
        return {
            "pid": os.getpid(),
            "pollers": {
                poller.name: {
                    "runs": poller.runs,
                    "errors": poller.errors,
                    "last_error": poller.last_error,
                }
                for poller in self.pollers
            },
            "gateway": {"throttled": getattr(emulator, "throttled", 0)},
        }

    def _write_status(self) -> None:
        with self._status_lock:
            write_status(self.options.state_dir / STATUS_FILE_NAME, self.status())

    def _started(self, server: Any) -> Any:
        server.start()
        self._stoppers.append(server)
        return server

    def _start_moto(self) -> str:
        # In a process of its own: moto's request handling would otherwise share
        # this interpreter (and its GIL) with the gateway and every handler.
        self.moto = self._started(AwsServer(verbose=self.options.verbose))
        return str(self.moto.url)

    @property
    def sign_in(self) -> bool:
        """Browser sign-in is on unless the authorizer cache is (API Gateway keys it on
        the Authorization header, which a browser does not send)."""
        return self.options.authorizer_ttl_seconds == 0

    @property
    def session_keys_secret(self) -> str:
        """The Secrets Manager secret of the session keys (as a deployed stage names it)."""
        return f"gatehouse/{self.options.stage}/session-keys"

    def _prepare_sign_in(self, secretsmanager: Any, gateway_url: str) -> None:
        """The session keys' first version, and the gateway registered at the dev issuer."""
        from chalicelib.sessions.keys import rotate_session_keys

        assert self.idp is not None
        rotate_session_keys(secretsmanager, self.session_keys_secret)
        self.idp.register_client(
            SIGN_IN_CLIENT_ID,
            redirect_uris=[f"{gateway_url}/.gatehouse/callback"],
            post_logout_redirect_uris=[f"{gateway_url}/.gatehouse/signed-out"],
            backchannel_logout_uri=f"{gateway_url}/.gatehouse/backchannel-logout",
        )

    def _configure_environment(self, endpoint: str, gateway_url: str) -> None:
        """The Lambda functions' environment, as ``.chalice/config.json`` would set it."""
        assert self.resources is not None and self.idp is not None
        resources = self.resources
        os.environ.update(FAKE_CREDENTIALS)
        os.environ.update(
            {
                "AWS_REGION": self.options.region,
                "AWS_DEFAULT_REGION": self.options.region,
                "GATEHOUSE_STAGE": self.options.stage,
                "GATEHOUSE_AWS_ENDPOINT_URL": endpoint,
                "GATEHOUSE_STS_ENDPOINT_URL": self.sts_recorder.url if self.sts_recorder else "",
                "GATEHOUSE_STATE_TABLE": resources.state_table,
                "GATEHOUSE_AUDIT_BUCKET": resources.audit_bucket,
                "GATEHOUSE_AUDIT_QUEUE_URL": resources.audit_queue_url,
                "GATEHOUSE_ASSERTION_KEY_ID": resources.assertion_key_alias,
                "GATEHOUSE_DIGEST_KEY_ID": resources.digest_key_alias,
                "GATEHOUSE_LEDGER_ANCHOR": resources.ledger_anchor,
                # moto's EventBridge cannot deliver to SNS, so the functions publish to
                # the topic themselves here (in AWS the stage's detection rule does).
                "GATEHOUSE_ALERT_TOPIC_ARN": resources.alert_topic_arn,
                "GATEHOUSE_AUDIT_DLQ_URL": resources.audit_dlq_url,
                "GATEHOUSE_OCSF_EXPORT_LOCATION": f"s3://{resources.audit_bucket}/{OCSF_PREFIX}",
                "GATEHOUSE_GATEWAY_ISSUER": gateway_url,
                "GATEHOUSE_TRUSTED_ISSUERS": json.dumps([self._dev_issuer()]),
                # Empty: no browser sign-in (a stack with the authorizer cache on).
                "GATEHOUSE_SESSION_KEYS_SECRET": self.session_keys_secret if self.sign_in else "",
                "GATEHOUSE_AUTHORIZER_TTL_SECONDS": str(self.options.authorizer_ttl_seconds),
                "GATEHOUSE_POLICY_REFRESH_SECONDS": "1",
                "GATEHOUSE_ALLOW_HTTP_ISSUERS": "true",  # the dev issuer and gateway are plain http
                "POWERTOOLS_SERVICE_NAME": "gatehouse",
                "POWERTOOLS_METRICS_DISABLED": "false" if self.options.metrics else "true",
                "POWERTOOLS_LOG_LEVEL": "WARNING",
            }
        )

    def _dev_issuer(self) -> dict[str, Any]:
        assert self.idp is not None
        issuer: dict[str, Any] = {
            "issuer": self.idp.url,
            "audiences": [AUDIENCE],
            "name": "dev",
            "display_name": "Gatehouse dev issuer",
        }
        if self.sign_in:
            issuer["client_id"] = SIGN_IN_CLIENT_ID
        return issuer

    def _seed_policy(self) -> None:
        from chalicelib import entrypoints
        from chalicelib.policy.admin import PolicyAdmin
        from chalicelib.policy.archive import PolicyArchive

        container = entrypoints.container()
        if container.policy_store.load_active() is not None:
            return
        assert self.backend is not None
        path = self.options.policy_file or DEMO_POLICY
        document = initial_policy(path, self.backend.url)
        # Through the operator path, so the initial policy is archived and audited too.
        admin = PolicyAdmin(
            container.policy_store,
            PolicyArchive(container.clients.s3, container.settings.audit_bucket),
            container.emitter,
            stage=self.options.stage,
            operator="local:gatehouse dev (initial policy)",
        )
        admin.apply(document, source_name=str(path))

    def drain_audit_queue(self) -> DrainResult:
        """Run the audit writer on everything queued (the event source mapping)."""
        from chalicelib import entrypoints

        assert self.resources is not None and self.app_module is not None
        container = entrypoints.container()
        queue_url = self.resources.audit_queue_url
        if self._audit_queue_arn is None:
            self._audit_queue_arn = queue_arn_of(container.clients.sqs, queue_url)
        if self._mapping_sqs is None:
            # The mapping's own receives and deletes: AWS makes them outside the function.
            self._mapping_sqs = LoopbackSqs(self.moto.url, self.options.region)
        return drain_queue(
            self._mapping_sqs,
            queue_url,
            self.app_module.audit_writer,
            region=self.options.region,
            wait_seconds=self.options.writer_wait_seconds,
            queue_arn=self._audit_queue_arn,
        )

    def sweep_grants(self) -> None:
        """Invoke the scheduled grant sweeper, as its EventBridge rule would."""
        assert self.app_module is not None
        self.app_module.grant_sweeper(scheduled_event(self.options.region, ACCOUNT), None)

    def ship_access_logs(self) -> None:
        """Deliver the gateway's new access-log lines to their Lambda, as the subscription would."""
        assert self.app_module is not None
        self._write_status()  # every second: the pollers' run counts stay current
        lines, self._access_log_lines[:] = list(self._access_log_lines), []
        if lines:
            event = log_subscription_event(
                lines,
                log_group=f"/aws/apigateway/gatehouse-{self.options.stage}/access",
                owner=ACCOUNT,
                first_id=self._shipped,
            )
            self._shipped += len(lines)
            self.app_module.access_log_ingest(event, None)

    def run_detection_checks(self) -> None:
        """Invoke detection's scheduled check, as its EventBridge rule would."""
        assert self.app_module is not None
        self.app_module.detection_checks(scheduled_event(self.options.region, ACCOUNT), None)

    def print_alerts(self) -> None:
        """One console line per alert the alert topic received (its subscriber queue)."""
        from chalicelib import entrypoints
        from chalicelib.detect.alerts import alert_line

        assert self.resources is not None
        sqs = entrypoints.container().clients.sqs
        url = self.resources.alert_console_queue_url
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        for message in answer.get("Messages", []):
            try:
                print(alert_line(json.loads(message["Body"])), flush=True)
            except (ValueError, TypeError, AttributeError):
                print(f"ALERT (unreadable): {message['Body'][:200]}", flush=True)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def sign_digest(self) -> None:
        """Invoke the scheduled digest signer, as its EventBridge rule would."""
        assert self.app_module is not None
        self.app_module.ledger_digest(scheduled_event(self.options.region, ACCOUNT), None)

    def export_ocsf(self) -> None:
        """Invoke the scheduled OCSF export, as its EventBridge rule would."""
        assert self.app_module is not None
        self.app_module.ocsf_export(scheduled_event(self.options.region, ACCOUNT), None)

    def _write_state(self, endpoint: str, keys: list[SigningKey]) -> DevState:
        assert self.gateway and self.idp and self.backend and self.resources
        rs256 = keys[0]
        state = DevState(
            gateway_url=self.gateway.url,
            aws_endpoint_url=endpoint,
            region=self.options.region,
            issuer=self.idp.url,
            audience=AUDIENCE,
            idp_private_key_path=str(rs256.path.resolve()),
            idp_kid=rs256.kid,
            idp_alg=rs256.alg,
            backend_url=self.backend.url,
            audit_bucket=self.resources.audit_bucket,
            state_table=self.resources.state_table,
            audit_queue_url=self.resources.audit_queue_url,
            audit_dlq_url=self.resources.audit_dlq_url,
            digest_key_id=self.resources.digest_key_id,
            ledger_anchor=self.resources.ledger_anchor,
            trail_bucket=self.resources.trail_bucket,
            account_id=ACCOUNT,
            stage=self.options.stage,
            idp_keys={key.alg: {"path": str(key.path.resolve()), "kid": key.kid} for key in keys},
            pid=os.getpid(),
            witness_keys=[self.witness.vkey] if self.witness else [],
            witness_private_key_path=str(self.witness.key_path.resolve()) if self.witness else "",
            alert_topic_arn=self.resources.alert_topic_arn,
        )
        state.write(self.options.state_dir / STATE_FILE_NAME)
        return state

    def queued_audit_events(self) -> tuple[int, int] | None:
        """Audit events on the audit queue and on its dead-letter queue (visible,
        in flight or delayed); None when the queues cannot be read."""
        if self.resources is None or self.moto is None or not self.moto.port:
            return None
        from botocore.config import Config

        sqs = boto3.session.Session(region_name=self.options.region, **_FAKE_SESSION).client(
            "sqs",
            endpoint_url=self.moto.url,
            config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
        )
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        try:
            counts = [
                sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
                for url in (self.resources.audit_queue_url, self.resources.audit_dlq_url)
            ]
        except Exception:  # moto gone: the count is unknown, and the caller says so
            return None
        finally:
            sqs.close()
        queued, dead = (sum(int(count.get(name, 0)) for name in names) for count in counts)
        return queued, dead

    def stop(self) -> None:
        """Stop everything that was started, newest first, and remove the state file.

        The background pollers stop first, so that :attr:`discarded` counts what
        was still queued (moto keeps it in memory only: it goes with the stack).
        """
        state_file = self.options.state_dir / STATE_FILE_NAME
        if self.state is not None and state_file.exists():
            state_file.unlink()
        for poller in self.pollers:
            if poller in self._stoppers:
                self._stoppers.remove(poller)
                self._stop_part(poller)
        # After the pollers: the access-log poller rewrites it every second.
        (self.options.state_dir / STATUS_FILE_NAME).unlink(missing_ok=True)
        if self.state is not None:
            self.discarded = self.queued_audit_events()
        while self._stoppers:
            self._stop_part(self._stoppers.pop())
        if self._mapping_sqs is not None:
            self._mapping_sqs.close()
            self._mapping_sqs = None
        from chalicelib import entrypoints

        entrypoints.use_container(None)

    @staticmethod
    def _stop_part(part: Any) -> None:
        try:
            part.stop()
        except Exception as exc:  # keep stopping the rest
            print(f"warning: stopping {type(part).__name__} failed: {exc}", file=sys.stderr)


def load_app() -> ModuleType:
    """Import ``app.py`` from the project directory, as the Lambda runtime would."""
    if "app" in sys.modules:
        return sys.modules["app"]
    spec = importlib.util.spec_from_file_location("app", PROJECT_DIR / "app.py")
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {PROJECT_DIR / 'app.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["app"] = module
    spec.loader.exec_module(module)
    return module
