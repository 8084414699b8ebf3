"""When to retrain a deployment: every trigger and every guard, in one decision.

Triggers (any one asks for a retrain):

- an alert of the drift or quality rules (``RETRAIN_RULES``) firing on the deployment;
- new data: main of the serving version's data repository has moved past the commit that
  version was trained on;
- the schedule: ``retrain_interval_s`` (0, the default, is off) has passed since the
  serving revision went live or since the last trigger, whichever is later;
- a person's request (``platform.loop.request_retrain``, audited ``loop.retrain_requested``)
  made since the last trigger: only a release in progress holds it.

Guards (each holds a retrain the triggers ask for, and says why):

- a release in progress: the deployment has a candidate out (canary, shadow, standby);
- nothing new since the last trigger: the deployment is at the revision, and main at the
  head, that the last trigger saw. A retrain trains on the head of main; on the same head
  and revision it can only repeat its outcome, so the loop waits for new data or a change
  of the deployment instead of retraining in circles;
- the debounce: a trigger less than ``debounce_s`` ago while the deployment is still at
  that trigger's revision (a release answers a trigger with a new revision, which spends it).

The state lives in the store, not in a process: a yes is recorded as a
``loop.retrain_triggered`` audit event (revision, head, reasons), and the guards read the
deployment's last such event. So they hold across restarts of the daemon and across its
schedulers (the APScheduler job, the Prefect ``monitor`` flow, a flow on a worker asking
over HTTP). A scheduler that cannot act on a yes (another retrain running, a failed run)
records ``loop.retrain_abandoned``: the same state may then be tried again once the
debounce has passed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from mlops_lite.clock import as_utc, utcnow
from mlops_lite.errors import MlopsLiteError
from mlops_lite.records import AuditRecord, DeploymentRecord

RETRAIN_RULES = ("drift-share", "drift-feature", "accuracy-low")
TRIGGERED = "loop.retrain_triggered"
ABANDONED = "loop.retrain_abandoned"
REQUESTED = "loop.retrain_requested"

log = logging.getLogger("mlops_lite.loop")

# Deciding reads the last trigger and may record a new one: two schedulers of one daemon
# asking at once must not both get a yes. Every decision runs in the process that owns
# the stores (a worker asks it over HTTP), so a lock of this process is enough.
_deciding = threading.Lock()


@dataclass(frozen=True)
class Decision:
    """Whether to retrain a deployment now, and why (or why not).

    ``reasons``: the triggers that ask for a retrain (empty: none does); ``held``: the
    guard that holds it, '' when it goes ahead or nothing asks. ``revision`` and ``head``
    are the state it was decided on (the head is None when the data behind the serving
    version cannot be read)."""

    retrain: bool
    reasons: tuple[str, ...] = ()
    held: str = ""
    revision: int | None = None
    repository: str | None = None
    head: str | None = None

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return {"retrain": self.retrain, "reason": self.reason, "reasons": list(self.reasons), "held": self.held,
                "revision": self.revision, "repository": self.repository, "head": self.head}


def training_source(platform: Any, model: str, version: str) -> tuple[str, str]:
    """The data repository and the commit ``model@version`` was trained on."""
    record = platform.registry.get_version(model, version)
    run = platform.tracking.get_run(record.run_id)
    return str(run.tags.get("repository")), str(record.data_commits[0])


def should_retrain(platform: Any, name: str, *, now: datetime | None = None,
                   debounce_s: float = 600.0) -> Decision:
    """The one retrain decision for deployment ``name`` at ``now`` (default: the clock's
    now); see the module doc for its triggers and guards. A yes is recorded, so the
    caller must act on it or say it could not (``abandon``). NotFound for an unknown
    deployment."""
    moment = as_utc(now) if now is not None else utcnow()
    deployment: DeploymentRecord = platform.deployments.get(name)
    repository, trained_on, head = _data_behind(platform, deployment)
    firing = [a for a in platform.alerts.open_alerts()
              if a.subject == name and a.state == "firing" and a.rule in RETRAIN_RULES]
    reasons = [f"{a.rule}: {a.metric} = {a.value:.3g} (threshold {a.threshold:g})" for a in firing]
    if head is not None and head != trained_on:
        reasons.append(f"new data merged to main of {repository}: {head[:12]} "
                       f"(the serving version trained on {(trained_on or '')[:12]})")
    with _deciding:
        last, abandoned, requested = _last_trigger(platform, name)
        scheduled = _schedule_due(platform.settings.retrain_interval_s, deployment, last, moment)
        if scheduled:
            reasons.append(scheduled)
        if requested is not None:
            why = requested.after.get("reason") or "no reason given"
            reasons.append(f"requested by {requested.actor}: {why}")
        decision = Decision(False, tuple(reasons), revision=deployment.revision, repository=repository, head=head)
        if not reasons:
            return decision
        # A person's request is answered even with nothing new: only a release in progress holds it.
        held = (_held(deployment, None, False, repository, head, moment, debounce_s) if requested is not None
                else _held(deployment, last, abandoned, repository, head, moment, debounce_s))
        if held:
            return replace(decision, held=held)
        platform.audit.record(actor=platform.actor, action=TRIGGERED, object=f"deployment:{name}", after={
            "revision": deployment.revision, "repository": repository, "head": head, "trained_on": trained_on,
            "reasons": reasons, "alerts": [a.id for a in firing]})
        return replace(decision, retrain=True)


def abandon(platform: Any, name: str, why: str) -> None:
    """Say that the last retrain triggered for ``name`` did not run, or failed: the guard
    "nothing new since" no longer holds its state, so a later window may try it again
    (once the debounce has passed)."""
    platform.audit.record(actor=platform.actor, action=ABANDONED, object=f"deployment:{name}", after={"reason": why})


def _data_behind(platform: Any, deployment: DeploymentRecord) -> tuple[str | None, str | None, str | None]:
    """The serving version's data repository, the commit it trained on, and the head of
    main there now; Nones (logged) when they cannot be read: then data cannot trigger."""
    try:
        repository, trained_on = training_source(platform, deployment.model, deployment.version)
        return repository, trained_on, str(platform.data.repo(repository).ref("main").resolve())
    except MlopsLiteError as exc:
        log.warning("the data behind %s cannot be read, so new data cannot trigger a retrain: %s",
                    deployment.name, exc.message)
        return None, None, None


def _last_trigger(platform: Any, name: str) -> tuple[AuditRecord | None, bool, AuditRecord | None]:
    """The deployment's last recorded trigger, whether it was abandoned since, and the
    newest retrain request made after it (None: none is pending)."""
    events = platform.audit.about(f"deployment:{name}", action_prefix="loop.retrain_")
    start = 0
    last: AuditRecord | None = None
    for index in range(len(events) - 1, -1, -1):
        if events[index].action == TRIGGERED:
            last, start = events[index], index + 1
            break
    after = events[start:]
    requests = [e for e in after if e.action == REQUESTED]
    return last, last is not None and any(e.action == ABANDONED for e in after), (requests[-1] if requests else None)


def request_retrain(platform: Any, name: str, *, reason: str, actor: str) -> None:
    """Record a person's request to retrain ``name`` (audit ``loop.retrain_requested``):
    the next retrain decision counts it as a trigger, held only by a release in progress."""
    platform.deployments.get(name)  # NotFound names an unknown deployment
    platform.audit.record(actor=actor, action=REQUESTED, object=f"deployment:{name}", after={"reason": reason})


def _schedule_due(interval_s: float, deployment: DeploymentRecord, last: AuditRecord | None,
                  moment: datetime) -> str:
    if interval_s <= 0:
        return ""
    since = as_utc(deployment.updated_at)
    if last is not None:
        since = max(since, as_utc(last.at))
    if (moment - since).total_seconds() < interval_s:
        return ""
    return f"scheduled retrain: every {interval_s:g} s, none since {since.isoformat(timespec='seconds')}"


def _held(deployment: DeploymentRecord, last: AuditRecord | None, abandoned: bool, repository: str | None,
          head: str | None, moment: datetime, debounce_s: float) -> str:
    """Why a retrain asked for now must wait, or ''."""
    if deployment.candidate_digest:
        return (f"a release is in progress: {deployment.strategy} of "
                f"{deployment.candidate_model or deployment.model}@{deployment.candidate_version}")
    if last is None:
        return ""
    same_revision = last.after.get("revision") == deployment.revision
    if same_revision and not abandoned and last.after.get("head") == head:
        return (f"already retrained on main@{(head or '?')[:12]} of {repository} with revision "
                f"{deployment.revision} serving; nothing new since")
    waited = (moment - as_utc(last.at)).total_seconds()
    if same_revision and waited < debounce_s:
        return (f"debounced: a retrain was triggered {waited:.0f} s ago at revision {deployment.revision}; "
                f"the next may come {debounce_s:g} s after it")
    return ""
