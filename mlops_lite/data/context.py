"""What the data handles share: the stores, per-branch locks, and the steps every
ref-moving operation takes (checks, then one transaction that moves the ref by
compare-and-swap, clears what it consumed and appends the audit event)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlmodel import Session, col

from mlops_lite.clock import utcnow
from mlops_lite.data.checks import RepositoryConfig, run_checks
from mlops_lite.data.tree import Change, TreeStore
from mlops_lite.errors import Conflict, InvalidInput, NotFound, PolicyViolation
from mlops_lite.metadata.audit import AuditTrail
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables import DataBranch, DataCommit, DataRepository, DataStaged, DataTag
from mlops_lite.objects import ObjectStore
from mlops_lite.records import CommitRecord

REPOSITORY_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")
REF_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,127}$")
COMMIT_ID = re.compile(r"^[0-9a-f]{64}$")


def check_repository_name(name: str) -> str:
    if not isinstance(name, str) or not REPOSITORY_NAME.match(name):
        raise InvalidInput(f"bad repository name {name!r}", field="repository",
                           expected="3-63 characters: lowercase letters, digits and '-', starting with a letter or digit")
    return name


def check_ref_name(name: str, what: str = "branch") -> str:
    if not isinstance(name, str) or not REF_NAME.match(name) or ".." in name or name.endswith("/"):
        raise InvalidInput(f"bad {what} name {name!r}", field=what,
                           expected="letters, digits, '_', '-', '.', '/' (no '..'), at most 128, "
                                    "starting with a letter or digit")
    return name


def check_path(path: str) -> str:
    if not isinstance(path, str):
        raise InvalidInput("the object path must be a string", field="path", expected="a relative path")
    parts = path.split("/")
    if not path or path.startswith("/") or "\x00" in path or any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"bad object path {path!r}", field="path",
                           expected="a relative path like 'loans/train.csv': no leading '/', no '..', "
                                    "no empty parts, no NUL")
    return path


def commit_record(row: DataCommit) -> CommitRecord:
    return CommitRecord(id=row.id, repository=row.repository, parents=tuple(row.parents or ()), tree=row.tree,
                        message=row.message, author=row.author, created_at=row.created_at,
                        metadata=dict(row.meta or {}))


class DataContext:
    def __init__(self, store: MetadataStore, objects: ObjectStore, audit: AuditTrail, actor: str) -> None:
        self.store = store
        self.objects = objects
        self.trees = TreeStore(objects)
        self.audit = audit
        self.actor = actor
        self._locks: dict[tuple[str, str], threading.RLock] = {}
        self._locks_guard = threading.Lock()
        # (repository, a loader of its privacy profile, action, actor) -> None, or PolicyViolation
        # naming the residency rule: the Platform sets it (mlops_lite.privacy.residency), the rules
        # live in the policy. The profile loads only when the rules restrict something.
        self.residency: Callable[[str, Any, str, str | None], None] | None = None

    def place(self, repository: str, action: str, *, profile: Any = None, actor: str | None = None) -> None:
        """Refuse, before anything is written, bytes of ``repository`` (its stored privacy
        profile, or ``profile`` when one is being set) that the residency rules do not
        allow in its region."""
        if self.residency is None:
            return

        def stored() -> Any:
            with self.store.session() as session:
                return self.config(session, repository).privacy

        self.residency(repository, stored if profile is None else lambda: profile, action, actor)

    def branch_lock(self, repository: str, branch: str) -> threading.RLock:
        with self._locks_guard:
            return self._locks.setdefault((repository, branch), threading.RLock())

    # --- reads ------------------------------------------------------------
    def repository(self, session: Session, name: str) -> DataRepository:
        row = session.get(DataRepository, name)
        if row is None:
            raise NotFound(f"data repository {name!r} does not exist")
        return row

    def config(self, session: Session, name: str) -> RepositoryConfig:
        return RepositoryConfig.from_json(self.repository(session, name).config)

    def branch(self, session: Session, repository: str, name: str) -> DataBranch:
        self.repository(session, repository)
        row = session.get(DataBranch, (repository, name))
        if row is None:
            raise NotFound(f"branch {name!r} of {repository!r} does not exist")
        return row

    def commit(self, session: Session, repository: str, commit_id: str) -> DataCommit:
        row = session.get(DataCommit, commit_id)
        if row is None or row.repository != repository:
            raise NotFound(f"commit {commit_id!r} is not in {repository!r}")
        return row

    def resolve(self, session: Session, repository: str, ref: str) -> str | None:
        """A branch (its head, None when it has no commit), a tag, or a commit id (or a unique prefix)."""
        self.repository(session, repository)
        branch = session.get(DataBranch, (repository, ref))
        if branch is not None:
            return branch.head
        tag = session.get(DataTag, (repository, ref))
        if tag is not None:
            return tag.commit
        if COMMIT_ID.match(ref):
            return self.commit(session, repository, ref).id
        if re.fullmatch(r"[0-9a-f]{6,63}", ref):
            found = session.execute(select(col(DataCommit.id)).where(
                col(DataCommit.repository) == repository, col(DataCommit.id).startswith(ref)).limit(2)).scalars().all()
            if len(found) == 1:
                return str(found[0])
        raise NotFound(f"{ref!r} is not a branch, tag or commit of {repository!r}")

    def tree_of(self, session: Session, repository: str, commit_id: str | None) -> str | None:
        return None if commit_id is None else self.commit(session, repository, commit_id).tree

    def staged(self, session: Session, repository: str, branch: str) -> dict[str, Change]:
        rows = session.execute(select(col(DataStaged.path), col(DataStaged.digest), col(DataStaged.size)).where(
            col(DataStaged.repository) == repository, col(DataStaged.branch) == branch)).all()
        return {path: (digest, size) if digest is not None else None for path, digest, size in rows}

    # --- writes -----------------------------------------------------------
    def stage(self, session: Session, repository: str, branch: str,
              entries: Iterable[tuple[str, str | None, int]]) -> int:
        """Stage (path, digest or None for a delete, size) rows in bulk; returns how many."""
        rows: list[dict[str, Any]] = [{"repository": repository, "branch": branch, "path": p, "digest": d, "size": s}
                                      for p, d, s in entries]
        if not rows:
            return 0
        self.unstage(session, repository, branch, [r["path"] for r in rows])
        if self.store.is_duckdb:
            import pyarrow as pa

            batch = pa.Table.from_pylist(rows, schema=pa.schema([
                ("repository", pa.string()), ("branch", pa.string()), ("path", pa.string()),
                ("digest", pa.string()), ("size", pa.int64())]))
            raw = session.connection().connection.dbapi_connection
            raw.register("mlops_staged_batch", batch)  # type: ignore[union-attr]
            try:
                raw.execute("INSERT INTO data_staged (repository, branch, path, digest, size) "  # type: ignore[union-attr]
                            "SELECT repository, branch, path, digest, size FROM mlops_staged_batch")
            finally:
                raw.unregister("mlops_staged_batch")  # type: ignore[union-attr]
        else:
            session.execute(insert(DataStaged), rows)
        return len(rows)

    def unstage(self, session: Session, repository: str, branch: str, paths: list[str]) -> None:
        for start in range(0, len(paths), 5000):
            session.execute(delete(DataStaged).where(
                col(DataStaged.repository) == repository, col(DataStaged.branch) == branch,
                col(DataStaged.path).in_(paths[start:start + 5000])))

    def clear_staged(self, session: Session, repository: str, branch: str) -> None:
        session.execute(delete(DataStaged).where(col(DataStaged.repository) == repository,
                                                 col(DataStaged.branch) == branch))

    def check(self, session: Session, repository: str, changes: Mapping[str, Change], *,
              branch: str | None = None) -> None:
        """Run the repository's checks over what ``changes`` add or modify on ``branch``
        (a protected one also gets the k-anonymity check)."""
        config = self.config(session, repository)
        if not config.has_rules:
            return  # no rules: skip building a Path per changed object (most of a big commit's time)
        changed = [(path, partial(self.objects.open, change[0]), change[1])
                   for path, change in sorted(changes.items()) if change is not None]
        reasons = run_checks(config, changed, protected=branch is not None and branch in config.protected_branches)
        if reasons:
            raise PolicyViolation(f"{len(reasons)} data check(s) failed: " + "; ".join(reasons),
                                  details={"reasons": reasons})

    def write_commit(self, session: Session, repository: str, branch: str, *, expected_head: str | None,
                     tree: str, parents: list[str], message: str, author: str, metadata: Mapping[str, str],
                     action: str, audit_extra: dict[str, Any] | None = None) -> CommitRecord:
        """Insert the commit and move ``branch`` from ``expected_head`` to it (compare-and-swap)."""
        created_at = utcnow()
        body = {"repository": repository, "parents": parents, "tree": tree, "message": message, "author": author,
                "created_at": created_at.isoformat(), "meta": dict(metadata)}
        commit_id = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        row = DataCommit(id=commit_id, repository=repository, parents=parents, tree=tree, message=message,
                         author=author, created_at=created_at, meta=dict(metadata))
        session.add(row)
        session.flush()
        head_matches = (col(DataBranch.head).is_(None) if expected_head is None
                        else col(DataBranch.head) == expected_head)
        # RETURNING, not rowcount: DuckDB's driver reports rowcount -1 for UPDATE.
        moved = session.execute(update(DataBranch).where(and_(
            col(DataBranch.repository) == repository, col(DataBranch.name) == branch, head_matches))
            .values(head=commit_id).returning(col(DataBranch.name))).all()
        if len(moved) != 1:
            raise Conflict(f"branch {branch!r} of {repository!r} moved while this commit was prepared; "
                           "nothing was written, try again")
        self.audit.append(session, actor=author, action=action, object=f"data:{repository}/{branch}",
                          before={"head": expected_head}, after={"head": commit_id, **(audit_extra or {})})
        return commit_record(row)

    def validate_metadata(self, metadata: Mapping[str, Any] | None) -> dict[str, str]:
        if metadata is None:
            return {}
        if not isinstance(metadata, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                         for k, v in metadata.items()):
            raise InvalidInput("commit metadata must map strings to strings", field="metadata",
                               expected='{"key": "value", ...}')
        return dict(metadata)
