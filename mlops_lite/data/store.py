"""The ``platform.data`` facet."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

from sqlmodel import select

from mlops_lite.data.context import DataContext, check_path
from mlops_lite.data.lifecycle import FsckReport, GcReport, fsck, gc
from mlops_lite.data.repository import Repository
from mlops_lite.data.tables import TABLE_SUFFIXES
from mlops_lite.errors import Conflict, InvalidInput
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables import DataRepository
from mlops_lite.objects import ObjectStore
from mlops_lite.records import CommitRecord, RepositoryRecord
from mlops_lite.security.audit import AuditLog


class DataStore:
    def __init__(self, store: MetadataStore, objects: ObjectStore, audit: AuditLog, actor: str) -> None:
        self._ctx = DataContext(store, objects, audit, actor)

    def repo(self, name: str) -> Repository:
        return Repository(self._ctx, name)

    def repositories(self) -> list[RepositoryRecord]:
        with self._ctx.store.session() as session:
            names = [r.name for r in session.exec(select(DataRepository).order_by(DataRepository.name)).all()]
        return [self.repo(name).info() for name in names]

    def ingest(self, repository: str, source: Path, path: str, *, branch: str = "main",
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
        repo = self.repo(repository)
        target = repo.branch(branch)
        repo.create(exist_ok=True, actor=actor)
        digest = _sha256(source)
        head = target.head()
        try:
            if target.stat(path).digest == digest and head is not None:
                return head
        except LookupError:
            pass
        message = message or f"ingest {source.name} -> {path}"
        if branch not in repo.config().protected_branches:
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
            return staging.merge_into(branch, message=f"Merge {message}", actor=actor,
                                      metadata={"source": source.name})
        finally:
            staging.delete(actor=actor)

    def gc(self, *, retention_days: float = 7.0, dry_run: bool = True, grace_seconds: float = 3600) -> GcReport:
        """Remove objects unreachable from every ref and from commits newer than the retention."""
        if retention_days < 0 or grace_seconds < 0:
            raise InvalidInput("retention and grace must not be negative", field="retention_days",
                               expected="a number >= 0")
        return gc(self._ctx, retention=timedelta(days=retention_days), dry_run=dry_run, grace_seconds=grace_seconds)

    def fsck(self) -> FsckReport:
        return fsck(self._ctx)


def _sha256(source: Path) -> str:
    hasher = hashlib.sha256()
    with open(source, "rb") as stream:
        while chunk := stream.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()
