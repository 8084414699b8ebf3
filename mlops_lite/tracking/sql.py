"""Read-only SQL over the metadata (``tracking.sql``, and the ``mlops-lite sql`` command).

A query passes three fences before it runs:

1. Its text (both backends): exactly one statement (a trailing ``;`` is allowed, nothing
   after it), starting with SELECT or WITH; none of the words that write or reach
   outside (ATTACH, COPY, PRAGMA, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INTO, ...)
   outside string literals, quoted names and comments; no calls of functions that read
   files, the environment or change state (``read_csv(...)``, ``getenv(...)``,
   ``nextval(...)``, ``pg_read_file(...)``, ...).
2. Its parse tree (DuckDB, from ``json_serialize_sql``): it reads only tables of the
   metadata database (or ``information_schema``, or its own CTEs), never a file named
   as a table (``FROM 'x.csv'``) or a Python variable, and no table function but
   ``range``, ``generate_series`` and ``unnest``.
3. Where it runs: on DuckDB a fresh cursor of the same database, in a READ ONLY
   transaction that is rolled back; on PostgreSQL a READ ONLY transaction, rolled back.

A refusal is InvalidInput naming the rule (``details["rule"]``).
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any, cast

from mlops_lite.errors import BackendUnavailable, InvalidInput
from mlops_lite.metadata.store import MetadataStore

# Words that never belong in a read-only query (checked outside literals and comments).
FORBIDDEN_WORDS = frozenset({
    "ATTACH", "DETACH", "COPY", "PRAGMA", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "TRUNCATE",
    "MERGE", "UPSERT", "GRANT", "REVOKE", "INSTALL", "LOAD", "CALL", "EXPORT", "IMPORT", "CHECKPOINT", "VACUUM",
    "INTO", "EXECUTE", "PREPARE", "DEALLOCATE",
})
# Functions that read files or the environment, reach other databases, or change state.
FORBIDDEN_FUNCTIONS = frozenset({
    "getenv", "nextval", "setval", "currval", "setseed", "query", "query_table", "glob", "sniff_csv",
    "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_sleep", "lo_import", "lo_export",
    "dblink", "dblink_exec", "set_config", "txid_current", "pg_advisory_lock", "which_secret",
})
FORBIDDEN_FUNCTION_PREFIXES = ("read_", "parquet_", "iceberg_", "delta_", "sqlite_", "postgres_", "mysql_",
                               "dblink", "lo_", "pg_advisory")
ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
READABLE_SCHEMAS = frozenset({"information_schema", "pg_catalog"})

EXPECTED = "one SELECT or WITH statement over the metadata tables"
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def refuse(rule: str, message: str) -> InvalidInput:
    return InvalidInput(f"refused by the read-only SQL rule {rule!r}: {message}", field="query",
                        expected=EXPECTED, details={"rule": rule})


def check_select(query: str) -> str:
    """Check the text of a query (fence 1); returns the statement without a trailing ';'."""
    if not isinstance(query, str):
        raise refuse("select_only", "the query must be a string")
    words, end = _scan(query)
    if not words:
        raise refuse("empty", "the query is empty")
    first = words[0][0]
    if first not in ("SELECT", "WITH"):
        raise refuse("select_only", f"only SELECT or WITH queries are allowed; this one starts with {first}")
    for word, call in words:
        if word in FORBIDDEN_WORDS:
            raise refuse("forbidden_keyword", f"{word} is not allowed in a read-only query")
        if call and _forbidden_function(word.lower()):
            raise refuse("forbidden_function", f"the function {word.lower()}() is not allowed")
    return query[:end].strip()


def _forbidden_function(name: str) -> bool:
    return name in FORBIDDEN_FUNCTIONS or name.startswith(FORBIDDEN_FUNCTION_PREFIXES)


def _scan(query: str) -> tuple[list[tuple[str, bool]], int]:
    """Words outside literals, quoted names and comments, upper-cased, each with whether a
    '(' follows it; and where the statement ends. Raises on a second statement."""
    words: list[tuple[str, bool]] = []
    i, n = 0, len(query)
    end: int | None = None
    while i < n:
        c = query[i]
        if c == "-" and query.startswith("--", i):
            nl = query.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif c == "/" and query.startswith("/*", i):
            depth, i = 1, i + 2  # PostgreSQL nests block comments
            while i < n and depth:
                if query.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif query.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c in "'\"`":
            i = _skip_quoted(query, i, c)
            if end is not None:
                raise refuse("single_statement", "one statement only: nothing may follow a ';'")
        elif c == "$" and (m := _DOLLAR_TAG.match(query, i)) and not (i and (query[i - 1].isalnum()
                                                                            or query[i - 1] == "_")):
            close = query.find(m.group(0), m.end())  # PostgreSQL dollar-quoted literal
            i = n if close < 0 else close + len(m.group(0))
        elif c == ";":
            if end is None:
                end = i
            i += 1
        elif c.isspace():
            i += 1
        else:
            if end is not None:
                raise refuse("single_statement", "one statement only: nothing may follow a ';'")
            m = _WORD.match(query, i)
            if m and not (i and (query[i - 1].isalnum() or query[i - 1] in "_$")):
                j = m.end()
                while j < n and query[j].isspace():
                    j += 1
                words.append((m.group(0).upper(), j < n and query[j] == "("))
                i = m.end()
            else:
                i += 1
    return words, n if end is None else end


def _skip_quoted(query: str, i: int, quote: str) -> int:
    """Index after the literal or quoted name opening at ``i`` (a doubled quote escapes it)."""
    j = i + 1
    n = len(query)
    while j < n:
        if query[j] == quote:
            if j + 1 < n and query[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    raise refuse("syntax", "a quoted literal or name is not closed")


# --------------------------------------------------------------------------- running


def run_select(store: MetadataStore, query: str, *, max_rows: int | None = None,
               timeout_s: float | None = None) -> Any:
    """Run one read-only query over the metadata; returns a ``pyarrow.Table`` of at most
    ``max_rows`` rows. A query running past ``timeout_s`` is interrupted (InvalidInput)."""
    statement = check_select(query)
    if max_rows is not None and max_rows < 0:
        raise InvalidInput("max_rows must not be negative", field="max_rows", expected="an integer >= 0")
    if store.is_duckdb:
        return _run_duckdb(store, statement, max_rows, timeout_s)
    return _run_sqlalchemy(store, statement, max_rows, timeout_s)


def _run_duckdb(store: MetadataStore, statement: str, max_rows: int | None, timeout_s: float | None) -> Any:
    import duckdb
    import pyarrow as pa

    pooled = store.engine.raw_connection()
    try:
        wrapper = pooled.dbapi_connection
        # duckdb_engine wraps the connection; the store is DuckDB, so either is a DuckDB connection
        parent = cast(duckdb.DuckDBPyConnection, getattr(wrapper, "_ConnectionWrapper__c", wrapper))
        cursor = store.duckdb_cursor(parent)  # a connection of its own to the same database
        try:
            cursor.execute("BEGIN TRANSACTION READ ONLY")
            timer = None
            try:
                _check_tree(cursor, statement)
                if timeout_s is not None:
                    timer = threading.Timer(timeout_s, cursor.interrupt)
                    timer.daemon = True
                    timer.start()
                result = cursor.execute(statement)
                if max_rows is None:
                    table = result.fetch_arrow_table()
                else:
                    reader = result.fetch_record_batch(max(1, min(max_rows, 65536)))
                    batches, got = [], 0
                    while got < max_rows:
                        try:
                            batch = reader.read_next_batch()
                        except StopIteration:
                            break
                        batches.append(batch.slice(0, max_rows - got))
                        got += batches[-1].num_rows
                    table = pa.Table.from_batches(batches, schema=reader.schema)
            except duckdb.InterruptException as exc:
                raise InvalidInput(f"the query ran past its time limit of {timeout_s} s and was stopped",
                                   field="query", expected="a faster query or a larger timeout_s",
                                   details={"rule": "time_limit"}) from exc
            except (duckdb.ProgrammingError, duckdb.DataError, duckdb.InvalidInputException,
                    duckdb.NotImplementedException) as exc:
                raise InvalidInput(f"the query failed: {str(exc).splitlines()[0]}", field="query",
                                   expected=EXPECTED, details={"rule": "query_error"}) from exc
            except duckdb.TransactionException as exc:  # READ ONLY refused a write the fences missed
                raise refuse("read_only", str(exc).splitlines()[0]) from exc
            except duckdb.Error as exc:
                raise BackendUnavailable(f"the metadata store failed: {str(exc).splitlines()[0]}") from exc
            finally:
                if timer is not None:
                    timer.cancel()
                try:
                    cursor.execute("ROLLBACK")
                except duckdb.Error:
                    pass
        finally:
            cursor.close()
    finally:
        pooled.close()
    return table


def _check_tree(cursor: Any, statement: str) -> None:
    """Fence 2 on DuckDB: the parse tree reads metadata tables only."""
    parsed = json.loads(cursor.execute("SELECT json_serialize_sql(?)", [statement]).fetchone()[0])
    if parsed.get("error"):
        message = str(parsed.get("error_message", "it does not parse"))
        if "Only SELECT" in message:
            raise refuse("select_only", "only a SELECT statement can run here")
        raise refuse("syntax", message)
    if len(parsed.get("statements", ())) != 1:
        raise refuse("single_statement", "one statement only")
    database = cursor.execute("SELECT current_database()").fetchone()[0]
    tables = {r[0].lower() for r in cursor.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "AND table_catalog = current_database()").fetchall()}
    ctes: set[str] = set()
    references: list[tuple[str, str, str]] = []
    table_functions: list[str] = []
    functions: list[str] = []
    _walk(parsed["statements"], ctes, references, table_functions, functions)
    for catalog, schema, name in references:
        catalog, schema, lowered = catalog.lower(), schema.lower(), name.lower()
        if catalog not in ("", database.lower(), "system", "temp") or (catalog in ("system", "temp")
                                                                        and schema not in READABLE_SCHEMAS):
            raise refuse("metadata_tables_only", f"{catalog}.{schema or 'main'}.{name} is not in the metadata "
                                                 "database")
        if schema in READABLE_SCHEMAS:
            continue
        if schema not in ("", "main") or (lowered not in tables and lowered not in ctes):
            raise refuse("metadata_tables_only", f"{name!r} is not a metadata table (they are: "
                                                 f"{', '.join(sorted(tables))})")
    for name in table_functions:
        if name.lower() not in ALLOWED_TABLE_FUNCTIONS:
            raise refuse("no_table_functions", f"the table function {name}() is not allowed (only "
                                               f"{', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))})")
    for name in functions:
        if _forbidden_function(name.lower()):
            raise refuse("forbidden_function", f"the function {name}() is not allowed")


def _walk(node: Any, ctes: set[str], references: list[tuple[str, str, str]], table_functions: list[str],
          functions: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, ctes, references, table_functions, functions)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind == "BASE_TABLE":
        references.append((str(node.get("catalog_name") or ""), str(node.get("schema_name") or ""),
                           str(node.get("table_name") or "")))
    elif kind == "TABLE_FUNCTION":
        function = node.get("function") or {}
        table_functions.append(str(function.get("function_name") or "?"))
    if node.get("class") == "FUNCTION" and "function_name" in node:
        functions.append(str(node["function_name"]))
    cte_map = node.get("cte_map")
    if isinstance(cte_map, dict):
        for entry in cte_map.get("map") or ():
            if isinstance(entry, dict) and "key" in entry:
                ctes.add(str(entry["key"]).lower())
    for value in node.values():
        if isinstance(value, dict | list):
            _walk(value, ctes, references, table_functions, functions)


def _run_sqlalchemy(store: MetadataStore, statement: str, max_rows: int | None, timeout_s: float | None) -> Any:
    import pyarrow as pa
    from sqlalchemy.exc import DataError, DBAPIError, NotSupportedError, OperationalError, ProgrammingError

    try:
        with store.engine.connect() as connection:
            try:
                if connection.dialect.name == "postgresql":
                    connection.exec_driver_sql("SET TRANSACTION READ ONLY")
                    if timeout_s is not None:
                        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}")
                result = connection.exec_driver_sql(statement)
                names = list(result.keys())
                rows = result.fetchall() if max_rows is None else result.fetchmany(max_rows)
            finally:
                connection.rollback()
    except (ProgrammingError, DataError, NotSupportedError) as exc:
        raise InvalidInput(f"the query failed: {str(exc.orig).splitlines()[0]}", field="query", expected=EXPECTED,
                           details={"rule": "query_error"}) from exc
    except OperationalError as exc:
        text = str(exc.orig)
        if "statement timeout" in text or "canceling statement" in text:
            raise InvalidInput(f"the query ran past its time limit of {timeout_s} s and was stopped",
                               field="query", expected="a faster query or a larger timeout_s",
                               details={"rule": "time_limit"}) from exc
        raise BackendUnavailable(f"the metadata store failed: {text.splitlines()[0]}") from exc
    except DBAPIError as exc:
        if "read-only transaction" in str(exc.orig):
            raise refuse("read_only", str(exc.orig).splitlines()[0]) from exc
        raise BackendUnavailable(f"the metadata store failed: {str(exc.orig).splitlines()[0]}") from exc
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = [pa.array([_plain(v) for v in column]) for column in columns]
    return pa.Table.from_arrays(arrays, names=names)


def _plain(value: Any) -> Any:
    """JSON values come back as dicts and lists; Arrow columns take them as JSON text."""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return value
