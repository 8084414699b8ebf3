"""A data repository: its branches, tags, commits, rules and history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

from sqlalchemy import delete
from sqlmodel import col, select

from mlops_lite.clock import utcnow
from mlops_lite.data.checks import RepositoryConfig, SchemaRule
from mlops_lite.data.context import DataContext, check_ref_name, check_repository_name, commit_record
from mlops_lite.data.reference import Branch, Reference, all_branches
from mlops_lite.data.tables import QueryResult, query
from mlops_lite.data.tree import DiffEntry
from mlops_lite.errors import Conflict, InvalidInput, NotFound, PolicyViolation
from mlops_lite.metadata.tables import DataBranch, DataCommit, DataRepository, DataStaged, DataTag, DataTombstone
from mlops_lite.privacy.profile import CLASSIFICATIONS, PrivacyProfile
from mlops_lite.records import BranchRecord, CommitRecord, RepositoryRecord, TagRecord


class Repository:
    def __init__(self, ctx: DataContext, name: str) -> None:
        self._ctx = ctx
        self.name = check_repository_name(name)

    def create(self, *, classification: str | None = None, privacy: PrivacyProfile | None = None,
               default_branch: str = "main", exist_ok: bool = False, config: RepositoryConfig | None = None,
               allow_weaker: bool = False, defaulted: bool = False, actor: str | None = None) -> RepositoryRecord:
        """Create the repository with an empty default branch (protected unless ``config``
        says otherwise). A repository never exists without a classification: give
        ``classification`` or a ``privacy`` profile (or a ``config`` that holds one); only
        ``exist_ok`` finding it already there needs neither. A personal or
        sensitive-personal repository without PII patterns checks the default ones
        (``DEFAULT_PII_PATTERNS``). A name whose repository was deleted takes the same
        or a stricter classification, unless ``allow_weaker`` (an admin's choice, audited).
        ``defaulted``: the classification is the installation's default, not the caller's
        choice (the lakeFS API cannot carry one); the audit event says so."""
        check_ref_name(default_branch)
        actor = actor or self._ctx.actor
        with self._ctx.store.session() as session:
            existing = session.get(DataRepository, self.name)
            if existing is not None:
                if not exist_ok:
                    raise Conflict(f"data repository {self.name!r} already exists")
                return self._record(session, existing)
        profile = classified(classification, privacy, config)
        config = replace(config or RepositoryConfig(protected_branches=(default_branch,)), privacy=profile)
        config.validate()
        self._ctx.place(self.name, "data.repository.create", profile=profile, actor=actor)
        with self._ctx.store.session() as session:
            raced = session.get(DataRepository, self.name)
            if raced is not None:
                if not exist_ok:
                    raise Conflict(f"data repository {self.name!r} already exists")
                return self._record(session, raced)
            before = self._tombstone(session)
            weaker = before is not None and rank(profile.classification) < rank(before.classification)
            if before is not None and weaker and not allow_weaker:
                raise PolicyViolation(
                    f"data repository {self.name!r} was deleted as {before.classification!r} "
                    f"(at {before.deleted_at.isoformat()}); it is made again only as {before.classification!r} "
                    "or stricter (an admin may allow a weaker one explicitly)",
                    details={"reasons": [f"classification {profile.classification!r} is weaker than "
                                         f"{before.classification!r}"]})
            row = DataRepository(name=self.name, default_branch=default_branch, created_at=utcnow(),
                                 created_by=actor, config=config.to_json())
            session.add(row)
            session.add(DataBranch(repository=self.name, name=default_branch, head=None, created_at=utcnow()))
            self._ctx.audit.append(session, actor=actor, action="data.repository.create",
                                   object=f"data:{self.name}",
                                   after={"default_branch": default_branch, "classification": profile.classification,
                                          **({"classification_defaulted": True} if defaulted else {}),
                                          **({"weaker_than_deleted": before.classification} if weaker and before
                                             else {})})
            session.flush()
            return self._record(session, row)

    def info(self) -> RepositoryRecord:
        with self._ctx.store.session() as session:
            return self._record(session, self._ctx.repository(session, self.name))

    def delete(self, *, actor: str | None = None) -> None:
        """Delete the repository's refs and commits; its objects go at the next ``gc``. A
        tombstone keeps its classification and its commits' records: lineage that names one
        of them says the repository was deleted, and the name is held to the classification.
        Over HTTP this needs the admin role (the route's permission); a local platform is
        its home's owner."""
        actor = actor or self._ctx.actor
        with self._ctx.store.session() as session:
            row = self._ctx.repository(session, self.name)
            classification = RepositoryConfig.from_json(row.config).classification
            commits = session.exec(select(DataCommit).where(DataCommit.repository == self.name)
                                   .order_by(col(DataCommit.created_at))).all()
            kept = [commit_record(c) for c in commits]
            session.add(DataTombstone(repository=self.name, deleted_at=utcnow(), deleted_by=actor,
                                      classification=classification,
                                      commits=[_commit_json(c) for c in kept]))
            for table in (DataStaged, DataBranch, DataTag, DataCommit):
                session.execute(delete(table).where(col(table.repository) == self.name))
            session.execute(delete(DataRepository).where(col(DataRepository.name) == self.name))
            self._ctx.audit.append(session, actor=actor, action="data.repository.delete",
                                   object=f"data:{self.name}",
                                   before={"classification": classification, "commits": len(kept)})

    def rotate_anonymization_key(self, *, actor: str | None = None) -> int:
        """Move the repository to its next pseudonymization key version (audited as
        ``keys.rotate``); answers the new version. Tokens made before stay tokens."""
        with self._ctx.store.session() as session:
            row = self._ctx.repository(session, self.name)
            before = RepositoryConfig.from_json(row.config)
            after = replace(before, anonymization_key_version=before.anonymization_key_version + 1)
            row.config = after.to_json()
            session.add(row)
            self._ctx.audit.append(session, actor=actor or self._ctx.actor, action="keys.rotate",
                                   object=f"data:{self.name}/anonymization",
                                   before={"version": before.anonymization_key_version},
                                   after={"version": after.anonymization_key_version})
        return after.anonymization_key_version

    def deleted(self) -> list[DataTombstone]:
        """The tombstones of repositories deleted under this name, newest first."""
        with self._ctx.store.session() as session:
            rows = session.exec(select(DataTombstone).where(DataTombstone.repository == self.name)
                                .order_by(col(DataTombstone.deleted_at).desc())).all()
            return list(rows)

    def _tombstone(self, session: Any) -> DataTombstone | None:
        found: DataTombstone | None = session.exec(select(DataTombstone).where(DataTombstone.repository == self.name)
                            .order_by(col(DataTombstone.deleted_at).desc()).limit(1)).first()
        return found

    def config(self) -> RepositoryConfig:
        with self._ctx.store.session() as session:
            return self._ctx.config(session, self.name)

    def configure(self, *, protected_branches: Sequence[str] | None = None,
                  schemas: Sequence[SchemaRule] | None = None, pii_patterns: Sequence[str] | None = None,
                  max_object_bytes: int | None = None, privacy: PrivacyProfile | None = None,
                  legacy_tokens: bool | None = None, actor: str | None = None) -> RepositoryConfig:
        """Change the repository's rules; what is not given stays as it is."""
        if privacy is not None:
            self._ctx.place(self.name, "data.repository.configure", profile=privacy, actor=actor)
        with self._ctx.store.session() as session:
            row = self._ctx.repository(session, self.name)
            before = RepositoryConfig.from_json(row.config)
            after = RepositoryConfig(
                protected_branches=tuple(before.protected_branches if protected_branches is None
                                         else protected_branches),
                schemas=tuple(before.schemas if schemas is None else schemas),
                pii_patterns=tuple(before.pii_patterns if pii_patterns is None else pii_patterns),
                max_object_bytes=before.max_object_bytes if max_object_bytes is None else max_object_bytes,
                extra=before.extra, privacy=before.privacy if privacy is None else privacy,
                anonymization_key_version=before.anonymization_key_version,
                legacy_tokens=before.legacy_tokens if legacy_tokens is None else legacy_tokens)
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
        """The commit a ref (branch, tag, commit id) points at. A commit of a deleted
        repository raises NotFound that says so, naming the commit (from its tombstone)."""
        with self._ctx.store.session() as session:
            if session.get(DataRepository, self.name) is None:
                self._raise_deleted(session, ref)
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

    def _raise_deleted(self, session: Any, ref: str) -> None:
        for tomb in session.exec(select(DataTombstone).where(DataTombstone.repository == self.name)
                                 .order_by(col(DataTombstone.deleted_at).desc())).all():
            for commit in tomb.commits:
                if commit["id"] == ref or (len(ref) >= 6 and commit["id"].startswith(ref)):
                    raise NotFound(f"data repository {self.name!r} was deleted at {tomb.deleted_at.isoformat()} by "
                                   f"{tomb.deleted_by}; its commit {commit['id']} ({commit['message']!r}) is "
                                   "recorded in the tombstone, its data is gone",
                                   details={"deleted": True, "repository": self.name, "commit": commit})
        self._ctx.repository(session, self.name)  # the plain "does not exist"

    def _record(self, session: Any, row: DataRepository) -> RepositoryRecord:
        branches = {b.name: b.head for b in all_branches(session, row.name)}
        config = RepositoryConfig.from_json(row.config)
        return RepositoryRecord(name=row.name, default_branch=row.default_branch, created_at=row.created_at,
                                branches=branches, protected_branches=config.protected_branches)


def rank(classification: str) -> int:
    """How restricted a classification is (public 0 .. sensitive-personal 3)."""
    return CLASSIFICATIONS.index(classification) if classification in CLASSIFICATIONS else len(CLASSIFICATIONS)


def classified(classification: str | None, privacy: PrivacyProfile | None,
               config: RepositoryConfig | None) -> PrivacyProfile:
    """The profile a new repository is made with: ``privacy``, else ``config.privacy``,
    else one of ``classification`` alone; refused without any, or when they disagree."""
    profile = privacy or (config.privacy if config is not None else None)
    if profile is None:
        if classification is None:
            raise InvalidInput("a data repository needs a classification (mlops-lite data repo create NAME "
                               "--classification ...)", field="classification",
                               expected=" | ".join(CLASSIFICATIONS))
        profile = PrivacyProfile(classification=classification)
    elif classification is not None and classification != profile.classification:
        raise InvalidInput(f"classification {classification!r} differs from the profile's "
                           f"{profile.classification!r}", field="classification", expected=profile.classification)
    profile.validate()
    return profile


def _commit_json(record: CommitRecord) -> dict[str, Any]:
    out = asdict(record)
    out["created_at"] = record.created_at.isoformat()
    out["parents"] = list(record.parents)
    return out
