"""One typed settings object, built once per container from the environment.

Stage values come from ``.chalice/config.json`` (Lambda) or from the local
stack (``gatehouse dev``). :meth:`Settings.from_environment` validates every
variable and reports every problem at once, so a misconfigured stage fails on
its first invocation with the whole list, not one error per deploy.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from chalicelib.variables import PREFIX, VARIABLES, Variable

_T = TypeVar("_T")

# Query parameter names whose values never reach the audit trail: anything
# token-, secret-, pass-, signature-, credential-, session- or key-like (also
# camelCase ``accessKey``), one-time codes (``totp``, ``mfa_code``, OAuth's
# ``code`` and ``state``), and bearer/authorization. Redacting a harmless
# parameter (``compass``, ``zipcode``) costs little; keeping a secret costs a lot.
DEFAULT_QUERY_REDACTION = (
    r"(?i)(token|secret|pass|pwd|signature|credential|sess|assertion|saml|jwt|verifier"
    r"|ticket|nonce|private|api[-_]?key|bearer|authoriz|hmac|reset|invite|magic"
    r"|(^|[-_.])(key|otp|otc|pin|sid|sig|pw)($|[-_.])"
    r"|key$|code$|(^|[-_.])(totp|hotp|mfa|2fa)|^state$|^auth)"
)
# Query values (and names) that look like credentials whatever their parameter
# is called, each a run of token characters: a JWS/JWE/JWT (a base64url JSON
# header: '{"' is "eyJ"), an AWS access key id, a vendor token with a telling
# prefix, 32 or more base64/base64url characters mixing lower case, upper case
# and digits; or 32 or more hex digits mixing digits and letters. Runs are tried
# from their start only (the lookbehinds), so a long value costs linear time:
# this runs on every request. Words, numbers, dates and UUIDs do not match.
DEFAULT_QUERY_VALUE_REDACTION = (
    r"(?<![A-Za-z0-9+/_-])(?:"
    r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\."
    r"|(?:AKIA|ASIA)[A-Z0-9]{16}\b"
    r"|(?:gh[pousr]_|github_pat_|xox[abposr]-|[rs]k_live_|glpat-|npm_)[A-Za-z0-9_-]{16,}"
    r"|(?=[A-Za-z0-9+/_-]*?[a-z])(?=[A-Za-z0-9+/_-]*?[A-Z])(?=[A-Za-z0-9+/_-]*?[0-9])"
    r"[A-Za-z0-9+/_-]{32,}"
    # 32 or more lower-case letters and digits, both present (session ids, magic links).
    r"|(?=[a-z0-9]*?[a-z])(?=[a-z0-9]*?[0-9])[a-z0-9]{32,}(?![A-Za-z0-9+/_-])"
    r")"
    r"|(?<![0-9A-Fa-f])(?=[0-9A-Fa-f]*?[0-9])(?=[0-9A-Fa-f]*?[A-Fa-f])[0-9A-Fa-f]{32,}"
)


class SettingsError(ValueError):
    """The environment does not describe a usable stage; ``problems`` lists why."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid Gatehouse settings:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    """An OIDC issuer whose tokens Gatehouse accepts.

    Attributes
    ----------
    issuer:
        The exact ``iss`` value.
    audiences:
        Accepted ``aud`` values; a token must name at least one.
    jwks_uri:
        Where the signing keys are; discovered from
        ``{issuer}/.well-known/openid-configuration`` when omitted.
    groups_claim:
        The claim that carries group names.
    email_verified_required:
        Use ``email`` only when ``email_verified`` is true. Set false only for
        an issuer that verifies every address it puts in tokens and never
        sends ``email_verified``.
    name:
        A short name for people and URLs (the login page, ``?idp=``, audit
        records); the issuer's host name unless set.
    display_name:
        What the login page calls it.
    client_id:
        Gatehouse's OAuth client at this issuer: browser sign-in through it
        is offered only when set. Its ID tokens must name it in ``aud``.
    client_secret_id:
        The Secrets Manager secret that holds the client's secret; None for a
        public client (PKCE alone).
    scopes:
        What sign-in asks for (``openid`` always among them).
    """

    issuer: str
    audiences: tuple[str, ...]
    jwks_uri: str | None = None
    groups_claim: str = "groups"
    email_verified_required: bool = True
    name: str = ""
    display_name: str = ""
    client_id: str | None = None
    client_secret_id: str | None = None
    scopes: tuple[str, ...] = ("openid", "email", "profile")

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", _host_name(self.issuer))
        if not self.display_name:
            object.__setattr__(self, "display_name", self.name)

    @property
    def offers_sign_in(self) -> bool:
        """Whether people can sign in with a browser through this issuer."""
        return self.client_id is not None


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """Browser sessions: how they are sealed and how long they last.

    Attributes
    ----------
    keys_secret:
        The Secrets Manager secret holding the cookie-sealing keys.
    max_seconds, idle_seconds:
        Absolute lifetime from sign-in; the longest a session may go unused.
    refresh_seconds:
        How long the claims of a sign-in (or of a refresh) are used.
    revocation_refresh_seconds:
        How often a container reads the revoked sessions.
    """

    keys_secret: str
    max_seconds: int
    idle_seconds: int
    refresh_seconds: int
    revocation_refresh_seconds: float


@dataclass(frozen=True, slots=True)
class DetectionSettings:
    """Where detection's rules come from and where its alerts go (``chalicelib.detect``)."""

    # A JSON rules file; None: the shipped default rules.
    rules_path: str | None
    alert_topic_arn: str | None
    event_bus: str
    # The audit dead-letter queue the scheduled check watches (None: not watched).
    dlq_url: str | None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a Gatehouse function needs to know about its stage."""

    stage: str
    region: str
    aws_endpoint_url: str | None
    state_table: str
    audit_bucket: str
    audit_queue_url: str
    assertion_key_id: str
    digest_key_id: str
    gateway_issuer: str
    # The first is the default issuer: policy subjects that name no issuer are its.
    trusted_issuers: tuple[TrustedIssuer, ...]
    # None: no browser sign-in on this stage.
    sessions: SessionSettings | None
    # The defaults and ranges of what follows are in chalicelib.variables.
    authorizer_ttl_seconds: int
    policy_refresh_seconds: float
    jwks_refresh_cooldown_seconds: float
    jwks_max_age_seconds: float
    jwks_fetch_timeout_seconds: float
    clock_skew_seconds: int
    max_token_bytes: int
    assertion_ttl_seconds: int
    assertion_key_rotate_seconds: int
    upstream_connect_timeout_seconds: float
    upstream_read_timeout_seconds: float
    max_request_body_bytes: int
    max_response_body_bytes: int
    audit_query_redaction: re.Pattern[str]
    # None: values are redacted by their parameter's name only.
    audit_query_value_redaction: re.Pattern[str] | None
    # s3://bucket[/prefix]: where the newest ledger checkpoint also goes (None: nowhere).
    ledger_anchor: str | None
    # STS only (AWS upstreams' sessions); the local stack puts its CloudTrail
    # recorder here, in front of moto. None: aws_endpoint_url, else AWS's own.
    sts_endpoint_url: str | None
    # The origin line of the ledger's checkpoints ("": the default, see ledger_origin).
    ledger_origin_setting: str = ""
    # None: detection is off (GATEHOUSE_DETECTION_RULES=off).
    detection: DetectionSettings | None = None
    # s3://bucket[/prefix]: the Security Lake root the OCSF export writes under (None: off).
    ocsf_export_location: str | None = None
    # The role (a template: "{source}" is each custom source's name) the export assumes to
    # write the lake, and the external ID it requires (None: its own role, none).
    ocsf_export_role_arn: str | None = None
    ocsf_export_external_id: str | None = None

    @property
    def ledger_origin(self) -> str:
        """The ledger's checkpoint origin (:func:`ledger_origin`)."""
        return ledger_origin(self.audit_bucket, self.ledger_origin_setting)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default: ``os.environ``).

        Raises
        ------
        SettingsError
            Listing every missing or invalid variable.
        """
        return _SettingsReader(os.environ if environ is None else environ).read()


def ledger_origin(audit_bucket: str, setting: str | None = None) -> str:
    """The origin line of the ledger's checkpoints: ``setting``, else ``s3.amazonaws.com/<bucket>``.

    Bucket names are unique across AWS, so two stages never share a default
    origin (a witness tells logs apart by it).
    """
    return setting or f"s3.amazonaws.com/{audit_bucket}"


def _dead_letter_url(queue_url: str) -> str | None:
    """The audit dead-letter queue's URL: the audit queue's, ``-dlq`` appended."""
    return f"{queue_url.rstrip('/')}-dlq" if queue_url else None


def authorizer_ttl_from_environment() -> int:
    """The authorizer result TTL, read when Chalice generates the API definition.

    Chalice exports the stage's ``environment_variables`` before it loads
    ``app.py``, so ``chalice package --stage prod`` sees the prod value.
    """
    variable = VARIABLES["AUTHORIZER_TTL_SECONDS"]
    raw = os.environ.get(variable.env) or str(variable.int_default())
    problems: list[str] = []
    ttl = _parse_int(variable.env, raw, int(variable.low or 0), int(variable.high or 0), problems)
    if problems:
        raise SettingsError(problems)
    return ttl


class _SettingsReader:
    """Reads variables one by one, collecting problems instead of stopping."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.problems: list[str] = []
        # Plain-http issuers are for the local stack only; anywhere else an
        # attacker on the path could swap the keys that prove identity.
        allow_http = VARIABLES["ALLOW_HTTP_ISSUERS"]
        self._schemes: tuple[str, ...] = (
            ("https://", "http://")
            if (environ.get(allow_http.env) or str(allow_http.default)).lower() == "true"
            else ("https://",)
        )
        self._scheme_text = "an http(s) URL" if len(self._schemes) == 2 else "an https URL"

    def read(self) -> Settings:
        region = self._environ.get("AWS_REGION") or self._environ.get("AWS_DEFAULT_REGION")
        if not region:
            self.problems.append("AWS_REGION (or AWS_DEFAULT_REGION) is not set")
        gateway_issuer = self._required("GATEWAY_ISSUER")
        if gateway_issuer and not gateway_issuer.startswith(self._schemes):
            self.problems.append(
                f"{PREFIX}GATEWAY_ISSUER must be {self._scheme_text}, got {gateway_issuer!r}"
            )
        issuers = self._issuers()
        ttl_seconds = self._int("AUTHORIZER_TTL_SECONDS")
        settings = Settings(
            stage=self._optional("STAGE"),
            region=region or "",
            aws_endpoint_url=self._optional("AWS_ENDPOINT_URL") or None,
            state_table=self._renamed("STATE_TABLE", "POLICY_TABLE"),
            audit_bucket=self._required("AUDIT_BUCKET"),
            audit_queue_url=self._required("AUDIT_QUEUE_URL"),
            assertion_key_id=self._required("ASSERTION_KEY_ID"),
            digest_key_id=self._required("DIGEST_KEY_ID"),
            gateway_issuer=gateway_issuer.rstrip("/"),
            trusted_issuers=issuers,
            sessions=self._sessions(issuers, ttl_seconds),
            authorizer_ttl_seconds=ttl_seconds,
            policy_refresh_seconds=self._float("POLICY_REFRESH_SECONDS"),
            jwks_refresh_cooldown_seconds=self._float("JWKS_REFRESH_COOLDOWN_SECONDS"),
            jwks_max_age_seconds=self._float("JWKS_MAX_AGE_SECONDS"),
            jwks_fetch_timeout_seconds=self._float("JWKS_FETCH_TIMEOUT_SECONDS"),
            clock_skew_seconds=self._int("CLOCK_SKEW_SECONDS"),
            max_token_bytes=self._int("MAX_TOKEN_BYTES"),
            assertion_ttl_seconds=self._int("ASSERTION_TTL_SECONDS"),
            assertion_key_rotate_seconds=self._int("ASSERTION_KEY_ROTATE_SECONDS"),
            upstream_connect_timeout_seconds=self._float("UPSTREAM_CONNECT_TIMEOUT_SECONDS"),
            upstream_read_timeout_seconds=self._float("UPSTREAM_READ_TIMEOUT_SECONDS"),
            max_request_body_bytes=self._int("MAX_REQUEST_BODY_BYTES"),
            max_response_body_bytes=self._int("MAX_RESPONSE_BODY_BYTES"),
            audit_query_redaction=self._pattern("AUDIT_QUERY_REDACTION", DEFAULT_QUERY_REDACTION),
            audit_query_value_redaction=self._optional_pattern(
                "AUDIT_QUERY_VALUE_REDACTION", DEFAULT_QUERY_VALUE_REDACTION
            ),
            ledger_anchor=self._anchor(),
            sts_endpoint_url=self._optional("STS_ENDPOINT_URL") or None,
            ledger_origin_setting=self._origin(),
            detection=self._detection(),
            ocsf_export_location=self._s3_location("OCSF_EXPORT_LOCATION"),
            ocsf_export_role_arn=self._role_template("OCSF_EXPORT_ROLE_ARN"),
            ocsf_export_external_id=self._optional("OCSF_EXPORT_EXTERNAL_ID").strip() or None,
        )
        if self.problems:
            raise SettingsError(self.problems)
        return settings

    def _sessions(
        self, issuers: tuple[TrustedIssuer, ...], ttl_seconds: int
    ) -> SessionSettings | None:
        keys_secret = self._environ.get(PREFIX + "SESSION_KEYS_SECRET", "").strip()
        signing_in = [issuer.name for issuer in issuers if issuer.offers_sign_in]
        if not keys_secret:
            if signing_in:
                self.problems.append(
                    f"{PREFIX}TRUSTED_ISSUERS gives a client_id ({', '.join(signing_in)}) but "
                    f"{PREFIX}SESSION_KEYS_SECRET is not set: browser sign-in needs keys to "
                    "seal its cookies (`gatehouse session rotate-key` makes the first)"
                )
            return None
        if issuers and not signing_in:
            self.problems.append(
                f"{PREFIX}SESSION_KEYS_SECRET is set but no issuer in {PREFIX}TRUSTED_ISSUERS "
                "has a client_id: give the issuers people sign in with one"
            )
        if ttl_seconds > 0:
            # With a TTL, API Gateway keys its cache on the Authorization header
            # and answers 401 itself when a request has none: a browser (which
            # sends a cookie) would never reach the authorizer.
            self.problems.append(
                f"browser sign-in ({PREFIX}SESSION_KEYS_SECRET) needs "
                f"{PREFIX}AUTHORIZER_TTL_SECONDS=0: API Gateway's authorizer cache is keyed on "
                "the Authorization header, which a browser does not send"
            )
        return SessionSettings(
            keys_secret=keys_secret,
            max_seconds=self._int("SESSION_MAX_SECONDS"),
            idle_seconds=self._int("SESSION_IDLE_SECONDS"),
            refresh_seconds=self._int("SESSION_REFRESH_SECONDS"),
            revocation_refresh_seconds=self._float("SESSION_REVOCATION_REFRESH_SECONDS"),
        )

    def _detection(self) -> DetectionSettings | None:
        rules = self._optional("DETECTION_RULES")
        if rules.lower() == "off":
            return None
        return DetectionSettings(
            rules_path=rules or None,
            alert_topic_arn=self._optional("ALERT_TOPIC_ARN") or None,
            event_bus=self._optional("ALERT_EVENT_BUS"),
            # The stack names the dead-letter queue after the queue (infra/gatehouse.yaml,
            # gatehouse/resources.py): its URL need not be configured.
            dlq_url=self._optional("AUDIT_DLQ_URL")
            or _dead_letter_url(self._optional("AUDIT_QUEUE_URL")),
        )

    def _origin(self) -> str:
        value = self._environ.get(PREFIX + "LEDGER_ORIGIN", "").strip()
        if len(value) > 200 or any(ch.isspace() or ch == "+" for ch in value):
            self.problems.append(
                f"{PREFIX}LEDGER_ORIGIN is a name of at most 200 characters, without spaces "
                "or '+' (like example.com/audit)"
            )
        return value

    def _anchor(self) -> str | None:
        value = self._environ.get(PREFIX + "LEDGER_ANCHOR", "").strip()
        if not value:
            return None
        if not value.startswith("s3://") or not value[5:].split("/", 1)[0]:
            self.problems.append(f"{PREFIX}LEDGER_ANCHOR must be s3://bucket[/prefix]")
        return value

    def _s3_location(self, name: str) -> str | None:
        value = self._environ.get(PREFIX + name, "").strip()
        if value and (not value.startswith("s3://") or not value[5:].split("/", 1)[0]):
            self.problems.append(f"{PREFIX}{name} must be s3://bucket[/prefix]")
        return value or None

    def _role_template(self, name: str) -> str | None:
        value = self._environ.get(PREFIX + name, "").strip()
        example = value.replace("{source}", "gatehouse-http-activity")
        if value and not _ROLE_ARN.fullmatch(example):
            self.problems.append(
                f"{PREFIX}{name} must be a role ARN (arn:aws:iam::<account>:role/<name>), "
                "`{source}` standing for each custom source's name"
            )
        return value or None

    def _optional(self, name: str) -> str:
        variable = VARIABLES[name]
        return self._environ.get(variable.env) or str(variable.default or "")

    def _required(self, name: str) -> str:
        variable = VARIABLES[name]
        value = self._environ.get(variable.env, "").strip()
        if not value:
            self.problems.append(f"{variable.env} is not set")
        return value

    def _renamed(self, name: str, old_name: str) -> str:
        """A required variable that had another name: say so rather than "not set"."""
        if not self._environ.get(PREFIX + name, "").strip() and self._environ.get(
            PREFIX + old_name
        ):
            self.problems.append(
                f"{PREFIX}{old_name} is now called {PREFIX}{name} (the table holds "
                "policies, grants and the ledger's state); set that instead"
            )
            return ""
        return self._required(name)

    def _int(self, name: str) -> int:
        variable = VARIABLES[name]
        raw = self._environ.get(variable.env)
        if raw is None or raw == "":
            return variable.int_default()
        low, high = _bounds(variable)
        return _parse_int(variable.env, raw, int(low), int(high), self.problems)

    def _float(self, name: str) -> float:
        variable = VARIABLES[name]
        raw = self._environ.get(variable.env)
        if raw is None or raw == "":
            return variable.float_default()
        value = _parse(variable.env, raw, float, self.problems)
        low, high = _bounds(variable)
        if value is not None and not low <= value <= high:
            self.problems.append(f"{variable.env} must be between {low} and {high}, got {raw}")
        return variable.float_default() if value is None else value

    def _pattern(self, name: str, default: str) -> re.Pattern[str]:
        raw = self._environ.get(PREFIX + name) or default
        try:
            return re.compile(raw)
        except re.error as exc:
            self.problems.append(f"{PREFIX}{name} is not a valid regular expression: {exc}")
            return re.compile(default)

    def _optional_pattern(self, name: str, default: str) -> re.Pattern[str] | None:
        """``default`` when the variable is unset; None (the rule is off) when it is empty."""
        raw = self._environ.get(PREFIX + name)
        if raw is None:
            return re.compile(default)
        if not raw.strip():
            return None
        try:
            return re.compile(raw)
        except re.error as exc:
            self.problems.append(f"{PREFIX}{name} is not a valid regular expression: {exc}")
            return None

    def _issuers(self) -> tuple[TrustedIssuer, ...]:
        raw = self._required("TRUSTED_ISSUERS")
        if not raw:
            return ()
        name = PREFIX + "TRUSTED_ISSUERS"
        try:
            document = json.loads(raw)
        except ValueError as exc:
            self.problems.append(f"{name} is not JSON: {exc}")
            return ()
        if not isinstance(document, list) or not document:
            self.problems.append(f"{name} must be a non-empty JSON list of issuers")
            return ()
        issuers = [self._issuer(name, index, entry) for index, entry in enumerate(document)]
        found = [issuer for issuer in issuers if issuer is not None]
        urls = [issuer.issuer.rstrip("/") for issuer in found]
        if len(set(urls)) != len(urls):
            self.problems.append(f"{name} lists the same issuer twice")
        short_names = [issuer.name for issuer in found]
        if len(set(short_names)) != len(short_names):
            self.problems.append(
                f"{name}: two issuers are both named {_first_repeated(short_names)!r}; "
                "give each a distinct name"
            )
        return tuple(found)

    def _check_sign_in_fields(self, where: str, entry: dict[str, Any]) -> None:
        """The fields of browser sign-in (and the issuer's names)."""
        for field in ("client_id", "client_secret_id", "display_name"):
            value = entry.get(field)
            if value is not None and not (isinstance(value, str) and value.strip()):
                self.problems.append(f"{where}.{field} must be a non-empty string")
        if entry.get("client_secret_id") is not None and entry.get("client_id") is None:
            self.problems.append(f"{where}.client_secret_id needs a client_id")
        short_name = entry.get("name")
        if short_name is not None and not (
            isinstance(short_name, str) and _ISSUER_NAME.fullmatch(short_name)
        ):
            self.problems.append(
                f"{where}.name must be 1-32 letters, digits, '.', '_' or '-', got {short_name!r}"
            )
        scopes = entry.get("scopes", ["openid"])
        if (
            not isinstance(scopes, list)
            or "openid" not in scopes
            or not all(isinstance(scope, str) and _SCOPE.fullmatch(scope) for scope in scopes)
        ):
            self.problems.append(f"{where}.scopes must be a list of scopes including openid")

    def _issuer(self, name: str, index: int, entry: object) -> TrustedIssuer | None:
        where = f"{name}[{index}]"
        if not isinstance(entry, dict):
            self.problems.append(f"{where} must be an object")
            return None
        unknown = set(entry) - {
            "issuer",
            "audiences",
            "jwks_uri",
            "groups_claim",
            "email_verified_required",
            "name",
            "display_name",
            "client_id",
            "client_secret_id",
            "scopes",
        }
        if unknown:
            self.problems.append(f"{where} has unknown fields: {', '.join(sorted(unknown))}")
        issuer = entry.get("issuer")
        audiences = entry.get("audiences")
        jwks_uri = entry.get("jwks_uri")
        groups_claim = entry.get("groups_claim", "groups")
        email_verified_required = entry.get("email_verified_required", True)
        client_id = entry.get("client_id")
        client_secret_id = entry.get("client_secret_id")
        scopes = entry.get("scopes", ["openid", "email", "profile"])
        short_name = entry.get("name")
        display_name = entry.get("display_name")
        problems_before = len(self.problems)
        self._check_sign_in_fields(where, entry)
        if not isinstance(email_verified_required, bool):
            self.problems.append(f"{where}.email_verified_required must be true or false")
        if not isinstance(issuer, str) or not issuer.startswith(self._schemes):
            self.problems.append(f"{where}.issuer must be {self._scheme_text}")
        if (
            not isinstance(audiences, list)
            or not (audiences or client_id)
            or not all(isinstance(a, str) and a for a in audiences)
        ):
            # An issuer only people sign in through needs no API audience.
            self.problems.append(f"{where}.audiences must be a non-empty list of strings")
        if jwks_uri is not None and not (
            isinstance(jwks_uri, str) and jwks_uri.startswith(self._schemes)
        ):
            self.problems.append(f"{where}.jwks_uri must be {self._scheme_text}")
        if not isinstance(groups_claim, str) or not groups_claim:
            self.problems.append(f"{where}.groups_claim must be a claim name")
        if len(self.problems) != problems_before:
            return None
        assert isinstance(issuer, str) and isinstance(audiences, list)  # narrowed above
        assert isinstance(scopes, list)
        return TrustedIssuer(
            issuer=issuer,
            audiences=tuple(audiences),
            jwks_uri=jwks_uri,
            groups_claim=str(groups_claim),
            email_verified_required=email_verified_required,
            name=short_name or "",
            display_name=display_name or "",
            client_id=client_id,
            client_secret_id=client_secret_id,
            scopes=tuple(scopes),
        )


_ISSUER_NAME = re.compile(r"[A-Za-z0-9._-]{1,32}")
# IAM's role ARN: partition, 12-digit account, a path and name of IAM's characters.
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}", re.ASCII)
_SCOPE = re.compile(r"[!#-\[\]-~]+")  # RFC 6749 3.3: printable ASCII but space, " and \\


def _host_name(url: str) -> str:
    """``idp.example.com`` of ``https://idp.example.com/tenant``; a port becomes ``-<port>``."""
    authority = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    return authority.replace(":", "-")[:32] or "issuer"


def _first_repeated(names: list[str]) -> str:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return ""


def _bounds(variable: Variable) -> tuple[float, float]:
    assert variable.low is not None and variable.high is not None  # numbers have ranges
    return variable.low, variable.high


def _parse(name: str, raw: str, convert: Callable[[str], _T], problems: list[str]) -> _T | None:
    try:
        return convert(raw)
    except ValueError:
        problems.append(f"{name} must be a number, got {raw!r}")
        return None


def _parse_int(name: str, raw: str, low: int, high: int, problems: list[str]) -> int:
    value = _parse(name, raw, int, problems)
    if value is None:
        return low
    if not low <= value <= high:
        problems.append(f"{name} must be between {low} and {high}, got {value}")
    return value


def trusted_issuers_from_environment(environ: Mapping[str, str]) -> tuple[TrustedIssuer, ...]:
    """``GATEHOUSE_TRUSTED_ISSUERS`` alone, for operator commands that verify tokens.

    Raises
    ------
    SettingsError
        When the variable is missing or invalid.
    """
    reader = _SettingsReader(environ)
    issuers = reader._issuers()  # the same rules as the functions use
    if reader.problems:
        raise SettingsError(reader.problems)
    return issuers
