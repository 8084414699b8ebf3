"""Policies as TOML: one default and one file per model, merged key by key.

Files: ``$MLOPS_LITE_HOME/policies/default.toml`` and
``$MLOPS_LITE_HOME/policies/<model>.toml``. They are read at every evaluation, so
an edit takes effect at the next decision. The effective policy of a model is,
section by section and key by key (a later layer wins):

    built-in base  ->  default.toml  ->  <model>.toml

The built-in base is ``[thresholds] roc_auc = <settings.min_roc_auc>``; the
lineage gate always runs. With no files at all the policy is therefore "ROC AUC
at least ``min_roc_auc`` and lineage complete".

Schema (every section optional; unknown sections and keys are refused)::

    [thresholds]                 # gate "metric.<name>": the gate measures the version itself
    roc_auc = 0.7                # a number: the minimum (higher is better)
    accuracy = 0.75
    demographic_parity_difference = { max = 0.1 }   # lower is better: a maximum
    f1 = { min = 0.5, max = 0.99 }                   # or both

    [claims]                     # what the thresholds allow between a run's claimed metric
    tolerance = 0.02             #   and the one measured on its held-out slice (default 0.02)

    [regression]                 # gate "regression.<metric>": no regression vs production
    metric = "roc_auc"           # default "roc_auc"; one of roc_auc, accuracy, f1,
                                 #   precision, recall (measured, never read from the run)
    tolerance = 0.01             # default 0.0: candidate >= production - tolerance
    against = "production"       # the alias compared against (default "production")
    enabled = true               # false switches off a gate the default file turned on

    [evaluation]                 # the evaluation data both models are scored on
    repository = "loans"         # a data repository
    ref = "main"                 # branch, tag or commit (default "main"); the commit read is recorded
    path = "loans/holdout.csv"   # a CSV or Parquet table
    target = "default"           # the label column (default: the model signature's target)

    [fairness]                   # gates "fairness.demographic_parity_difference" and
    sensitive = "gender"         #   "fairness.equalized_odds_difference", on [evaluation]
    max_demographic_parity_difference = 0.1    # at least one of the two bounds
    max_equalized_odds_difference = 0.1
    enabled = true

    [data]                       # gate "data.checked"
    require_checked = true       # the version's data commits went through the data checks:
                                 #   they are on the protected default branch's history
    repository = "loans"         # default: the training run's repository

    [residency]                  # gate "residency.region", and the placement of data (docs/compliance.md)
    allowed_regions = ["ae"]     # every classification not named below
    [residency.classes]          # a repository's classification -> the regions its bytes may be in
    personal = ["ae"]            #   ("*": anywhere; "eu" also allows "eu-west-1")
    sensitive-personal = ["ae"]
    internal = ["ae", "eu"]
    public = ["*"]

    [approvals]                  # gate "approvals"
    required = 2                 # distinct approvers (approver role or higher), the
                                 #   version's author excluded; 0 switches it off

    [aliases]                    # the aliases that move only with a passing decision
    gated = ["production"]       # (default ["production"]); the registry refuses the rest

    [notify]                     # alert sinks for decisions and approval requests
    webhook = "http://127.0.0.1:9000/hook"   # JSON POST, 2 s timeout (log sink always on)

Every threshold and the regression gate measure the version themselves (see
``mlops_lite.policy.evaluation``): its ONNX file, scored on ``[evaluation]`` when the
policy has it, else on the slice of its recorded data commit its training held out. A
threshold can only name a metric the platform computes (roc_auc, accuracy, f1,
precision, recall, demographic_parity_difference, equalized_odds_difference); any
other fails, since a number the uploader sent is a claim. A claimed metric more than
``[claims] tolerance`` from the one measured on the held-out slice fails its threshold.
Without ``[evaluation]`` the regression gate measures each version on its own held-out
slice (and says so in its detail); ``[fairness]`` needs ``[evaluation]``.
A bad file raises InvalidInput whose ``field`` names the key (``thresholds.roc_auc``)
and whose ``details['file']`` names the file.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from mlops_lite.errors import InvalidInput

POLICY_DIR = "policies"
DEFAULT_FILE = "default.toml"
EVALUATED_METRICS = ("roc_auc", "accuracy", "f1", "precision", "recall")
# A run's claimed metric and the one measured on its held-out slice differ by the ONNX
# conversion (parity is checked at 1e-4) when the claim is honest.
CLAIM_TOLERANCE = 0.02
_MODEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_METRIC = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
_REGION = re.compile(r"^[a-z][a-z0-9-]{1,31}$")
CLASSIFICATIONS = ("public", "internal", "personal", "sensitive-personal")
"""A data repository's classifications (mlops_lite.privacy.profile holds the same list)."""

SECTIONS: dict[str, tuple[str, ...] | None] = {
    "thresholds": None,  # any metric name
    "claims": ("tolerance",),
    "regression": ("metric", "tolerance", "against", "enabled"),
    "evaluation": ("repository", "ref", "path", "target"),
    "fairness": ("sensitive", "max_demographic_parity_difference", "max_equalized_odds_difference", "enabled"),
    "data": ("require_checked", "repository"),
    "residency": ("allowed_regions", "classes"),
    "approvals": ("required",),
    "notify": ("webhook",),
    "aliases": ("gated",),
}


@dataclass(frozen=True)
class Threshold:
    metric: str
    min: float | None = None
    max: float | None = None

    @property
    def bound(self) -> str:
        parts = ([f">= {self.min:g}"] if self.min is not None else []) + \
            ([f"<= {self.max:g}"] if self.max is not None else [])
        return " and ".join(parts)


@dataclass(frozen=True)
class Regression:
    metric: str = "roc_auc"
    tolerance: float = 0.0
    against: str = "production"


@dataclass(frozen=True)
class Evaluation:
    repository: str
    path: str
    ref: str = "main"
    target: str | None = None


@dataclass(frozen=True)
class Fairness:
    sensitive: str
    max_demographic_parity_difference: float | None = None
    max_equalized_odds_difference: float | None = None


@dataclass(frozen=True)
class ResidencyRule:
    """The regions one classification's bytes may be placed in, and the policy key that says so."""

    rule: str                    # "residency.classes.personal" or "residency.allowed_regions"
    regions: tuple[str, ...]

    def permits(self, region: str) -> bool:
        """``*`` allows anywhere; a region allows itself and its sub-regions ("eu" allows "eu-west-1")."""
        return any(r == "*" or region == r or region.startswith(r + "-") for r in self.regions)


@dataclass(frozen=True)
class PolicySpec:
    """The effective policy of one model (see the module docstring)."""

    model: str | None
    thresholds: tuple[Threshold, ...] = ()
    regression: Regression | None = None
    evaluation: Evaluation | None = None
    fairness: Fairness | None = None
    require_checked: bool = False
    data_repository: str | None = None
    allowed_regions: tuple[str, ...] | None = None
    residency_classes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    approvals_required: int = 0
    webhook: str | None = None
    gated_aliases: tuple[str, ...] = ("production",)
    claim_tolerance: float = CLAIM_TOLERANCE
    files: tuple[str, ...] = ()
    document: dict[str, Any] = field(default_factory=dict)

    def residency_rule(self, classification: str) -> ResidencyRule | None:
        """Where data of ``classification`` may be placed: ``[residency.classes]``, else
        ``allowed_regions``; None when the policy restricts it nowhere."""
        if classification in self.residency_classes:
            return ResidencyRule(f"residency.classes.{classification}", self.residency_classes[classification])
        if self.allowed_regions is not None:
            return ResidencyRule("residency.allowed_regions", self.allowed_regions)
        return None


def policy_dir(home: Path) -> Path:
    return home / POLICY_DIR


def load_policy(home: Path, model: str | None, *, min_roc_auc: float) -> PolicySpec:
    """The effective policy of ``model`` (or the default one, for None)."""
    if model is not None and not _MODEL.match(model):
        raise InvalidInput(f"bad model name {model!r}", field="model",
                           expected="1-63 characters: lowercase letters, digits, '_' and '-'")
    folder = policy_dir(home)
    merged: dict[str, dict[str, Any]] = {"thresholds": {"roc_auc": min_roc_auc}}
    origin: dict[str, str] = {"thresholds.roc_auc": "settings.min_roc_auc"}
    files: list[str] = []
    names = [DEFAULT_FILE] + ([f"{model}.toml"] if model is not None and model != "default" else [])
    for name in names:
        path = folder / name
        if not path.is_file():
            continue
        document = read_policy_file(path)
        files.append(str(path))
        for section, table in document.items():
            merged.setdefault(section, {}).update(table)
            for key in table:
                origin[f"{section}.{key}"] = str(path)
    return build_spec(model, merged, origin, tuple(files))


def read_policy_file(path: Path) -> dict[str, dict[str, Any]]:
    """Parse one policy file and check its shape (sections, keys, value types)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path}: not valid TOML: {exc}", field="toml", expected="a TOML policy file",
                           details={"file": str(path)}) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot be read: {exc}", field="toml", expected="a readable UTF-8 file",
                           details={"file": str(path)}) from exc
    for section, table in document.items():
        if section not in SECTIONS:
            _bad(str(path), section, f"unknown section [{section}]", " | ".join(f"[{s}]" for s in SECTIONS))
        if not isinstance(table, dict):
            _bad(str(path), section, f"{section} must be a table", f"a [{section}] section")
        allowed = SECTIONS[section]
        for key in table:
            if allowed is not None and key not in allowed:
                _bad(str(path), f"{section}.{key}", f"unknown key {key!r} in [{section}]", " | ".join(allowed))
    return document


def _bad(file: str, key: str, message: str, expected: str) -> NoReturn:
    raise InvalidInput(f"{file}: {key}: {message}", field=key, expected=expected, details={"file": file})


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def build_spec(model: str | None, merged: dict[str, dict[str, Any]], origin: dict[str, str],
               files: tuple[str, ...]) -> PolicySpec:
    """Validate the merged document and build the spec; errors name the key and its file."""

    def bad(key: str, message: str, expected: str) -> NoReturn:
        owner = key  # thresholds.f1.min came with thresholds.f1
        while owner not in origin and "." in owner:
            owner = owner.rsplit(".", 1)[0]
        _bad(origin.get(owner, ", ".join(files) or "policy"), key, message, expected)

    def get_str(section: str, key: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = merged.get(section, {}).get(key)
        if value is None:
            if required:
                _bad(", ".join(files) or "policy", f"{section}.{key}", f"[{section}] needs {key}", "a string")
            return default
        if not isinstance(value, str) or not value.strip():
            bad(f"{section}.{key}", f"{section}.{key} must be a non-empty string, got {value!r}", "a string")
        return value

    def enabled(section: str) -> bool:
        value = merged.get(section, {}).get("enabled", True)
        if not isinstance(value, bool):
            bad(f"{section}.enabled", f"{section}.enabled must be true or false, got {value!r}", "true | false")
        return section in merged and value

    thresholds: list[Threshold] = []
    for metric, value in merged.get("thresholds", {}).items():
        key = f"thresholds.{metric}"
        if not _METRIC.match(metric):
            bad(key, f"bad metric name {metric!r}", "a metric name such as roc_auc")
        if _number(value):
            thresholds.append(Threshold(metric, min=float(value)))
        elif isinstance(value, dict):
            unknown = [k for k in value if k not in ("min", "max")]
            if unknown:
                bad(f"{key}.{unknown[0]}", f"unknown key {unknown[0]!r} in {key}", "min | max")
            for bound_key, bound in value.items():
                if not _number(bound):
                    bad(f"{key}.{bound_key}", f"{key}.{bound_key} must be a number, got {bound!r}", "a finite number")
            if not value:
                bad(key, f"{key} names no bound", "{ min = X } and/or { max = Y }")
            low, high = value.get("min"), value.get("max")
            if low is not None and high is not None and low > high:
                bad(key, f"{key}: min {low} is greater than max {high}", "min <= max")
            thresholds.append(Threshold(metric, min=None if low is None else float(low),
                                        max=None if high is None else float(high)))
        else:
            bad(key, f"{key} must be a number (a minimum) or {{ min = X, max = Y }}, got {value!r}",
                "a number, or { max = X } for a metric where lower is better")

    evaluation: Evaluation | None = None
    if "evaluation" in merged:
        evaluation = Evaluation(repository=get_str("evaluation", "repository", required=True) or "",
                                path=get_str("evaluation", "path", required=True) or "",
                                ref=get_str("evaluation", "ref", default="main") or "main",
                                target=get_str("evaluation", "target"))
        if not evaluation.path.endswith((".csv", ".parquet")):
            bad("evaluation.path", f"evaluation.path {evaluation.path!r} is not a table", "a .csv or .parquet path")

    regression: Regression | None = None
    if enabled("regression"):
        section = merged["regression"]
        metric = get_str("regression", "metric", default="roc_auc") or "roc_auc"
        tolerance = section.get("tolerance", 0.0)
        if not _number(tolerance) or tolerance < 0:
            bad("regression.tolerance", f"regression.tolerance must be a number >= 0, got {tolerance!r}",
                "a number >= 0")
        against = get_str("regression", "against", default="production") or "production"
        if not _ALIAS.match(against):
            bad("regression.against", f"bad alias {against!r}", "an alias name such as production")
        if metric not in EVALUATED_METRICS:
            bad("regression.metric", f"regression.metric {metric!r} cannot be computed on the evaluation data",
                " | ".join(EVALUATED_METRICS))
        if not _METRIC.match(metric):
            bad("regression.metric", f"bad metric name {metric!r}", "a metric name such as roc_auc")
        regression = Regression(metric=metric, tolerance=float(tolerance), against=against)

    fairness: Fairness | None = None
    if enabled("fairness"):
        section = merged["fairness"]
        sensitive = get_str("fairness", "sensitive", required=True) or ""
        bounds: dict[str, float | None] = {}
        for key in ("max_demographic_parity_difference", "max_equalized_odds_difference"):
            value = section.get(key)
            if value is not None and (not _number(value) or not 0 <= value <= 1):
                bad(f"fairness.{key}", f"fairness.{key} must be a number from 0 to 1, got {value!r}",
                    "a number from 0 to 1")
            bounds[key] = None if value is None else float(value)
        if all(v is None for v in bounds.values()):
            bad("fairness.sensitive", "[fairness] names no bound",
                "max_demographic_parity_difference and/or max_equalized_odds_difference")
        if evaluation is None:
            bad("fairness.sensitive", "[fairness] needs [evaluation] data to score the model on",
                "an [evaluation] section (repository, ref, path, target)")
        fairness = Fairness(sensitive=sensitive, **bounds)

    data = merged.get("data", {})
    require_checked = data.get("require_checked", False)
    if not isinstance(require_checked, bool):
        bad("data.require_checked", f"data.require_checked must be true or false, got {require_checked!r}",
            "true | false")
    data_repository = get_str("data", "repository")

    allowed_regions: tuple[str, ...] | None = None
    residency_classes: dict[str, tuple[str, ...]] = {}
    if "residency" in merged:
        residency = merged["residency"]
        if "allowed_regions" not in residency and "classes" not in residency:
            bad("residency.allowed_regions", "[residency] names no regions",
                'allowed_regions = ["ae"] and/or a [residency.classes] table')
        if "allowed_regions" in residency:
            allowed_regions = _regions(residency["allowed_regions"], "residency.allowed_regions", bad)
        classes = residency.get("classes", {})
        if not isinstance(classes, dict):
            bad("residency.classes", f"residency.classes must be a table, got {classes!r}",
                'a [residency.classes] table such as personal = ["ae"]')
        for name, regions in classes.items():
            if name not in CLASSIFICATIONS:
                bad(f"residency.classes.{name}", f"unknown classification {name!r}", " | ".join(CLASSIFICATIONS))
            residency_classes[name] = _regions(regions, f"residency.classes.{name}", bad)

    required = merged.get("approvals", {}).get("required", 0)
    if not isinstance(required, int) or isinstance(required, bool) or required < 0:
        bad("approvals.required", f"approvals.required must be a whole number >= 0, got {required!r}",
            "a whole number >= 0")

    claim_tolerance = merged.get("claims", {}).get("tolerance", CLAIM_TOLERANCE)
    if not _number(claim_tolerance) or not 0 <= claim_tolerance <= 1:
        bad("claims.tolerance", f"claims.tolerance must be a number from 0 to 1, got {claim_tolerance!r}",
            "a number from 0 to 1")

    webhook = get_str("notify", "webhook")
    if webhook is not None and not _URL.match(webhook):
        bad("notify.webhook", f"notify.webhook {webhook!r} is not an http(s) URL", "http://host:port/path")

    gated = merged.get("aliases", {}).get("gated", ["production"])
    if not isinstance(gated, list) or not all(isinstance(a, str) and _ALIAS.match(a) for a in gated):
        bad("aliases.gated", f"aliases.gated must be a list of alias names, got {gated!r}",
            'a list such as ["production"] (or [] for none)')

    return PolicySpec(model=model, thresholds=tuple(thresholds), regression=regression, evaluation=evaluation,
                      fairness=fairness, require_checked=require_checked, data_repository=data_repository,
                      allowed_regions=allowed_regions, residency_classes=residency_classes,
                      approvals_required=required, webhook=webhook,
                      gated_aliases=tuple(gated), claim_tolerance=float(claim_tolerance), files=files,
                      document={s: dict(t) for s, t in merged.items()})


def _regions(value: Any, key: str, bad: Any) -> tuple[str, ...]:
    """A non-empty list of region codes (or "*"), or InvalidInput naming ``key``."""
    if (not isinstance(value, list) or not value
            or not all(isinstance(r, str) and (r == "*" or _REGION.match(r)) for r in value)):
        bad(key, f"{key} must be a non-empty list of region codes, got {value!r}",
            'a list such as ["ae"], ["ae", "eu-west-1"] or ["*"]')
    return tuple(value)
