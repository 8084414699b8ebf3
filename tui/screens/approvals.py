"""Approvals inbox: the promotion requests waiting for a decision (pending, and approved
ones not completed yet), each with the gates' evidence measured now (``policy.evaluate``)
and the latest stored decision for its version and alias.

``a`` approves and ``x`` rejects with a comment (approver); ``c`` completes an approved
request (the gates are measured again and the alias moves when all pass; the server lets
an operator complete, as the requester usually does). Four-eyes is the server's rule: the
author approving their own request, or completing without enough approvals, is refused
there, and the refusal is shown as it came."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from mlops_lite.errors import BackendUnavailable, MlopsLiteError, Unauthenticated
from mlops_lite.records import ApprovalRequest, GateResult, PolicyDecision
from tui.screens.base import ConsoleScreen
from tui.screens.lineage import when
from tui.screens.model import describe_request
from tui.widgets import FilterTable, PromptScreen, Row

OPEN = ("pending", "approved")  # the statuses an inbox still has to act on


@dataclass(frozen=True)
class Evidence:
    """What the gates say now about a request's version going to its alias, and the
    latest decision stored for it; ``error`` when they could not be measured."""

    gates: tuple[GateResult, ...] = ()
    decision: PolicyDecision | None = None
    error: str | None = None


@dataclass(frozen=True)
class Inbox:
    requests: tuple[ApprovalRequest, ...]
    evidence: dict[str, Evidence]


class ApprovalsScreen(ConsoleScreen):
    TITLE = "Approvals"
    BINDINGS = [Binding("a", "approve", "Approve"), Binding("x", "reject", "Reject"),
                Binding("c", "complete", "Complete"), Binding("e", "measure", "Measure again")]
    ACTION_ROLES = {"approve": "approver", "reject": "approver", "complete": "operator"}

    DEFAULT_CSS = """
    ApprovalsScreen #requests { height: 2fr; min-height: 6; }
    ApprovalsScreen #evidence-scroll { height: 3fr; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._requests: dict[str, ApprovalRequest] = {}
        self._evidence: dict[str, Evidence] = {}
        # Gates measured per request state (id, status, votes): measuring runs the model on
        # its evaluation data, so a refresh measures only what changed ("e" measures again).
        self._measured: dict[tuple[str, str, int], Evidence] = {}
        self._palette: set[str] = set()
        self._focus: str | None = None  # the request under the cursor (set on the UI thread)

    def body(self) -> ComposeResult:
        yield FilterTable((("id", "Request"), ("what", "Model@version"), ("alias", "→ alias"), ("status", "Status"),
                           ("by", "Requested by"), ("approvals", "Approvals"), ("at", "Requested")),
                          id="requests", title="Waiting for a decision")
        with VerticalScroll(id="evidence-scroll"):
            yield Static(Text("no request waits for a decision", style="dim"), id="evidence")

    # --- reading -------------------------------------------------------------------

    def load(self) -> Inbox:
        policy = self.platform.policy
        requests = [r for status in OPEN for r in policy.requests(status=status)]
        requests.sort(key=lambda r: r.requested_at, reverse=True)
        # Only the request under the cursor is measured (the first one before the table has
        # a cursor): an inbox of a hundred requests costs one measurement, not a hundred.
        focus = self._focus if any(r.id == self._focus for r in requests) else requests[0].id if requests else None
        evidence: dict[str, Evidence] = {}
        for r in requests:
            key = (r.id, r.status, len(r.votes))
            if key not in self._measured and r.id == focus:
                self._measured[key] = self._measure(r)
            if key in self._measured:
                evidence[r.id] = self._measured[key]
        return Inbox(tuple(requests), evidence)

    def _measure(self, request: ApprovalRequest) -> Evidence:
        p = self.platform
        try:
            version = p.registry.get_version(request.model, request.version)
            gates = tuple(p.policy.evaluate(version, alias=request.alias))
            decision = p.policy.latest_decision(request.model, request.version, alias=request.alias)
        except (BackendUnavailable, Unauthenticated):
            raise
        except MlopsLiteError as exc:
            return Evidence(error=f"{type(exc).__name__}: {exc.message}")
        return Evidence(gates, decision)

    # --- showing -------------------------------------------------------------------

    def show(self, data: Inbox) -> None:
        self._requests = {r.id: r for r in data.requests}
        self._evidence = data.evidence
        self.query_one(FilterTable).set_rows(
            Row(r.id, (r.id[:8], f"{r.model}@{r.version}", r.alias, r.status, r.requested_by,
                       str(len(r.approvers)), when(r.requested_at)))
            for r in data.requests)
        items = self.console.palette_items
        titles = {f"Approval {r.model}@{r.version} → {r.alias}": r for r in data.requests}
        for gone in self._palette - titles.keys():  # decided since: no longer in the inbox
            items.pop(gone, None)
        for title, r in titles.items():
            items[title] = (f"{r.status}, requested by {r.requested_by}", partial(self.console.switch_mode, "approvals"))
        self._palette = set(titles)
        self._show_evidence()

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        request = self._cursor()
        self._focus = request.id if request else None
        self._show_evidence()
        if request is not None and request.id not in self._evidence:
            self.reload()  # measure it (in the load's worker)

    def _show_evidence(self) -> None:
        request = self._cursor()
        widget = self.query_one("#evidence", Static)
        if request is None:
            widget.update(Text("no request waits for a decision", style="dim"))
            return
        evidence = self._evidence.get(request.id)
        if evidence is None:
            widget.update(Text(f"{request.model}@{request.version} → {request.alias}: measuring the gates…",
                               style="dim"))
            return
        widget.update(render_evidence(request, evidence))

    def _cursor(self) -> ApprovalRequest | None:
        key = self.query_one(FilterTable).cursor_key
        return self._requests.get(key) if key else None

    def scope(self) -> dict[str, str]:
        request = self._cursor()
        return {"model": request.model} if request else {}

    # --- actions -------------------------------------------------------------------

    def action_measure(self) -> None:
        self._measured.clear()
        self.reload()

    def action_approve(self) -> None:
        request = self._cursor()
        if request is None:
            return
        target = f"{request.model}@{request.version} → {request.alias}"

        def approve(comment: str | None) -> None:
            if comment is not None:
                self.console.perform(
                    title="Approve", target=target, role="approver", model=request.model,
                    call=lambda p: p.policy.approve(request.id, comment=comment), describe=describe_request,
                    audit_object=f"model:{request.model}@{request.version}")

        self.app.push_screen(PromptScreen(f"Approve {target}: a comment for the record (optional)",
                                          placeholder="what you checked", required=False), approve)

    def action_reject(self) -> None:
        request = self._cursor()
        if request is None:
            return
        target = f"{request.model}@{request.version} → {request.alias}"

        def reject(comment: str | None) -> None:
            if comment:
                self.console.perform(
                    title="Reject", target=target, role="approver", model=request.model,
                    call=lambda p: p.policy.reject(request.id, comment=comment), describe=describe_request,
                    audit_object=f"model:{request.model}@{request.version}")

        self.app.push_screen(PromptScreen(f"Reject {target}: why?", placeholder="the reason the requester reads"),
                             reject)

    def action_complete(self) -> None:
        request = self._cursor()
        if request is None:
            return
        target = f"{request.model}@{request.version} → {request.alias}"
        self.console.perform(
            title="Complete", target=target, role="operator", model=request.model,
            confirm=(f"Move alias {request.alias} of {request.model} to {request.version}? The gates are measured "
                     "again first; the alias moves only when every gate passes."),
            call=lambda p: p.policy.complete(request.id, comment="completed from the console"),
            describe=describe_completed, audit_object=f"model:{request.model}@{request.version}")


def describe_completed(request: ApprovalRequest) -> Text:
    text = describe_request(request)
    if request.status == "completed":
        text.append(f"\nalias {request.alias} of {request.model} now points to {request.version}"
                    + (f" (decision {request.decision_id})" if request.decision_id else ""), style="green")
    else:
        text.append("\nthe alias did not move: a gate failed (see the latest decision)", style="yellow")
    return text


def render_evidence(request: ApprovalRequest, evidence: Evidence) -> Group:
    head = Text(f"{request.model}@{request.version} → {request.alias}", style="bold")
    head.append(f"  {request.status}", style="yellow" if request.status == "pending" else "green")
    head.append(f"\nrequested by {request.requested_by} {when(request.requested_at)}")
    if request.comment:
        head.append(f": {request.comment}")
    for vote in request.votes:
        head.append(f"\n{vote.vote} by {vote.approver} ({vote.role}) {when(vote.at)}"
                    + (f": {vote.comment}" if vote.comment else ""), style="green" if vote.vote == "approve" else "red")
    parts: list[Any] = [head]
    if evidence.error:
        parts.append(Text(f"gates could not be measured: {evidence.error}", style="red"))
        return Group(*parts)
    failing = [g for g in evidence.gates if not g.passed]
    verdict = Text("gates now: ", style="bold")
    verdict.append("all pass" if not failing else f"{len(failing)} failing ({', '.join(g.gate for g in failing)})",
                   style="green" if not failing else "bold red")
    parts.append(verdict)
    table = Table(expand=True, show_edge=False, pad_edge=False)
    table.add_column("gate", no_wrap=True)
    table.add_column("ok", no_wrap=True)
    table.add_column("measured", no_wrap=True, overflow="ellipsis", max_width=14)
    table.add_column("bound", no_wrap=True, overflow="ellipsis", max_width=12)
    table.add_column("detail", ratio=1)
    for g in evidence.gates:
        measured = f"{g.measured:.4g}" if isinstance(g.measured, float) else str(g.measured)
        table.add_row(g.gate, Text("yes", style="green") if g.passed else Text("NO", style="bold red"),
                      _cut(measured, 16), _cut(str(g.bound), 12), _cut(g.detail, 90))
    parts.append(table)
    d = evidence.decision
    if d is not None:
        state = "overridden" if d.overridden else "passed" if d.passed else "failed"
        parts.append(Text(f"latest decision: {state} {when(d.at)} by {d.actor} ({d.id[:8]})", style="dim"))
    if request.status == "approved" and not failing:
        parts.append(Text("approved and every gate passes: c completes it (the alias moves)", style="green"))
    return Group(*parts)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
