"""Inference-only server processes: ``mlops-lite serve --workers N``.

Each worker is stateless: it reads no metadata database. It polls the control plane
(a running ``mlops-lite up``) for ``GET /v1/routing`` (every deployment and the
signatures of its versions), loads ONNX files by digest from the home's
content-addressed store (verified), and swaps routes as revisions change, loading
and warming off the request path. Bearer tokens are checked with the control plane
(``GET /v1/whoami``) and cached for a short while. Predictions are logged to the
home's Parquet prediction log, which every worker may write (one file per batch).

The routes are the control plane's own handlers (native predict and feedback, the
Open Inference Protocol, /metrics), over a platform that has only what they need.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import httpx
from litestar import Litestar, Router
from litestar.openapi import OpenAPIConfig

import mlops_lite
from mlops_lite.config import load_settings
from mlops_lite.errors import BackendUnavailable, Unauthenticated
from mlops_lite.inference.pipeline import PredictionPipeline, PredictionRecorder
from mlops_lite.inference.routing import Route, ServingStats
from mlops_lite.inference.routing import Router as ModelRouter
from mlops_lite.inference.session import choose_providers
from mlops_lite.monitoring import Monitoring
from mlops_lite.objects import ObjectStore
from mlops_lite.privacy.protection import open_protection
from mlops_lite.records import DeploymentRecord, Grant, Identity, Prediction
from mlops_lite.security.tls import client_tls

log = logging.getLogger("mlops_lite.serve")

TOKEN_TTL_S = 30.0
# A token the control plane refused is refused here, without asking again, for this long,
# and at most this many are remembered (the oldest forgotten first): a flood of bad tokens
# costs the control plane one question per token and per REFUSED_TTL_S, not one per request.
REFUSED_TTL_S = 10.0
REFUSED_MAX = 10_000


def identity_of(body: dict[str, Any]) -> Identity:
    """The Identity /v1/whoami describes: its kind, issuer, subject and grants too, so a
    replica names the same principal (``oidc:ISSUER#SUB``) and applies the same grants."""
    grants = tuple(Grant(role=g["role"], models=g.get("models"), repositories=g.get("repositories"))
                   for g in body.get("grants") or ())
    return Identity(name=body["name"], role=body["role"], token_id=body.get("token_id"),
                    kind=body.get("kind") or "token", issuer=body.get("issuer"), subject=body.get("subject"),
                    grants=grants)


class RemoteTokens:
    """Bearer tokens checked with the control plane: an accepted one cached for
    ``TOKEN_TTL_S``, a refused one for ``REFUSED_TTL_S`` (at most ``REFUSED_MAX``)."""

    def __init__(self, client: httpx.Client, *, refused_ttl_s: float = REFUSED_TTL_S,
                 refused_max: int = REFUSED_MAX) -> None:
        self._client = client
        self._cache: dict[str, tuple[float, Identity]] = {}
        self._refused: OrderedDict[str, float] = OrderedDict()  # sha256 of the secret -> refused until
        self._refused_ttl_s = refused_ttl_s
        self._refused_max = refused_max
        self._lock = threading.Lock()

    def cached(self, secret: str) -> Identity | None:
        """The identity of a token accepted within ``TOKEN_TTL_S``, or None. Raises
        Unauthenticated, on the spot, for one the control plane refused within
        ``REFUSED_TTL_S``."""
        key = hashlib.sha256(secret.encode()).hexdigest()
        self._check_refused(key)
        hit = self._cache.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def _check_refused(self, key: str) -> None:
        until = self._refused.get(key)
        if until is None:
            return
        if until > time.monotonic():
            raise Unauthenticated("the token is not valid")
        with self._lock:
            self._refused.pop(key, None)

    def _refuse(self, key: str) -> None:
        with self._lock:
            self._refused.pop(key, None)
            self._refused[key] = time.monotonic() + self._refused_ttl_s
            while len(self._refused) > self._refused_max:
                self._refused.popitem(last=False)

    def authenticate(self, secret: str) -> Identity:
        key = hashlib.sha256(secret.encode()).hexdigest()
        self._check_refused(key)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        try:
            response = self._client.get("/v1/whoami", headers={"Authorization": f"Bearer {secret}"})
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"the control plane at {self._client.base_url} cannot be reached: {exc}") from exc
        if response.status_code in (401, 403):
            self._refuse(key)
            raise Unauthenticated("the token is not valid")
        if response.status_code != 200:
            raise BackendUnavailable(f"the control plane answered {response.status_code} to /v1/whoami")
        identity = identity_of(response.json())
        with self._lock:
            self._cache[key] = (time.monotonic() + TOKEN_TTL_S, identity)
        return identity


class ServingDeployments:
    """What the predict, OIP and metrics routes use of ``platform.deployments``: the same
    prediction pipeline, over routes polled from the control plane."""

    def __init__(self, router: ModelRouter, recorder: PredictionRecorder) -> None:
        self.router = router
        self.records: dict[str, DeploymentRecord] | None = None  # None until the first routing fetch
        self.errors: dict[str, str] = {}
        self.pipeline = PredictionPipeline(router, self.route, recorder)

    @property
    def providers(self) -> list[str]:
        return list(self.router.providers)

    def list(self) -> list[DeploymentRecord]:
        if self.records is None:
            raise BackendUnavailable("this server has not yet fetched its routes from the control plane")
        return sorted(self.records.values(), key=lambda r: r.name)

    def route(self, name: str) -> Route:
        if name in self.errors:
            raise BackendUnavailable(f"deployment {name!r} is not loaded here: {self.errors[name]}")
        return self.router.get(name)

    def predict(self, name: str, instances: Any, *, key: str | None = None) -> Prediction:
        """As ``platform.deployments.predict``: answered and logged by the same pipeline."""
        return self.pipeline.predict(name, instances, key=key)

    def serving_stats(self) -> ServingStats:
        return self.router.stats()


class ServingPlatform:
    """A worker's platform: routes polled from the control plane, models from the
    content-addressed store, the Parquet prediction log; no metadata database."""

    remote = False

    def __init__(self, control_url: str, token: str, *, poll_s: float = 1.0) -> None:
        settings = load_settings()
        self.settings = settings
        # An https control plane is verified against ca_bundle (else the home's CA); a
        # replica's certificate (tls_client_cert) is presented where mutual TLS is asked.
        verify = client_tls(settings).verify(control_url)
        self._client = httpx.Client(base_url=control_url, timeout=10.0, verify=verify,
                                    headers={"Authorization": f"Bearer {token}"})
        self._poll_client = httpx.Client(base_url=control_url, timeout=10.0, verify=verify,
                                         headers={"Authorization": f"Bearer {token}"})
        protection = open_protection(settings)  # an encrypted home's keys (the keyring is the home's)
        objects = ObjectStore(settings.objects_dir / "artifacts", protection.object_cipher())
        self.monitoring = Monitoring(settings.home, log_key=protection.log_key())
        router = ModelRouter(objects.get_bytes, providers=choose_providers(settings.execution_provider),
                             intra_op_threads=settings.intra_op_threads, max_batch_size=settings.max_batch_size,
                             on_shadow=self.monitoring.record)
        self.deployments = ServingDeployments(router, self.monitoring)
        self.tokens = RemoteTokens(httpx.Client(base_url=control_url, timeout=10.0, verify=verify))
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="mlops-lite-routing", daemon=True)
        self._thread.start()

    def sync(self) -> None:
        """Fetch the routes and apply what changed (loading off the request path)."""
        body = self._poll_client.get("/v1/routing").raise_for_status().json()
        seen: dict[str, DeploymentRecord] = {}
        router = self.deployments.router
        for item in body["deployments"]:
            raw = item["record"]
            record = DeploymentRecord(**{**raw, "updated_at": _time(raw["updated_at"])})
            seen[record.name] = record
            current = router.route(record.name)
            if current is not None and current.record.revision == record.revision:
                continue
            try:
                router.apply(record, item["signatures"])
                self.deployments.errors.pop(record.name, None)
            except Exception as exc:  # the previous route, if any, keeps serving
                log.error("deployment %s revision %s could not be loaded: %s", record.name, record.revision, exc)
                if current is None:
                    self.deployments.errors[record.name] = str(exc)
        for name in set(router.routes()) - set(seen):
            router.remove(name)
        self.deployments.records = seen

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as exc:
                log.warning("routing poll failed (serving the last routes): %s", exc)
            self._stop.wait(self._poll_s)

    def summary(self) -> dict[str, Any]:
        return {"home": str(self.settings.home), "deployments": len(self.deployments.router.routes()),
                "execution_providers": self.deployments.providers}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.deployments.router.close()
        self.monitoring.close()
        self._client.close()
        self._poll_client.close()


def _time(value: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def build_serving_app(platform: ServingPlatform) -> Litestar:
    from server.app import _error, health, metrics_endpoint, predict, public_or_viewer
    from server.auth import authorize
    from server.hardening import BodyLimit, security_headers
    from server.metrics import Metrics
    from server.monitoring import feedback
    from server.oip import oip_router

    api = Router(path="/v1", guards=[authorize], route_handlers=[health, predict, feedback])
    app = Litestar(route_handlers=[api, oip_router(guards=[authorize]), metrics_endpoint],
                   exception_handlers={Exception: _error},
                   openapi_config=OpenAPIConfig(title="mlops-lite serve", version=mlops_lite.__version__,
                                                openapi_router=Router(path="/schema", route_handlers=[],
                                                                      guards=[public_or_viewer],
                                                                      opt={"permission": "viewer"})),
                   request_max_body_size=None, middleware=[BodyLimit], before_send=[security_headers],
                   on_shutdown=[platform.close], debug=False, logging_config=None)
    app.state.platform = platform
    app.state.metrics = Metrics()
    return app


def create_serving_app() -> Litestar:
    """The uvicorn factory each worker calls (``mlops-lite serve`` sets the environment)."""
    url = os.environ["MLOPS_LITE_SERVE_CONTROL_URL"]
    token = os.environ["MLOPS_LITE_SERVE_TOKEN"]
    poll_s = float(os.environ.get("MLOPS_LITE_SERVE_POLL_S", "1.0"))
    return build_serving_app(ServingPlatform(url, token, poll_s=poll_s))


if TYPE_CHECKING:
    from mlops_lite.api import ServingAPI

    def _a_worker_is_a_serving_api(platform: ServingPlatform) -> ServingAPI:
        """mypy's proof that a stateless worker offers the serving subset of the Platform API."""
        return platform
