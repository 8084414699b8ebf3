"""The ``lakefs`` data backend: the same facet, handles and records as the embedded
store, spoken to a lakeFS server (or mlops-lite's lakeFS-compatible API) through the
maintained ``lakefs-sdk``.

Translation of the SDK's exceptions into the error tree happens in one place,
``_translate``. Uploads and ``Reference.open`` stream with httpx (the SDK takes a whole
body in memory); ``Branch.import_directory`` uploads a folder file by file, and
``Repository.query`` runs DuckDB over the tables' objects downloaded at one commit each.

A repository's rules are what lakeFS keeps: ``config()`` reads its branch protection
rules and the PII column patterns in its metadata (``mlops_lite.pii_patterns``). Setting
rules (``configure``, ``create(config=...)``), pinned schemas, size limits and per-path
merge rules are mlops-lite extensions lakeFS lacks; garbage collection and integrity
checks are the lakeFS server's own jobs. Each answers BackendUnavailable (or, for merge
rules, InvalidInput) naming what is missing. An mlops-lite server offers them on its /v1
data routes (mlops_lite/client/data.py).
"""

from __future__ import annotations

import fnmatch
import json
import os
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TypeVar, cast
from urllib.parse import quote

import httpx

from mlops_lite.data.context import check_path, check_ref_name, check_repository_name
from mlops_lite.data.ingest import ingest
from mlops_lite.data.tree import DiffEntry
from mlops_lite.errors import (
    BackendUnavailable,
    Conflict,
    InvalidInput,
    MissingDependency,
    MlopsLiteError,
    NotFound,
    PermissionDenied,
    PolicyViolation,
    Unauthenticated,
)
from mlops_lite.records import BranchRecord, CommitRecord, Listing, ObjectRecord, RepositoryRecord, TagRecord

if TYPE_CHECKING:
    from mlops_lite.data.checks import RepositoryConfig, SchemaRule
    from mlops_lite.data.lifecycle import FsckReport, GcReport
    from mlops_lite.data.tables import QueryResult
    from mlops_lite.privacy.profile import PrivacyProfile

T = TypeVar("T")
_CHUNK = 1 << 20
PII_PATTERNS_KEY = "mlops_lite.pii_patterns"
"""The repository metadata key holding PII column patterns, one per line."""
_RULES_ELSEWHERE = ("a plain lakeFS server keeps a repository's rules itself (branch protection rules, and PII "
                    f"patterns in the repository metadata key {PII_PATTERNS_KEY!r}, both set on the lakeFS server) "
                    "and has no pinned schemas or size limit; mlops-lite sets rules on the embedded backend or an "
                    "mlops-lite server")


def _when(epoch: int | None) -> datetime:
    return datetime.fromtimestamp(epoch or 0, tz=UTC)


def _details(body: str | None) -> dict[str, Any]:
    try:
        parsed = json.loads(body or "")
    except ValueError:
        return {}
    return {k: v for k, v in parsed.items() if k != "message"} if isinstance(parsed, dict) else {}


def _message(exc: Any) -> str:
    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except (ValueError, TypeError, AttributeError):
        return str(getattr(exc, "reason", exc))


@contextmanager
def _translate(what: str) -> Iterator[None]:
    """The one boundary where lakeFS SDK and HTTP errors become the error tree."""
    from lakefs_sdk import exceptions as sdk
    from urllib3.exceptions import HTTPError as TransportError  # the SDK's transport: a refused TLS handshake

    try:
        yield
    except MlopsLiteError:
        raise
    except sdk.ApiException as exc:
        status, message, details = exc.status, _message(exc), _details(getattr(exc, "body", None))
        text = f"{what}: {message}"
        if status == 404:
            raise NotFound(text, details=details) from exc
        if status == 409:
            raise Conflict(text, details=details) from exc
        if status == 401:
            raise Unauthenticated(text) from exc
        if status == 403:
            if "default branch" in message.lower():
                raise Conflict(text, details={"reason": "default_branch"}) from exc
            if "protect" in message.lower():
                raise PolicyViolation(text, details=details) from exc
            raise PermissionDenied(text, details=details) from exc
        if status == 412:
            raise PolicyViolation(text, details=details) from exc
        if status == 400 and "no changes" in message.lower():
            raise Conflict(f"{what}: nothing to commit ({message})", details={"reason": "no_changes"}) from exc
        if status == 400 and "uncommitted changes" in message.lower():
            raise Conflict(text, details={"reason": "dirty_branch"}) from exc
        if status in (400, 422):
            raise InvalidInput(text, details=details) from exc
        raise BackendUnavailable(f"{what}: lakeFS answered {status}: {message}") from exc
    except (httpx.HTTPError, OSError, TransportError) as exc:
        raise BackendUnavailable(f"{what}: cannot reach lakeFS ({exc})") from exc


def _commit(repository: str, c: Any) -> CommitRecord:
    return CommitRecord(id=c.id, repository=repository, parents=tuple(c.parents or ()), tree=c.meta_range_id or "",
                        message=c.message, author=c.committer, created_at=_when(c.creation_date),
                        metadata=dict(c.metadata or {}))


class LakeFSDataStore:
    """``platform.data`` over lakeFS."""

    def __init__(self, endpoint: str, access_key_id: str | None = None, secret_access_key: str | None = None, *,
                 token: str | None = None, storage_namespace: str = "local://{repository}",
                 ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None,
                 verify: ssl.SSLContext | bool = True) -> None:
        """``ca_file``, ``cert_file``/``key_file`` and ``verify`` (the same trust as a context
        for the HTTP client): an https endpoint verified against a CA bundle, and a client
        certificate for mutual TLS."""
        try:
            import lakefs_sdk
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise MissingDependency("the lakefs backend needs lakefs-sdk: pip install lakefs-sdk") from exc
        self.endpoint = endpoint.rstrip("/")
        host = self.endpoint if self.endpoint.endswith("/api/v1") else self.endpoint + "/api/v1"
        if token is not None:
            config = lakefs_sdk.Configuration(host=host, access_token=token)
            auth: Any = None
            headers = {"Authorization": f"Bearer {token}"}
        else:
            config = lakefs_sdk.Configuration(host=host, username=access_key_id, password=secret_access_key)
            auth, headers = (access_key_id or "", secret_access_key or ""), {}
        config.ssl_ca_cert = ca_file
        config.cert_file = cert_file  # type: ignore[assignment]  # the SDK's annotation says None
        config.key_file = key_file  # type: ignore[assignment]
        self._client = lakefs_sdk.ApiClient(config)
        self.repos = lakefs_sdk.RepositoriesApi(self._client)
        self.branches = lakefs_sdk.BranchesApi(self._client)
        self.objects_api = lakefs_sdk.ObjectsApi(self._client)
        self.commits = lakefs_sdk.CommitsApi(self._client)
        self.refs = lakefs_sdk.RefsApi(self._client)
        self.tags_api = lakefs_sdk.TagsApi(self._client)
        self._http = httpx.Client(base_url=host, auth=auth, headers=headers, timeout=120, verify=verify)
        self._namespace = storage_namespace
        self._residency: Callable[[str, Any, str, str | None], None] | None = None

    def enforce_residency(self, check: Callable[[str, Any, str, str | None], None]) -> None:
        """Uploads, commits and merges ask ``check`` first (mlops_lite.data.context.DataContext.place)."""
        self._residency = check

    def place(self, repository: str, action: str) -> None:
        if self._residency is not None:
            self._residency(repository, lambda: self.repo(repository).config().privacy, action, None)

    def close(self) -> None:
        self._http.close()
        self._client.close()

    def repo(self, name: str) -> LakeFSRepository:
        return LakeFSRepository(self, check_repository_name(name))

    def repositories(self) -> list[RepositoryRecord]:
        out, after = [], ""
        while True:
            with _translate("list repositories"):
                page = self.repos.list_repositories(after=after, amount=1000)
            out += [self.repo(r.id).info() for r in page.results]
            if not page.pagination.has_more:
                return out
            after = page.pagination.next_offset

    def ingest(self, repository: str, source: Path, path: str, *, branch: str = "main",
               message: str | None = None, actor: str | None = None) -> CommitRecord:
        """As the embedded store's: ``mlops_lite.data.ingest.ingest``."""
        return ingest(self, repository, source, path, branch=branch, message=message, actor=actor)

    def pii_patterns(self, repository: str) -> tuple[str, ...]:
        """The PII column patterns an mlops-lite server keeps in the repository's metadata
        (none on other lakeFS servers, or for a repository that does not exist yet)."""
        try:
            with _translate(f"repository metadata of {repository!r}"):
                metadata = self.repos.get_repository_metadata(repository)
        except NotFound:
            return ()
        raw = (metadata or {}).get(PII_PATTERNS_KEY, "")
        return tuple(line for line in raw.splitlines() if line)

    def gc(self, *, retention_days: float = 7.0, dry_run: bool = True, grace_seconds: float = 3600) -> GcReport:
        raise BackendUnavailable("garbage collection is the lakeFS server's own job (lakeFS GC); "
                                 "mlops-lite's gc runs on the embedded backend")

    def fsck(self) -> FsckReport:
        raise BackendUnavailable("integrity checks are the lakeFS server's own job; "
                                 "mlops-lite's fsck runs on the embedded backend")


class LakeFSRepository:
    def __init__(self, store: LakeFSDataStore, name: str) -> None:
        self._store = store
        self.name = name

    def create(self, *, classification: str | None = None, privacy: PrivacyProfile | None = None,
               default_branch: str = "main", exist_ok: bool = False, config: RepositoryConfig | None = None,
               allow_weaker: bool = False, actor: str | None = None) -> RepositoryRecord:
        """Create the repository with an empty default branch (its protection is the lakeFS
        server's). ``config`` is checked, then refused (BackendUnavailable: lakeFS sets rules
        on its own server), unless ``exist_ok`` finds the repository already there, whose
        record is answered as it is (as the embedded store answers it). A plain lakeFS
        server keeps no classification: ``classification``/``privacy`` are checked and not
        stored (``allow_weaker`` has nothing to allow). ``actor`` is accepted for the local
        signature; lakeFS records the key's user."""
        if classification is not None or privacy is not None:
            from mlops_lite.data.repository import classified

            classified(classification, privacy, None)
        from lakefs_sdk import RepositoryCreation

        check_ref_name(default_branch)
        if config is not None:
            config.validate()
            if exist_ok:
                try:
                    return self.info()
                except NotFound:
                    pass
            raise BackendUnavailable(f"create {self.name!r} with rules: {_RULES_ELSEWHERE}")
        try:
            with _translate(f"create repository {self.name!r}"):
                self._store.repos.create_repository(RepositoryCreation(
                    name=self.name, default_branch=default_branch,
                    storage_namespace=self._store._namespace.format(repository=self.name)))  # type: ignore[call-arg]  # lakefs_sdk (pydantic.v1): Field(None) optionals read as required
        except Conflict:
            if not exist_ok:
                raise
        return self.info()

    def info(self) -> RepositoryRecord:
        with _translate(f"repository {self.name!r}"):
            repo = self._store.repos.get_repository(self.name)
        return RepositoryRecord(name=repo.id, default_branch=repo.default_branch, created_at=_when(repo.creation_date),
                                branches={b.name: b.head for b in self.branches()},
                                protected_branches=self._protected())

    def _protected(self) -> tuple[str, ...]:
        """The branch protection rules' patterns (none where the server keeps none)."""
        try:
            with _translate("branch protection"):
                rules = self._store.repos.get_branch_protection_rules(self.name)
        except (NotFound, InvalidInput):
            return ()
        return tuple(r.pattern for r in rules)

    def config(self) -> RepositoryConfig:
        """The rules lakeFS keeps: its branch protection rules as ``protected_branches`` and
        the metadata's PII patterns; no pinned schemas or size limit (lakeFS has neither)."""
        from mlops_lite.data.checks import RepositoryConfig

        with _translate(f"repository {self.name!r}"):
            self._store.repos.get_repository(self.name)
        return RepositoryConfig(protected_branches=self._protected(),
                                pii_patterns=self._store.pii_patterns(self.name))

    def configure(self, *, protected_branches: Sequence[str] | None = None,
                  schemas: Sequence[SchemaRule] | None = None, pii_patterns: Sequence[str] | None = None,
                  max_object_bytes: int | None = None, actor: str | None = None) -> RepositoryConfig:
        """Refused (BackendUnavailable): a plain lakeFS server's rules are set on it."""
        raise BackendUnavailable(f"configure {self.name!r}: {_RULES_ELSEWHERE}")

    def query(self, sql: str, **tables: tuple[str, str]) -> QueryResult:
        """DuckDB SQL over tables at refs: ``query("select ... from loans", loans=("main",
        "loans/*.csv"))``. Each table's ref is resolved to one commit and its objects are
        downloaded there (into a temporary folder, gone when the query returns) and read
        by DuckDB as the embedded store's files are; the result names each table's commit."""
        from mlops_lite.data.tables import query

        with tempfile.TemporaryDirectory(prefix="mlops-lite-query-") as folder:
            def files_at(ref: str, pattern: str) -> tuple[str, list[str], str]:
                return self.ref(ref)._download_table(pattern, Path(tempfile.mkdtemp(dir=folder)))

            return query(sql, tables, files_at)

    def delete(self, **_: Any) -> None:
        with _translate(f"delete repository {self.name!r}"):
            self._store.repos.delete_repository(self.name)

    def branch(self, name: str) -> LakeFSBranch:
        return LakeFSBranch(self, check_ref_name(name))

    def ref(self, ref: str) -> LakeFSReference:
        if not isinstance(ref, str) or not ref:
            raise InvalidInput("a reference is needed", field="ref", expected="a branch, tag or commit id")
        return LakeFSReference(self, ref)

    def branches(self) -> list[BranchRecord]:
        out, after = [], ""
        while True:
            with _translate(f"branches of {self.name!r}"):
                page = self._store.branches.list_branches(self.name, after=after, amount=1000)
            out += [BranchRecord(self.name, r.id, r.commit_id or None) for r in page.results]
            if not page.pagination.has_more:
                return out
            after = page.pagination.next_offset

    def commit(self, commit_id: str) -> CommitRecord:
        with _translate(f"commit {commit_id!r}"):
            return _commit(self.name, self._store.commits.get_commit(self.name, commit_id))

    def log(self, ref: str | None = None, *, amount: int = 100, after: str | None = None) -> list[CommitRecord]:
        if not 1 <= amount <= 10_000:
            raise InvalidInput(f"amount {amount} is out of range", field="amount", expected="1 to 10000")
        with _translate(f"log of {ref}"):
            page = self._store.refs.log_commits(self.name, ref or self.info().default_branch, after=after or "",
                                                amount=amount, first_parent=True)
        return [_commit(self.name, c) for c in page.results]

    def diff(self, left: str, right: str, *, prefix: str = "", three_dot: bool = False) -> list[DiffEntry]:
        return self.ref(left).diff(right, prefix=prefix, three_dot=three_dot)

    def create_tag(self, name: str, ref: str, **_: Any) -> TagRecord:
        from lakefs_sdk import TagCreation

        check_ref_name(name, "tag")
        with _translate(f"create tag {name!r}"):
            tag = self._store.tags_api.create_tag(self.name, TagCreation(id=name, ref=ref))
        return TagRecord(self.name, tag.id, tag.commit_id)

    def delete_tag(self, name: str, **_: Any) -> None:
        with _translate(f"delete tag {name!r}"):
            self._store.tags_api.delete_tag(self.name, name)

    def tags(self) -> list[TagRecord]:
        with _translate(f"tags of {self.name!r}"):
            page = self._store.tags_api.list_tags(self.name, amount=1000)
        return [TagRecord(self.name, t.id, t.commit_id) for t in page.results]


class LakeFSReference:
    def __init__(self, repository: LakeFSRepository, ref: str) -> None:
        self.repository = repository
        self.ref = ref

    @property
    def _store(self) -> LakeFSDataStore:
        return self.repository._store

    @property
    def _repo(self) -> str:
        return self.repository.name

    def resolve(self) -> str:
        with _translate(f"resolve {self.ref!r}"):
            page = self._store.refs.log_commits(self._repo, self.ref, amount=1)
        if not page.results:
            raise NotFound(f"{self.ref!r} of {self._repo!r} has no commits yet")
        return str(page.results[0].id)

    def commit_record(self) -> CommitRecord:
        """The commit this reference points at now."""
        return self.repository.commit(self.resolve())

    def log(self, *, amount: int = 100, after: str | None = None) -> list[CommitRecord]:
        """Commits from this reference back along first parents, newest first; ``after`` pages on."""
        return self.repository.log(self.ref, amount=amount, after=after)

    def open(self, path: str) -> BinaryIO:
        """The object's bytes as a file to read: downloaded (streamed, in bounded memory)
        into a temporary file that goes away when closed."""
        sink = tempfile.TemporaryFile()
        try:
            self._download(path, sink)
            sink.seek(0)
        except BaseException:
            sink.close()
            raise
        return cast(BinaryIO, sink)

    def _download(self, path: str, sink: IO[bytes]) -> None:
        """Stream the object at ``path`` here into ``sink``."""
        from lakefs_sdk.exceptions import ApiException

        check_path(path)
        url = f"/repositories/{quote(self._repo, safe='')}/refs/{quote(self.ref, safe='')}/objects"
        with _translate(f"get {path!r} at {self.ref!r}"), \
                self._store._http.stream("GET", url, params={"path": path}) as response:
            if response.is_error:
                exc = ApiException(status=response.status_code, reason=response.reason_phrase)
                exc.body = response.read().decode(errors="replace")
                raise exc
            for chunk in response.iter_bytes(_CHUNK):
                sink.write(chunk)

    def _download_table(self, pattern: str, folder: Path) -> tuple[str, list[str], str]:
        """The commit this reference is at now, and the objects of the table at ``pattern``
        there (a path, or a glob of files of one kind) downloaded into ``folder``, and their
        kind ('csv' or 'parquet'), as the embedded ``Reference.table_files`` answers."""
        from mlops_lite.data.tables import is_glob, table_kind

        commit = self.resolve()
        at = LakeFSReference(self.repository, commit)
        matches = at.paths(pattern) if is_glob(pattern) else [at.stat(pattern)]
        kind = table_kind(pattern, [m.path for m in matches], f"{self._repo}@{self.ref}")
        files = []
        for number, match in enumerate(matches):
            file = folder / f"{number}.{kind}"
            with open(file, "wb") as sink:
                at._download(match.path, sink)
            files.append(str(file))
        return commit, files, kind

    def stat(self, path: str) -> ObjectRecord:
        check_path(path)
        with _translate(f"stat {path!r} at {self.ref!r}"):
            stats = self._store.objects_api.stat_object(self._repo, self.ref, path)
        return ObjectRecord(path=stats.path, digest=stats.checksum, size=stats.size_bytes or 0,
                            staged=self._is_staged(path))

    def _is_staged(self, path: str) -> bool:
        return False

    def read_bytes(self, path: str, *, start: int | None = None, end: int | None = None) -> bytes:
        check_path(path)
        header = None
        if start is not None or end is not None:
            size = self.stat(path).size
            first = start or 0
            last = size - 1 if end is None else min(end, size - 1)
            if first < 0 or first > last:
                raise InvalidInput(f"range {start}-{end} is outside the object ({size} bytes)", field="range",
                                   expected=f"0 <= start <= end < {size}")
            header = f"bytes={first}-{last}"
        with _translate(f"get {path!r} at {self.ref!r}"):
            return bytes(self._store.objects_api.get_object(self._repo, self.ref, path, range=header))

    def paths(self, pattern: str) -> list[ObjectRecord]:
        """Objects whose path matches a glob (``*`` does not cross ``/``), as on the local store."""
        from mlops_lite.data.tables import glob_matcher

        check_path(pattern.replace("*", "x").replace("?", "x"))
        prefix, compiled = glob_matcher(pattern)
        return [r for r in self.objects(prefix) if compiled.match(r.path)]

    def read_table(self, pattern: str) -> Any:
        """CSV or Parquet objects matching a path or glob, read at one commit (the ref is
        resolved first, so a branch moving meanwhile cannot mix two states)."""
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        from mlops_lite.data.tables import TableRead, is_glob, table_kind

        commit = self.resolve()
        at = LakeFSReference(self.repository, commit)
        matches = at.paths(pattern) if is_glob(pattern) else [at.stat(pattern)]
        kind = table_kind(pattern, [m.path for m in matches], f"{self._repo}@{self.ref}")
        reader = pq.read_table if kind == "parquet" else pacsv.read_csv
        tables = [reader(pa.BufferReader(at.read_bytes(m.path))) for m in matches]
        table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
        return TableRead(table=table, commit=commit, path=pattern)

    def objects(self, prefix: str = "") -> Iterator[ObjectRecord]:
        after = ""
        while True:
            page = self.ls(prefix, after=after, amount=1000)
            yield from page.objects
            if not page.has_more:
                return
            after = page.next_after

    def ls(self, prefix: str = "", *, delimiter: str = "", after: str = "", amount: int = 1000) -> Listing:
        if not 1 <= amount <= 10_000:
            raise InvalidInput(f"amount {amount} is out of range", field="amount", expected="1 to 10000")
        with _translate(f"list {prefix!r} at {self.ref!r}"):
            page = self._store.objects_api.list_objects(self._repo, self.ref, prefix=prefix, delimiter=delimiter,
                                                        after=after, amount=amount)
        objects = tuple(ObjectRecord(o.path, o.checksum, o.size_bytes or 0) for o in page.results
                        if o.path_type == "object")
        prefixes = tuple(o.path for o in page.results if o.path_type == "common_prefix")
        return Listing(objects, prefixes, bool(page.pagination.has_more), page.pagination.next_offset or "")

    def diff(self, other: str, *, prefix: str = "", three_dot: bool = False) -> list[DiffEntry]:
        out: list[DiffEntry] = []
        after = ""
        while True:
            # lakeFS's default is three_dot; the facet's default is the two trees compared.
            with _translate(f"diff {self.ref!r}..{other!r}"):
                page = self._store.refs.diff_refs(self._repo, self.ref, other, after=after, amount=1000,
                                                  prefix=prefix or None,
                                                  type="three_dot" if three_dot else "two_dot")
            out += [DiffEntry(path=d.path, type=d.type, left=None, right=None, size=d.size_bytes or 0)
                    for d in page.results if d.path_type == "object"]
            if not page.pagination.has_more:
                return out
            after = page.pagination.next_offset


class LakeFSBranch(LakeFSReference):
    @property
    def name(self) -> str:
        return self.ref

    def _is_staged(self, path: str) -> bool:
        return any(d.path == path for d in self.uncommitted(prefix=path))

    def create(self, source: str | None = None, *, exist_ok: bool = False, **_: Any) -> BranchRecord:
        from lakefs_sdk import BranchCreation

        source = source or self.repository.info().default_branch
        try:
            with _translate(f"create branch {self.name!r}"):
                self._store.branches.create_branch(self._repo, BranchCreation(  # type: ignore[call-arg]  # lakefs_sdk (pydantic.v1): Field(None) optionals read as required
                    name=self.name, source=source))
        except Conflict:
            if not exist_ok:
                raise
        with _translate(f"branch {self.name!r}"):
            ref = self._store.branches.get_branch(self._repo, self.name)
        return BranchRecord(self._repo, self.name, ref.commit_id or None)

    def delete(self, **_: Any) -> None:
        with _translate(f"delete branch {self.name!r}"):
            self._store.branches.delete_branch(self._repo, self.name)

    def head(self) -> CommitRecord | None:
        with _translate(f"branch {self.name!r}"):
            ref = self._store.branches.get_branch(self._repo, self.name)
        return self.repository.commit(ref.commit_id) if ref.commit_id else None

    def upload(self, path: str, source: Path | bytes | BinaryIO, *, if_absent: bool = False) -> ObjectRecord:
        check_path(path)
        self._store.place(self._repo, "data.upload")

        def chunks() -> Iterator[bytes]:
            if isinstance(source, bytes):
                yield source
                return
            stream: Any = open(source, "rb") if isinstance(source, Path) else source
            try:
                while chunk := stream.read(_CHUNK):
                    yield chunk
            finally:
                if isinstance(source, Path):
                    stream.close()

        headers = {"Content-Type": "application/octet-stream"}
        if if_absent:
            headers["If-None-Match"] = "*"
        response = self._request("POST", f"/repositories/{self._repo}/branches/{self.name}/objects",
                                 params={"path": path}, content=chunks(), headers=headers,
                                 what=f"upload {path!r}")
        body = response.json()
        return ObjectRecord(path=body["path"], digest=body["checksum"], size=body.get("size_bytes") or 0, staged=True)

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
        NotFound, a protected one (its name matches a protection rule) a PolicyViolation."""
        with _translate(f"branch {self.name!r}"):
            self._store.branches.get_branch(self._repo, self.name)
        if any(fnmatch.fnmatchcase(self.name, rule) for rule in self.repository.config().protected_branches):
            raise PolicyViolation(f"branch {self.name!r} of {self._repo!r} is protected: it takes changes only "
                                  "by merge (or a revert)", details={"reasons": [f"{self.name} is protected"]})

    def _unstage(self, paths: list[str]) -> None:
        for path in paths:
            try:
                self.reset(path=path)
            except MlopsLiteError:
                continue  # the import's own error is the one to raise

    def _request(self, method: str, url: str, *, what: str, **kwargs: Any) -> httpx.Response:
        from lakefs_sdk.exceptions import ApiException

        with _translate(what):
            response = self._store._http.request(method, url, **kwargs)
            if response.is_error:
                exc = ApiException(status=response.status_code, reason=response.reason_phrase)
                exc.body = response.text
                raise exc
        return response

    def delete_object(self, path: str, *, missing_ok: bool = False) -> bool:
        # lakeFS answers success for a missing object; the facet says NotFound unless told otherwise.
        try:
            self.stat(path)
        except NotFound:
            if not missing_ok:
                raise
            return False
        with _translate(f"delete {path!r}"):
            self._store.objects_api.delete_object(self._repo, self.name, path)
        return True

    def uncommitted(self, *, prefix: str = "") -> list[DiffEntry]:
        out: list[DiffEntry] = []
        after = ""
        while True:
            with _translate(f"uncommitted changes of {self.name!r}"):
                page = self._store.branches.diff_branch(self._repo, self.name, after=after, amount=1000,
                                                        prefix=prefix or None)
            out += [DiffEntry(path=d.path, type=d.type, left=None, right=None, size=d.size_bytes or 0)
                    for d in page.results if d.path_type == "object"]
            if not page.pagination.has_more:
                return out
            after = page.pagination.next_offset

    def reset(self, *, path: str | None = None, prefix: str | None = None, **_: Any) -> int:
        from lakefs_sdk import ResetCreation

        if path is not None and prefix is not None:
            raise InvalidInput("reset one path or one prefix, not both", field="path",
                               expected="path or prefix, or neither")
        if path is not None:
            check_path(path)
            count = sum(1 for d in self.uncommitted(prefix=path) if d.path == path)
            body = ResetCreation(type="object", path=path)
        elif prefix is not None:
            count, body = len(self.uncommitted(prefix=prefix)), ResetCreation(type="common_prefix", path=prefix)
        else:
            count, body = len(self.uncommitted()), ResetCreation(type="reset")
        with _translate(f"reset {self.name!r}"):
            self._store.branches.reset_branch(self._repo, self.name, body)
        return count

    def commit(self, message: str, *, metadata: Mapping[str, str] | None = None, **_: Any) -> CommitRecord:
        from lakefs_sdk import CommitCreation

        if not isinstance(message, str) or not message.strip():
            raise InvalidInput("a commit needs a message", field="message", expected="a non-empty string")
        self._store.place(self._repo, "data.commit")
        with _translate(f"commit on {self.name!r}"):
            commit = self._store.commits.commit(self._repo, self.name, CommitCreation(  # type: ignore[call-arg]  # lakefs_sdk (pydantic.v1): Field(None) optionals read as required
                message=message, metadata=dict(metadata or {})))
        return _commit(self._repo, commit)

    def merge_into(self, destination: str, *, strategy: str = "fail", rules: Mapping[str, str] | None = None,
                   message: str | None = None, metadata: Mapping[str, str] | None = None,
                   if_nothing: str = "skip", **_: Any) -> CommitRecord:
        from lakefs_sdk import Merge

        from mlops_lite.data.merge import NOTHING_TO_MERGE, STRATEGIES

        if strategy not in STRATEGIES:
            raise InvalidInput(f"unknown merge strategy {strategy!r}", field="strategy",
                               expected=" | ".join(STRATEGIES))
        self._store.place(self._repo, "data.merge")
        if rules:
            raise InvalidInput("per-path merge rules are an mlops-lite extension lakeFS lacks", field="rules",
                               expected="no rules with the lakefs backend")
        if if_nothing not in NOTHING_TO_MERGE:
            raise InvalidInput(f"unknown if_nothing {if_nothing!r}", field="if_nothing",
                               expected=" | ".join(NOTHING_TO_MERGE))
        try:
            with _translate(f"merge {self.name!r} into {destination!r}"):
                result = self._store.refs.merge_into_branch(self._repo, self.name, destination, merge=Merge(  # type: ignore[call-arg]  # lakefs_sdk (pydantic.v1): Field(None) optionals read as required
                    message=message, metadata=dict(metadata or {}), strategy=None if strategy == "fail" else strategy,
                    allow_empty=if_nothing == "commit"))
        except Conflict as exc:
            # lakeFS refuses a merge that brings nothing; the facet's default answers the head.
            if if_nothing != "skip" or exc.details.get("reason") != "no_changes":
                raise
            return self.repository.commit(destination)
        return self.repository.commit(result.reference)

    def revert(self, commit: str, *, parent_number: int = 0, message: str | None = None,
               metadata: Mapping[str, str] | None = None, allow_empty: bool = False, **_: Any) -> CommitRecord:
        from lakefs_sdk import CommitOverrides, RevertCreation

        overrides = CommitOverrides(message=message, metadata=dict(metadata) if metadata is not None else None) \
            if message is not None or metadata is not None else None
        with _translate(f"revert {commit!r} on {self.name!r}"):
            self._store.branches.revert_branch(self._repo, self.name, RevertCreation(
                ref=commit, parent_number=parent_number, commit_overrides=overrides, allow_empty=allow_empty))
        head = self.head()
        assert head is not None
        return head


