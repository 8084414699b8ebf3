"""What a flow run may be asked to do: its parameters, checked before any task runs.

A flow run can be started by anyone who reaches the Prefect API (its UI's Run button,
``prefect deployment run``, a script), with any parameters, and it runs with the rights of
the process that executes it: the daemon, or a worker's service identity. So every flow
calls ``check_flow_params`` first, and a run asked for something it must not do fails at
once, with ``InvalidInput`` naming the parameter, having changed nothing:

- ``source`` (a file the run reads and ingests): only inside the home's ``inbox/``, the
  bundled sample data, or a folder of the ``ingest_dirs`` setting, after symbolic links
  are followed; ``/etc/passwd`` or another home's keys are refused;
- ``home``: where a Platform is bound in this process (the daemon, the demo), one of those
  homes, else an initialised home or, on a worker (``MLOPS_LITE_URL`` set), any: there it
  only names the daemon's;
- names (``repository``, ``deployment``, ``model``), refs (``ref``, ``branch``), object
  paths (``path``), versions, run ids, algorithms, the task runner and every number, by the
  rules the core applies to them later.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

from mlops_lite.config import Settings
from mlops_lite.data.context import check_path, check_ref_name, check_repository_name
from mlops_lite.errors import InvalidInput
from mlops_lite.inference.deployments import DEPLOYMENT_NAME
from mlops_lite.registry.models import check_model_name
from mlops_lite.registry.semver import parse as parse_version
from mlops_lite.training.classifier import ALGORITHMS

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_COLUMN = re.compile(r"^[^\x00-\x1f\x7f]{1,256}$")
_TEXT_MAX = 4096
TASK_RUNNERS = ("threads", "dask")
# A parameter's rule: raises InvalidInput naming the field; what it answers is ignored.
Check = Callable[[Any, str], object]


def sample_data_dir() -> Path:
    """The bundled sample data's folder (``MLOPS_LITE_SAMPLE_DATA`` when set), resolved."""
    folder = os.environ.get("MLOPS_LITE_SAMPLE_DATA")
    return Path(folder or str(files("mlops_lite") / "sample_data")).expanduser().resolve()


def allowed_source_dirs(settings: Settings) -> list[Path]:
    """The folders a flow run may read a ``source`` file from, resolved."""
    return [settings.inbox.resolve(), sample_data_dir(), *(Path(d).resolve() for d in settings.ingest_dirs)]


def check_source(source: Any, settings: Settings, field: str = "source") -> Path:
    """``source`` as a resolved path inside ``allowed_source_dirs``; InvalidInput otherwise.
    Whether the file exists is the ingest's to say."""
    if isinstance(source, Path):
        source = str(source)
    if not isinstance(source, str) or not source.strip() or "\x00" in source or len(source) > _TEXT_MAX:
        raise InvalidInput(f"{field} must be a file path", field=field, expected="a path to a CSV or Parquet file")
    resolved = Path(source).expanduser().resolve()
    allowed = allowed_source_dirs(settings)
    if not any(resolved.is_relative_to(folder) for folder in allowed):
        raise InvalidInput(
            f"{field} {source!r} is outside the folders flow runs may read: put the file in {settings.inbox} "
            f"or add its folder to ingest_dirs in {settings.config_file.name}", field=field,
            expected="a file under " + " | ".join(str(folder) for folder in allowed))
    return resolved


def check_home(home: Any, *, bound: Iterable[str], settings: Settings | None) -> str:
    """``home`` as a flow run may name it (see the module's docstring)."""
    if not isinstance(home, str) or not home or "\x00" in home or len(home) > _TEXT_MAX:
        raise InvalidInput("home must be the path of an mlops-lite home", field="home", expected="a path")
    homes = [str(Path(h).expanduser().resolve()) for h in bound]
    asked = str(Path(home).expanduser().resolve())
    if homes:
        if asked not in homes:
            raise InvalidInput(f"home {home!r} is not the home this process serves", field="home",
                               expected=" | ".join(homes))
        return home
    if os.environ.get("MLOPS_LITE_URL") or (settings is not None and settings.url):
        return home  # a worker: the home only names the daemon's; every task goes over HTTP
    if settings is None or not settings.config_file.is_file():
        raise InvalidInput(f"home {home!r} is not an initialised mlops-lite home", field="home",
                           expected="a folder made by `mlops-lite init`")
    return home


def _text(value: Any, field: str, *, optional: bool = False, limit: int = _TEXT_MAX) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or "\x00" in value or len(value) > limit:
        raise InvalidInput(f"{field} must be text of at most {limit} characters", field=field, expected="text")


def _deployment(value: Any, field: str) -> None:
    if not isinstance(value, str) or not DEPLOYMENT_NAME.match(value):
        raise InvalidInput(f"bad deployment name {value!r}", field=field,
                           expected="1-63 characters: lowercase letters, digits, '_' and '-'")


def _model(value: Any, field: str) -> None:
    if not isinstance(value, str):
        raise InvalidInput(f"bad model name {value!r}", field=field, expected="a model name")
    check_model_name(value)


def _version(value: Any, field: str) -> None:
    if not isinstance(value, str):
        raise InvalidInput(f"bad version {value!r}", field=field, expected="MAJOR.MINOR.PATCH")
    try:
        parse_version(value)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field=field, expected=exc.expected) from None


def _run_id(value: Any, field: str) -> None:
    if not isinstance(value, str) or not _RUN_ID.match(value):
        raise InvalidInput(f"bad run id {value!r}", field=field, expected="a run id (letters, digits, '_', '-')")


def _algorithm(value: Any, field: str) -> None:
    if value is not None and value not in ALGORITHMS:
        raise InvalidInput(f"unknown algorithm {value!r}", field=field, expected=" | ".join(ALGORITHMS))


def _columns(value: Any, field: str) -> None:
    if value is None:
        return
    if not isinstance(value, (list, tuple)) or len(value) > 1000 or not all(
            isinstance(c, str) and _COLUMN.match(c) for c in value):
        raise InvalidInput(f"{field} must be a list of column names", field=field, expected="a list of column names")


def _column(value: Any, field: str) -> None:
    if value is not None and not (isinstance(value, str) and _COLUMN.match(value)):
        raise InvalidInput(f"{field} must be a column name", field=field, expected="a column name")


def _params(value: Any, field: str) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or not all(isinstance(k, str) and _COLUMN.match(k) for k in value):
        raise InvalidInput(f"{field} must be a table of parameters", field=field, expected="{name: value}")


def _grid(value: Any, field: str) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not 1 <= len(value) <= 100:
        raise InvalidInput(f"{field} must be a list of 1 to 100 parameter tables", field=field,
                           expected="[{name: value}, ...]")
    for point in value:
        _params(point, field)


def _number(low: float, high: float, *, integer: bool = False) -> Check:
    def checked(value: Any, field: str) -> None:
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value) \
                or not low <= value <= high:
            raise InvalidInput(f"{field} must be a number from {low:g} to {high:g}, got {value!r}", field=field,
                               expected=f"{low:g} <= {field} <= {high:g}")
    return checked


def _time(value: Any, field: str) -> None:
    if value is None:
        return
    try:
        datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{field} must be an ISO 8601 time, got {value!r}", field=field,
                           expected="e.g. 2026-12-04T10:00:00+00:00") from None


def _task_runner(value: Any, field: str) -> None:
    if value not in TASK_RUNNERS:
        raise InvalidInput(f"unknown task runner {value!r}", field=field, expected=" | ".join(TASK_RUNNERS))


def _feature_service(value: Any, field: str) -> None:
    if not isinstance(value, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$", value):
        raise InvalidInput(f"bad feature service name {value!r}", field=field,
                           expected="a name of letters, digits, '_' and '-' (not starting with a digit), at most 63")


def _names(value: Any, field: str) -> None:
    if value is None:
        return
    if not isinstance(value, (list, tuple)) or len(value) > 1000 or not all(
            isinstance(v, str) and re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", v) for v in value):
        raise InvalidInput(f"{field} must be a list of feature view names", field=field,
                           expected="a list of names of letters, digits and '_'")


def _materialize_mode(value: Any, field: str) -> None:
    if value not in ("incremental", "full"):
        raise InvalidInput(f"unknown mode {value!r}", field=field, expected="incremental | full")


def _optional(check: Check) -> Check:
    def checked(value: Any, field: str) -> None:
        if value is not None:
            check(value, field)
    return checked


_DAY = 86_400.0
# Every parameter of the flows in flows/, by name: one rule per name, whichever flow takes it.
CHECKS: dict[str, Check] = {
    "repository": lambda value, field: check_repository_name(value),
    "path": _optional(lambda value, field: check_path(value)),
    "branch": check_ref_name,
    "ref": check_ref_name,
    "commit": check_ref_name,
    "deployment": _optional(_deployment),
    "model": _model,
    "version": _version,
    "run_id": _run_id,
    "algorithm": _algorithm,
    "target": _column,
    "sensitive": _column,
    "exclude": _columns,
    "pii": _columns,
    "params": _params,
    "grid": _grid,
    "tune": _grid,
    "since": _time,
    "trigger": lambda value, field: _text(value, field, limit=2000),
    "task_runner": _task_runner,
    "canary_weight": _number(0.0, 1.0),
    "observe_s": _number(0.0, _DAY),
    "min_requests": _number(0, 10_000_000, integer=True),
    "approval_timeout_s": _number(0.0, 30 * _DAY),
    "debounce_s": _number(0.0, 30 * _DAY),
    "service": _feature_service,
    "views": _names,
    "mode": _materialize_mode,
    "as_of": _time,
    "timestamp_field": _column,
}


def check_flow_params(flow: str, params: Mapping[str, Any], *, settings: Settings | None,
                      bound_homes: Iterable[str] = ()) -> None:
    """Refuse a flow run's parameters before it does anything: InvalidInput naming the first
    bad one. ``settings`` are this process's (the home's, where one is bound): they say
    where a ``source`` may be read from. ``bound_homes``: the homes whose Platform this
    process holds. A parameter this module has no rule for is a mistake in the flow."""
    for name, value in params.items():
        if name == "home":
            check_home(value, bound=bound_homes, settings=settings)
        elif name == "source":
            if value is not None:
                if settings is None:
                    raise InvalidInput("source needs a home to say where files may be read from", field="source",
                                       expected="a home")
                check_source(value, settings)
        elif name in CHECKS:
            CHECKS[name](value, name)
        else:
            raise ValueError(f"flow {flow!r} takes a parameter {name!r} that mlops_lite.flow_params has no rule for")
