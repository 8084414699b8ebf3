"""``mlops-lite deploy ...`` and ``mlops-lite trace``: releases, every change a revision,
and what served a request or a deployment, traced back to its data, run and approvals."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from mlops_lite.cli.common import (
    JsonOption,
    group,
    jsonable,
    line,
    model_ref,
    platform,
    print_json,
    print_table,
    table,
)

app = group("Deployments: single, canary, blue-green and shadow releases; every change a revision.")

Reason = Annotated[str, typer.Option(help="Why, recorded in the revision and the audit trail.")]
Name = Annotated[str, typer.Argument(help="The deployment.")]


def _print_deployment(record: Any, as_json: bool) -> None:
    if as_json:
        print_json(record)
        return
    line(_describe(record))


def _describe(record: Any) -> str:
    primary = f"{record.model}@{record.version}"
    if record.strategy == "canary":
        return (f"{record.name}: canary {record.candidate_model}@{record.candidate_version} "
                f"takes {record.weight:.0%}, {primary} the rest (revision {record.revision})")
    if record.strategy == "shadow":
        return (f"{record.name}: {primary} answers, {record.candidate_model}@{record.candidate_version} "
                f"shadows (revision {record.revision})")
    if record.strategy == "blue_green":
        standby = "green" if (record.live_slot or "blue") == "blue" else "blue"
        return (f"{record.name}: {record.live_slot} {primary} live, {standby} "
                f"{record.candidate_model}@{record.candidate_version} standing by (revision {record.revision})")
    return f"{record.name}: {primary} (revision {record.revision})"


@app.command("create")
def deploy_create(name: Annotated[str, typer.Argument(help="The deployment's name.")],
                  ref: Annotated[str, typer.Argument(help="NAME@VERSION of the model.")],
                  reason: Reason = "", as_json: JsonOption = False) -> None:
    """Point a deployment at one version (strategy single), through the policy gates."""
    model, version = model_ref(ref)
    with platform() as p:
        _print_deployment(p.deployments.deploy(name, model, version, reason=reason), as_json)


@app.command("list")
def deploy_list(as_json: JsonOption = False) -> None:
    """Every deployment and what it serves."""
    with platform() as p:
        records = p.deployments.list()
    if as_json:
        print_json(records)
        return
    out = table("deployment", "strategy", "primary", "candidate", "weight", "revision", "updated")
    for r in records:
        out.add_row(r.name, r.strategy, f"{r.model}@{r.version}",
                      f"{r.candidate_model}@{r.candidate_version}" if r.candidate_digest else "-",
                      f"{r.weight:.2f}" if r.weight else "-", str(r.revision), f"{r.updated_at:%Y-%m-%d %H:%M}")
    print_table(out)


@app.command("canary")
def deploy_canary(name: Name,
                  ref: Annotated[str, typer.Argument(help="NAME@VERSION of the candidate.")],
                  weight: Annotated[float, typer.Option(help="Share of requests for the candidate, 0-1.")] = 0.1,
                  reason: Reason = "", as_json: JsonOption = False) -> None:
    """Send a share of the traffic to a candidate (sticky by the request's key); gated."""
    model, version = model_ref(ref)
    with platform() as p:
        _print_deployment(p.deployments.canary(name, model, version, weight=weight, reason=reason), as_json)


@app.command("shadow")
def deploy_shadow(name: Name,
                  ref: Annotated[str, typer.Argument(help="NAME@VERSION of the candidate.")],
                  reason: Reason = "", as_json: JsonOption = False) -> None:
    """Mirror the traffic to a candidate that answers nobody; both answers are logged."""
    model, version = model_ref(ref)
    with platform() as p:
        _print_deployment(p.deployments.shadow(name, model, version, reason=reason), as_json)


@app.command("stage")
def deploy_stage(name: Name,
                 ref: Annotated[str, typer.Argument(help="NAME@VERSION for the standby slot.")],
                 reason: Reason = "", as_json: JsonOption = False) -> None:
    """Blue-green: load a version into the standby slot."""
    model, version = model_ref(ref)
    with platform() as p:
        _print_deployment(p.deployments.stage(name, model, version, reason=reason), as_json)


@app.command("switch")
def deploy_switch(name: Name,
                  reason: Reason = "", as_json: JsonOption = False) -> None:
    """Blue-green: the standby slot goes live at once (run again to switch back)."""
    with platform() as p:
        _print_deployment(p.deployments.switch(name, reason=reason), as_json)


@app.command("promote")
def deploy_promote(name: Name,
                   reason: Reason = "", as_json: JsonOption = False) -> None:
    """The candidate becomes the only version, through the policy gates."""
    with platform() as p:
        _print_deployment(p.deployments.promote(name, reason=reason), as_json)


@app.command("rollback")
def deploy_rollback(name: Name,
                    to: Annotated[int | None, typer.Option("--to", help="The revision to restore.")] = None,
                    reason: Reason = "", as_json: JsonOption = False) -> None:
    """Restore the revision before (or --to N) as a new revision."""
    with platform() as p:
        _print_deployment(p.deployments.rollback(name, to_revision=to, reason=reason), as_json)


@app.command("retrain")
def deploy_retrain(name: Name, reason: Reason = "", as_json: JsonOption = False) -> None:
    """Ask to retrain the deployment on the newest data (audited as you): the daemon starts
    retrain-release at once unless a release is in progress; without it, the daemon's next
    monitoring pass does."""
    with platform() as p:
        answer = p.loop.request_retrain(name, reason=reason)
    if as_json:
        print_json(answer)
    elif answer.get("started"):
        line(f"retrain-release started for {name}: {answer.get('reason')}")
    elif answer.get("held"):
        line(f"recorded, but held: {answer['held']}")
    else:
        line(str(answer.get('note')))


@app.command("status")
def deploy_status(name: Name,
                  limit: Annotated[int, typer.Option(help="How many revisions to show.")] = 10,
                  as_json: JsonOption = False) -> None:
    """What a deployment serves now, and its revisions."""
    with platform() as p:
        record = p.deployments.get(name)
        revisions = p.deployments.revisions(name)[:limit]
    if as_json:
        print_json({"deployment": record, "revisions": revisions})
        return
    line(_describe(record))
    out = table("revision", "action", "strategy", "primary", "candidate", "by", "when", "reason")
    for r in revisions:
        out.add_row(str(r.revision), r.action, r.strategy, f"{r.model}@{r.version}",
                      f"{r.candidate_model}@{r.candidate_version}" if r.candidate_digest else "-",
                      r.changed_by, f"{r.changed_at:%Y-%m-%d %H:%M:%S}", r.reason)
    print_table(out)


@app.command("lineage")
def deploy_lineage(name: Name,
                   at: Annotated[str | None, typer.Option(help="What served at this ISO time (default now).")] = None,
                   as_json: JsonOption = False) -> None:
    """Which data, run and approvals produced what a deployment serves (or served at --at):
    the revision in force, each slot's version, run, data commits, gates, decisions and
    approvals, and the revisions up to then."""
    with platform() as p:
        lineage = p.deployments.lineage(name, at)
    if as_json:
        print_json({**jsonable(lineage), "missing": list(lineage.missing)})
        return
    _print_lineage(lineage)


def trace(request_id: Annotated[str, typer.Argument(help="The request id a predict call answered.")],
          as_json: JsonOption = False) -> None:
    """One logged prediction traced back: the slot and version that answered, when, its
    input rows and answers, its feedback label, and the deployment's lineage then."""
    with platform() as p:
        found = p.monitoring.trace(request_id)
    if as_json:
        print_json({**jsonable(found), "missing": list(found.lineage.missing)})
        return
    latency = f", {found.latency_ms:.2f} ms" if found.latency_ms is not None else ""
    line(f"request {found.request_id}: {found.deployment} {found.slot} {found.model}@{found.version}  "
         f"sha256:{found.digest[:16]}  at {found.at.isoformat()}{latency}")
    for row, label, probability in zip(found.instances, found.predictions, found.probabilities, strict=True):
        line(f"  input      {json.dumps(row, sort_keys=True)}")
        line(f"  answer     {label}" + (f"  p(positive)={probability:.4f}" if probability is not None else ""))
    line(f"  feedback   {found.feedback} (given {found.feedback_at.isoformat()})" if found.feedback_at
         else "  feedback   none")
    for shadow in found.shadow:
        line(f"  shadow     {shadow.model}@{shadow.version} answered {', '.join(map(str, shadow.predictions))}")
    _print_lineage(found.lineage)


def _print_lineage(lineage: Any) -> None:
    revision = lineage.revision
    line(f"{lineage.deployment} at {lineage.at.isoformat()}: revision {revision.revision} ({revision.action} by "
         f"{revision.changed_by} at {revision.changed_at.isoformat()}{': ' + revision.reason if revision.reason else ''})")
    for slot in lineage.slots:
        share = f"{slot.weight:.0%} of requests" if slot.weight else "answers nobody"
        line(f"{slot.slot:<8} {slot.model}@{slot.version}  sha256:{slot.digest}  ({share})")
        if slot.registered is not None:
            line(f"  registered {slot.registered.created_at.isoformat()} by {slot.registered.created_by}")
        run = slot.run
        line(f"  run        {slot.run_id or '-'}" + (f" ({run.name}, {run.status})" if run is not None else ""))
        for commit in slot.commits:
            line(f"  data       {commit.repository}@{commit.id}  {commit.created_at.isoformat()} "
                 f"by {commit.author}: {commit.message}")
        if not slot.commits:
            line(f"  data       {', '.join(slot.data_commits) or '-'}")
        if slot.feature_service:
            line(f"  features   service {slot.feature_service} version {slot.feature_service_version}, "
                 f"training set {slot.training_set}")
        line(f"  params     {json.dumps(slot.params, sort_keys=True)}")
        line("  metrics    " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(slot.metrics.items())
                                          if isinstance(v, int | float)))
        if slot.released_in is not None:
            line(f"  gates      at revision {slot.released_in}: "
                 + ", ".join(_gate_text(g) for g in slot.release_gates))
        if not slot.decisions:
            line("  decisions  none stored for this version")
        for decision in slot.decisions:
            verdict = "passed" if decision.passed else "failed " + ", ".join(g.gate for g in decision.failed)
            override = f", overridden: {decision.override_reason}" if decision.override_reason else ""
            line(f"  decision   {decision.at.isoformat()} -> {decision.alias}: {verdict}{override} "
                 f"by {decision.actor}")
        if not slot.approvals:
            line("  approvals  none requested")
        for request in slot.approvals:
            line(f"  approval   {request.id} -> {request.alias}: {request.status}, asked by {request.requested_by} "
                 f"at {request.requested_at.isoformat()}" + (f" ({request.comment})" if request.comment else ""))
            for vote in request.votes:
                line(f"    {vote.vote:<8} by {vote.approver} at {vote.at.isoformat()}"
                     + (f" ({vote.comment})" if vote.comment else ""))
        for gap in slot.missing:
            line(f"  MISSING    {gap}")
    out = table("revision", "action", "strategy", "primary", "candidate", "weight", "by", "when", "reason")
    for r in lineage.history:
        out.add_row(str(r.revision), r.action, r.strategy, f"{r.model}@{r.version}",
                      f"{r.candidate_model}@{r.candidate_version}" if r.candidate_digest else "-",
                      f"{r.weight:.2f}" if r.weight else "-", r.changed_by, f"{r.changed_at:%Y-%m-%d %H:%M:%S}",
                      r.reason)
    line("revisions up to then:")
    print_table(out)


def _gate_text(gate: Any) -> str:
    """A gate's verdict, with its measure when that is one figure (lists and maps stay in --json)."""
    verdict = f"{gate.gate} {'passed' if gate.passed else 'FAILED'}"
    measured = gate.measured
    if isinstance(measured, float):
        return f"{verdict} ({measured:.4g}, needs {gate.bound})"
    if isinstance(measured, str | int) and not isinstance(measured, bool):
        return f"{verdict} ({measured}, needs {gate.bound})"
    return verdict


