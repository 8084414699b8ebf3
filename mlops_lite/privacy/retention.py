"""Retention: data kept no longer than each repository's profile says (GDPR art. 5(1)(e)).

A repository whose privacy profile has ``retention_days`` and a ``time_column`` loses the
rows older than that from its whole history, with erasure's rewrite (old objects purged,
commits mapped, models flagged). Without a time column, the objects first committed more
than ``retention_days`` ago are removed from the head of every branch by a new commit
(history keeps them until ``gc`` is allowed to collect them). The prediction log and
feedback keep ``prediction_log_retention_days``. The daemon runs this daily; each run is
audited as ``privacy.retention``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import col, select

from mlops_lite.clock import utcnow
from mlops_lite.data.checks import RepositoryConfig
from mlops_lite.errors import Conflict
from mlops_lite.metadata.tables import DataBranch, DataCommit, DataRepository
from mlops_lite.privacy.erasure import HistoryRewriter, RowRule
from mlops_lite.records import RetentionReport, RetentionRun


def older_than(cutoff: datetime) -> Callable[[Sequence[str | None]], bool]:
    """A row test: the time value is before ``cutoff`` (a value that is no time is kept)."""
    def drops(values: Sequence[str | None]) -> bool:
        value = values[0] if values else None
        if value is None:
            return False
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            return False
        return (when if when.tzinfo else when.replace(tzinfo=UTC)) < cutoff
    return drops


class Retention:
    def __init__(self, rewriter: HistoryRewriter, *, log_days: int | None,
                 apply_log_retention: Callable[[int], int] | None, actor: str) -> None:
        self._rewriter = rewriter
        self._log_days = log_days
        self._apply_log = apply_log_retention
        self._actor = actor

    def run(self, *, dry_run: bool = False, actor: str | None = None) -> RetentionReport:
        actor = actor or self._actor
        self._rewriter.purge_pending()
        with self._rewriter.store.session() as session:
            repositories = [(r.name, RepositoryConfig.from_json(r.config).privacy)
                            for r in session.exec(select(DataRepository).order_by(col(DataRepository.name))).all()]
        runs = []
        for name, profile in repositories:
            if profile is None or profile.retention_days is None:
                continue
            cutoff = utcnow() - timedelta(days=profile.retention_days)
            if profile.time_column:
                runs.append(self._rows(name, profile.retention_days, profile.time_column, cutoff, dry_run, actor))
            else:
                runs.append(self._objects(name, profile.retention_days, cutoff, dry_run, actor))
        log_files = None
        if self._log_days is not None and self._apply_log is not None and not dry_run:
            log_files = self._apply_log(self._log_days)
        report = RetentionReport(dry_run=dry_run, repositories=tuple(runs), prediction_log_days=self._log_days,
                                 prediction_log_files=log_files)
        if not dry_run:
            with self._rewriter.store.session() as session:
                self._rewriter.audit.append(
                    session, actor=actor, action="privacy.retention", object="privacy:retention",
                    after={"repositories": {r.repository: {"days": r.retention_days, "rows": r.rows,
                                                           "objects": r.objects, "commits": r.commits,
                                                           "paths_removed": r.paths_removed} for r in runs},
                           "prediction_log_days": self._log_days, "prediction_log_files": log_files})
        return report

    def _rows(self, repository: str, days: int, column: str, cutoff: datetime, dry_run: bool,
              actor: str) -> RetentionRun:
        today = utcnow().date().isoformat()
        plan = self._rewriter.plan(repository, RowRule(columns=(column,), drops=older_than(cutoff)),
                                   mark={"retention": today}, write=not dry_run)
        rows = sum(plan.rows_removed.values())
        if plan.replacements and not dry_run:
            counts: dict[str, Any] = {"rows": rows, "objects": len(plan.replacements), "commits": len(plan.mapping)}
            self._rewriter.apply(plan, kind="retention", repository=repository, actor=actor, subject_digest=None,
                                 counts=counts, event_after={"retention_days": days, "time_column": column},
                                 flag_note=f"trained on data removed by retention on {today}; retrain suggested")
        return RetentionRun(repository=repository, retention_days=days, rows=rows, objects=len(plan.replacements),
                            commits=len(plan.mapping), paths_removed=0)

    def _objects(self, repository: str, days: int, cutoff: datetime, dry_run: bool, actor: str) -> RetentionRun:
        """A commit on each branch that removes the objects first committed before ``cutoff``."""
        rewriter = self._rewriter
        with rewriter.store.session() as session:
            commits = session.exec(select(DataCommit).where(col(DataCommit.repository) == repository)).all()
            branches = session.exec(select(DataBranch).where(col(DataBranch.repository) == repository)).all()
        first: dict[str, datetime] = {}
        for commit in commits:
            for _, digest, _ in rewriter.trees.walk(commit.tree):
                if digest not in first or commit.created_at < first[digest]:
                    first[digest] = commit.created_at
        by_id = {c.id: c for c in commits}
        moves: list[tuple[DataBranch, DataCommit, int]] = []
        removed_paths = 0
        for branch in branches:
            head = by_id.get(branch.head) if branch.head else None
            if head is None:
                continue
            old = {path: None for path, digest, _ in rewriter.trees.walk(head.tree)
                   if _aware(first[digest]) < cutoff}
            if not old:
                continue
            removed_paths += len(old)
            if dry_run:
                continue
            tree = rewriter.trees.apply(head.tree, old)
            now = utcnow()
            meta = {"retention": now.date().isoformat()}
            message = f"retention: {len(old)} object(s) first committed more than {days} days ago removed"
            body = {"repository": repository, "parents": [head.id], "tree": tree, "message": message,
                    "author": actor, "created_at": now.isoformat(), "meta": meta}
            commit_id = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            moves.append((branch, DataCommit(id=commit_id, repository=repository, parents=[head.id], tree=tree,
                                             message=message, author=actor, created_at=now, meta=meta), len(old)))
        if moves:
            with rewriter.store.session() as session:
                for branch, commit, count in moves:
                    current = session.get(DataBranch, (repository, branch.name))
                    if current is None or current.head != branch.head:
                        raise Conflict(f"branch {branch.name!r} of {repository!r} moved during retention; "
                                       "nothing was changed, run it again")
                    session.add(commit)
                    session.flush()
                    current.head = commit.id
                    session.add(current)
                    rewriter.audit.append(session, actor=actor, action="privacy.retention",
                                          object=f"data:{repository}/{branch.name}",
                                          before={"head": branch.head},
                                          after={"head": commit.id, "retention_days": days,
                                                 "paths_removed": count})
        return RetentionRun(repository=repository, retention_days=days, rows=0, objects=0,
                            commits=len(moves), paths_removed=removed_paths)


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)
