"""Records: the frozen values the Platform facets return, local or remote alike."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class CommitRecord:
    id: str
    repository: str
    parents: tuple[str, ...]
    tree: str
    message: str
    author: str
    created_at: datetime
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def parent(self) -> str | None:
        """The first parent (the branch's previous head), or None for a first commit."""
        return self.parents[0] if self.parents else None


@dataclass(frozen=True)
class RepositoryRecord:
    name: str
    default_branch: str
    created_at: datetime
    branches: dict[str, str | None] = field(default_factory=dict)
    protected_branches: tuple[str, ...] = ()


@dataclass(frozen=True)
class BranchRecord:
    repository: str
    name: str
    head: str | None


@dataclass(frozen=True)
class TagRecord:
    repository: str
    name: str
    commit: str


@dataclass(frozen=True)
class ObjectRecord:
    """An object at a path: its digest, size, and whether it is staged (uncommitted)."""

    path: str
    digest: str
    size: int
    staged: bool = False


@dataclass(frozen=True)
class Listing:
    """A page of objects and folder prefixes; ``next_after`` continues it."""

    objects: tuple[ObjectRecord, ...]
    prefixes: tuple[str, ...]
    has_more: bool
    next_after: str


@dataclass(frozen=True)
class RunRecord:
    id: str
    name: str
    experiment: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    data_commits: tuple[str, ...] = ()
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    git_commit: str | None = None
    git_dirty: bool | None = None
    environment: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersionRecord:
    model: str
    version: str
    digest: str
    size: int
    signature: dict[str, Any]
    run_id: str | None
    data_commits: tuple[str, ...]
    params: dict[str, Any]
    metrics: dict[str, Any]
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class ModelRecord:
    name: str
    description: str
    created_at: datetime
    versions: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeploymentRecord:
    name: str
    model: str
    version: str
    digest: str
    strategy: str
    revision: int
    updated_at: datetime
    updated_by: str
    candidate_model: str | None = None
    candidate_version: str | None = None
    candidate_digest: str | None = None
    weight: float | None = None
    live_slot: str | None = None


@dataclass(frozen=True)
class DeploymentRevisionRecord:
    """One state of a deployment; ``action`` says what made it."""

    name: str
    revision: int
    action: str
    strategy: str
    model: str
    version: str
    digest: str
    candidate_model: str | None
    candidate_version: str | None
    candidate_digest: str | None
    weight: float | None
    live_slot: str | None
    changed_at: datetime
    changed_by: str
    reason: str = ""


@dataclass(frozen=True)
class Prediction:
    """The answer to one predict call."""

    request_id: str
    deployment: str
    model: str
    version: str
    digest: str
    predictions: tuple[Any, ...]
    probabilities: tuple[tuple[float, ...], ...]
    classes: tuple[Any, ...]
    slot: str = "primary"  # primary | canary | shadow: which side of the deployment answered


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    measured: Any
    bound: Any
    detail: str = ""
    # What a measuring gate measured on and beside what: the data (repository, commit,
    # path, rows), the measured and the claimed figure; {} for a gate that only looks.
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    id: str
    at: datetime
    actor: str
    action: str
    object: str
    before: dict[str, Any]
    after: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditCheckpoint:
    """A signed statement that the audit chain held ``count`` events ending at ``seq``,
    whose link is ``head``, at time ``at``. ``digest`` is the keyless SHA-256 chain over
    every event 1..seq as exported (what a holder of the public key alone can recompute);
    ``prev`` the digest of the checkpoint before it in the file (None for the first);
    ``signature`` the Ed25519 signature (base64) by the key whose id is ``key_id``."""

    id: str
    seq: int
    head: str
    count: int
    at: datetime
    digest: str
    prev: str | None
    key_id: str
    signature: str


@dataclass(frozen=True)
class AuditVerdict:
    """The chain checked against its signed checkpoints. ``checkpoint`` is the latest one
    with a good signature; ``signed_through`` the last seq whose events a signature proves
    (0: none); ``missing`` the range [first, last] of seqs a checkpoint covers that the
    chain no longer holds; ``problems`` says each failure in words."""

    verified: bool
    events: int
    checkpoint: AuditCheckpoint | None
    signed_through: int
    missing: tuple[int, int] | None
    problems: tuple[str, ...]


@dataclass(frozen=True)
class Grant:
    """A role on some resources beyond the identity's global role: on the models whose
    names match ``models`` (a glob) or the data repositories matching ``repositories``."""

    role: str
    models: str | None = None
    repositories: str | None = None

    def covers(self, *, model: str | None = None, repository: str | None = None) -> bool:
        if model is not None and self.models is not None and fnmatch.fnmatchcase(model, self.models):
            return True
        return (repository is not None and self.repositories is not None
                and fnmatch.fnmatchcase(repository, self.repositories))


IDENTITY_KINDS = ("local", "token", "access_key", "oidc", "service")


@dataclass(frozen=True)
class Identity:
    """Who is calling, and with which role.

    ``kind`` says how they proved it: ``local`` (a process that owns the home), ``token``
    (a bearer token of this installation), ``access_key`` (lakeFS-style HTTP Basic),
    ``oidc`` (a JWT from a configured issuer: ``issuer`` and ``subject`` are its ``iss``
    and ``sub``) or ``service`` (an identity issued to a worker or serving replica).
    ``grants`` add roles on named models or repositories on top of ``role``."""

    name: str
    role: str
    token_id: str | None = None
    kind: str = "local"
    issuer: str | None = None
    subject: str | None = None
    grants: tuple[Grant, ...] = ()

    @property
    def principal(self) -> str:
        """The stable id the audit chain, ``created_by`` and the four-eyes rules use:
        ``oidc:<issuer>#<subject>`` for a federated identity, ``token:<name>`` for a bearer
        token, ``access-key:<name>`` for an access key, the bare name for a local caller."""
        if self.kind == "oidc":
            return f"oidc:{self.issuer}#{self.subject}"
        if self.kind in ("token", "service"):
            return f"token:{self.name}"
        if self.kind == "access_key":
            return f"access-key:{self.name}"
        return self.name


_LOCAL_PRINCIPAL_PREFIXES = ("token:", "access-key:")


def same_principal(a: str | None, b: str | None) -> bool:
    """Whether two stored actor strings name the same person. A local token's name, with or
    without the ``token:``/``access-key:`` prefix the HTTP API adds, is one person (homes made
    before the prefix was compared stored both forms); a federated principal is compared whole."""
    if not a or not b:
        return False

    def bare(value: str) -> str:
        for prefix in _LOCAL_PRINCIPAL_PREFIXES:
            if value.startswith(prefix):
                return value[len(prefix):]
        return value

    return bare(a) == bare(b)


@dataclass(frozen=True)
class TokenRecord:
    """A bearer token or access key, never its secret."""

    id: str
    name: str
    role: str
    created_at: datetime
    revoked: bool
    access_key_id: str | None = None
    grants: tuple[Grant, ...] = ()
    expires_at: datetime | None = None
    service: str | None = None  # "worker" or "replica" for a service identity's token


@dataclass(frozen=True)
class AliasEventRecord:
    """One move of a model alias: who, when, from which version to which, and why.
    ``kind`` is "move", "rollback", "delete" or "override"; ``seq`` counts the
    alias's events from 1."""

    id: str
    model: str
    alias: str
    seq: int
    kind: str
    from_version: str | None
    to_version: str | None
    actor: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class VersionComparison:
    """Version ``b`` against version ``a`` of one model (deltas are b - a)."""

    model: str
    a: str
    b: str
    metric_deltas: dict[str, float]
    metrics_only_in_a: tuple[str, ...]
    metrics_only_in_b: tuple[str, ...]
    signature_changed: bool
    inputs_added: tuple[str, ...]
    inputs_removed: tuple[str, ...]
    inputs_changed: dict[str, tuple[str, str]]  # input name -> (type in a, type in b)
    outputs_changed: bool
    data_commits_a: tuple[str, ...]
    data_commits_b: tuple[str, ...]
    data_changed: bool
    params_changed: dict[str, tuple[Any, Any]]  # key -> (value in a, value in b); None where absent


@dataclass(frozen=True)
class Lineage:
    """Where a model version came from and what happened to it.

    ``ref`` is what was asked for (a version or an alias; ``at`` resolves an alias at a
    time). ``alias_events`` are the moves of that alias (of any alias, for a version ref)
    onto this version; ``audit_events`` are the audit events about ``model:NAME@VERSION``.
    """

    model: str
    ref: str
    at: datetime | None
    alias: str | None
    version: ModelVersionRecord
    run_id: str | None
    data_commits: tuple[str, ...]
    params: dict[str, Any]
    metrics: dict[str, Any]
    card: dict[str, Any]
    alias_events: tuple[AliasEventRecord, ...]
    audit_events: tuple[AuditRecord, ...]
    # Trained through a feature service: its name, the service version and the training set
    # (signature["feature_service"]); None for a model trained on a table.
    feature_service: str | None = None
    feature_service_version: str | None = None
    training_set: str | None = None


@dataclass(frozen=True)
class PolicyDecision:
    """Every gate evaluated for ``model@version`` going to ``alias``, as stored.

    ``passed`` is what the gates said. An admin override keeps ``passed`` honest and
    carries ``override_reason``; ``allowed`` is whether the move may go ahead.
    """

    id: str
    model: str
    version: str
    alias: str
    at: datetime
    passed: bool
    gates: tuple[GateResult, ...]
    actor: str
    override_reason: str | None = None
    digest: str | None = None
    policy: dict[str, Any] = field(default_factory=dict)

    @property
    def overridden(self) -> bool:
        return self.override_reason is not None

    @property
    def allowed(self) -> bool:
        return self.passed or self.overridden

    @property
    def failed(self) -> tuple[GateResult, ...]:
        return tuple(g for g in self.gates if not g.passed)


@dataclass(frozen=True)
class ApprovalVote:
    """One approver's vote on a promotion request: ``vote`` is "approve" or "reject"."""

    id: str
    request_id: str
    approver: str
    role: str
    vote: str
    comment: str
    at: datetime


@dataclass(frozen=True)
class ApprovalRequest:
    """A request to move ``alias`` of ``model`` to ``version``.

    ``status``: "pending" -> "approved" (enough distinct approvals under the policy)
    -> "completed" (the alias moved; ``decision_id`` names the decision), or
    "rejected" (an approver said no). ``approvers`` are the distinct approvers.
    """

    id: str
    model: str
    version: str
    alias: str
    status: str
    requested_by: str
    requested_at: datetime
    comment: str
    votes: tuple[ApprovalVote, ...] = ()
    completed_at: datetime | None = None
    completed_by: str | None = None
    decision_id: str | None = None

    @property
    def approvers(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for vote in self.votes:
            if vote.vote == "approve":
                seen.setdefault(vote.approver, None)
        return tuple(seen)


@dataclass(frozen=True)
class ServedSlot:
    """One version a deployment held at a moment, and everything that produced it.

    ``slot``: "primary"; "canary" (answers ``weight`` of the requests, the primary the
    rest); "shadow" (mirrored traffic, answers nobody); "standby" (blue-green, answers
    nobody until a switch). ``release_gates`` are the gates measured when this version
    was let into an answering slot of the deployment (revision ``released_in``);
    ``decisions`` and ``approvals`` are the stored policy decisions and approval
    requests about ``model@version`` made up to the lineage's time. A link that cannot
    be followed (a run, a data commit, a version no longer in the registry) is named in
    ``missing``, and its field left empty.
    """

    slot: str
    model: str
    version: str
    digest: str
    weight: float | None
    registered: ModelVersionRecord | None
    run_id: str | None
    run: RunRecord | None
    data_repository: str | None
    data_commits: tuple[str, ...]
    commits: tuple[CommitRecord, ...]
    params: dict[str, Any]
    metrics: dict[str, Any]
    released_in: int | None
    release_gates: tuple[GateResult, ...]
    decisions: tuple[PolicyDecision, ...]
    approvals: tuple[ApprovalRequest, ...]
    missing: tuple[str, ...] = ()
    feature_service: str | None = None  # as Lineage's: the service, its version, the training set
    feature_service_version: str | None = None
    training_set: str | None = None


@dataclass(frozen=True)
class DeploymentLineage:
    """What served deployment ``deployment`` at ``at``: the revision in force then, each
    of its slots with its lineage (primary first), and the deployment's revisions up to
    ``at``, oldest first."""

    deployment: str
    at: datetime
    revision: DeploymentRevisionRecord
    slots: tuple[ServedSlot, ...]
    history: tuple[DeploymentRevisionRecord, ...]

    @property
    def missing(self) -> tuple[str, ...]:
        """Every broken link, each prefixed with its slot."""
        return tuple(f"{slot.slot}: {gap}" for slot in self.slots for gap in slot.missing)


@dataclass(frozen=True)
class ShadowAnswer:
    """A shadow's answer to a request, as logged under the request's id (it answered nobody)."""

    model: str
    version: str
    digest: str
    predictions: tuple[str | None, ...]
    probabilities: tuple[float | None, ...]


@dataclass(frozen=True)
class TrafficWindow:
    """A deployment's served traffic in one time window (``platform.monitoring.windows``):
    requests answered and failed, p50/p99 latency of the answered ones (None when none
    was); ``slot`` None for all slots together, else primary or canary."""

    deployment: str
    slot: str | None
    window: int  # 0: the oldest of the windows asked for
    start: datetime
    width_s: int
    requests: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class PredictionTrace:
    """One logged request, traced back: which deployment slot and version answered it and
    when, its input rows (``instances``, as logged), its answers (a label per row, as text,
    and the probability of the positive class), the latest feedback label given for it,
    any shadow answers under the same request id, and the deployment's lineage at that
    moment."""

    request_id: str
    deployment: str
    slot: str
    model: str
    version: str
    digest: str
    at: datetime
    latency_ms: float | None
    instances: tuple[dict[str, Any], ...]
    predictions: tuple[str | None, ...]
    probabilities: tuple[float | None, ...]
    feedback: str | None
    feedback_at: datetime | None
    shadow: tuple[ShadowAnswer, ...]
    lineage: DeploymentLineage


@dataclass(frozen=True)
class AlertRecord:
    """One alert occurrence, as stored (see mlops_lite.metadata.tables.alerts)."""

    id: str
    rule: str
    metric: str
    subject: str
    state: str
    severity: str
    value: float
    op: str
    threshold: float
    description: str
    started_at: datetime
    last_seen_at: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    evidence: dict[str, Any]
    silenced: bool
    delivery: str | None
    attempts: int
    last_error: str | None

    @property
    def is_open(self) -> bool:
        return self.state in ("pending", "firing")  # metadata.tables.alerts.OPEN_STATES


@dataclass(frozen=True)
class SilenceRecord:
    id: str
    rule: str | None
    subject: str | None
    until: datetime
    reason: str
    created_by: str
    created_at: datetime
    lifted_at: datetime | None = None
    lifted_by: str | None = None

    def active(self, moment: datetime) -> bool:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment  # naive: UTC (clock.as_utc)
        return self.lifted_at is None and moment < self.until

    def covers(self, rule: str, subject: str) -> bool:
        return ((self.rule is None or fnmatch.fnmatchcase(rule, self.rule))
                and (self.subject is None or fnmatch.fnmatchcase(subject, self.subject)))


@dataclass(frozen=True)
class DataKeyInfo:
    """One data key of an encrypted home (never the key): its purpose, id, the key
    encryption key it is wrapped under, and when it was made and last wrapped."""

    purpose: str
    id: str
    kek_id: str
    created_at: str
    wrapped_at: str


@dataclass(frozen=True)
class KeysStatus:
    """How a home is protected at rest."""

    encrypted: bool
    kms: str | None = None           # "keyfile", "environment", or the plug-in's name
    kek_id: str | None = None        # the current key encryption key
    metadata_encrypted: bool = False  # the DuckDB metadata file (PostgreSQL: its own at-rest encryption)
    data_keys: tuple[DataKeyInfo, ...] = ()
    relies_on: tuple[str, ...] = ()
    """What a scale-out backend's protection rests on, as checked from here (PostgreSQL's
    TLS, the lakeFS endpoint's scheme): each a sentence; "NOT" in it marks a gap."""


@dataclass(frozen=True)
class KeyRotation:
    old_kek_id: str
    new_kek_id: str
    data_keys: int                   # re-wrapped under the new key; no payload was rewritten
    at: datetime


@dataclass(frozen=True)
class ResidencyEntry:
    """Where one store of the installation keeps its bytes, and whether the policy's
    residency rules allow it there (``mlops-lite compliance residency``)."""

    kind: str                        # "dataset", "artifacts" (models, run artifacts), "prediction-log"
    name: str                        # the repository, or the store
    classification: str              # a repository's; "unclassified" when it declares none
    region: str
    location: str
    allowed: tuple[str, ...] = ()    # the regions the rule allows ("*": anywhere)
    rule: str | None = None          # the policy key that decides; None: unrestricted
    status: str = "allowed"          # "allowed" | "violating"


@dataclass(frozen=True)
class ProcessingRecord:
    """One data repository's record of processing (GDPR art. 30): what it declares."""

    repository: str
    classification: str
    region: str
    location: str
    purpose: str | None = None
    lawful_basis: str | None = None
    categories: tuple[str, ...] = ()
    data_subjects: str | None = None
    retention_days: int | None = None


@dataclass(frozen=True)
class ComplianceEvent:
    """An audit event as a compliance report shows it (events hold no personal data)."""

    seq: int
    at: datetime
    actor: str
    action: str
    object: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditChainCheck:
    verified: bool
    events: int
    first_bad_seq: int | None = None
    signed_through: int | None = None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class ComplianceReport:
    """What an auditor asks for (``mlops-lite compliance report``): records of processing,
    residency, encryption and key ages, retention runs, erasures, key rotations, residency
    refusals and the audit chain's verification. No personal data."""

    generated_at: datetime
    installation_region: str
    records_of_processing: tuple[ProcessingRecord, ...]
    residency: tuple[ResidencyEntry, ...]
    encryption: KeysStatus
    retention_runs: tuple[ComplianceEvent, ...] = ()
    erasures: tuple[ComplianceEvent, ...] = ()
    key_rotations: tuple[ComplianceEvent, ...] = ()
    residency_refusals: tuple[ComplianceEvent, ...] = ()
    audit_chain: AuditChainCheck = field(default_factory=lambda: AuditChainCheck(verified=False, events=0))


@dataclass(frozen=True)
class ErasureReport:
    """What ``privacy erase`` removed (or, with ``dry_run``, would remove). ``subject_digest``
    is a keyed digest of the subject, never the identifier; ``commits`` maps each replaced
    commit to its replacement; ``repositories`` every repository rewritten (an object shared
    by content with another repository is rewritten there too)."""

    repository: str
    subject_digest: str
    dry_run: bool
    erasure: str | None
    rows: int
    objects: int
    commits: dict[str, str]
    repositories: tuple[str, ...]
    prediction_log_rows: int | None
    models_flagged: int


@dataclass(frozen=True)
class SubjectExport:
    """Every row of a data subject (``privacy export``): at the head of each branch
    (branch, commit, path, row) and in the prediction log."""

    repository: str
    subject_digest: str
    rows: tuple[dict[str, Any], ...]
    predictions: tuple[dict[str, Any], ...]
    exported_at: datetime


@dataclass(frozen=True)
class RetentionRun:
    """One repository's retention: rows past ``retention_days`` removed from history (with a
    time column), or objects first committed before it removed from the heads (without)."""

    repository: str
    retention_days: int
    rows: int
    objects: int
    commits: int
    paths_removed: int


@dataclass(frozen=True)
class RetentionReport:
    dry_run: bool
    repositories: tuple[RetentionRun, ...]
    prediction_log_days: int | None
    prediction_log_files: int | None
    """Prediction, feedback and error files removed (whole date partitions past the days)."""


@dataclass(frozen=True)
class CommitReplacement:
    """A data commit an erasure or retention run replaced: by ``new_commit``, now (the end
    of the chain when it was rewritten more than once)."""

    old_commit: str
    new_commit: str
    repository: str
    kind: str                        # "erase" | "retention"
    at: datetime


@dataclass(frozen=True)
class FlowRunRecord:
    """One flow run on the Prefect server the daemon runs beside it (``platform.flows``):
    ``state`` is Prefect's state type (SCHEDULED, PENDING, RUNNING, COMPLETED, FAILED,
    CANCELLED, CRASHED, PAUSED, CANCELLING), ``state_name`` its name (e.g. Late, Retrying)."""

    id: str
    name: str
    flow: str
    state: str
    state_name: str
    created: datetime | None
    started: datetime | None
    ended: datetime | None
    deployment_id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class FlowLogRecord:
    """One log line of a flow run (or of one of its task runs), as Prefect stored it."""

    id: str
    at: datetime
    level: str  # DEBUG | INFO | WARNING | ERROR | CRITICAL
    message: str
    task_run_id: str | None = None


def feature_lineage(signature: dict[str, Any] | None) -> dict[str, str | None]:
    """The feature service, its version and the training set a model's signature names (the
    nullable lineage fields of ``Lineage`` and ``ServedSlot``); all None for a model trained
    on a table."""
    bound = (signature or {}).get("feature_service")
    if not isinstance(bound, dict):
        return {"feature_service": None, "feature_service_version": None, "training_set": None}
    return {"feature_service": bound.get("name"), "feature_service_version": bound.get("version"),
            "training_set": bound.get("training_set")}
