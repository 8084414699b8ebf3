"""Compliance routes: where every store lives (operator), a transfer's residency check
(operator; a refusal is 412 with the rule, audited), and the auditor's report (admin)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post

from mlops_lite.errors import InvalidInput
from mlops_lite.records import ComplianceReport, ResidencyEntry
from server.context import actor as _actor
from server.context import platform as _platform


@get("/compliance/residency", opt={"permission": "operator"}, sync_to_thread=True)
def compliance_residency(request: Request[Any, Any, Any]) -> list[ResidencyEntry]:
    """Every dataset, the artifact store and the prediction log: region, class, allowed or violating."""
    return _platform(request).compliance.residency()


@post("/compliance/transfers", opt={"permission": "operator"}, status_code=200, sync_to_thread=True)
def compliance_transfer(request: Request[Any, Any, Any], data: dict[str, Any]) -> dict[str, Any]:
    """May ``repository``'s bytes go to ``region``? 200 when they may; 412 naming the rule when not."""
    repository, region = data.get("repository"), data.get("region")
    for name, value in (("repository", repository), ("region", region)):
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"{name} is required", field=name, expected="a non-empty string")
    _platform(request).compliance.check_transfer(str(repository), str(region), actor=_actor(request))
    return {"repository": repository, "region": region, "allowed": True}


@get("/compliance/report", opt={"permission": "admin"}, sync_to_thread=True)
def compliance_report(request: Request[Any, Any, Any]) -> ComplianceReport:
    """Records of processing, residency, encryption, key ages, retention runs, erasures,
    key rotations and the audit chain's verification (no personal data)."""
    return _platform(request).compliance.report()


COMPLIANCE_ROUTES = [compliance_residency, compliance_transfer, compliance_report]
