"""Three-way merge from the merge base, and revert."""

from __future__ import annotations

import fnmatch
from collections import deque

from sqlmodel import Session

from mlops_lite.data.context import DataContext, commit_record
from mlops_lite.data.tree import Change
from mlops_lite.errors import Conflict, InvalidInput, NotFound
from mlops_lite.records import CommitRecord

STRATEGIES = ("fail", "source-wins", "dest-wins")


def merge_base(session: Session, ctx: DataContext, repository: str, left: str, right: str) -> str | None:
    """The nearest common ancestor of two commits (breadth-first over all parents)."""
    def ancestors(start: str) -> dict[str, int]:
        seen: dict[str, int] = {}
        queue = deque([(start, 0)])
        while queue:
            commit_id, depth = queue.popleft()
            if commit_id in seen:
                continue
            seen[commit_id] = depth
            for parent in ctx.commit(session, repository, commit_id).parents or ():
                queue.append((parent, depth + 1))
        return seen

    a, b = ancestors(left), ancestors(right)
    common = set(a) & set(b)
    return min(common, key=lambda c: (a[c] + b[c], c)) if common else None


def _changes(ctx: DataContext, base_tree: str | None, tree: str | None) -> dict[str, Change]:
    return {d.path: None if d.right is None else (d.right, d.size) for d in ctx.trees.diff(base_tree, tree)}


def _strategy_for(path: str, strategy: str, rules: dict[str, str]) -> str:
    for pattern, chosen in rules.items():
        if fnmatch.fnmatch(path, pattern):
            return chosen
    return strategy


NOTHING_TO_MERGE = ("skip", "fail", "commit")


def three_way(ctx: DataContext, repo: str, source: str, destination: str, *, strategy: str, rules: dict[str, str],
              message: str | None,              metadata: dict[str, str], actor: str, if_nothing: str = "skip") -> CommitRecord:
    """Merge branch ``source`` of ``repo`` into ``destination`` (see ``Branch.merge_into``).
    ``if_nothing`` says what a merge that brings nothing new does:
    ``skip`` answers the destination's head, ``fail`` refuses (lakeFS's "no changes"),
    ``commit`` writes the merge commit anyway (lakeFS's ``allow_empty``)."""
    if if_nothing not in NOTHING_TO_MERGE:
        raise InvalidInput(f"unknown if_nothing {if_nothing!r}", field="if_nothing",
                           expected=" | ".join(NOTHING_TO_MERGE))
    for chosen in (strategy, *rules.values()):
        if chosen not in STRATEGIES:
            raise InvalidInput(f"unknown merge strategy {chosen!r}", field="strategy", expected=" | ".join(STRATEGIES))
    ctx.place(repo, "data.merge", actor=actor)
    with ctx.branch_lock(repo, destination):
        with ctx.store.session() as session:
            dest_row = ctx.branch(session, repo, destination)
            src_head = ctx.resolve(session, repo, source)
            if src_head is None:
                raise Conflict(f"{source!r} has no commits to merge")
            if ctx.staged(session, repo, destination):
                raise Conflict(f"{destination!r} has uncommitted changes; commit or reset them before a merge",
                               details={"reason": "dirty_branch"})
            dest_head = dest_row.head
            base = merge_base(session, ctx, repo, src_head, dest_head) if dest_head else None
            base_tree = ctx.tree_of(session, repo, base)
            src_tree = ctx.tree_of(session, repo, src_head)
            dest_tree = ctx.tree_of(session, repo, dest_head)
            # lakeFS compares trees, not commits: a source whose data is the base's brings nothing.
            nothing = base == src_head or (base is not None and src_tree == base_tree)
            if nothing and if_nothing == "fail":
                raise Conflict(f"merging {source!r} into {destination!r} brings no changes",
                               details={"reason": "no_changes"})
            if base == src_head and dest_head is not None and if_nothing == "skip":  # base is None without dest_head
                return commit_record(ctx.commit(session, repo, dest_head))
        ours, theirs = _changes(ctx, base_tree, src_tree), _changes(ctx, base_tree, dest_tree)
        apply: dict[str, Change] = {}
        conflicts: list[str] = []
        for path, change in ours.items():
            if path in theirs and theirs[path] != change:
                chosen = _strategy_for(path, strategy, rules)
                if chosen == "fail":
                    conflicts.append(path)
                elif chosen == "source-wins":
                    apply[path] = change
            else:
                apply[path] = change
        if conflicts:
            raise Conflict(f"merge of {source!r} into {destination!r} conflicts on {len(conflicts)} path(s): "
                           + ", ".join(conflicts[:20]) + (" ..." if len(conflicts) > 20 else ""),
                           details={"conflicts": conflicts})
        with ctx.store.session() as session:
            ctx.check(session, repo, apply, branch=destination)
        tree = ctx.trees.apply(dest_tree, apply)
        with ctx.store.session() as session:
            return ctx.write_commit(
                session, repo, destination, expected_head=dest_head, tree=tree,
                parents=[p for p in (dest_head, src_head) if p], author=actor, metadata=metadata,
                message=message or f"Merge {source} into {destination}", action="data.merge",
                audit_extra={"source": source, "source_head": src_head, "strategy": strategy,
                             "changed": len(apply)})


def revert(ctx: DataContext, repo: str, branch: str, commit: str, *, parent_number: int = 0,
           message: str | None,           metadata: dict[str, str] | None = None, allow_empty: bool = False, actor: str) -> CommitRecord:
    """Undo ``commit`` on ``branch`` of ``repo`` relative to one of its parents (``parent_number``, 1-based,
    needed for a merge commit; 0 means the only parent, or none for a root commit).

    Allowed on a protected branch, as lakeFS allows it: a revert only brings back a state
    the branch's history already had, and it still passes the repository's checks (what
    lakeFS runs as pre-revert hooks), so every state of a protected branch stays checked.
    Paths changed again since ``commit`` conflict unless they already hold the parent's content.
    """
    if not isinstance(parent_number, int) or isinstance(parent_number, bool) or parent_number < 0:
        raise InvalidInput(f"bad parent number {parent_number!r}", field="parent_number",
                           expected="0, or the 1-based parent of a merge commit")
    with ctx.branch_lock(repo, branch):
        with ctx.store.session() as session:
            row = ctx.branch(session, repo, branch)
            target = ctx.commit(session, repo, ctx.resolve(session, repo, commit) or commit)
            parents = list(target.parents or ())
            if len(parents) > 1 and parent_number == 0:
                raise Conflict(f"commit {target.id[:12]} is a merge: say which parent to revert to "
                               f"(parent_number 1 to {len(parents)})", details={"reason": "merge_needs_parent"})
            if parent_number > max(len(parents), 1):
                raise InvalidInput(f"commit {target.id[:12]} has {len(parents)} parent(s), not {parent_number}",
                                   field="parent_number", expected=f"1 to {max(len(parents), 1)}")
            if ctx.staged(session, repo, branch):
                raise Conflict(f"{branch!r} has uncommitted changes; commit or reset them first",
                               details={"reason": "dirty_branch"})
            head = row.head
            if head is None:
                raise NotFound(f"branch {branch!r} has no commits")
            parent = parents[max(parent_number, 1) - 1] if parents else None
            parent_tree = ctx.tree_of(session, repo, parent)
            head_tree = ctx.tree_of(session, repo, head)
            target_tree = target.tree
        undo: dict[str, Change] = {}
        conflicts = []
        for d in ctx.trees.diff(target_tree, parent_tree):
            now = ctx.trees.lookup(head_tree, d.path)
            wanted = None if d.right is None else ("b", d.right, d.size)
            if now == wanted:
                continue
            if now != ctx.trees.lookup(target_tree, d.path):
                conflicts.append(d.path)
            undo[d.path] = None if d.right is None else (d.right, d.size)
        if conflicts:
            raise Conflict(f"cannot revert {target.id[:12]}: {len(conflicts)} path(s) changed since: "
                           + ", ".join(conflicts[:20]), details={"conflicts": conflicts})
        if not undo and not allow_empty:
            raise Conflict(f"reverting {target.id[:12]} changes nothing on {branch!r}",
                           details={"reason": "no_changes"})
        with ctx.store.session() as session:
            ctx.check(session, repo, undo, branch=branch)
        tree = ctx.trees.apply(head_tree, undo)
        with ctx.store.session() as session:
            return ctx.write_commit(session, repo, branch, expected_head=head, tree=tree, parents=[head],
                                    message=message or f"Revert {target.id[:12]}: {target.message}",
                                    author=actor, metadata={"reverts": target.id} if metadata is None else metadata,
                                    action="data.revert",
                                    audit_extra={"reverted": target.id, "parent": parent, "changed": len(undo)})
