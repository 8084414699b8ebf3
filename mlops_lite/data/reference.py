"""References (a branch, a tag or a commit) and branches, as lakeFS names them.

Reads on a branch see its uncommitted changes too; reads on a tag or commit see
exactly that commit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from sqlmodel import Session, select

from mlops_lite.clock import utcnow
from mlops_lite.data.context import DataContext, check_path, check_ref_name, commit_record
from mlops_lite.data.merge import merge_base, revert, three_way
from mlops_lite.data.tables import Source, TableRead, glob_matcher, is_glob, read_files, table_kind
from mlops_lite.data.tree import Change, DiffEntry
from mlops_lite.errors import Conflict, InvalidInput, NotFound, PolicyViolation
from mlops_lite.metadata.tables import DataBranch, DataCommit
from mlops_lite.records import BranchRecord, CommitRecord, Listing, ObjectRecord

MERGE_STRATEGIES = ("fail", "source-wins", "dest-wins")


class Reference:
    """A branch name, tag or commit id, resolved when a verb needs it."""

    def __init__(self, ctx: DataContext, repository: str, ref: str) -> None:
        self._ctx = ctx
        self._repo = repository
        self.ref = ref

    def resolve(self) -> str:
        """The commit id this reference points at now."""
        with self._ctx.store.session() as session:
            commit = self._ctx.resolve(session, self._repo, self.ref)
        if commit is None:
            raise NotFound(f"{self.ref!r} of {self._repo!r} has no commits yet")
        return commit

    def commit_record(self) -> CommitRecord:
        with self._ctx.store.session() as session:
            return commit_record(self._ctx.commit(session, self._repo, self.resolve()))

    def _view(self, session: Session) -> tuple[str | None, str | None, dict[str, Change]]:
        """(commit id, root tree, staged changes) as this reference sees them."""
        commit = self._ctx.resolve(session, self._repo, self.ref)
        tree = self._ctx.tree_of(session, self._repo, commit)
        staged: dict[str, Change] = {}
        if session.get(DataBranch, (self._repo, self.ref)) is not None:
            staged = self._ctx.staged(session, self._repo, self.ref)
        return commit, tree, staged

    def stat(self, path: str) -> ObjectRecord:
        check_path(path)
        with self._ctx.store.session() as session:
            _, tree, staged = self._view(session)
        if path in staged:
            change = staged[path]
            if change is None:
                raise NotFound(f"{path!r} is deleted (uncommitted) on {self._repo}/{self.ref}")
            return ObjectRecord(path=path, digest=change[0], size=change[1], staged=True)
        entry = self._ctx.trees.lookup(tree, path)
        if entry is None:
            raise NotFound(f"object {path!r} is not in {self._repo}@{self.ref}")
        return ObjectRecord(path=path, digest=entry[1], size=entry[2])

    def object_file(self, path: str) -> Path:
        """Where the object's bytes lie on disk (read-only, content-addressed; its ciphertext
        when the store is encrypted: read contents with ``open`` or ``read_bytes``)."""
        return self._ctx.objects.path_of(self.stat(path).digest)

    def read_bytes(self, path: str, *, start: int | None = None, end: int | None = None) -> bytes:
        """The object's bytes, or bytes ``start``..``end`` (inclusive, as HTTP ranges are)."""
        record = self.stat(path)
        if start is None and end is None:
            return self._ctx.objects.get_bytes(record.digest)
        first = start or 0
        last = record.size - 1 if end is None else min(end, record.size - 1)
        if first < 0 or first > last:
            raise InvalidInput(f"range {start}-{end} is outside the object ({record.size} bytes)", field="range",
                               expected=f"0 <= start <= end < {record.size}")
        return self._ctx.objects.read_range(record.digest, first, last)

    def open(self, path: str) -> BinaryIO:
        """The object's content as a seekable binary file (decrypted as it is read)."""
        return self._ctx.objects.open(self.stat(path).digest)

    def objects(self, prefix: str = "") -> Iterator[ObjectRecord]:
        """Every object under ``prefix`` in path order (uncommitted changes included on a branch)."""
        with self._ctx.store.session() as session:
            _, tree, staged = self._view(session)
        folder, _, _ = prefix.rpartition("/")
        root = self._ctx.trees.folder(tree, folder) if folder else tree
        base = f"{folder}/" if folder else ""
        committed = ((p, d, s) for p, d, s in self._ctx.trees.walk(root, base) if p.startswith(prefix)) \
            if root is not None else iter(())
        overlay = {p: c for p, c in staged.items() if p.startswith(prefix)}
        pending = sorted(overlay)
        index = 0
        for path, digest, size in committed:
            while index < len(pending) and pending[index] < path:
                change = overlay[pending[index]]
                if change is not None:
                    yield ObjectRecord(pending[index], change[0], change[1], staged=True)
                index += 1
            if index < len(pending) and pending[index] == path:
                change = overlay[path]
                index += 1
                if change is not None:
                    yield ObjectRecord(path, change[0], change[1], staged=True)
                continue
            yield ObjectRecord(path, digest, size)
        for path in pending[index:]:
            change = overlay[path]
            if change is not None:
                yield ObjectRecord(path, change[0], change[1], staged=True)

    def ls(self, prefix: str = "", *, delimiter: str = "", after: str = "", amount: int = 1000) -> Listing:
        """A page of objects (and, with ``delimiter='/'``, folder prefixes) after ``after``."""
        if not 1 <= amount <= 10_000:
            raise InvalidInput(f"amount {amount} is out of range", field="amount", expected="1 to 10000")
        if delimiter not in ("", "/"):
            raise InvalidInput(f"unsupported delimiter {delimiter!r}", field="delimiter", expected="'' or '/'")
        objects: list[ObjectRecord] = []
        prefixes: list[str] = []
        count = 0
        last = ""
        for record in self.objects(prefix):
            key = record.path
            if delimiter:
                rest = key[len(prefix):]
                if delimiter in rest:
                    key = prefix + rest.split(delimiter, 1)[0] + delimiter
            if key <= after or (prefixes and prefixes[-1] == key):
                continue
            if count == amount:
                return Listing(tuple(objects), tuple(prefixes), True, last)
            if key != record.path:
                prefixes.append(key)
            else:
                objects.append(record)
            count += 1
            last = key
        return Listing(tuple(objects), tuple(prefixes), False, "")

    def paths(self, pattern: str) -> list[ObjectRecord]:
        """Objects whose path matches a glob (``*`` does not cross ``/``)."""
        check_path(pattern.replace("*", "x").replace("?", "x"))
        prefix, compiled = glob_matcher(pattern)
        return [r for r in self.objects(prefix) if compiled.match(r.path)]

    def diff(self, other: str, *, prefix: str = "", three_dot: bool = False) -> list[DiffEntry]:
        """What changes from this reference to ``other`` (committed states).

        ``three_dot`` (lakeFS's default for ref diffs) answers instead what merging ``other``
        into this reference would change here: ``other``'s changes since their merge base,
        typed against this side, with ``conflict`` where both sides changed a path differently.
        """
        trees = self._ctx.trees
        with self._ctx.store.session() as session:
            left_commit = self._ctx.resolve(session, self._repo, self.ref)
            right_commit = self._ctx.resolve(session, self._repo, other)
            left = self._ctx.tree_of(session, self._repo, left_commit)
            right = self._ctx.tree_of(session, self._repo, right_commit)
            if not three_dot:
                return [d for d in trees.diff(left, right) if d.path.startswith(prefix)]
            base = merge_base(session, self._ctx, self._repo, left_commit, right_commit) \
                if left_commit and right_commit else None
            base_tree = self._ctx.tree_of(session, self._repo, base)
        out = []
        for d in trees.diff(base_tree, right):
            if not d.path.startswith(prefix):
                continue
            here, then = trees.lookup(left, d.path), trees.lookup(base_tree, d.path)
            wanted = trees.lookup(right, d.path)
            if here == wanted:
                continue
            kind = "conflict" if here != then else "added" if here is None else "removed" if wanted is None \
                else "changed"
            out.append(DiffEntry(path=d.path, type=kind, left=here[1] if here else None, right=d.right,
                                 size=(wanted or here or ("", "", 0))[2]))
        return out

    def log(self, *, amount: int = 100, after: str | None = None) -> list[CommitRecord]:
        """Commits from this reference back along first parents, newest first; ``after`` pages on."""
        if not 1 <= amount <= 10_000:
            raise InvalidInput(f"amount {amount} is out of range", field="amount", expected="1 to 10000")
        with self._ctx.store.session() as session:
            start = self._ctx.resolve(session, self._repo, self.ref)
            return first_parent_log(session, self._ctx, self._repo, start, amount=amount, after=after)

    def table_files(self, pattern: str) -> tuple[str, list[Source], str]:
        """The commit, the object files and their kind ('csv' or 'parquet') of a table here:
        a path, or a glob of files of one kind. NotFound when nothing matches."""
        commit = self.resolve()
        matches = self.paths(pattern) if is_glob(pattern) else [self.stat(pattern)]
        kind = table_kind(pattern, [m.path for m in matches], f"{self._repo}@{self.ref}")
        objects = self._ctx.objects
        if objects.encrypted:  # readers decrypt through the store: no plaintext file is ever made
            return commit, [partial(objects.open, m.digest) for m in matches], kind
        return commit, [str(objects.path_of(m.digest)) for m in matches], kind

    def read_table(self, path: str) -> TableRead:
        """A CSV or Parquet table (a path, or a glob of one kind) as Arrow, with the commit it was read at."""
        commit, files, kind = self.table_files(path)
        return read_files(files, kind, commit=commit, path=path)


class Branch(Reference):
    @property
    def name(self) -> str:
        return self.ref

    def create(self, source: str | None = None, *, exist_ok: bool = False, actor: str | None = None) -> BranchRecord:
        """Create the branch at ``source`` (a ref; default: the repository's default branch). O(1)."""
        check_ref_name(self.name)
        actor = actor or self._ctx.actor
        with self._ctx.store.session() as session:
            repo = self._ctx.repository(session, self._repo)
            existing = session.get(DataBranch, (self._repo, self.name))
            if existing is not None:
                if exist_ok:
                    return BranchRecord(self._repo, self.name, existing.head)
                raise Conflict(f"branch {self.name!r} of {self._repo!r} already exists")
            if session.get(DataCommit, self.name) is not None:
                raise InvalidInput(f"{self.name!r} is a commit id", field="branch", expected="a branch name")
            head = self._ctx.resolve(session, self._repo, source or repo.default_branch)
            session.add(DataBranch(repository=self._repo, name=self.name, head=head, created_at=utcnow()))
            self._ctx.audit.append(session, actor=actor, action="data.branch.create",
                                   object=f"data:{self._repo}/{self.name}",
                                   after={"head": head, "source": source or repo.default_branch})
        return BranchRecord(self._repo, self.name, head)

    def delete(self, *, actor: str | None = None) -> None:
        actor = actor or self._ctx.actor
        with self._ctx.store.session() as session:
            repo = self._ctx.repository(session, self._repo)
            row = self._ctx.branch(session, self._repo, self.name)
            if self.name == repo.default_branch:
                raise Conflict(f"{self.name!r} is the default branch of {self._repo!r}; it cannot be deleted",
                               details={"reason": "default_branch"})
            if self.name in self._ctx.config(session, self._repo).protected_branches:
                raise PolicyViolation(f"branch {self.name!r} is protected; it cannot be deleted")
            self._ctx.clear_staged(session, self._repo, self.name)
            session.delete(row)
            self._ctx.audit.append(session, actor=actor, action="data.branch.delete",
                                   object=f"data:{self._repo}/{self.name}", before={"head": row.head})

    def head(self) -> CommitRecord | None:
        with self._ctx.store.session() as session:
            row = self._ctx.branch(session, self._repo, self.name)
            return None if row.head is None else commit_record(self._ctx.commit(session, self._repo, row.head))

    def _writable(self, session: Session) -> DataBranch:
        row = self._ctx.branch(session, self._repo, self.name)
        if self.name in self._ctx.config(session, self._repo).protected_branches:
            raise PolicyViolation(f"branch {self.name!r} of {self._repo!r} is protected: it takes changes only "
                                  "by merge (or a revert)", details={"reasons": [f"{self.name} is protected"]})
        return row

    def upload(self, path: str, source: Path | bytes | BinaryIO, *, if_absent: bool = False) -> ObjectRecord:
        """Stage an object (streamed into the store in bounded memory)."""
        check_path(path)
        self._ctx.place(self._repo, "data.upload")
        with self._ctx.store.session() as session:
            self._writable(session)
        objects = self._ctx.objects
        if isinstance(source, bytes):
            digest, size = objects.put_bytes(source)
        elif isinstance(source, Path):
            digest, size = objects.put_file(source)
        else:
            digest, size = objects.put_stream(source)
        with self._ctx.branch_lock(self._repo, self.name), self._ctx.store.session() as session:
            self._writable(session)
            if if_absent:
                _, tree, staged = self._view(session)
                present = staged[path] is not None if path in staged else \
                    self._ctx.trees.lookup(tree, path) is not None
                if present:
                    raise Conflict(f"{path!r} already exists on {self._repo}/{self.name}")
            self._ctx.stage(session, self._repo, self.name, [(path, digest, size)])
        return ObjectRecord(path=path, digest=digest, size=size, staged=True)

    def import_directory(self, folder: Path, *, prefix: str = "", workers: int = 2,
                         progress: Callable[[int, int], None] | None = None) -> int:
        """Stage every file under ``folder`` at ``prefix`` + its relative path: hashed and
        stored in one pass per file, ``workers`` at a time; staged in one bulk write.
        ``progress(files_done, bytes_done)`` is called as files land. Returns the count."""
        if not folder.is_dir():
            raise InvalidInput(f"{folder} is not a folder", field="folder", expected="an existing folder")
        self._ctx.place(self._repo, "data.upload")
        if prefix:
            check_path(prefix.rstrip("/"))
            prefix = prefix.rstrip("/") + "/"
        files = sorted(Path(root) / name for root, _, names in os.walk(folder) for name in names)
        paths = [prefix + file.relative_to(folder).as_posix() for file in files]
        for path in paths:
            check_path(path)
        with self._ctx.store.session() as session:
            self._writable(session)
        done = [0, 0]

        def put(file: Path) -> tuple[str, int]:
            result = self._ctx.objects.put_file(file, fsync=False)
            done[0] += 1
            done[1] += result[1]
            if progress is not None:
                progress(done[0], done[1])
            return result

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            stored = list(pool.map(put, files))
        self._ctx.objects.sync()
        with self._ctx.branch_lock(self._repo, self.name), self._ctx.store.session() as session:
            self._writable(session)
            return int(self._ctx.stage(session, self._repo, self.name,
                                       [(p, d, s) for p, (d, s) in zip(paths, stored, strict=True)]))

    def delete_object(self, path: str, *, missing_ok: bool = False) -> bool:
        """Stage the deletion of an object on this branch; answers whether there was one.
        A missing object is NotFound unless ``missing_ok`` (lakeFS deletes answer success)."""
        check_path(path)
        with self._ctx.branch_lock(self._repo, self.name), self._ctx.store.session() as session:
            self._writable(session)
            _, tree, staged = self._view(session)
            present = staged[path] is not None if path in staged else self._ctx.trees.lookup(tree, path) is not None
            if not present:
                if missing_ok:
                    return False
                raise NotFound(f"object {path!r} is not in {self._repo}@{self.name}")
            self._ctx.stage(session, self._repo, self.name, [(path, None, 0)])
        return True

    def uncommitted(self) -> list[DiffEntry]:
        with self._ctx.store.session() as session:
            _, tree, staged = self._view(session)
        out = []
        for path, change in sorted(staged.items()):
            entry = self._ctx.trees.lookup(tree, path)
            before = (entry[1], entry[2]) if entry else None
            if before == change:
                continue
            kind = "added" if before is None else "removed" if change is None else "changed"
            out.append(DiffEntry(path=path, type=kind, left=before[0] if before else None,
                                 right=change[0] if change else None, size=(change or before or ("", 0))[1]))
        return out

    def reset(self, *, path: str | None = None, prefix: str | None = None, actor: str | None = None) -> int:
        """Drop uncommitted changes: every one, or one ``path``'s, or those under ``prefix``;
        returns how many. Refused on a protected branch, as lakeFS refuses it."""
        if path is not None and prefix is not None:
            raise InvalidInput("reset one path or one prefix, not both", field="path",
                               expected="path or prefix, or neither")
        if path is not None:
            check_path(path)
        with self._ctx.branch_lock(self._repo, self.name), self._ctx.store.session() as session:
            self._writable(session)
            staged = self._ctx.staged(session, self._repo, self.name)
            if path is None and prefix is None:
                dropped = list(staged)
                self._ctx.clear_staged(session, self._repo, self.name)
            else:
                dropped = [p for p in staged if p == path or (prefix is not None and p.startswith(prefix))]
                self._ctx.unstage(session, self._repo, self.name, dropped)
            after: dict[str, Any] = {"dropped": len(dropped)}
            if path is not None or prefix is not None:
                after["path" if path is not None else "prefix"] = path if path is not None else prefix
            self._ctx.audit.append(session, actor=actor or self._ctx.actor, action="data.branch.reset",
                                   object=f"data:{self._repo}/{self.name}", after=after)
        return len(dropped)

    def commit(self, message: str, *, metadata: Mapping[str, str] | None = None,
               actor: str | None = None) -> CommitRecord:
        """Commit the staged changes after the pre-commit checks pass. The branch moves by
        compare-and-swap in the same transaction that clears the staging."""
        if not isinstance(message, str) or not message.strip():
            raise InvalidInput("a commit needs a message", field="message", expected="a non-empty string")
        meta = self._ctx.validate_metadata(metadata)
        actor = actor or self._ctx.actor
        self._ctx.place(self._repo, "data.commit", actor=actor)
        with self._ctx.branch_lock(self._repo, self.name):
            with self._ctx.store.session() as session:
                branch = self._writable(session)
                head, staged = branch.head, self._ctx.staged(session, self._repo, self.name)
                tree = self._ctx.tree_of(session, self._repo, head)
            changes = {p: c for p, c in staged.items() if self._ctx.trees.lookup(tree, p) != (
                None if c is None else ("b", c[0], c[1]))}
            if not changes:
                raise Conflict(f"nothing to commit on {self._repo}/{self.name}", details={"reason": "no_changes"})
            with self._ctx.store.session() as session:
                self._ctx.check(session, self._repo, changes)
            new_tree = self._ctx.trees.apply(tree, changes)
            with self._ctx.store.session() as session:
                record = self._ctx.write_commit(
                    session, self._repo, self.name, expected_head=head, tree=new_tree,
                    parents=[head] if head else [], message=message, author=actor, metadata=meta,
                    action="data.commit", audit_extra={"changed": len(changes)})
                self._ctx.clear_staged(session, self._repo, self.name)
        return record

    def merge_into(self, destination: str, *, strategy: str = "fail", rules: Mapping[str, str] | None = None,
                   message: str | None = None, metadata: Mapping[str, str] | None = None,
                   actor: str | None = None, if_nothing: str = "skip") -> CommitRecord:
        """Three-way merge of this branch into ``destination`` from their merge base.

        Conflicting paths (changed differently on both sides) follow ``rules`` (glob ->
        strategy, first match wins), else ``strategy``: ``fail`` refuses with every
        conflicting path listed; ``source-wins`` / ``dest-wins`` pick a side. The
        pre-merge checks run on what the merge brings in. Returns the merge commit.
        A merge that brings nothing new answers the destination's head (``if_nothing``:
        ``fail`` refuses it, ``commit`` writes an empty merge commit).
        """
        return three_way(self._ctx, self._repo, self.ref, destination, strategy=strategy, rules=dict(rules or {}), message=message,
                         metadata=self._ctx.validate_metadata(metadata), actor=actor or self._ctx.actor,
                         if_nothing=if_nothing)

    def revert(self, commit: str, *, parent_number: int = 0, message: str | None = None,
               metadata: Mapping[str, str] | None = None, allow_empty: bool = False,
               actor: str | None = None) -> CommitRecord:
        """A new commit on this branch undoing ``commit``'s changes against its parent
        (``parent_number``, 1-based, picks a merge commit's parent). Allowed on a protected
        branch (lakeFS's way to roll back bad data on main); the data checks still run."""
        return revert(self._ctx, self._repo, self.name, commit, parent_number=parent_number, message=message,
                      metadata=None if metadata is None else self._ctx.validate_metadata(metadata),
                      allow_empty=allow_empty, actor=actor or self._ctx.actor)


def first_parent_log(session: Session, ctx: DataContext, repository: str, start: str | None, *, amount: int,
                     after: str | None) -> list[CommitRecord]:
    out: list[CommitRecord] = []
    commit_id = start
    skipping = after is not None
    while commit_id and len(out) < amount:
        row = ctx.commit(session, repository, commit_id)
        if not skipping:
            out.append(commit_record(row))
        elif row.id == after:
            skipping = False
        commit_id = row.parents[0] if row.parents else None
    return out


def all_branches(session: Session, repository: str) -> list[DataBranch]:
    return list(session.exec(select(DataBranch).where(DataBranch.repository == repository)
                             .order_by(DataBranch.name)).all())
