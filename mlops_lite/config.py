"""Settings: keyword arguments > ``MLOPS_LITE_*`` environment > ``mlops-lite.toml`` > defaults.

The toml file is looked up in the home (``$MLOPS_LITE_HOME/mlops-lite.toml``) and,
when ``MLOPS_LITE_CONFIG`` names one, there instead.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_FILE_NAME = "mlops-lite.toml"
_ORIGIN = re.compile(r"^https?://[^/\s?#]+$")
_SECRET_FIELDS = frozenset({"token", "lakefs_secret_access_key"})
_ALLOW_ENTRY = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\*|\d{1,5})$")


def _env_list(value: Any) -> Any:
    """A list setting as the environment gives it, one string: a JSON list or
    comma-separated entries. Anything else is returned as it is."""
    if isinstance(value, str):
        text = value.strip()
        return json.loads(text) if text.startswith("[") else [e.strip() for e in text.split(",") if e.strip()]
    return value


def default_home() -> Path:
    return Path(os.environ.get("MLOPS_LITE_HOME") or Path.home() / ".mlops-lite").expanduser()


def _config_file() -> Path:
    explicit = os.environ.get("MLOPS_LITE_CONFIG")
    return Path(explicit).expanduser() if explicit else default_home() / CONFIG_FILE_NAME


Role = Literal["predictor", "viewer", "operator", "approver", "admin"]  # security.roles.ROLES, in order
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")
# Asymmetric JWS algorithms only: never "none", never HS*.
OIDC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class OidcGrant(BaseModel):
    """Members of ``group`` hold ``grant`` (``ROLE:model:GLOB`` or ``ROLE:repo:GLOB``)."""

    model_config = ConfigDict(extra="forbid")

    group: str = Field(min_length=1)
    grant: str = Field(min_length=1)


class OidcIssuer(BaseModel):
    """One trusted OpenID provider (a ``[[oidc]]`` table): whose JWTs are accepted as bearer
    tokens, and how their claims become a role and grants.

    ``client_id`` is the public client ``mlops-lite login`` presents to the provider; the
    server checks ``audience`` (often the same string)."""

    model_config = ConfigDict(extra="forbid")

    issuer: str
    audience: str = Field(min_length=1)
    client_id: str | None = None
    # Signature algorithms accepted, each with a key of its type (RSA, EC, OKP). Symmetric
    # (HS*) ones would let anyone holding the provider's public key forge tokens.
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    clock_skew_s: float = Field(default=60.0, ge=0, le=300)
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    # group -> role; a member of several groups gets the highest role among them.
    roles: dict[str, Role] = Field(default_factory=dict)
    # The role of a subject none of whose groups is in ``roles``; unset: such a subject is refused.
    default_role: Role | None = None
    grants: list[OidcGrant] = Field(default_factory=list)
    # How long the provider's keys (JWKS) are kept, and how often at most an unknown key id
    # may refetch them (a flood of made-up key ids must not hammer the provider).
    jwks_ttl_s: float = Field(default=3600.0, gt=0, le=86_400)
    jwks_min_refresh_s: float = Field(default=30.0, ge=0.1, le=3600)
    # A private CA the issuer's TLS certificate chains to (an on-premises Keycloak); unset:
    # the system's trust store.
    ca_bundle: Path | None = None

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"issuer must be an https URL like 'https://idp.example.com/realms/acme', got {value!r}")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
            raise ValueError(f"issuer must use https (plain http only for a loopback issuer), got {value!r}")
        return value

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in OIDC_ALGORITHMS:
                refused = (" ('none' is unsigned; HS* are shared-secret algorithms that a public key "
                           "would sign)" if name.lower() == "none" or name.upper().startswith("HS") else "")
                raise ValueError(f"algorithm {name!r} is not accepted{refused}; choose from {list(OIDC_ALGORITHMS)}")
        return value


class Settings(BaseSettings):
    """Everything configurable. Paths derive from ``home`` unless set."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_LITE_", extra="ignore")

    home: Path = Field(default_factory=default_home)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    prefect_port: int = Field(default=4200, ge=1, le=65535)
    # Where the daemon's Prefect server listens: loopback unless set (it always asks for the
    # home's auth string, prefect.auth; off loopback it travels in clear without TLS).
    prefect_host: str = "127.0.0.1"
    # Folders a flow run may read a ``source`` file from, beside the home's inbox/ and the
    # bundled sample data (mlops_lite/flow_params.py): a run started through Prefect's API
    # cannot ingest any other file of this host.
    ingest_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    url: str | None = None
    token: str | None = None
    # TLS (docs/tls.md). The server: HTTPS when ``tls`` is on (and always off loopback);
    # its certificate and key, and the CA (defaults under <home>/tls/, made by `init`);
    # client certificates asked of callers (mutual TLS); names beside localhost,
    # 127.0.0.1 and ::1 that the server certificate carries.
    tls: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    tls_client_auth: Literal["none", "optional", "required"] = "none"
    tls_names: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Clients: the CA bundle servers are verified against (else the home's CA and the
    # system's roots), and the certificate a worker or replica presents for mutual TLS.
    ca_bundle: Path | None = None
    tls_client_cert: Path | None = None
    tls_client_key: Path | None = None
    database_url: str | None = None
    # PostgreSQL over TLS: with a CA bundle, connections use sslmode=verify-full against it
    # (the server's certificate must chain to it and name the URL's host).
    database_ca: Path | None = None
    region: str = "ae"
    # Where the artifact store (models, run artifacts) and the prediction log keep their
    # bytes (None: ``region``); the residency rules of the policy check both.
    artifacts_region: str | None = None
    prediction_log_region: str | None = None
    # Encryption at rest (docs/encryption.md): new homes are encrypted unless this is
    # false (`mlops-lite init --no-encryption`). A home made before encryption existed
    # stays plaintext until `mlops-lite keys encrypt-home`.
    encryption: bool = True
    # The classification a data repository gets where its creator cannot give one (the
    # lakeFS-compatible `POST /repositories`); the audit event says it was defaulted.
    default_classification: str = "personal"
    # The key encryption key: "keyfile" (key_file, 0600; default <home>/keys/master.key),
    # "env" (MLOPS_LITE_MASTER_KEY), or "package.module:factory" for a KMS of your own.
    kms: str = "keyfile"
    key_file: Path | None = None
    max_batch_size: int = Field(default=10_000, ge=1)
    # Dynamic micro-batching across concurrent requests: 0 turns it off; with N > 1,
    # requests are joined up to N rows, waiting at most batch_wait_ms (0: no waiting,
    # batch whatever queued while the model was busy).
    batch_rows: int = Field(default=0, ge=0)
    # The daemon's loop: how often each deployment is checked, whether a firing drift or
    # quality alert retrains on the newest data, and how long unreachable data is kept.
    monitor_interval_s: float = Field(default=300.0, gt=0)
    auto_retrain: bool = True
    retrain_interval_s: float = Field(default=0.0, ge=0)  # a scheduled retrain; 0 is off
    gc_retention_days: float = Field(default=7.0, ge=0)
    # Days the prediction log, feedback and error counts are kept (whole date partitions
    # older than this are removed by Monitoring.apply_retention); None keeps them.
    prediction_log_retention_days: int | None = Field(default=None, ge=0)
    # The audit chain's signed checkpoints (docs/audit.md): one after this many new events, and
    # one every interval (the daemon's schedule) when events came since the last.
    audit_checkpoint_events: int = Field(default=100, ge=1)
    audit_checkpoint_interval_s: float = Field(default=60.0, gt=0)
    # The feature store's daemon jobs: the skew check of each service that served vectors
    # since the last check, incremental materialization of every view (0 is off), and how
    # long served vectors are kept for the skew check.
    feature_skew_interval_s: float = Field(default=600.0, gt=0)
    feature_materialize_interval_s: float = Field(default=900.0, ge=0)
    feature_served_retention_days: float = Field(default=7.0, ge=0)
    # Where triggered retrains run: in the daemon, or as flow runs on the mlops-lite work
    # pool for Prefect workers (`mlops-lite worker`).
    flow_runner: Literal["daemon", "workers"] = "daemon"
    batch_wait_ms: float = Field(default=0.0, ge=0)
    execution_provider: str = "auto"
    intra_op_threads: int = Field(default=1, ge=0)
    data_backend: str = "embedded"
    lakefs_endpoint: str | None = None
    lakefs_access_key_id: str | None = None
    lakefs_secret_access_key: str | None = None
    alert_webhook: str | None = None
    # Browser origins allowed to call the HTTP API (CORS), e.g. ["https://ops.example.com"];
    # empty (the default) sends no CORS header, so browsers keep other origins out.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The HTTP surface's limits (docs/hardening.md): request bodies per class of route; failed
    # authentications per client and per identity before 429; /v1/sql's time and rows;
    # /metrics and /schema without a token (None: only when the server binds a loopback address).
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    max_predict_body_bytes: int = Field(default=64 << 20, ge=1024)
    max_upload_bytes: int = Field(default=1 << 30, ge=1024)
    auth_failures_max: int = Field(default=20, ge=1)
    auth_failures_window_s: float = Field(default=60.0, gt=0)
    # Addresses of our serving replicas (they check each client's token with /v1/whoami) or
    # of a reverse proxy: a failure from one counts against the client its X-Forwarded-For
    # names (none: against the claimed identity only), never against the proxy itself.
    auth_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    sql_timeout_s: float = Field(default=30.0, gt=0)
    sql_max_rows: int = Field(default=10_000, ge=1)
    public_metrics: bool | None = None
    # Hosts a webhook may reach, as "host:port" or "host:*" (e.g. ["hooks.example.com:443"]).
    # Private, loopback and link-local addresses (cloud metadata among them) are refused
    # unless the address itself is listed ("127.0.0.1:*").
    webhook_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Trusted OpenID providers ([[oidc]] tables): their JWTs are accepted as bearer tokens.
    oidc: list[OidcIssuer] = Field(default_factory=list)
    min_roc_auc: float = Field(default=0.6, ge=0.0, le=1.0)
    parity_tolerance: float = Field(default=1e-4, gt=0.0)

    @field_validator("home", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("default_classification")
    @classmethod
    def _classification(cls, value: str) -> str:
        allowed = ("public", "internal", "personal", "sensitive-personal")  # mlops_lite.privacy.profile's
        if value not in allowed:
            raise ValueError(f"default_classification must be one of {list(allowed)}, got {value!r}")
        return value

    @field_validator("execution_provider")
    @classmethod
    def _provider(cls, value: str) -> str:
        allowed = {"auto", "cpu", "cuda"}
        if value not in allowed:
            raise ValueError(f"execution_provider must be one of {sorted(allowed)}, got {value!r}")
        return value

    @field_validator("ingest_dirs", mode="before")
    @classmethod
    def _ingest_dirs(cls, value: Any) -> Any:
        # The environment gives one string: a JSON list or os.pathsep-separated folders.
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else [p for p in text.split(os.pathsep) if p.strip()]
        return value

    @field_validator("ingest_dirs", mode="after")
    @classmethod
    def _ingest_dirs_absolute(cls, value: list[Path]) -> list[Path]:
        return [folder.expanduser().resolve() for folder in value]

    @field_validator("tls_names", mode="before")
    @classmethod
    def _tls_names(cls, value: Any) -> Any:
        # The environment gives one string: a JSON list or comma-separated names.
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else [n.strip() for n in text.split(",") if n.strip()]
        return value

    @field_validator("tls_cert", "tls_key", "tls_ca", "ca_bundle", "tls_client_cert", "tls_client_key",
                     mode="after")
    @classmethod
    def _tls_path(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _cors_origins(cls, value: Any) -> Any:
        value = _env_list(value)
        if isinstance(value, list):
            for origin in value:
                if not isinstance(origin, str) or not (origin == "*" or _ORIGIN.match(origin)):
                    raise ValueError(f"cors_origins takes origins like 'https://ops.example.com' (scheme, host, "
                                     f"optional port; no path) or '*', got {origin!r}")
        return value

    @field_validator("auth_proxies", mode="before")
    @classmethod
    def _auth_proxies(cls, value: Any) -> Any:
        value = _env_list(value)
        if isinstance(value, list):
            for entry in value:
                try:
                    ipaddress.ip_address(entry)
                except (TypeError, ValueError):
                    raise ValueError(f"auth_proxies takes IP addresses like '10.0.0.5', got {entry!r}") from None
        return value

    @field_validator("webhook_allow", mode="before")
    @classmethod
    def _webhook_allow(cls, value: Any) -> Any:
        value = _env_list(value)
        if isinstance(value, list):
            for entry in value:
                if not isinstance(entry, str) or not _ALLOW_ENTRY.match(entry):
                    raise ValueError(f"webhook_allow takes entries like 'hooks.example.com:443', '127.0.0.1:*' or "
                                     f"'[::1]:8080' (a host and a port or '*'), got {entry!r}")
        return value

    @field_validator("oidc")
    @classmethod
    def _oidc(cls, value: list[OidcIssuer]) -> list[OidcIssuer]:
        seen = [entry.issuer for entry in value]
        for issuer in seen:
            if seen.count(issuer) > 1:
                raise ValueError(f"issuer {issuer!r} is configured twice in [[oidc]]; merge the two tables")
        return value

    @field_validator("data_backend")
    @classmethod
    def _data_backend(cls, value: str) -> str:
        if value not in ("embedded", "lakefs"):
            raise ValueError(f"data_backend must be 'embedded' or 'lakefs', got {value!r}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml)

    def __repr_args__(self) -> Any:
        # A repr reaches logs and tracebacks (rich shows locals): never with a secret in it.
        for name, value in super().__repr_args__():
            if name in _SECRET_FIELDS and value is not None:
                yield name, "***"
            elif name == "database_url" and isinstance(value, str):
                yield name, redacted_url(value)
            else:
                yield name, value

    # Paths inside the home -------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.home / CONFIG_FILE_NAME

    @property
    def database_path(self) -> Path:
        return self.home / "metadata.duckdb"

    @property
    def sql_url(self) -> str:
        if self.database_url is None:
            return f"duckdb:///{self.database_path}"
        if self.database_ca is None:
            return self.database_url
        return with_verified_tls(self.database_url, self.database_ca)

    @property
    def initialised(self) -> bool:
        """Whether `mlops-lite init` has run: the DuckDB file, or with a database URL
        (PostgreSQL), the home's admin token file."""
        return self.database_path.exists() if self.database_url is None else self.token_file.exists()

    @property
    def objects_dir(self) -> Path:
        return self.home / "objects"

    @property
    def token_file(self) -> Path:
        return self.home / "admin.token"

    @property
    def audit_key_file(self) -> Path:
        return self.home / "audit.key"

    @property
    def audit_signing_key_file(self) -> Path:
        """The Ed25519 private key that signs audit checkpoints (0600)."""
        return self.home / "audit-signing.key"

    @property
    def audit_dir(self) -> Path:
        return self.home / "audit"

    @property
    def audit_public_key_file(self) -> Path:
        """The checkpoints' public key (PEM): what an auditor verifies with."""
        return self.audit_dir / "public-key.pem"

    @property
    def audit_checkpoints_file(self) -> Path:
        """The signed checkpoints, one JSON line each, appended (outside the database)."""
        return self.audit_dir / "checkpoints.jsonl"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def keyring_file(self) -> Path:
        """The home's data keys, wrapped by the key encryption key (0600). Its presence
        is what makes a home encrypted."""
        return self.keys_dir / "keyring.json"

    @property
    def master_key_file(self) -> Path:
        """The key encryption key file (kms = "keyfile"): ``key_file``, else in the home."""
        return self.key_file if self.key_file is not None else self.keys_dir / "master.key"

    @property
    def encrypting_marker(self) -> Path:
        """Present while `mlops-lite keys encrypt-home` is part-way: the home opens again
        once the command has finished (run it again after a crash)."""
        return self.keys_dir / "encrypting"

    @property
    def predictions_dir(self) -> Path:
        return self.home / "predictions"

    @property
    def anonymization_key_file(self) -> Path:
        return self.home / "anonymization.key"

    @property
    def alert_rules_file(self) -> Path:
        """Alert rules (TOML ``[[rule]]`` tables); the defaults apply when it is absent."""
        return self.home / "alerts.toml"

    @property
    def daemon_file(self) -> Path:
        return self.home / "daemon.json"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def prefect_auth_file(self) -> Path:
        """The Prefect server's auth string (``user:password``, mode 0600): the daemon's
        Prefect asks every client for it."""
        return self.home / "prefect.auth"

    @property
    def inbox(self) -> Path:
        """Where files for flow runs to ingest are dropped (a ``source`` must be here, in
        ``ingest_dirs`` or in the bundled sample data)."""
        return self.home / "inbox"

    @property
    def services_dir(self) -> Path:
        """Tokens of the service identities enrolled on this host (worker, replica), 0600."""
        return self.home / "services"

    @property
    def prefect_url(self) -> str:
        """The daemon's Prefect server as a client on this host reaches it."""
        host = "127.0.0.1" if self.prefect_host in ("0.0.0.0", "::", "[::]", "") else self.prefect_host
        return f"http://{host}:{self.prefect_port}"

    @property
    def tls_dir(self) -> Path:
        return self.home / "tls"

    @property
    def tls_cert_file(self) -> Path:
        """The server certificate (PEM): ``tls_cert``, else <home>/tls/server.crt."""
        return self.tls_cert or self.tls_dir / "server.crt"

    @property
    def tls_key_file(self) -> Path:
        """The server certificate's key (PEM, 0600): ``tls_key``, else <home>/tls/server.key."""
        return self.tls_key or (self.tls_cert.with_suffix(".key") if self.tls_cert else self.tls_dir / "server.key")

    @property
    def tls_ca_file(self) -> Path:
        """The CA certificate (PEM) that signs the server's and clients' certificates."""
        return self.tls_ca or self.tls_dir / "ca.crt"

    @property
    def tls_ca_key_file(self) -> Path:
        """The CA's key (0600), beside its certificate."""
        return self.tls_ca_file.with_suffix(".key")

    @property
    def server_url(self) -> str:
        """The API's URL as a client on this host reaches it: https when ``tls`` is on; a
        wildcard bind is reached on loopback (a name its certificate carries)."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1", "[::]": "::1"}.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"


def with_verified_tls(url: str, ca: Path) -> str:
    """``url`` with ``sslmode=verify-full`` and ``sslrootcert`` set to ``ca``: the server must
    present a certificate chaining to that CA and naming the URL's host. A URL that already
    says a weaker ``sslmode`` is refused rather than silently upgraded or kept."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    mode = query.get("sslmode")
    if mode not in (None, "verify-full"):
        raise ValueError(f"database_url says sslmode={mode} while database_ca asks for verify-full; "
                         "remove sslmode from the URL or set it to verify-full")
    query["sslmode"] = "verify-full"
    query["sslrootcert"] = str(Path(ca).expanduser().resolve())
    return urlunsplit(parts._replace(query=urlencode(query)))


_SECRET_QUERY = re.compile(r"(?i)((?:^|&)(?:password|passwd|pwd|secret|token|sslpassword)=)[^&]*")


def redacted_url(url: str) -> str:
    """``url`` as an answer or a log may show it: the password of its user part and any
    password-like query parameter said as ``***``."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        name, colon, _password = user.partition(":")
        netloc = f"{name}:***@{host}" if colon else netloc
    query = _SECRET_QUERY.sub(r"\1***", parts.query)
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # unsplit would drop the empty host of duckdb:////path
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def load_settings(**overrides: Any) -> Settings:
    """Build settings; keyword arguments win over everything else."""
    clean = {key: value for key, value in overrides.items() if value is not None}
    if "home" in clean and "MLOPS_LITE_CONFIG" not in os.environ:
        # The toml lives in the home that was asked for, not the default one.
        home = Path(clean["home"]).expanduser()
        toml = home / CONFIG_FILE_NAME
        previous = os.environ.get("MLOPS_LITE_CONFIG")
        os.environ["MLOPS_LITE_CONFIG"] = str(toml)
        try:
            return Settings(**clean)
        finally:
            if previous is None:
                os.environ.pop("MLOPS_LITE_CONFIG", None)
            else:
                os.environ["MLOPS_LITE_CONFIG"] = previous
    return Settings(**clean)


def prefect_environment(settings: Settings) -> dict[str, str]:
    """Environment Prefect needs here; applied before ``prefect`` is imported.

    No network but the package index: analytics off. The first ephemeral API start
    runs migrations and takes 15-20 s on two cores, past Prefect's 20 s default.
    """
    environment = {
        "PREFECT_HOME": str(settings.prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_UI_ENABLED": "true",
    }
    auth = prefect_auth(settings)
    if auth is not None:
        # The daemon's Prefect server asks for it (mlops-lite up); every client here sends it.
        environment["PREFECT_API_AUTH_STRING"] = auth
    return environment


def prefect_auth(settings: Settings) -> str | None:
    """The home's Prefect auth string, or None where the home has none (yet)."""
    try:
        return settings.prefect_auth_file.read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None


def apply_prefect_environment(settings: Settings) -> None:
    """Set Prefect's variables unless the user set them already."""
    for key, value in prefect_environment(settings).items():
        os.environ.setdefault(key, value)


DEFAULT_TOML = """\
# mlops-lite configuration. Precedence: keyword arguments > MLOPS_LITE_* environment
# variables > this file > built-in defaults.

# Where the server (`mlops-lite up`) listens. Loopback by default.
host = "127.0.0.1"
port = 8000
prefect_port = 4200
# The daemon's Prefect server: loopback unless set; it asks every client for the auth
# string in prefect.auth (a remote worker sets PREFECT_API_AUTH_STRING to it).
# prefect_host = "127.0.0.1"

# Folders flow runs may ingest a `source` file from, beside the home's inbox/.
# ingest_dirs = ["/srv/landing"]

# Data residency: the region this installation stores data in (docs/compliance.md), and
# where the artifact store and the prediction log keep theirs (default: region).
region = "ae"
# artifacts_region = "ae"
# prediction_log_region = "ae"
# prediction_log_retention_days = 90   # predictions, feedback and error counts older than this are removed

# Encryption at rest (docs/encryption.md): data objects, models, artifacts, the prediction
# log and the metadata database, under data keys wrapped by a key encryption key.
# encryption = false                   # only before the home is made: `init --no-encryption`
# kms = "keyfile"                      # "keyfile", "env" (MLOPS_LITE_MASTER_KEY) or "pkg.module:factory"
# key_file = "/etc/mlops-lite/master.key"   # keep the key off the home's disk (default: keys/master.key)

# Inference: "auto" picks CUDA when onnxruntime-gpu and a GPU are present, else CPU.
execution_provider = "auto"
intra_op_threads = 1
max_batch_size = 10000

# Versioned data: "embedded" (content-addressed store in the home) or "lakefs"
# (a lakeFS server, through lakefs-sdk; set lakefs_endpoint and access keys).
data_backend = "embedded"

# Release gate: a model version must reach this ROC AUC to be deployed.
min_roc_auc = 0.6

# TLS (docs/tls.md). `mlops-lite init` makes a local CA and a server certificate in
# <home>/tls/. With tls = true, `up` and `serve` answer HTTPS; off loopback they always do
# (plain HTTP there only with --insecure-http). Renew with `mlops-lite cert renew`; a
# running server picks the new certificate up without a restart.
# tls = true
# tls_names = ["mlops.example.com", "10.0.0.5"]  # beside localhost, 127.0.0.1 and ::1
# tls_cert = "/etc/mlops-lite/server.crt"        # your own certificate and key instead
# tls_key = "/etc/mlops-lite/server.key"
# tls_ca = "/etc/mlops-lite/ca.crt"              # the CA that signs certificates here
# tls_client_auth = "required"                   # mutual TLS: "none", "optional", "required"
# Clients (CLI, workers, replicas): the CA bundle to verify servers against
# (MLOPS_LITE_CA_BUNDLE; default: the home's tls/ca.crt beside the system's roots), and a
# client certificate from `mlops-lite cert issue --for worker`.
# ca_bundle = "/etc/mlops-lite/ca.crt"
# tls_client_cert = "/etc/mlops-lite/worker.crt"
# tls_client_key = "/etc/mlops-lite/worker.key"

# Browser origins allowed to call the HTTP API (CORS). Empty: no CORS headers at all.
# cors_origins = ["https://ops.example.com"]

# Hosts and ports webhooks (alert_webhook, a policy's [notify] webhook) may reach; a private,
# loopback or link-local address only when listed itself. Empty: no webhook at all.
# webhook_allow = ["hooks.example.com:443", "127.0.0.1:9000"]

# The HTTP surface's limits (docs/hardening.md): body sizes, failed logins before 429,
# /v1/sql's rows and seconds; /metrics and /schema without a token (default: loopback bind).
# max_body_bytes = 1048576
# auth_failures_max = 20
# sql_timeout_s = 30
# public_metrics = false

# Single sign-on: the tokens of an OpenID provider you trust, its groups mapped to roles
# and grants (docs/oidc.md has every field). Tables come last in a TOML file.
# [[oidc]]
# issuer = "https://keycloak.example.com/realms/acme"
# audience = "mlops-lite-cli"
# client_id = "mlops-lite-cli"
# [oidc.roles]
# platform-admins = "admin"
# team-a = "viewer"
# [[oidc.grants]]
# group = "team-a"
# grant = "operator:model:teama-*"
"""
