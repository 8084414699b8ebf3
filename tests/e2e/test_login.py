"""``mlops-lite login`` / ``logout`` end to end, the test playing the user and the browser.

The authorization code grant (PKCE, loopback redirect) and the refresh_token grant run
against ``oidc-provider-mock``, a real OpenID provider on 127.0.0.1: the command runs as a
subprocess with ``--no-browser``, the test reads the authorize URL it prints, submits the
provider's authorization form over HTTP and follows its redirect to the command's loopback
listener. The mock authenticates clients at its token endpoint (client_secret_basic), so
the command is given a client secret through ``--client-secret-env``.

oidc-provider-mock offers neither the device authorization grant (RFC 8628), nor client
credentials, nor token revocation (RFC 7009): those run against ``TinyProvider`` below, a
small real OAuth 2.0 server (http.server) on 127.0.0.1 that implements just these, plus
one protected route (``/v1/whoami``) that accepts only the bearer tokens it issued and has
not expired or revoked, so that a client's refresh after a 401 is observable."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mlops_lite.client import RemotePlatform, credentials
from mlops_lite.errors import Unauthenticated

SECRET = "client-secret-" + secrets.token_hex(8)
USER = {"email": "ana@example.com", "preferred_username": "ana", "groups": ["ml-team"]}


# ------------------------------------------------------------------------------ providers

@contextmanager
def mock_provider(**options: Any) -> Iterator[str]:
    """oidc-provider-mock on 127.0.0.1; yields its issuer URL."""
    from oidc_provider_mock import User, run_server_in_thread

    with run_server_in_thread(port=0, user_claims=[User(sub="ana-1", claims=USER)], **options) as server:
        yield f"http://127.0.0.1:{server.server_port}"


@dataclass
class TinyProvider:
    """The device grant, client credentials, refresh_token (rotating) and revocation, over real
    HTTP. Client ``robot`` has the secret SECRET; ``device-cli`` is a public client."""

    url: str = ""
    lifetime_s: int = 3600
    approved: set[str] = field(default_factory=set)
    devices: dict[str, str] = field(default_factory=dict)  # user code -> device code
    valid: dict[str, float] = field(default_factory=dict)  # access token -> expiry
    refresh: dict[str, str] = field(default_factory=dict)  # refresh token -> client id
    revoked: list[str] = field(default_factory=list)
    whoami_calls: list[str] = field(default_factory=list)
    slow_down_once: bool = False
    polls: list[float] = field(default_factory=list)  # when the device code was polled

    def issue(self, client_id: str, *, with_refresh: bool) -> dict[str, Any]:
        access = "at-" + secrets.token_urlsafe(16)
        self.valid[access] = time.time() + self.lifetime_s
        answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": self.lifetime_s}
        if with_refresh:
            answer["refresh_token"] = "rt-" + secrets.token_urlsafe(16)
            self.refresh[answer["refresh_token"]] = client_id
        return answer

    def expire_all(self) -> None:
        self.valid.clear()


def _handler(provider: TinyProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _client(self, form: dict[str, str]) -> str | None:
            header = self.headers.get("Authorization", "")
            if header.startswith("Basic "):
                client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
                return client_id if client_id == "robot" and secrets.compare_digest(secret, SECRET) else None
            return form.get("client_id") if form.get("client_id") == "device-cli" else None

        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                self._json(200, {"issuer": provider.url, "token_endpoint": f"{provider.url}/token",
                                 "device_authorization_endpoint": f"{provider.url}/device",
                                 "revocation_endpoint": f"{provider.url}/revoke"})
            elif self.path == "/v1/whoami":
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                provider.whoami_calls.append(token)
                if provider.valid.get(token, 0) > time.time():
                    self._json(200, {"name": "ok"})
                else:
                    self._json(401, {"code": "unauthenticated", "message": "token refused"})
            else:
                self._json(404, {})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if self.path == "/activate":  # the user, on another device, enters the code
                provider.approved.add(provider.devices[form["user_code"]])
                self._json(200, {})
                return
            client = self._client(form)
            if client is None:
                self._json(401, {"error": "invalid_client"})
            elif self.path == "/device":
                device, user = secrets.token_urlsafe(16), f"{secrets.randbelow(9000) + 1000}-WXYZ"
                provider.devices[user] = device
                self._json(200, {"device_code": device, "user_code": user, "expires_in": 60, "interval": 1,
                                 "verification_uri": f"{provider.url}/activate"})
            elif self.path == "/revoke":
                provider.revoked.append(form["token"])
                provider.valid.pop(form["token"], None)
                provider.refresh.pop(form["token"], None)
                self._json(200, {})
            elif self.path == "/token":
                self._token(client, form)
            else:
                self._json(404, {})

        def _token(self, client: str, form: dict[str, str]) -> None:
            grant = form.get("grant_type")
            if grant == "client_credentials" and client == "robot":
                self._json(200, provider.issue(client, with_refresh=False))
            elif grant == "urn:ietf:params:oauth:grant-type:device_code":
                provider.polls.append(time.monotonic())
                if provider.slow_down_once:
                    provider.slow_down_once = False
                    self._json(400, {"error": "slow_down"})
                elif form.get("device_code") not in provider.devices.values():
                    self._json(400, {"error": "invalid_grant"})
                elif form["device_code"] not in provider.approved:
                    self._json(400, {"error": "authorization_pending"})
                else:
                    self._json(200, provider.issue(client, with_refresh=True))
            elif grant == "refresh_token" and provider.refresh.pop(form.get("refresh_token", ""), None) == client:
                self._json(200, provider.issue(client, with_refresh=True))  # rotated
            else:
                self._json(400, {"error": "invalid_grant"})

    return Handler


@contextmanager
def tiny_provider() -> Iterator[TinyProvider]:
    provider = TinyProvider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    provider.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# ------------------------------------------------------------------------------ the command

@dataclass
class Cli:
    """``mlops-lite`` in a subprocess, on a home of its own."""

    home: Path

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_LITE_")}
        return {**env, "MLOPS_LITE_HOME": str(self.home), "MLOPS_LITE_CONFIG": str(self.home / "mlops-lite.toml"),
                "CLIENT_SECRET": SECRET}

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "mlops_lite", *args], env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mlops_lite", *args], env=self.env, text=True,
                              capture_output=True, timeout=60)

    def stored(self) -> list[Path]:
        return sorted((self.home / "credentials").glob("*.json"))


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")


def _prompt(process: subprocess.Popen[str], pattern: str) -> tuple[str, list[str]]:
    """Read the command's stderr up to the line matching ``pattern``; the match and the lines."""
    assert process.stderr is not None
    seen: list[str] = []
    for text in process.stderr:
        seen.append(text)
        found = re.search(pattern, text)
        if found:
            return found.group(1), seen
    process.wait(10)
    raise AssertionError(f"no line matching {pattern!r} in: {''.join(seen)}")


def _finish(process: subprocess.Popen[str], seen: list[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=60)
    return process.returncode, out, "".join(seen) + err


def _browser_login(cli: Cli, issuer: str, *extra: str) -> tuple[int, str, str, httpx.Response]:
    """Run login, then act as the browser: open the printed URL, submit the provider's form as
    user ana-1, follow the redirect to the command's loopback listener."""
    process = cli.start("login", "--issuer", issuer, "--client-id", "mlops-lite",
                        "--client-secret-env", "CLIENT_SECRET", "--no-browser", "--timeout", "30", *extra)
    try:
        url, seen = _prompt(process, r"(http://\S+/oauth2/authorize\?\S+)")
        assert httpx.get(url).status_code == 200  # the provider's authorization page
        landed = httpx.post(url, data={"sub": "ana-1"}, follow_redirects=True, timeout=30)
        return (*_finish(process, seen), landed)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _secrets_of(path: Path) -> list[str]:
    stored = json.loads(path.read_text())
    return [stored[k] for k in ("access_token", "refresh_token", "id_token") if stored.get(k)] + [SECRET]


# ------------------------------------------------------------------------------ PKCE

def test_login_through_the_browser_stores_a_private_login_and_prints_no_secret(cli: Cli) -> None:
    with mock_provider() as issuer:
        code, out, err, landed = _browser_login(cli, issuer)
        assert code == 0, err
        assert landed.status_code == 200 and "received the sign-in" in landed.text
        assert str(landed.url).startswith("http://127.0.0.1:") and "/callback?" in str(landed.url)
        query = parse_qs(urlsplit(str(landed.url)).query)
        assert "state" in query and "code" in query
        [path] = cli.stored()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        stored = json.loads(path.read_text())
        assert stored["issuer"] == issuer and stored["client_id"] == "mlops-lite"
        assert stored["grant"] == "authorization_code" and stored["client_secret_env"] == "CLIENT_SECRET"
        assert stored["refresh_token"] and stored["access_token_expires_at"] > time.time() + 3000
        assert credentials.claims(stored["id_token"])["sub"] == "ana-1"
        assert stored["id_token_expires_at"] == credentials.claims(stored["id_token"])["exp"]
        assert SECRET not in path.read_text()
        for secret in _secrets_of(path):
            assert secret not in out and secret not in err
        assert "ana (ana-1)" in out
        # The stored access token is one the provider honours.
        info = httpx.get(f"{issuer}/userinfo", headers={"Authorization": f"Bearer {stored['access_token']}"})
        assert info.status_code == 200 and info.json()["sub"] == "ana-1"

        status = cli.run("login", "--status")
        assert status.returncode == 0 and "ana (ana-1)" in status.stdout and "ml-team" in status.stdout
        shown = json.loads(cli.run("login", "--status", "--json").stdout)
        assert shown[0]["identity"]["email"] == "ana@example.com" and shown[0]["expired"] is False
        for secret in _secrets_of(path):
            assert secret not in status.stdout + status.stderr + json.dumps(shown)


def test_an_answer_with_another_state_is_refused_and_nothing_is_stored(cli: Cli) -> None:
    with mock_provider() as issuer:
        process = cli.start("login", "--issuer", issuer, "--client-id", "mlops-lite",
                            "--client-secret-env", "CLIENT_SECRET", "--no-browser", "--timeout", "30")
        url, seen = _prompt(process, r"(http://\S+/oauth2/authorize\?\S+)")
        redirect_uri = parse_qs(urlsplit(url).query)["redirect_uri"][0]
        forged = httpx.get(redirect_uri, params={"code": "stolen-code", "state": "not-this-login-é"})
        code, _, err = _finish(process, seen)
    assert forged.status_code == 400 and "state mismatch" in forged.text
    assert code == 1 and "state does not match" in err
    assert "Traceback" not in err and cli.stored() == []
    with pytest.raises(httpx.ConnectError):  # the listener stopped after its one callback
        httpx.get(redirect_uri, params={"state": "x"})


def test_a_login_nobody_completes_times_out_clearly(cli: Cli) -> None:
    with mock_provider() as issuer:
        done = cli.run("login", "--issuer", issuer, "--client-id", "mlops-lite", "--no-browser", "--timeout", "1")
    assert done.returncode == 1
    assert "login timed out" in done.stderr and "--device" in done.stderr and "Traceback" not in done.stderr
    assert cli.stored() == []


def test_a_denied_login_says_so(cli: Cli) -> None:
    with mock_provider() as issuer:
        process = cli.start("login", "--issuer", issuer, "--client-id", "mlops-lite", "--no-browser")
        url, seen = _prompt(process, r"(http://\S+/oauth2/authorize\?\S+)")
        httpx.post(url, data={"action": "deny"}, follow_redirects=True, timeout=30)
        code, _, err = _finish(process, seen)
    # oidc-provider-mock leaves state off its denial, so the answer is refused as not this login's.
    assert code == 1 and "says access_denied" in err and "Traceback" not in err and cli.stored() == []


# ------------------------------------------------------------------------------ refresh

def test_an_expiring_login_is_refreshed_and_stored_again(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bearer (here the ID token: the mock's access tokens are opaque) expires within 30 s
    (the stored expiry is moved, as a clock that ran on would see it): the next token asked
    for is refreshed at the provider (refresh_token grant) and the new tokens are stored."""
    with mock_provider() as issuer:
        assert _browser_login(cli, issuer)[0] == 0
        [path] = cli.stored()
        before = json.loads(path.read_text())
        path.write_text(json.dumps({**before, "id_token_expires_at": time.time() + 10}))
        monkeypatch.setenv("CLIENT_SECRET", SECRET)  # the mock's client authenticates its refresh
        login = credentials.load(path)
        assert login is not None
        credentials.StoredLogin(cli.home, login).token()
        after = json.loads(path.read_text())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert after["access_token"] != before["access_token"]
        assert after["obtained_at"] > before["obtained_at"]
        # The mock answers a refresh without a new ID token: the login keeps the old one.
        assert after["id_token"] == before["id_token"]
        info = httpx.get(f"{issuer}/userinfo", headers={"Authorization": f"Bearer {after['access_token']}"})
        assert info.status_code == 200 and info.json()["sub"] == "ana-1"
        # The old access token was retired by the refresh.
        old = httpx.get(f"{issuer}/userinfo", headers={"Authorization": f"Bearer {before['access_token']}"})
        assert old.status_code in (400, 401)  # the mock answers access_denied with 400


def _device_login(cli: Cli, provider: TinyProvider) -> tuple[int, str, str]:
    process = cli.start("login", "--device", "--issuer", provider.url, "--client-id", "device-cli",
                        "--no-browser", "--timeout", "30")
    try:
        user_code, seen = _prompt(process, r"enter the code (\S+)")
        time.sleep(1.5)  # the command polls and is told authorization_pending meanwhile
        httpx.post(f"{provider.url}/activate", data={"user_code": user_code})
        return _finish(process, seen)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_remote_platform_retries_once_after_a_401_with_a_refreshed_token(cli: Cli) -> None:
    with tiny_provider() as provider:
        assert _device_login(cli, provider)[0] == 0
        [path] = cli.stored()
        login = credentials.load(path)
        assert login is not None
        source = credentials.StoredLogin(cli.home, login)
        with RemotePlatform(provider.url, source.token(), credentials=source) as remote:
            assert remote.request("GET", "/v1/whoami") == {"name": "ok"}
            first = json.loads(path.read_text())
            provider.expire_all()  # the server now refuses the bearer before its stated expiry
            assert remote.request("GET", "/v1/whoami") == {"name": "ok"}
            second = json.loads(path.read_text())
            assert second["access_token"] != first["access_token"]
            assert second["refresh_token"] != first["refresh_token"]  # the rotated one is kept
            assert provider.whoami_calls[-3:] == [first["access_token"], first["access_token"],
                                                  second["access_token"]]
            # A refresh the provider refuses ends in one clear error, not a loop.
            provider.expire_all()
            provider.refresh.clear()
            calls = len(provider.whoami_calls)
            with pytest.raises(Unauthenticated, match="log in again"):
                remote.request("GET", "/v1/whoami")
            assert len(provider.whoami_calls) == calls + 1


# ------------------------------------------------------------------------------ device code

def test_device_code_login_polls_until_the_user_approves(cli: Cli) -> None:
    """Polling keeps the provider's interval (1 s here), 5 s more after a slow_down (RFC 8628 3.5)."""
    with tiny_provider() as provider:
        provider.slow_down_once = True
        code, out, err = _device_login(cli, provider)
        assert code == 0, err
        gaps = [later - earlier for earlier, later in zip(provider.polls, provider.polls[1:], strict=False)]
        assert len(provider.polls) >= 2 and gaps[0] >= 5.9, gaps
        assert f"open {provider.url}/activate and enter the code" in err
        [path] = cli.stored()
        stored = json.loads(path.read_text())
        assert stored["grant"] == "device_code" and stored["access_token"] in provider.valid
        assert stored["client_secret_env"] is None
        for secret in _secrets_of(path):
            assert secret not in out and secret not in err


def test_device_code_is_refused_clearly_where_the_issuer_does_not_offer_it(cli: Cli) -> None:
    with mock_provider() as issuer:
        done = cli.run("login", "--device", "--issuer", issuer, "--client-id", "mlops-lite", "--no-browser")
    assert done.returncode == 1
    assert "does not offer the device authorization grant" in done.stderr and "Traceback" not in done.stderr
    assert cli.stored() == []


# ------------------------------------------------------------------------------ client credentials

def test_client_credentials_take_the_secret_from_the_environment_only(
        cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    with tiny_provider() as provider:
        done = cli.run("login", "--client-credentials", "--issuer", provider.url, "--client-id", "robot",
                       "--client-secret-env", "CLIENT_SECRET")
        assert done.returncode == 0, done.stderr
        [path] = cli.stored()
        stored = json.loads(path.read_text())
        assert stored["grant"] == "client_credentials" and stored["refresh_token"] is None
        assert stored["access_token"] in provider.valid
        assert SECRET not in path.read_text()
        for secret in _secrets_of(path):
            assert secret not in done.stdout + done.stderr
        # Refreshing repeats the grant with the secret read from the environment again.
        path.write_text(json.dumps({**stored, "access_token_expires_at": time.time() + 5}))
        monkeypatch.setenv("CLIENT_SECRET", SECRET)
        login = credentials.load(path)
        assert login is not None
        fresh = credentials.StoredLogin(cli.home, login).token()
        assert fresh != stored["access_token"] and fresh in provider.valid
        assert json.loads(path.read_text())["access_token"] == fresh

        unset = cli.run("login", "--client-credentials", "--issuer", provider.url, "--client-id", "robot",
                        "--client-secret-env", "NO_SUCH_VARIABLE")
        assert unset.returncode == 1 and "NO_SUCH_VARIABLE (the client secret) is not set" in unset.stderr
        missing = cli.run("login", "--client-credentials", "--issuer", provider.url, "--client-id", "robot")
        assert missing.returncode == 1 and "--client-secret-env" in missing.stderr
        wrong = subprocess.run([sys.executable, "-m", "mlops_lite", "login", "--client-credentials", "--issuer",
                                provider.url, "--client-id", "robot", "--client-secret-env", "CLIENT_SECRET"],
                               env={**cli.env, "CLIENT_SECRET": "wrong"}, capture_output=True, text=True, timeout=60)
        assert wrong.returncode == 1 and "refused by the provider (invalid_client" in wrong.stderr


# ------------------------------------------------------------------------------ logout

def test_logout_revokes_at_the_provider_and_deletes_the_login(cli: Cli) -> None:
    with tiny_provider() as provider:
        assert _device_login(cli, provider)[0] == 0
        [path] = cli.stored()
        stored = json.loads(path.read_text())
        done = cli.run("logout")
        assert done.returncode == 0, done.stderr
        assert "revoked at the provider" in done.stdout
        assert provider.revoked == [stored["refresh_token"], stored["access_token"]]
        assert cli.stored() == [] and not path.exists()
        again = cli.run("logout")
        assert again.returncode == 1 and "no stored login" in again.stderr
        status = cli.run("login", "--status")
        assert status.returncode == 1 and "Not logged in" in status.stdout


def test_logout_where_the_provider_offers_no_revocation_still_forgets(cli: Cli) -> None:
    with mock_provider() as issuer:
        assert _browser_login(cli, issuer)[0] == 0
        done = cli.run("logout", "--issuer", issuer)
    assert done.returncode == 0 and "offers no revocation" in done.stdout
    assert cli.stored() == []


# ------------------------------------------------------------------------------ connect()

def test_connect_sends_the_stored_login_of_a_configured_issuer_unless_a_token_is_set(
        cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_lite import connect

    with tiny_provider() as provider:
        assert _device_login(cli, provider)[0] == 0
        monkeypatch.setenv("MLOPS_LITE_HOME", str(cli.home))
        monkeypatch.setenv("MLOPS_LITE_URL", provider.url)
        monkeypatch.setenv("MLOPS_LITE_CONFIG", str(cli.home / "mlops-lite.toml"))
        (cli.home / "mlops-lite.toml").write_text(
            f'[[oidc]]\nissuer = "{provider.url}"\naudience = "mlops-lite"\nclient_id = "device-cli"\n')
        with connect() as remote:
            assert isinstance(remote, RemotePlatform)
            assert remote.request("GET", "/v1/whoami") == {"name": "ok"}
        assert provider.whoami_calls[-1] == json.loads(cli.stored()[0].read_text())["access_token"]
        monkeypatch.setenv("MLOPS_LITE_TOKEN", "a-token-of-my-own")
        with connect() as remote, pytest.raises(Unauthenticated):
            assert isinstance(remote, RemotePlatform)
            remote.request("GET", "/v1/whoami")
        assert provider.whoami_calls[-1] == "a-token-of-my-own"
        monkeypatch.delenv("MLOPS_LITE_TOKEN")
        (cli.home / "mlops-lite.toml").write_text("")  # no issuer configured: the login is not sent
        with connect() as remote, pytest.raises(Unauthenticated):
            assert isinstance(remote, RemotePlatform)
            remote.request("GET", "/v1/whoami")
        assert provider.whoami_calls[-1] == ""


# ------------------------------------------------------------------------------ against mlops-lite

def test_a_login_calls_a_server_that_trusts_its_issuer(cli: Cli, tmp_path: Path) -> None:
    """The whole path: log in through the browser, then `mlops-lite models list` and
    `connect()` call a real mlops-lite server whose [[oidc]] table trusts the provider; the
    server knows the caller as the provider's subject. Logged out, the same command is 401."""
    from mlops_lite.config import load_settings
    from mlops_lite.home import init_home
    from mlops_lite.platform import open_local
    from server import create_app
    from server.runner import serve_in_thread

    with mock_provider() as issuer:
        trust = {"issuer": issuer, "audience": "mlops-lite", "client_id": "mlops-lite",
                 "roles": {"ml-team": "viewer"}}
        settings = load_settings(home=tmp_path / "server-home", oidc=[trust])
        init_home(settings)
        platform = open_local(settings)
        server = serve_in_thread(create_app(platform))
        try:
            cli.home.mkdir(parents=True)
            (cli.home / "mlops-lite.toml").write_text(
                f'url = "{server.url}"\n\n[[oidc]]\nissuer = "{issuer}"\naudience = "mlops-lite"\n')
            refused = cli.run("models", "list")
            assert refused.returncode == 1 and "Traceback" not in refused.stderr
            code, _, err, _ = _browser_login(cli, issuer)
            assert code == 0, err
            listed = cli.run("-v", "models", "list")
            assert listed.returncode == 0, listed.stderr
            assert f"ran against mlops-lite at {server.url}" in listed.stderr
            done = subprocess.run([sys.executable, "-c", "import json\nfrom mlops_lite import connect\n"
                                   "with connect() as remote:\n    print(json.dumps(remote.request('GET', '/v1/whoami')))"],
                                  env=cli.env, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            who = json.loads(done.stdout)
            assert (who["kind"], who["name"], who["role"]) == ("oidc", "ana", "viewer")
            assert who["principal"] == f"oidc:{issuer}#ana-1"
            assert cli.run("logout").returncode == 0
            assert cli.run("models", "list").returncode == 1
        finally:
            server.stop()
            platform.close()


def test_a_login_whose_id_token_expired_and_is_not_renewed_asks_to_log_in_again(
        cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """oidc-provider-mock renews no ID token on refresh: once the stored one has expired, the
    client says to log in again rather than send it (or refresh at every request)."""
    with mock_provider(access_token_max_age=timedelta(seconds=2)) as issuer:
        assert _browser_login(cli, issuer)[0] == 0
        [path] = cli.stored()
        before = json.loads(path.read_text())
        assert before["id_token_expires_at"] - time.time() < 3
        time.sleep(max(0.0, before["id_token_expires_at"] - time.time()) + 0.5)
        monkeypatch.setenv("CLIENT_SECRET", SECRET)
        login = credentials.load(path)
        assert login is not None
        with pytest.raises(Unauthenticated, match="log in again: mlops-lite login --issuer"):
            credentials.StoredLogin(cli.home, login).token()
        assert json.loads(path.read_text())["access_token"] != before["access_token"]  # it did refresh


def test_beside_a_daemon_the_stored_login_comes_before_the_admin_token_file(
        cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The home's daemon file names a live process (a stand-in) listening at the tiny server:
    connect() calls it with the stored login of the configured issuer, and with the home's
    admin token file once no issuer is configured."""
    from mlops_lite import connect
    from mlops_lite.daemon import DaemonInfo, write_daemon

    with tiny_provider() as provider:
        assert _device_login(cli, provider)[0] == 0
        stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            write_daemon(cli.home / "daemon.json", DaemonInfo(pid=stand_in.pid, url=provider.url, prefect_url=None,
                                                              started_at="2026-12-04T00:00:00+00:00"))
            (cli.home / "admin.token").write_text("the-admin-token\n")
            monkeypatch.setenv("MLOPS_LITE_HOME", str(cli.home))
            monkeypatch.setenv("MLOPS_LITE_CONFIG", str(cli.home / "mlops-lite.toml"))
            (cli.home / "mlops-lite.toml").write_text(
                f'[[oidc]]\nissuer = "{provider.url}"\naudience = "device-cli"\n')
            with connect() as remote:
                assert isinstance(remote, RemotePlatform)
                assert remote.request("GET", "/v1/whoami") == {"name": "ok"}
            assert provider.whoami_calls[-1] == json.loads(cli.stored()[0].read_text())["access_token"]
            (cli.home / "mlops-lite.toml").write_text("")
            with connect() as remote, pytest.raises(Unauthenticated):
                assert isinstance(remote, RemotePlatform)
                remote.request("GET", "/v1/whoami")
            assert provider.whoami_calls[-1] == "the-admin-token"
        finally:
            stand_in.kill()
            stand_in.wait()


def test_the_browser_opens_where_there_is_a_display_and_never_in_a_bare_terminal(cli: Cli, tmp_path: Path) -> None:
    """``$BROWSER`` here is a small program that writes down the URL it is given and returns,
    as a browser does; the test then plays that browser. Without a display (an SSH session)
    no browser is started, since a console one would take over the terminal; the URL is
    printed either way."""
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.py"
    browser.write_text(f"import sys\nopen({str(opened)!r}, 'w').write(sys.argv[1])\n")
    with mock_provider() as issuer:
        for display in ("", ":0"):
            env = {**cli.env, "BROWSER": f"{sys.executable} {browser} %s", "DISPLAY": display,
                   "WAYLAND_DISPLAY": ""}
            process = subprocess.Popen([sys.executable, "-m", "mlops_lite", "login", "--issuer", issuer,
                                        "--client-id", "mlops-lite", "--client-secret-env", "CLIENT_SECRET",
                                        "--timeout", "30"], env=env, text=True, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE)
            try:
                printed, seen = _prompt(process, r"(http://\S+/oauth2/authorize\?\S+)")
                deadline = time.monotonic() + 10
                while display and not opened.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                if display:
                    assert opened.read_text() == printed
                else:
                    time.sleep(0.5)
                    assert not opened.exists()
                httpx.post(printed, data={"sub": "ana-1"}, follow_redirects=True, timeout=30)
                code, _, err = _finish(process, seen)
                assert code == 0, err
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()


def test_the_data_facet_sends_the_logins_current_bearer(tmp_path: Path) -> None:
    """``platform.data`` (the lakeFS SDK and its HTTP client) takes the bearer from the login
    before each call, as the other facets do: after the first bearer is revoked and the login
    holds a new one, data calls still succeed, and each carries the new bearer."""
    from mlops_lite.config import load_settings
    from mlops_lite.home import init_home
    from mlops_lite.platform import open_local
    from server import create_app
    from server.runner import serve_in_thread

    settings = load_settings(home=tmp_path / "home")
    init_home(settings)
    platform = open_local(settings)
    platform.data.repo("sales").create(classification="internal")
    source = tmp_path / "prices.csv"
    source.write_text("sku,price\nA,1.5\nB,2.0\n")
    first_identity, first = platform.tokens.create("ana", "operator")
    _, second = platform.tokens.create("ana", "operator")

    class Login:
        """The TokenSource seam a stored login fills: its bearer now, and a refresh."""

        def __init__(self) -> None:
            self.current = first
            self.asked = 0

        def token(self) -> str | None:
            self.asked += 1
            return self.current

        def refresh(self) -> str | None:
            return self.current

    login = Login()
    running = serve_in_thread(create_app(platform))
    try:
        with RemotePlatform(running.url, login.token(), credentials=login) as remote:
            assert [r.name for r in remote.data.repositories()] == ["sales"]  # the lakeFS SDK
            assert remote.data.repo("sales").branches()  # the SDK again
            platform.tokens.revoke(first_identity.token_id or "")
            login.current = second  # what a refresh stored
            asked = login.asked
            assert [r.name for r in remote.data.repositories()] == ["sales"]
            remote.data.ingest("sales", source, "prices.csv")  # the facet's HTTP client uploads
            table = remote.data.repo("sales").ref("main").read_table("prices.csv").table  # and downloads
            assert table.num_rows == 2
            assert login.asked > asked
    finally:
        running.stop()
        platform.close()
