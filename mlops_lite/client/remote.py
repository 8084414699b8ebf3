"""RemotePlatform: the Platform's facets over HTTP to a running ``mlops-lite up``.

Same method names, same records, same errors: a JSON error body's ``code`` is
turned back into the matching class of the error tree.
"""

from __future__ import annotations

import builtins
import threading
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import msgspec

from mlops_lite import errors
from mlops_lite.client.alerts import RemoteAlerts
from mlops_lite.client.audit import RemoteAudit
from mlops_lite.client.compliance import RemoteCompliance
from mlops_lite.client.features import RemoteFeatures
from mlops_lite.client.flows import RemoteFlows
from mlops_lite.client.keys import RemoteKeys
from mlops_lite.client.monitoring import RemoteMonitoring
from mlops_lite.client.policy import RemotePolicy
from mlops_lite.client.registry import RemoteRegistry
from mlops_lite.client.tokens import RemoteTokens
from mlops_lite.client.tracking import RemoteTracking
from mlops_lite.records import (
    DeploymentLineage,
    DeploymentRecord,
    DeploymentRevisionRecord,
    Prediction,
    RunRecord,
)

if TYPE_CHECKING:
    from mlops_lite.client.credentials import TokenSource
    from mlops_lite.records import Identity
    from mlops_lite.security.tls import ClientTLS

T = TypeVar("T")

_BY_CODE: dict[str, type[errors.MlopsLiteError]] = {
    cls.code: cls for cls in (errors.NotFound, errors.Conflict, errors.InvalidInput, errors.Unauthenticated,
                              errors.PermissionDenied, errors.PolicyViolation, errors.BackendUnavailable,
                              errors.StoreLocked, errors.MissingDependency, errors.IntegrityError)
}


class RemotePlatform:
    remote = True

    def __init__(self, url: str, token: str | None, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, parity_tolerance: float = 1e-4,
                 credentials: TokenSource | None = None, tls: ClientTLS | None = None) -> None:
        """``credentials``: a stored login (mlops_lite/client/credentials.py) whose bearer is
        taken before each request (refreshed when it expires soon) and refreshed once after a
        401, the request then sent again; ``token`` is its bearer now.

        ``tls``: what an https server is verified against (and the client certificate to
        present); by default the settings' (``ca_bundle``, else the home's CA)."""
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if tls is None and self.url.lower().startswith("https://"):
            from mlops_lite.config import load_settings
            from mlops_lite.security.tls import client_tls

            tls = client_tls(load_settings())
        self.tls = tls
        verify = tls.verify(self.url) if tls is not None else True
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport,
                                  verify=verify)
        self._token = token
        self._credentials = credentials
        # The data and privacy facets are built on first use: they load pyarrow, the lakeFS
        # client and the anonymizer, which a command that only reads the registry never needs.
        self._lazy = threading.Lock()
        self._data: Any = None
        self._privacy: Any = None
        self.registry = RemoteRegistry(self)
        self.policy = RemotePolicy(self)
        self.deployments = _Deployments(self)
        self.monitoring = RemoteMonitoring(self)
        self.alerts = RemoteAlerts(self)
        self.audit = RemoteAudit(self)
        self.tracking = RemoteTracking(self)
        self.tokens = RemoteTokens(self)
        self.keys = RemoteKeys(self)
        self.compliance = RemoteCompliance(self)
        self.training = _Training(self, parity_tolerance)
        self.loop = _Loop(self)
        self.flows = RemoteFlows(self)
        self.features = RemoteFeatures(self)

    @property
    def data(self) -> Any:
        """The data facet: the server's lakeFS-compatible API and its /v1 data routes
        (mlops_lite/client/data.py), with this same token."""
        with self._lazy:
            if self._data is None:
                from mlops_lite.client.data import RemoteData

                self._data = RemoteData(self, self._token)
            return self._data

    @property
    def privacy(self) -> Any:
        """Anonymization here, before anything is uploaded: the key comes from
        MLOPS_LITE_ANONYMIZATION_KEY; the patterns from the repository on the server.
        Erasure, export and retention run on the server."""
        data = self.data
        with self._lazy:
            if self._privacy is None:
                from mlops_lite.client.privacy import RemoteRights
                from mlops_lite.privacy.facet import Privacy
                from mlops_lite.security.anonymize import Anonymizer, key_from_env

                self._privacy = Privacy(Anonymizer(key_from_env()), data, RemoteRights(self))
            return self._privacy

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                content: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
        """One request; its JSON answer, or the error tree's exception for an error."""
        return self._send(method, path, json=json, params=params, content=content, headers=headers).json()

    def request_bytes(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                      headers: dict[str, str] | None = None) -> bytes:
        """One request; its raw answer (an artifact, an ONNX file, an Arrow stream)."""
        return self._send(method, path, json=json, params=params, content=None, headers=headers).content

    def bearer(self) -> str | None:
        """The bearer to send now: a stored login's, refreshed when it expires within 30 s;
        else the token this client was made with."""
        if self._credentials is not None:
            self._token = self._credentials.token()
        return self._token

    def _send(self, method: str, path: str, *, json: Any, params: dict[str, Any] | None, content: bytes | None,
              headers: dict[str, str] | None) -> httpx.Response:
        if self._credentials is None:
            response = self._request(method, path, json=json, params=params, content=content, headers=headers)
        else:
            self._token = self._credentials.token()
            response = self._request(method, path, json=json, params=params, content=content,
                                     headers={**(headers or {}), "Authorization": f"Bearer {self._token}"})
            if response.status_code == 401:
                fresh = self._credentials.refresh()
                if fresh and fresh != self._token:
                    self._token = fresh
                    response = self._request(method, path, json=json, params=params, content=content,
                                             headers={**(headers or {}), "Authorization": f"Bearer {fresh}"})
        if response.is_success:
            return response
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text}
        cls = _BY_CODE.get(str(body.get("code")), errors.MlopsLiteError)
        message = str(body.pop("message", f"HTTP {response.status_code}"))
        body.pop("code", None)
        if cls is errors.StoreLocked:
            raise errors.StoreLocked(message, pid=body.get("pid"), url=body.get("url"))
        if cls is errors.InvalidInput:
            raise errors.InvalidInput(message, field=body.pop("field", None), expected=body.pop("expected", None),
                                      details=body)
        raise cls(message, details=body)

    def _request(self, method: str, path: str, *, json: Any, params: dict[str, Any] | None,
                 content: bytes | None, headers: dict[str, str] | None) -> httpx.Response:
        try:
            return self._http.request(method, path, json=json, params=params, content=content, headers=headers)
        except httpx.HTTPError as exc:
            from mlops_lite.security.tls import explain_tls_failure

            reason = explain_tls_failure(exc, self.url, client_certificate=bool(self.tls and self.tls.cert_file)) \
                if self.url.lower().startswith("https://") else None
            raise errors.BackendUnavailable(f"cannot reach mlops-lite at {self.url}: {reason or exc}") from exc

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = self.request("GET", "/v1/status")
        return summary

    def whoami(self) -> Identity:
        """The token's identity, as the server sees it (``GET /v1/whoami``)."""
        from mlops_lite.records import Grant, Identity

        body: dict[str, Any] = self.request("GET", "/v1/whoami")
        return Identity(name=str(body["name"]), role=str(body["role"]), token_id=body.get("token_id"),
                        kind=str(body.get("kind", "token")), issuer=body.get("issuer"), subject=body.get("subject"),
                        grants=tuple(Grant(role=g["role"], models=g.get("models"), repositories=g.get("repositories"))
                                     for g in body.get("grants") or ()))

    def close(self) -> None:
        try:
            self.tracking.close()  # send what open runs still buffer, while the connection is open
        finally:
            if self._data is not None:
                self._data.close()
            self._http.close()

    def __enter__(self) -> RemotePlatform:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _convert(data: Any, type_: type[T]) -> T:
    return msgspec.convert(data, type=type_, strict=False)


class _Deployments:
    def __init__(self, remote: RemotePlatform) -> None:
        self._remote = remote

    def list(self) -> list[DeploymentRecord]:
        return _convert(self._remote.request("GET", "/v1/deployments"), list[DeploymentRecord])

    def get(self, name: str) -> DeploymentRecord:
        return _convert(self._remote.request("GET", f"/v1/deployments/{name}"), DeploymentRecord)

    def revisions(self, name: str) -> builtins.list[DeploymentRevisionRecord]:
        return _convert(self._remote.request("GET", f"/v1/deployments/{name}/revisions"),
                        list[DeploymentRevisionRecord])

    def deploy(self, name: str, model: str, version: str, *, reason: str = "") -> DeploymentRecord:
        body = self._remote.request("PUT", f"/v1/deployments/{name}",
                                    json={"model": model, "version": version, "reason": reason})
        return _convert(body, DeploymentRecord)

    def _change(self, name: str, verb: str, body: dict[str, Any]) -> DeploymentRecord:
        return _convert(self._remote.request("POST", f"/v1/deployments/{name}/{verb}", json=body), DeploymentRecord)

    def canary(self, name: str, model: str, version: str, *, weight: float = 0.1,
               reason: str = "") -> DeploymentRecord:
        return self._change(name, "canary", {"model": model, "version": version, "weight": weight, "reason": reason})

    def shadow(self, name: str, model: str, version: str, *, reason: str = "") -> DeploymentRecord:
        return self._change(name, "shadow", {"model": model, "version": version, "reason": reason})

    def stage(self, name: str, model: str, version: str, *, reason: str = "") -> DeploymentRecord:
        return self._change(name, "stage", {"model": model, "version": version, "reason": reason})

    def switch(self, name: str, *, reason: str = "") -> DeploymentRecord:
        return self._change(name, "switch", {"reason": reason})

    def promote(self, name: str, *, reason: str = "") -> DeploymentRecord:
        return self._change(name, "promote", {"reason": reason})

    def rollback(self, name: str, *, to_revision: int | None = None, reason: str = "") -> DeploymentRecord:
        return self._change(name, "rollback", {"to_revision": to_revision, "reason": reason})

    def predict(self, name: str, instances: Any, *, key: str | None = None) -> Prediction:
        payload: dict[str, Any] = {"instances": instances}
        if key is not None:
            payload["key"] = key
        body = self._remote.request("POST", f"/v1/deployments/{name}/predict", json=payload)
        return _convert(body, Prediction)

    def lineage(self, name: str, at: datetime | str | None = None) -> DeploymentLineage:
        params = {"at": at.isoformat() if isinstance(at, datetime) else at} if at is not None else None
        return _convert(self._remote.request("GET", f"/v1/deployments/{name}/lineage", params=params),
                        DeploymentLineage)

    def routing(self) -> builtins.list[tuple[DeploymentRecord, dict[str, Any]]]:
        """Every deployment with the signatures of its versions (what a serving process polls)."""
        body = self._remote.request("GET", "/v1/routing")
        return [(_convert(item["record"], DeploymentRecord), item["signatures"]) for item in body["deployments"]]


def _iso(moment: datetime | str | None) -> str | None:
    return moment.isoformat() if isinstance(moment, datetime) else moment


class _Loop:
    """``platform.loop`` over HTTP: the same steps, answered by the daemon that owns the
    prediction log, the sessions and the alert rules."""

    def __init__(self, remote: RemotePlatform) -> None:
        self._remote = remote

    def check(self, deployment: str, *, since: datetime | str | None = None,
              debounce_s: float = 600.0) -> dict[str, Any]:
        return dict(self._remote.request("POST", f"/v1/deployments/{deployment}/monitor",
                                         json={"since": _iso(since), "debounce_s": debounce_s}))

    def should_retrain(self, deployment: str, *, now: datetime | str | None = None,
                       debounce_s: float = 600.0) -> dict[str, Any]:
        return dict(self._remote.request("POST", f"/v1/deployments/{deployment}/should-retrain",
                                         json={"now": _iso(now), "debounce_s": debounce_s}))

    def gate(self, deployment: str, model: str, version: str, *, since: datetime | str | None = None,
             target: str = "label", min_rows: int = 30) -> dict[str, Any]:
        return dict(self._remote.request("POST", f"/v1/deployments/{deployment}/gate", json={
            "model": model, "version": version, "since": _iso(since), "target": target, "min_rows": min_rows}))

    def block(self, deployment: str, model: str, version: str, reasons: list[str],
              scores: dict[str, Any] | None = None) -> None:
        self._remote.request("POST", f"/v1/deployments/{deployment}/block", json={
            "model": model, "version": version, "reasons": list(reasons), "scores": dict(scores or {})})

    def judge_canary(self, deployment: str, *, since: datetime | str, min_requests: int = 20) -> dict[str, Any]:
        return dict(self._remote.request("POST", f"/v1/deployments/{deployment}/judge-canary",
                                         json={"since": _iso(since), "min_requests": min_requests}))

    def finish(self, deployment: str, decision: str, reasons: list[str]) -> dict[str, Any]:
        return dict(self._remote.request("POST", f"/v1/deployments/{deployment}/finish",
                                         json={"decision": decision, "reasons": list(reasons)}))

    def flow_finished(self, flow: str, *, failed: bool, details: dict[str, Any] | None = None) -> None:
        self._remote.request("POST", f"/v1/flows/{flow}/finished",
                             json={"failed": failed, "details": dict(details or {})})

    def request_retrain(self, deployment: str, *, reason: str = "") -> dict[str, Any]:
        """The server records the request as the token's identity."""
        return dict(self._remote.request("POST", f"/v1/deployments/{deployment}/retrain",
                                         json={"reason": reason}))


class _Training:
    """``platform.training`` for a remote platform: the model trains here (on the worker
    or GPU host that runs this code), reading its data commit over the lakeFS-compatible
    API; the finished run (params, metrics, ONNX model) is recorded on the server in one
    request, so a crash mid-training records nothing."""

    def __init__(self, remote: RemotePlatform, parity_tolerance: float) -> None:
        self._remote = remote
        self._parity_tolerance = parity_tolerance

    def train(self, repository: str, ref: str, path: str, spec: Any, *, run_name: str | None = None,
              experiment: str = "default", actor: str | None = None) -> Any:
        import os
        import socket

        from mlops_lite.training.classifier import train_classifier
        from mlops_lite.training.service import refuse_uncommitted

        repo = self._remote.data.repo(repository)
        refuse_uncommitted(repo, repository, ref, path)
        read = repo.ref(ref).read_table(path)
        spec.validate(read.table)
        model = train_classifier(read.table, spec, parity_tolerance=self._parity_tolerance)
        return self.record(run_name or f"train-{spec.algorithm}", data_commit=read.commit, experiment=experiment,
                           tags={"repository": repository, "path": path, "ref": ref,
                                 "trained_on_host": socket.gethostname(), "trained_by_pid": str(os.getpid())},
                           params=model.params, metrics=model.metrics, onnx=model.onnx, signature=model.signature)

    def train_features(self, service: str, repository: str, ref: str, path: str, spec: Any = None, *,
                       target: str | None = None, timestamp_field: str = "event_timestamp",
                       exclude: tuple[str, ...] = (), run_name: str | None = None, experiment: str = "default",
                       actor: str | None = None) -> Any:
        """The server builds the point-in-time training set (it owns the feature store); the
        model trains here on the rows local training keeps, and the run is recorded with the
        same tags and signature."""
        from mlops_lite.features.facet import trainable_rows
        from mlops_lite.training.classifier import train_classifier
        from mlops_lite.training.service import feature_service_signature, feature_service_tags, feature_spec

        features = self._remote.features
        record = features.training_set(service, repository=repository, path=path, ref=ref,
                                       timestamp_field=timestamp_field)
        table = features.training_set_table(record.id)
        described = features.service(service, record.service_version)
        spec = feature_spec(table, spec, target=target, join_keys=dict(described.join_keys),
                            timestamp_field=timestamp_field, exclude=exclude)
        rows = trainable_rows(table, described.features, (*spec.numeric, *spec.categorical))
        spec.validate(rows)
        model = train_classifier(rows, spec, parity_tolerance=self._parity_tolerance)
        return self.record(run_name or f"train-{spec.algorithm}",
                           data_commit=record.commits.get(repository) or next(iter(record.commits.values())),
                           experiment=experiment,
                           tags=feature_service_tags(record, repository=repository, path=path, ref=ref),
                           params=model.params,
                           metrics={**model.metrics, "rows_without_features": float(table.num_rows - rows.num_rows)},
                           onnx=model.onnx,
                           signature=feature_service_signature(model.signature, record,
                                                               join_keys=dict(described.join_keys)))

    def record(self, name: str, *, data_commit: str, tags: dict[str, str], params: dict[str, Any],
               metrics: dict[str, float], onnx: bytes, signature: dict[str, Any], experiment: str = "default",
               actor: str | None = None) -> Any:
        """Record a model trained here as one finished run on the server (POST /v1/runs)."""
        import base64

        from mlops_lite.training.service import TrainingResult

        body = self._remote.request("POST", "/v1/runs", json={
            "name": name, "experiment": experiment, "data_commit": data_commit, "tags": dict(tags),
            "params": {k: str(v) for k, v in params.items()},  # params are kept as text, as locally
            "metrics": dict(metrics), "onnx": base64.b64encode(onnx).decode(), "signature": signature})
        return TrainingResult(run=_convert(body["run"], RunRecord), data_commit=body["data_commit"],
                              model_digest=body["model_digest"], signature=signature, metrics=dict(metrics))
