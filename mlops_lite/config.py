"""Settings: keyword arguments > ``MLOPS_LITE_*`` environment > ``mlops-lite.toml`` > defaults.

The toml file is looked up in the home (``$MLOPS_LITE_HOME/mlops-lite.toml``) and,
when ``MLOPS_LITE_CONFIG`` names one, there instead.
"""

from __future__ import annotations

import json
import os
import re
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
    url: str | None = None
    token: str | None = None
    database_url: str | None = None
    # PostgreSQL over TLS: with a CA bundle, connections use sslmode=verify-full against it
    # (the server's certificate must chain to it and name the URL's host).
    database_ca: Path | None = None
    region: str = "ae"
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
    # Trusted OpenID providers ([[oidc]] tables): their JWTs are accepted as bearer tokens.
    oidc: list[OidcIssuer] = Field(default_factory=list)
    min_roc_auc: float = Field(default=0.6, ge=0.0, le=1.0)
    parity_tolerance: float = Field(default=1e-4, gt=0.0)

    @field_validator("home", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("execution_provider")
    @classmethod
    def _provider(cls, value: str) -> str:
        allowed = {"auto", "cpu", "cuda"}
        if value not in allowed:
            raise ValueError(f"execution_provider must be one of {sorted(allowed)}, got {value!r}")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _cors_origins(cls, value: Any) -> Any:
        # The environment gives one string: a JSON list or comma-separated origins.
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else [o.strip() for o in text.split(",") if o.strip()]
        if isinstance(value, list):
            for origin in value:
                if not isinstance(origin, str) or not (origin == "*" or _ORIGIN.match(origin)):
                    raise ValueError(f"cors_origins takes origins like 'https://ops.example.com' (scheme, host, "
                                     f"optional port; no path) or '*', got {origin!r}")
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
    def server_url(self) -> str:
        return f"http://{self.host}:{self.port}"


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
    return {
        "PREFECT_HOME": str(settings.prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_UI_ENABLED": "true",
    }


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

# Data residency: the region this installation stores data in.
region = "ae"

# Inference: "auto" picks CUDA when onnxruntime-gpu and a GPU are present, else CPU.
execution_provider = "auto"
intra_op_threads = 1
max_batch_size = 10000

# Versioned data: "embedded" (content-addressed store in the home) or "lakefs"
# (a lakeFS server, through lakefs-sdk; set lakefs_endpoint and access keys).
data_backend = "embedded"

# Release gate: a model version must reach this ROC AUC to be deployed.
min_roc_auc = 0.6

# Browser origins allowed to call the HTTP API (CORS). Empty: no CORS headers at all.
# cors_origins = ["https://ops.example.com"]
"""
