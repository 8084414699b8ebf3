"""The stored login (mlops_lite/client/credentials.py) without a provider: PKCE, the file's
privacy and atomic writes, which token is the bearer, and when a refresh is due. The grants
themselves run against real providers in tests/e2e/test_login.py."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import time
from dataclasses import replace
from pathlib import Path

import pytest

from mlops_lite.client import credentials
from mlops_lite.client.credentials import Login
from mlops_lite.errors import InvalidInput, NotFound


def _jwt(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def _login(**changes: object) -> Login:
    fields: dict[str, object] = {
        "issuer": "https://idp.example.com", "client_id": "mlops-lite", "grant": "authorization_code",
        "access_token": "opaque-access", "access_token_expires_at": time.time() + 3600,
        "token_endpoint": "https://idp.example.com/token", "refresh_token": "refresh-1",
        "id_token": _jwt({"sub": "u-1", "email": "ana@example.com", "groups": ["ml"], "exp": time.time() + 600}),
    }
    fields.update(changes)
    login = Login(**fields)  # type: ignore[arg-type]
    return replace(login, id_token_expires_at=credentials.claims(login.id_token).get("exp"))


def test_pkce_challenge_is_the_s256_of_a_verifier_of_allowed_length() -> None:
    verifier, challenge = credentials.pkce_pair()
    assert 43 <= len(verifier) <= 128
    assert set(verifier) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == expected
    assert credentials.pkce_pair()[0] != verifier


def test_the_login_file_is_private_and_replaced_whole(tmp_path: Path) -> None:
    first = _login()
    path = credentials.save(tmp_path, first)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path == credentials.login_path(tmp_path, "https://idp.example.com/", "mlops-lite")
    assert credentials.load(path) == first
    second = _login(access_token="opaque-access-2")
    credentials.save(tmp_path, second)
    assert credentials.load(path) == second
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_credentials_folder_made_too_open_is_closed_again(tmp_path: Path) -> None:
    (tmp_path / "credentials").mkdir(mode=0o755)
    os.chmod(tmp_path / "credentials", 0o755)
    credentials.save(tmp_path, _login())
    assert stat.S_IMODE((tmp_path / "credentials").stat().st_mode) == 0o700


def test_each_issuer_and_client_has_its_own_file(tmp_path: Path) -> None:
    paths = {credentials.login_path(tmp_path, issuer, client)
             for issuer in ("https://a.example.com", "https://b.example.com") for client in ("x", "y")}
    assert len(paths) == 4


def test_a_file_of_another_format_is_refused_naming_it(tmp_path: Path) -> None:
    path = credentials.save(tmp_path, _login())
    path.write_text(json.dumps({**json.loads(path.read_text()), "version": 99}))
    with pytest.raises(InvalidInput, match="unknown format"):
        credentials.load(path)
    path.write_text("{not json")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        credentials.load(path)
    assert credentials.load(tmp_path / "absent.json") is None


def test_the_bearer_is_a_jwt_access_token_else_the_id_token() -> None:
    opaque = _login()
    assert opaque.bearer == opaque.id_token
    assert opaque.bearer_expires_at == opaque.id_token_expires_at
    jwt_access = _jwt({"sub": "u-1", "aud": "mlops-lite", "exp": time.time() + 60})
    assert _login(access_token=jwt_access).bearer == jwt_access
    assert _login(id_token=None).bearer == "opaque-access"  # client credentials: no ID token


def test_a_bearer_within_the_margin_is_due_for_a_refresh() -> None:
    soon = _login(id_token=_jwt({"sub": "u-1", "exp": time.time() + 10}))
    assert soon.expires_within(credentials.REFRESH_MARGIN_S)
    assert not _login().expires_within(credentials.REFRESH_MARGIN_S)
    assert not _login(id_token=None, access_token_expires_at=None).expires_within(30)  # unknown expiry


def test_claims_are_read_for_display_and_garbage_is_no_claims() -> None:
    login = _login()
    assert login.identity() == {"sub": "u-1", "email": "ana@example.com", "groups": ["ml"]}
    assert credentials.claims("not-a-jwt") == {}
    assert credentials.claims("a.!!!.c") == {}
    assert "refresh-1" not in json.dumps(login.identity())


def test_a_newer_login_another_process_stored_is_taken_up_without_a_refresh(tmp_path: Path) -> None:
    """Two processes share one login: the second to find its bearer expiring takes the token the
    first stored rather than spend the (possibly rotated) refresh token again. The token
    endpoint here is unreachable, so a refresh would fail."""
    expiring = _login(id_token=_jwt({"sub": "u-1", "exp": time.time() + 5}),
                      token_endpoint="http://127.0.0.1:9/token")
    newer = _login(access_token="opaque-access-2", token_endpoint="http://127.0.0.1:9/token")
    credentials.save(tmp_path, newer)
    assert credentials.refreshed(tmp_path, expiring) == newer
    assert credentials.StoredLogin(tmp_path, expiring).token() == newer.bearer


def test_one_login_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="mlops-lite login"):
        credentials.one_login(tmp_path, None, None)
    credentials.save(tmp_path, _login())
    credentials.save(tmp_path, _login(client_id="other"))
    with pytest.raises(InvalidInput, match="several stored logins"):
        credentials.one_login(tmp_path, "https://idp.example.com", None)
    assert credentials.one_login(tmp_path, None, "other").client_id == "other"


def test_a_secret_client_authenticates_with_form_encoded_basic_and_a_public_one_names_itself(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 6749 2.3.1: id and secret are form-encoded before HTTP Basic, so a ':' in either
    cannot shift the split; the secret comes from the named variable only."""
    monkeypatch.setenv("THE_SECRET", "p:a ss/word")
    form: dict[str, str] = {}
    headers = credentials._client_auth(credentials.Client("https://idp", "id:1", secret_env="THE_SECRET"), form)
    assert base64.b64decode(headers["Authorization"].removeprefix("Basic ")).decode() == "id%3A1:p%3Aa+ss%2Fword"
    assert form == {}
    public: dict[str, str] = {}
    assert credentials._client_auth(credentials.Client("https://idp", "cli"), public) == {}
    assert public == {"client_id": "cli"}
    monkeypatch.delenv("THE_SECRET")
    with pytest.raises(InvalidInput, match="THE_SECRET"):
        credentials._client_auth(credentials.Client("https://idp", "id", secret_env="THE_SECRET"), {})
