"""A data repository: its branches, tags, commits, rules and history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete
from sqlmodel import col, select

from mlops_lite.clock import utcnow
from mlops_lite.data.checks import RepositoryConfig, SchemaRule
from mlops_lite.data.context import DataContext, check_ref_name, check_repository_name, commit_record
from mlops_lite.data.reference import Branch, Reference, all_branches
from mlops_lite.data.tables import QueryResult, query
from mlops_lite.data.tree import DiffEntry
from mlops_lite.errors import Conflict, InvalidInput, NotFound
from mlops_lite.metadata.tables import DataBranch, DataCommit, DataRepository, DataStaged, DataTag
from mlops_lite.privacy.profile import PrivacyProfile
from mlops_lite.records import BranchRecord, CommitRecord, RepositoryRecord, TagRecord


class Repository:
    def __init__(self, ctx: DataContext, name: str) -> None:
        self._ctx = ctx
        self.name = check_repository_name(name)

    def create(self, *, default_branch: str = "main", exist_ok: bool = False,
               config: RepositoryConfig | None = None, actor: str | None = None) -> RepositoryRecord:
        """Create the repository with an empty default branch (protected unless ``config`` says otherwise)."""
        check_ref_name(default_branch)
        actor = actor or self._ctx.actor
        config = config or RepositoryConfig(protected_branches=(default_branch,))
        config.validate()
        with self._ctx.store.session() as session:
            existing = session.get(DataRepository, self.name)
            if existing is not None:
                if not exist_ok:
                    raise Conflict(f"data repository {self.name!r} already exists")
                return self._record(session, existing)
            row = DataRepository(name=self.name, default_branch=default_branch, created_at=utcnow(),
                                 created_by=actor, config=config.to_json())
            session.add(row)
            session.add(DataBranch(repository=self.name, name=default_branch, head=None, created_at=utcnow()))
            self._ctx.audit.append(session, actor=actor, action="data.repository.create",
                                   object=f"data:{self.name}", after={"default_branch": default_branch})
            session.flush()
            return self._record(session, row)

    def info(self) -> RepositoryRecord:
        with self._ctx.store.session() as session:
            return self._record(session, self._ctx.repository(session, self.name))

    def delete(self, *, actor: str | None = None) -> None:
        """Delete the repository's refs and commits; its objects go at the next ``gc``."""
        with self._ctx.store.session() as session:
            self._ctx.repository(session, self.name)
            for table in (DataStaged, DataBranch, DataTag, DataCommit):
                session.execute(delete(table).where(col(table.repository) == self.name))
            session.execute(delete(DataRepository).where(col(DataRepository.name) == self.name))
            self._ctx.audit.append(session, actor=actor or self._ctx.actor, action="data.repository.delete",
                                   object=f"data:{self.name}")

    def config(self) -> RepositoryConfig:
        with self._ctx.store.session() as session:
            return self._ctx.config(session, self.name)

    def configure(self, *, protected_branches: Sequence[str] | None = None,
                  schemas: Sequence[SchemaRule] | None = None, pii_patterns: Sequence[str] | None = None,
                  max_object_bytes: int | None = None, privacy: PrivacyProfile | None = None,
                  actor: str | None = None) -> RepositoryConfig:
        """Change the repository's rules; what is not given stays as it is."""
        with self._ctx.store.session() as session:
            row = self._ctx.repository(session, self.name)
            before = RepositoryConfig.from_json(row.config)
            after = RepositoryConfig(
                protected_branches=tuple(before.protected_branches if protected_branches is None
                                         else protected_branches),
                schemas=tuple(before.schemas if schemas is None else schemas),
                pii_patterns=tuple(before.pii_patterns if pii_patterns is None else pii_patterns),
                max_object_bytes=before.max_object_bytes if max_object_bytes is None else max_object_bytes,
                extra=before.extra, privacy=before.privacy if privacy is None else privacy)
            after.validate()
            row.config = after.to_json()
            session.add(row)
            self._ctx.audit.append(session, actor=actor or self._ctx.actor, action="data.repository.configure",
                                   object=f"data:{self.name}", before=before.to_json(), after=after.to_json())
        return after

    def branch(self, name: str) -> Branch:
        return Branch(self._ctx, self.name, check_ref_name(name))

    def ref(self, ref: str) -> Reference:
        if not isinstance(ref, str) or not ref:
            raise InvalidInput("a reference is needed", field="ref", expected="a branch, tag or commit id")
        return Reference(self._ctx, self.name, ref)

    def branches(self) -> list[BranchRecord]:
        with self._ctx.store.session() as session:
            self._ctx.repository(session, self.name)
            return [BranchRecord(self.name, b.name, b.head) for b in all_branches(session, self.name)]

    def commit(self, ref: str) -> CommitRecord:
        """The commit a ref (branch, tag, commit id) points at."""
        with self._ctx.store.session() as session:
            commit_id = self._ctx.resolve(session, self.name, ref)
            if commit_id is None:
                raise NotFound(f"{ref!r} of {self.name!r} has no commits yet")
            return commit_record(self._ctx.commit(session, self.name, commit_id))

    def log(self, ref: str | None = None, *, amount: int = 100, after: str | None = None) -> list[CommitRecord]:
        """Commits from ``ref`` (default: the default branch) back along first parents, newest
        first; ``after`` pages on."""
        if ref is None:
            with self._ctx.store.session() as session:
                ref = self._ctx.repository(session, self.name).default_branch
        return self.ref(ref).log(amount=amount, after=after)

    def diff(self, left: str, right: str, *, prefix: str = "", three_dot: bool = False) -> list[DiffEntry]:
        return self.ref(left).diff(right, prefix=prefix, three_dot=three_dot)

    # --- tags ---------------------------------------------------------------
    def create_tag(self, name: str, ref: str, *, actor: str | None = None) -> TagRecord:
        check_ref_name(name, "tag")
        with self._ctx.store.session() as session:
            commit = self._ctx.resolve(session, self.name, ref)
            if commit is None:
                raise NotFound(f"{ref!r} has no commit to tag")
            if session.get(DataTag, (self.name, name)) or session.get(DataBranch, (self.name, name)):
                raise Conflict(f"{name!r} already names a tag or branch of {self.name!r}")
            session.add(DataTag(repository=self.name, name=name, commit=commit, created_at=utcnow()))
            self._ctx.audit.append(session, actor=actor or self._ctx.actor, action="data.tag.create",
                                   object=f"data:{self.name}@{name}", after={"commit": commit})
        return TagRecord(self.name, name, commit)

    def delete_tag(self, name: str, *, actor: str | None = None) -> None:
        with self._ctx.store.session() as session:
            self._ctx.repository(session, self.name)
            row = session.get(DataTag, (self.name, name))
            if row is None:
                raise NotFound(f"tag {name!r} of {self.name!r} does not exist")
            session.delete(row)
            self._ctx.audit.append(session, actor=actor or self._ctx.actor, action="data.tag.delete",
                                   object=f"data:{self.name}@{name}", before={"commit": row.commit})

    def tags(self) -> list[TagRecord]:
        with self._ctx.store.session() as session:
            self._ctx.repository(session, self.name)
            rows = session.exec(select(DataTag).where(DataTag.repository == self.name).order_by(DataTag.name)).all()
        return [TagRecord(self.name, r.name, r.commit) for r in rows]

    def query(self, sql: str, **tables: tuple[str, str]) -> QueryResult:
        """DuckDB SQL over tables at refs: ``query("select ... from loans", loans=("main", "loans/*.csv"))``.
        DuckDB reads the object files in place; the result names the commit each table was read at."""
        return query(sql, tables, lambda ref, pattern: self.ref(ref).table_files(pattern))

    def _record(self, session: Any, row: DataRepository) -> RepositoryRecord:
        branches = {b.name: b.head for b in all_branches(session, row.name)}
        config = RepositoryConfig.from_json(row.config)
        return RepositoryRecord(name=row.name, default_branch=row.default_branch, created_at=row.created_at,
                                branches=branches, protected_branches=config.protected_branches)
