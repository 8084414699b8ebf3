"""Versioned data in lakeFS's words: repositories, branches, commits, objects.

Handles are cheap and do no I/O; verbs (``create``, ``upload``, ``commit``,
``read_table``) do. Object bytes live in the content-addressed store; refs,
staging and commits live in the metadata store.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlmodel import Session, select

from mlops_lite.clock import utcnow
from mlops_lite.errors import Conflict, InvalidInput, NotFound
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables import DataBranch, DataCommit, DataRepository, DataStaged
from mlops_lite.objects import ObjectStore
from mlops_lite.records import CommitRecord, RepositoryRecord
from mlops_lite.security.audit import AuditLog

REPOSITORY_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")
BRANCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
TABLE_SUFFIXES = (".csv", ".parquet")


def check_path(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise InvalidInput(f"bad object path {path!r}", field="path",
                           expected="a relative path like 'loans/train.csv', without '..' or empty parts")
    return path


@dataclass(frozen=True)
class TableRead:
    """A table and the commit it was read at, so whoever used it can cite it."""

    table: pa.Table
    commit: str
    path: str


class DataStore:
    """The ``platform.data`` facet."""

    def __init__(self, store: MetadataStore, objects: ObjectStore, audit: AuditLog, actor: str) -> None:
        self._store = store
        self._objects = objects
        self._audit = audit
        self._actor = actor

    def repo(self, name: str) -> Repository:
        if not REPOSITORY_NAME.match(name):
            raise InvalidInput(f"bad repository name {name!r}", field="repository",
                               expected="3-63 characters: lowercase letters, digits and '-', starting with a letter or digit")
        return Repository(self, name)

    def repositories(self) -> list[RepositoryRecord]:
        with self._store.session() as session:
            rows = session.exec(select(DataRepository).order_by(DataRepository.name)).all()
            branches = session.exec(select(DataBranch)).all()
        heads: dict[str, dict[str, str | None]] = {}
        for branch in branches:
            heads.setdefault(branch.repository, {})[branch.name] = branch.head
        return [RepositoryRecord(name=row.name, default_branch=row.default_branch,
                                 created_at=row.created_at, branches=heads.get(row.name, {}))
                for row in rows]

    def ingest(self, repository: str, source: Path, path: str, *, branch: str = "main",
               message: str | None = None, actor: str | None = None) -> CommitRecord:
        """Put a CSV/Parquet file at ``path`` on ``branch`` and commit it.

        Idempotent: when the branch already holds the same bytes at ``path``, the
        head commit is returned and nothing new is written.
        """
        if not source.is_file():
            raise InvalidInput(f"no such file: {source}", field="source", expected="an existing CSV or Parquet file")
        check_path(path)
        if not path.endswith(TABLE_SUFFIXES):
            raise InvalidInput(f"{path!r} is not a table path", field="path", expected="a path ending in .csv or .parquet")
        repo = self.repo(repository)
        repo.create(exist_ok=True, actor=actor)
        handle = repo.branch(branch)
        handle.upload(path, source)
        if not handle.uncommitted():
            head = handle.head()
            if head is None:
                raise Conflict(f"branch {branch!r} of {repository!r} has no commit and nothing staged")
            return head
        return handle.commit(message or f"ingest {source.name} -> {path}", actor=actor,
                             metadata={"source": source.name})


class Repository:
    def __init__(self, data: DataStore, name: str) -> None:
        self._data = data
        self.name = name

    def create(self, *, default_branch: str = "main", exist_ok: bool = False,
               actor: str | None = None) -> RepositoryRecord:
        actor = actor or self._data._actor
        with self._data._store.session() as session:
            existing = session.get(DataRepository, self.name)
            if existing is not None:
                if not exist_ok:
                    raise Conflict(f"data repository {self.name!r} already exists")
                return RepositoryRecord(name=existing.name, default_branch=existing.default_branch,
                                        created_at=existing.created_at)
            now = utcnow()
            session.add(DataRepository(name=self.name, default_branch=default_branch,
                                       created_at=now, created_by=actor))
            session.add(DataBranch(repository=self.name, name=default_branch, head=None, created_at=now))
            self._data._audit.append(session, actor=actor, action="data.repository.create",
                                     object=f"data:{self.name}", after={"default_branch": default_branch})
        return RepositoryRecord(name=self.name, default_branch=default_branch, created_at=now)

    def branch(self, name: str) -> Branch:
        if not BRANCH_NAME.match(name):
            raise InvalidInput(f"bad branch name {name!r}", field="branch",
                               expected="letters, digits, '_', '-' and '.', at most 128")
        return Branch(self, name)

    def ref(self, ref: str) -> Reference:
        return Reference(self, ref)

    def log(self, ref: str = "main", *, limit: int = 100) -> list[CommitRecord]:
        commit_id: str | None = self.ref(ref).resolve()
        out: list[CommitRecord] = []
        with self._data._store.session() as session:
            while commit_id and len(out) < limit:
                row = session.get(DataCommit, commit_id)
                if row is None:
                    break
                out.append(_commit_record(row))
                commit_id = row.parent
        return out


class Reference:
    """A branch name or a commit id, resolved when a verb needs it."""

    def __init__(self, repository: Repository, ref: str) -> None:
        self.repository = repository
        self.ref = ref

    @property
    def _data(self) -> DataStore:
        return self.repository._data

    def resolve(self) -> str:
        with self._data._store.session() as session:
            return self._resolve(session)

    def _resolve(self, session: Session) -> str:
        repo = self.repository.name
        if session.get(DataRepository, repo) is None:
            raise NotFound(f"data repository {repo!r} does not exist")
        branch = session.get(DataBranch, (repo, self.ref))
        if branch is not None:
            if branch.head is None:
                raise NotFound(f"branch {self.ref!r} of {repo!r} has no commits yet")
            return branch.head
        commit = session.get(DataCommit, self.ref)
        if commit is not None and commit.repository == repo:
            return commit.id
        raise NotFound(f"{self.ref!r} is neither a branch nor a commit of {repo!r}")

    def tree(self) -> dict[str, dict[str, Any]]:
        with self._data._store.session() as session:
            commit = session.get(DataCommit, self._resolve(session))
            assert commit is not None
            return dict(commit.tree)

    def read_bytes(self, path: str) -> bytes:
        entry = self._entry(check_path(path))
        return self._data._objects.get_bytes(entry["digest"])

    def read_table(self, path: str) -> TableRead:
        """Read a CSV or Parquet object as Arrow, citing the commit it was read at."""
        check_path(path)
        with self._data._store.session() as session:
            commit_id = self._resolve(session)
            commit = session.get(DataCommit, commit_id)
            assert commit is not None
            entry = commit.tree.get(path)
        if entry is None:
            raise NotFound(f"{path!r} is not in {self.repository.name}@{commit_id[:12]}")
        file = self._data._objects.path_of(entry["digest"])
        if path.endswith(".parquet"):
            table = pq.read_table(file)
        elif path.endswith(".csv"):
            table = pacsv.read_csv(file)
        else:
            raise InvalidInput(f"{path!r} is not a table", field="path", expected="a .csv or .parquet path")
        return TableRead(table=table, commit=commit_id, path=path)

    def _entry(self, path: str) -> dict[str, Any]:
        tree = self.tree()
        if path not in tree:
            raise NotFound(f"{path!r} is not in {self.repository.name}@{self.ref}")
        return tree[path]


class Branch(Reference):
    @property
    def name(self) -> str:
        return self.ref

    def head(self) -> CommitRecord | None:
        with self._data._store.session() as session:
            branch = self._row(session)
            if branch.head is None:
                return None
            row = session.get(DataCommit, branch.head)
            assert row is not None
            return _commit_record(row)

    def upload(self, path: str, source: Path | bytes | BinaryIO) -> tuple[str, int]:
        """Stage an object; returns (digest, size). Staging the bytes the head already
        holds at ``path`` stages nothing."""
        check_path(path)
        objects = self._data._objects
        if isinstance(source, bytes):
            digest, size = objects.put_bytes(source)
        elif isinstance(source, Path):
            digest, size = objects.put_file(source)
        else:
            digest, size = objects.put_stream(source)
        with self._data._store.session() as session:
            branch = self._row(session)
            head_tree = self._head_tree(session, branch)
            staged = session.get(DataStaged, (branch.repository, branch.name, path))
            if head_tree.get(path, {}).get("digest") == digest:
                if staged is not None:
                    session.delete(staged)
            elif staged is None:
                session.add(DataStaged(repository=branch.repository, branch=branch.name,
                                       path=path, digest=digest, size=size))
            else:
                staged.digest, staged.size = digest, size
                session.add(staged)
        return digest, size

    def uncommitted(self) -> dict[str, str | None]:
        with self._data._store.session() as session:
            rows = session.exec(select(DataStaged).where(
                DataStaged.repository == self.repository.name, DataStaged.branch == self.name)).all()
        return {row.path: row.digest for row in rows}

    def commit(self, message: str, *, metadata: dict[str, str] | None = None,
               actor: str | None = None) -> CommitRecord:
        if not message.strip():
            raise InvalidInput("a commit needs a message", field="message", expected="a non-empty string")
        actor = actor or self._data._actor
        with self._data._store.session() as session:
            branch = self._row(session)
            staged = session.exec(select(DataStaged).where(
                DataStaged.repository == branch.repository, DataStaged.branch == branch.name)).all()
            if not staged:
                raise Conflict(f"nothing to commit on {branch.repository}/{branch.name}")
            tree = self._head_tree(session, branch)
            for row in staged:
                if row.digest is None:
                    tree.pop(row.path, None)
                else:
                    tree[row.path] = {"digest": row.digest, "size": row.size}
                session.delete(row)
            created_at = utcnow()
            body = {"repository": branch.repository, "parent": branch.head, "message": message,
                    "author": actor, "created_at": created_at.isoformat(), "tree": tree,
                    "meta": metadata or {}}
            commit_id = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            row = DataCommit(id=commit_id, repository=branch.repository, parent=branch.head,
                             message=message, author=actor, created_at=created_at, tree=tree,
                             meta=metadata or {})
            session.add(row)
            before = branch.head
            branch.head = commit_id
            session.add(branch)
            self._data._audit.append(session, actor=actor, action="data.commit",
                                     object=f"data:{branch.repository}/{branch.name}",
                                     before={"head": before},
                                     after={"head": commit_id, "paths": sorted(r.path for r in staged)})
        return _commit_record(row)

    def _row(self, session: Session) -> DataBranch:
        repo = self.repository.name
        if session.get(DataRepository, repo) is None:
            raise NotFound(f"data repository {repo!r} does not exist")
        row = session.get(DataBranch, (repo, self.name))
        if row is None:
            raise NotFound(f"branch {self.name!r} of {repo!r} does not exist")
        return row

    @staticmethod
    def _head_tree(session: Session, branch: DataBranch) -> dict[str, Any]:
        if branch.head is None:
            return {}
        commit = session.get(DataCommit, branch.head)
        assert commit is not None
        return dict(commit.tree)


def _commit_record(row: DataCommit) -> CommitRecord:
    return CommitRecord(id=row.id, repository=row.repository, parent=row.parent, message=row.message,
                        author=row.author, created_at=row.created_at, paths=tuple(sorted(row.tree)),
                        metadata=dict(row.meta))
