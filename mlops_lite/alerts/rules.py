"""Alert rules: ``metric op threshold``, held for ``for_s`` seconds, fire an alert.

A rule is a frozen, validated value (``AlertRule``); it judges ``Observation``s, the
figures the monitor computes. Rules files are TOML, one ``[[rule]]`` table per rule::

    [[rule]]
    name = "latency-p99-high"      # unique; letters, digits, '_', '-', '.'
    metric = "latency.p99_ms"      # drift.share, quality.accuracy, errors.rate ...
    op = ">"                       # > >= < <=
    threshold = 250
    for_s = 60                     # seconds the condition must hold (default 0: at once)
    severity = "warning"           # info | warning | critical (default warning)
    subject = "loans"              # optional: only this deployment (default: any)
    description = "p99 latency above 250 ms"

A bad file raises InvalidInput naming the file, the line and the field
(``rule[1].op``), with ``details['line']``.
"""

from __future__ import annotations

import math
import operator
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from mlops_lite.errors import InvalidInput

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}
SEVERITIES = ("info", "warning", "critical")
RULE_KEYS = ("name", "metric", "op", "threshold", "for_s", "severity", "subject", "description")
REQUIRED_RULE_KEYS = ("name", "metric", "op", "threshold")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_METRIC = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
_LINE = re.compile(r"at line (\d+)")


def is_finite_number(value: Any) -> bool:
    """An int or float (not a bool) that is neither NaN nor infinite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Observation:
    """One figure of one subject (a deployment name; "" for platform-wide figures).
    ``evidence`` is JSON-ready: the window (start, end) and the figures behind ``value``."""

    metric: str
    subject: str
    value: float
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertRule:
    """``metric op threshold`` held for ``for_s`` seconds fires an alert of ``severity``
    on the observation's subject; ``subject`` limits the rule to one deployment."""

    name: str
    metric: str
    op: str
    threshold: float
    for_s: float = 0.0
    severity: str = "warning"
    subject: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise InvalidInput(f"bad rule name {self.name!r}", field="name",
                               expected="1-63 characters: letters, digits, '_', '-', '.'")
        if not isinstance(self.metric, str) or not _METRIC.match(self.metric):
            raise InvalidInput(f"bad metric {self.metric!r}", field="metric",
                               expected="a metric name such as drift.share or latency.p99_ms")
        if self.op not in OPS:
            raise InvalidInput(f"op must be one of {' '.join(OPS)}, got {self.op!r}", field="op",
                               expected=" | ".join(OPS))
        if not is_finite_number(self.threshold):
            raise InvalidInput(f"threshold must be a finite number, got {self.threshold!r}", field="threshold",
                               expected="a finite number")
        if not is_finite_number(self.for_s) or self.for_s < 0:
            raise InvalidInput(f"for_s must be a number of seconds >= 0, got {self.for_s!r}", field="for_s",
                               expected="a number >= 0")
        if self.severity not in SEVERITIES:
            raise InvalidInput(f"severity must be one of {', '.join(SEVERITIES)}, got {self.severity!r}",
                               field="severity", expected=" | ".join(SEVERITIES))
        if self.subject is not None and (not isinstance(self.subject, str) or not self.subject.strip()):
            raise InvalidInput(f"subject must be a non-empty string, got {self.subject!r}", field="subject",
                               expected="a deployment name, or leave it out for any")
        if not isinstance(self.description, str):
            raise InvalidInput(f"description must be a string, got {self.description!r}", field="description",
                               expected="a string")
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "for_s", float(self.for_s))

    def holds(self, value: float) -> bool:
        """Whether ``value`` breaches the rule (the alert condition is true)."""
        return OPS[self.op](value, self.threshold)

    def matches(self, observation: Observation) -> bool:
        return observation.metric == self.metric and (self.subject is None or self.subject == observation.subject)

    @property
    def condition(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"


def default_rules() -> list[AlertRule]:
    """The rules the loop runs with when none are configured."""
    return [
        AlertRule("drift-share", "drift.share", ">=", 0.3, severity="warning",
                  description="a third or more of the features drifted from the reference"),
        AlertRule("drift-feature", "drift.max_psi", ">=", 0.25, severity="warning",
                  description="one feature drifted strongly from the reference (PSI >= 0.25)"),
        AlertRule("accuracy-low", "quality.accuracy", "<", 0.7, severity="critical",
                  description="live accuracy from feedback labels below 0.7"),
        AlertRule("latency-p99-high", "latency.p99_ms", ">", 250.0, for_s=60, severity="warning",
                  description="p99 latency above 250 ms for a minute"),
        AlertRule("error-rate-high", "errors.rate", ">", 0.05, for_s=60, severity="critical",
                  description="more than 5% of requests failing for a minute"),
        AlertRule("prediction-log-loss", "log.lost", ">=", 1.0, severity="warning",
                  description="prediction rows were dropped (queue full) or failed to write since the server "
                              "started; requests were answered, monitoring sees less"),
        AlertRule("flow-failed", "flow.failed", ">=", 1.0, severity="critical",
                  description="a flow run of the loop failed; see its run in the Prefect UI"),
        AlertRule("candidate-blocked", "release.blocked", ">=", 1.0, severity="warning",
                  description="a retrained candidate failed its gates; the serving version keeps serving"),
        AlertRule("feature-skew", "features.skew", ">=", 1.0, severity="warning",
                  description="served feature vectors differ from their point-in-time recomputation at the "
                              "commits they were materialized from (the subject is the feature service); the "
                              "evidence lists the rows, served vs offline per feature"),
    ]


def check_rules(rules: Any) -> tuple[AlertRule, ...]:
    """``rules`` as a tuple of AlertRules with unique names; InvalidInput (field ``rules``) if not."""
    checked = tuple(rules)
    names: set[str] = set()
    for rule in checked:
        if not isinstance(rule, AlertRule):
            raise InvalidInput(f"not an AlertRule: {rule!r}", field="rules")
        if rule.name in names:
            raise InvalidInput(f"two rules are named {rule.name!r}", field="rules", expected="unique names")
        names.add(rule.name)
    return checked


def load_rules(path: str | Path) -> list[AlertRule]:
    """The rules in the TOML file at ``path`` (see the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot be read: {exc}", field="file", expected="a readable UTF-8 TOML file",
                           details={"file": str(path)}) from exc
    return parse_rules(text, str(path))


def parse_rules(text: str, source: str = "<rules>") -> list[AlertRule]:
    """The rules in TOML ``text``; errors name ``source``, the line and the field."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _LINE.search(str(exc))
        line = int(match.group(1)) if match else max(1, len(text.splitlines()))
        raise InvalidInput(f"{source}:{line}: not valid TOML: {exc}", field="toml", expected="a TOML rules file",
                           details={"file": source, "line": line}) from exc
    blocks = _rule_blocks(text)

    def bad(index: int | None, key: str, message: str, expected: str | None, rule: str | None = None) -> NoReturn:
        if index is None:
            line = _top_level_line(text, key)
            where, field_ = "", key
        else:
            line = _key_line(blocks, index, key)
            where = f"rule {rule!r}: " if rule else f"rule #{index + 1}: "
            field_ = f"rule[{index}].{key}" if key else f"rule[{index}]"
        prefix = f"{source}:{line}" if line is not None else source
        details: dict[str, Any] = {"file": source}
        if line is not None:
            details["line"] = line
        raise InvalidInput(f"{prefix}: {where}{message}", field=field_, expected=expected, details=details)

    for key in document:
        if key != "rule":
            bad(None, key, f"unknown key {key!r} (a rules file holds [[rule]] tables only)", "[[rule]]")
    tables = document.get("rule", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        bad(None, "rule", "rule must be an array of tables: write each as [[rule]]", "[[rule]]")
    rules: list[AlertRule] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(tables):
        name = table.get("name") if isinstance(table.get("name"), str) else None
        for key in table:
            if key not in RULE_KEYS:
                bad(index, key, f"unknown key {key!r}", " | ".join(RULE_KEYS), name)
        for key in REQUIRED_RULE_KEYS:
            if key not in table:
                bad(index, key, f"{key} is missing", f"{key} = ...", name)
        try:
            rule = AlertRule(**table)
        except InvalidInput as exc:
            bad(index, exc.field or "", exc.message, exc.expected, name)
        if rule.name in seen:
            bad(index, "name", f"the name {rule.name!r} is taken by rule #{seen[rule.name] + 1}",
                "a unique rule name", name)
        seen[rule.name] = index
        rules.append(rule)
    return rules


_RULE_HEADER = re.compile(r"""^\s*\[\[\s*(?:rule|"rule"|'rule')\s*\]\]""")
_TABLE_HEADER = re.compile(r"^\s*\[")
_KEY = re.compile(r"""^\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_-]+))\s*[=.]""")


def _rule_blocks(text: str) -> list[tuple[int, dict[str, int]]]:
    """(header line, {key: line}) of each [[rule]] table, in order (1-based lines)."""
    blocks: list[tuple[int, dict[str, int]]] = []
    current: dict[str, int] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if _RULE_HEADER.match(line):
            current = {}
            blocks.append((number, current))
        elif _TABLE_HEADER.match(line):
            current = None
        elif current is not None:
            match = _KEY.match(line)
            if match:
                current.setdefault(next(g for g in match.groups() if g), number)
    return blocks


def _key_line(blocks: list[tuple[int, dict[str, int]]], index: int, key: str) -> int | None:
    if index >= len(blocks):
        return None  # e.g. rule = [{...}] written inline
    header, keys = blocks[index]
    return keys.get(key, header)


def _top_level_line(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip().lstrip("[").strip()
        if stripped.startswith((key, f'"{key}"', f"'{key}'")):
            return number
    return None


def check_until(until: Any) -> datetime | timedelta:
    """``until`` if it is a time or a duration; InvalidInput naming ``until`` if not."""
    if isinstance(until, datetime | timedelta):
        return until
    raise InvalidInput(f"until must be a datetime or a timedelta, got {until!r}", field="until",
                       expected="a time, or a duration from now")
