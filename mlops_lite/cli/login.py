"""``mlops-lite login`` and ``mlops-lite logout``: an OpenID provider's tokens for the CLI, the
TUI and ``RemotePlatform``, the way cloud CLIs get them (mlops_lite/client/credentials.py).

The issuer and client come from ``--issuer``/``--client-id``, else from the ``[[oidc]]``
table of mlops-lite.toml (its ``client_id``, else its ``audience``). Prompts (the URL to
open, the device code) go to stderr as plain lines, never wrapped, so a terminal over SSH
can copy them; no token or secret is ever printed."""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops_lite.cli.common import JsonOption, line, load_settings, print_json
from mlops_lite.errors import InvalidInput

if TYPE_CHECKING:
    from mlops_lite.client.credentials import Client, Login
    from mlops_lite.config import OidcIssuer, Settings

Issuer = Annotated[str | None, typer.Option(
    "--issuer", help="The OpenID provider's issuer URL (default: the one [[oidc]] table of mlops-lite.toml).")]
ClientId = Annotated[str | None, typer.Option(
    "--client-id", help="The client registered at the provider for mlops-lite (default: its [[oidc]] table's).")]


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _configured(settings: Settings) -> list[tuple[str, str]]:
    """(issuer, client id) of every [[oidc]] table: its client_id, else its audience."""
    return [(entry.issuer, entry.client_id or entry.audience) for entry in settings.oidc]


def _client(settings: Settings, issuer: str | None, client_id: str | None, scope: str | None,
            secret_env: str | None) -> Client:
    from mlops_lite.client.credentials import DEFAULT_SCOPE, Client

    configured = _configured(settings)
    if issuer is None:
        if not configured:
            raise InvalidInput("no OpenID provider to log in to", field="issuer",
                               expected="--issuer URL --client-id ID, or an [[oidc]] table in mlops-lite.toml")
        if len(configured) > 1:
            raise InvalidInput("several OpenID providers are configured: "
                               + ", ".join(name for name, _ in configured), field="issuer",
                               expected="--issuer naming one of them")
        issuer = configured[0][0]
    entry = _entry(settings, issuer)
    if client_id is None:
        if entry is None:
            raise InvalidInput(f"no client id for {issuer}", field="client_id",
                               expected="--client-id ID, or client_id in its [[oidc]] table")
        client_id = entry.client_id or entry.audience
    if not issuer.startswith(("https://", "http://")):
        raise InvalidInput(f"bad issuer {issuer!r}", field="issuer", expected="a URL like https://idp.example.com")
    return Client(issuer=issuer.rstrip("/"), client_id=client_id, scope=DEFAULT_SCOPE if scope is None else scope,
                  secret_env=secret_env, verify=_verify(entry))


def _entry(settings: Settings, issuer: str) -> OidcIssuer | None:
    """The [[oidc]] table of ``issuer``, if it is configured."""
    return next((entry for entry in settings.oidc if entry.issuer.rstrip("/") == issuer.rstrip("/")), None)


def _verify(entry: OidcIssuer | None) -> str | bool:
    """What the provider's TLS certificate is verified against: its table's ca_bundle, else the
    system's roots."""
    return str(entry.ca_bundle) if entry is not None and entry.ca_bundle else True


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "unknown"
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _status(login: Login) -> dict[str, Any]:
    """What ``--status`` shows: who, which provider, until when. No token, no secret."""
    return {"issuer": login.issuer, "client_id": login.client_id, "grant": login.grant,
            "identity": login.identity(), "expires_at": _when(login.bearer_expires_at),
            "expired": login.expires_within(0), "refreshable": login.refreshable, "scope": login.scope}


def _who(login: Login) -> str:
    who = login.identity()
    name = who.get("preferred_username") or who.get("email") or who.get("name")
    subject = who.get("sub", login.client_id)
    return f"{name} ({subject})" if name and name != subject else str(subject)


def login(issuer: Issuer = None, client_id: ClientId = None,
          scope: Annotated[str | None, typer.Option(
              help="Scopes to ask for (default: 'openid profile email', and offline_access where offered).")]
          = None,
          device: Annotated[bool, typer.Option(
              "--device", help="The device code grant: open a URL on any device and enter a code.")] = False,
          client_credentials: Annotated[bool, typer.Option(
              "--client-credentials", help="Log in as the client itself (automation); needs --client-secret-env.")]
          = False,
          client_secret_env: Annotated[str | None, typer.Option(
              "--client-secret-env", metavar="VAR",
              help="The environment variable holding the client secret (never pass a secret as an argument).")]
          = None,
          no_browser: Annotated[bool, typer.Option(
              "--no-browser", help="Only print the URL to open (always printed).")] = False,
          timeout: Annotated[float, typer.Option(help="Seconds to wait for the provider's answer.", min=1)] = 300.0,
          status: Annotated[bool, typer.Option(
              "--status", help="Show who you are logged in as and until when (no secrets).")] = False,
          as_json: JsonOption = False) -> None:
    """Log in with your organisation's OpenID provider (PKCE in a browser, a device code, or
    client credentials); the tokens are kept 0600 in the home, refreshed when they expire."""
    from mlops_lite.client import credentials

    settings = load_settings()
    if status:
        _show_status(settings, issuer, client_id, as_json)
        return
    if device and client_credentials:
        raise InvalidInput("--device and --client-credentials are two different grants", field="device",
                           expected="one of them")
    client = _client(settings, issuer, client_id, scope, client_secret_env)
    provider = credentials.discover(client)
    if scope is None:  # the client credentials grant asks for no OpenID scopes: it has no user
        client = dataclasses.replace(client, scope="" if client_credentials else provider.default_scope)
    if client_credentials:
        grant, tokens = "client_credentials", credentials.client_credentials(client, provider)
    elif device:
        grant = "device_code"
        tokens = credentials.device_code(client, provider, open_browser=not no_browser, timeout_s=timeout, say=_say)
    else:
        grant = "authorization_code"
        tokens = credentials.authorization_code(client, provider, open_browser=not no_browser, timeout_s=timeout, say=_say)
    stored = credentials.Login.issued(client, provider, grant, tokens)
    path = credentials.save(settings.home, stored)
    if as_json:
        print_json({**_status(stored), "file": str(path)})
        return
    line(f"Logged in to {stored.issuer} as {_who(stored)}; expires {_when(stored.bearer_expires_at)} "
         f"({'refreshed automatically' if stored.refreshable else 'log in again then'}). Kept in {path}.")


def _show_status(settings: Settings, issuer: str | None, client_id: str | None, as_json: bool) -> None:
    from mlops_lite.client import credentials

    logins = [one for one in credentials.stored(settings.home)
              if (issuer is None or one.issuer.rstrip("/") == issuer.rstrip("/"))
              and (client_id is None or one.client_id == client_id)]
    if as_json:
        print_json([_status(one) for one in logins])
        return
    if not logins:
        line("Not logged in" + (f" to {issuer}" if issuer else "") + ": run `mlops-lite login`.")
        raise typer.Exit(1)
    for one in logins:
        shown = _status(one)
        state = "expired" if shown["expired"] else "expires"
        line(f"Logged in to {one.issuer} (client {one.client_id}, {one.grant}) as {_who(one)}; "
             f"{state} {shown['expires_at']}{'' if one.refreshable else ', not refreshable'}.")
        groups = shown["identity"].get("groups")
        if groups:
            line(f"  groups: {', '.join(map(str, groups))}")


def logout(issuer: Issuer = None, client_id: ClientId = None) -> None:
    """Forget a stored login: its tokens are revoked at the provider where it offers a
    revocation endpoint, and the file is deleted."""
    from mlops_lite.client import credentials

    settings = load_settings()
    stored = credentials.one_login(settings.home, issuer, client_id)
    failed = credentials.revoke(stored, verify=_verify(_entry(settings, stored.issuer)))
    credentials.forget(settings.home, stored)
    revoked = ("revoked at the provider" if stored.revocation_endpoint and not failed
               else "the provider offers no revocation" if not stored.revocation_endpoint
               else f"not revoked at the provider: {', '.join(failed)}")
    line(f"Logged out of {stored.issuer} (client {stored.client_id}); tokens {revoked}.")
