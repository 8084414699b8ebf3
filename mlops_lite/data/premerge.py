"""The checks a merge of a branch runs, before the merge: every table the branch adds or
changes since the merge base (committed, and staged), checked against the repository's
rules (pinned schemas, PII patterns, size limit, k-anonymity into a protected branch),
and the paths changed on both sides (conflicts).

It takes a repository handle as ``platform.data.repo(name)`` answers it (local or over
HTTP): ``mlops-lite ci data-check`` turns the answer into a CI report, and the operator
console shows it per branch."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from functools import partial
from typing import Any

from mlops_lite.data.checks import RepositoryConfig, run_checks
from mlops_lite.errors import NotFound


@dataclass(frozen=True)
class PathCheck:
    """One changed table: its size, whether it is only staged, the rules that apply to it
    and every reason it breaks them (none: it passes)."""

    path: str
    size: int
    reasons: tuple[str, ...]
    rules: str

    @property
    def passed(self) -> bool:
        return not self.reasons


@dataclass(frozen=True)
class Premerge:
    repository: str
    branch: str
    into: str
    head: str | None
    protected: bool
    conflicts: tuple[str, ...]
    paths: tuple[PathCheck, ...]
    staged: int
    has_rules: bool

    @property
    def failed(self) -> tuple[PathCheck, ...]:
        return tuple(p for p in self.paths if not p.passed)

    @property
    def passed(self) -> bool:
        return not self.conflicts and not self.failed


def premerge(repo: Any, branch: str, into: str, *, names: tuple[str, str] = ("branch", "into")) -> Premerge:
    """Check ``branch`` of ``repo`` (a RepositoryAPI) as a merge into ``into`` would.
    NotFound naming ``names`` (how the caller calls the two branches) for a missing one."""
    config: RepositoryConfig = repo.config()
    known = {b.name for b in repo.branches()}
    for option, name in zip(names, (branch, into), strict=True):
        if name not in known:
            raise NotFound(f"{option}: {repo.name} has no branch {name!r} (it has: {', '.join(sorted(known))})")
    source = repo.branch(branch)
    head = source.head()
    changes = repo.diff(into, branch, three_dot=True)
    staged = source.uncommitted()
    protected = into in config.protected_branches
    conflicts = tuple(d.path for d in changes if d.type == "conflict")
    touched = {d.path: d.size for d in changes if d.type in ("added", "changed", "conflict")}
    touched.update({d.path: d.size for d in staged if d.type in ("added", "changed")})
    paths = tuple(
        PathCheck(path, touched[path],
                  tuple(run_checks(config, [(path, partial(source.open, path), touched[path])], protected=protected)),
                  rules_for(config, path, protected))
        for path in sorted(touched))
    return Premerge(repository=repo.name, branch=branch, into=into, head=head.id if head else None,
                    protected=protected, conflicts=conflicts, paths=paths, staged=len(staged),
                    has_rules=config.has_rules)


def rules_for(config: RepositoryConfig, path: str, protected: bool) -> str:
    """The rules that apply to ``path``, in words."""
    rules = [f"schema {s.paths}" for s in config.schemas if fnmatch.fnmatch(path, s.paths)]
    if config.effective_pii_patterns:
        rules.append("PII pseudonymized")
    if config.max_object_bytes is not None:
        rules.append(f"<= {config.max_object_bytes} bytes")
    if protected and config.privacy is not None and config.privacy.k_anonymity:
        rules.append(f"{config.privacy.k_anonymity}-anonymous")
    return ", ".join(rules) or "no rule applies"
