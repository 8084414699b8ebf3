"""``platform.compliance``: where everything lives, and the report an auditor asks for.

The report (``mlops-lite compliance report``, docs/compliance.md) holds: the records of
processing (each repository's declared purpose, lawful basis, categories of data, data
subjects, retention, classification and region), residency (every store against the
policy's rules), encryption at rest and each data key's age, retention runs
(``privacy.retention``), erasures (``privacy.erase``), key rotations (``keys.rotate``),
residency refusals (``residency.refused``) and the audit chain's verification. It holds no
personal data: profiles declare categories, not values, and audit events never carry a
subject's identifier (a keyed digest at most).
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from mlops_lite.clock import utcnow
from mlops_lite.errors import MlopsLiteError
from mlops_lite.privacy.residency import classification_of
from mlops_lite.records import (
    AuditChainCheck,
    AuditRecord,
    AuditVerdict,
    ComplianceEvent,
    ComplianceReport,
    KeysStatus,
    ProcessingRecord,
    ResidencyEntry,
)

if TYPE_CHECKING:
    from mlops_lite.privacy.residency import Residency

REPORTED_ACTIONS = {
    "retention_runs": ("privacy.retention",),
    "erasures": ("privacy.erase",),
    "key_rotations": ("keys.rotate",),
    "residency_refusals": ("residency.refused",),
}


class KeyStatusSource(Protocol):
    def status(self) -> KeysStatus: ...


class AuditSource(Protocol):
    def export(self, since: datetime | None = None) -> builtins.list[dict[str, Any]]: ...

    def count(self) -> int: ...

    def verify(self) -> AuditRecord | None: ...

    def verify_signed(self) -> AuditVerdict: ...


class Compliance:
    def __init__(self, residency: Residency, keys: KeyStatusSource, audit: AuditSource) -> None:
        self._residency = residency
        self._keys = keys
        self._audit = audit

    def residency(self) -> list[ResidencyEntry]:
        return self._residency.locations()

    def check_transfer(self, repository: str, region: str, *, actor: str | None = None) -> None:
        self._residency.check_transfer(repository, region, actor=actor)

    def report(self) -> ComplianceReport:
        residency = self._residency
        records: list[ProcessingRecord] = []
        for name in residency.repositories():
            profile = residency.profile(name)
            records.append(ProcessingRecord(
                repository=name, classification=classification_of(profile),
                region=residency.region_of(profile), location=residency.location_of(name, profile),
                purpose=profile.purpose if profile else None,
                lawful_basis=profile.lawful_basis if profile else None,
                categories=tuple(profile.categories) if profile else (),
                data_subjects=profile.data_subjects if profile else None,
                retention_days=profile.retention_days if profile else None))
        events = self._audit.export()
        found: dict[str, list[ComplianceEvent]] = {key: [] for key in REPORTED_ACTIONS}
        for event in events:
            for key, actions in REPORTED_ACTIONS.items():
                if event["action"] in actions:
                    found[key].append(_event(event))
        return ComplianceReport(
            generated_at=utcnow(), installation_region=residency.serving_region,
            records_of_processing=tuple(records), residency=tuple(self.residency()),
            encryption=self._keys.status(),
            retention_runs=tuple(found["retention_runs"]), erasures=tuple(found["erasures"]),
            key_rotations=tuple(found["key_rotations"]), residency_refusals=tuple(found["residency_refusals"]),
            audit_chain=self._chain(len(events)))

    def _chain(self, events: int) -> AuditChainCheck:
        """Every link with the audit key; then the signed checkpoints where the home signs them."""
        bad = self._audit.verify()
        if bad is not None:
            return AuditChainCheck(verified=False, events=events, first_bad_seq=bad.seq,
                                   problems=(f"event seq {bad.seq} ({bad.action} on {bad.object}) does not verify",))
        try:
            verdict = self._audit.verify_signed()
        except MlopsLiteError as exc:  # no signing key in this home: the links alone
            return AuditChainCheck(verified=True, events=events, problems=(f"checkpoints not checked: {exc}",))
        return AuditChainCheck(verified=verdict.verified, events=verdict.events,
                               signed_through=verdict.signed_through, problems=tuple(verdict.problems))


def _event(event: dict[str, Any]) -> ComplianceEvent:
    at = event["at"]
    return ComplianceEvent(seq=int(event["seq"]), at=datetime.fromisoformat(at) if isinstance(at, str) else at,
                           actor=str(event["actor"]), action=str(event["action"]), object=str(event["object"]),
                           details=dict(event.get("after") or {}))


# ---- the report as Markdown ------------------------------------------------------------

def _cell(value: Any) -> str:
    if value is None or value == () or value == "":
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return [*out, ""]


def _age_days(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "-"
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return "-"
    if when.tzinfo is None:
        when = when.replace(tzinfo=now.tzinfo)
    return f"{(now - when).total_seconds() / 86400:.1f}"


def render_markdown(report: ComplianceReport) -> str:
    """The report for a reader: one section per subject, tables, no personal data."""
    now = report.generated_at
    lines = ["# Compliance report", "",
             f"Generated {now.isoformat()} for the installation in region `{report.installation_region}`.", "",
             "## Records of processing", ""]
    lines += _table(["repository", "classification", "purpose", "lawful basis", "categories", "data subjects",
                     "retention (days)", "region", "location"],
                    [[r.repository, r.classification, r.purpose, r.lawful_basis, r.categories, r.data_subjects,
                      r.retention_days, r.region, r.location] for r in report.records_of_processing])
    lines += ["## Residency", ""]
    lines += _table(["kind", "name", "classification", "region", "allowed", "rule", "status"],
                    [[e.kind, e.name, e.classification, e.region, e.allowed, e.rule or "unrestricted",
                      e.status.upper() if e.status != "allowed" else e.status] for e in report.residency])
    enc = report.encryption
    lines += ["## Encryption at rest", ""]
    if enc.encrypted:
        lines += [f"Encrypted: yes (KMS `{enc.kms}`, key encryption key `{enc.kek_id}`; metadata database "
                  f"{'encrypted' if enc.metadata_encrypted else 'not encrypted here'}).", ""]
        lines += _table(["purpose", "data key", "wrapped under", "created", "age (days)", "last wrapped"],
                        [[k.purpose, k.id, k.kek_id, k.created_at, _age_days(k.created_at, now), k.wrapped_at]
                         for k in enc.data_keys])
    else:
        lines += ["Encrypted: **NO** (`mlops-lite keys encrypt-home` encrypts this home in place).", ""]
    lines += [f"- {note}" for note in enc.relies_on] + ([""] if enc.relies_on else [])
    for title, events in (("Key rotations", report.key_rotations), ("Retention runs", report.retention_runs),
                          ("Erasures", report.erasures), ("Residency refusals", report.residency_refusals)):
        lines += [f"## {title}", ""]
        lines += _table(["seq", "at", "actor", "object", "details"],
                        [[e.seq, e.at.isoformat(), e.actor, e.object,
                          "; ".join(f"{k}={_cell(v)}" for k, v in sorted(e.details.items()))] for e in events])
    chain = report.audit_chain
    lines += ["## Audit chain", "",
              f"{'Verified' if chain.verified else '**DOES NOT VERIFY**'}: {chain.events} events"
              + (f", signed through seq {chain.signed_through}" if chain.signed_through else "") + ".", ""]
    lines += [f"- {problem}" for problem in chain.problems]
    return "\n".join(lines).rstrip() + "\n"
