"""``platform.registry`` over HTTP (server/registry.py, and app.py's alias moves): the same
verbs, records and errors as mlops_lite/registry; writes act as this client's token."""

from __future__ import annotations

from datetime import datetime
from types import EllipsisType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import msgspec

from mlops_lite.records import AliasEventRecord, Lineage, ModelRecord, ModelVersionRecord, VersionComparison

if TYPE_CHECKING:
    from mlops_lite.client.remote import RemotePlatform

T = TypeVar("T")


def _as(data: Any, type_: type[T]) -> T:
    return msgspec.convert(data, type=type_, strict=False)


def _model_path(model: str) -> str:
    return f"/v1/models/{quote(str(model), safe='')}"


def _version_path(model: str, version: str) -> str:
    return f"{_model_path(model)}/versions/{quote(str(version), safe='')}"


def _alias_path(model: str, alias: str) -> str:
    return f"{_model_path(model)}/aliases/{quote(str(alias), safe='')}"


class RemoteRegistry:
    def __init__(self, remote: RemotePlatform) -> None:
        self._remote = remote

    # --- models and versions ----------------------------------------------------------------
    def register_from_run(self, model: str, run_id: str, *, version: str | None = None,
                          description: str = "") -> ModelVersionRecord:
        body = self._remote.request("POST", f"{_model_path(model)}/versions",
                                    json={"run_id": run_id, "version": version, "description": description})
        return _as(body, ModelVersionRecord)

    def get_version(self, model: str, version: str) -> ModelVersionRecord:
        return _as(self._remote.request("GET", _version_path(model, version)), ModelVersionRecord)

    def latest_version(self, model: str) -> ModelVersionRecord:
        return _as(self._remote.request("GET", f"{_model_path(model)}/latest"), ModelVersionRecord)

    def list_versions(self, model: str | None = None) -> list[ModelVersionRecord]:
        params = None if model is None else {"model": model}
        return _as(self._remote.request("GET", "/v1/versions", params=params), list[ModelVersionRecord])

    def list_models(self) -> list[ModelRecord]:
        return _as(self._remote.request("GET", "/v1/models"), list[ModelRecord])

    def artifact_bytes(self, digest: str) -> bytes:
        return self._remote.request_bytes("GET", f"/v1/artifacts/{quote(str(digest), safe='')}")

    def model_bytes(self, model: str, version: str) -> bytes:
        return self._remote.request_bytes("GET", f"{_version_path(model, version)}/onnx")

    # --- aliases -----------------------------------------------------------------------------
    def set_alias(self, model: str, alias: str, version: str, *, reason: str,
                  expected: str | EllipsisType | None = ..., decision: str | None = None) -> ModelVersionRecord:
        """Move an alias; the core decides a gated alias (412 with every gate when it fails)."""
        body: dict[str, Any] = {"version": version, "reason": reason}
        if decision is not None:
            body["decision"] = decision
        if not isinstance(expected, EllipsisType):
            body["expected"] = expected
        return _as(self._remote.request("PUT", _alias_path(model, alias), json=body), ModelVersionRecord)

    def get_alias(self, model: str, alias: str) -> ModelVersionRecord:
        return _as(self._remote.request("GET", _alias_path(model, alias)), ModelVersionRecord)

    def aliases(self, model: str) -> dict[str, str]:
        return dict(self._remote.request("GET", f"{_model_path(model)}/aliases"))

    def alias_at(self, model: str, alias: str, when: datetime) -> ModelVersionRecord | None:
        body = self._remote.request("GET", f"{_alias_path(model, alias)}/at", params={"when": when.isoformat()})
        return None if body is None else _as(body, ModelVersionRecord)

    def alias_history(self, model: str, alias: str | None = None) -> list[AliasEventRecord]:
        params = None if alias is None else {"alias": alias}
        return _as(self._remote.request("GET", f"{_model_path(model)}/alias-history", params=params),
                   list[AliasEventRecord])

    def rollback(self, model: str, alias: str, *, reason: str) -> ModelVersionRecord:
        body = self._remote.request("POST", f"{_alias_path(model, alias)}/rollback", json={"reason": reason})
        return _as(body, ModelVersionRecord)

    def delete_alias(self, model: str, alias: str, *, reason: str,
                     expected: str | EllipsisType | None = ...) -> AliasEventRecord:
        body: dict[str, Any] = {"reason": reason}
        if not isinstance(expected, EllipsisType):
            body["expected"] = expected
        return _as(self._remote.request("DELETE", _alias_path(model, alias), json=body), AliasEventRecord)

    # --- comparison, lineage, model cards -----------------------------------------------------
    def compare_versions(self, model: str, a: str, b: str) -> VersionComparison:
        return _as(self._remote.request("GET", f"{_model_path(model)}/compare", params={"a": a, "b": b}),
                   VersionComparison)

    def lineage(self, model: str, ref: str, *, at: datetime | None = None) -> Lineage:
        params = None if at is None else {"at": at.isoformat()}
        path = f"{_model_path(model)}/lineage/{quote(str(ref), safe='')}"
        return _as(self._remote.request("GET", path, params=params), Lineage)

    def set_model_card(self, model: str, version: str, card: dict[str, Any]) -> dict[str, Any]:
        return dict(self._remote.request("PUT", f"{_version_path(model, version)}/card", json={"card": card}))

    def model_card(self, model: str, version: str) -> dict[str, Any]:
        return dict(self._remote.request("GET", f"{_version_path(model, version)}/card"))
