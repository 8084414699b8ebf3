"""The ``platform.data`` facet."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlmodel import select

from mlops_lite.data.context import DataContext
from mlops_lite.data.ingest import ingest
from mlops_lite.data.lifecycle import FsckReport, GcReport, fsck, gc
from mlops_lite.data.repository import Repository
from mlops_lite.errors import InvalidInput
from mlops_lite.metadata.audit import AuditTrail
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables import DataRepository
from mlops_lite.objects import ObjectStore
from mlops_lite.records import CommitRecord, RepositoryRecord


class DataStore:
    def __init__(self, store: MetadataStore, objects: ObjectStore, audit: AuditTrail, actor: str) -> None:
        self._ctx = DataContext(store, objects, audit, actor)

    def enforce_residency(self, check: Callable[[str, Any, str, str | None], None]) -> None:
        """Every write, repository creation and reconfiguration asks ``check`` first (see
        ``DataContext.place``)."""
        self._ctx.residency = check

    @property
    def objects(self) -> ObjectStore:
        """The content-addressed store of every repository's objects (erasure rewrites in it)."""
        return self._ctx.objects

    def repo(self, name: str) -> Repository:
        return Repository(self._ctx, name)

    def repositories(self) -> list[RepositoryRecord]:
        with self._ctx.store.session() as session:
            names = [r.name for r in session.exec(select(DataRepository).order_by(DataRepository.name)).all()]
        return [self.repo(name).info() for name in names]

    def ingest(self, repository: str, source: Path, path: str, *, branch: str = "main",
               message: str | None = None, actor: str | None = None) -> CommitRecord:
        """See ``mlops_lite.data.ingest.ingest``."""
        return ingest(self, repository, source, path, branch=branch, message=message, actor=actor)

    def pii_patterns(self, repository: str) -> tuple[str, ...]:
        """The PII column patterns the repository's checks enforce (its own, else the default
        ones of a personal repository; none for a repository that does not exist yet)."""
        from mlops_lite.errors import NotFound

        try:
            return self.repo(repository).config().effective_pii_patterns
        except NotFound:
            return ()

    def object_file(self, digest: str) -> Path:
        """The file holding the object ``digest`` (read-only: objects are content-addressed):
        its ciphertext when the store is encrypted; read contents with ``open_object``."""
        return self._ctx.objects.path_of(digest)

    def open_object(self, digest: str) -> BinaryIO:
        """The content of object ``digest`` as a seekable file (decrypted as it is read).
        Reading by digest needs no query and cannot race a change of the path at a ref."""
        return self._ctx.objects.open(digest)

    def has_object(self, digest: str) -> bool:
        return self._ctx.objects.exists(digest)

    def gc(self, *, retention_days: float = 7.0, dry_run: bool = True, grace_seconds: float = 3600) -> GcReport:
        """Remove objects unreachable from every ref and from commits newer than the retention."""
        if retention_days < 0 or grace_seconds < 0:
            raise InvalidInput("retention and grace must not be negative", field="retention_days",
                               expected="a number >= 0")
        return gc(self._ctx, retention=timedelta(days=retention_days), dry_run=dry_run, grace_seconds=grace_seconds)

    def fsck(self) -> FsckReport:
        return fsck(self._ctx)

