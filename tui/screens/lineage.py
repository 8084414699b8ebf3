"""A version's lineage as a tree: the data commits it was trained on -> the training run
-> the version (metrics, model card, alias moves) -> the policy decisions and approval
requests about it -> the deployment revisions that served it.

It composes facets: ``registry.lineage`` (the version, its run id and data commits, card,
alias moves), ``tracking.get_run``, ``data.repo(...).commit`` for each data commit (an
erased commit is explained by ``privacy.replacement``), ``policy.decisions`` and
``policy.requests``, and for every deployment whose revisions served the version's
digest ``deployments.revisions`` and ``deployments.lineage`` (whose ``missing`` names the
links the platform itself found broken). A link that cannot be followed is a red node
saying why, and is listed again under "broken links" at the top of the tree."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Tree

from mlops_lite.errors import BackendUnavailable, MlopsLiteError, NotFound, PermissionDenied, Unauthenticated
from mlops_lite.records import DeploymentRevisionRecord, GateResult, Lineage
from tui.screens.base import ConsoleScreen

T = TypeVar("T")
BROKEN = "bold red"


@dataclass(frozen=True)
class Node:
    label: Text
    children: tuple[Node, ...] = ()
    expand: bool = False


def when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "-"


def node(label: str | Text, *children: Node, style: str = "", expand: bool = False) -> Node:
    return Node(label if isinstance(label, Text) else Text(label, style=style), tuple(children), expand)


def broken(why: str) -> Node:
    return node(Text(f"✗ {why}", style=BROKEN))


@dataclass
class Gaps:
    """The broken links found while reading, in the order found, one per link: ``key``
    names the link (a run or commit id); a later reason about the same link (the
    deployment's lineage, which the server reads in-process) replaces the earlier one."""

    by_key: dict[str, str] = field(default_factory=dict)

    @property
    def found(self) -> list[str]:
        return list(self.by_key.values())

    def add(self, why: str, key: str | None = None) -> Node:
        key = key or next((k for k in self.by_key if k in why), why)
        self.by_key[key] = why
        return broken(why)


def _soft(call: Callable[[], T]) -> tuple[T | None, MlopsLiteError | None]:
    """``call()``, or the error that says why a link cannot be followed. A lost connection
    or a rejected token is not a broken link: it fails the load (and shows as such)."""
    try:
        return call(), None
    except (BackendUnavailable, Unauthenticated):
        raise
    except MlopsLiteError as exc:
        return None, exc


def _gates(gates: tuple[GateResult, ...] | list[GateResult]) -> tuple[Node, ...]:
    out = []
    for g in gates:
        style = "green" if g.passed else BROKEN
        measured = f"{g.measured:.4g}" if isinstance(g.measured, float) else str(g.measured)
        out.append(node(Text(f"{'✓' if g.passed else '✗'} {g.gate}: {measured[:40]} (bound {g.bound})", style=style)))
    return tuple(out)


def _kv(title: str, values: dict[str, Any]) -> Node:
    return node(f"{title} ({len(values)})", *(node(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}")
                                              for k, v in sorted(values.items())))


def _revision(r: DeploymentRevisionRecord, digest: str) -> Node:
    slot = "primary" if r.digest == digest else {"canary": "canary", "shadow": "shadow",
                                                  "blue_green": "standby"}.get(r.strategy, "candidate")
    weight = f" {r.weight:.0%}" if slot == "canary" and r.weight is not None else ""
    return node(f"revision {r.revision} {r.action} ({r.strategy}, {slot}{weight}) {when(r.changed_at)} "
                f"by {r.changed_by}" + (f": {r.reason}" if r.reason else ""))


class LineageScreen(ConsoleScreen):
    TITLE = "Lineage"
    AUTO_FOCUS = "Tree"
    # Reading a lineage walks every deployment's revisions: it loads when opened and on
    # ``r``, not on every tick.
    AUTO_REFRESH = False

    def __init__(self, model: str, version: str) -> None:
        super().__init__()
        self.model, self.version = model, version
        self._shown: Node | None = None
        self.gaps: tuple[str, ...] = ()

    def crumb(self) -> str:
        return f"{self.version} lineage"

    def body(self) -> ComposeResult:
        tree: Tree[None] = Tree(f"{self.model}@{self.version}", id="lineage")
        tree.show_root = True
        yield tree

    def scope(self) -> dict[str, str]:
        return {"model": self.model}

    # --- reading -------------------------------------------------------------------

    def load(self) -> tuple[Node, tuple[str, ...]]:
        p = self.platform
        gaps = Gaps()
        lineage: Lineage = p.registry.lineage(self.model, self.version)
        v = lineage.version
        branches: list[Node] = [self._data_and_run(lineage, gaps)]

        aliases = tuple(node(f"{e.alias}: {e.from_version or '-'} → {e.to_version or '-'} ({e.kind}) {when(e.at)} "
                             f"by {e.actor}: {e.reason}") for e in lineage.alias_events)
        card = tuple(node(f"{k}: {val}") for k, val in sorted(lineage.card.items())) or (
            node("no model card", style="dim"),)
        branches.append(node(f"version {v.version} sha256:{v.digest[:12]} registered {when(v.created_at)} "
                             f"by {v.created_by}", _kv("metrics", v.metrics), node("model card", *card),
                             node(f"alias moves ({len(aliases)})", *aliases), expand=True))

        decisions, error = _soft(lambda: p.policy.decisions(self.model, self.version))
        items = [node(Text(f"{'overridden' if d.overridden else 'passed' if d.passed else 'FAILED'} → {d.alias} "
                           f"{when(d.at)} by {d.actor} ({d.id[:8]})",
                           style="green" if d.passed else "yellow" if d.overridden else BROKEN), *_gates(d.gates))
                 for d in decisions or ()]
        if error is not None:
            items.append(self._unreadable("policy decisions", error, gaps))
        branches.append(node(f"policy decisions ({len(decisions or ())})", *items, expand=True))

        requests, error = _soft(lambda: p.policy.requests(self.model))
        mine = [r for r in requests or () if r.version == self.version]
        items = [node(f"{r.status}: → {r.alias} requested by {r.requested_by} {when(r.requested_at)} ({r.id[:8]})",
                      *(node(f"{vote.vote} by {vote.approver} ({vote.role}) {when(vote.at)}"
                             + (f": {vote.comment}" if vote.comment else "")) for vote in r.votes),
                      expand=True) for r in mine]
        if error is not None:
            items.append(self._unreadable("approval requests", error, gaps))
        branches.append(node(f"approvals ({len(mine)})", *items, expand=True))

        branches.append(self._deployments(v.digest, gaps))
        if gaps.found:
            branches.insert(0, node(Text(f"✗ {len(gaps.found)} broken link(s)", style=BROKEN),
                                    *(broken(why) for why in gaps.found), expand=True))
        root = node(Text(f"{self.model}@{self.version}", style="bold"), *branches, expand=True)
        return root, tuple(gaps.found)

    def _unreadable(self, what: str, error: MlopsLiteError, gaps: Gaps) -> Node:
        if isinstance(error, PermissionDenied):
            return node(f"{what}: not readable with this token ({error.message})", style="dim")
        return gaps.add(f"{what} cannot be read ({error.message})")

    def _data_and_run(self, lineage: Lineage, gaps: Gaps) -> Node:
        """The data commits, then the run that read them (the version's first links)."""
        p = self.platform
        run_node: list[Node] = []
        repository: str | None = None
        run_found = False
        if not lineage.run_id:
            run_node.append(gaps.add(f"{self.model}@{self.version} names no training run"))
        else:
            run, error = _soft(lambda: p.tracking.get_run(lineage.run_id or ""))
            if run is None:
                why = (f"training run {lineage.run_id} does not exist" if isinstance(error, NotFound)
                       else f"training run {lineage.run_id} cannot be read ({error.message if error else '?'})")
                run_node.append(gaps.add(why, key=lineage.run_id))
            else:
                run_found = True
                repository = str(run.tags["repository"]) if run.tags.get("repository") else None
                run_node.append(node(f"run {run.id[:12]} {run.name} ({run.experiment}, {run.status}) "
                                     f"{when(run.started_at)}", _kv("params", dict(run.params)),
                                     _kv("metrics", dict(run.metrics))))
        commits: list[Node] = []
        if not lineage.data_commits:
            commits.append(gaps.add(f"{self.model}@{self.version} names no data commit"))
        elif repository is None and run_found:
            commits.append(gaps.add(f"training run {lineage.run_id} names no data repository, so its data "
                                    "commits cannot be read"))
        for commit in lineage.data_commits:
            if repository is None:
                commits.append(node(f"commit {commit[:12]}", style="dim"))
                continue
            record, error = _soft(lambda c=commit: p.data.repo(repository).commit(c))  # type: ignore[misc]
            if record is not None:
                commits.append(node(f"commit {record.id[:12]} {record.message!r} by {record.author} "
                                    f"{when(record.created_at)}"))
            else:
                commits.append(gaps.add(self._unreadable_commit(repository, commit, error), key=commit))
        where = f"data: repository {repository}" if repository else "data"
        return node(where, *commits, node("training", *run_node, expand=True), expand=True)

    def _unreadable_commit(self, repository: str, commit: str, error: MlopsLiteError | None) -> str:
        reason = error.message if error is not None else "?"
        replaced, _ = _soft(lambda: self.platform.privacy.replacement(commit))
        if replaced is None:
            return f"data commit {commit} of repository {repository!r} cannot be read ({reason})"
        done = "erased" if replaced.kind == "erase" else "removed by retention"
        return (f"data commit {commit} of repository {repository!r} was rewritten when data was {done} on "
                f"{replaced.at.date().isoformat()} (now {replaced.new_commit}); retrain suggested")

    def _deployments(self, digest: str, gaps: Gaps) -> Node:
        """Every deployment whose revisions served this digest, with those revisions; for one
        serving it now, the links its lineage found broken."""
        p = self.platform
        out: list[Node] = []
        for d in p.deployments.list():
            revisions, error = _soft(lambda name=d.name: p.deployments.revisions(name))  # type: ignore[misc]
            served = [r for r in revisions or () if digest in (r.digest, r.candidate_digest)]
            if error is not None:
                out.append(self._unreadable(f"revisions of deployment {d.name}", error, gaps))
            if not served:
                continue
            now = digest in (d.digest, d.candidate_digest)
            children = [_revision(r, digest) for r in sorted(served, key=lambda r: r.revision)]
            if now:
                served_now, error = _soft(lambda name=d.name: p.deployments.lineage(name))  # type: ignore[misc]
                if served_now is None:
                    children.append(self._unreadable(f"lineage of deployment {d.name}", error or MlopsLiteError("?"),
                                                     gaps))
                else:
                    for slot in served_now.slots:
                        if slot.digest == digest:
                            children.extend(gaps.add(why) for why in slot.missing)
            label = f"{d.name}: {'serves it now' if now else 'served it'} (revision {d.revision} now)"
            out.append(node(Text(label, style="bold" if now else ""), *children, expand=True))
        return node(f"deployments ({len(out)})", *out, expand=True)

    # --- showing -------------------------------------------------------------------

    def show(self, data: tuple[Node, tuple[str, ...]]) -> None:
        root, gaps = data
        self.gaps = gaps
        if root == self._shown:
            return  # nothing changed: keep the tree's expansion and cursor
        self._shown = root
        tree = self.query_one("#lineage", Tree)
        tree.clear()
        tree.root.set_label(root.label)
        _fill(tree.root, root.children)
        tree.root.expand()


def _fill(parent: Any, children: tuple[Node, ...]) -> None:
    for child in children:
        if child.children:
            branch = parent.add(child.label, expand=child.expand)
            _fill(branch, child.children)
        else:
            parent.add_leaf(child.label)
