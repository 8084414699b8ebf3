"""What ``mlops-lite ci check`` and ``ci data-check`` write: a Markdown report fit for a
pull-request comment and JUnit XML (one test case per gate or check), from plain values.

The gates themselves are ``Policy.evaluate``'s; this module only lays their results out.
JUnit follows the schema CI systems read (GitHub test reporters, GitLab's
``artifacts:reports:junit``, Jenkins): ``<testsuites>`` around one ``<testsuite>`` whose
``<testcase>`` elements carry a ``<failure>`` when the gate failed.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlops_lite.records import GateResult

__all__ = ["CheckCase", "CheckReport", "MetricDelta", "cases_from_gates", "metric_deltas", "to_junit",
           "to_markdown"]

# XML 1.0 refuses these characters even escaped; a gate's detail may quote a file's bytes.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_CELL = 160


@dataclass(frozen=True)
class CheckCase:
    """One gate or data check: its name, verdict, what it measured against what bound."""

    name: str
    passed: bool
    measured: Any = None
    bound: Any = None
    detail: str = ""


@dataclass(frozen=True)
class MetricDelta:
    """A metric of the candidate beside the baseline's. ``source`` says where both figures
    come from: ``measured`` (both models scored on the same evaluation data by the
    regression gate) or ``recorded`` (what each training run logged)."""

    metric: str
    candidate: float | None
    baseline: float | None
    source: str = "recorded"

    @property
    def delta(self) -> float | None:
        if self.candidate is None or self.baseline is None:
            return None
        return self.candidate - self.baseline


@dataclass(frozen=True)
class CheckReport:
    title: str
    suite: str
    """The JUnit test suite's name (and each case's class name), e.g. ``mlops-lite.gates``."""
    cases: tuple[CheckCase, ...]
    subject: dict[str, str] = field(default_factory=dict)
    """What was checked, shown as a list above the table (model, candidate, baseline, ...)."""
    deltas: tuple[MetricDelta, ...] = ()
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    at: datetime | None = None

    @property
    def passed(self) -> bool:
        return all(case.passed for case in self.cases)

    @property
    def failures(self) -> int:
        return sum(1 for case in self.cases if not case.passed)

    @property
    def exit_code(self) -> int:
        """0 when every case passed, 1 when one failed."""
        return 0 if self.passed else 1


def cases_from_gates(results: Sequence[GateResult]) -> tuple[CheckCase, ...]:
    return tuple(CheckCase(name=r.gate, passed=r.passed, measured=r.measured, bound=r.bound, detail=r.detail)
                 for r in results)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def metric_deltas(candidate: Mapping[str, Any], baseline: Mapping[str, Any] | None,
                  gates: Sequence[GateResult] = ()) -> tuple[MetricDelta, ...]:
    """The measured comparison first (the regression gate scored both models on the same
    rows), then every numeric metric either training run recorded."""
    out: list[MetricDelta] = []
    measured: set[str] = set()
    for gate in gates:
        evidence = gate.evidence or {}
        if gate.gate.startswith("regression.") and "reference" in evidence:
            metric = str(evidence.get("metric", gate.gate.removeprefix("regression.")))
            out.append(MetricDelta(metric, _number(evidence.get("measured")), _number(evidence.get("reference")),
                                   "measured"))
            measured.add(metric)
    if baseline is None:
        return tuple(out)
    names = sorted({k for k, v in candidate.items() if _number(v) is not None}
                   | {k for k, v in baseline.items() if _number(v) is not None})
    out += [MetricDelta(name, _number(candidate.get(name)), _number(baseline.get(name)), "recorded")
            for name in names]
    return tuple(out)


# ------------------------------------------------------------------------------ Markdown

def _show(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, separators=(", ", ": "))


def _cell(value: Any, limit: int = _CELL) -> str:
    text = " ".join(_show(value).split())
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    # A pipe ends a cell and a backtick opens code in GitHub's and GitLab's tables.
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "'") or " "


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.4g}"


def to_markdown(report: CheckReport) -> str:
    """The report as GitHub/GitLab-flavoured Markdown: a verdict line, what was checked,
    a table of every case, the metric deltas, and the details of the failed cases."""
    verdict = ("**passed**: every one of {n} passed" if report.passed
               else "**failed**: {f} of {n} failed").format(n=len(report.cases), f=report.failures)
    lines = [f"### {'✅' if report.passed else '❌'} {report.title}", "", verdict, ""]
    for key, value in report.subject.items():
        lines.append(f"- {key}: {_cell(value)}")
    if report.subject:
        lines.append("")
    lines += ["| | check | measured | bound | detail |", "|---|---|---|---|---|"]
    for case in report.cases:
        mark = "✅" if case.passed else "❌"
        lines.append(f"| {mark} | `{_cell(case.name, 80)}` | {_cell(case.measured)} | {_cell(case.bound)} "
                     f"| {_cell(case.detail)} |")
    if report.deltas:
        lines += ["", "#### Metrics against the baseline", "",
                  "| metric | candidate | baseline | delta | source |", "|---|---:|---:|---:|---|"]
        for d in report.deltas:
            lines.append(f"| {_cell(d.metric, 60)} | {_cell(d.candidate)} | {_cell(d.baseline)} "
                         f"| {_signed(d.delta)} | {d.source} |")
    failed = [case for case in report.cases if not case.passed and case.detail]
    if failed:
        lines += ["", "<details><summary>Why the failed checks failed</summary>", ""]
        lines += [f"- `{_cell(case.name, 80)}`: {_cell(case.detail, 2000)}" for case in failed]
        lines += ["", "</details>"]
    if report.notes:
        lines.append("")
        lines += [f"> {_cell(note, 2000)}" for note in report.notes]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ JUnit XML

def _xml_text(value: Any) -> str:
    return _NOT_XML.sub("?", _show(value))


def to_junit(report: CheckReport) -> str:
    """The report as JUnit XML: one ``testcase`` per check, a ``failure`` in each failed one
    (its message the detail; measured and bound in its text and in ``properties``)."""
    cases = len(report.cases)
    root = ET.Element("testsuites", name="mlops-lite", tests=str(cases), failures=str(report.failures),
                      errors="0", skipped="0", time=f"{report.seconds:.3f}")
    suite = ET.SubElement(root, "testsuite", name=report.suite, tests=str(cases), failures=str(report.failures),
                          errors="0", skipped="0", time=f"{report.seconds:.3f}")
    if report.at is not None:
        suite.set("timestamp", report.at.replace(tzinfo=None, microsecond=0).isoformat())
    if report.subject:
        props = ET.SubElement(suite, "properties")
        for key, value in report.subject.items():
            ET.SubElement(props, "property", name=_xml_text(key), value=_xml_text(value))
    for case in report.cases:
        element = ET.SubElement(suite, "testcase", classname=report.suite, name=_xml_text(case.name), time="0")
        props = ET.SubElement(element, "properties")
        ET.SubElement(props, "property", name="measured", value=_xml_text(case.measured))
        ET.SubElement(props, "property", name="bound", value=_xml_text(case.bound))
        if not case.passed:
            failure = ET.SubElement(element, "failure", type="GateFailed",
                                    message=_xml_text(case.detail or f"{case.name} failed"))
            failure.text = _xml_text(f"measured: {_show(case.measured)}\nbound: {_show(case.bound)}\n{case.detail}")
        elif case.detail:
            ET.SubElement(element, "system-out").text = _xml_text(case.detail)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
