"""Ingest: put a table file on a branch through the checks, on any data backend.

It speaks only the handle API (repository, branch, commit, merge), so the embedded
store and the lakeFS backend share it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_lite.data.context import check_path
from mlops_lite.data.tables import TABLE_SUFFIXES
from mlops_lite.errors import Conflict, InvalidInput
from mlops_lite.records import CommitRecord

if TYPE_CHECKING:
    from mlops_lite.data.lakefs_backend import LakeFSDataStore
    from mlops_lite.data.store import DataStore


def ingest(data: DataStore | LakeFSDataStore, repository: str, source: Path, path: str, *, branch: str = "main",
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
