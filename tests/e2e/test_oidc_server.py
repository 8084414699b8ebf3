"""Federated identities over real HTTP: tokens issued by a real OpenID provider
(``oidc-provider-mock`` on 127.0.0.1, through its authorization-code flow) call a real
server; groups become roles and per-model grants; audit events name the subject and
issuer; serving replicas rebuild the same identity; and the bad-token table is 401 with
the check that failed."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.conftest import DATA, FEATURE_EXCLUDE
from tests.unit.test_oidc_verify import AUDIENCE, KeyServer, forge, mint, public_jwk, rsa_key

oidc_provider_mock = pytest.importorskip("oidc_provider_mock", reason="oidc-provider-mock (the dev extra) is missing")

REDIRECT = "http://127.0.0.1:9/callback"  # never reached: the code is read from the redirect
USERS = {
    "alice-sub": {"preferred_username": "alice", "groups": ["team-a"]},
    "root-sub": {"preferred_username": "root", "groups": ["team-a", "platform-admins"]},
    "nobody-sub": {"preferred_username": "nobody", "groups": ["marketing"]},
}


def provider_token(issuer: str, sub: str, *, client_id: str = AUDIENCE) -> str:
    """An ID token from the provider, as a browser login gets one: the authorization form
    posted for ``sub``, then the code exchanged at the token endpoint."""
    with httpx.Client(base_url=issuer, timeout=10) as idp:
        authorized = idp.post("/oauth2/authorize", data={"sub": sub}, params={
            "client_id": client_id, "redirect_uri": REDIRECT, "response_type": "code",
            "scope": "openid profile", "state": "s"})
        assert authorized.status_code == 302, authorized.text
        code = parse_qs(urlsplit(authorized.headers["location"]).query)["code"][0]
        issued = idp.post("/oauth2/token", auth=(client_id, "unused-secret"), data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
        assert issued.status_code == 200, issued.text
        return str(issued.json()["id_token"])


@dataclasses.dataclass
class Stack:
    url: str
    platform: Any
    admin_token: str
    issuer: str  # the provider the grants are about
    short_issuer: str  # a provider issuing 3-second tokens, trusted with no clock skew
    stranger_issuer: str  # a real provider nobody configured
    keys_issuer: str  # our own key server, trusted: signs what the provider cannot (nbf)
    keys_signer: Any

    def get(self, path: str, token: str) -> httpx.Response:
        return httpx.get(self.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from oidc_provider_mock import User, run_server_in_thread

    from mlops_lite import TrainingSpec
    from mlops_lite.config import load_settings
    from mlops_lite.home import init_home
    from mlops_lite.platform import open_local
    from server import create_app
    from server.runner import serve_in_thread

    users = [User(sub=sub, claims=claims) for sub, claims in USERS.items()]
    with ExitStack() as started:
        main = started.enter_context(run_server_in_thread(port=0, user_claims=users))
        short = started.enter_context(run_server_in_thread(port=0, user_claims=users,
                                                           access_token_max_age=timedelta(seconds=3)))
        stranger = started.enter_context(run_server_in_thread(port=0, user_claims=users))
        keys = KeyServer()
        started.callback(keys.close)
        signer = rsa_key()
        keys.keys = [public_jwk(signer, "ours")]
        issuer = f"http://127.0.0.1:{main.server_port}"
        mapping = {"roles": {"team-a": "viewer", "platform-admins": "admin"},
                   "grants": [{"group": "team-a", "grant": "operator:model:teama-*"}]}
        settings = load_settings(
            home=tmp_path_factory.mktemp("oidc") / "home",
            auth_failures_max=10_000,  # the bad-token table is many failures from one client
            oidc=[{"issuer": issuer, "audience": AUDIENCE, "client_id": AUDIENCE, **mapping},
                  {"issuer": f"http://127.0.0.1:{short.server_port}", "audience": AUDIENCE, "clock_skew_s": 0,
                   **mapping},
                  {"issuer": keys.issuer, "audience": AUDIENCE, **mapping}])
        admin_token = init_home(settings).token
        assert admin_token is not None
        platform = open_local(settings)
        started.callback(platform.close)
        platform.data.repo("loans").create(classification="internal", exist_ok=True)
        platform.data.ingest("loans", DATA / "loans.csv", "loans/train.csv")
        table = platform.data.repo("loans").ref("main").read_table("loans/train.csv").table
        spec = TrainingSpec.infer(table, target="default", exclude=FEATURE_EXCLUDE, algorithm="logistic_regression")
        run = platform.training.train("loans", "main", "loans/train.csv", spec).run
        for model in ("teama-x", "teamb-y"):
            platform.registry.register_from_run(model, run.id)
        server = serve_in_thread(create_app(platform))
        started.callback(server.stop)
        yield Stack(url=server.url, platform=platform, admin_token=admin_token, issuer=issuer,
                    short_issuer=f"http://127.0.0.1:{short.server_port}",
                    stranger_issuer=f"http://127.0.0.1:{stranger.server_port}",
                    keys_issuer=keys.issuer, keys_signer=signer)


# -- roles, grants, audit ----------------------------------------------------------
def test_a_provider_token_gets_the_role_its_groups_map_to(stack: Stack) -> None:
    token = provider_token(stack.issuer, "alice-sub")
    answer = stack.get("/v1/whoami", token)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["kind"], body["name"], body["role"]) == ("oidc", "alice", "viewer")
    assert (body["issuer"], body["subject"]) == (stack.issuer, "alice-sub")
    assert body["principal"] == f"oidc:{stack.issuer}#alice-sub"
    assert body["grants"] == [{"role": "operator", "models": "teama-*", "repositories": None}]

    root = stack.get("/v1/whoami", provider_token(stack.issuer, "root-sub")).json()
    assert root["role"] == "admin"  # team-a (viewer) and platform-admins (admin): the highest wins


def test_a_grant_moves_aliases_of_its_models_only_and_the_audit_names_the_subject(stack: Stack) -> None:
    token = provider_token(stack.issuer, "alice-sub")
    headers = {"Authorization": f"Bearer {token}"}
    move = {"version": "1.0.0", "reason": "team A's candidate"}
    own = httpx.put(f"{stack.url}/v1/models/teama-x/aliases/staging", json=move, headers=headers, timeout=30)
    assert own.status_code == 200, own.text
    other = httpx.put(f"{stack.url}/v1/models/teamb-y/aliases/staging", json=move, headers=headers, timeout=30)
    assert other.status_code == 403, other.text
    assert "teamb-y" in other.json()["message"]
    assert stack.platform.registry.aliases("teamb-y") == {}
    assert stack.platform.registry.aliases("teama-x") == {"staging": "1.0.0"}

    principal = f"oidc:{stack.issuer}#alice-sub"
    moves = [e for e in stack.platform.audit.events(200) if "teama-x" in e.object]
    assert moves and moves[0].actor == principal, [(e.actor, e.action, e.object) for e in moves]


def test_a_subject_whose_groups_map_to_no_role_is_403(stack: Stack) -> None:
    answer = stack.get("/v1/whoami", provider_token(stack.issuer, "nobody-sub"))
    assert answer.status_code == 403
    assert "no group maps to a role" in answer.json()["message"]


def test_local_tokens_still_work_beside_the_issuers(stack: Stack) -> None:
    body = stack.get("/v1/whoami", stack.admin_token).json()
    assert (body["kind"], body["role"]) == ("token", "admin")


def test_a_serving_replica_rebuilds_the_same_identity_from_whoami(stack: Stack) -> None:
    from server.serving import RemoteTokens

    token = provider_token(stack.issuer, "alice-sub")
    here = stack.platform.identities.authenticate(token)
    with httpx.Client(base_url=stack.url, timeout=30) as control_plane:
        there = RemoteTokens(control_plane).authenticate(token)
    assert there == here
    assert there.principal == f"oidc:{stack.issuer}#alice-sub"


# -- the bad-token table --------------------------------------------------------------
def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def _tampered(stack: Stack) -> str:
    """A real token whose claims were edited (groups raised to admin), signature kept."""
    token = provider_token(stack.issuer, "alice-sub")
    header, _, signature = token.split(".")
    claims = {**_claims(token), "groups": ["platform-admins"]}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{body}.{signature}"


def _expired(stack: Stack) -> str:
    token = provider_token(stack.short_issuer, "alice-sub")
    time.sleep(max(0.0, _claims(token)["exp"] - time.time()) + 0.2)
    return token


def _provider_public_pem(stack: Stack) -> bytes:
    (jwk,) = httpx.get(f"{stack.issuer}/jwks", timeout=10).json()["keys"]
    public = jwt.algorithms.RSAAlgorithm.from_jwk(jwk)
    return public.public_bytes(serialization.Encoding.PEM,  # type: ignore[union-attr]
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def _valid_claims(stack: Stack) -> dict[str, Any]:
    return _claims(provider_token(stack.issuer, "root-sub"))


BAD_TOKENS: dict[str, tuple[Callable[[Stack], str], str]] = {
    "expired": (_expired, "expired"),
    "not yet valid": (lambda s: mint(s.keys_signer, kid="ours", iss=s.keys_issuer, nbf=int(time.time()) + 3600),
                      "not yet valid (nbf"),
    "wrong issuer": (lambda s: provider_token(s.stranger_issuer, "alice-sub"), "wrong issuer"),
    "wrong audience": (lambda s: provider_token(s.issuer, "alice-sub", client_id="another-app"), "wrong audience"),
    "bad signature": (_tampered, "bad signature"),
    "unknown kid": (lambda s: mint(rsa_key(), kid="not-in-the-jwks", iss=s.issuer), "unknown key id"),
    "alg none": (lambda s: forge({"alg": "none", "typ": "JWT"}, _valid_claims(s), None),
                 "algorithm 'none' is not allowed"),
    "HS256 signed with the public key": (
        lambda s: forge({"alg": "HS256", "typ": "JWT"}, _valid_claims(s), _provider_public_pem(s)),
        "algorithm 'HS256' is not allowed"),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_the_bad_token_table_is_401_with_the_check_that_failed(case: str, stack: Stack) -> None:
    make, reason = BAD_TOKENS[case]
    token = make(stack)
    answer = stack.get("/v1/whoami", token)
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"] == "Bearer"
    body = answer.json()
    assert body["code"] == "unauthenticated"
    assert reason in body["message"], body["message"]
    assert token.split(".")[1] not in answer.text


def test_the_table_covers_each_kind_of_bad_token_once() -> None:
    assert set(BAD_TOKENS) == {"expired", "not yet valid", "wrong issuer", "wrong audience", "bad signature",
                               "unknown kid", "alg none", "HS256 signed with the public key"}


def test_an_expired_token_was_valid_before(stack: Stack) -> None:
    """The 3-second provider's tokens are good while fresh: 'expired' above is about time."""
    token = provider_token(stack.short_issuer, "alice-sub")
    assert stack.get("/v1/whoami", token).status_code == 200


def test_the_provider_opaque_access_token_is_not_accepted(stack: Stack) -> None:
    with httpx.Client(base_url=stack.issuer, timeout=10) as idp:
        authorized = idp.post("/oauth2/authorize", data={"sub": "alice-sub"}, params={
            "client_id": AUDIENCE, "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid"})
        code = parse_qs(urlsplit(authorized.headers["location"]).query)["code"][0]
        access = idp.post("/oauth2/token", auth=(AUDIENCE, "x"), data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}).json()["access_token"]
    assert stack.get("/v1/whoami", access).status_code == 401
