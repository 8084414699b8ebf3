"""Garbage collection and integrity checks of the data store."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlmodel import select

from mlops_lite.clock import utcnow
from mlops_lite.metadata.tables import DataBranch, DataCommit, DataStaged, DataTag


@dataclass(frozen=True)
class GcReport:
    dry_run: bool
    objects_total: int
    unreachable: int
    bytes_unreachable: int
    removed: int
    kept_young: int


@dataclass(frozen=True)
class FsckReport:
    objects_checked: int
    commits_checked: int
    bad_objects: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """'commit <id>: <digest>' for every object a commit needs that is not there."""

    @property
    def clean(self) -> bool:
        return not self.bad_objects and not self.missing


def live_set(ctx: Any, retention: timedelta) -> set[str]:
    """Every object reachable from a branch, a tag, staging, or a commit younger than
    ``retention``, and the tree nodes of every commit: history stays walkable (merge
    bases, logs, diffs) after the objects of old commits are collected."""
    live: set[str] = {ctx.trees.empty}
    cutoff = utcnow() - retention
    with ctx.store.session() as session:
        roots = {b.head for b in session.exec(select(DataBranch)).all() if b.head}
        roots |= {t.commit for t in session.exec(select(DataTag)).all()}
        commits = {c.id: c for c in session.exec(select(DataCommit)).all()}
        staged = {s.digest for s in session.exec(select(DataStaged)).all() if s.digest}
    recent = {cid for cid, c in commits.items() if c.created_at >= cutoff}
    live |= staged
    # Whole trees of the live commits first: ``nodes`` marks a subtree as seen, and
    # ``reachable`` would then skip the objects under it.
    for commit_id in roots | recent:
        commit = commits.get(commit_id)
        if commit is not None:
            ctx.trees.reachable(commit.tree, live)
    for commit in commits.values():
        ctx.trees.nodes(commit.tree, live)
    return live


def gc(ctx: Any, *, retention: timedelta, dry_run: bool = True, grace_seconds: float = 3600) -> GcReport:
    """Remove objects nothing reaches. Objects younger than ``grace_seconds`` are kept,
    so an upload in flight (stored, not yet staged) is never taken from under its writer."""
    live = live_set(ctx, retention)
    now = time.time()
    unreachable = removed = young = 0
    size = 0
    objects = ctx.objects.files()
    live_names = {ctx.objects.name_of(digest) for digest in live}  # keyed names when encrypted
    for name, path in objects:
        if name in live_names:
            continue
        stat = path.stat()
        if now - stat.st_mtime < grace_seconds:
            young += 1
            continue
        unreachable += 1
        size += ctx.objects.content_size(path)
        if not dry_run:
            path.unlink(missing_ok=True)
            removed += 1
    return GcReport(dry_run=dry_run, objects_total=len(objects), unreachable=unreachable,
                    bytes_unreachable=size, removed=removed, kept_young=young)


def fsck(ctx: Any) -> FsckReport:
    """Verify every object's digest; that every branch head and tag has its whole tree
    and objects; and that every other commit has its tree nodes (gc may have collected
    the objects of commits past the retention, never their trees)."""
    bad: list[str] = []
    objects = ctx.objects.files()
    present = set()
    with ctx.store.session() as session:
        commits = session.exec(select(DataCommit)).all()
        heads = {b.head for b in session.exec(select(DataBranch)).all() if b.head}
        heads |= {t.commit for t in session.exec(select(DataTag)).all()}
    wanted: dict[str, str] = {}  # file name -> digest, of what commits refer to (names are keyed when encrypted)
    for commit in commits:
        seen: set[str] = set()
        try:
            ctx.trees.reachable(commit.tree, seen) if commit.id in heads else ctx.trees.nodes(commit.tree, seen)
        except Exception:
            continue
        wanted.update((ctx.objects.name_of(d), d) for d in seen)
    for name, path in objects:
        digest = ctx.objects.verify_file(name, path)  # authenticated and named for its content
        if digest is None:
            bad.append(wanted.get(name, name))
        else:
            present.add(digest)
    missing: list[str] = []
    for commit in commits:
        needed: set[str] = set()
        try:
            if commit.id in heads:
                ctx.trees.reachable(commit.tree, needed)
            else:
                ctx.trees.nodes(commit.tree, needed)
        except Exception as exc:  # an unreadable tree node is itself the finding
            missing.append(f"commit {commit.id}: tree unreadable ({exc})")
            continue
        missing += [f"commit {commit.id}: {d}" for d in sorted(needed - present)]
    return FsckReport(objects_checked=len(objects), commits_checked=len(commits), bad_objects=bad, missing=missing)
