"""Ingest: put a table file on a branch through the checks, on any data backend.

It speaks only the handle API (repository, branch, commit, merge), so the embedded
store and the lakeFS backend share it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from mlops_lite.data.context import check_path
from mlops_lite.data.tables import TABLE_SUFFIXES
from mlops_lite.errors import Conflict, InvalidInput
from mlops_lite.records import CommitRecord, ObjectRecord, RepositoryRecord


class BranchHandle(Protocol):
    """What ingest uses of a branch handle (both backends' ``Branch``)."""

    def head(self) -> CommitRecord | None: ...

    def stat(self, path: str) -> ObjectRecord: ...

    def create(self, source: str | None = None, *, exist_ok: bool = False, actor: str | None = None) -> Any: ...

    def upload(self, path: str, source: Path) -> ObjectRecord: ...

    def reset(self, *, actor: str | None = None) -> int: ...

    def commit(self, message: str, *, metadata: Mapping[str, str] | None = None,
               actor: str | None = None) -> CommitRecord: ...

    def merge_into(self, destination: str, *, message: str | None = None, metadata: Mapping[str, str] | None = None,
                   actor: str | None = None) -> CommitRecord: ...

    def delete(self, *, actor: str | None = None) -> None: ...


class RepositoryHandle(Protocol):
    def create(self, *, exist_ok: bool = False, actor: str | None = None) -> RepositoryRecord: ...

    def info(self) -> RepositoryRecord: ...

    def branch(self, name: str) -> BranchHandle: ...


class DataHandles(Protocol):
    """A data backend, as ingest sees it: its repositories by name."""

    def repo(self, name: str) -> RepositoryHandle: ...


def ingest(data: DataHandles, repository: str, source: Path, path: str, *, branch: str = "main",
           message: str | None = None, actor: str | None = None) -> CommitRecord:
    """Put a CSV/Parquet file at ``path`` on ``branch`` through the checks.

    A protected branch (main, by default) takes it by merge: the file is committed
    on a fresh branch ``ingest-<digest>`` and merged in. Idempotent: when ``branch``
    already holds the same bytes at ``path`` its head is returned and nothing is written.
    """
    check_path(path)
    if not path.endswith(TABLE_SUFFIXES):
        raise InvalidInput(f"{path!r} is not a table path", field="path", expected="a path ending in .csv or .parquet")
    if not source.is_file():
        raise InvalidInput(f"no such file: {source}", field="source", expected="an existing CSV or Parquet file")
    repo = data.repo(repository)
    target = repo.branch(branch)
    repo.create(exist_ok=True, actor=actor)
    digest = _sha256(source)
    head = target.head()
    try:
        if head is not None and target.stat(path).digest == digest:
            return head
    except LookupError:
        pass
    message = message or f"ingest {source.name} -> {path}"
    if branch not in repo.info().protected_branches:
        target.upload(path, source)
        return target.commit(message, actor=actor, metadata={"source": source.name})
    staging = repo.branch(f"ingest-{digest[:12]}")
    staging.create(branch, exist_ok=True, actor=actor)
    try:
        staging.reset(actor=actor)
        staging.upload(path, source)
        try:
            staging.commit(message, actor=actor, metadata={"source": source.name})
        except Conflict:
            pass
        return staging.merge_into(branch, message=f"Merge {message}", actor=actor, metadata={"source": source.name})
    finally:
        staging.delete(actor=actor)


def _sha256(source: Path) -> str:
    hasher = hashlib.sha256()
    with open(source, "rb") as stream:
        while chunk := stream.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()
