"""The approval workflow: request a promotion, approve or reject it, complete it.

    request_promotion -> pending --approve (N distinct approvers)--> approved
                                 \\--reject--> rejected        (takes no more votes)
    pending | approved --complete: every gate passes--> completed (the alias moved)

- Voting needs the approver role or higher (PermissionDenied otherwise).
- Four eyes: the version's author (``ModelVersionRecord.created_by``) and the
  request's requester cannot approve it (PermissionDenied, "four-eyes").
- The same approver approving twice counts once (the second call changes nothing).
- ``complete`` stores a policy decision (the ``approvals`` gate counts the distinct
  approvals of every request for that model/version/alias that was not rejected),
  and moves the alias (through the registry, citing the decision) only when every gate passes.
- Every request, vote and completion is an audit event about ``model:NAME@VERSION``
  and is sent to the alert sinks (log, webhooks).
"""

from __future__ import annotations

import re
import threading
import uuid
from typing import TYPE_CHECKING, Any, Protocol

from sqlmodel import Session, col, select

from mlops_lite.clock import utcnow
from mlops_lite.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from mlops_lite.metadata.tables.policy import APPROVAL_STATUSES, ApprovalRequestRow, ApprovalVoteRow
from mlops_lite.policy.common import violation
from mlops_lite.records import (
    ApprovalRequest,
    ApprovalVote,
    Identity,
    ModelVersionRecord,
    PolicyDecision,
    same_principal,
)
from mlops_lite.security.roles import effective_role, require, role_rank

if TYPE_CHECKING:
    from mlops_lite.metadata.audit import AuditTrail
    from mlops_lite.metadata.store import MetadataStore
    from mlops_lite.policy.document import PolicySpec
    from mlops_lite.registry import Registry

_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
OPEN = ("pending", "approved")
CLOSED = ("rejected", "completed")

_LOCKS: dict[tuple[str, str], threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _request_lock(url: str, request_id: str) -> threading.RLock:
    """One lock per request (per database, per process): votes and completion of one
    request run one at a time, so a completed request never takes a late vote."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get((url, request_id))
        if lock is None:
            lock = _LOCKS[(url, request_id)] = threading.RLock()
        return lock


class PolicyRules(Protocol):
    """What approvals ask of the policy that owns them (``gates.Policy``)."""

    def load(self, model: str | None = None) -> PolicySpec: ...

    def notify(self, spec: PolicySpec | None, event: dict[str, Any]) -> None: ...

    def decide(self, model: str, version: str, *, alias: str = "production",
               actor: str | Identity | None = None) -> PolicyDecision: ...


class Approvals:
    """``platform.policy.approvals`` (each method is also on ``platform.policy``)."""

    def __init__(self, policy: PolicyRules, store: MetadataStore, audit: AuditTrail, registry: Registry,
                 actor: str) -> None:
        self._policy = policy
        self._store = store
        self._audit = audit
        self._registry = registry
        self._actor = actor

    # ---- requests -----------------------------------------------------------------

    def request_promotion(self, model: str, version: str, *, alias: str = "production",
                          requested_by: Identity | str | None = None, comment: str = "") -> ApprovalRequest:
        """Ask for ``alias`` of ``model`` to move to ``version``; status pending. An
        Identity needs the operator role; a plain name is trusted (in-process callers).
        Conflict when an open request for the same model/version/alias exists."""
        if isinstance(requested_by, Identity):
            require(requested_by, "operator", model=model)
        requester = (requested_by.principal if isinstance(requested_by, Identity) else requested_by) or self._actor
        if not isinstance(alias, str) or not _ALIAS.match(alias):
            raise InvalidInput(f"bad alias name {alias!r}", field="alias",
                               expected="1-63 characters: a lowercase letter, then lowercase letters, digits, '_', '-'")
        comment = _check_comment(comment)
        target = self._registry.get_version(model, version)
        spec = self._policy.load(model)
        now = utcnow()
        row = ApprovalRequestRow(id=uuid.uuid4().hex, model=model, version=version, alias=alias, status="pending",
                                 requested_by=requester, requested_at=now, comment=comment, updated_at=now)
        with self._store.session() as session:
            existing = session.exec(select(ApprovalRequestRow).where(
                ApprovalRequestRow.model == model, ApprovalRequestRow.version == version,
                ApprovalRequestRow.alias == alias,
                col(ApprovalRequestRow.status).in_(OPEN))).first()
            if existing is not None:
                raise Conflict(f"{model}@{version} -> {alias} already has an open request {existing.id} "
                               f"({existing.status})", details={"request_id": existing.id})
            session.add(row)
            self._audit.append(session, actor=requester, action="approval.request", object=_object(target),
                               after={"request_id": row.id, "alias": alias, "comment": comment,
                                      "required": spec.approvals_required})
        record = _record(row, [])
        self._policy.notify(spec, _event("approval.requested", record, requester,
                                         comment=comment, required=spec.approvals_required))
        return record

    def get_request(self, request_id: str) -> ApprovalRequest:
        with self._store.session() as session:
            row = session.get(ApprovalRequestRow, request_id)
            if row is None:
                raise NotFound(f"approval request {request_id!r} does not exist")
            votes = _votes(session, [request_id]).get(request_id, [])
        return _record(row, votes)

    def requests(self, model: str | None = None, status: str | None = None, *, version: str | None = None,
                 alias: str | None = None) -> list[ApprovalRequest]:
        """Requests (of a model, in a status, ...), oldest first, with their votes."""
        if status is not None and status not in APPROVAL_STATUSES:
            raise InvalidInput(f"unknown status {status!r}", field="status", expected=" | ".join(APPROVAL_STATUSES))
        with self._store.session() as session:
            query = select(ApprovalRequestRow)
            for column, value in ((ApprovalRequestRow.model, model), (ApprovalRequestRow.status, status),
                                  (ApprovalRequestRow.version, version), (ApprovalRequestRow.alias, alias)):
                if value is not None:
                    query = query.where(column == value)
            rows = session.exec(query.order_by(col(ApprovalRequestRow.requested_at), col(ApprovalRequestRow.id))).all()
            votes = _votes(session, [r.id for r in rows])
        return [_record(row, votes.get(row.id, [])) for row in rows]

    def approvers(self, version: ModelVersionRecord, alias: str) -> list[str]:
        """The distinct approvers (approver role or higher, the author excluded) of the
        requests for ``version`` -> ``alias`` that were not rejected, in voting order."""
        requests = [r for r in self.requests(version.model, version=version.version, alias=alias)
                    if r.status != "rejected"]
        names: dict[str, None] = {}
        for vote in sorted((v for r in requests for v in r.votes), key=lambda v: v.at):
            if (vote.vote == "approve" and not same_principal(vote.approver, version.created_by)
                    and _rank(vote.role) >= role_rank("approver")):
                names.setdefault(vote.approver, None)
        return list(names)

    # ---- votes --------------------------------------------------------------------

    def approve(self, request_id: str, *, identity: Identity, comment: str = "",
                complete: bool = False) -> ApprovalRequest:
        """Approve. With ``complete``, a request that now has enough approvals is
        completed at once when every gate passes (it stays approved otherwise)."""
        request = self._vote(request_id, identity, "approve", comment)
        if complete and request.status == "approved":
            from mlops_lite.errors import PolicyViolation

            try:
                return self.complete(request_id, identity=identity)
            except PolicyViolation:
                return self.get_request(request_id)
        return request

    def reject(self, request_id: str, *, identity: Identity, comment: str = "") -> ApprovalRequest:
        """Reject: the request is closed and its approvals no longer count."""
        return self._vote(request_id, identity, "reject", comment)

    def _vote(self, request_id: str, identity: Identity, vote: str, comment: str) -> ApprovalRequest:
        require(identity, "approver", model=_model_of(self._store, request_id))
        principal = identity.principal
        comment = _check_comment(comment)
        with _request_lock(self._store.url, request_id):
            request = self.get_request(request_id)
            if request.status in CLOSED:
                raise Conflict(f"approval request {request_id} is {request.status}; it takes no more votes",
                               details={"status": request.status})
            target = self._registry.get_version(request.model, request.version)
            if vote == "approve":
                if same_principal(principal, target.created_by):
                    raise PermissionDenied(
                        f"four-eyes: {identity.name} registered {target.model}@{target.version} and cannot "
                        "approve its promotion", details={"rule": "four-eyes", "author": target.created_by})
                if same_principal(principal, request.requested_by):
                    raise PermissionDenied(
                        f"four-eyes: {identity.name} requested this promotion and cannot approve it",
                        details={"rule": "four-eyes", "requested_by": request.requested_by})
                if any(same_principal(principal, a) for a in request.approvers):
                    return request  # the same approver twice counts once
            spec = self._policy.load(request.model)
            now = utcnow()
            vote_row = ApprovalVoteRow(id=uuid.uuid4().hex, request_id=request_id, approver=principal,
                                       role=effective_role(identity, model=request.model), vote=vote, comment=comment, voted_at=now)
            approvers = [*request.approvers, principal] if vote == "approve" else list(request.approvers)
            if vote == "reject":
                status = "rejected"
            elif len(approvers) >= spec.approvals_required:
                status = "approved"
            else:
                status = request.status
            with self._store.session() as session:
                row = session.get(ApprovalRequestRow, request_id)
                if row is None or row.status != request.status:
                    raise Conflict(f"approval request {request_id} changed while voting; try again")
                row.status, row.updated_at = status, now
                session.add(row)
                session.add(vote_row)
                self._audit.append(session, actor=principal, action=f"approval.{vote}",
                                   object=_object(target), before={"status": request.status},
                                   after={"request_id": request_id, "alias": request.alias, "status": status,
                                          "approvals": len(approvers), "required": spec.approvals_required,
                                          "comment": comment})
            updated = self.get_request(request_id)
        self._policy.notify(spec, _event("approval.approved" if vote == "approve" else "approval.rejected",
                                         updated, principal, comment=comment, approvals=len(approvers),
                                         required=spec.approvals_required))
        return updated

    # ---- completion ---------------------------------------------------------------

    def complete(self, request_id: str, *, identity: Identity, comment: str = "") -> ApprovalRequest:
        """Decide (stored) and, when every gate passes, move the alias (with that decision)
        and close the request.
        PolicyViolation (with the gates and the decision id) when a gate fails; the
        request stays open. Needs the operator role or higher."""
        require(identity, "operator", model=_model_of(self._store, request_id))
        principal = identity.principal
        comment = _check_comment(comment)
        with _request_lock(self._store.url, request_id):
            request = self.get_request(request_id)
            if request.status in CLOSED:
                raise Conflict(f"approval request {request_id} is {request.status}", details={"status": request.status})
            decision = self._policy.decide(request.model, request.version, alias=request.alias, actor=principal)
            if not decision.passed:
                raise violation(decision, request_id=request_id)
            target = self._registry.get_version(request.model, request.version)
            reason = (f"promotion request {request_id} approved by {', '.join(request.approvers) or 'nobody (none required)'}; "
                      f"policy decision {decision.id}" + (f": {comment}" if comment else ""))
            self._registry.set_alias(request.model, request.alias, request.version, reason=reason,
                                     actor=principal, decision=decision.id)
            now = utcnow()
            with self._store.session() as session:
                row = session.get(ApprovalRequestRow, request_id)
                if row is None:
                    raise NotFound(f"approval request {request_id!r} does not exist")
                before = row.status
                row.status, row.updated_at = "completed", now
                row.completed_at, row.completed_by, row.decision_id = now, principal, decision.id
                session.add(row)
                self._audit.append(session, actor=principal, action="approval.complete", object=_object(target),
                                   before={"status": before},
                                   after={"request_id": request_id, "alias": request.alias, "status": "completed",
                                          "decision_id": decision.id, "approvers": list(request.approvers),
                                          "comment": comment})
            updated = self.get_request(request_id)
        self._policy.notify(self._policy.load(request.model),
                            _event("approval.completed", updated, principal, comment=comment,
                                   decision_id=decision.id))
        return updated


def _model_of(store: MetadataStore, request_id: str) -> str | None:
    """The model an approval request is about (for a per-model grant), None when unknown."""
    with store.session() as session:
        row = session.get(ApprovalRequestRow, request_id)
        return None if row is None else row.model


def _check_comment(comment: str | None) -> str:
    if comment is None:
        return ""
    if not isinstance(comment, str):
        raise InvalidInput("comment must be text", field="comment", expected="a string")
    return comment.strip()


def _rank(role: str) -> int:
    try:
        return role_rank(role)
    except InvalidInput:
        return -1


def _object(version: ModelVersionRecord) -> str:
    return f"model:{version.model}@{version.version}"


def _event(name: str, request: ApprovalRequest, actor: str, **extra: object) -> dict[str, object]:
    return {"event": name, "request_id": request.id, "model": request.model, "version": request.version,
            "alias": request.alias, "status": request.status, "requested_by": request.requested_by,
            "approvers": list(request.approvers), "actor": actor, **extra}


def _votes(session: Session, request_ids: list[str]) -> dict[str, list[ApprovalVoteRow]]:
    if not request_ids:
        return {}
    rows = session.exec(select(ApprovalVoteRow).where(col(ApprovalVoteRow.request_id).in_(request_ids))
                        .order_by(col(ApprovalVoteRow.voted_at), col(ApprovalVoteRow.id))).all()
    out: dict[str, list[ApprovalVoteRow]] = {}
    for row in rows:
        out.setdefault(row.request_id, []).append(row)
    return out


def _record(row: ApprovalRequestRow, votes: list[ApprovalVoteRow]) -> ApprovalRequest:
    return ApprovalRequest(
        id=row.id, model=row.model, version=row.version, alias=row.alias, status=row.status,
        requested_by=row.requested_by, requested_at=row.requested_at, comment=row.comment,
        votes=tuple(ApprovalVote(id=v.id, request_id=v.request_id, approver=v.approver, role=v.role, vote=v.vote,
                                 comment=v.comment, at=v.voted_at) for v in votes),
        completed_at=row.completed_at, completed_by=row.completed_by, decision_id=row.decision_id)
