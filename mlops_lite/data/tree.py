"""Merkle trees over the content-addressed store.

A tree node is the canonical JSON of its sorted entries ``[name, kind, digest,
size]`` (kind ``b`` for an object, ``t`` for a subtree), stored by its own
sha256. A commit names one root; two commits share every subtree they do not
change, so a commit writes, and a diff reads, only the nodes on changed paths.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from mlops_lite.errors import InvalidInput
from mlops_lite.objects import ObjectStore

Entry = tuple[str, str, int]
"""(kind, digest, size): kind ``b`` is an object, ``t`` a subtree."""

Change = tuple[str, int] | None
"""What a path becomes: (digest, size), or None for deleted."""

_CACHE_NODES = 8192


@dataclass(frozen=True)
class DiffEntry:
    """One path that differs between two trees, seen from left to right."""

    path: str
    type: str  # "added" | "removed" | "changed"
    left: str | None
    right: str | None
    size: int


def encode(entries: Mapping[str, Entry]) -> bytes:
    rows = [[name, kind, digest, size] for name, (kind, digest, size) in sorted(entries.items())]
    return json.dumps(rows, separators=(",", ":")).encode()


class TreeStore:
    def __init__(self, objects: ObjectStore) -> None:
        self._objects = objects
        self._cache: OrderedDict[str, dict[str, Entry]] = OrderedDict()
        self._lock = threading.Lock()
        self.empty = self.write({})

    def read(self, digest: str | None) -> dict[str, Entry]:
        if digest is None:
            return {}
        with self._lock:
            node = self._cache.get(digest)
            if node is not None:
                self._cache.move_to_end(digest)
                return node
        rows = json.loads(self._objects.get_bytes(digest))
        node = {name: (kind, child, size) for name, kind, child, size in rows}
        with self._lock:
            self._cache[digest] = node
            if len(self._cache) > _CACHE_NODES:
                self._cache.popitem(last=False)
        return node

    def write(self, entries: Mapping[str, Entry]) -> str:
        digest, _ = self._objects.put_bytes(encode(entries))
        return digest

    def apply(self, root: str | None, changes: Mapping[str, Change]) -> str:
        """The root after ``changes`` (path -> (digest, size) or None); rewrites only
        the nodes on changed paths."""
        entries = dict(self.read(root))
        groups: dict[str, dict[str, Change]] = {}
        for path, change in changes.items():
            head, sep, rest = path.partition("/")
            if sep:
                groups.setdefault(head, {})[rest] = change
                continue
            current = entries.get(head)
            if change is None:
                if current is not None and current[0] == "b":
                    del entries[head]
            elif current is not None and current[0] == "t":
                raise InvalidInput(f"{head!r} is a folder here; an object cannot replace it", field="path",
                                   expected="a path that is not also a folder")
            else:
                entries[head] = ("b", change[0], change[1])
        for head, sub in groups.items():
            current = entries.get(head)
            if current is not None and current[0] == "b":
                if all(c is None for c in sub.values()):
                    continue
                raise InvalidInput(f"{head!r} is an object here; it cannot hold other objects", field="path",
                                   expected="a path whose folders are not objects")
            child = self.apply(current[1] if current else None, sub)
            if child == self.empty:
                entries.pop(head, None)
            else:
                entries[head] = ("t", child, 0)
        return self.write(entries)

    def lookup(self, root: str | None, path: str) -> Entry | None:
        node = self.read(root)
        parts = path.split("/")
        for part in parts[:-1]:
            entry = node.get(part)
            if entry is None or entry[0] != "t":
                return None
            node = self.read(entry[1])
        entry = node.get(parts[-1])
        return entry if entry is not None and entry[0] == "b" else None

    def folder(self, root: str | None, path: str) -> str | None:
        """The subtree digest at folder ``path`` ('' is the root), or None."""
        if not path:
            return root
        entry: Entry | None = None
        node = self.read(root)
        for part in path.split("/"):
            entry = node.get(part)
            if entry is None or entry[0] != "t":
                return None
            node = self.read(entry[1])
        return entry[1] if entry else root

    def walk(self, root: str | None, prefix: str = "") -> Iterator[tuple[str, str, int]]:
        """Every object under ``root`` as (path, digest, size), in path order."""
        for name, (kind, digest, size) in sorted(self.read(root).items()):
            if kind == "t":
                yield from self.walk(digest, f"{prefix}{name}/")
            else:
                yield f"{prefix}{name}", digest, size

    def diff(self, left: str | None, right: str | None, prefix: str = "") -> Iterator[DiffEntry]:
        """Paths that differ, skipping every subtree the two sides share."""
        if left == right:
            return
        a, b = self.read(left), self.read(right)
        for name in sorted(set(a) | set(b)):
            ea, eb = a.get(name), b.get(name)
            if ea == eb:
                continue
            path = f"{prefix}{name}"
            if ea is not None and eb is not None and ea[0] == "t" and eb[0] == "t":
                yield from self.diff(ea[1], eb[1], f"{path}/")
                continue
            left_objects = dict(self._objects_of(ea, path))
            right_objects = dict(self._objects_of(eb, path))
            for p in sorted(set(left_objects) | set(right_objects)):
                lo, ro = left_objects.get(p), right_objects.get(p)
                if lo == ro:
                    continue
                kind = "added" if lo is None else "removed" if ro is None else "changed"
                yield DiffEntry(path=p, type=kind, left=lo[0] if lo else None, right=ro[0] if ro else None,
                                size=(ro or lo)[1])  # type: ignore[index]

    def reachable(self, root: str, into: set[str]) -> None:
        """Add every tree node and object digest under ``root`` to ``into``."""
        if root in into:
            return
        into.add(root)
        for kind, digest, _ in self.read(root).values():
            if kind == "t":
                self.reachable(digest, into)
            else:
                into.add(digest)

    def nodes(self, root: str, into: set[str]) -> None:
        """Add the tree nodes (not the objects) under ``root`` to ``into``."""
        if root in into:
            return
        into.add(root)
        for kind, digest, _ in self.read(root).values():
            if kind == "t":
                self.nodes(digest, into)

    def _objects_of(self, entry: Entry | None, path: str) -> Iterator[tuple[str, tuple[str, int]]]:
        if entry is None:
            return
        if entry[0] == "b":
            yield path, (entry[1], entry[2])
        else:
            for sub, digest, size in self.walk(entry[1], f"{path}/"):
                yield sub, (digest, size)
