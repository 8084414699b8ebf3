"""``mlops-lite models ...``: the registry's models, versions, aliases and lineage.

A gated alias (``production`` unless the policy says otherwise) moves only with a passing
policy decision: the registry asks the policy, in-process or in the daemon alike."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mlops_lite.cli.common import (
    JsonOption,
    group,
    jsonable,
    line,
    model_ref,
    moment,
    platform,
    print_json,
    print_table,
    table,
)

app = group("The model registry: versions, aliases and their history, lineage.")
alias_app = group("Aliases (staging, production, ...).")
app.add_typer(alias_app, name="alias")

AliasReason = Annotated[str, typer.Option(help="Why (kept in the alias history).")]


@app.command("list")
def models_list(as_json: JsonOption = False) -> None:
    """Models, their versions and aliases."""
    with platform() as p:
        rows = [(m, p.registry.aliases(m.name)) for m in p.registry.list_models()]
    if as_json:
        print_json([{**jsonable(m), "aliases": a} for m, a in rows])
        return
    out = table("model", "versions", "aliases")
    for model, aliases in rows:
        out.add_row(model.name, ", ".join(model.versions), ", ".join(f"{k}={v}" for k, v in sorted(aliases.items())))
    print_table(out)


@app.command("lineage")
def models_lineage(ref: Annotated[str, typer.Argument(help="NAME@VERSION or NAME@ALIAS.")],
                   at: Annotated[str | None, typer.Option(help="Resolve the alias at this ISO time.")] = None,
                   as_json: JsonOption = False) -> None:
    """Where a model came from: data commits, run, params, metrics, who moved its alias, and
    every audit event about it (registrations, decisions, approvals, overrides)."""
    model, name = model_ref(ref)
    when_asked = moment(at)
    with platform() as p:
        lineage = p.registry.lineage(model, name, at=when_asked)
    if as_json:
        print_json(lineage)
        return
    version = lineage.version
    when = f" at {lineage.at.isoformat()}" if lineage.at else ""
    line(f"{model}@{name}{when} is version {version.version}  sha256:{version.digest}")
    line(f"  registered {version.created_at.isoformat()} by {version.created_by}")
    line(f"  run        {lineage.run_id or '-'}")
    line(f"  data       {', '.join(lineage.data_commits) or '-'}")
    line(f"  params     {json.dumps(lineage.params, sort_keys=True)}")
    line("  metrics    " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(lineage.metrics.items())
                                      if isinstance(v, int | float)))
    for event in lineage.alias_events:
        line(f"  alias      {event.at.isoformat()} {event.kind} {event.alias}: {event.from_version or '-'} -> "
             f"{event.to_version or '-'} by {event.actor} ({event.reason})")
    for audited in lineage.audit_events:
        line(f"  audit      #{audited.seq} {audited.at.isoformat()} {audited.action} by {audited.actor}")
        if audited.action == "privacy.flag":
            line(f"  privacy    {(audited.after or {}).get('note')}")


@app.command("compare")
def models_compare(model: str, a: str, b: str, as_json: JsonOption = False) -> None:
    """Version B against version A: metric deltas, signature and data differences."""
    with platform() as p:
        comparison = p.registry.compare_versions(model, a, b)
    if as_json:
        print_json(comparison)
        return
    line(f"{model} {b} vs {a}")
    for key, delta in sorted(comparison.metric_deltas.items()):
        line(f"  {key:<32} {delta:+.4g}")
    line(f"  signature changed: {comparison.signature_changed}; data changed: {comparison.data_changed}")


@alias_app.command("set")
def alias_set(model: str, alias: str, version: str, reason: AliasReason) -> None:
    """Point an alias at a version (a gated alias, such as production, only through the
    policy: a failing decision refuses the move and names every gate)."""
    with platform() as p:
        record = p.registry.set_alias(model, alias, version, reason=reason)
    line(f"{model}@{alias} -> {record.version}")


@alias_app.command("rollback")
def alias_rollback(model: str, alias: str, reason: AliasReason) -> None:
    """Move an alias back to the version it pointed to before its last move."""
    with platform() as p:
        record = p.registry.rollback(model, alias, reason=reason)
    line(f"{model}@{alias} rolled back to {record.version}")


@alias_app.command("history")
def alias_history(model: str, alias: Annotated[str | None, typer.Argument()] = None,
                  as_json: JsonOption = False) -> None:
    """Every move of a model's aliases (or one alias), oldest first."""
    with platform() as p:
        events = p.registry.alias_history(model, alias)
    if as_json:
        print_json(events)
        return
    out = table("when", "alias", "kind", "from", "to", "by", "reason")
    for e in events:
        out.add_row(e.at.isoformat(timespec="seconds"), e.alias, e.kind, e.from_version or "-",
                    e.to_version or "-", e.actor, e.reason)
    print_table(out)
