"""``platform.data`` of a RemotePlatform: the lakeFS backend pointed at the server's
lakeFS-compatible API (/api/v1), with what an mlops-lite server offers beyond lakeFS
over its own routes (server/data.py, /v1): a repository's rules (``config``/``configure``),
``query``, ``gc`` and ``fsck``. The same verbs, records and errors as the embedded store.

``LakeFSDataStore`` stays a plain lakeFS client (it works against a real lakeFS server);
the handles here subclass its handles. Reads that the embedded store answers from local
files answer the same here from the server: ``Reference.open`` downloads the object into
a temporary file, and ``Branch.import_directory`` uploads a folder file by file.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast
from urllib.parse import quote

import msgspec

from mlops_lite.data.checks import RepositoryConfig, SchemaRule
from mlops_lite.data.context import check_path, check_ref_name, check_repository_name
from mlops_lite.data.lakefs_backend import (
    LakeFSBranch,
    LakeFSDataStore,
    LakeFSReference,
    LakeFSRepository,
    _translate,
)
from mlops_lite.data.lifecycle import FsckReport, GcReport
from mlops_lite.errors import InvalidInput, MlopsLiteError, NotFound, PolicyViolation
from mlops_lite.records import CommitRecord, RepositoryRecord

if TYPE_CHECKING:
    from mlops_lite.api.data import DataAPI
    from mlops_lite.client.remote import RemotePlatform
    from mlops_lite.data.tables import QueryResult

_CHUNK = 1 << 20
COMMITS_KEY = b"mlops_lite.commits"
"""The query answer's schema metadata: table name -> the commit it was read at (JSON)."""


class RemoteData(LakeFSDataStore):
    """The data facet over HTTP to an mlops-lite server, with ``token``'s role."""

    def __init__(self, remote: RemotePlatform, token: str | None) -> None:
        super().__init__(remote.url, token=token)
        self._remote = remote

    def repo(self, name: str) -> RemoteRepository:
        return RemoteRepository(self, check_repository_name(name))

    def gc(self, *, retention_days: float = 7.0, dry_run: bool = True,  # type: ignore[override]  # the lakeFS base refuses every gc
           grace_seconds: float = 3600) -> GcReport:
        """The server's garbage collection (role admin); a dry run unless ``dry_run`` is false."""
        body = self._remote.request("POST", "/v1/data/gc", json={
            "retention_days": retention_days, "dry_run": dry_run, "grace_seconds": grace_seconds})
        return msgspec.convert(body, GcReport, strict=False)

    def fsck(self) -> FsckReport:
        """The server's integrity check of every object and commit (role admin)."""
        body = dict(self._remote.request("GET", "/v1/data/fsck"))
        body.pop("clean", None)  # a property of the report, computed again here
        return msgspec.convert(body, FsckReport, strict=False)


class RemoteRepository(LakeFSRepository):
    def __init__(self, data: RemoteData, name: str) -> None:
        super().__init__(data, name)
        self._data = data

    @property
    def _path(self) -> str:
        return f"/v1/data/repositories/{quote(self.name, safe='')}"

    def create(self, *, default_branch: str = "main", exist_ok: bool = False,  # type: ignore[override]  # names what the base's **_ drops
               config: RepositoryConfig | None = None, actor: str | None = None) -> RepositoryRecord:
        """Create the repository with an empty, protected default branch; ``config`` sets its
        rules instead (checked before anything is created). ``actor`` is accepted for the
        local signature; the server records this client's token."""
        if config is None:
            return super().create(default_branch=default_branch, exist_ok=exist_ok)
        check_ref_name(default_branch)
        config.validate()
        if exist_ok:
            try:
                return self.info()
            except NotFound:
                pass
        super().create(default_branch=default_branch)
        self.configure(protected_branches=config.protected_branches, schemas=config.schemas,
                       pii_patterns=config.pii_patterns, max_object_bytes=config.max_object_bytes)
        return self.info()

    def config(self) -> RepositoryConfig:
        return RepositoryConfig.from_json(self._data._remote.request("GET", f"{self._path}/config"))

    def configure(self, *, protected_branches: Sequence[str] | None = None,
                  schemas: Sequence[SchemaRule] | None = None, pii_patterns: Sequence[str] | None = None,
                  max_object_bytes: int | None = None, actor: str | None = None) -> RepositoryConfig:
        """Change the repository's rules; what is not given stays as it is (role operator)."""
        body = {"protected_branches": None if protected_branches is None else list(protected_branches),
                "schemas": None if schemas is None else [asdict(s) for s in schemas],
                "pii_patterns": None if pii_patterns is None else list(pii_patterns),
                "max_object_bytes": max_object_bytes}
        return RepositoryConfig.from_json(self._data._remote.request("PUT", f"{self._path}/config", json=body))

    def query(self, sql: str, **tables: tuple[str, str]) -> QueryResult:
        """DuckDB SQL over tables at refs, run by the server: ``query("select ... from loans",
        loans=("main", "loans/*.csv"))``; the result names the commit each table was read at."""
        import pyarrow as pa

        from mlops_lite.data.tables import QueryResult

        raw = self._data._remote.request_bytes("POST", f"{self._path}/query", json={
            "sql": sql, "tables": {name: list(spec) if isinstance(spec, tuple | list) else spec
                                   for name, spec in tables.items()}})
        table = pa.ipc.open_stream(raw).read_all()
        metadata = dict(table.schema.metadata or {})
        commits = json.loads(metadata.pop(COMMITS_KEY, b"{}"))
        return QueryResult(table=table.replace_schema_metadata(metadata or None), commits=dict(commits))

    def branch(self, name: str) -> RemoteBranch:
        return RemoteBranch(self, check_ref_name(name))

    def ref(self, ref: str) -> RemoteReference:
        return RemoteReference(self, super().ref(ref).ref)


class RemoteReference(LakeFSReference):
    def commit_record(self) -> CommitRecord:
        """The commit this reference points at now."""
        return self.repository.commit(self.resolve())

    def log(self, *, amount: int = 100, after: str | None = None) -> list[CommitRecord]:
        return self.repository.log(self.ref, amount=amount, after=after)

    def open(self, path: str) -> BinaryIO:
        """The object's bytes as a file to read: downloaded (streamed, in bounded memory)
        into a temporary file that goes away when closed."""
        from lakefs_sdk.exceptions import ApiException

        check_path(path)
        url = f"/repositories/{quote(self._repo, safe='')}/refs/{quote(self.ref, safe='')}/objects"
        sink = tempfile.TemporaryFile()
        try:
            with _translate(f"get {path!r} at {self.ref!r}"), \
                    self._store._http.stream("GET", url, params={"path": path}) as response:
                if response.is_error:
                    exc = ApiException(status=response.status_code, reason=response.reason_phrase)
                    exc.body = response.read().decode(errors="replace")
                    raise exc
                for chunk in response.iter_bytes(_CHUNK):
                    sink.write(chunk)
            sink.seek(0)
        except BaseException:
            sink.close()
            raise
        return cast(BinaryIO, sink)


class RemoteBranch(RemoteReference, LakeFSBranch):
    def import_directory(self, folder: Path, *, prefix: str = "", workers: int = 2,
                         progress: Callable[[int, int], None] | None = None) -> int:
        """Stage every file under ``folder`` at ``prefix`` + its relative path, uploading
        ``workers`` at a time; ``progress(files_done, bytes_done)`` as files land. Returns
        the count. Every path is checked, and the branch found writable, before the first
        upload. When an upload fails no other starts, the paths this import staged are
        unstaged again (those that had no uncommitted change before it) and the error is
        raised; with ``workers`` > 1 an upload in flight at that moment may have replaced
        a change staged before the import."""
        if not folder.is_dir():
            raise InvalidInput(f"{folder} is not a folder", field="folder", expected="an existing folder")
        if prefix:
            check_path(prefix.rstrip("/"))
            prefix = prefix.rstrip("/") + "/"
        files = sorted(Path(root) / name for root, _, names in os.walk(folder) for name in names)
        paths = [prefix + file.relative_to(folder).as_posix() for file in files]
        for path in paths:
            check_path(path)
        self._check_writable()
        dirty = {d.path for d in self.uncommitted()}
        staged: list[str] = []
        done = [0, 0]
        lock = threading.Lock()
        failed = threading.Event()

        def put(pair: tuple[str, Path]) -> None:
            if failed.is_set():
                return
            try:
                # Opened here, so a file that cannot be read fails as it does in-process (an OSError).
                with open(pair[1], "rb") as stream:
                    record = self.upload(pair[0], stream)
            except BaseException:
                failed.set()
                raise
            with lock:
                staged.append(record.path)
                done[0] += 1
                done[1] += record.size
                if progress is not None:
                    progress(done[0], done[1])

        pool = ThreadPoolExecutor(max_workers=max(1, workers))
        try:
            list(pool.map(put, zip(paths, files, strict=True)))
        except BaseException:
            pool.shutdown(cancel_futures=True)
            self._unstage([p for p in staged if p not in dirty])
            raise
        finally:
            pool.shutdown()
        return len(staged)

    def _check_writable(self) -> None:
        """As the embedded store refuses before storing anything: a missing branch is
        NotFound, a protected one a PolicyViolation."""
        with _translate(f"branch {self.name!r}"):
            self._store.branches.get_branch(self._repo, self.name)
        if self.name in cast(RemoteRepository, self.repository).config().protected_branches:
            raise PolicyViolation(f"branch {self.name!r} of {self._repo!r} is protected: it takes changes only "
                                  "by merge (or a revert)", details={"reasons": [f"{self.name} is protected"]})

    def _unstage(self, paths: list[str]) -> None:
        for path in paths:
            try:
                self.reset(path=path)
            except MlopsLiteError:
                continue  # the import's own error is the one to raise


if TYPE_CHECKING:
    def _remote_data_is_the_data_api(data: RemoteData) -> DataAPI:
        """For mypy only: RemoteData conforms to the data facet's Protocol."""
        return data
