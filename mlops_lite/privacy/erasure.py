"""Erasure of a data subject from a repository's whole history (GDPR art. 17).

Every CSV or Parquet object that any commit of the repository holds (and what its
branches have staged) is read through the object store (decrypted), and each one that
has rows to drop is written again without them. Every commit that reaches such an
object is written again with the new tree, keeping its message, author, time and
metadata (plus ``erased``); its descendants are re-parented, so history stays
walkable. Branches, tags, staging, the old -> new commit map, the flags on models
trained on replaced commits and the audit event change in one metadata transaction;
only then are the old objects deleted from the store. A crash before that transaction
leaves the repositories as they were (the new objects are unreferenced, and ``gc``
collects them); a crash after it leaves the old objects listed in ``privacy_erasures``,
and the next erasure or retention run deletes them.

Objects are shared by content across repositories (deduplication): an object that holds
the subject's rows in another repository is the same personal data, so every repository
that holds it is rewritten the same way, and the report names them.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from mlops_lite.clock import utcnow
from mlops_lite.data.checks import RepositoryConfig
from mlops_lite.data.tree import Entry, TreeStore, encode
from mlops_lite.errors import Conflict, InvalidInput, NotFound
from mlops_lite.metadata.audit import AuditTrail
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables import (
    DataBranch,
    DataCommit,
    DataRepository,
    DataStaged,
    DataTag,
    ModelVersion,
    PrivacyCommitMap,
    PrivacyErasure,
    PrivacyFlag,
)
from mlops_lite.objects import ObjectStore
from mlops_lite.records import CommitReplacement, ErasureReport, SubjectExport

TABLE_SUFFIXES = (".csv", ".parquet")
RowTest = Callable[[Sequence[str | None]], bool]
"""Whether a row goes, from the values (as text, None for a null) of the columns it is asked about."""


@dataclass(frozen=True)
class RowRule:
    """Which rows of a table go: those whose ``columns`` satisfy ``drops``. ``needles``, when
    given, are byte strings of which a CSV must hold one for any row to go (a fast pre-check:
    most objects hold none of a subject's identifiers)."""

    columns: tuple[str, ...]
    drops: RowTest
    needles: tuple[bytes, ...] = ()


class PredictionRows(Protocol):
    """What erasure and export need of the prediction log and feedback (``platform.monitoring``)."""

    def erase_rows(self, where_sql: str, params: Sequence[Any]) -> Any: ...

    def rows_where(self, where_sql: str, params: Sequence[Any]) -> Any: ...


def subject_digest(key: bytes, subject: str) -> str:
    """A keyed digest of a subject identifier: what the audit records, never the identifier."""
    scoped = hmac.new(key, b"mlops-lite privacy.subject", hashlib.sha256).digest()
    return hmac.new(scoped, subject.encode(), hashlib.sha256).hexdigest()[:32]


def is_table(path: str) -> bool:
    return path.lower().endswith(TABLE_SUFFIXES)


def drop_rows(path: str, content: bytes, rule: RowRule) -> tuple[bytes, int] | None:
    """``content`` without the rows ``rule`` drops, and how many went; None when none goes
    (or the table has none of the rule's columns)."""
    if path.lower().endswith(".parquet"):
        return _drop_parquet(content, rule)
    if rule.needles and not any(needle in content for needle in rule.needles):
        return None
    return _drop_csv(content, rule)


def _drop_csv(content: bytes, rule: RowRule) -> tuple[bytes, int] | None:
    """Rows are cut out as the bytes they were: every other row keeps its exact text."""
    text = content.decode("utf-8", errors="surrogateescape")
    consumed: list[str] = []

    def lines() -> Iterator[str]:
        for line in text.splitlines(keepends=True):
            consumed.append(line)
            yield line

    reader = csv.reader(lines())
    header = next(reader, None)
    if header is None:
        return None
    indices = [header.index(c) for c in rule.columns if c in header]
    if not indices:
        return None
    out = ["".join(consumed)]
    consumed.clear()
    removed = 0
    for row in reader:
        raw = "".join(consumed)
        consumed.clear()
        values = [row[i] if i < len(row) and row[i] != "" else None for i in indices]
        if rule.drops(values):
            removed += 1
        else:
            out.append(raw)
    if removed == 0:
        return None
    return "".join(out).encode("utf-8", errors="surrogateescape"), removed


def _drop_parquet(content: bytes, rule: RowRule) -> tuple[bytes, int] | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = pq.read_schema(io.BytesIO(content)).names
    present = [c for c in rule.columns if c in names]
    if not present:
        return None
    table = pq.read_table(io.BytesIO(content))
    columns = [[None if v is None else str(v) for v in table.column(c).to_pylist()] for c in present]
    keep = [not rule.drops(values) for values in zip(*columns, strict=True)]
    removed = keep.count(False)
    if removed == 0:
        return None
    out = io.BytesIO()
    pq.write_table(table.filter(pa.array(keep, type=pa.bool_())), out)
    return out.getvalue(), removed


@dataclass
class RewritePlan:
    """What a rewrite will change: object replacements and, per repository, new commits."""

    replacements: dict[str, tuple[str, int]] = field(default_factory=dict)  # old digest -> (new, size)
    rows_removed: dict[str, int] = field(default_factory=dict)               # old digest -> rows
    commits: dict[str, list[DataCommit]] = field(default_factory=dict)      # repository -> new rows
    mapping: dict[str, str] = field(default_factory=dict)                    # old commit -> new commit
    heads: dict[tuple[str, str], str | None] = field(default_factory=dict)   # (repo, branch) -> head seen
    tags: dict[tuple[str, str], str] = field(default_factory=dict)           # (repo, tag) -> commit seen

    @property
    def repositories(self) -> list[str]:
        return sorted(repo for repo, rows in self.commits.items() if rows)


class HistoryRewriter:
    """Rewrites repositories' history without the rows a ``RowRule`` drops (erasure and
    retention share it)."""

    def __init__(self, store: MetadataStore, objects: ObjectStore, audit: AuditTrail) -> None:
        self.store = store
        self.objects = objects
        self.trees = TreeStore(objects)
        self.audit = audit

    def plan(self, repository: str, rule: RowRule, *, mark: dict[str, str], write: bool) -> RewritePlan:
        """Read every table object of ``repository`` and decide the rewrite (``write``: store the
        new objects and tree nodes; unreferenced until ``apply``)."""
        plan = RewritePlan()
        with self.store.session() as session:
            commits = {c.id: c for c in session.exec(select(DataCommit)).all()}
            branches = session.exec(select(DataBranch)).all()
            tags = session.exec(select(DataTag)).all()
            staged = session.exec(select(DataStaged)).all()
        by_repo: dict[str, list[DataCommit]] = {}
        for commit in commits.values():
            by_repo.setdefault(commit.repository, []).append(commit)
        examined: dict[str, tuple[str, int] | None] = {}

        def examine(path: str, digest: str) -> None:
            if digest in examined or not is_table(path):
                return
            result = drop_rows(path, self.objects.get_bytes(digest), rule)
            if result is None:
                examined[digest] = None
                return
            content, removed = result
            new = self.objects.put_bytes(content) if write else (hashlib.sha256(content).hexdigest(), len(content))
            examined[digest] = new
            plan.replacements[digest] = new
            plan.rows_removed[digest] = removed

        seen: set[str] = set()  # subtrees already read: commits share every subtree they do not change
        for commit in by_repo.get(repository, []):
            for path, digest in self._tables(commit.tree, seen):
                examine(path, digest)
        for row in staged:
            if row.repository == repository and row.digest is not None:
                examine(row.path, row.digest)
        if not plan.replacements:
            return plan
        # Identical objects elsewhere (deduplicated by content) are the same rows: every
        # repository that holds one is rewritten too.
        memo: dict[str, str] = {}
        for repo, rows in by_repo.items():
            changed = self._rewrite_commits(rows, plan.replacements, mark, write, memo)
            if changed:
                plan.commits[repo] = list(changed.values())
                plan.mapping.update({old: new.id for old, new in changed.items()})
        plan.heads = {(b.repository, b.name): b.head for b in branches}
        plan.tags = {(t.repository, t.name): t.commit for t in tags}
        return plan

    def _tables(self, tree: str, seen: set[str], prefix: str = "") -> Iterator[tuple[str, str]]:
        """(path, digest) of the table objects under ``tree``, skipping subtrees in ``seen``."""
        if tree in seen:
            return
        seen.add(tree)
        for name, (kind, digest, _) in sorted(self.trees.read(tree).items()):
            if kind == "t":
                yield from self._tables(digest, seen, f"{prefix}{name}/")
            elif is_table(name):
                yield f"{prefix}{name}", digest

    def _rewrite_tree(self, tree: str, replacements: dict[str, tuple[str, int]], memo: dict[str, str],
                      write: bool) -> str:
        """The tree with the replaced objects swapped in (the same digest when it holds none);
        each subtree is rewritten once, however many commits share it."""
        if tree in memo:
            return memo[tree]
        entries = self.trees.read(tree)
        changed: dict[str, Entry] = {}
        for name, (kind, digest, size) in entries.items():
            if kind == "t":
                sub = self._rewrite_tree(digest, replacements, memo, write)
                if sub != digest:
                    changed[name] = ("t", sub, size)
            elif digest in replacements:
                changed[name] = ("b", *replacements[digest])
        result = tree
        if changed:
            merged = {**entries, **changed}
            result = self.trees.write(merged) if write else hashlib.sha256(encode(merged)).hexdigest()
        memo[tree] = result
        return result

    def _rewrite_commits(self, commits: list[DataCommit], replacements: dict[str, tuple[str, int]],
                         mark: dict[str, str], write: bool, memo: dict[str, str]) -> dict[str, DataCommit]:
        """Old commit id -> its new row, parents first, for every commit whose tree or parents change."""
        by_id = {c.id: c for c in commits}
        changed: dict[str, DataCommit] = {}
        for commit in _parents_first(by_id):
            tree = self._rewrite_tree(commit.tree, replacements, memo, write)
            parents = [changed[p].id if p in changed else p for p in (commit.parents or [])]
            if tree == commit.tree and parents == list(commit.parents or []):
                continue
            meta = {**dict(commit.meta or {}), **mark}
            body = {"repository": commit.repository, "parents": parents, "tree": tree, "message": commit.message,
                    "author": commit.author, "created_at": commit.created_at.isoformat(), "meta": meta}
            commit_id = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            changed[commit.id] = DataCommit(id=commit_id, repository=commit.repository, parents=parents, tree=tree,
                                            message=commit.message, author=commit.author,
                                            created_at=commit.created_at, meta=meta)
        return changed

    def apply(self, plan: RewritePlan, *, kind: str, repository: str, actor: str, subject_digest: str | None,
              counts: dict[str, Any], event_after: dict[str, Any], flag_note: str) -> str:
        """The one transaction: new commits in, old ones out, refs moved (compare-and-swap
        against what ``plan`` saw), staging, the map, the flags and the audit event. Answers
        the erasure id; then deletes the old objects."""
        erasure_id = uuid.uuid4().hex
        now = utcnow()
        repos = plan.repositories
        with self.store.session() as session:
            for rows in plan.commits.values():
                for row in rows:
                    if session.get(DataCommit, row.id) is None:
                        session.add(row)
            session.flush()
            for (repo, name), head in plan.heads.items():
                if repo not in repos:
                    continue
                current = session.get(DataBranch, (repo, name))
                if current is None or current.head != head:
                    raise Conflict(f"branch {name!r} of {repo!r} moved while its history was rewritten; "
                                   "nothing was changed, run it again")
                if head in plan.mapping:
                    current.head = plan.mapping[head]
                    session.add(current)
            for (repo, name), commit in plan.tags.items():
                if repo in repos and commit in plan.mapping:
                    session.execute(update(DataTag).where(col(DataTag.repository) == repo, col(DataTag.name) == name)
                                    .values(commit=plan.mapping[commit]))
            for old, (new, size) in plan.replacements.items():
                session.execute(update(DataStaged).where(col(DataStaged.digest) == old).values(digest=new, size=size))
            olds = list(plan.mapping)
            for start in range(0, len(olds), 1000):
                session.execute(delete(DataCommit).where(col(DataCommit.id).in_(olds[start:start + 1000])))
            repo_of = {row.id: repo for repo, rows in plan.commits.items() for row in rows}
            for old, new in plan.mapping.items():
                session.add(PrivacyCommitMap(old_commit=old, new_commit=new, repository=repo_of[new], erasure=erasure_id,
                                             mapped_at=now))
            session.add(PrivacyErasure(id=erasure_id, kind=kind, repository=repository,
                                       subject_digest=subject_digest, erased_at=now, actor=actor, counts=counts,
                                       purge=sorted(plan.replacements), purged=False))
            flagged = self._flag_models(session, plan.mapping, erasure_id, now, actor, flag_note)
            counts["models_flagged"] = len(flagged)
            self.audit.append(session, actor=actor, action=f"privacy.{kind}", object=f"data:{repository}",
                              after={**event_after, "erasure": erasure_id, "counts": counts,
                                     "repositories": repos, "commits": plan.mapping,
                                     "models_flagged": flagged})
        self.purge_pending()
        return erasure_id

    def _flag_models(self, session: Session, mapping: dict[str, str], erasure_id: str, now: datetime, actor: str,
                     note: str) -> list[str]:
        """Flag each model version trained on a replaced commit (or on an older commit that an
        earlier rewrite replaced by one): a retrain is suggested, never started."""
        replaced = set(mapping)
        earlier = session.exec(select(PrivacyCommitMap)).all()
        grew = True
        while grew:
            before = len(replaced)
            replaced |= {m.old_commit for m in earlier if m.new_commit in replaced}
            grew = len(replaced) != before
        flagged = []
        for version in session.exec(select(ModelVersion)).all():
            hit = sorted(replaced & set(version.data_commits or ()))
            if not hit:
                continue
            session.add(PrivacyFlag(model=version.model, version=version.version, erasure=erasure_id, note=note,
                                    data_commits=hit, flagged_at=now))
            self.audit.append(session, actor=actor, action="privacy.flag",
                              object=f"model:{version.model}@{version.version}",
                              after={"note": note, "erasure": erasure_id, "data_commits": hit})
            flagged.append(f"{version.model}@{version.version}")
        return flagged

    def purge_pending(self) -> int:
        """Delete the old objects of every rewrite whose transaction committed; answers how many."""
        removed = 0
        with self.store.session() as session:
            pending = session.exec(select(PrivacyErasure).where(col(PrivacyErasure.purged).is_(False))).all()
        if not pending:
            return 0
        live = self._referenced()
        for row in pending:
            for digest in row.purge:
                if digest in live:
                    continue  # the same bytes were committed again since: they are that commit's now
                path = self.objects.path_of(digest)  # deleted, never read: contents go through open()
                if path.exists():
                    path.unlink()
                    removed += 1
            with self.store.session() as session:
                session.execute(update(PrivacyErasure).where(col(PrivacyErasure.id) == row.id).values(purged=True))
        return removed

    def replacement(self, commit_id: str) -> CommitReplacement:
        """What replaced ``commit_id`` (followed to the commit that stands now); NotFound when
        no erasure or retention run replaced it."""
        with self.store.session() as session:
            row = session.get(PrivacyCommitMap, commit_id)
            if row is None:
                raise NotFound(f"no erasure or retention run replaced commit {commit_id!r}")
            first = row
            seen = {row.old_commit}
            while (later := session.get(PrivacyCommitMap, row.new_commit)) is not None and later.old_commit not in seen:
                seen.add(later.old_commit)
                row = later
            run = session.get(PrivacyErasure, first.erasure)
        return CommitReplacement(old_commit=commit_id, new_commit=row.new_commit, repository=row.repository,
                                 kind=run.kind if run is not None else "erase", at=first.mapped_at)

    def _referenced(self) -> set[str]:
        live: set[str] = set()
        with self.store.session() as session:
            trees = [c.tree for c in session.exec(select(DataCommit)).all()]
            live |= {s.digest for s in session.exec(select(DataStaged)).all() if s.digest}
        for tree in trees:
            self.trees.reachable(tree, live)
        return live


def _parents_first(commits: dict[str, DataCommit]) -> Iterator[DataCommit]:
    done: set[str] = set()
    for start in sorted(commits):
        stack: list[tuple[str, bool]] = [(start, False)]
        while stack:
            commit_id, expanded = stack.pop()
            if commit_id in done or commit_id not in commits:
                continue
            if expanded:
                done.add(commit_id)
                yield commits[commit_id]
                continue
            stack.append((commit_id, True))
            stack.extend((p, False) for p in commits[commit_id].parents or () if p not in done)


class Erasure:
    """``privacy erase`` and ``privacy export`` over the embedded data store."""

    def __init__(self, rewriter: HistoryRewriter, *, subject_key: bytes,
                 tokens: Callable[[str, str], Iterable[str]], predictions: PredictionRows | None,
                 actor: str) -> None:
        self._rewriter = rewriter
        self._subject_key = subject_key
        self._tokens = tokens
        self._predictions = predictions
        self._actor = actor

    def _subject(self, repository: str, subject: str) -> tuple[tuple[str, ...], frozenset[str]]:
        """The repository's subject columns and every value that names the subject there (the
        identifier as given, without surrounding blanks, and its tokens)."""
        if not isinstance(subject, str) or not subject.strip():
            raise InvalidInput("the subject identifier is empty", field="subject",
                               expected="the subject's identifier, or its pseudonymous token")
        if not isinstance(repository, str) or not repository:
            raise InvalidInput("a repository is needed", field="repository", expected="a data repository's name")
        with self._rewriter.store.session() as session:
            row = session.get(DataRepository, repository)
            if row is None:
                raise NotFound(f"data repository {repository!r} does not exist")
            profile = RepositoryConfig.from_json(row.config).privacy
        columns = tuple(profile.subject_columns) if profile is not None else ()
        if not columns:
            raise InvalidInput(f"data repository {repository!r} declares no subject columns",
                               field="privacy.subject_columns",
                               expected="the columns that identify a data subject (mlops-lite data repo privacy R --subject-column C)")
        subject = subject.strip()
        return columns, frozenset({subject, *self._tokens(repository, subject)})

    def _rule(self, columns: tuple[str, ...], values: frozenset[str]) -> RowRule:
        return RowRule(columns=columns, drops=lambda row: any(v in values for v in row if v is not None),
                       needles=tuple(v.encode() for v in values))

    def _where(self, columns: tuple[str, ...], values: frozenset[str]) -> tuple[str, list[Any]]:
        ordered = sorted(values)
        marks = ", ".join("?" for _ in ordered)
        where = " OR ".join(f'CAST("f_{c}" AS VARCHAR) IN ({marks})' for c in columns)
        return where, [v for _ in columns for v in ordered]

    def erase(self, repository: str, subject: str, *, dry_run: bool = False,
              actor: str | None = None) -> ErasureReport:
        columns, values = self._subject(repository, subject)
        digest = subject_digest(self._subject_key, subject.strip())
        self._rewriter.purge_pending()  # what a run that crashed after its transaction left
        today = utcnow().date().isoformat()
        plan = self._rewriter.plan(repository, self._rule(columns, values), mark={"erased": today},
                                   write=not dry_run)
        rows = sum(plan.rows_removed.values())
        counts: dict[str, Any] = {"rows": rows, "objects": len(plan.replacements), "commits": len(plan.mapping),
                                  "prediction_log_rows": None}
        if dry_run:
            return ErasureReport(repository=repository, subject_digest=digest, dry_run=True, erasure=None,
                                 rows=rows, objects=len(plan.replacements), commits=dict(plan.mapping),
                                 repositories=tuple(plan.repositories), prediction_log_rows=None,
                                 models_flagged=0)
        if self._predictions is not None:
            where, params = self._where(columns, values)
            try:
                counts["prediction_log_rows"] = _count(self._predictions.erase_rows(where, params))
            except InvalidInput as exc:
                if exc.field != "where_sql":
                    raise
                counts["prediction_log_rows"] = 0  # no model was ever served these columns
        erasure = self._rewriter.apply(
            plan, kind="erase", repository=repository, actor=actor or self._actor, subject_digest=digest,
            counts=counts, event_after={"subject_digest": digest},
            flag_note=f"trained on data erased on {today}; retrain suggested")
        return ErasureReport(repository=repository, subject_digest=digest, dry_run=False, erasure=erasure,
                             rows=rows, objects=len(plan.replacements), commits=dict(plan.mapping),
                             repositories=tuple(plan.repositories),
                             prediction_log_rows=counts["prediction_log_rows"],
                             models_flagged=counts["models_flagged"])

    def replacement(self, commit_id: str) -> CommitReplacement:
        return self._rewriter.replacement(commit_id)

    def export(self, repository: str, subject: str, *, actor: str | None = None) -> SubjectExport:
        """Every row of the subject at the head of every branch, and in the prediction log."""
        columns, values = self._subject(repository, subject)
        rule = self._rule(columns, values)
        found: list[dict[str, Any]] = []
        rewriter = self._rewriter
        with rewriter.store.session() as session:
            branches = session.exec(select(DataBranch).where(col(DataBranch.repository) == repository)
                                    .order_by(col(DataBranch.name))).all()
            heads = {b.name: (b.head, session.get(DataCommit, b.head) if b.head else None) for b in branches}
        for branch, (head, commit) in heads.items():
            if commit is None:
                continue
            tree = commit.tree
            for path, digest, _ in rewriter.trees.walk(tree):
                if is_table(path):
                    found += [{"branch": branch, "commit": head, "path": path, "row": row}
                              for row in matching_rows(path, rewriter.objects.get_bytes(digest), rule)]
        predictions: list[dict[str, Any]] = []
        if self._predictions is not None:
            where, params = self._where(columns, values)
            try:
                predictions = _jsonable_rows(self._predictions.rows_where(where, params))
            except InvalidInput as exc:
                if exc.field != "sql":
                    raise
                predictions = []  # no model was ever served these columns
        digest = subject_digest(self._subject_key, subject.strip())
        with rewriter.store.session() as session:
            rewriter.audit.append(session, actor=actor or self._actor, action="privacy.export",
                                  object=f"data:{repository}",
                                  after={"subject_digest": digest, "rows": len(found),
                                         "prediction_log_rows": len(predictions)})
        return SubjectExport(repository=repository, subject_digest=digest, rows=tuple(found),
                             predictions=tuple(predictions), exported_at=utcnow())


def matching_rows(path: str, content: bytes, rule: RowRule) -> list[dict[str, Any]]:
    """The rows of a table that ``rule`` drops, as dicts of column -> value (text for CSV)."""
    if path.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(content))
        present = [c for c in rule.columns if c in table.column_names]
        if not present:
            return []
        rows = table.to_pylist()
        return [_plain(r) for r in rows
                if rule.drops([None if r[c] is None else str(r[c]) for c in present])]
    if rule.needles and not any(n in content for n in rule.needles):
        return []
    reader = csv.DictReader(io.StringIO(content.decode("utf-8", errors="replace")))
    present = [c for c in rule.columns if c in (reader.fieldnames or [])]
    if not present:
        return []
    return [dict(r) for r in reader if rule.drops([r.get(c) or None for c in present])]


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, str | int | float | bool) or v is None else str(v) for k, v in row.items()}


def _jsonable_rows(rows: Any) -> list[dict[str, Any]]:
    if hasattr(rows, "to_pylist"):
        rows = rows.to_pylist()
    return [_plain(dict(r)) for r in rows or ()]


def _count(result: Any) -> int | None:
    if isinstance(result, int):
        return result
    for name in ("rows", "removed", "erased", "count"):
        value = getattr(result, name, None)
        if isinstance(value, int):
            return value
    return None
