"""``mlops-lite privacy ...``: the data subject's rights and retention (admin): erase a
subject from a repository's whole history and the prediction log, export a subject's
rows, apply retention now."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mlops_lite.cli.common import JsonOption, group, jsonable, line, platform
from mlops_lite.crypto.keys import write_private

app = group("Data-subject rights and retention: erase, export, retention.")

Repo = Annotated[str, typer.Option("--repo", help="The data repository.")]
Subject = Annotated[str, typer.Option("--subject", help="The subject's identifier, or its pseudonymous token.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Count what would go; change nothing.")]


@app.command("erase")
def privacy_erase(repo: Repo, subject: Subject, dry_run: DryRun = False, as_json: JsonOption = False) -> None:
    """Remove the subject's rows from every commit of the repository (and of any repository
    sharing an affected object), the prediction log and feedback; old objects are deleted,
    commits mapped old -> new, models trained on them flagged for a retrain. Audited
    (privacy.erase) with a keyed digest of the subject, never the identifier."""
    with platform() as p:
        report = p.privacy.erase(repo, subject, dry_run=dry_run)
    if as_json:
        line(json.dumps(jsonable(report), sort_keys=True))
        return
    verb = "would remove" if dry_run else "removed"
    log = "" if report.prediction_log_rows is None else f", {report.prediction_log_rows} prediction log row(s)"
    line(f"{verb} {report.rows} row(s) from {report.objects} object(s), {len(report.commits)} commit(s) "
         f"rewritten in {', '.join(report.repositories) or repo}{log}")
    if not dry_run:
        line(f"erasure {report.erasure} (subject digest {report.subject_digest}); "
             f"{report.models_flagged} model version(s) flagged for a retrain")


@app.command("export")
def privacy_export(repo: Repo, subject: Subject,
                   out: Annotated[Path | None, typer.Option("--out", help="Write the JSON here (0600).")] = None
                   ) -> None:
    """Every row of the subject at each branch head and in the prediction log, as JSON
    (an access request). Audited (privacy.export) without the rows."""
    with platform() as p:
        export = p.privacy.export(repo, subject)
    text = json.dumps(jsonable(export), sort_keys=True, indent=2)
    if out is None:
        line(text)
        return
    write_private(out, text.encode())
    line(f"{len(export.rows)} row(s) and {len(export.predictions)} prediction(s) written to {out}")


@app.command("retention")
def privacy_retention(dry_run: DryRun = False, as_json: JsonOption = False) -> None:
    """Apply every repository's retention_days and the prediction log's retention now (the
    daemon does daily). Audited (privacy.retention)."""
    with platform() as p:
        report = p.privacy.retention(dry_run=dry_run)
    if as_json:
        line(json.dumps(jsonable(report), sort_keys=True))
        return
    for run in report.repositories:
        line(f"{run.repository}: {run.retention_days} days: {run.rows} row(s), {run.objects} object(s), "
             f"{run.commits} commit(s), {run.paths_removed} path(s) removed from heads")
    if not report.repositories:
        line("no repository declares retention_days")
    if report.prediction_log_days is not None:
        removed = "not applied (dry run)" if report.prediction_log_files is None else \
            f"{report.prediction_log_files} file(s) removed"
        line(f"prediction log: {report.prediction_log_days} days, {removed}")
