"""``mlops-lite models ...``: the registry's models, versions, aliases and lineage.

A gated alias (``production`` unless the policy says otherwise) moves only with a passing
policy decision: the registry asks the policy, in-process or in the daemon alike."""

from __future__ import annotations

import json
from pathlib import Path
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
from mlops_lite.errors import InvalidInput

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
    if lineage.feature_service:
        line(f"  features   service {lineage.feature_service} version {lineage.feature_service_version}, "
             f"training set {lineage.training_set}")
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


@app.command("export")
def models_export(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION or NAME@ALIAS.")],
    out: Annotated[Path, typer.Option("--out", help="A new (or empty) folder to write into.")],
    fmt: Annotated[str, typer.Option("--format", help="What to export as: kserve (a Triton model repository "
                                                       "and a KServe InferenceService).")] = "kserve",
    name: Annotated[str | None, typer.Option(help="The served model name (Triton's folder, the "
                                                   "InferenceService); default: the model's name.")] = None,
    storage_uri: Annotated[str | None, typer.Option(help="Where the model-repository folder will be uploaded "
                                                         "(s3://, gs://, pvc://...); default "
                                                         "pvc://models/NAME/model-repository.")] = None,
    namespace: Annotated[str | None, typer.Option(help="The InferenceService's namespace.")] = None,
    max_batch_size: Annotated[int, typer.Option(help="Triton's max_batch_size (0: no batching).")] = 10_000,
    cpu: Annotated[str, typer.Option(help="CPU request and limit.")] = "1",
    memory: Annotated[str, typer.Option(help="Memory request and limit.")] = "2Gi",
    force: Annotated[bool, typer.Option("--force", help="Replace an export already in --out.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Export a version's ONNX file as a Triton model repository (config.pbtxt read from the
    graph) with a KServe InferenceService (serving.kserve.io/v1beta1) that serves it over the
    same /v2 protocol as `mlops-lite serve`."""
    from mlops_lite.inference import kserve

    if fmt != "kserve":
        raise InvalidInput(f"unknown --format {fmt!r}", field="format", expected="kserve")
    model, wanted = model_ref(ref)
    with platform() as p:
        lineage = p.registry.lineage(model, wanted)
        version = lineage.version
        onnx_bytes = p.registry.model_bytes(model, version.version)
    served = kserve.check_name(name) if name is not None else kserve.check_name(kserve.default_name(model))
    config = kserve.triton_config(onnx_bytes, served, max_batch_size=max_batch_size)
    document = kserve.inference_service(
        name=served, model=model, version=version.version, digest=version.digest, run_id=lineage.run_id,
        data_commits=lineage.data_commits, storage_uri=storage_uri or kserve.default_storage_uri(served),
        namespace=namespace, cpu=cpu, memory=memory)
    origin = f"{model}@{version.version} sha256:{version.digest}, exported by mlops-lite"
    paths = kserve.write_export(out, name=served, onnx_bytes=onnx_bytes, digest=version.digest,
                                config_text=config.to_pbtxt(comment=origin),
                                manifest_text=kserve.to_yaml(document, comment=origin), force=force)
    if as_json:
        print_json({"model": model, "version": version.version, "digest": version.digest, "name": served,
                    "config": str(paths.config), "model_file": str(paths.model_file),
                    "manifest": str(paths.manifest),
                    "storage_uri": document["spec"]["predictor"]["model"]["storageUri"]})
        return
    line(f"{model}@{version.version} (sha256:{version.digest}) exported as {served!r}")
    line(f"  {paths.config}")
    line(f"  {paths.model_file}")
    line(f"  {paths.manifest}")
    line(f"upload {paths.out / kserve.REPOSITORY} to {document['spec']['predictor']['model']['storageUri']}, "
         f"then: kubectl apply -f {paths.manifest}")


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
