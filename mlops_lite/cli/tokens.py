"""``mlops-lite token ...`` and ``mlops-lite access-key ...``: the identities that call the API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mlops_lite.cli.common import (
    Connection,
    JsonOption,
    connection,
    group,
    line,
    platform,
    print_json,
    print_table,
    table,
)

token_app = group("Bearer tokens: create, list, revoke (through the daemon when `up` runs).")
access_key_app = group("Access keys for lakeFS clients (HTTP Basic against `mlops-lite up`'s /api/v1).")

def _tokens(found: Connection) -> Any:
    """The tokens facet. ``actor=`` is off its Protocol (mlops_lite/api/tokens.py): in-process
    the CLI names itself; over HTTP the server records the caller's token."""
    return found.platform.tokens


Role = Annotated[str, typer.Option(help="viewer | operator | approver | admin.")]


@access_key_app.command("create")
def access_key_create(name: Annotated[str, typer.Option(help="Who or what the key is for.")], role: Role,
                      as_json: JsonOption = False) -> None:
    """Create an access key (id + secret) for a lakeFS client; the secret is shown once."""
    with connection() as found:
        identity, key_id, secret = _tokens(found).create_access_key(name, role, actor=found.actor)
        url = found.url or found.settings.server_url
    if as_json:
        print_json({"name": identity.name, "role": identity.role, "access_key_id": key_id,
                    "secret_access_key": secret, "endpoint": f"{url}/api/v1"})
        return
    line(f"access key for {identity.name} (role {identity.role})")
    line(f"  access key id      {key_id}")
    line(f"  secret access key  {secret}")
    line(f"The secret is shown only now. lakeFS clients: endpoint {url}/api/v1 (run `mlops-lite up`).")


@token_app.command("create")
def token_create(name: Annotated[str, typer.Option(help="Who or what the token is for.")], role: Role,
                 as_json: JsonOption = False) -> None:
    """Create a bearer token; its secret is shown once."""
    with connection() as found:
        identity, secret = _tokens(found).create(name, role, actor=found.actor)
    if as_json:
        print_json({"id": identity.token_id, "name": identity.name, "role": identity.role, "token": secret})
        return
    line(f"token {identity.token_id} for {identity.name} (role {identity.role}): {secret}")
    line("The secret is shown only now.")


@token_app.command("list")
def token_list(as_json: JsonOption = False) -> None:
    """Every token and access key (never a secret)."""
    with platform() as p:
        records = p.tokens.list()
    if as_json:
        print_json(records)
        return
    out = table("id", "name", "role", "kind", "created", "revoked")
    for r in records:
        out.add_row(r.id, r.name, r.role, "access key" if r.access_key_id else "token",
                    f"{r.created_at:%Y-%m-%d %H:%M}", "yes" if r.revoked else "")
    print_table(out)


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="The token's id (see `token list`).")]) -> None:
    """Revoke a token or access key: refused at once by the daemon, by serving workers within 30 s."""
    with connection() as found:
        record = _tokens(found).revoke(token_id, actor=found.actor)
    line(f"revoked {record.id} ({record.name}, role {record.role})")
