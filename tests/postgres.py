"""A real PostgreSQL for the tests: the metadata contract's ``postgres`` backend (every
run) and the whole-suite pass ``pytest --postgres``.

The session starts its own cluster in a temporary folder (initdb, trust auth,
127.0.0.1 on a free port, its socket in the same folder) when a test first needs it,
and stops it at the end; each test gets a database of its own (``database()``; with
``--postgres`` it is named in ``MLOPS_LITE_DATABASE_URL``, so every Platform the test
opens stores its metadata there). As root, PostgreSQL runs as the ``postgres`` user (it
refuses root)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresCluster:
    def __init__(self, root: Path, port: int, as_user: list[str]) -> None:
        self.root, self.port, self._as_user = root, port, as_user

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as connection:
            connection.execute(sql)

    @contextmanager
    def database(self) -> Iterator[str]:
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.admin(f'CREATE DATABASE "{name}"')
        try:
            yield self.url(name)
        finally:
            self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


MISSING = "PostgreSQL's initdb and pg_ctl are not installed (Debian: apt-get install postgresql)"


def installed() -> bool:
    """Whether this machine has the binaries to start a cluster (searched as ``postgres_cluster`` does)."""
    return _binary("initdb") is not None and _binary("pg_ctl") is not None


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError(MISSING)
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="mlops-lite-pg-"))
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        os.chown(root, pwd.getpwnam("postgres").pw_uid, -1)
    port = _free_port()
    data = root / "data"
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} -c fsync=off"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
                   check=True, capture_output=True)
    try:
        yield PostgresCluster(root, port, as_user)
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
