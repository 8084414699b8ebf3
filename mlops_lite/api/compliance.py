"""``platform.compliance``: where every dataset, model and log lives, and the report an
auditor asks for (docs/compliance.md). Over HTTP: ``residency`` and ``check_transfer``
need the operator role, ``report`` the admin role."""

from __future__ import annotations

from typing import Protocol

from mlops_lite.records import ComplianceReport, ResidencyEntry


class ComplianceAPI(Protocol):
    def residency(self) -> list[ResidencyEntry]:
        """Every data repository, the artifact store and the prediction log: region,
        location, classification ("unclassified" for a repository without a profile,
        enforced as personal) and whether the default policy's residency rules allow it there."""
        ...

    def check_transfer(self, repository: str, region: str, *, actor: str | None = None) -> None:
        """Whether ``repository``'s bytes may be exported or replicated to ``region``:
        PolicyViolation naming the rule (``details['rule']``), audited as
        ``residency.refused``, when its classification does not allow that region."""
        ...

    def report(self) -> ComplianceReport:
        """Records of processing, residency, encryption and key ages, retention runs,
        erasures, key rotations, residency refusals and the audit chain's verification.
        No personal data."""
        ...
