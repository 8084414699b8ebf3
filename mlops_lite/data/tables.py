"""Tables at a ref: CSV/Parquet objects read as Arrow, or queried with DuckDB in place."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mlops_lite.errors import InvalidInput, NotFound

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


# An object's content: a file path (read in place), or an opener of a binary file (an
# encrypted store decrypts as it is read: no plaintext copy is made).
Source = str | Callable[[], BinaryIO]
# (ref, path or glob) -> (commit, object sources, kind): ``Reference.table_files`` at that ref.
TableFiles = Callable[[str, str], tuple[str, Sequence[Source], str]]


def read_source(source: Source, kind: str) -> pa.Table:
    reader = pq.read_table if kind == "parquet" else pacsv.read_csv
    if isinstance(source, str):
        return reader(source)
    with source() as stream:
        return reader(stream)


def read_files(files: Sequence[Source], kind: str, *, commit: str, path: str) -> TableRead:
    """One table of the CSV or Parquet ``files`` (their schemas promoted to one) read at ``commit``."""
    tables = [read_source(f, kind) for f in files]
    return TableRead(table=pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0],
                     commit=commit, path=path)


def query(sql: str, tables: dict[str, tuple[str, str]], files_at: TableFiles) -> QueryResult:
    """DuckDB ``sql`` over views named as ``tables`` says (name -> (ref, path or glob)), each
    reading the files ``files_at(ref, path)`` names in place."""
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
            commit, files, kind = files_at(ref, pattern)
            if all(isinstance(f, str) for f in files):
                reader = "read_parquet" if kind == "parquet" else "read_csv"
                listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)  # type: ignore[union-attr]
                connection.execute(f'CREATE VIEW "{name}" AS SELECT * FROM {reader}([{listed}])')
            else:  # encrypted objects: decrypted into Arrow, then queried
                try:
                    table = read_files(files, kind, commit=commit, path=pattern).table
                except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                    raise InvalidInput(f"table {name!r} ({ref}:{pattern}) cannot be read as {kind}: {exc}",
                                       field=f"tables.{name}", expected=f"a readable {kind} table") from exc
                connection.register(f"__source_{name}", table)
                connection.execute(f'CREATE VIEW "{name}" AS SELECT * FROM "__source_{name}"')
            commits[name] = commit
        try:
            result = connection.execute(sql).fetch_arrow_table()
        except duckdb.Error as exc:
            raise InvalidInput(f"the query failed: {exc}", field="sql", expected="valid DuckDB SQL") from exc
    finally:
        connection.close()
    return QueryResult(table=result, commits=commits)
