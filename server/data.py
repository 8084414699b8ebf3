"""Data routes beyond lakeFS: what the embedded store offers that lakeFS's API has no words
for. Mounted under /v1 with its bearer guard; ``RemoteData`` (mlops_lite/client/data.py)
speaks them, beside the lakeFS-compatible API (server/lakefs.py) for everything else.

- ``GET/PUT /v1/data/repositories/{repo}/config``: the repository's rules (protected
  branches, pinned schemas, PII patterns, the object size limit); PUT changes only what
  it names, as ``Repository.configure`` does.
- ``POST /v1/data/repositories/{repo}/query``: DuckDB SQL over tables at refs; answers
  the result as an Arrow IPC stream whose schema metadata ``mlops_lite.commits`` (JSON)
  names the commit each table was read at.
- ``POST /v1/data/gc`` and ``GET /v1/data/fsck``: the store's garbage collection and
  integrity check (admin).

Reads need viewer, writes operator, gc and fsck admin.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from typing import Annotated, Any

import msgspec
import pyarrow as pa
from litestar import Request, Response, get, post, put

from mlops_lite.data import DataStore, Repository, RepositoryConfig
from mlops_lite.data.checks import ColumnRule, SchemaRule
from mlops_lite.data.lifecycle import GcReport
from mlops_lite.data.tables import QueryResult, query
from mlops_lite.errors import BackendUnavailable, InvalidInput
from mlops_lite.security.audit import statement_summary
from server.audit import gc_summary, record_read
from server.columnar import TRUNCATED, arrow_stream
from server.context import actor as _actor
from server.context import platform as _platform

ARROW_STREAM = "application/vnd.apache.arrow.stream"
COMMITS_KEY = b"mlops_lite.commits"
MAX_RETENTION_DAYS = 36_500.0
_OBJECT_FILE = re.compile(r"'/[^']*'")  # a file of the server's store, named in a DuckDB error  # a century; a longer retention is no garbage collection at all






def _store(request: Request[Any, Any, Any]) -> DataStore:
    data = _platform(request).data
    if not isinstance(data, DataStore):
        # A platform whose data lives on a lakeFS server: that server keeps its own rules and gc.
        raise BackendUnavailable("this server's data lives on a lakeFS server; repository rules, queries, "
                                 "gc and fsck are that server's own")
    return data


def _repo(request: Request[Any, Any, Any], name: str) -> Repository:
    return _store(request).repo(name)


class ColumnBody(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    type: str
    nullable: bool = True


class SchemaBody(msgspec.Struct, forbid_unknown_fields=True):
    """Tabular objects matching ``paths`` (a glob) must have exactly these columns."""

    paths: str
    columns: list[ColumnBody]


class ConfigureRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The rules to change; a field left out (or null) stays as it is."""

    protected_branches: list[str] | None = None
    schemas: list[SchemaBody] | None = None
    pii_patterns: list[str] | None = None
    max_object_bytes: int | None = None


class QueryRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``tables`` names each table: ``{"loans": ["main", "loans/*.csv"]}`` (a ref, a path or glob)."""

    sql: str
    tables: dict[str, Any]


class GcRequest(msgspec.Struct, forbid_unknown_fields=True):
    retention_days: Annotated[float, msgspec.Meta(le=MAX_RETENTION_DAYS)] = 7.0
    dry_run: bool = True
    grace_seconds: float = 3600.0


@get("/data/repositories/{repository:str}/config", opt={"permission": "viewer", "repository_param": "repository"}, sync_to_thread=True)
def repository_config(request: Request[Any, Any, Any], repository: str) -> RepositoryConfig:
    """The repository's rules: protected branches, pinned schemas, PII patterns, size limit."""
    return _repo(request, repository).config()


@put("/data/repositories/{repository:str}/config", opt={"permission": "operator", "repository_param": "repository"}, sync_to_thread=True)
def configure_repository(request: Request[Any, Any, Any], repository: str, data: ConfigureRequest) -> RepositoryConfig:
    """Change the rules named in the body (audited); answers the rules now in force."""
    schemas = None if data.schemas is None else [
        SchemaRule(paths=s.paths, columns=tuple(ColumnRule(c.name, c.type, c.nullable) for c in s.columns))
        for s in data.schemas]
    return _repo(request, repository).configure(
        protected_branches=data.protected_branches, schemas=schemas, pii_patterns=data.pii_patterns,
        max_object_bytes=data.max_object_bytes, actor=_actor(request))


@put("/data/repositories/{repository:str}/privacy", opt={"permission": "admin", "repository_param": "repository"},
     sync_to_thread=True)
def set_repository_privacy(request: Request[Any, Any, Any], repository: str,
                           data: dict[str, Any]) -> RepositoryConfig:
    """Replace the repository's privacy profile (classification, region, purpose, lawful basis,
    categories, data subjects, retention, subject columns, transforms, k-anonymity): a
    governance act, so admin only; audited with the profile before and after."""
    from mlops_lite.privacy.profile import PrivacyProfile

    profile = PrivacyProfile.from_json(data)
    assert profile is not None  # from_json answers None only for None
    return _repo(request, repository).configure(privacy=profile, actor=_actor(request))


@post("/data/repositories/{repository:str}/query", opt={"permission": "viewer", "repository_param": "repository"}, status_code=200,
      sync_to_thread=True)
def query_repository(request: Request[Any, Any, Any], repository: str, data: QueryRequest) -> Response[bytes]:
    """DuckDB SQL over CSV/Parquet tables at refs; the SQL reaches those tables and nothing else.
    The answer is an Arrow IPC stream; its schema metadata ``mlops_lite.commits`` (JSON) maps
    each table to the commit it was read at."""
    settings = _platform(request).settings
    result = confined_query(_repo(request, repository), data.sql, data.tables, max_rows=settings.sql_max_rows,
                            timeout_s=settings.sql_timeout_s)
    record_read(request, "data.query", f"data:{repository}",
                {"sql": statement_summary(data.sql), "tables": result.commits, "rows": result.table.num_rows})
    return arrow_stream(result.table, metadata={COMMITS_KEY: json.dumps(result.commits).encode()})


class CreateRepositoryRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A repository and its classification (or whole privacy profile); ``allow_weaker``
    (admin only) makes again a deleted repository's name under a weaker classification."""

    name: str
    classification: str | None = None
    privacy: dict[str, Any] | None = None
    default_branch: str = "main"
    allow_weaker: bool = False


@post("/data/repositories", opt={"permission": "operator", "resource": "body"}, status_code=201,
      sync_to_thread=True)
def create_repository(request: Request[Any, Any, Any], data: CreateRepositoryRequest) -> dict[str, Any]:
    """Create a repository with its classification (the lakeFS API's POST cannot carry one)."""
    from mlops_lite.privacy.profile import PrivacyProfile
    from mlops_lite.security.roles import require

    require(request.state.identity, "admin" if data.allow_weaker else "operator", repository=data.name)
    record = _repo(request, data.name).create(
        classification=data.classification, privacy=PrivacyProfile.from_json(data.privacy),
        default_branch=data.default_branch, allow_weaker=data.allow_weaker, actor=_actor(request))
    return {"name": record.name, "default_branch": record.default_branch}


@post("/data/repositories/{repository:str}/anonymization/rotate",
      opt={"permission": "admin", "repository_param": "repository"}, status_code=200, sync_to_thread=True)
def rotate_anonymization_key(request: Request[Any, Any, Any], repository: str) -> dict[str, Any]:
    """The repository's next pseudonymization key version (audited ``keys.rotate``)."""
    return {"version": _repo(request, repository).rotate_anonymization_key(actor=_actor(request))}


@post("/data/gc", opt={"permission": "admin"}, status_code=200, sync_to_thread=True)
def collect_garbage(request: Request[Any, Any, Any], data: GcRequest) -> GcReport:
    """Remove data objects nothing reaches (a dry run unless ``dry_run`` is false)."""
    report = _store(request).gc(retention_days=data.retention_days, dry_run=data.dry_run,
                                grace_seconds=data.grace_seconds)
    record_read(request, "data.gc", "data", gc_summary(report, data.retention_days))
    return report


@get("/data/fsck", opt={"permission": "admin"}, sync_to_thread=True)
def check_store(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Every object's digest verified and every commit's tree checked; ``clean`` says the verdict."""
    report = _store(request).fsck()
    return {**dataclasses.asdict(report), "clean": report.clean}


def confined_query(repository: Repository, sql: str, tables: dict[str, Any], *, max_rows: int | None = None,
                   timeout_s: float | None = None) -> QueryResult:
    """``Repository.query`` for a caller who is not this process's user.

    Each table is read at its ref by the facet's own query (the same DuckDB readers, so the
    same column types); the caller's SQL then runs in a DuckDB that sees those tables only:
    no file, extension or setting, and no Python variable, is in its reach. It answers at
    most ``max_rows`` rows (the schema metadata says ``mlops_lite.truncated`` when rows were
    left out) and is interrupted after ``timeout_s`` (422, rule ``time_limit``)."""
    import duckdb

    if not tables:
        raise InvalidInput("name at least one table", field="tables", expected="name=(ref, path or glob)")
    read: dict[str, pa.Table] = {}
    commits: dict[str, str] = {}
    for name, spec in tables.items():
        if not (isinstance(spec, list | tuple) and len(spec) == 2 and all(isinstance(s, str) for s in spec)):
            raise InvalidInput(f"table {name!r} needs (ref, path)", field=f"tables.{name}",
                               expected="(ref, path or glob)")
        try:
            # The name is checked to be an SQL identifier before this statement runs.
            one = query(f'SELECT * FROM "{name}"', {name: (spec[0], spec[1])},
                        lambda ref, pattern: repository.ref(ref).table_files(pattern))
        except InvalidInput as exc:
            if exc.field != "sql":  # a bad name, ref or path: the facet's own answer
                raise
            raise _unreadable(name, spec, exc.__cause__ or exc) from exc
        except duckdb.Error as exc:
            raise _unreadable(name, spec, exc) from exc
        read[name], commits[name] = one.table, one.commits[name]
    connection = duckdb.connect(":memory:", config={"enable_external_access": False,
                                                    "python_enable_replacements": False,
                                                    "lock_configuration": True})
    timer = threading.Timer(timeout_s, connection.interrupt) if timeout_s is not None else None
    try:
        for name, table in read.items():
            connection.register(name, table)
        try:
            if timer is not None:
                timer.daemon = True
                timer.start()
            result = _at_most(connection.execute(sql), max_rows)
        except duckdb.InterruptException as exc:
            raise InvalidInput(f"the query ran past the server's time limit of {timeout_s} s (its setting "
                               "sql_timeout_s) and was stopped", field="sql", expected="a faster query",
                               details={"rule": "time_limit"}) from exc
        except duckdb.Error as exc:
            raise InvalidInput(f"the query failed: {exc}", field="sql", expected="valid DuckDB SQL") from exc
    finally:
        if timer is not None:
            timer.cancel()
        connection.close()
    return QueryResult(table=result, commits=commits)


def _at_most(cursor: Any, max_rows: int | None) -> pa.Table:
    """The cursor's rows, at most ``max_rows`` of them, read batch by batch (a query that
    makes more never holds them all)."""
    if max_rows is None:
        return cursor.fetch_arrow_table()
    reader = cursor.fetch_record_batch(min(max_rows + 1, 65_536))
    batches, got = [], 0
    for batch in reader:
        batches.append(batch)
        got += batch.num_rows
        if got > max_rows:
            break
    table = pa.Table.from_batches(batches, schema=reader.schema)
    if table.num_rows <= max_rows:
        return table
    kept = table.slice(0, max_rows)
    return kept.replace_schema_metadata({**(kept.schema.metadata or {}), TRUNCATED: b"true"})


def _unreadable(name: str, spec: list[str] | tuple[str, str], exc: BaseException) -> InvalidInput:
    """A table whose objects are not the CSV or Parquet their names say (DuckDB's reason,
    less the server's file names)."""
    reason = _OBJECT_FILE.sub("an object", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return InvalidInput(f"table {name!r} ({spec[0]}:{spec[1]}) cannot be read: {reason}", field=f"tables.{name}",
                        expected="CSV or Parquet objects of one schema")


DATA_ROUTES = [repository_config, configure_repository, set_repository_privacy, query_repository, collect_garbage, check_store,
               create_repository, rotate_anonymization_key]
