"""The OIDC verifier against a real HTTP key server on 127.0.0.1 (discovery document and
JWKS we control, so keys can rotate and fetches can be counted): every check, the group
mapping, the JWKS cache, its refresh on a new key id and that refresh's rate limit."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from mlops_lite.config import OidcIssuer, load_settings
from mlops_lite.errors import BackendUnavailable, InvalidInput, PermissionDenied, Unauthenticated
from mlops_lite.records import Grant
from mlops_lite.security.oidc import OidcVerifier, looks_like_jwt

AUDIENCE = "mlops-lite"


# -- keys and tokens ----------------------------------------------------------
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else jwt.algorithms.ECAlgorithm
    return {**json.loads(algorithm.to_jwk(key.public_key())), "kid": kid, "use": "sig"}


def mint(key: Any, *, kid: str | None, alg: str = "RS256", **claims: Any) -> str:
    """A signed token; claims default to a valid one of ``claims['iss']`` for AUDIENCE."""
    now = int(time.time())
    body = {"aud": AUDIENCE, "sub": "alice-sub", "iat": now, "exp": now + 300,
            "preferred_username": "alice", "groups": ["team-a"], **claims}
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid} if kid else None)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A token PyJWT would refuse to make: unsigned (``secret`` None) or HMAC-signed with
    ``secret`` (the provider's public key PEM, the classic key-confusion attack)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if secret is None:
        return signing_input + "."
    return signing_input + "." + _b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


# -- a real key server ----------------------------------------------------------
class KeyServer:
    """An OpenID provider's discovery document and JWKS, served on 127.0.0.1."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.keys: list[dict[str, Any]] = []
        self.hits: dict[str, int] = {"discovery": 0, "jwks": 0}
        self.discovery_issuer: str | None = None  # None: the real issuer
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    served.hits["discovery"] += 1
                    body = {"issuer": served.discovery_issuer or served.issuer, "jwks_uri": served.issuer + "/jwks"}
                elif self.path == "/jwks":
                    served.hits["jwks"] += 1
                    body = {"keys": served.keys}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.issuer = f"{'https' if tls else 'http'}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {"rsa": rsa_key(), "rsa2": rsa_key(), "stranger": rsa_key(), "ec": ec.generate_private_key(ec.SECP256R1())}


@pytest.fixture
def idp(keys: dict[str, Any]) -> Iterator[KeyServer]:
    server = KeyServer()
    server.keys = [public_jwk(keys["rsa"], "k1"), public_jwk(keys["ec"], "e1")]
    yield server
    server.close()


def issuer_config(idp: KeyServer, **overrides: Any) -> OidcIssuer:
    settings: dict[str, Any] = {
        "issuer": idp.issuer, "audience": AUDIENCE,
        "roles": {"team-a": "viewer", "ops": "operator", "admins": "admin"},
        "grants": [{"group": "team-a", "grant": "operator:model:teamA-*"},
                   {"group": "data-a", "grant": "approver:repo:team-a-*"}],
        "jwks_min_refresh_s": 0.3,
    }
    return OidcIssuer.model_validate({**settings, **overrides})


@pytest.fixture
def verifier(idp: KeyServer) -> Iterator[OidcVerifier]:
    v = OidcVerifier([issuer_config(idp)])
    yield v
    v.close()


# -- the good path --------------------------------------------------------------
def test_groups_map_to_the_highest_role_and_to_grants(idp: KeyServer, keys: dict[str, Any],
                                                      verifier: OidcVerifier) -> None:
    token = mint(keys["rsa"], kid="k1", iss=idp.issuer, groups=["team-a", "ops", "data-a", "unmapped"])
    assert looks_like_jwt(token) and verifier.accepts(token)
    identity = verifier.authenticate(token)
    assert (identity.kind, identity.name, identity.role) == ("oidc", "alice", "operator")
    assert (identity.issuer, identity.subject) == (idp.issuer, "alice-sub")
    assert identity.principal == f"oidc:{idp.issuer}#alice-sub"
    assert set(identity.grants) == {Grant(role="operator", models="teamA-*"),
                                    Grant(role="approver", repositories="team-a-*")}

    only_a = verifier.authenticate(mint(keys["rsa"], kid="k1", iss=idp.issuer, groups=["team-a"],
                                        preferred_username=None, sub="bob-sub"))
    assert (only_a.role, only_a.name, only_a.grants) == ("viewer", "bob-sub", (Grant(role="operator", models="teamA-*"),))


def test_an_ec_key_verifies_es256(idp: KeyServer, keys: dict[str, Any], verifier: OidcVerifier) -> None:
    assert verifier.authenticate(mint(keys["ec"], kid="e1", alg="ES256", iss=idp.issuer)).role == "viewer"


def test_groups_claim_may_be_nested(idp: KeyServer, keys: dict[str, Any]) -> None:
    v = OidcVerifier([issuer_config(idp, groups_claim="realm_access.roles")])
    try:
        token = mint(keys["rsa"], kid="k1", iss=idp.issuer, groups=None, realm_access={"roles": ["admins"]})
        assert v.authenticate(token).role == "admin"
    finally:
        v.close()


def test_no_group_mapping_to_a_role_is_refused_unless_a_default_role(idp: KeyServer, keys: dict[str, Any],
                                                                    verifier: OidcVerifier) -> None:
    token = mint(keys["rsa"], kid="k1", iss=idp.issuer, groups=["marketing"])
    with pytest.raises(PermissionDenied, match="no group maps to a role"):
        verifier.authenticate(token)
    with pytest.raises(PermissionDenied, match="no group maps to a role"):
        verifier.cached(token)  # the refusal is remembered like an identity
    lenient = OidcVerifier([issuer_config(idp, default_role="predictor")])
    try:
        assert lenient.authenticate(token).role == "predictor"
    finally:
        lenient.close()


def test_clock_skew_is_allowed_up_to_its_bound(idp: KeyServer, keys: dict[str, Any], verifier: OidcVerifier) -> None:
    now = int(time.time())
    assert verifier.authenticate(mint(keys["rsa"], kid="k1", iss=idp.issuer, exp=now - 30, iat=now - 600))
    assert verifier.authenticate(mint(keys["rsa"], kid="k1", iss=idp.issuer, nbf=now + 30, sub="s2"))
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.authenticate(mint(keys["rsa"], kid="k1", iss=idp.issuer, exp=now - 90, iat=now - 600))


# -- the bad-token table, at the verifier ----------------------------------------
def _bad_tokens(idp: KeyServer, keys: dict[str, Any]) -> dict[str, tuple[str, str]]:
    now = int(time.time())
    iss = idp.issuer
    valid = {"iss": iss, "aud": AUDIENCE, "sub": "alice-sub", "iat": now, "exp": now + 300, "groups": ["team-a"]}
    return {
        "expired": (mint(keys["rsa"], kid="k1", iss=iss, iat=now - 900, exp=now - 600), "expired"),
        "not yet valid (nbf)": (mint(keys["rsa"], kid="k1", iss=iss, nbf=now + 600), "not yet valid (nbf"),
        "not yet valid (iat)": (mint(keys["rsa"], kid="k1", iss=iss, iat=now + 600), "not yet valid (iat"),
        "wrong issuer": (mint(keys["rsa"], kid="k1", iss="https://evil.example.com"), "wrong issuer"),
        "wrong audience": (mint(keys["rsa"], kid="k1", iss=iss, aud="someone-else"), "wrong audience"),
        "bad signature": (mint(keys["stranger"], kid="k1", iss=iss), "bad signature"),
        "unknown kid": (mint(keys["stranger"], kid="not-published", iss=iss), "unknown key id"),
        "alg none": (forge({"alg": "none", "typ": "JWT", "kid": "k1"}, valid, None), "algorithm 'none' is not allowed"),
        "HS256 with the public key": (forge({"alg": "HS256", "typ": "JWT", "kid": "k1"}, valid,
                                            public_pem(keys["rsa"])), "algorithm 'HS256' is not allowed"),
        "ES256 over an RSA key": (forge({"alg": "ES256", "kid": "k1"}, valid, b"x"), "does not match the key's type"),
        "no exp": (mint(keys["rsa"], kid="k1", iss=iss, exp=None), "exp claim is missing"),
        "no sub": (mint(keys["rsa"], kid="k1", iss=iss, sub=None), "sub claim is missing"),
        "not a JWT": ("eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", "not a well-formed JWT"),
    }


@pytest.mark.parametrize("case", ["expired", "not yet valid (nbf)", "not yet valid (iat)", "wrong issuer",
                                  "wrong audience", "bad signature", "unknown kid", "alg none",
                                  "HS256 with the public key", "ES256 over an RSA key", "no exp", "no sub",
                                  "not a JWT"])
def test_bad_tokens_are_refused_saying_which_check_failed(case: str, idp: KeyServer, keys: dict[str, Any],
                                                         verifier: OidcVerifier) -> None:
    token, reason = _bad_tokens(idp, keys)[case]
    with pytest.raises(Unauthenticated) as refused:
        verifier.authenticate(token)
    assert reason in str(refused.value)
    assert token not in str(refused.value) and token.split(".")[1] not in str(refused.value)
    assert verifier.cached(token) is None


# -- keys: cache, rotation, rate limit --------------------------------------------
def test_keys_are_fetched_once_and_cached(idp: KeyServer, keys: dict[str, Any], verifier: OidcVerifier) -> None:
    for n in range(5):
        verifier.authenticate(mint(keys["rsa"], kid="k1", iss=idp.issuer, sub=f"user-{n}"))
    assert idp.hits == {"discovery": 1, "jwks": 1}


def test_a_rotated_key_is_fetched_when_a_token_names_it(idp: KeyServer, keys: dict[str, Any],
                                                         verifier: OidcVerifier) -> None:
    assert verifier.authenticate(mint(keys["rsa"], kid="k1", iss=idp.issuer)).subject == "alice-sub"
    idp.keys = [public_jwk(keys["rsa2"], "k2")]  # the provider rotates: k1 retired, k2 signs
    time.sleep(0.35)  # past jwks_min_refresh_s since the first fetch
    assert verifier.authenticate(mint(keys["rsa2"], kid="k2", iss=idp.issuer, sub="bob-sub")).subject == "bob-sub"
    assert idp.hits["jwks"] == 2
    # Tokens signed by the retired key, not seen before, are refused now.
    with pytest.raises(Unauthenticated, match="unknown key id"):
        verifier.authenticate(mint(keys["rsa"], kid="k1", iss=idp.issuer, sub="carol-sub"))


def test_unknown_key_ids_refetch_at_most_once_per_interval(idp: KeyServer, keys: dict[str, Any],
                                                            verifier: OidcVerifier) -> None:
    verifier.authenticate(mint(keys["rsa"], kid="k1", iss=idp.issuer))
    time.sleep(0.35)
    for n in range(200):  # a flood of made-up key ids
        with pytest.raises(Unauthenticated, match="unknown key id"):
            verifier.authenticate(mint(keys["stranger"], kid=f"made-up-{n}", iss=idp.issuer))
    assert idp.hits["jwks"] == 2  # the first fetch, and one refresh for the whole flood
    time.sleep(0.35)
    with pytest.raises(Unauthenticated, match="unknown key id"):
        verifier.authenticate(mint(keys["stranger"], kid="made-up-again", iss=idp.issuer))
    assert idp.hits["jwks"] == 3


def test_a_discovery_document_naming_another_issuer_is_not_trusted(idp: KeyServer, keys: dict[str, Any],
                                                                   verifier: OidcVerifier) -> None:
    idp.discovery_issuer = "https://elsewhere.example.com"
    with pytest.raises(BackendUnavailable, match=re.escape("names issuer 'https://elsewhere.example.com'")):
        verifier.authenticate(mint(keys["rsa"], kid="k1", iss=idp.issuer))
    with pytest.raises(BackendUnavailable):  # within the interval: no new fetch
        verifier.authenticate(mint(keys["rsa"], kid="k1", iss=idp.issuer, sub="again"))
    assert idp.hits["discovery"] == 1


def test_an_unreachable_provider_is_a_backend_error(keys: dict[str, Any]) -> None:
    gone = KeyServer()
    issuer = gone.issuer
    gone.close()
    v = OidcVerifier([OidcIssuer(issuer=issuer, audience=AUDIENCE, roles={"team-a": "viewer"})])
    try:
        with pytest.raises(BackendUnavailable, match="cannot be fetched"):
            v.authenticate(mint(keys["rsa"], kid="k1", iss=issuer))
    finally:
        v.close()


def test_an_issuer_behind_a_private_ca_is_trusted_through_its_ca_bundle(tmp_path: Path,
                                                                        keys: dict[str, Any]) -> None:
    from mlops_lite.security.tls import create_ca, issue_server_certificate, server_context

    ca = create_ca(tmp_path / "ca.pem", tmp_path / "ca.key")
    issue_server_certificate(ca, tmp_path / "idp.pem", tmp_path / "idp.key")
    idp = KeyServer(tls=server_context(tmp_path / "idp.pem", tmp_path / "idp.key"))
    idp.keys = [public_jwk(keys["rsa"], "k1")]
    token = mint(keys["rsa"], kid="k1", iss=idp.issuer)
    trusting = OidcVerifier([issuer_config(idp, ca_bundle=tmp_path / "ca.pem")])
    untrusting = OidcVerifier([issuer_config(idp)])
    try:
        assert idp.issuer.startswith("https://")
        assert trusting.authenticate(token).subject == "alice-sub"
        with pytest.raises(BackendUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            untrusting.authenticate(token)
    finally:
        trusting.close()
        untrusting.close()
        idp.close()


# -- the verified-token cache ------------------------------------------------------
def test_a_verified_token_is_remembered_until_it_expires(idp: KeyServer, keys: dict[str, Any],
                                                          verifier: OidcVerifier) -> None:
    token = mint(keys["rsa"], kid="k1", iss=idp.issuer, exp=int(time.time()) + 2)
    assert verifier.cached(token) is None
    identity = verifier.authenticate(token)
    assert verifier.cached(token) == identity
    time.sleep(max(0.0, jwt.decode(token, options={"verify_signature": False})["exp"] - time.time()) + 0.05)
    assert verifier.cached(token) is None


def test_a_cached_check_costs_microseconds(idp: KeyServer, keys: dict[str, Any], verifier: OidcVerifier) -> None:
    """What a request with a token seen before pays: the shape check and the cache lookup
    (sha256 of the token), as server/auth.py's authenticate_bearer runs them."""
    token = mint(keys["rsa"], kid="k1", iss=idp.issuer, groups=["team-a", "ops"])
    started = time.perf_counter()
    verifier.authenticate(token)
    first_ms = (time.perf_counter() - started) * 1000
    rounds = 20_000
    started = time.perf_counter()
    for _ in range(rounds):
        assert verifier.accepts(token) and verifier.cached(token) is not None
    per_call_us = (time.perf_counter() - started) / rounds * 1e6
    fresh = [mint(keys["rsa"], kid="k1", iss=idp.issuer, sub=f"user-{n}") for n in range(300)]
    started = time.perf_counter()
    for other in fresh:
        verifier.authenticate(other)
    full_us = (time.perf_counter() - started) / len(fresh) * 1e6
    print(f"\nOIDC: first verification {first_ms:.2f} ms (JWKS fetch included); a new token with the "
          f"JWKS cached {full_us:.0f} us (RS256); a token seen before {per_call_us:.2f} us per request "
          f"({len(token)}-byte token)")
    assert per_call_us <= 50


# -- configuration -------------------------------------------------------------------
@pytest.mark.parametrize(("field", "value", "message"), [
    ("algorithms", ["HS256"], "algorithm 'HS256' is not accepted"),
    ("algorithms", ["RS256", "none"], "algorithm 'none' is not accepted"),
    ("algorithms", [], "at least 1 item"),
    ("clock_skew_s", 301, "less than or equal to 300"),
    ("issuer", "http://idp.example.com/realms/acme", "must use https"),
    ("issuer", "idp.example.com", "must be an https URL"),
    ("roles", {"team-a": "superuser"}, "Input should be 'predictor', 'viewer'"),
    ("default_role", "root", "Input should be 'predictor', 'viewer'"),
    ("algorithms", ["RS256"], None),
    ("issuer", "http://localhost:8080/realms/test", None),
])
def test_the_settings_refuse_unsafe_or_unknown_values(field: str, value: Any, message: str | None) -> None:
    config = {"issuer": "https://idp.example.com/realms/acme", "audience": AUDIENCE, field: value}
    if message is None:
        assert getattr(OidcIssuer.model_validate(config), field) == value
        return
    with pytest.raises(ValidationError) as refused:
        OidcIssuer.model_validate(config)
    assert field in str(refused.value) and message in str(refused.value)


def test_the_toml_takes_oidc_tables_and_refuses_a_bad_grant(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "mlops-lite.toml").write_text(
        '[[oidc]]\nissuer = "https://idp.example.com/realms/acme"\naudience = "mlops-lite"\n'
        'client_id = "mlops-lite-cli"\n[oidc.roles]\nteam-a = "viewer"\n'
        '[[oidc.grants]]\ngroup = "team-a"\ngrant = "operator:model:teamA-*"\n'
        '[[oidc.grants]]\ngroup = "team-b"\ngrant = "operator:dataset:b"\n')
    settings = load_settings(home=home)
    (entry,) = settings.oidc
    assert (entry.client_id, entry.roles, entry.algorithms) == ("mlops-lite-cli", {"team-a": "viewer"}, ["RS256", "ES256"])
    with pytest.raises(InvalidInput, match=r"oidc\[0\].grants\[1\].grant") as refused:
        OidcVerifier(settings.oidc)
    assert refused.value.details["field"] == "oidc[0].grants[1].grant"
    with pytest.raises(ValidationError, match="configured twice"):
        load_settings(home=home, oidc=[entry.model_dump(), entry.model_dump()])


def test_without_issuers_no_token_is_taken_for_a_jwt() -> None:
    v = OidcVerifier([])
    assert not v.enabled and not v.accepts("a.b.c")
    assert not looks_like_jwt("mll_abcdef") and looks_like_jwt("eyJ.eyJ.")


def test_the_environment_takes_issuers_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_LITE_OIDC", json.dumps([{"issuer": "https://login.example.com/tenant/v2.0",
                                                       "audience": "api", "groups_claim": "roles",
                                                       "roles": {"MLOps.Admin": "admin"}}]))
    (entry,) = load_settings(home=tmp_path / "home").oidc
    assert (entry.issuer, entry.groups_claim, entry.roles) == ("https://login.example.com/tenant/v2.0", "roles",
                                                               {"MLOps.Admin": "admin"})
    monkeypatch.setenv("MLOPS_LITE_OIDC", json.dumps([{"issuer": "https://x.example.com", "audience": "api",
                                                       "algorithms": ["HS256"]}]))
    with pytest.raises(ValidationError, match="algorithm 'HS256' is not accepted"):
        load_settings(home=tmp_path / "home")


def test_a_token_without_kid_uses_the_only_key_and_refetches_nothing(idp: KeyServer, keys: dict[str, Any],
                                                                     verifier: OidcVerifier) -> None:
    idp.keys = [public_jwk(keys["rsa"], "k1")]
    assert verifier.authenticate(mint(keys["rsa"], kid=None, iss=idp.issuer)).subject == "alice-sub"
    time.sleep(0.35)  # past jwks_min_refresh_s: only a missing key would refetch now
    assert verifier.authenticate(mint(keys["rsa"], kid=None, iss=idp.issuer, sub="bob-sub")).subject == "bob-sub"
    assert idp.hits["jwks"] == 1
    idp.keys = [public_jwk(keys["rsa"], "k1"), public_jwk(keys["rsa2"], "k2")]
    two_keys = OidcVerifier([issuer_config(idp)])
    try:
        with pytest.raises(Unauthenticated, match="names no key id"):
            two_keys.authenticate(mint(keys["rsa"], kid=None, iss=idp.issuer, sub="carol-sub"))
    finally:
        two_keys.close()


def test_the_settings_role_names_are_the_roles() -> None:
    """config.py sits below security/ and cannot import ROLES; its Literal must not drift."""
    from typing import get_args

    from mlops_lite.config import Role
    from mlops_lite.security.roles import ROLES

    assert get_args(Role) == ROLES
