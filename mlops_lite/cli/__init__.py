"""The ``mlops-lite`` command. The one core package that may import the shells (server,
flows, tui), and only lazily, inside the commands that need them.

One module per command group; every command gets its platform from
``common.platform()`` (``mlops_lite.connect()``), so it works the same on the local
home and through a running ``mlops-lite up``. Importing the package loads typer and rich
only (tests/unit/test_cli_startup.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from mlops_lite.cli import (
    alerts,
    audit,
    cert,
    ci,
    compliance,
    daemon,
    data,
    demo,
    deploy,
    features,
    keys,
    login,
    models,
    privacy,
    sql,
    systemd,
    tokens,
    train,
)
from mlops_lite.cli.common import OPTIONS, err
from mlops_lite.errors import InvalidInput, MlopsLiteError

__all__ = ["app", "main"]

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  help="mlops-lite: versioned data, tracked training, a governed registry and ONNX serving.")


@app.callback()
def _root(home: Annotated[Path | None, typer.Option(
              help="The home folder (default: $MLOPS_LITE_HOME or ~/.mlops-lite).")] = None,
          verbose: Annotated[bool, typer.Option(
              "-v", "--verbose", help="Say on stderr where the command ran (the daemon, or the local home).")]
          = False) -> None:
    if home is not None:
        os.environ["MLOPS_LITE_HOME"] = str(home.expanduser().resolve())
    OPTIONS.verbose = verbose


app.command()(daemon.init)
app.command()(demo.demo)
app.command()(daemon.up)
app.command()(daemon.worker)
app.command()(daemon.serve)
app.command()(daemon.tui)
app.command()(daemon.status)
app.command()(train.train)
app.command()(login.login)
app.command()(login.logout)
app.add_typer(tokens.access_key_app, name="access-key")
app.add_typer(tokens.token_app, name="token")
app.add_typer(deploy.app, name="deploy")
app.command("trace")(deploy.trace)
app.add_typer(models.app, name="models")
app.command()(sql.sql)
app.add_typer(audit.app, name="audit")
app.add_typer(alerts.app, name="alerts")
app.add_typer(data.app, name="data")
app.add_typer(cert.app, name="cert")
app.add_typer(keys.app, name="keys")
app.add_typer(privacy.app, name="privacy")
app.add_typer(compliance.app, name="compliance")
app.add_typer(systemd.app, name="service")
app.add_typer(ci.app, name="ci")
app.add_typer(features.app, name="features")


def main() -> None:
    """Entry point: errors of the tree print as one line and exit 1, no traceback."""
    try:
        app()
    except MlopsLiteError as exc:
        # A Text, not a markup string: a message may hold '[' (paths, lists) or ':name:'.
        message = str(exc.message)
        if isinstance(exc, InvalidInput) and exc.expected and exc.expected not in message:
            message += f" (expected {exc.expected})"
        err.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)
        sys.exit(1)
