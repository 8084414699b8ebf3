"""``platform.data``: lakeFS-style repositories, branches, commits and objects.

Locally the content-addressed store in the home (mlops_lite/data/); remotely, and on a
lakeFS server, the lakefs backend (mlops_lite/data/lakefs_backend.py) speaking the lakeFS
API. Handles are cheap and touch nothing until a verb runs.

Over lakeFS calls alone (``LakeFSDataStore``, so against a plain lakeFS server too),
``Reference.open`` downloads into a temporary file, ``Branch.import_directory`` uploads
file by file, ``query`` runs DuckDB over the tables' objects downloaded at one commit
each, and ``config`` reads the rules lakeFS keeps (branch protection rules; PII patterns
in the repository metadata key ``mlops_lite.pii_patterns``).

Remotely an mlops-lite server answers, beyond lakeFS's API, a repository's rules
(``config``/``configure``/``create(config=...)``), ``query``, ``gc`` and ``fsck`` on its
/v1 data routes (server/data.py, mlops_lite/client/data.py).

Off the Protocol, with why:
- ``Reference.object_file``/``table_files`` and ``DataStore.object_file``: where objects
  lie on the local disk; remotely there is no such file (``open`` and ``read_table``
  read the bytes either way).

On the Protocol, refused by a plain lakeFS server (``data_backend="lakefs"``) with
BackendUnavailable naming what lakeFS lacks: ``configure`` and ``create(config=...)``
(its rules are set on the lakeFS server; it has no pinned schemas or size limit), and
``gc``/``fsck`` (the lakeFS server's own jobs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from mlops_lite.records import (
    BranchRecord,
    CommitRecord,
    Listing,
    ObjectRecord,
    RepositoryRecord,
    TagRecord,
)

if TYPE_CHECKING:
    from mlops_lite.data.checks import RepositoryConfig, SchemaRule
    from mlops_lite.data.lifecycle import FsckReport, GcReport
    from mlops_lite.data.tables import QueryResult
    from mlops_lite.data.tree import DiffEntry
    from mlops_lite.privacy.profile import PrivacyProfile


class ReferenceAPI(Protocol):
    """A branch name, tag or commit id, resolved when a verb needs it."""

    ref: str

    def resolve(self) -> str: ...

    def commit_record(self) -> CommitRecord:
        """The commit this reference points at now."""

    def log(self, *, amount: int = 100, after: str | None = None) -> list[CommitRecord]: ...

    def stat(self, path: str) -> ObjectRecord: ...

    def read_bytes(self, path: str, *, start: int | None = None, end: int | None = None) -> bytes: ...

    def open(self, path: str) -> BinaryIO:
        """The object's bytes as a binary file to read (close it when done)."""

    def objects(self, prefix: str = "") -> Iterator[ObjectRecord]: ...

    def ls(self, prefix: str = "", *, delimiter: str = "", after: str = "", amount: int = 1000) -> Listing: ...

    def paths(self, pattern: str) -> list[ObjectRecord]: ...

    def diff(self, other: str, *, prefix: str = "", three_dot: bool = False) -> list[DiffEntry]: ...

    def read_table(self, path: str) -> Any:
        """A ``TableRead``: the pyarrow table of the CSV/Parquet objects at ``path`` (or a
        glob) and the one commit it was read at."""


class BranchAPI(ReferenceAPI, Protocol):
    @property
    def name(self) -> str: ...

    def create(self, source: str | None = None, *, exist_ok: bool = False) -> BranchRecord: ...

    def delete(self) -> None: ...

    def head(self) -> CommitRecord | None: ...

    def upload(self, path: str, source: Path | bytes | BinaryIO, *, if_absent: bool = False) -> ObjectRecord: ...

    def import_directory(self, folder: Path, *, prefix: str = "", workers: int = 2,
                         progress: Callable[[int, int], None] | None = None) -> int:
        """Stage every file under ``folder`` at ``prefix`` + its relative path; the count."""

    def delete_object(self, path: str, *, missing_ok: bool = False) -> bool: ...

    def uncommitted(self) -> list[DiffEntry]: ...

    def reset(self, *, path: str | None = None, prefix: str | None = None) -> int: ...

    def commit(self, message: str, *, metadata: Mapping[str, str] | None = None) -> CommitRecord: ...

    def merge_into(self, destination: str, *, strategy: str = "fail", rules: Mapping[str, str] | None = None,
                   message: str | None = None, metadata: Mapping[str, str] | None = None,
                   if_nothing: str = "skip") -> CommitRecord: ...

    def revert(self, commit: str, *, parent_number: int = 0, message: str | None = None,
               metadata: Mapping[str, str] | None = None, allow_empty: bool = False) -> CommitRecord: ...


class RepositoryAPI(Protocol):
    name: str

    def create(self, *, classification: str | None = None, privacy: PrivacyProfile | None = None,
               default_branch: str = "main", exist_ok: bool = False, config: RepositoryConfig | None = None,
               allow_weaker: bool = False) -> RepositoryRecord:
        """Create the repository with its classification (or ``privacy`` profile): refused
        without one unless ``exist_ok`` finds it there; a deleted repository's name takes the
        same or a stricter classification unless ``allow_weaker`` (admin)."""

    def info(self) -> RepositoryRecord: ...

    def config(self) -> RepositoryConfig:
        """The repository's rules: protected branches, pinned schemas, PII patterns, size limit."""

    def configure(self, *, protected_branches: Sequence[str] | None = None,
                  schemas: Sequence[SchemaRule] | None = None, pii_patterns: Sequence[str] | None = None,
                  max_object_bytes: int | None = None) -> RepositoryConfig:
        """Change the rules; what is not given stays as it is."""

    def query(self, sql: str, **tables: tuple[str, str]) -> QueryResult:
        """DuckDB SQL over tables at refs (``loans=("main", "loans/*.csv")``); the result
        names the commit each table was read at."""

    def delete(self) -> None: ...

    def branch(self, name: str) -> BranchAPI: ...

    def ref(self, ref: str) -> ReferenceAPI: ...

    def branches(self) -> list[BranchRecord]: ...

    def commit(self, ref: str) -> CommitRecord: ...

    def log(self, ref: str | None = None, *, amount: int = 100, after: str | None = None) -> list[CommitRecord]: ...

    def diff(self, left: str, right: str, *, prefix: str = "", three_dot: bool = False) -> list[DiffEntry]: ...

    def create_tag(self, name: str, ref: str) -> TagRecord: ...

    def delete_tag(self, name: str) -> None: ...

    def tags(self) -> list[TagRecord]: ...


class DataAPI(Protocol):
    def repo(self, name: str) -> RepositoryAPI: ...

    def repositories(self) -> list[RepositoryRecord]: ...

    def ingest(self, repository: str, source: Path, path: str, *, branch: str = "main",
               message: str | None = None) -> CommitRecord:
        """Anonymize, validate and commit one CSV/Parquet file on ``branch``."""

    def pii_patterns(self, repository: str) -> tuple[str, ...]: ...

    def gc(self, *, retention_days: float = 7.0, dry_run: bool = True, grace_seconds: float = 3600) -> GcReport:
        """Remove objects nothing reaches (a dry run unless ``dry_run`` is false)."""

    def fsck(self) -> FsckReport:
        """Verify every object's digest and every commit's tree."""
