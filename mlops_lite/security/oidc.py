"""Federated identities: JWT bearer tokens from the OpenID providers ``[[oidc]]`` names.

A token is checked against the issuer its (unverified) ``iss`` names, and only if that
issuer is configured: the signature with the provider's key of the token's ``kid``
(from the JWKS its discovery document points to), the algorithm (one the issuer allows,
and one of that key's type: never ``none``, never HS* with a public key), ``iss``,
``aud``, ``exp`` (required) and ``nbf``/``iat`` within the issuer's clock skew. Claims
become an ``Identity(kind="oidc")``: ``sub`` and ``iss`` its principal, the username
claim its name, the groups claim its role and grants.

Keys are cached for ``jwks_ttl_s``; a ``kid`` not among them refetches them, at most
once per ``jwks_min_refresh_s`` per issuer, so made-up key ids cannot hammer the
provider. A verified token is remembered (by its sha256) until it expires, so a token
seen before costs a hash and a dict lookup."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

from mlops_lite.config import OidcIssuer
from mlops_lite.errors import BackendUnavailable, InvalidInput, PermissionDenied, Unauthenticated
from mlops_lite.records import Grant, Identity
from mlops_lite.security.roles import parse_grant, role_rank

_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
# The key type (and EC curve) each signature algorithm needs.
_KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_CURVE = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_FETCH_TIMEOUT_S = 5.0
_MAX_CACHED_TOKENS = 10_000


def looks_like_jwt(secret: str) -> bool:
    """Three base64url parts joined by dots (the last empty for an unsigned token)."""
    return bool(_JWT_SHAPE.match(secret))


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


@dataclass(frozen=True)
class _RoleMap:
    """An issuer's groups -> role and grants, parsed once."""

    roles: dict[str, str]
    default_role: str | None
    grants: tuple[tuple[str, Grant], ...]

    @classmethod
    def of(cls, index: int, config: OidcIssuer) -> _RoleMap:
        grants = []
        for position, entry in enumerate(config.grants):
            try:
                grants.append((entry.group, parse_grant(entry.grant)))
            except InvalidInput as exc:
                raise InvalidInput(f"oidc[{index}].grants[{position}].grant: {exc.message}",
                                   field=f"oidc[{index}].grants[{position}].grant",
                                   expected="ROLE:model:GLOB | ROLE:repo:GLOB") from None
        return cls(roles=dict(config.roles), default_role=config.default_role, grants=tuple(grants))


class _ProviderKeys:
    """One issuer's signing keys, fetched through its discovery document on demand."""

    def __init__(self, config: OidcIssuer) -> None:
        self.config = config
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()
        self._jwks: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None  # monotonic time of the last good fetch
        self._attempted_at: float | None = None  # ... of the last fetch, good or not
        self._error: str | None = None
        self._built: dict[tuple[str, str], jwt.PyJWK] = {}

    def key(self, kid: str | None, alg: str) -> jwt.PyJWK:
        """The key ``kid`` names, for ``alg``; refetches the JWKS when it is stale or lacks
        ``kid``, unless the last fetch was under ``jwks_min_refresh_s`` ago."""
        with self._lock:
            now = time.monotonic()
            stale = self._fetched_at is None or now - self._fetched_at > self.config.jwks_ttl_s
            missing = kid not in self._jwks if kid is not None else len(self._jwks) != 1
            allowed = self._attempted_at is None or now - self._attempted_at >= self.config.jwks_min_refresh_s
            if (stale or missing) and allowed:
                self._refresh(now)
            if self._fetched_at is None:
                raise BackendUnavailable(f"the signing keys of OIDC issuer {self.config.issuer} cannot be "
                                         f"fetched: {self._error}")
            jwk = self._select(kid)
            built = self._built.get((jwk["kid"], alg))
            if built is None:
                built = self._built[(jwk["kid"], alg)] = self._build(jwk, alg)
            return built

    def _select(self, kid: str | None) -> dict[str, Any]:
        if kid is None:
            # A provider with a single key may leave kid out of its tokens.
            if len(self._jwks) == 1:
                return next(iter(self._jwks.values()))
            raise Unauthenticated("OIDC token refused: unknown key: the token names no key id (kid) and "
                                  f"the issuer publishes {len(self._jwks)} keys")
        jwk = self._jwks.get(kid)
        if jwk is None:
            raise Unauthenticated(f"OIDC token refused: unknown key id (kid) {_short(kid)}: not in the "
                                  f"issuer's published keys (JWKS)")
        return jwk

    @staticmethod
    def _build(jwk: dict[str, Any], alg: str) -> jwt.PyJWK:
        wanted = _KEY_TYPE.get(alg[:2])
        if wanted is None or jwk.get("kty") != wanted:
            raise Unauthenticated(f"OIDC token refused: algorithm {alg} does not match the key's type "
                                  f"{jwk.get('kty')!r}")
        if alg in _CURVE and jwk.get("crv") != _CURVE[alg]:
            raise Unauthenticated(f"OIDC token refused: algorithm {alg} does not match the key's curve "
                                  f"{jwk.get('crv')!r}")
        if jwk.get("alg") not in (None, alg):
            raise Unauthenticated(f"OIDC token refused: the key is published for {jwk['alg']}, the token "
                                  f"says {alg}")
        try:
            return jwt.PyJWK(jwk, algorithm=alg)
        except jwt.PyJWKError as exc:
            raise Unauthenticated(f"OIDC token refused: the issuer's key cannot be used: {exc}") from None

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def _refresh(self, now: float) -> None:
        self._attempted_at = now
        try:
            jwks = self._fetch()
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            self._error = str(exc) or type(exc).__name__
            return
        self._jwks = jwks
        self._built = {key: built for key, built in self._built.items() if key[0] in jwks}
        self._fetched_at = now
        self._error = None

    def _fetch(self) -> dict[str, dict[str, Any]]:
        issuer = self.config.issuer
        if self._http is None:
            # The system's trust store, or the private CA the issuer's certificate chains to.
            verify: ssl.SSLContext | bool = (ssl.create_default_context(cafile=str(self.config.ca_bundle))
                                             if self.config.ca_bundle is not None else True)
            self._http = httpx.Client(timeout=_FETCH_TIMEOUT_S, follow_redirects=False, verify=verify)
        client = self._http
        discovery = client.get(issuer.rstrip("/") + "/.well-known/openid-configuration")
        discovery.raise_for_status()
        document = discovery.json()
        if document.get("issuer") != issuer:
            raise ValueError(f"the discovery document names issuer {_short(document.get('issuer'))}, "
                             f"not {issuer!r}")
        jwks_uri = document["jwks_uri"]
        if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme != urlsplit(issuer).scheme:
            raise ValueError(f"jwks_uri {_short(jwks_uri)} must use the issuer's scheme")
        response = client.get(jwks_uri)
        response.raise_for_status()
        keys = response.json()["keys"]
        found: dict[str, dict[str, Any]] = {}
        for index, jwk in enumerate(keys):
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig" or jwk.get("kty") not in _KEY_TYPE.values():
                continue  # encryption keys and symmetric keys never verify a token here
            found[str(jwk.get("kid", f"#{index}"))] = {**jwk, "kid": str(jwk.get("kid", f"#{index}"))}
        return found


class OidcVerifier:
    """Identities from JWTs of the configured issuers (``platform.identities``)."""

    def __init__(self, issuers: Sequence[OidcIssuer]) -> None:
        self._maps = {config.issuer: _RoleMap.of(i, config) for i, config in enumerate(issuers)}
        self._providers = {config.issuer: _ProviderKeys(config) for config in issuers}
        # sha256 of a token -> (its exp, the identity or the refusal it earned)
        self._verified: dict[str, tuple[float, Identity | PermissionDenied]] = {}

    @property
    def enabled(self) -> bool:
        return bool(self._providers)

    def accepts(self, secret: str) -> bool:
        """Whether ``secret`` is this verifier's to judge: issuers are configured and it
        has a JWT's shape (local ``mll_`` tokens do not)."""
        return bool(self._providers) and looks_like_jwt(secret)

    def cached(self, secret: str) -> Identity | None:
        """The identity of a token verified before and not yet expired, or None."""
        hit = self._verified.get(hashlib.sha256(secret.encode()).hexdigest())
        if hit is None or hit[0] <= time.time():
            return None
        if isinstance(hit[1], PermissionDenied):
            raise hit[1]
        return hit[1]

    def authenticate(self, secret: str) -> Identity:
        """The identity a JWT proves. Raises Unauthenticated naming the check that failed,
        PermissionDenied when no group of a valid token maps to a role, BackendUnavailable
        when the issuer's keys cannot be fetched."""
        digest = hashlib.sha256(secret.encode()).hexdigest()
        hit = self._verified.get(digest)
        if hit is not None and hit[0] > time.time():
            if isinstance(hit[1], PermissionDenied):
                raise hit[1]
            return hit[1]
        claims, config = self._verify(secret)
        try:
            outcome: Identity | PermissionDenied = self._identity(claims, config)
        except PermissionDenied as exc:
            outcome = exc
        self._remember(digest, float(claims["exp"]), outcome)
        if isinstance(outcome, PermissionDenied):
            raise outcome
        return outcome

    def close(self) -> None:
        for provider in self._providers.values():
            provider.close()

    # -- checks -------------------------------------------------------------
    def _verify(self, token: str) -> tuple[dict[str, Any], OidcIssuer]:
        header, unverified = _unverified(token)
        issuer = unverified.get("iss")
        provider = self._providers.get(issuer) if isinstance(issuer, str) else None
        if provider is None:
            raise Unauthenticated(f"OIDC token refused: wrong issuer: {_short(issuer)} is not a configured issuer")
        config = provider.config
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in config.algorithms:
            raise Unauthenticated(f"OIDC token refused: algorithm {_short(alg)} is not allowed for {config.issuer} "
                                  f"(allowed: {', '.join(config.algorithms)})")
        kid = header.get("kid")
        key = provider.key(kid if isinstance(kid, str) else None, alg)
        try:
            claims = jwt.decode(
                token, key=key.key, algorithms=[alg], audience=config.audience, issuer=config.issuer,
                leeway=config.clock_skew_s,
                options={"require": ["exp", "iss", "aud", "sub"], "verify_signature": True},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("OIDC token refused: expired (exp is past, beyond the allowed clock skew)") from None
        except jwt.ImmatureSignatureError as exc:
            which = "iat" if "iat" in str(exc) else "nbf"
            raise Unauthenticated(f"OIDC token refused: not yet valid ({which} is in the future, beyond the "
                                  f"allowed clock skew of {config.clock_skew_s:g} s)") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(f"OIDC token refused: wrong audience: aud does not contain "
                                  f"{config.audience!r}") from None
        except jwt.InvalidSignatureError:
            which = f"key {_short(kid)}" if isinstance(kid, str) else "only key (the token names no kid)"
            raise Unauthenticated(f"OIDC token refused: bad signature: it does not verify with the issuer's "
                                  f"{which}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"OIDC token refused: the {exc.claim} claim is missing") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"OIDC token refused: {exc}") from None
        return claims, config

    def _identity(self, claims: dict[str, Any], config: OidcIssuer) -> Identity:
        mapping = self._maps[config.issuer]
        subject = str(claims["sub"])
        username = claims.get(config.username_claim)
        name = username if isinstance(username, str) and username else subject
        groups = _groups(claims, config.groups_claim)
        matched = [mapping.roles[group] for group in groups if group in mapping.roles]
        role = max(matched, key=role_rank) if matched else mapping.default_role
        if role is None:
            raise PermissionDenied(
                f"{name} ({config.issuer}) is authenticated, but no group maps to a role: their groups "
                f"{sorted(groups)[:20]} are not in [oidc.roles] and no default_role is set",
                details={"issuer": config.issuer, "subject": subject},
            )
        grants = tuple(dict.fromkeys(grant for group, grant in mapping.grants if group in groups))
        return Identity(name=name, role=role, kind="oidc", issuer=config.issuer, subject=subject, grants=grants)

    def _remember(self, digest: str, expires: float, outcome: Identity | PermissionDenied) -> None:
        if len(self._verified) >= _MAX_CACHED_TOKENS:
            now = time.time()
            self._verified = {k: v for k, v in list(self._verified.items()) if v[0] > now}
            if len(self._verified) >= _MAX_CACHED_TOKENS:
                self._verified = dict(list(self._verified.items())[_MAX_CACHED_TOKENS // 2:])
        self._verified[digest] = (expires, outcome)


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims, not yet trusted: enough to pick the issuer and key. Parsed
    here once (PyJWT's own parse runs once more, in the verifying decode)."""
    try:
        header_part, claims_part, _ = token.split(".")
        header = json.loads(base64.urlsafe_b64decode(header_part + "=" * (-len(header_part) % 4)))
        claims = json.loads(base64.urlsafe_b64decode(claims_part + "=" * (-len(claims_part) % 4)))
    except (ValueError, binascii.Error) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise Unauthenticated(f"OIDC token refused: it is not a well-formed JWT ({type(exc).__name__})") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise Unauthenticated("OIDC token refused: it is not a well-formed JWT (header and claims must be objects)")
    return header, claims


def _groups(claims: dict[str, Any], claim: str) -> set[str]:
    """The groups a claim lists; a dotted name reaches into nested objects (Keycloak's
    ``realm_access.roles``)."""
    value: Any = claims
    for part in claim.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {item for item in value if isinstance(item, str)}
    return set()

