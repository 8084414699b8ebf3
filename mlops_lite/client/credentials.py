"""Logging in to an OpenID provider the way cloud CLIs do, and the stored login every
client of ours then uses.

Three grants, each a plain function that answers the provider's ``Tokens``:

- ``authorization_code``: PKCE (RFC 7636, S256) through a loopback redirect (RFC 8252):
  a listener on 127.0.0.1 at an ephemeral port takes one ``/callback`` request, checks
  ``state`` and stops; the authorize URL is always printed (for SSH sessions) and opened
  in a browser when asked.
- ``device_code`` (RFC 8628), where discovery names a ``device_authorization_endpoint``.
- ``client_credentials``, for automation; its secret comes from an environment variable.

``Login`` is what ``mlops-lite login`` stores: one 0600 JSON file per issuer and client
under ``<home>/credentials/`` (the folder 0700), written atomically. It holds the tokens
and the endpoints it refreshes and revokes at, never the client secret: a grant that needs
one reads it again from the environment variable it was given at login.

``StoredLogin`` is the token source ``connect()`` hands ``RemotePlatform``: ``token()``
answers the bearer, refreshed first (refresh_token grant, or the client credentials grant
again) when it expires within ``REFRESH_MARGIN_S``; ``refresh()`` forces that (after a 401).
Processes that share a login refresh under a file lock and take up a newer token another
one stored, so a rotated refresh token is never spent twice.

The bearer sent to mlops-lite is the access token when it is a JWT (RFC 9068), else the ID
token (a JWT whose audience is the client id, as ``kubectl``'s OIDC login sends). Token
contents shown by ``--status`` are read without verifying signatures: for display only;
the server verifies every token it is sent.

Nothing here prints or logs a token or a secret.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import html
import json
import os
import secrets
import sys
import tempfile
import threading
import time
import webbrowser
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlencode, urlsplit

from mlops_lite.errors import BackendUnavailable, InvalidInput, NotFound, Unauthenticated

if TYPE_CHECKING:
    import httpx

REFRESH_MARGIN_S = 30.0
"""A bearer that expires within this many seconds is refreshed before it is sent."""

DEFAULT_SCOPE = "openid profile email"
LOGIN_TIMEOUT_S = 300.0
FORMAT_VERSION = 1

Say = Callable[[str], None]


class TokenSource(Protocol):
    """Where ``RemotePlatform`` gets its bearer: ``token()`` before each request, ``refresh()``
    once after a 401."""

    def token(self) -> str | None: ...

    def refresh(self) -> str | None: ...


# ------------------------------------------------------------------------------ the provider

@dataclass(frozen=True)
class Provider:
    """What the issuer's discovery document (``/.well-known/openid-configuration``) offers."""

    issuer: str
    token_endpoint: str
    authorization_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    revocation_endpoint: str | None = None
    scopes_supported: tuple[str, ...] = ()

    @property
    def default_scope(self) -> str:
        """openid, profile and email, and offline_access (a refresh token) where it is offered."""
        return DEFAULT_SCOPE + (" offline_access" if "offline_access" in self.scopes_supported else "")


@dataclass(frozen=True)
class Client:
    """Who logs in at the provider: the client id, its secret when it has one (read from an
    environment variable, named so a refresh can read it again), and the scopes asked for."""

    issuer: str
    client_id: str
    scope: str = DEFAULT_SCOPE
    secret_env: str | None = None
    verify: Any = True
    """httpx's ``verify``: True (the system's CAs), or a CA bundle's path."""

    @property
    def secret(self) -> str | None:
        if self.secret_env is None:
            return None
        value = os.environ.get(self.secret_env)
        if not value:
            raise InvalidInput(f"the environment variable {self.secret_env} (the client secret) is not set",
                               field="client_secret_env", expected="the name of a set environment variable")
        return value


@dataclass(frozen=True)
class Tokens:
    """A token endpoint's answer, with its expiry made absolute."""

    access_token: str
    expires_at: float | None
    refresh_token: str | None = None
    id_token: str | None = None
    scope: str | None = None


def _http(client: Client) -> httpx.Client:
    import httpx  # only when a login or a refresh talks to the provider

    return httpx.Client(timeout=15.0, verify=client.verify, follow_redirects=False)


def discover(client: Client) -> Provider:
    """The issuer's endpoints from its discovery document; its ``issuer`` must be the one asked
    for (OpenID Connect Discovery 1.0, section 4.3)."""
    import httpx

    url = client.issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with _http(client) as http:
            response = http.get(url)
    except httpx.HTTPError as exc:
        raise BackendUnavailable(f"cannot reach the OpenID provider at {url}: {exc}") from exc
    if response.status_code != 200:
        raise BackendUnavailable(f"the OpenID provider answered HTTP {response.status_code} for {url}")
    try:
        document = response.json()
    except ValueError as exc:
        raise BackendUnavailable(f"{url} did not answer a JSON discovery document") from exc
    if not isinstance(document, dict) or not isinstance(document.get("token_endpoint"), str):
        raise BackendUnavailable(f"the discovery document at {url} names no token_endpoint")
    if str(document.get("issuer", "")).rstrip("/") != client.issuer.rstrip("/"):
        raise InvalidInput(f"the discovery document at {url} names the issuer {document.get('issuer')!r}, "
                           f"not {client.issuer!r}", field="issuer",
                           expected="the issuer URL exactly as the provider names itself")

    def endpoint(name: str) -> str | None:
        value = document.get(name)
        return value if isinstance(value, str) and value else None

    return Provider(issuer=client.issuer, token_endpoint=document["token_endpoint"],
                    authorization_endpoint=endpoint("authorization_endpoint"),
                    device_authorization_endpoint=endpoint("device_authorization_endpoint"),
                    revocation_endpoint=endpoint("revocation_endpoint"),
                    scopes_supported=tuple(str(scope) for scope in document.get("scopes_supported") or ()))


def _client_auth(client: Client, form: dict[str, str]) -> dict[str, str]:
    """HTTP Basic with the secret (client_secret_basic, RFC 6749 2.3.1: both parts form-encoded),
    else the client id in the form (a public client)."""
    secret = client.secret
    if secret is None:
        form["client_id"] = client.client_id
        return {}
    pair = f"{urlencode({'': client.client_id})[1:]}:{urlencode({'': secret})[1:]}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


class _OAuthError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(error)
        self.error = error
        self.description = description


def _token_request(client: Client, provider: Provider, form: dict[str, str]) -> Tokens:
    """POST to the token endpoint; the tokens, or _OAuthError with the provider's error code."""
    import httpx

    headers = _client_auth(client, form)
    try:
        with _http(client) as http:
            response = http.post(provider.token_endpoint, data=form, headers=headers)
    except httpx.HTTPError as exc:
        raise BackendUnavailable(f"cannot reach the token endpoint {provider.token_endpoint}: {exc}") from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise BackendUnavailable(f"the token endpoint answered HTTP {response.status_code} without a JSON body")
    if response.status_code != 200 or "error" in body:
        raise _OAuthError(str(body.get("error", f"http_{response.status_code}")),
                          str(body.get("error_description", "")))
    if not isinstance(body.get("access_token"), str) or str(body.get("token_type", "")).lower() != "bearer":
        raise BackendUnavailable("the token endpoint answered no bearer access_token")
    expires_in = body.get("expires_in")
    expires_at = time.time() + float(expires_in) if isinstance(expires_in, int | float) else None
    return Tokens(access_token=body["access_token"], expires_at=expires_at,
                  refresh_token=body.get("refresh_token") if isinstance(body.get("refresh_token"), str) else None,
                  id_token=body.get("id_token") if isinstance(body.get("id_token"), str) else None,
                  scope=body.get("scope") if isinstance(body.get("scope"), str) else None)


def _refused(what: str, exc: _OAuthError) -> Unauthenticated:
    detail = f": {exc.description}" if exc.description else ""
    return Unauthenticated(f"{what} was refused by the provider ({exc.error}{detail})")


# ------------------------------------------------------------------------------ the grants

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkce_pair() -> tuple[str, str]:
    """A code verifier (RFC 7636: 43-128 unreserved characters) and its S256 challenge."""
    verifier = _b64url(secrets.token_bytes(64))
    return verifier, _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass
class _Callback:
    state: str
    params: dict[str, str] | None = None


def _same(given: str, expected: str) -> bool:
    """A constant-time comparison that any text from the redirect may be given to."""
    return secrets.compare_digest(given.encode(), expected.encode())


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _LoopbackServer
    timeout = 10.0  # a connection that never sends its request cannot hold the listener

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/callback":
            self._answer(404, "Not the login callback.")
            return
        params = {key: values[0] for key, values in parse_qs(url.query, keep_blank_values=True).items()}
        self.server.callback.params = params
        if not _same(params.get("state", ""), self.server.callback.state):
            self._answer(400, "Login failed: the answer does not belong to this login (state mismatch). "
                              "Run mlops-lite login again.")
        elif "error" in params:
            self._answer(400, f"Login failed: {params['error']}. You can close this window.")
        else:
            # The code is exchanged after this answer; the terminal says whether that worked.
            self._answer(200, "mlops-lite received the sign-in. The terminal says when the login is done; "
                              "you can close this window.")

    def _answer(self, status: int, message: str) -> None:
        body = f"<!doctype html><title>mlops-lite login</title><p>{html.escape(message)}</p>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request line holds the authorization code."""


class _LoopbackServer(HTTPServer):
    def __init__(self, callback: _Callback) -> None:
        super().__init__(("127.0.0.1", 0), _CallbackHandler)
        self.callback = callback


def _open(url: str) -> None:
    """Open ``url`` in a graphical browser where there is a display; never a console browser
    (lynx, w3m) that would take over an SSH session's terminal. The URL is printed anyway."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return
    with contextlib.suppress(webbrowser.Error):
        webbrowser.open(url)


def authorization_code(client: Client, provider: Provider, *, open_browser: bool = True,
                       timeout_s: float = LOGIN_TIMEOUT_S, say: Say = print) -> Tokens:
    """Authorization code with PKCE through a loopback redirect (RFC 8252, 7.3): the redirect
    URI is ``http://127.0.0.1:PORT/callback``; the listener takes the one callback request
    (anything else gets a 404) and stops. Unauthenticated on a refusal, a state mismatch, or
    no answer within ``timeout_s``."""
    if provider.authorization_endpoint is None:
        raise InvalidInput(f"the issuer {client.issuer} names no authorization_endpoint", field="issuer",
                           expected="an issuer that offers the authorization code grant (or use --device)")
    verifier, challenge = pkce_pair()
    callback = _Callback(state=secrets.token_urlsafe(32))
    nonce = secrets.token_urlsafe(32)
    with _LoopbackServer(callback) as server:
        redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/callback"
        query = urlencode({"response_type": "code", "client_id": client.client_id, "redirect_uri": redirect_uri,
                           "scope": client.scope, "state": callback.state, "nonce": nonce,
                           "code_challenge": challenge, "code_challenge_method": "S256"})
        separator = "&" if "?" in provider.authorization_endpoint else "?"
        url = f"{provider.authorization_endpoint}{separator}{query}"
        say(f"To log in, open this URL in a browser:\n\n    {url}\n")
        if open_browser:
            _open(url)
        deadline = time.monotonic() + timeout_s
        while callback.params is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Unauthenticated(f"login timed out: no answer reached {redirect_uri} within {timeout_s:g} s "
                                      f"(open the URL above, or use --device where no browser can reach "
                                      f"this machine)")
            server.timeout = min(left, 0.5)
            server.handle_request()
    params = callback.params
    if not _same(params.get("state", ""), callback.state):
        # Refused either way; an error answer is named (some providers leave state off a denial).
        said = f" and says {params['error']}" if "error" in params else ""
        raise Unauthenticated(f"login failed: the redirect's state does not match this login's (a forged or "
                              f"stale answer){said}; nothing was stored")
    if "error" in params:
        raise _refused("the login", _OAuthError(params["error"], params.get("error_description", "")))
    if not params.get("code"):
        raise Unauthenticated("login failed: the redirect carried no authorization code")
    try:
        tokens = _token_request(client, provider, {"grant_type": "authorization_code", "code": params["code"],
                                                   "redirect_uri": redirect_uri, "code_verifier": verifier})
    except _OAuthError as exc:
        raise _refused("the authorization code", exc) from exc
    claimed = claims(tokens.id_token).get("nonce") if tokens.id_token else None
    if claimed is not None and not _same(str(claimed), nonce):
        raise Unauthenticated("login failed: the ID token's nonce does not match this login's")
    return tokens


def device_code(client: Client, provider: Provider, *, open_browser: bool = False,
                timeout_s: float = LOGIN_TIMEOUT_S, say: Say = print) -> Tokens:
    """The device authorization grant (RFC 8628): print the verification URL and the user
    code, then poll the token endpoint at the interval the provider asks for (slower after
    ``slow_down``) until the user approves, denies, or the code expires."""
    import httpx

    if provider.device_authorization_endpoint is None:
        raise InvalidInput(f"the issuer {client.issuer} does not offer the device authorization grant (its "
                           f"discovery document names no device_authorization_endpoint)", field="device",
                           expected="login without --device (a browser on this machine), or --client-credentials")
    form = {"scope": client.scope}
    headers = _client_auth(client, form)
    try:
        with _http(client) as http:
            response = http.post(provider.device_authorization_endpoint, data=form, headers=headers)
        body = response.json()
    except httpx.HTTPError as exc:
        raise BackendUnavailable(f"cannot reach {provider.device_authorization_endpoint}: {exc}") from exc
    except ValueError as exc:
        raise BackendUnavailable("the device authorization endpoint did not answer JSON") from exc
    if response.status_code != 200 or not isinstance(body, dict) or "device_code" not in body:
        error = body if isinstance(body, dict) else {}
        raise _refused("the device authorization request",
                       _OAuthError(str(error.get("error", f"http_{response.status_code}")),
                                   str(error.get("error_description", ""))))
    uri = str(body.get("verification_uri_complete") or body.get("verification_uri", ""))
    say(f"To log in, open {body.get('verification_uri', uri)} and enter the code {body.get('user_code', '')}"
        + (f"\n(or open {uri})" if body.get("verification_uri_complete") else ""))
    if open_browser and uri:
        _open(uri)
    interval = _seconds(body.get("interval"), 5.0)
    deadline = time.monotonic() + min(_seconds(body.get("expires_in"), timeout_s), timeout_s)
    while True:
        time.sleep(interval)
        try:
            return _token_request(client, provider, {
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": str(body["device_code"])})
        except _OAuthError as exc:
            if exc.error == "slow_down":
                interval += 5
            elif exc.error != "authorization_pending":
                raise _refused("the device login", exc) from exc
        if time.monotonic() + interval > deadline:
            raise Unauthenticated("login timed out: the device code was not approved in time; "
                                  "run mlops-lite login --device again")


def _seconds(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and value > 0 else default


def client_credentials(client: Client, provider: Provider) -> Tokens:
    """The client credentials grant, for automation: the client's own identity, its secret
    from the environment variable ``client.secret_env``."""
    if client.secret_env is None:
        raise InvalidInput("the client credentials grant needs the client secret, from an environment variable",
                           field="client_secret_env", expected="--client-secret-env VAR")
    provider = discover(client)
    form = {"grant_type": "client_credentials"}
    if client.scope:
        form["scope"] = client.scope
    try:
        return _token_request(client, provider, form)
    except _OAuthError as exc:
        raise _refused("the client credentials", exc) from exc


# ------------------------------------------------------------------------------ JWT contents

def claims(token: str | None) -> dict[str, Any]:
    """A JWT's claims, read WITHOUT verifying its signature (display and expiry only); {}
    when ``token`` is not a JWT."""
    if not token or token.count(".") != 2:
        return {}
    payload = token.split(".")[1]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _expiry(token: str | None) -> float | None:
    exp = claims(token).get("exp")
    return float(exp) if isinstance(exp, int | float) else None


# ------------------------------------------------------------------------------ the stored login

@dataclass(frozen=True)
class Login:
    """What ``mlops-lite login`` stores for one issuer and client (its file is 0600)."""

    issuer: str
    client_id: str
    grant: str
    access_token: str
    access_token_expires_at: float | None
    token_endpoint: str
    refresh_token: str | None = None
    id_token: str | None = None
    id_token_expires_at: float | None = None
    scope: str | None = None
    revocation_endpoint: str | None = None
    client_secret_env: str | None = None
    obtained_at: float = field(default_factory=time.time)
    version: int = FORMAT_VERSION

    @classmethod
    def issued(cls, client: Client, provider: Provider, grant: str, tokens: Tokens,
               previous: Login | None = None) -> Login:
        """The login the provider's tokens make; a refresh keeps what the answer leaves out
        (a refresh token that was not rotated, the ID token when no new one came)."""
        id_token = tokens.id_token or (previous.id_token if previous else None)
        return cls(issuer=client.issuer, client_id=client.client_id, grant=grant,
                   access_token=tokens.access_token,
                   access_token_expires_at=tokens.expires_at or _expiry(tokens.access_token),
                   token_endpoint=provider.token_endpoint,
                   refresh_token=tokens.refresh_token or (previous.refresh_token if previous else None),
                   id_token=id_token, id_token_expires_at=_expiry(id_token),
                   scope=tokens.scope or client.scope, revocation_endpoint=provider.revocation_endpoint,
                   client_secret_env=client.secret_env)

    @property
    def bearer(self) -> str:
        """What mlops-lite is sent: a JWT access token, else the ID token (a JWT for this
        client), else the access token as it is."""
        if claims(self.access_token) or not self.id_token:
            return self.access_token
        return self.id_token

    @property
    def bearer_expires_at(self) -> float | None:
        return self.access_token_expires_at if self.bearer == self.access_token else self.id_token_expires_at

    def expires_within(self, seconds: float, *, now: float | None = None) -> bool:
        expires = self.bearer_expires_at
        return expires is not None and expires - (time.time() if now is None else now) < seconds

    @property
    def refreshable(self) -> bool:
        return self.refresh_token is not None or self.grant == "client_credentials"

    def client(self, verify: Any = True) -> Client:
        return Client(issuer=self.issuer, client_id=self.client_id, scope=self.scope or DEFAULT_SCOPE,
                      secret_env=self.client_secret_env, verify=verify)

    def provider(self) -> Provider:
        return Provider(issuer=self.issuer, token_endpoint=self.token_endpoint,
                        revocation_endpoint=self.revocation_endpoint)

    def identity(self) -> dict[str, Any]:
        """Who this login is, from the ID token's claims (or a JWT access token's): no secrets."""
        found = claims(self.id_token) or claims(self.access_token)
        shown = ("sub", "preferred_username", "name", "email", "groups", "roles", "aud")
        return {key: found[key] for key in shown if key in found}


def credentials_dir(home: Path) -> Path:
    return home / "credentials"


def login_path(home: Path, issuer: str, client_id: str) -> Path:
    """``<home>/credentials/<sha256 of issuer and client id>.json``."""
    digest = hashlib.sha256(f"{issuer.rstrip('/')}\n{client_id}".encode()).hexdigest()[:32]
    return credentials_dir(home) / f"{digest}.json"


def _private_dir(home: Path) -> Path:
    folder = credentials_dir(home)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)  # a client's home: login may come first
    folder.mkdir(exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    return folder


def save(home: Path, login: Login) -> Path:
    """Write the login atomically (a 0600 temporary file in the same folder, fsynced, renamed
    over the old one): a reader sees the old file or the new one, never a part."""
    folder = _private_dir(home)
    path = login_path(home, login.issuer, login.client_id)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".login-", suffix=".tmp")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(login), out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def load(path: Path) -> Login | None:
    """The login stored at ``path``; None when there is none."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise InvalidInput(f"the stored login {path} is not valid JSON: remove it and log in again",
                           field="credentials") from exc
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        raise InvalidInput(f"the stored login {path} has an unknown format: remove it and log in again",
                           field="credentials", expected=f"version {FORMAT_VERSION}")
    known = set(Login.__dataclass_fields__)
    return Login(**{key: value for key, value in data.items() if key in known})


def stored(home: Path) -> list[Login]:
    """Every login stored under the home, oldest first."""
    folder = credentials_dir(home)
    found = [load(path) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return sorted((login for login in found if login is not None), key=lambda login: login.obtained_at)


@contextlib.contextmanager
def _locked(home: Path, issuer: str, client_id: str) -> Iterator[None]:
    """An exclusive lock on one login across processes (while refreshing it)."""
    _private_dir(home)
    lock = login_path(home, issuer, client_id).with_suffix(".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def refreshed(home: Path, login: Login, *, verify: Any = True) -> Login:
    """The login with a fresh bearer, stored: a newer one another process stored meanwhile,
    else the refresh_token grant (or the client credentials grant again). Unauthenticated when
    the provider refuses or the login cannot be refreshed: then ``mlops-lite login`` again."""
    with _locked(home, login.issuer, login.client_id):
        current = load(login_path(home, login.issuer, login.client_id)) or login
        if current.bearer != login.bearer and not current.expires_within(REFRESH_MARGIN_S):
            return current
        client, provider = current.client(verify), current.provider()
        again = f"log in again: mlops-lite login --issuer {current.issuer} --client-id {current.client_id}"
        try:
            if current.grant == "client_credentials":
                tokens = _token_request(client, provider, {"grant_type": "client_credentials",
                                                           **({"scope": current.scope} if current.scope else {})})
            elif current.refresh_token is not None:
                tokens = _token_request(client, provider, {"grant_type": "refresh_token",
                                                           "refresh_token": current.refresh_token})
            else:
                raise Unauthenticated(f"the login at {current.issuer} expired and holds no refresh token: {again}")
        except _OAuthError as exc:
            raise Unauthenticated(f"refreshing the login at {current.issuer} was refused ({exc.error}): {again}") \
                from exc
        fresh = Login.issued(client, provider, current.grant, tokens, previous=current)
        save(home, fresh)
        return fresh


def revoke(login: Login, *, verify: Any = True) -> list[str]:
    """Revoke the login's tokens at the provider's revocation endpoint (RFC 7009), refresh token
    first; answers what could not be revoked (empty when all were, or nothing to do)."""
    import httpx

    if login.revocation_endpoint is None:
        return []
    client = login.client(verify)
    failed: list[str] = []
    for kind, token in (("refresh_token", login.refresh_token), ("access_token", login.access_token)):
        if token is None:
            continue
        form = {"token": token, "token_type_hint": kind}
        try:
            headers = _client_auth(client, form)
            with _http(client) as http:
                response = http.post(login.revocation_endpoint, data=form, headers=headers)
            if response.status_code != 200:
                failed.append(f"{kind} (HTTP {response.status_code})")
        except (httpx.HTTPError, InvalidInput) as exc:
            failed.append(f"{kind} ({type(exc).__name__})")
    return failed


def forget(home: Path, login: Login) -> None:
    """Delete the stored login (and its lock file)."""
    path = login_path(home, login.issuer, login.client_id)
    for stale in (path, path.with_suffix(".lock")):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


# ------------------------------------------------------------------------------ for the clients

class StoredLogin:
    """A stored login as ``RemotePlatform``'s token source: ``token()`` refreshes a bearer that
    expires within REFRESH_MARGIN_S first; ``refresh()`` always does (after a 401). Thread-safe."""

    def __init__(self, home: Path, login: Login, *, verify: Any = True) -> None:
        self._home = home
        self._login = login
        self._verify = verify
        self._lock = threading.Lock()

    @property
    def login(self) -> Login:
        return self._login

    def token(self) -> str:
        with self._lock:
            if self._login.expires_within(REFRESH_MARGIN_S) and self._login.refreshable:
                self._login = refreshed(self._home, self._login, verify=self._verify)
                if self._login.expires_within(0):  # a provider that renews no ID token on refresh
                    raise Unauthenticated(f"the login at {self._login.issuer} expired and refreshing it brought "
                                          f"no new ID token: log in again: mlops-lite login --issuer "
                                          f"{self._login.issuer} --client-id {self._login.client_id}")
            return self._login.bearer

    def refresh(self) -> str | None:
        with self._lock:
            if not self._login.refreshable:
                return None
            self._login = refreshed(self._home, self._login, verify=self._verify)
            return self._login.bearer


def one_login(home: Path, issuer: str | None, client_id: str | None) -> Login:
    """The stored login ``--issuer``/``--client-id`` name (either may be left out when only one
    stored login matches); NotFound or InvalidInput naming the choices otherwise."""
    logins = [login for login in stored(home)
              if (issuer is None or login.issuer.rstrip("/") == issuer.rstrip("/"))
              and (client_id is None or login.client_id == client_id)]
    if not logins:
        raise NotFound("no stored login" + (f" for {issuer}" if issuer else "") + ": run mlops-lite login")
    if len(logins) > 1:
        names = ", ".join(f"{login.issuer} ({login.client_id})" for login in logins)
        raise InvalidInput(f"several stored logins match: {names}", field="issuer",
                           expected="--issuer URL and --client-id ID naming one")
    return logins[0]

