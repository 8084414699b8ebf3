"""Tables at a ref: CSV/Parquet objects read as Arrow, or queried with DuckDB in place."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mlops_lite.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from mlops_lite.data.reference import Reference
    from mlops_lite.data.repository import Repository

TABLE_SUFFIXES = (".csv", ".parquet")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class TableRead:
    """A table and the commit it was read at, so whoever used it can cite it."""

    table: pa.Table
    commit: str
    path: str


@dataclass(frozen=True)
class QueryResult:
    table: pa.Table
    commits: dict[str, str]
    """Table name -> the commit it was read at."""


def glob_matcher(pattern: str) -> tuple[str, re.Pattern[str]]:
    """(the folder prefix to list, the compiled glob) for a path glob; ``*`` does not cross ``/``."""
    literal = pattern.split("*", 1)[0].split("?", 1)[0]
    prefix = literal.rpartition("/")[0] + "/" if "/" in literal else ""
    return prefix, re.compile(fnmatch.translate(pattern).replace(".*", "[^/]*"))


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def table_kind(pattern: str, paths: list[str], where: str) -> str:
    """'csv' or 'parquet': what every matched path is, one kind (NotFound when none matched)."""
    if not paths:
        raise NotFound(f"no object matches {pattern!r} at {where}")
    kinds = {path.rsplit(".", 1)[-1] for path in paths}
    if len(kinds) != 1 or not paths[0].endswith(TABLE_SUFFIXES):
        raise InvalidInput(f"{pattern!r} matches {sorted(kinds)} files", field="path",
                           expected="CSV files or Parquet files, one kind")
    return kinds.pop()


def _files(ref: Reference, pattern: str) -> tuple[str, list[str], str]:
    """(commit, object files, kind) for a path or glob of one table kind."""
    commit = ref.resolve()
    matches = ref.paths(pattern) if is_glob(pattern) else [ref.stat(pattern)]
    kind = table_kind(pattern, [m.path for m in matches], f"{ref.repository.name}@{ref.ref}")
    return commit, [str(ref._ctx.objects.path_of(m.digest)) for m in matches], kind


def read_table(ref: Reference, pattern: str) -> TableRead:
    commit, files, kind = _files(ref, pattern)
    reader = pq.read_table if kind == "parquet" else pacsv.read_csv
    tables = [reader(f) for f in files]
    return TableRead(table=pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0],
                     commit=commit, path=pattern)


def query(repository: Repository, sql: str, tables: dict[str, tuple[str, str]]) -> QueryResult:
    import duckdb

    if not tables:
        raise InvalidInput("name at least one table", field="tables", expected="name=(ref, path or glob)")
    connection = duckdb.connect(":memory:")
    commits: dict[str, str] = {}
    try:
        for name, spec in tables.items():
            if not _IDENTIFIER.match(name):
                raise InvalidInput(f"bad table name {name!r}", field="tables", expected="an SQL identifier")
            if not (isinstance(spec, tuple | list) and len(spec) == 2):
                raise InvalidInput(f"table {name!r} needs (ref, path)", field=f"tables.{name}",
                                   expected="(ref, path or glob)")
            ref, pattern = spec
            commit, files, kind = _files(repository.ref(ref), pattern)
            reader = "read_parquet" if kind == "parquet" else "read_csv"
            listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            connection.execute(f'CREATE VIEW "{name}" AS SELECT * FROM {reader}([{listed}])')
            commits[name] = commit
        try:
            result = connection.execute(sql).fetch_arrow_table()
        except duckdb.Error as exc:
            raise InvalidInput(f"the query failed: {exc}", field="sql", expected="valid DuckDB SQL") from exc
    finally:
        connection.close()
    return QueryResult(table=result, commits=commits)
