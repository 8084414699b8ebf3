"""The CI report's layout: Markdown tables that a pipe or a newline in a gate's detail
cannot break, JUnit XML that any bytes in a detail cannot make unparseable."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from mlops_lite.policy.ci_report import (
    CheckCase,
    CheckReport,
    MetricDelta,
    cases_from_gates,
    metric_deltas,
    to_junit,
    to_markdown,
)
from mlops_lite.records import GateResult


def _report(*cases: CheckCase, **kw: object) -> CheckReport:
    return CheckReport(title="Gates for m@1 -> production", suite="mlops-lite.gates", cases=cases, **kw)  # type: ignore[arg-type]


def test_markdown_cells_hold_pipes_and_newlines_without_breaking_the_table() -> None:
    text = to_markdown(_report(CheckCase("metric.f1", False, 0.5, ">= 0.9", "a | b\nc `d`")))
    row = next(line for line in text.splitlines() if "metric.f1" in line)
    # Five cells, so six unescaped pipes: the detail's pipe is escaped, its newline gone.
    assert row.replace("\\|", "").count("|") == 6
    assert "a \\| b c 'd'" in row and "❌" in row and "**failed**: 1 of 1 failed" in text


def test_metric_deltas_put_the_measured_comparison_first() -> None:
    gate = GateResult("regression.roc_auc", True, 0.82, ">= 0.8", evidence={"metric": "roc_auc", "measured": 0.82,
                                                                             "reference": 0.8})
    deltas = metric_deltas({"roc_auc": 0.9, "note": "text", "f1": 0.5}, {"roc_auc": 0.7, "f1": 0.6}, [gate])
    assert deltas[0] == MetricDelta("roc_auc", 0.82, 0.8, "measured")
    assert [(d.metric, d.source) for d in deltas[1:]] == [("f1", "recorded"), ("roc_auc", "recorded")]
    assert abs((deltas[1].delta or 0) + 0.1) < 1e-9
    assert metric_deltas({"f1": 1.0}, None) == ()


def test_junit_parses_and_counts_failures_whatever_the_detail_holds() -> None:
    gates = [GateResult("metric.roc_auc", True, 0.8, ">= 0.7", "ok"),
             GateResult("data.checked", False, None, "on main", "bad \x00\x1b bytes <&> \"quoted\"")]
    report = _report(*cases_from_gates(gates), subject={"model": "m"}, at=datetime(2026, 1, 2, tzinfo=UTC))
    root = ET.fromstring(to_junit(report).encode())
    suite = root.find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("tests") == "2"
    assert suite.get("timestamp") == "2026-01-02T00:00:00"
    failure = root.find(".//testcase[@name='data.checked']/failure")
    assert failure is not None and failure.get("message") == 'bad ?? bytes <&> "quoted"'
    assert root.find(".//testcase[@name='metric.roc_auc']/failure") is None
    assert report.exit_code == 1 and _report(*cases_from_gates(gates[:1])).exit_code == 0
