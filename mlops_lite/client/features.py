"""``platform.features`` over HTTP (server/features.py, and app.py's predict route for
entity rows): the same verbs, records and errors as mlops_lite/features. Definitions are
read here (a TOML or Python file, or a mapping) and sent as their canonical specs; the
server validates them against its sources and records the change as this client's token."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import msgspec

from mlops_lite.errors import InvalidInput
from mlops_lite.records import Prediction

if TYPE_CHECKING:
    from mlops_lite.client.remote import RemotePlatform
    from mlops_lite.features.definitions import Definitions
    from mlops_lite.features.records import (
        ApplyResult,
        FeatureDefinitionRecord,
        FeatureOverrideRecord,
        FeatureServiceRecord,
        MaterializationRecord,
        OnlineFeatures,
        SkewReport,
        TrainingSetRecord,
    )

T = TypeVar("T")


def _as(data: Any, type_: type[T]) -> T:
    return msgspec.convert(data, type=type_, strict=False)


def _segment(value: str) -> str:
    # Quoted: a name is the caller's text, and a '/' or '?' in it must reach the server as text.
    return quote(str(value), safe="")


def _iso(moment: datetime | str | None) -> str | None:
    return moment.isoformat() if isinstance(moment, datetime) else moment


class RemoteFeatures:
    """The feature store's modules are imported on first use: ``mlops_lite.features`` loads
    pyarrow and the metadata tables, which a client that never asks for features does not need."""

    def __init__(self, remote: RemotePlatform) -> None:
        self._remote = remote

    # --- definitions ---------------------------------------------------------------------------
    def apply(self, definitions: Definitions | Mapping[str, Any] | str | Path, *, ref: str = "main",
              dry_run: bool = False) -> ApplyResult:
        """Read ``definitions`` here (a file is this machine's) and apply them on the server."""
        from mlops_lite.features.definitions import from_mapping, load
        from mlops_lite.features.records import ApplyResult

        if isinstance(definitions, str | Path):
            definitions = load(Path(definitions))
        elif isinstance(definitions, Mapping):
            definitions = from_mapping(definitions)
        body = self._remote.request("POST", "/v1/features/apply", json={
            "definitions": definitions.specs(), "ref": ref, "dry_run": dry_run})
        return _as(body, ApplyResult)

    def list(self, kind: str | None = None) -> builtins.list[FeatureDefinitionRecord]:
        from mlops_lite.features.records import FeatureDefinitionRecord

        params = None if kind is None else {"kind": kind}
        return _as(self._remote.request("GET", "/v1/features", params=params), builtins.list[FeatureDefinitionRecord])

    def history(self, kind: str, name: str) -> builtins.list[FeatureDefinitionRecord]:
        from mlops_lite.features.records import FeatureDefinitionRecord

        body = self._remote.request("GET", f"/v1/features/{_segment(kind)}/{_segment(name)}/history")
        return _as(body, builtins.list[FeatureDefinitionRecord])

    # --- feature services ----------------------------------------------------------------------
    def service(self, name: str, version: str | None = None) -> FeatureServiceRecord:
        from mlops_lite.features.records import FeatureServiceRecord

        params = None if version is None else {"version": version}
        return _as(self._remote.request("GET", f"/v1/features/services/{_segment(name)}", params=params),
                   FeatureServiceRecord)

    def versions(self, name: str) -> builtins.list[str]:
        return _as(self._remote.request("GET", f"/v1/features/services/{_segment(name)}/versions"),
                   builtins.list[str])

    def services(self) -> builtins.list[str]:
        return _as(self._remote.request("GET", "/v1/features/services"), builtins.list[str])

    # --- training sets -------------------------------------------------------------------------
    def training_set(self, service: str, *, repository: str | None = None, path: str | None = None,
                     ref: str = "main", timestamp_field: str = "event_timestamp") -> TrainingSetRecord:
        from mlops_lite.features.records import TrainingSetRecord

        body = self._remote.request("POST", f"/v1/features/services/{_segment(service)}/training-sets", json={
            "repository": repository, "path": path, "ref": ref, "timestamp_field": timestamp_field})
        return _as(body, TrainingSetRecord)

    def get_training_set(self, id: str) -> TrainingSetRecord:
        from mlops_lite.features.records import TrainingSetRecord

        return _as(self._remote.request("GET", f"/v1/features/training-sets/{_segment(id)}"), TrainingSetRecord)

    def training_sets(self, service: str | None = None) -> builtins.list[TrainingSetRecord]:
        from mlops_lite.features.records import TrainingSetRecord

        params = None if service is None else {"service": service}
        return _as(self._remote.request("GET", "/v1/features/training-sets", params=params),
                   builtins.list[TrainingSetRecord])

    def training_set_table(self, id: str) -> Any:
        """The training set's rows (a pyarrow Table), as the server stored them."""
        import io

        import pyarrow.parquet as pq

        data = self._remote.request_bytes("GET", f"/v1/features/training-sets/{_segment(id)}/parquet")
        return pq.read_table(io.BytesIO(data))

    # --- materialization and lookups -----------------------------------------------------------
    def materialize(self, views: Sequence[str] | None = None, *, ref: str = "main", mode: str = "incremental",
                    as_of: datetime | str | None = None) -> builtins.list[MaterializationRecord]:
        from mlops_lite.features.records import MaterializationRecord

        body = self._remote.request("POST", "/v1/features/materialize", json={
            "views": None if views is None else builtins.list(views), "ref": ref, "mode": mode,
            "as_of": _iso(as_of)})
        return _as(body, builtins.list[MaterializationRecord])

    def materializations(self, view: str | None = None, *, limit: int = 50) -> builtins.list[MaterializationRecord]:
        from mlops_lite.features.records import MaterializationRecord

        params: dict[str, Any] = {"limit": limit}
        if view is not None:
            params["view"] = view
        return _as(self._remote.request("GET", "/v1/features/materializations", params=params),
                   builtins.list[MaterializationRecord])

    def online(self, service: str, entities: Sequence[Mapping[str, Any]], *, at: datetime | str | None = None,
               log: bool = True, deployment: str | None = None, version: str | None = None) -> OnlineFeatures:
        """A lookup on the server (which logs what it serves: ``log``, ``deployment`` and
        ``version`` are the in-process caller's, and are refused here when set)."""
        from mlops_lite.features.records import OnlineFeatures

        for name, value, default in (("log", log, True), ("deployment", deployment, None),
                                     ("version", version, None)):
            if value != default:
                raise InvalidInput(f"{name} is chosen by the server for a remote lookup", field=name,
                                   expected=f"{default!r} over HTTP")
        body = self._remote.request("POST", f"/v1/features/{_segment(service)}", json={
            "entities": _rows(entities), "at": _iso(at)})
        return _as(body, OnlineFeatures)

    def predict(self, deployment: str, entities: Sequence[Mapping[str, Any]], *, key: str | None = None) -> Prediction:
        payload: dict[str, Any] = {"entities": _rows(entities)}
        if key is not None:
            payload["key"] = key
        body = self._remote.request("POST", f"/v1/deployments/{_segment(deployment)}/predict", json=payload)
        return _as(body, Prediction)

    # --- governance ----------------------------------------------------------------------------
    def allow(self, deployment: str, *, reason: str) -> FeatureOverrideRecord:
        from mlops_lite.features.records import FeatureOverrideRecord

        body = self._remote.request("POST", f"/v1/deployments/{_segment(deployment)}/features/allow",
                                    json={"reason": reason})
        return _as(body, FeatureOverrideRecord)

    def check_skew(self, service: str, *, sample: int = 200, since: datetime | str | None = None,
                   alert: bool = True) -> SkewReport:
        from mlops_lite.features.records import SkewReport

        if not alert:
            raise InvalidInput("the server always raises or resolves the feature-skew alert", field="alert",
                               expected="True over HTTP")
        body = self._remote.request("POST", f"/v1/features/services/{_segment(service)}/skew",
                                    json={"sample": sample, "since": _iso(since)})
        return _as(body, SkewReport)


def _rows(entities: Sequence[Mapping[str, Any]]) -> Any:
    """The rows as JSON takes them; anything else is sent as it is, for the server to refuse
    with the field named (the same InvalidInput the local facet raises)."""
    if isinstance(entities, Sequence) and not isinstance(entities, str | bytes):
        return [dict(row) if isinstance(row, Mapping) else row for row in entities]
    return entities
