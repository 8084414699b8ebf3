"""What every command shares: the one way to get a platform (``platform()``), the
global options, and the output helpers (plain lines, JSON, tables).

Importing this module stays light (typer and rich): the settings, the stores and the
HTTP client load inside the functions, when a command runs."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mlops_lite.daemon import DaemonInfo, read_daemon
from mlops_lite.errors import InvalidInput, NotFound, StoreLocked

if TYPE_CHECKING:
    from mlops_lite.api import PlatformAPI
    from mlops_lite.config import Settings
    from mlops_lite.home import InitResult
    from mlops_lite.platform import Platform

console = Console(soft_wrap=True)
err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def group(help_text: str) -> typer.Typer:
    """A command group, as every group of the CLI is built."""
    return typer.Typer(no_args_is_help=True, rich_markup_mode=None, help=help_text)


# ------------------------------------------------------------------------------ global options

@dataclasses.dataclass
class Options:
    """What the root command's options set for the command that runs."""

    verbose: bool = False


OPTIONS = Options()


# ------------------------------------------------------------------------------ settings, home

# The settings (pydantic-settings), the stores (SQLAlchemy, DuckDB, pyarrow) and the HTTP
# client cost most of a second to import. These load them when a command runs, so that
# `--help` or a usage error does not pay for them.
def load_settings(**overrides: Any) -> Settings:
    from mlops_lite.config import load_settings as load

    return load(**overrides)


def init_home(settings: Settings, *, encryption: bool | None = None) -> InitResult:
    from mlops_lite.home import init_home as init

    return init(settings, encryption=encryption)


def read_admin_token(settings: Settings) -> str | None:
    from mlops_lite.home import read_admin_token as read

    return read(settings)


def apply_prefect_environment(settings: Settings) -> None:
    from mlops_lite.config import apply_prefect_environment as apply

    apply(settings)


def refuse_beside_daemon(settings: Settings, what: str) -> None:
    """Raise StoreLocked, naming the daemon, when one owns the home: for the commands that
    must hold the stores themselves. ``what`` completes "... needs the stores in this
    process" with why, e.g. "`mlops-lite demo` runs its own server over them"."""
    running = read_daemon(settings.daemon_file)
    if running is not None:
        raise StoreLocked(f"{what}, and the mlops-lite daemon (pid {running.pid}, {running.url}) owns the stores "
                          f"in {settings.home}: stop it first", pid=running.pid, url=running.url)


def own_stores(settings: Settings, *, actor: str) -> Platform:
    """The embedded stores opened in this process, for the commands that own them while they
    run (demo, up, serve without a control plane); StoreLocked names any other owner.
    The process's umask becomes 077: the files its libraries write in the home (DuckDB's
    write-ahead log, the Prefect server's database) are the owner's alone."""
    from mlops_lite.platform import open_local
    from mlops_lite.privacy.home import private_umask

    private_umask()
    return open_local(settings, actor=actor)


# ------------------------------------------------------------------------------ the platform

@dataclasses.dataclass(frozen=True)
class Connection:
    """A platform and where it runs: in this process over the home's stores, or over HTTP
    to the daemon that owns them (or to ``MLOPS_LITE_URL``)."""

    platform: PlatformAPI
    settings: Settings
    daemon: DaemonInfo | None
    """The daemon of the home, when the platform is its client."""

    @property
    def url(self) -> str | None:
        """The API the platform calls; None in-process."""
        return str(cast(Any, self.platform).url) if self.platform.remote else None

    @property
    def source(self) -> str:
        """``remote: URL`` or ``local: HOME`` (status and the dashboard show it)."""
        return f"remote: {self.url}" if self.url else f"local: {self.settings.home}"

    @property
    def actor(self) -> str:
        """Who the CLI acts as, for the verbs that take ``actor=`` off their Protocol: the
        platform's actor in-process; over HTTP the server records the caller's token."""
        return str(getattr(self.platform, "actor", "cli"))

    def where(self) -> str:
        """The sentence ``-v`` prints."""
        if self.url is None:
            return f"ran on the local home {self.settings.home}"
        if self.daemon is not None:
            return f"ran against the daemon at {self.url} (pid {self.daemon.pid})"
        return f"ran against mlops-lite at {self.url}"


@contextmanager
def connection(*, initialised: bool = False) -> Iterator[Connection]:
    """The platform, wherever it runs (``mlops_lite.connect()``): the daemon's client when
    one owns the home, ``MLOPS_LITE_URL`` when set, else the embedded stores here. Closed
    on the way out; with ``-v``, where it ran goes to stderr then.

    ``initialised``: in-process, refuse a home that ``init`` has not made (rather than
    creating one), naming the command to run."""
    from mlops_lite.connection import connect

    settings = load_settings()
    running = None if settings.url else read_daemon(settings.daemon_file)
    if initialised and running is None and not settings.url and not settings.initialised:
        raise NotFound(f"nothing at {settings.home} yet: run `mlops-lite init` (or `mlops-lite demo`)")
    platform = cast("PlatformAPI", connect())
    found = Connection(platform, settings, running if platform.remote else None)
    try:
        yield found
    finally:
        platform.close()
        if OPTIONS.verbose:
            err.print(Text(found.where()), highlight=False)


@contextmanager
def platform() -> Iterator[PlatformAPI]:
    """The platform every command works through (see ``connection``)."""
    with connection() as found:
        yield found.platform


# ------------------------------------------------------------------------------ parsing

def model_ref(value: str) -> tuple[str, str]:
    model, sep, ref = value.partition("@")
    if not sep or not model or not ref:
        raise InvalidInput(f"bad model reference {value!r}", field="model",
                           expected="NAME@VERSION or NAME@ALIAS, e.g. loan-default@production")
    return model, ref


def moment(value: str | None, field: str = "at") -> datetime | None:
    """An ISO time from the command line (UTC when it names no offset)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"bad time {value!r}", field=field, expected="an ISO time like 2026-03-03T12:00") \
            from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def pairs(values: list[str] | None, what: str, expected: str) -> dict[str, str]:
    """``k=v`` options as a dict (for --rule the last '=' splits, so a glob may hold one)."""
    out: dict[str, str] = {}
    for value in values or ():
        key, sep, rest = value.rpartition("=") if what == "rule" else value.partition("=")
        if not sep or not key:
            raise InvalidInput(f"bad --{what} {value!r}", field=what, expected=expected)
        out[key] = rest
    return out


# ------------------------------------------------------------------------------ output

def line(text: str) -> None:
    """A plain line on stdout: no markup, no highlighting, no emoji codes."""
    console.print(Text(text), highlight=False)


def jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(value), indent=2) + "\n")
    sys.stdout.flush()


def short(commit: str | None) -> str:
    return commit[:12] if commit else "-"


def table(*headers: str) -> Table:
    out = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for header in headers:
        out.add_column(header, overflow="fold")
    return out


def print_table(out: Table) -> None:
    """Print a table; to a file or pipe, at its natural width rather than folded into 80 columns."""
    if console.is_terminal:
        console.print(out)
        return
    width = max(80, console.measure(out, options=console.options.update_width(10_000)).maximum)
    Console(width=width, soft_wrap=True, highlight=False, force_terminal=False).print(out)
