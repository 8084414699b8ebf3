"""``mlops-lite cert ...``: the TLS material of the home (docs/tls.md).

``issue`` signs a client certificate for mutual TLS (a worker, a serving replica) with
the home's CA; ``show`` says what a certificate holds; ``renew`` issues the server
certificate again, which a running server serves to new connections without a restart.
They work on the files of the home, with or without a running daemon."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from mlops_lite.cli.common import JsonOption, group, line, load_settings
from mlops_lite.errors import Conflict

app = group("TLS certificates: issue client certificates, show, renew the server's (docs/tls.md).")


@app.command()
def issue(for_: Annotated[str, typer.Option("--for", help="worker | replica | user | service.")],
          out: Annotated[Path, typer.Option(help="Folder to write NAME.crt, NAME.key (0600) and ca.crt into.")],
          name: Annotated[str | None, typer.Option(help="The certificate's common name (default: FOR-HOST).")]
          = None,
          force: Annotated[bool, typer.Option(help="Replace NAME.crt and NAME.key if they exist.")] = False,
          as_json: JsonOption = False) -> None:
    """A client certificate signed by the home's CA, for mutual TLS (`tls_client_auth`).

    Give the folder to the worker or replica host and point it at the files:
    MLOPS_LITE_TLS_CLIENT_CERT, MLOPS_LITE_TLS_CLIENT_KEY and MLOPS_LITE_CA_BUNDLE."""
    from mlops_lite.security.tls import issue_client_certificate, load_ca

    settings = load_settings()
    name = name or _default_name(for_)
    cert_file, key_file = out / f"{name}.crt", out / f"{name}.key"
    if not force and (cert_file.exists() or key_file.exists()):
        raise Conflict(f"{cert_file} or {key_file} exists already: pass --force to replace them")
    ca = load_ca(settings.tls_ca_file, settings.tls_ca_key_file)
    info = issue_client_certificate(ca, cert_file, key_file, for_=for_, name=name)
    bundle = out / "ca.crt"
    if bundle.resolve() != settings.tls_ca_file.resolve():
        shutil.copyfile(settings.tls_ca_file, bundle)
    if as_json:
        _print_json({"certificate": dataclasses.asdict(info), "key": str(key_file), "ca_bundle": str(bundle)})
        return
    line(f"issued    {cert_file} ({info.subject}; serial {info.serial:x}, valid until {info.not_after:%Y-%m-%d})")
    line(f"key       {key_file} (mode 0600)")
    line(f"CA        {bundle}")
    line("use it    MLOPS_LITE_TLS_CLIENT_CERT=" + str(cert_file) + " MLOPS_LITE_TLS_CLIENT_KEY=" + str(key_file)
         + " MLOPS_LITE_CA_BUNDLE=" + str(bundle))


@app.command()
def show(file: Annotated[Path | None, typer.Argument(help="A PEM certificate (default: the server's).")] = None,
         ca: Annotated[bool, typer.Option("--ca", help="Show the CA certificate instead.")] = False,
         as_json: JsonOption = False) -> None:
    """Subject, issuer, serial, validity and names of a certificate."""
    from mlops_lite.security.tls import certificate_info

    settings = load_settings()
    info = certificate_info(file or (settings.tls_ca_file if ca else settings.tls_cert_file))
    if as_json:
        _print_json(info)
        return
    line(f"file      {info.path}")
    line(f"subject   {info.subject}")
    line(f"issuer    {info.issuer}")
    line(f"serial    {info.serial:x}")
    line(f"valid     {info.not_before:%Y-%m-%d %H:%M} to {info.not_after:%Y-%m-%d %H:%M} UTC")
    if info.names:
        line(f"names     {', '.join(info.names)}")
    line(f"for       {'a certificate authority' if info.is_ca else ', '.join(info.usages) or '-'}")


@app.command()
def renew(as_json: JsonOption = False) -> None:
    """Issue the server certificate again (with the current `tls_names`). A running `up` or
    `serve` serves it to new connections within a second, without a restart; open
    connections finish on the old one."""
    from mlops_lite.security.tls import ensure_server_certificate

    settings = load_settings()
    if settings.tls_cert is not None:
        raise Conflict(f"tls_cert names your own certificate ({settings.tls_cert}): renew it where it was issued; "
                       "a running server reloads it when the file changes")
    material = ensure_server_certificate(settings, renew=True)
    if as_json:
        _print_json(material)
        return
    server = material.server
    line(f"renewed   {server.path} (serial {server.serial:x}, valid until {server.not_after:%Y-%m-%d}; "
         f"names {', '.join(server.names)})")


def _print_json(value: object) -> None:
    """JSON of records holding paths and times (as text; serials as integers)."""
    plain = dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value
    sys.stdout.write(json.dumps(plain, indent=2, default=str) + "\n")


def _default_name(for_: str) -> str:
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname().split(".")[0])[:40] or "host"
    return f"{for_}-{host}"
