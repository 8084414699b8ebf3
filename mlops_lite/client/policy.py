"""``platform.policy`` over HTTP (server/policy.py): the same verbs, records and errors
as mlops_lite/policy; votes and overrides act as this client's token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import msgspec

from mlops_lite.policy.document import PolicySpec
from mlops_lite.records import ApprovalRequest, GateResult, ModelVersionRecord, PolicyDecision

if TYPE_CHECKING:
    from mlops_lite.client.remote import RemotePlatform

T = TypeVar("T")


def _as(data: Any, type_: type[T]) -> T:
    return msgspec.convert(data, type=type_, strict=False)


def _version_path(model: str, version: str) -> str:
    return f"/v1/models/{quote(model, safe='')}/versions/{quote(version, safe='')}"


class RemotePolicy:
    def __init__(self, remote: RemotePlatform) -> None:
        self._remote = remote

    def load(self, model: str | None = None) -> PolicySpec:
        return _as(self._remote.request("GET", f"/v1/models/{quote(model or 'default', safe='')}/policy"),
                   PolicySpec)

    def evaluate(self, version: ModelVersionRecord, *, alias: str = "production",
                 baseline: str | None = None) -> list[GateResult]:
        params = {"alias": alias} if baseline is None else {"alias": alias, "baseline": baseline}
        return _as(self._remote.request("GET", f"{_version_path(version.model, version.version)}/gates",
                                        params=params), list[GateResult])

    def decide(self, model: str, version: str, *, alias: str = "production",
               actor: Any = None) -> PolicyDecision:
        """``actor`` is accepted for the local signature; the server records this token."""
        return _as(self._remote.request("POST", f"{_version_path(model, version)}/decisions", json={"alias": alias}),
                   PolicyDecision)

    def decisions(self, model: str, version: str | None = None, *,
                  alias: str | None = None) -> list[PolicyDecision]:
        params = {k: v for k, v in (("version", version), ("alias", alias)) if v is not None}
        return _as(self._remote.request("GET", f"/v1/models/{quote(model, safe='')}/decisions", params=params),
                   list[PolicyDecision])

    def get_decision(self, decision_id: str) -> PolicyDecision:
        return _as(self._remote.request("GET", f"/v1/decisions/{quote(decision_id, safe='')}"), PolicyDecision)

    def latest_decision(self, model: str, version: str, *, alias: str = "production") -> PolicyDecision | None:
        body = self._remote.request("GET", f"{_version_path(model, version)}/decisions/latest", params={"alias": alias})
        return None if body is None else _as(body, PolicyDecision)

    def override(self, model: str, version: str, *, alias: str = "production", reason: str,
                 move: bool = True, identity: Any = None) -> PolicyDecision:
        body = self._remote.request("POST", f"{_version_path(model, version)}/override",
                                    json={"alias": alias, "reason": reason, "move": move})
        return _as(body, PolicyDecision)

    def request_promotion(self, model: str, version: str, *, alias: str = "production",
                          requested_by: Any = None, comment: str = "") -> ApprovalRequest:
        """The server records this token as the requester (``requested_by`` is accepted
        for the local signature and not sent)."""
        body = self._remote.request("POST", "/v1/approvals", json={"model": model, "version": version,
                                                                   "alias": alias, "comment": comment})
        return _as(body, ApprovalRequest)

    def requests(self, model: str | None = None, status: str | None = None) -> list[ApprovalRequest]:
        params = {k: v for k, v in (("model", model), ("status", status)) if v is not None}
        return _as(self._remote.request("GET", "/v1/approvals", params=params), list[ApprovalRequest])

    def get_request(self, request_id: str) -> ApprovalRequest:
        return _as(self._remote.request("GET", f"/v1/approvals/{quote(request_id, safe='')}"), ApprovalRequest)

    def approve(self, request_id: str, *, comment: str = "", complete: bool = False,
                identity: Any = None) -> ApprovalRequest:
        body = self._remote.request("POST", f"/v1/approvals/{quote(request_id, safe='')}/approve",
                                    json={"comment": comment, "complete": complete})
        return _as(body, ApprovalRequest)

    def reject(self, request_id: str, *, comment: str = "", identity: Any = None) -> ApprovalRequest:
        body = self._remote.request("POST", f"/v1/approvals/{quote(request_id, safe='')}/reject",
                                    json={"comment": comment})
        return _as(body, ApprovalRequest)

    def complete(self, request_id: str, *, comment: str = "", identity: Any = None) -> ApprovalRequest:
        body = self._remote.request("POST", f"/v1/approvals/{quote(request_id, safe='')}/complete",
                                    json={"comment": comment})
        return _as(body, ApprovalRequest)
