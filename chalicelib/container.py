"""The objects one Lambda container builds once and reuses across invocations.

Everything is built on first use: the authorizer never builds the upstream
HTTP pool, the proxy never builds the JWKS cache, and nothing at all happens
when ``app.py`` is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

from chalicelib.aws import AwsClients

if TYPE_CHECKING:
    from chalicelib.audit import AuditEmitter, AuditWriter
    from chalicelib.authenticate.credentials import SessionCredentials
    from chalicelib.authenticate.handler import SignIn
    from chalicelib.authorize import Authorizer
    from chalicelib.aws.sessions import RoleSessions
    from chalicelib.aws.signers import KmsSigner
    from chalicelib.config import DetectionSettings, SessionSettings, Settings
    from chalicelib.detect.alerts import AlertChannels
    from chalicelib.detect.detector import Detector
    from chalicelib.detect.rules import RuleSet
    from chalicelib.detect.state import DynamoState
    from chalicelib.grants import ActiveGrants, GrantStore
    from chalicelib.grants.api import GrantApi
    from chalicelib.grants.usage import GrantUseRecorder
    from chalicelib.identity import JwksCache, TokenVerifier
    from chalicelib.identity.jwks import FetchJson
    from chalicelib.ledger import LedgerState
    from chalicelib.ledger.digest import DigestWriter
    from chalicelib.observability import MetricsRecorder
    from chalicelib.ocsf.exporter import OcsfExporter
    from chalicelib.policy import ActivePolicy, PolicyStore, PolicyVersions
    from chalicelib.proxy import Proxy
    from chalicelib.proxy.assertion import AssertionIssuer
    from chalicelib.proxy.upstream import UpstreamClient
    from chalicelib.sessions.keys import SessionKeySource
    from chalicelib.signing.delegated import DelegatedKeys, KeyEvent
    from chalicelib.signing.registry import KeyRegistry


class Container:
    """Builds and holds the per-container objects.

    Parameters
    ----------
    settings:
        The stage's settings.
    clients:
        AWS clients; built from the settings when omitted.
    fetch_json:
        How key sets are fetched; HTTP when omitted.
    metrics:
        Where counts go; none when omitted.
    """

    def __init__(
        self,
        settings: Settings,
        clients: AwsClients | None = None,
        *,
        fetch_json: FetchJson | None = None,
        metrics: MetricsRecorder | None = None,
    ) -> None:
        self.settings = settings
        sts_endpoint = {"sts": settings.sts_endpoint_url} if settings.sts_endpoint_url else None
        self.clients = clients or AwsClients(
            settings.region, settings.aws_endpoint_url, endpoint_overrides=sts_endpoint
        )
        self._fetch_json = fetch_json
        self.metrics = metrics

    @cached_property
    def jwks(self) -> JwksCache:
        """Signing keys of the trusted issuers."""
        from chalicelib.identity import JwksCache

        return JwksCache(
            self._fetch(),
            cooldown_seconds=self.settings.jwks_refresh_cooldown_seconds,
            max_age_seconds=self.settings.jwks_max_age_seconds,
        )

    @cached_property
    def verifier(self) -> TokenVerifier:
        """Bearer token verification."""
        from chalicelib.identity import TokenVerifier

        return TokenVerifier(
            self.settings.trusted_issuers,
            self.jwks,
            clock_skew_seconds=self.settings.clock_skew_seconds,
            max_token_bytes=self.settings.max_token_bytes,
        )

    @cached_property
    def policy_store(self) -> PolicyStore:
        """The DynamoDB policy store."""
        from chalicelib.policy import PolicyStore

        return PolicyStore(self.clients.dynamodb, self.settings.state_table)

    @cached_property
    def active_policy(self) -> ActivePolicy:
        """The active policy, refreshed on a bound."""
        from chalicelib.policy import ActivePolicy

        return ActivePolicy(
            self.policy_store,
            # The first trusted issuer: policy subjects that name no issuer are its.
            default_issuer=self.settings.trusted_issuers[0].issuer,
            refresh_seconds=self.settings.policy_refresh_seconds,
        )

    @cached_property
    def policy_versions(self) -> PolicyVersions:
        """Immutable policy versions by number."""
        from chalicelib.policy import PolicyVersions

        return PolicyVersions(
            self.policy_store, default_issuer=self.settings.trusted_issuers[0].issuer
        )

    @cached_property
    def grant_store(self) -> GrantStore:
        """Just-in-time grants in DynamoDB."""
        from chalicelib.grants import GrantStore

        return GrantStore(self.clients.dynamodb, self.settings.state_table)

    @cached_property
    def active_grants(self) -> ActiveGrants:
        """The live grants, refreshed as often as the policy."""
        from chalicelib.grants import ActiveGrants

        return ActiveGrants(self.grant_store, refresh_seconds=self.settings.policy_refresh_seconds)

    @cached_property
    def emitter(self) -> AuditEmitter:
        """The audit event emitter (SQS)."""
        from chalicelib.audit import AuditEmitter, SqsAuditSink

        return AuditEmitter(SqsAuditSink(self.clients.sqs, self.settings.audit_queue_url))

    @cached_property
    def key_certifier(self) -> KmsSigner:
        """The stage's KMS key that certifies assertion keys (its public key read once)."""
        from chalicelib.aws.signers import KmsSigner

        return KmsSigner(self.clients.kms, self.settings.assertion_key_id)

    @cached_property
    def key_registry(self) -> KeyRegistry:
        """The state table's record of live assertion keys (what the JWKS serves)."""
        from chalicelib.aws.table import Table
        from chalicelib.signing.registry import KeyRegistry

        return KeyRegistry(
            Table(self.clients.dynamodb, self.settings.state_table),
            self.key_certifier.jwk,
            issuer=self.settings.gateway_issuer,
            stage=self.settings.stage,
        )

    @cached_property
    def key_events(self) -> Callable[[KeyEvent], None]:
        """Puts an assertion key's issuance, rotation or expiry into the audit trail."""
        from chalicelib.signing.events import key_event_recorder

        return key_event_recorder(self.emitter, self.settings.stage)

    @cached_property
    def assertion_keys(self) -> DelegatedKeys:
        """This container's assertion keys, certified by the stage's KMS key once each."""
        from chalicelib.signing.delegated import DelegatedKeys

        return DelegatedKeys(
            self.key_certifier,
            self.key_registry,
            self.key_events,
            issuer=self.settings.gateway_issuer,
            stage=self.settings.stage,
            use_seconds=self.settings.assertion_key_rotate_seconds,
            # An hour beyond the last use: far more than an assertion's five minutes.
            lifetime_seconds=self.settings.assertion_key_rotate_seconds + 3600,
        )

    @cached_property
    def assertions(self) -> AssertionIssuer:
        """Issues identity assertions."""
        from chalicelib.proxy.assertion import AssertionIssuer

        return AssertionIssuer(
            self.assertion_keys,
            issuer=self.settings.gateway_issuer,
            ttl_seconds=self.settings.assertion_ttl_seconds,
        )

    @cached_property
    def upstream(self) -> UpstreamClient:
        """The pooled upstream HTTP client."""
        from chalicelib.proxy.upstream import UpstreamClient

        return UpstreamClient(
            connect_timeout=self.settings.upstream_connect_timeout_seconds,
            read_timeout=self.settings.upstream_read_timeout_seconds,
            max_response_bytes=self.settings.max_response_body_bytes,
        )

    @cached_property
    def aws_sessions(self) -> RoleSessions:
        """Per-principal STS sessions of AWS upstreams' roles (the STS client is built on use)."""
        from chalicelib.aws.sessions import RoleSessions

        return RoleSessions(
            lambda: self.clients.sts, default_issuer=self.settings.trusted_issuers[0].issuer
        )

    @cached_property
    def authorizer(self) -> Authorizer:
        """The REQUEST authorizer: decides on the bearer token it verifies."""
        from chalicelib.authorize import Authorizer, Decider

        return Authorizer(
            decider=Decider(
                verifier=self.verifier,
                policy=self.active_policy,
                grants=self.active_grants,
                sessions=self.session_credentials if self.settings.sessions else None,
            ),
            policy=self.active_policy,
            emitter=self.emitter,
            query_redaction=self.settings.audit_query_redaction,
            query_value_redaction=self.settings.audit_query_value_redaction,
            ttl_seconds=self.settings.authorizer_ttl_seconds,
            metrics=self.metrics,
            sign_in=self.settings.sessions is not None,
        )

    @cached_property
    def session_keys(self) -> SessionKeySource:
        """The keys that seal session cookies (Secrets Manager, re-read on a bound)."""
        from chalicelib.sessions.keys import SessionKeySource

        sessions = self._sessions()
        return SessionKeySource(lambda: self.clients.secretsmanager, sessions.keys_secret)

    @cached_property
    def session_credentials(self) -> SessionCredentials:
        """Opens and checks session cookies (revocations re-read on their bound)."""
        from chalicelib.authenticate.credentials import SessionCredentials
        from chalicelib.aws.table import Table
        from chalicelib.sessions.revocations import RevokedSessions

        sessions = self._sessions()
        revoked = RevokedSessions(
            Table(self.clients.dynamodb, self.settings.state_table),
            refresh_seconds=sessions.revocation_refresh_seconds,
        )
        return SessionCredentials(self.session_keys, revoked, idle_seconds=sessions.idle_seconds)

    @cached_property
    def sign_in(self) -> SignIn:
        """The sign-in routes under /.gatehouse/."""
        from dataclasses import replace

        from chalicelib.authenticate.handler import SignIn
        from chalicelib.authenticate.provider import Provider
        from chalicelib.aws.table import Table
        from chalicelib.identity import TokenVerifier
        from chalicelib.sessions.store import SessionStore

        sessions = self._sessions()
        signing_in = [issuer for issuer in self.settings.trusted_issuers if issuer.offers_sign_in]
        providers = {
            issuer.name: Provider(
                issuer,
                self._fetch(),
                client_secret=self._client_secret(issuer.client_secret_id),
                timeout_seconds=self.settings.jwks_fetch_timeout_seconds,
            )
            for issuer in signing_in
        }
        # ID tokens name the client, not an API: the same rules, another audience.
        id_tokens = TokenVerifier(
            [replace(issuer, audiences=(str(issuer.client_id),)) for issuer in signing_in],
            self.jwks,
            clock_skew_seconds=self.settings.clock_skew_seconds,
            max_token_bytes=self.settings.max_token_bytes,
        )
        return SignIn(
            providers=providers,
            id_tokens=id_tokens,
            keys=self.session_keys,
            store=SessionStore(
                Table(self.clients.dynamodb, self.settings.state_table), self.session_keys
            ),
            credentials=self.session_credentials,
            emitter=self.emitter,
            settings=sessions,
            base_url=self.settings.gateway_issuer,
            stage=self.settings.stage,
        )

    def _sessions(self) -> SessionSettings:
        sessions = self.settings.sessions
        if sessions is None:
            raise RuntimeError("this stage has no browser sign-in (GATEHOUSE_SESSION_KEYS_SECRET)")
        return sessions

    def _client_secret(self, secret_id: str | None) -> Callable[[], str | None]:
        """Reads a sign-in client's secret on first use, then keeps it."""
        if secret_id is None:
            return lambda: None
        cache: list[str] = []

        def secret() -> str:
            if not cache:
                answer = self.clients.secretsmanager.get_secret_value(SecretId=secret_id)
                cache.append(str(answer["SecretString"]))
            return cache[0]

        return secret

    def _fetch(self) -> FetchJson:
        if self._fetch_json is not None:
            return self._fetch_json
        from chalicelib.identity.fetch import http_fetch_json

        return http_fetch_json(self.settings.jwks_fetch_timeout_seconds)

    @cached_property
    def grant_uses(self) -> GrantUseRecorder:
        """Records the first use of each grant (called from the authorizer's entry point)."""
        from chalicelib.grants.usage import GrantUseRecorder

        return GrantUseRecorder(
            store=self.grant_store, emitter=self.emitter, stage=self.settings.stage
        )

    @cached_property
    def proxy(self) -> Proxy:
        """The proxy: decides again, on the identity a cached answer carries."""
        from chalicelib.authorize import Decider
        from chalicelib.proxy import Proxy

        sign_in = None
        credentials = None
        if self.settings.sessions is not None:
            from chalicelib.authenticate.browser import BrowserRedirects

            credentials = self.session_credentials
            sign_in = BrowserRedirects(credentials, self.settings.gateway_issuer)
        return Proxy(
            decider=Decider(
                verifier=None,
                policy=self.active_policy,
                grants=self.active_grants,
                sessions=credentials,
            ),
            sign_in=sign_in,
            versions=self.policy_versions,
            assertions=self.assertions,
            upstream=self.upstream,
            emitter=self.emitter,
            query_redaction=self.settings.audit_query_redaction,
            query_value_redaction=self.settings.audit_query_value_redaction,
            max_request_body_bytes=self.settings.max_request_body_bytes,
            metrics=self.metrics,
            aws_sessions=self.aws_sessions,
        )

    @cached_property
    def grant_api(self) -> GrantApi:
        """The grant routes: the only writer of grants."""
        from chalicelib.grants.api import GrantApi

        return GrantApi(
            self.verifier,
            self.grant_store,
            self.active_policy,
            self.emitter,
            stage=self.settings.stage,
            grant_refresh_seconds=self.settings.policy_refresh_seconds,
        )

    @cached_property
    def ledger_state(self) -> LedgerState:
        """The ledger's state in DynamoDB."""
        from chalicelib.ledger import LedgerState

        return LedgerState(self.clients.dynamodb, self.settings.state_table)

    @cached_property
    def digest_writer(self) -> DigestWriter:
        """Signs the ledger's digests with the stage's key, and anchors them."""
        from chalicelib.aws.signers import KmsSigner
        from chalicelib.ledger.digest import DigestWriter, S3Anchor

        anchor = None
        if self.settings.ledger_anchor:
            anchor = S3Anchor.from_uri(
                self.clients.s3, self.settings.ledger_anchor, self.settings.stage
            )
        return DigestWriter(
            self.clients.s3,
            self.settings.audit_bucket,
            self.ledger_state,
            KmsSigner(self.clients.kms, self.settings.digest_key_id),
            stage=self.settings.stage,
            origin=self.settings.ledger_origin,
            anchor=anchor,
        )

    def ocsf_exporter(self, region: str, account: str) -> OcsfExporter | None:
        """The OCSF export into the Security Lake location (None: the stage exports nothing)."""
        from chalicelib.ocsf.cursor import ExportCursor
        from chalicelib.ocsf.exporter import LakeLocation, OcsfExporter, ProviderRoles

        location = self.settings.ocsf_export_location
        if location is None:
            return None
        lake_s3 = None
        role = self.settings.ocsf_export_role_arn
        if role is not None:
            roles = ProviderRoles(
                self.clients.sts,
                lambda credentials: self.clients.assumed("s3", credentials),
                role,
                self.settings.ocsf_export_external_id,
            )
            lake_s3 = roles.s3_for
        return OcsfExporter(
            self.clients.s3,
            self.settings.audit_bucket,
            self.ledger_state,
            ExportCursor(self.clients.dynamodb, self.settings.state_table),
            LakeLocation.from_uri(location, region=region, account=account),
            origin=self.settings.ledger_origin,
            lake_s3=lake_s3,
        )

    @cached_property
    def writer(self) -> AuditWriter:
        """The audit writer (S3); detection runs on each batch it commits."""
        from chalicelib.audit import AuditWriter

        detector = self.detector
        return AuditWriter(
            self.clients.s3,
            self.settings.audit_bucket,
            self.ledger_state,
            after_commit=None if detector is None else detector.after_commit,
        )

    @cached_property
    def detection_rules(self) -> RuleSet:
        """The stage's detection rules (the shipped defaults unless the stage names a file).

        Raises
        ------
        chalicelib.detect.RulesInvalid
            When the stage's rules file cannot be read or has problems.
        """
        from pathlib import Path

        from chalicelib.detect.rules import default_rules, load_rules_file

        path = self._detection().rules_path
        return default_rules() if path is None else load_rules_file(Path(path))

    @cached_property
    def detection_state(self) -> DynamoState:
        """Detection's windows, first-seen sets and suppression (the ``DETECT`` partition)."""
        from chalicelib.detect.state import DynamoState

        return DynamoState(self.clients.dynamodb, self.settings.state_table)

    @cached_property
    def alert_channels(self) -> AlertChannels:
        """SNS (the stage's alert topic), EventBridge, and the audit trail."""
        from chalicelib.detect.alerts import AlertChannels

        detection = self._detection()
        return AlertChannels(
            self.clients.sns if detection.alert_topic_arn else None,
            detection.alert_topic_arn,
            self.clients.events,
            detection.event_bus,
            self.emitter,
        )

    @cached_property
    def detector(self) -> Detector | None:
        """Runs the event rules on committed batches (None when detection is off).

        Invalid rules do not stop the writer: every batch then logs the
        problem and counts ``DetectionFailed``, which alarms.
        """
        if self.settings.detection is None:
            return None
        from chalicelib.detect.detector import Detector
        from chalicelib.detect.errors import RulesInvalid
        from chalicelib.detect.rules import RuleSet

        try:
            rules = self.detection_rules
        except RulesInvalid as exc:
            return Detector(
                RuleSet((), exc.source),
                self.detection_state,
                None,
                stage=self.settings.stage,
                metrics=self.metrics,
                broken=str(exc),
            )
        return Detector(
            rules,
            self.detection_state,
            self.alert_channels,
            stage=self.settings.stage,
            metrics=self.metrics,
        )

    def _detection(self) -> DetectionSettings:
        detection = self.settings.detection
        if detection is None:
            raise RuntimeError("detection is off on this stage (GATEHOUSE_DETECTION_RULES=off)")
        return detection
