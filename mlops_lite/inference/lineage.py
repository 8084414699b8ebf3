"""Deployment lineage: what served a deployment at a moment, and what produced it.

``deployment_lineage(platform, name, at)`` answers the question the platform exists
for, "which data, run and approvals produced what is serving": the revision in force
at ``at`` (from the deployment's revision history), each slot it held (primary, and
a canary, shadow or blue-green standby), and for each slot the registered version,
its training run, its data commits, params and metrics, the gates measured when it
was let into the deployment (from the revision's audit event), the stored policy
decisions and the approval requests about it.

It reads other feature packages only through the Platform's facets. A link that
cannot be followed (a run deleted, a data commit gone, a version missing from the
registry) is named in the slot's ``missing`` instead of failing the whole answer:
an auditor asking what served needs the rest of the answer most when a link broke.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mlops_lite.clock import as_utc, utcnow
from mlops_lite.errors import InvalidInput, MlopsLiteError, NotFound
from mlops_lite.records import (
    CommitRecord,
    DeploymentLineage,
    DeploymentRevisionRecord,
    GateResult,
    ModelVersionRecord,
    RunRecord,
    ServedSlot,
    feature_lineage,
)

# The slot a revision's candidate fills, by strategy: only a canary answers requests.
CANDIDATE_SLOT = {"canary": "canary", "shadow": "shadow", "blue_green": "standby"}
# Revisions whose change let a version answer requests, and so went through the gates.
_GATED_PRIMARY = ("deploy", "promote", "switch")
_GATED_CANDIDATE = ("canary",)


def parse_moment(value: datetime | str | None, field: str = "at") -> datetime | None:
    """An ISO 8601 time (or a datetime) as an aware UTC datetime; naive times are UTC.
    InvalidInput naming ``field`` for anything else."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str):
        try:
            return as_utc(datetime.fromisoformat(value.strip()))
        except (ValueError, OverflowError):  # OverflowError: an offset pushes it past year 1 or 9999
            pass
    raise InvalidInput(f"bad time {value!r} for {field!r}", field=field,
                       expected="an ISO 8601 time, e.g. 2026-03-03T12:00:00Z")


def deployment_lineage(platform: Any, name: str, at: datetime | str | None = None) -> DeploymentLineage:
    """What served ``name`` at ``at`` (default now) and its lineage (see the module doc).

    NotFound for an unknown deployment, or a time before its first revision;
    InvalidInput (field ``at``) for a bad time."""
    moment = parse_moment(at) or utcnow()
    revisions = platform.deployments.revisions(name)  # newest first; NotFound for an unknown deployment
    history = [r for r in reversed(revisions) if as_utc(r.changed_at) <= moment]
    if not history:
        first = revisions[-1] if revisions else None
        since = f"; its first revision is from {as_utc(first.changed_at).isoformat()}" if first else ""
        raise NotFound(f"deployment {name!r} served nothing at {moment.isoformat()}{since}")
    current = history[-1]
    gates = _release_gates(platform, name)
    slots = [_slot(platform, "primary", current.model, current.version, current.digest,
                   1.0 - current.weight if current.strategy == "canary" and current.weight else 1.0,
                   history, gates, moment)]
    if current.candidate_digest:
        slot = CANDIDATE_SLOT.get(current.strategy, "candidate")
        slots.append(_slot(platform, slot, current.candidate_model or current.model, current.candidate_version or "",
                           current.candidate_digest, current.weight if slot == "canary" else 0.0,
                           history, gates, moment))
    return DeploymentLineage(deployment=name, at=moment, revision=current, slots=tuple(slots),
                             history=tuple(history))


def _release_gates(platform: Any, name: str) -> dict[int, tuple[GateResult, ...]]:
    """The gates each revision of ``name`` recorded in its audit event, by revision."""
    out: dict[int, tuple[GateResult, ...]] = {}
    for event in platform.audit.about(f"deployment:{name}", action_prefix="deployment."):
        revision = event.after.get("revision")
        if isinstance(revision, int) and not isinstance(revision, bool):
            out[revision] = tuple(
                GateResult(gate=str(g.get("gate")), passed=bool(g.get("passed")), measured=g.get("measured"),
                           bound=g.get("bound"), detail=str(g.get("detail") or ""))
                for g in event.after.get("gates") or () if isinstance(g, dict))
    return out


def _released_in(history: list[DeploymentRevisionRecord], digest: str,
                 gates: dict[int, tuple[GateResult, ...]]) -> tuple[int | None, tuple[GateResult, ...]]:
    """The newest revision up to now that let ``digest`` answer requests through the gates,
    and those gates. A rollback or a second switch restores a version without gating it
    again, so the search goes back to the revision that did."""
    for revision in reversed(history):
        let_in = ((revision.action in _GATED_PRIMARY and revision.digest == digest)
                  or (revision.action in _GATED_CANDIDATE and revision.candidate_digest == digest))
        if let_in and gates.get(revision.revision):
            return revision.revision, gates[revision.revision]
    return None, ()


def _slot(platform: Any, slot: str, model: str, version: str, digest: str, weight: float | None,
          history: list[DeploymentRevisionRecord], gates: dict[int, tuple[GateResult, ...]],
          moment: datetime) -> ServedSlot:
    missing: list[str] = []
    registered: ModelVersionRecord | None = None
    try:
        registered = platform.registry.get_version(model, version)
    except NotFound as exc:
        missing.append(f"model version {model}@{version} is not in the registry ({exc.message})")
    if registered is not None and registered.digest != digest:
        missing.append(f"the registry's {model}@{version} is sha256:{registered.digest[:12]}, but the deployment "
                       f"served sha256:{digest[:12]}")
    run_id = registered.run_id if registered is not None else None
    run: RunRecord | None = None
    if registered is not None and not run_id:
        missing.append(f"{model}@{version} names no training run")
    elif run_id:
        try:
            run = platform.tracking.get_run(run_id)
        except NotFound:
            missing.append(f"training run {run_id} does not exist")
    data_commits = registered.data_commits if registered is not None else ()
    if registered is not None and not data_commits:
        missing.append(f"{model}@{version} names no data commit")
    repository = str(run.tags["repository"]) if run is not None and run.tags.get("repository") else None
    commits: list[CommitRecord] = []
    if data_commits and repository is None and run is not None:
        missing.append(f"training run {run.id} names no data repository, so its data commits cannot be read")
    elif repository is not None:
        held_by = _training_set_repositories(platform, run)
        for commit in data_commits:
            where = held_by.get(commit, repository)
            try:
                commits.append(platform.data.repo(where).commit(commit))
            except MlopsLiteError as exc:
                missing.append(_unreadable_commit(platform, where, commit, exc))
    released_in, release_gates = _released_in(history, digest, gates)
    if released_in is None and slot in ("primary", "canary"):
        missing.append(f"no revision up to {history[-1].revision} records the gates that let {model}@{version} "
                       "answer requests")
    decisions = tuple(d for d in _read(platform.policy.decisions, model, version, missing=missing,
                                       what="policy decisions") if as_utc(d.at) <= moment)
    approvals = tuple(r for r in _read(platform.policy.approvals.requests, model, version=version,
                                       missing=missing, what="approval requests")
                      if as_utc(r.requested_at) <= moment)
    return ServedSlot(
        slot=slot, model=model, version=version, digest=digest, weight=weight, registered=registered,
        run_id=run_id, run=run, data_repository=repository, data_commits=tuple(data_commits),
        commits=tuple(commits), params=dict(registered.params) if registered is not None else {},
        metrics=dict(registered.metrics) if registered is not None else {}, released_in=released_in,
        release_gates=release_gates, decisions=decisions, approvals=approvals, missing=tuple(missing),
        **feature_lineage(registered.signature if registered is not None else None))


def _read(method: Any, *args: Any, missing: list[str], what: str, **kwargs: Any) -> list[Any]:
    try:
        return list(method(*args, **kwargs))
    except NotFound as exc:
        missing.append(f"{what} cannot be read ({exc.message})")
        return []


def _training_set_repositories(platform: Any, run: RunRecord | None) -> dict[str, str]:
    """commit -> repository of a run trained from a feature service's training set, whose
    views may read other repositories than its entity rows' ({} otherwise)."""
    training_set = run.tags.get("training_set") if run is not None else None
    if not training_set:
        return {}
    try:
        stored = platform.features.get_training_set(training_set)
    except MlopsLiteError:
        return {}
    return {commit: repository for repository, commit in stored.commits.items()}


def _unreadable_commit(platform: Any, repository: str, commit: str, exc: MlopsLiteError) -> str:
    """Why a data commit cannot be read: an erasure or retention run replaced it (a retrain
    is suggested), or the store's own reason."""
    try:
        replaced = platform.privacy.replacement(commit)
    except MlopsLiteError:
        return f"data commit {commit} of repository {repository!r} cannot be read ({exc.message})"
    done = "erased" if replaced.kind == "erase" else "removed by retention"
    return (f"data commit {commit} of repository {repository!r} was rewritten when data was {done} on "
            f"{replaced.at.date().isoformat()} (now {replaced.new_commit}); retrain suggested")
