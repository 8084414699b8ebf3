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


Role = Annotated[str, typer.Option(help="predictor | viewer | operator | approver | admin.")]
Grants = Annotated[list[str] | None, typer.Option(
    "--grant", help="A role on some models or data repositories beyond --role: ROLE:model:GLOB or "
                    "ROLE:repo:GLOB (e.g. operator:model:teamA-*). Repeat for more.")]
ExpiresIn = Annotated[str | None, typer.Option(
    "--expires-in", help="Refused after this long: 90s, 30m, 12h, 30d, 2w (default: never).")]


def _options(grants: list[str] | None, expires_in: str | None) -> dict[str, Any]:
    from mlops_lite.security.roles import parse_grant
    from mlops_lite.security.tokens import parse_duration

    return {"grants": [parse_grant(g) for g in grants or ()],
            "expires_in": None if expires_in is None else parse_duration(expires_in)}


def _described(grants: Any) -> str:
    return ", ".join(f"{g.role}:model:{g.models}" if g.models is not None else f"{g.role}:repo:{g.repositories}"
                     for g in grants)


@access_key_app.command("create")
def access_key_create(name: Annotated[str, typer.Option(help="Who or what the key is for.")], role: Role,
                      grant: Grants = None, expires_in: ExpiresIn = None, as_json: JsonOption = False) -> None:
    """Create an access key (id + secret) for a lakeFS client; the secret is shown once."""
    options = _options(grant, expires_in)
    with connection() as found:
        identity, key_id, secret = _tokens(found).create_access_key(name, role, **options, actor=found.actor)
        url = found.url or found.settings.server_url
    if as_json:
        print_json({"name": identity.name, "role": identity.role, "grants": identity.grants,
                    "access_key_id": key_id, "secret_access_key": secret, "endpoint": f"{url}/api/v1"})
        return
    granted = f"; grants {_described(identity.grants)}" if identity.grants else ""
    line(f"access key for {identity.name} (role {identity.role}{granted})")
    line(f"  access key id      {key_id}")
    line(f"  secret access key  {secret}")
    line(f"The secret is shown only now. lakeFS clients: endpoint {url}/api/v1 (run `mlops-lite up`).")


@token_app.command("create")
def token_create(name: Annotated[str, typer.Option(help="Who or what the token is for.")],
                 role: Annotated[str | None, typer.Option(
                     help="predictor | viewer | operator | approver | admin (with --service: the service's).")] = None,
                 service: Annotated[str | None, typer.Option(
                     help="worker | replica: a service identity (kind service) with that service's narrowest "
                          "role: operator for a Prefect worker, predictor for a serving replica.")] = None,
                 grant: Grants = None, expires_in: ExpiresIn = None, as_json: JsonOption = False) -> None:
    """Create a bearer token; its secret is shown once. Its role and grants are its whole scope."""
    from mlops_lite.errors import InvalidInput

    options = _options(grant, expires_in)
    if service is not None:
        from mlops_lite.security.service import service_role

        role = role or service_role(service)
        options["service"] = service
    if role is None:
        raise InvalidInput("a token needs --role (or --service worker|replica)", field="role",
                           expected="predictor | viewer | operator | approver | admin")
    with connection() as found:
        identity, secret = _tokens(found).create(name, role, **options, actor=found.actor)
    if as_json:
        print_json({"id": identity.token_id, "name": identity.name, "role": identity.role, "kind": identity.kind,
                    "grants": identity.grants, "token": secret})
        return
    granted = f"; grants {_described(identity.grants)}" if identity.grants else ""
    kind = f"{service} service identity " if service is not None else ""
    line(f"token {identity.token_id} for {kind}{identity.name} (role {identity.role}{granted}): {secret}")
    line("The secret is shown only now.")


@token_app.command("list")
def token_list(as_json: JsonOption = False) -> None:
    """Every token and access key (never a secret)."""
    with platform() as p:
        records = p.tokens.list()
    if as_json:
        print_json(records)
        return
    out = table("id", "name", "role", "grants", "kind", "created", "expires", "revoked")
    for r in records:
        kind = "access key" if r.access_key_id else f"service ({r.service})" if r.service else "token"
        out.add_row(r.id, r.name, r.role, _described(r.grants), kind,
                    f"{r.created_at:%Y-%m-%d %H:%M}", f"{r.expires_at:%Y-%m-%d %H:%M}" if r.expires_at else "",
                    "yes" if r.revoked else "")
    print_table(out)


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="The token's id (see `token list`).")]) -> None:
    """Revoke a token or access key: refused at once by the daemon, by serving workers within 30 s."""
    with connection() as found:
        record = _tokens(found).revoke(token_id, actor=found.actor)
    line(f"revoked {record.id} ({record.name}, role {record.role})")
