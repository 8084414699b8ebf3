"""``mlops-lite compliance ...``: where every dataset, model and log lives, and the report
an auditor asks for (docs/compliance.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mlops_lite.cli.common import JsonOption, group, jsonable, line, platform, print_table, table

app = group("Data protection for auditors: residency and the compliance report.")


@app.command("residency")
def compliance_residency(as_json: JsonOption = False) -> None:
    """Where every dataset, the artifact store (models) and the prediction log live, their
    classification, and whether the policy's residency rules allow them there."""
    with platform() as p:
        entries = p.compliance.residency()
    if as_json:
        line(json.dumps(jsonable(entries), sort_keys=True))
        return
    out = table("kind", "name", "classification", "region", "allowed", "rule", "status", "location")
    for e in entries:
        out.add_row(e.kind, e.name, e.classification, e.region, ", ".join(e.allowed), e.rule or "unrestricted",
                    e.status if e.status == "allowed" else e.status.upper(), e.location)
    print_table(out)
    violating = [e for e in entries if e.status != "allowed"]
    if violating:
        line(f"{len(violating)} location(s) violate the residency rules")
        raise typer.Exit(1)


@app.command("report")
def compliance_report(out: Annotated[Path | None, typer.Option(
        "--out", metavar="DIR", help="Write compliance-report.md and compliance-report.json here "
                                     "(default: the Markdown on stdout).")] = None,
        as_json: JsonOption = False) -> None:
    """Records of processing, residency, encryption and key ages, retention runs, erasures,
    key rotations and the audit chain's verification: Markdown and JSON, no personal data."""
    from mlops_lite.privacy.report import render_markdown

    with platform() as p:
        report = p.compliance.report()
    document = json.dumps(jsonable(report), sort_keys=True, indent=2)
    if out is None:
        line(document if as_json else render_markdown(report))
        return
    out.mkdir(parents=True, exist_ok=True)
    stamp = f"{report.generated_at:%Y%m%dT%H%M%SZ}"
    markdown, data = out / f"compliance-report-{stamp}.md", out / f"compliance-report-{stamp}.json"
    markdown.write_text(render_markdown(report), encoding="utf-8")
    data.write_text(document + "\n", encoding="utf-8")
    line(f"wrote {markdown} and {data}")
    if not report.audit_chain.verified:
        line("the audit chain does NOT verify (see the report's last section)")
        raise typer.Exit(1)
