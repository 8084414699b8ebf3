"""Release gates. Each gate measures one thing against a bound and records both."""

from __future__ import annotations

from mlops_lite.errors import PolicyViolation
from mlops_lite.records import GateResult, ModelVersionRecord


class Policy:
    """The ``platform.policy`` facet: the checks a version must pass to go live."""

    def __init__(self, min_roc_auc: float) -> None:
        self.min_roc_auc = min_roc_auc

    def evaluate(self, version: ModelVersionRecord) -> list[GateResult]:
        auc = version.metrics.get("roc_auc")
        lineage = bool(version.run_id) and bool(version.data_commits)
        return [
            GateResult(gate="metric.roc_auc", passed=auc is not None and auc >= self.min_roc_auc,
                       measured=auc, bound=f">= {self.min_roc_auc}"),
            GateResult(gate="lineage.complete", passed=lineage,
                       measured={"run_id": version.run_id, "data_commits": list(version.data_commits)},
                       bound="a run and at least one data commit"),
        ]

    def enforce(self, version: ModelVersionRecord) -> list[GateResult]:
        """Raise PolicyViolation naming every failed gate; return the results otherwise."""
        results = self.evaluate(version)
        failed = [r for r in results if not r.passed]
        if failed:
            raise PolicyViolation(
                f"{version.model}@{version.version} fails {len(failed)} gate(s): "
                + ", ".join(f"{r.gate} measured {r.measured} (needs {r.bound})" for r in failed),
                details={"gates": [r.__dict__ for r in results]})
        return results
