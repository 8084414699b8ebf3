"""Release gates. Each gate measures one thing against a bound and records both.

The gates of a model come from its policy (TOML, see ``mlops_lite.policy.document``):

    metric.<name>                         the metric measured on the evaluation data (the policy's
                                          [evaluation], else the held-out slice of the recorded data
                                          commit) against a minimum or maximum, beside the claimed one
    lineage.complete                      always: a run and at least one data commit
    regression.<metric>                   no regression against the ``production`` version, both
                                          ONNX models scored on the same evaluation data (without
                                          one: each on its own held-out slice)
    fairness.demographic_parity_difference / fairness.equalized_odds_difference
                                          the candidate's predictions on the evaluation data,
                                          grouped by the sensitive attribute (as fairlearn defines them)
    data.checked                          the data commits are on the protected default branch's
                                          history (so they passed the data checks)
    residency.region                      where the version's bytes really are: each data commit's
                                          repository (its privacy profile's region and class) and the
                                          artifact store (settings.artifacts_region), each against the
                                          regions [residency.classes] allows its class (else
                                          allowed_regions); an unclassified repository counts as personal
    approvals                             N distinct approvers, the version's author excluded

``evaluate``/``enforce`` only measure. ``decide`` measures and stores the decision
(table ``policy_decisions``, audit ``policy.decision``); ``override`` stores an admin
override with its reason (audit ``policy.override``). A gate that cannot be measured
(missing evaluation data, a column the model needs, ...) fails and says why: no gate
reads a metric the run recorded as evidence (see evaluation.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from mlops_lite.clock import utcnow
from mlops_lite.errors import InvalidInput, MlopsLiteError, NotFound, PolicyViolation
from mlops_lite.metadata.tables.policy import PolicyDecisionRow
from mlops_lite.policy.approvals import Approvals
from mlops_lite.policy.common import gate_dicts, json_safe, name_of, violation
from mlops_lite.policy.document import Evaluation, PolicySpec, Regression, Threshold, load_policy
from mlops_lite.policy.evaluation import FAIRNESS_METRICS, MEASURABLE, Scored, Scorer, metric_value
from mlops_lite.policy.fairness import figures, group_rates
from mlops_lite.policy.notify import Sink, notify, sinks_for
from mlops_lite.records import (
    ApprovalRequest,
    GateResult,
    Identity,
    ModelVersionRecord,
    PolicyDecision,
    ResidencyEntry,
)
from mlops_lite.security.roles import require

if TYPE_CHECKING:
    from typing_extensions import TypeIs

    from mlops_lite.config import Settings
    from mlops_lite.metadata.audit import AuditTrail
    from mlops_lite.metadata.store import MetadataStore
    from mlops_lite.registry import Registry
    from mlops_lite.tracking import Tracking

logger = logging.getLogger("mlops_lite.policy")

# (version, the policy's rules) -> where its data commits and artifacts are, each judged
Locator = Callable[[ModelVersionRecord, PolicySpec], list[ResidencyEntry]]

LOG_PAGE = 10_000
LOG_LIMIT = 200_000


class Policy:
    """The ``platform.policy`` facet: the checks a version must pass to go live, the
    stored decisions, and the approval workflow (``approvals``; also exposed here)."""

    def __init__(self, settings: Settings, store: MetadataStore, audit: AuditTrail, registry: Registry,
                 data: Any, *, tracking: Tracking | None = None, actor: str = "system",
                 residency: Locator | None = None,
                 training_sets: Callable[[str, tuple[str, ...]], Any] | None = None) -> None:
        """``residency`` answers where a version's data commits and artifacts are, judged by a
        policy's rules (``mlops_lite.privacy.residency.Residency.version_locations``);
        ``training_sets`` reads the rows of a feature service's stored training set that a
        model with the given inputs trained from (``Features.training_rows``: the rows a version
        trained through a feature service is measured on)."""
        self.settings = settings
        self.min_roc_auc = settings.min_roc_auc  # the built-in base threshold; settable
        self._store = store
        self._audit = audit
        self._registry = registry
        self._data = data
        self._tracking = tracking
        self._actor = actor
        self._residency = residency
        self._scorer = Scorer(data, registry.model_bytes,
                              (lambda run_id: dict(tracking.get_run(run_id).tags)) if tracking is not None else None,
                              training_sets=training_sets)
        self.approvals = Approvals(self, store, audit, registry, actor)
        # In-process calls act as the platform's own actor, with every right (it owns the stores).
        self._identity = Identity(actor, "admin")

    # ---- the policy ---------------------------------------------------------------

    def load(self, model: str | None = None) -> PolicySpec:
        """The effective policy of ``model`` (base <- default.toml <- <model>.toml)."""
        return load_policy(self.settings.home, model, min_roc_auc=self.min_roc_auc)

    def sinks(self, spec: PolicySpec | None = None) -> list[Sink]:
        """The alert sinks: the log, the settings' ``alert_webhook``, the policy's webhook."""
        return sinks_for([getattr(self.settings, "alert_webhook", None), spec.webhook if spec else None],
                         allow=getattr(self.settings, "webhook_allow", ()))

    def notify(self, spec: PolicySpec | None, event: dict[str, Any]) -> None:
        notify(self.sinks(spec), {"at": utcnow().isoformat(), **json_safe(event)})

    # ---- measuring ----------------------------------------------------------------

    def evaluate(self, version: ModelVersionRecord, *, alias: str = "production",
                 baseline: str | None = None) -> list[GateResult]:
        """Every gate of the model's policy, measured now; nothing is stored.

        ``baseline``: a version of the same model the regression gate compares against
        instead of the policy's ``[regression] against`` alias (``mlops-lite ci check
        --against``); with no ``[regression]`` section the gate then runs with its defaults
        (roc_auc, tolerance 0)."""
        spec = self.load(version.model)
        if baseline is None:
            return self._gates(version, spec, alias)
        base = self._registry.get_version(version.model, baseline)
        if spec.regression is None:
            spec = dataclasses.replace(spec, regression=Regression())
        return self._gates(version, spec, alias, baseline=base)

    def enforce(self, version: ModelVersionRecord, *, alias: str = "production") -> list[GateResult]:
        """Raise PolicyViolation naming every failed gate (``details['gates']`` lists every
        gate, passed or not); return the results otherwise. Nothing is stored."""
        results = self.evaluate(version, alias=alias)
        _raise_if_failed(version, results)
        return results

    def _gates(self, version: ModelVersionRecord, spec: PolicySpec, alias: str, *,
               baseline: ModelVersionRecord | None = None) -> list[GateResult]:
        results = [self._threshold(version, t, spec) for t in spec.thresholds]
        lineage = bool(version.run_id) and bool(version.data_commits)
        results.append(GateResult(gate="lineage.complete", passed=lineage,
                                  measured={"run_id": version.run_id, "data_commits": list(version.data_commits)},
                                  bound="a run and at least one data commit"))
        if spec.regression is not None:
            results.append(self._regression(version, spec, baseline))
        if spec.fairness is not None:
            results.extend(self._fairness(version, spec))
        if spec.require_checked:
            results.append(self._data_checked(version, spec))
        if spec.allowed_regions is not None or spec.residency_classes:
            results.append(self._residency_gate(version, spec))
        if spec.approvals_required:
            approvers = self.approvals.approvers(version, alias)
            results.append(GateResult(
                gate="approvals", passed=len(approvers) >= spec.approvals_required, measured=len(approvers),
                bound=f">= {spec.approvals_required}",
                detail=(f"distinct approvers of {version.model}@{version.version} -> {alias}: "
                        f"{', '.join(approvers) or 'none'} (the author {version.created_by} does not count)")))
        return results

    # thresholds -------------------------------------------------------------------

    def _threshold(self, version: ModelVersionRecord, threshold: Threshold, spec: PolicySpec) -> GateResult:
        """The metric measured on the evaluation data against the bound; the run's claimed
        value beside it, and a claim further than ``[claims] tolerance`` from the value
        measured on the held-out slice fails the gate too."""
        metric, name = threshold.metric, f"{version.model}@{version.version}"
        gate = f"metric.{metric}"
        raw = version.metrics.get(metric)
        claimed = float(raw) if _is_number(raw) else None
        said = (f"the {claimed:.6g} its run claims is not evidence" if claimed is not None
                else f"its run claims no {metric} either")
        if metric not in MEASURABLE:
            return GateResult(gate=gate, passed=False, measured=None, bound=threshold.bound,
                              detail=(f"{metric} of {name} is not a metric the gates can measure "
                                      f"({', '.join(MEASURABLE)}); {said}"),
                              evidence={"metric": metric, "measured": None, "claimed": claimed})
        sensitive = self._sensitive(version, spec) if metric in FAIRNESS_METRICS else None
        try:
            scored = self._scorer.score(version, self._scorer.source(version, spec.evaluation), sensitive=sensitive)
            value = metric_value(scored, metric, sensitive=sensitive)
        except Exception as exc:
            return GateResult(gate=gate, passed=False, measured=None, bound=threshold.bound,
                              detail=f"could not measure {metric} of {name}: {_why(exc)}; {said}",
                              evidence={"metric": metric, "measured": None, "claimed": claimed})
        within = (threshold.min is None or value >= threshold.min) and (threshold.max is None or value <= threshold.max)
        claim = self._claim(version, metric, claimed, scored, value, sensitive, spec.claim_tolerance)
        detail = (f"{metric} {value:.6g} measured on {scored.source.describe()}, {scored.rows} rows; "
                  f"{claim['note']}")
        return GateResult(gate=gate, passed=within and claim["honest"], measured=value, bound=threshold.bound,
                          detail=detail, evidence={"metric": metric, "measured": value, "claimed": claimed,
                                                   "data": scored.evidence(), "claim": claim})

    def _claim(self, version: ModelVersionRecord, metric: str, claimed: float | None, scored: Scored, value: float,
               sensitive: str | None, tolerance: float) -> dict[str, Any]:
        """The run's claim against the value measured on its held-out slice (what it claims
        to have measured): ``honest`` false when they are more than ``tolerance`` apart."""
        if claimed is None:
            return {"honest": True, "checked": False, "note": f"the run claims no {metric}"}
        if scored.source.kind == "held-out":
            held = value
        else:
            try:
                held_scored = self._scorer.score(version, self._scorer.held_out(version), sensitive=sensitive)
                held = metric_value(held_scored, metric, sensitive=sensitive)
            except Exception as exc:
                # The verdict stands on the registered data; the claim alone cannot be checked.
                return {"honest": True, "checked": False,
                        "note": f"the run claims {claimed:.6g}, not checked: {_why(exc)}"}
        difference = abs(claimed - held)
        honest = difference <= tolerance
        note = (f"the run claims {claimed:.6g}, {held:.6g} measured on its held-out slice"
                + ("" if honest else f": {difference:.4g} apart, more than the {tolerance:g} allowed "
                                     "([claims] tolerance)"))
        return {"honest": honest, "checked": True, "claimed": claimed, "held_out": held, "difference": difference,
                "tolerance": tolerance, "note": note}

    def _sensitive(self, version: ModelVersionRecord, spec: PolicySpec) -> str | None:
        """The sensitive column of the fairness thresholds: the policy's, else the training run's."""
        if spec.fairness is not None:
            return spec.fairness.sensitive
        recorded = version.params.get("sensitive")
        return str(recorded) if recorded else None

    # regression -------------------------------------------------------------------

    def _regression(self, version: ModelVersionRecord, spec: PolicySpec,
                    baseline: ModelVersionRecord | None = None) -> GateResult:
        assert spec.regression is not None
        metric, tolerance, against = spec.regression.metric, spec.regression.tolerance, spec.regression.against
        gate = f"regression.{metric}"
        if baseline is not None:
            base, against = baseline, "the baseline"
        else:
            try:
                base = self._registry.get_alias(version.model, against)
            except NotFound:
                return GateResult(gate=gate, passed=True, measured=None, bound=f"no {against} version",
                                  detail=f"{version.model} has no {against!r} version yet: nothing to regress against")
        if base.version == version.version:
            return GateResult(gate=gate, passed=True, measured=None, bound=f"{against} is {base.version}",
                              detail=f"{version.model}@{version.version} is the {against} version itself")
        try:
            scored = self._scorer.score(version, self._scorer.source(version, spec.evaluation))
            scored_base = self._scorer.score(base, self._scorer.source(base, spec.evaluation))
            candidate, reference = metric_value(scored, metric), metric_value(scored_base, metric)
        except Exception as exc:
            return GateResult(gate=gate, passed=False, measured=None, bound=f"{against} - {tolerance:g}",
                              detail=f"could not score on the evaluation data: {_why(exc)}")
        if spec.evaluation is not None:
            source = f"both ONNX models scored on {scored_base.where}"
        else:
            source = (f"each ONNX model scored on its own held-out slice ({scored.where}, {scored_base.where}; "
                      "no [evaluation] data in the policy: not the same rows)")
        floor = reference - tolerance
        return GateResult(gate=gate, passed=candidate >= floor, measured=candidate, bound=f">= {floor:.6g}",
                          detail=(f"{metric} {candidate:.6g} vs {against} {base.version} {reference:.6g} "
                                  f"(tolerance {tolerance:g}), on {source}"),
                          evidence={"metric": metric, "measured": candidate, "reference": reference,
                                    "data": scored.evidence(), "reference_data": scored_base.evidence()})

    # fairness ---------------------------------------------------------------------

    def _fairness(self, version: ModelVersionRecord, spec: PolicySpec) -> list[GateResult]:
        fairness, evaluation = spec.fairness, spec.evaluation
        assert fairness is not None and evaluation is not None
        bounds = {"demographic_parity_difference": fairness.max_demographic_parity_difference,
                  "equalized_odds_difference": fairness.max_equalized_odds_difference}
        wanted = {name: bound for name, bound in bounds.items() if bound is not None}
        try:
            scored = self.scored(version, evaluation, sensitive=fairness.sensitive)
            rates = group_rates(scored.y_true, scored.y_pred, scored.groups[fairness.sensitive])
        except Exception as exc:
            return [GateResult(gate=f"fairness.{name}", passed=False, measured=None, bound=f"<= {bound:g}",
                               detail=f"could not score on the evaluation data: {_why(exc)}")
                    for name, bound in wanted.items()]
        measured = figures(rates)
        shown = {g: {k: round(v, 4) for k, v in r.items()} for g, r in rates.items()}
        return [GateResult(gate=f"fairness.{name}", passed=measured[name] <= bound, measured=measured[name],
                           bound=f"<= {bound:g}",
                           detail=f"{fairness.sensitive!r} groups on {scored.where}: {json.dumps(shown)}",
                           evidence={"metric": name, "measured": measured[name], "data": scored.evidence()})
                for name, bound in wanted.items()]

    # scoring on the evaluation data ------------------------------------------------

    def scored(self, version: ModelVersionRecord, evaluation: Evaluation, *, sensitive: str | None = None) -> Scored:
        """``version``'s ONNX model scored on the registered evaluation table (cached per
        digest and commit read). Raises InvalidInput/NotFound when the data does not fit the model."""
        return self._scorer.score(version, self._scorer.registered(version, evaluation), sensitive=sensitive)

    # data checks ------------------------------------------------------------------

    def _data_checked(self, version: ModelVersionRecord, spec: PolicySpec) -> GateResult:
        gate = "data.checked"
        commits = list(version.data_commits)
        if not commits:
            return GateResult(gate=gate, passed=False, measured={}, bound="data commits on a protected branch",
                              detail="the version records no data commits")
        repository = spec.data_repository
        if repository is None and self._tracking is not None and version.run_id:
            try:
                repository = self._tracking.get_run(version.run_id).tags.get("repository")
            except NotFound:
                repository = None
        if not repository:
            return GateResult(gate=gate, passed=False, measured={c: "unknown repository" for c in commits},
                              bound="data commits on a protected branch",
                              detail="cannot tell which data repository the commits are in: set [data] repository")
        try:
            repo = self._data.repo(repository)
            info = repo.info()
            branch = info.default_branch
            bound = f"on the history of {repository}/{branch} (protected)"
            if branch not in info.protected_branches:
                return GateResult(gate=gate, passed=False, measured={c: "unchecked" for c in commits}, bound=bound,
                                  detail=f"{repository}/{branch} is not a protected branch: commits on it did not "
                                         "have to pass the data checks")
            status: dict[str, str] = {}
            trees: dict[str, str] = {}
            for commit in commits:
                try:
                    trees[commit] = repo.commit(commit).tree
                except NotFound:
                    status[commit] = f"not a commit of {repository}"
            status.update(_find_on_branch(repo, branch, trees))
        except MlopsLiteError as exc:
            return GateResult(gate=gate, passed=False, measured=None, bound=f"data commits on {repository}'s "
                              "protected default branch", detail=_why(exc))
        for commit in commits:
            status.setdefault(commit, f"not on {branch}: never merged through the checks")
        passed = all(s.startswith(("on ", "same data as ")) for s in status.values())
        return GateResult(gate=gate, passed=passed, measured=status, bound=bound,
                          detail="each commit is on the branch's history, or has the same data (tree) as a "
                                 "commit that is")

    # residency ----------------------------------------------------------------------

    def _residency_gate(self, version: ModelVersionRecord, spec: PolicySpec) -> GateResult:
        """Each real location of the version (its data commits' repositories, the artifact
        store) against the regions its class may be in; the evidence lists every one."""
        gate = "residency.region"
        if self._residency is None:  # no locator: the one installation-wide region, as before
            region = self.settings.region
            rule = spec.residency_rule("personal")
            return GateResult(gate=gate, passed=rule is None or rule.permits(region), measured=region,
                              bound=f"one of {list(rule.regions) if rule else ['*']}",
                              detail=f"this installation stores data and artifacts in region {region!r}")
        try:
            entries = self._residency(version, spec)
        except MlopsLiteError as exc:
            return GateResult(gate=gate, passed=False, measured=None, bound="every location in an allowed region",
                              detail=_why(exc))
        locations = [{"kind": e.kind, "name": e.name, "classification": e.classification, "region": e.region,
                      "location": e.location, "allowed": list(e.allowed), "rule": e.rule, "status": e.status}
                     for e in entries]
        bad = [e for e in entries if e.status != "allowed"]
        detail = ("every location is in a region its classification allows" if not bad else
                  "; ".join(f"{e.name} ({e.classification}) is in {e.region!r}, "
                            f"{e.rule or 'the policy'} allows {', '.join(e.allowed) or 'no region'}" for e in bad))
        return GateResult(gate=gate, passed=not bad, measured={e.name: e.region for e in entries},
                          bound={e.rule: list(e.allowed) for e in entries if e.rule is not None},
                          detail=detail, evidence={"locations": locations})

    # ---- decisions ----------------------------------------------------------------

    def decide(self, model: str, version: str, *, alias: str = "production",
               actor: str | Identity | None = None) -> PolicyDecision:
        """Evaluate every gate for ``model@version`` going to ``alias`` and store the
        decision (audit ``policy.decision``). Returns it, passed or not."""
        target = self._registry.get_version(model, version)
        spec = self.load(model)
        gates = self._gates(target, spec, alias)
        return self._store_decision(target, alias, gates, spec, name_of(actor) or self._actor, override_reason=None)

    def require_passing(self, model: str, version: str, *, alias: str = "production",
                        actor: str | Identity | None = None) -> PolicyDecision:
        """``decide``, then raise PolicyViolation (``details['gates']``, ``details['decision_id']``)
        unless every gate passed. What the server calls before it moves an alias."""
        decision = self.decide(model, version, alias=alias, actor=actor)
        if not decision.passed:
            raise violation(decision)
        return decision

    def override(self, model: str, version: str, *, alias: str = "production", reason: str,
                 identity: Identity | None = None, move: bool = True) -> PolicyDecision:
        """An admin lets ``model@version`` go to ``alias`` whatever the gates say. The gates
        are still measured and stored as they are, with the reason (audit ``policy.override``),
        and the alias moves (kind "override") unless ``move=False``."""
        identity = identity or self._identity
        require(identity, "admin", model=model)
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInput("an override needs a reason", field="reason", expected="a non-empty sentence")
        target = self._registry.get_version(model, version)
        spec = self.load(model)
        gates = self._gates(target, spec, alias)
        decision = self._store_decision(target, alias, gates, spec, identity.principal,
                                        override_reason=reason.strip())
        if move:
            self._registry.set_alias(model, alias, version, reason=f"override by {identity.principal}: {reason.strip()}",
                                     actor=identity.principal, decision=decision.id)
        return decision

    def authorize_move(self, model: str, alias: str, version: str, *, actor: str, decision: str | None) -> str:
        """What the registry asks before it moves ``alias`` (see ``Registry.set_alias``):
        "move" for an alias the policy does not gate, or for a passing decision; "override"
        for an admin override's decision. A named ``decision`` must be stored, for this very
        version, alias and ONNX digest; without one the policy decides now."""
        if decision is None:
            if alias not in self.load(model).gated_aliases:
                return "move"
            self.require_passing(model, version, alias=alias, actor=actor)
            return "move"
        stored = self.get_decision(decision)
        target = self._registry.get_version(model, version)
        if (stored.model, stored.version, stored.alias, stored.digest) != (model, version, alias, target.digest):
            raise InvalidInput(f"decision {decision} is for {stored.model}@{stored.version} -> {stored.alias}, "
                               f"not {model}@{version} -> {alias}", field="decision",
                               expected=f"a decision for {model}@{version} -> {alias}")
        if stored.override_reason is not None:
            return "override"
        if not stored.passed:
            raise violation(stored)
        return "move"

    def decisions(self, model: str, version: str | None = None, *, alias: str | None = None) -> list[PolicyDecision]:
        """Stored decisions of ``model`` (of one version, of one alias), oldest first."""
        with self._store.session() as session:
            query = select(PolicyDecisionRow).where(PolicyDecisionRow.model == model)
            if version is not None:
                query = query.where(PolicyDecisionRow.version == version)
            if alias is not None:
                query = query.where(PolicyDecisionRow.alias == alias)
            rows = session.exec(query.order_by(col(PolicyDecisionRow.decided_at), col(PolicyDecisionRow.id))).all()
        return [_decision_record(row) for row in rows]

    def get_decision(self, decision_id: str) -> PolicyDecision:
        with self._store.session() as session:
            row = session.get(PolicyDecisionRow, decision_id)
        if row is None:
            raise NotFound(f"policy decision {decision_id!r} does not exist")
        return _decision_record(row)

    def latest_decision(self, model: str, version: str, *, alias: str = "production") -> PolicyDecision | None:
        """The newest stored decision for ``model@version`` -> ``alias``, or None."""
        found = self.decisions(model, version, alias=alias)
        return found[-1] if found else None

    def _store_decision(self, version: ModelVersionRecord, alias: str, gates: list[GateResult], spec: PolicySpec,
                        actor: str, *, override_reason: str | None) -> PolicyDecision:
        passed = all(g.passed for g in gates)
        row = PolicyDecisionRow(id=uuid.uuid4().hex, model=version.model, version=version.version, alias=alias,
                                decided_at=utcnow(), passed=passed, gates=[json_safe(asdict(g)) for g in gates],
                                actor=actor, override_reason=override_reason, digest=version.digest,
                                policy=json_safe({"document": spec.document, "files": list(spec.files)}))
        action = "policy.override" if override_reason is not None else "policy.decision"
        failed = [g.gate for g in gates if not g.passed]
        with self._store.session() as session:
            session.add(row)
            self._audit.append(session, actor=actor, action=action, object=f"model:{version.model}@{version.version}",
                               after={"decision_id": row.id, "alias": alias, "passed": passed, "failed": failed,
                                      "digest": version.digest,
                                      **({"reason": override_reason} if override_reason is not None else {})})
        decision = _decision_record(row)
        self.notify(spec, {"event": action, "model": version.model, "version": version.version, "alias": alias,
                           "decision_id": decision.id, "passed": passed, "failed": failed, "actor": actor,
                           **({"reason": override_reason} if override_reason is not None else {})})
        return decision

    # ---- the approval workflow (see approvals.py) ---------------------------------

    def request_promotion(self, model: str, version: str, *, alias: str = "production",
                          requested_by: Identity | str | None = None, comment: str = "") -> ApprovalRequest:
        return self.approvals.request_promotion(model, version, alias=alias, requested_by=requested_by,
                                                comment=comment)

    def approve(self, request_id: str, *, identity: Identity | None = None, comment: str = "",
                complete: bool = False) -> ApprovalRequest:
        """A vote for the request. With ``complete``, a request that now has its approvals
        is completed at once when every gate passes (it stays approved otherwise)."""
        return self.approvals.approve(request_id, identity=identity or self._identity, comment=comment,
                                      complete=complete)

    def reject(self, request_id: str, *, identity: Identity | None = None, comment: str = "") -> ApprovalRequest:
        return self.approvals.reject(request_id, identity=identity or self._identity, comment=comment)

    def complete(self, request_id: str, *, identity: Identity | None = None, comment: str = "") -> ApprovalRequest:
        """Decide (stored) and, when every gate passes, move the alias and close the request."""
        return self.approvals.complete(request_id, identity=identity or self._identity, comment=comment)

    def requests(self, model: str | None = None, status: str | None = None) -> list[ApprovalRequest]:
        return self.approvals.requests(model, status)

    def get_request(self, request_id: str) -> ApprovalRequest:
        return self.approvals.get_request(request_id)


# ---- helpers ------------------------------------------------------------------------

def _find_on_branch(repo: Any, branch: str, trees: dict[str, str]) -> dict[str, str]:
    """Walk ``branch``'s first-parent history (each state the branch had: on a protected
    branch, each passed the checks) looking for the commits, or commits with their trees."""
    wanted_trees: dict[str, list[str]] = {}
    for commit, tree in trees.items():
        wanted_trees.setdefault(tree, []).append(commit)
    found: dict[str, str] = {}
    after: str | None = None
    walked = 0
    while len(found) < len(trees) and walked < LOG_LIMIT:
        page = repo.log(branch, amount=LOG_PAGE, after=after)
        for record in page:
            if record.id in trees:
                found[record.id] = f"on {branch}"
            for commit in wanted_trees.get(record.tree, ()):
                found.setdefault(commit, f"same data as {branch}@{record.id}")
        walked += len(page)
        if len(page) < LOG_PAGE:
            break
        after = page[-1].id
    return found


def _is_number(value: object) -> TypeIs[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _raise_if_failed(version: ModelVersionRecord, results: list[GateResult]) -> None:
    failed = [r for r in results if not r.passed]
    if failed:
        raise PolicyViolation(
            f"{version.model}@{version.version} fails {len(failed)} gate(s): "
            + ", ".join(f"{r.gate} measured {r.measured} (needs {r.bound})" for r in failed),
            details={"gates": gate_dicts(results)})


def _decision_record(row: PolicyDecisionRow) -> PolicyDecision:
    gates = tuple(GateResult(gate=g["gate"], passed=bool(g["passed"]), measured=g.get("measured"),
                             bound=g.get("bound"), detail=g.get("detail", ""), evidence=dict(g.get("evidence") or {}))
                  for g in row.gates or [])
    return PolicyDecision(id=row.id, model=row.model, version=row.version, alias=row.alias, at=row.decided_at,
                          passed=bool(row.passed), gates=gates, actor=row.actor, override_reason=row.override_reason,
                          digest=row.digest, policy=dict(row.policy or {}))
