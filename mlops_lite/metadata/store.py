"""The SQL metadata store: one engine, the schema, and the DuckDB lock boundary."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlalchemy.pool import QueuePool
from sqlmodel import Session, SQLModel, create_engine

from mlops_lite.config import redacted_url
from mlops_lite.errors import BackendUnavailable, Conflict, MissingDependency, StoreLocked
from mlops_lite.metadata import tables  # noqa: F401  (registers the tables)

_LOCK_PID = re.compile(r"PID (\d+)")


class MetadataStore:
    """Owns the SQL engine. On DuckDB it keeps one connection open for its whole
    life, so this process holds the file lock and nobody else can write under it."""

    def __init__(self, url: str, *, encryption_key: str | None = None) -> None:
        """``encryption_key`` (DuckDB only): the file is encrypted with it (AES-256-GCM,
        DuckDB's own database encryption); without it, a plaintext file."""
        self.url = url
        self._owner: Connection | None = None
        self._root: Any = None
        try:
            if url.startswith("duckdb:///"):
                Path(url.removeprefix("duckdb:///")).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if encryption_key is not None and url.startswith("duckdb:///"):
                import duckdb

                try:
                    self._root = open_encrypted_duckdb(Path(url.removeprefix("duckdb:///")), encryption_key)
                except duckdb.Error as exc:
                    raise translate_open_error(exc, url) from exc
                # The URL names no file: the creator hands out connections of the instance that
                # attached it. A queue pool, as for a file (":memory:" would get one per thread).
                self.engine: Engine = create_engine("duckdb:///:memory:", creator=self._cursor_wrapper,
                                                    poolclass=QueuePool)
            else:
                self.engine = create_engine(url)
            self._owner = self.engine.connect()
            if url.startswith("duckdb:///"):
                _owner_only(Path(url.removeprefix("duckdb:///")))
            self._upgrade_schema()
        except (DBAPIError, OperationalError) as exc:
            self._dispose()
            raise translate_open_error(exc, url) from exc

    def _upgrade_schema(self) -> None:
        """Create the tables a database lacks (all of them on a new one), then the additive
        upgrades: a nullable column a newer release added to a table is added to an
        existing database."""
        # One information_schema query (DuckDB and PostgreSQL alike) answers both: a
        # has_table probe per table (create_all's way) costs about 0.15 s on DuckDB, and
        # reflection per table about a second, paid by every CLI call.
        with self.engine.connect() as connection:
            rows = connection.execute(text("select table_name, column_name from information_schema.columns "
                                           "where table_schema = current_schema() "
                                           "and table_catalog = current_database()"))
            present_by_table: dict[str, set[str]] = {}
            for table_name, column_name in rows:
                present_by_table.setdefault(table_name, set()).add(column_name)
        missing = [table for table in SQLModel.metadata.sorted_tables if table.name not in present_by_table]
        if missing:
            SQLModel.metadata.create_all(self.engine, tables=missing)
        with self.engine.begin() as connection:
            for table in SQLModel.metadata.sorted_tables:
                if table in missing:
                    continue
                present = present_by_table[table.name]
                for column in table.columns:
                    if column.name not in present and column.nullable:
                        kind = column.type.compile(dialect=self.engine.dialect)
                        connection.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}'))

    def _cursor_wrapper(self) -> Any:
        from duckdb_engine import ConnectionWrapper

        return ConnectionWrapper(self.duckdb_cursor())

    def duckdb_cursor(self, parent: Any = None) -> Any:
        """A DuckDB connection of its own to this store's database (``parent``: a connection
        of it, when the store is a plaintext file), its default catalog the store's."""
        if self._root is not None:
            cursor = self._root.cursor()
            cursor.execute(f"USE {ENCRYPTED_CATALOG}")
            return cursor
        return parent.cursor()

    def connection_uses_tls(self) -> bool | None:
        """PostgreSQL: whether this store's connection is TLS (pg_stat_ssl); None elsewhere."""
        if self.is_duckdb:
            return None
        try:
            with self.engine.connect() as connection:
                row = connection.execute(text("select ssl from pg_stat_ssl where pid = pg_backend_pid()")).first()
        except (DBAPIError, OperationalError):
            return None
        return bool(row[0]) if row is not None else None

    @property
    def encrypted(self) -> bool:
        return self._root is not None

    @property
    def is_duckdb(self) -> bool:
        return self.url.startswith("duckdb")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error. A write that
        lost a race with another transaction surfaces as Conflict (nothing was written)."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
                for callback in session.info.pop("after_commit", ()):
                    callback()
            except (DBIntegrityError, OperationalError) as exc:
                session.rollback()
                text_ = str(exc)
                if isinstance(exc, DBIntegrityError) or "conflict" in text_.lower():
                    raise Conflict("a concurrent change won the race; nothing was written, try again",
                                   details={"cause": text_.splitlines()[0]}) from exc
                raise BackendUnavailable(f"the metadata store failed: {text_.splitlines()[0]}") from exc
            except BaseException:
                session.rollback()
                raise
            finally:
                for lock in session.info.pop("held_locks", ()):
                    lock.release()

    @staticmethod
    def after_commit(session: Session, callback: Callable[[], None]) -> None:
        """Run ``callback`` once ``session`` has committed (not if it rolls back)."""
        session.info.setdefault("after_commit", []).append(callback)

    @staticmethod
    def hold_until_end(session: Session, lock: threading.RLock) -> None:
        """Take ``lock`` now and release it when ``session`` ends (after its commit or
        rollback): what a writer counts on stays unseen by others until it is durable."""
        lock.acquire()
        session.info.setdefault("held_locks", []).append(lock)

    def close(self) -> None:
        self._dispose()

    def _dispose(self) -> None:
        if self._owner is not None:
            self._owner.close()
            self._owner = None
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.dispose()
        if self._root is not None:
            self._root.close()
            self._root = None


ENCRYPTED_CATALOG = "mlops_lite_meta"


def httpfs_extension() -> Path:
    """The httpfs extension of the installed DuckDB (from the ``duckdb-ext-httpfs``
    package): DuckDB writes encrypted files only with its OpenSSL."""
    import duckdb

    try:
        import duckdb_ext  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingDependency("encrypting the DuckDB metadata needs the duckdb-ext-httpfs package "
                                "(pip install duckdb-ext-httpfs), or set encryption = false") from exc
    version = f"v{duckdb.__version__}"
    for root in duckdb_ext.__path__:
        for candidate in sorted(Path(root).glob(f"extensions/{version}/*/httpfs.duckdb_extension")):
            return candidate
    raise MissingDependency(f"duckdb-ext-httpfs has no httpfs extension for DuckDB {duckdb.__version__} on this "
                            "platform; install the matching duckdb-ext-httpfs, or set encryption = false")


def load_crypto(connection: Any) -> None:
    """Load OpenSSL (httpfs) into a DuckDB connection, so it can write encrypted files."""
    connection.execute(f"LOAD '{httpfs_extension()}'")


def _owner_only(path: Path) -> None:
    """DuckDB makes its file with the process's umask: 0600 whatever that is."""
    if path.exists() and path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)


def open_encrypted_duckdb(path: Path, key: str) -> Any:
    """A DuckDB instance with ``path`` attached under ``key`` as its default catalog."""
    import duckdb

    root = duckdb.connect(":memory:")
    try:
        load_crypto(root)
        quoted = str(path).replace("'", "''")
        root.execute(f"ATTACH '{quoted}' AS {ENCRYPTED_CATALOG} (ENCRYPTION_KEY '{key}')")
        root.execute(f"USE {ENCRYPTED_CATALOG}")
        # What a large query spills to disk is encrypted too (DuckDB's default leaves it plaintext).
        root.execute("SET temp_file_encryption = true")
    except BaseException:
        root.close()
        raise
    return root


def translate_open_error(exc: Exception, url: str) -> Exception:
    text = str(exc)
    if "lock" in text.lower():
        match = _LOCK_PID.search(text)
        pid = int(match.group(1)) if match else None
        who = f"process {pid}" if pid else "another process"
        return StoreLocked(
            f"The metadata database {url.removeprefix('duckdb:///')} is held by {who}. "
            "DuckDB allows one writer per file: stop that process, or talk to the "
            "daemon over HTTP (MLOPS_LITE_URL) instead of opening the stores.",
            pid=pid,
        )
    first = text.splitlines()[0] if text else type(exc).__name__
    return BackendUnavailable(f"Cannot open the metadata store at {redacted_url(url)}: "
                              f"{_without_password(first)}")


_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def _without_password(text: str) -> str:
    """A database URL (or a driver's message quoting one) with its password replaced."""
    return _PASSWORD_IN_URL.sub(r"\1***@", text)
