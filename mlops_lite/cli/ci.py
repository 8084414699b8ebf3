"""``mlops-lite ci ...``: the gates of a pull request or a pipeline (docs/ci/README.md).

``ci check`` measures a candidate model version against the model's policy (thresholds on
the evaluation data, no regression against a baseline on the same rows, fairness, data
checks, lineage, residency, approvals); ``ci data-check`` runs a branch's pre-merge data
checks. Both print a Markdown report (fit for a pull-request comment or
``$GITHUB_STEP_SUMMARY``) and can write it and JUnit XML (one test case per gate) to
files. Exit status: 0 every gate passed, 1 a gate failed, 2 the check could not run (bad
input, an unknown model, version, repository or branch, a server that cannot be reached
or refuses the token): the message says which.

Both work on the local home and against a running ``mlops-lite up`` (``--url`` or
``MLOPS_LITE_URL``, with the token in ``MLOPS_LITE_TOKEN``: never on the command line)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.text import Text

from mlops_lite.cli.common import err, group, platform
from mlops_lite.errors import InvalidInput, MlopsLiteError, NotFound

if TYPE_CHECKING:
    from mlops_lite.api import PlatformAPI
    from mlops_lite.policy.ci_report import CheckReport
    from mlops_lite.records import ModelVersionRecord

app = group("CI/CD gates: check a candidate model version or a data branch; Markdown and JUnit reports.")

BAD_INPUT = 2

UrlOption = Annotated[str | None, typer.Option(
    "--url", help="The mlops-lite API to check against (default: MLOPS_LITE_URL, the home's daemon, "
                  "else the local home). The token comes from MLOPS_LITE_TOKEN or `mlops-lite login`.")]
MarkdownOption = Annotated[Path | None, typer.Option(
    "--markdown", help="Also write the Markdown report to this file.")]
JunitOption = Annotated[Path | None, typer.Option(
    "--junit", help="Write JUnit XML (one test case per gate) to this file.")]
QuietOption = Annotated[bool, typer.Option(
    "--quiet", "-q", help="Print only the verdict line, not the Markdown report.")]


def _fail(message: str, code: int = BAD_INPUT) -> NoReturn:
    err.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _run(url: str | None, build: Callable[[PlatformAPI], CheckReport], markdown: Path | None,
         junit: Path | None, quiet: bool) -> None:
    from mlops_lite.policy.ci_report import to_junit, to_markdown

    for option, path in (("--markdown", markdown), ("--junit", junit)):
        if path is not None and not path.expanduser().parent.is_dir():
            _fail(f"{option}: the folder {path.expanduser().parent} does not exist")
    if url is not None:
        if not url.startswith(("http://", "https://")):
            _fail(f"--url: expected an http:// or https:// URL, got {url!r}")
        os.environ["MLOPS_LITE_URL"] = url
    try:
        with platform() as p:
            report = build(p)
    except MlopsLiteError as exc:
        message = str(exc.message)
        if isinstance(exc, InvalidInput) and exc.expected and exc.expected not in message:
            message += f" (expected {exc.expected})"
        _fail(message)
    text = to_markdown(report)
    if markdown is not None:
        markdown.expanduser().write_text(text, encoding="utf-8")
    if junit is not None:
        junit.expanduser().write_text(to_junit(report), encoding="utf-8")
    if quiet:
        verdict = "passed" if report.passed else f"failed ({report.failures} of {len(report.cases)})"
        sys.stdout.write(f"{report.title}: {verdict}\n")
    else:
        sys.stdout.write(text)
    sys.stdout.flush()
    raise typer.Exit(report.exit_code)


# ------------------------------------------------------------------------------ ci check

def _version(p: PlatformAPI, model: str, ref: str, option: str) -> ModelVersionRecord:
    """A version of ``model`` named by its version or one of its aliases."""
    aliases = p.registry.aliases(model)  # NotFound names an unknown model
    if ref in aliases:
        return p.registry.get_version(model, aliases[ref])
    try:
        return p.registry.get_version(model, ref)
    except NotFound:
        raise NotFound(f"{option}: {model} has no version or alias {ref!r} (aliases: "
                       f"{', '.join(sorted(aliases)) or 'none'})") from None


def _baseline(p: PlatformAPI, model: str, against: str) -> tuple[ModelVersionRecord, str]:
    """``--against``: an alias of the model, a deployment (its primary version), or a
    version; with how it was found, for the report."""
    aliases = p.registry.aliases(model)
    if against in aliases:
        return p.registry.get_version(model, aliases[against]), f"alias {against} = {aliases[against]}"
    try:
        deployment = p.deployments.get(against)
    except (NotFound, InvalidInput):
        deployment = None
    if deployment is not None:
        if deployment.model != model:
            raise InvalidInput(f"--against: deployment {against!r} serves {deployment.model}, not {model}",
                               field="against", expected=f"an alias, deployment or version of {model}")
        return (p.registry.get_version(model, deployment.version),
                f"deployment {against} (revision {deployment.revision}) serves {deployment.version}")
    try:
        found = p.registry.get_version(model, against)
        return found, f"version {found.version}"
    except NotFound:
        raise NotFound(f"--against: {against!r} is no alias, deployment or version of {model}") from None


def gate_report(p: PlatformAPI, model: str, candidate: str, *, against: str | None,
                alias: str) -> CheckReport:
    """Every gate of ``model@candidate`` going to ``alias``, measured now (nothing stored),
    with the metric deltas against the baseline."""
    from mlops_lite.clock import utcnow
    from mlops_lite.policy.ci_report import CheckReport, cases_from_gates, metric_deltas

    started, at = time.monotonic(), utcnow()
    version = _version(p, model, candidate, "--candidate")
    subject = {"model": model, "candidate": f"{version.version} (sha256 {version.digest[:12]})",
               "target alias": alias}
    notes: list[str] = []
    base: ModelVersionRecord | None = None
    if against is not None:
        base, how = _baseline(p, model, against)
        subject["baseline"] = how
        if base.version == version.version:
            notes.append(f"the baseline is the candidate itself ({version.version}): nothing to regress against")
    else:
        production = p.registry.aliases(model).get("production")
        if production is not None:
            base = p.registry.get_version(model, production)
            subject["baseline"] = (f"alias production = {base.version} (recorded metrics; --against also "
                                   "scores both on the same rows)")
        else:
            notes.append(f"{model} has no production version: no baseline to compare with (use --against)")
    gates = p.policy.evaluate(version, alias=alias,
                              baseline=base.version if against is not None and base is not None else None)
    if version.data_commits:
        subject["data commits"] = ", ".join(c[:12] for c in version.data_commits)
    if version.run_id:
        subject["run"] = version.run_id
    deltas = metric_deltas(version.metrics, base.metrics if base is not None else None, gates)
    return CheckReport(title=f"Gates for {model}@{version.version} -> {alias}", suite="mlops-lite.gates",
                       cases=cases_from_gates(gates), subject=subject, deltas=deltas, notes=tuple(notes),
                       seconds=time.monotonic() - started, at=at)


@app.command("check")
def ci_check(
        model: Annotated[str, typer.Option("--model", help="The registered model.")],
        candidate: Annotated[str, typer.Option("--candidate", help="The version (or alias) to check.")],
        against: Annotated[str | None, typer.Option(
            "--against", help="The baseline the regression gate scores on the same rows: an alias "
                              "(production), a deployment (its primary version) or a version. Default: "
                              "the policy's [regression] alias.")] = None,
        alias: Annotated[str, typer.Option(
            "--alias", help="The alias the candidate is going to (approvals are counted for it).")] = "production",
        url: UrlOption = None, markdown: MarkdownOption = None, junit: JunitOption = None,
        quiet: QuietOption = False) -> None:
    """Run the policy gates of a candidate version; Markdown report on stdout, JUnit with
    --junit. Exit 0: every gate passed; 1: a gate failed; 2: the check could not run."""
    _run(url, lambda p: gate_report(p, model, candidate, against=against, alias=alias), markdown, junit, quiet)


# ------------------------------------------------------------------------------ ci data-check

def data_report(p: PlatformAPI, repository: str, branch: str, *, into: str) -> CheckReport:
    """The checks a merge of ``branch`` into ``into`` runs, over every table the branch
    adds or changes since their merge base (committed, and staged with a note), one case
    per path, plus one for conflicts (mlops_lite/data/premerge.py)."""
    from mlops_lite.clock import utcnow
    from mlops_lite.data.premerge import premerge
    from mlops_lite.policy.ci_report import CheckCase, CheckReport

    started, at = time.monotonic(), utcnow()
    checked = premerge(p.data.repo(repository), branch, into, names=("--branch", "--into"))
    conflicts = checked.conflicts
    cases: list[CheckCase] = [CheckCase(
        name="merge.conflicts", passed=not conflicts, measured=len(conflicts), bound="0",
        detail=(f"changed on both {branch} and {into}: {', '.join(conflicts[:20])}" if conflicts
                else f"no committed change of {branch} conflicts with {into}"))]
    cases += [CheckCase(name=f"data:{c.path}", passed=c.passed, measured=f"{c.size} bytes", bound=c.rules,
                        detail="; ".join(c.reasons)) for c in checked.paths]
    notes = []
    if checked.staged:
        notes.append(f"{checked.staged} uncommitted change(s) on {branch} were checked too; commit them before merging")
    if not checked.has_rules:
        notes.append(f"{repository} declares no data rules (schemas, PII patterns, size limit, k-anonymity): "
                     "only conflicts were checked (`mlops-lite data repo configure`)")
    subject = {"repository": repository,
               "branch": f"{branch} at {checked.head[:12] if checked.head else '(no commit)'}",
               "into": into + (" (protected)" if checked.protected else ""),
               "paths checked": str(len(checked.paths))}
    return CheckReport(title=f"Data checks for {repository}/{branch} -> {into}", suite="mlops-lite.data",
                       cases=tuple(cases), subject=subject, notes=tuple(notes),
                       seconds=time.monotonic() - started, at=at)


@app.command("data-check")
def ci_data_check(
        repo: Annotated[str, typer.Option("--repo", help="The data repository.")],
        branch: Annotated[str, typer.Option("--branch", help="The branch to check.")],
        into: Annotated[str, typer.Option("--into", help="The branch it would merge into.")] = "main",
        url: UrlOption = None, markdown: MarkdownOption = None, junit: JunitOption = None,
        quiet: QuietOption = False) -> None:
    """Run the pre-merge data checks of a branch (schemas, PII, size, k-anonymity into a
    protected branch, conflicts). Exit 0: all pass; 1: a check failed; 2: could not run."""
    _run(url, lambda p: data_report(p, repo, branch, into=into), markdown, junit, quiet)
