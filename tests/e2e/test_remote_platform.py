"""RemotePlatform against a real server: the same records and the same errors as the
local Platform it serves."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

import mlops_lite
from mlops_lite.client import RemotePlatform
from tests.conftest import holdout_rows

COUNTS = ("data_repositories", "runs", "models", "model_versions", "deployments", "audit_events")


@pytest.fixture(scope="module")
def served(loop: tuple[Any, str, Any]) -> Iterator[tuple[Any, str, str, Any]]:
    """(local platform, server url, admin token, spec)."""
    from server import create_app
    from server.runner import serve_in_thread

    platform, token, spec = loop
    server = serve_in_thread(create_app(platform))
    try:
        yield platform, server.url, token, spec
    finally:
        server.stop()


@pytest.fixture
def remote(served: tuple[Any, str, str, Any]) -> Iterator[RemotePlatform]:
    _, url, token, _ = served
    with RemotePlatform(url, token) as client:
        yield client


@pytest.fixture
def local(served: tuple[Any, str, str, Any]) -> Any:
    return served[0]


def test_summary_counts_equal_local(remote: RemotePlatform, local: Any) -> None:
    got, want = remote.summary(), local.summary()
    assert {key: got[key] for key in COUNTS} == {key: want[key] for key in COUNTS}


def test_wrong_token_is_unauthenticated(served: tuple[Any, str, str, Any]) -> None:
    with RemotePlatform(served[1], "mll_not-a-real-token") as client, pytest.raises(mlops_lite.Unauthenticated):
        client.registry.list_models()
    with RemotePlatform(served[1], None) as client, pytest.raises(mlops_lite.Unauthenticated):
        client.deployments.list()


def test_viewer_deploy_is_permission_denied(local: Any, served: tuple[Any, str, str, Any]) -> None:
    _, secret = local.tokens.create("remote-viewer", "viewer")
    before = local.deployments.get("loans")
    with RemotePlatform(served[1], secret) as viewer:
        assert viewer.deployments.list() == local.deployments.list()
        with pytest.raises(mlops_lite.PermissionDenied) as error:
            viewer.deployments.deploy("loans", "loan-default", "1.0.0")
    assert error.value.details == {"needed": "operator", "role": "viewer"}
    assert local.deployments.get("loans") == before


def test_nothing_listening_is_backend_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The port is free again: nothing listens there.
    with RemotePlatform(f"http://127.0.0.1:{port}", "mll_x", timeout=5) as client:
        with pytest.raises(mlops_lite.BackendUnavailable, match=str(port)):
            client.registry.list_models()


def test_connect_with_a_url_returns_a_remote_platform(remote: RemotePlatform, served: tuple[Any, str, str, Any]
                                                      ) -> None:
    _, url, token, _ = served
    platform = mlops_lite.connect(url=url, token=token)
    try:
        assert isinstance(platform, RemotePlatform)
        assert platform.remote is True
        assert platform.url == url
        assert platform.deployments.list() == remote.deployments.list()
    finally:
        platform.close()


def test_the_data_facet_over_http_sees_and_changes_the_same_store(remote: RemotePlatform, local: Any) -> None:
    repo = remote.data.repo("remote-data")
    repo.create(classification="internal", exist_ok=True)
    dev = repo.branch("dev")
    dev.create("main", exist_ok=True)
    dev.upload("notes/a.txt", b"over http")
    commit = dev.commit("from a remote client")
    merged = dev.merge_into("main")
    assert local.data.repo("remote-data").branch("dev").head().id == commit.id
    assert local.data.repo("remote-data").ref("main").read_bytes("notes/a.txt") == b"over http"
    assert remote.data.repo("remote-data").ref(merged.id).stat("notes/a.txt").digest == \
        local.data.repo("remote-data").ref("main").stat("notes/a.txt").digest
    with pytest.raises(mlops_lite.PolicyViolation):
        repo.branch("main").upload("x.txt", b"direct to main")


def test_alerts_over_http_equal_local(remote: RemotePlatform, local: Any) -> None:
    from mlops_lite.alerts import Observation

    (fired,) = local.alerts.evaluate([Observation("quality.accuracy", "loans", 0.5, {"labelled": 80})])
    try:
        listed = remote.alerts.list(state="firing")
        assert listed == local.alerts.list(state="firing")
        assert listed[0].id == fired.alert.id and listed[0].evidence == {"labelled": 80}
        acked = remote.alerts.acknowledge(fired.alert.id)
        assert acked.acknowledged_by and acked == local.alerts.get(fired.alert.id)
    finally:
        local.alerts.evaluate([Observation("quality.accuracy", "loans", 0.9, {})])


def test_recording_a_run_refuses_bad_input_and_records_nothing(local: Any, served: tuple[Any, str, str, Any]) -> None:
    import base64

    import httpx

    _, url, token, _ = served
    body = {"name": "x", "data_commit": local.data.repo("loans").ref("main").resolve(),
            "tags": {"repository": "loans"}, "params": {}, "metrics": {"roc_auc": 0.7},
            "onnx": base64.b64encode(b"not empty").decode(), "signature": {"inputs": [], "classes": [0, 1]}}
    before = local.tracking.count()
    headers = {"Authorization": f"Bearer {token}"}
    for change, status, field in ((dict(data_commit="0" * 64), 404, None), (dict(data_commit="main"), 422, "data_commit"),
                                  (dict(tags={}), 422, "tags.repository"), (dict(onnx=""), 422, "artifacts.model.onnx"),
                                  (dict(signature={"inputs": []}), 422, "signature.classes"),
                                  (dict(metrics={"roc_auc": "high"}), 422, "metrics")):
        answer = httpx.post(f"{url}/v1/runs", json={**body, **change}, headers=headers, timeout=30)
        assert answer.status_code == status, (change, answer.text)
        if field is not None:
            assert answer.json()["field"].startswith(field), answer.json()
    assert local.tracking.count() == before


def test_failed_requests_feed_the_error_rate_and_its_alert(remote: RemotePlatform, local: Any,
                                                          served: tuple[Any, str, str, Any]) -> None:
    """422s on a served deployment are counted (by slot and status) and a monitoring window
    turns them into ``errors.rate``, which the ``error-rate-high`` rule watches."""
    from datetime import UTC, datetime

    import httpx

    _, url, token, spec = served
    # Earlier tests of this module served requests a moment ago, and failed requests are
    # counted per second (the error log's buckets): after a second of quiet, start the window
    # on the next second boundary, so that it holds every bucket of this test and no other.
    time.sleep(1.0)
    time.sleep(1.0 - datetime.now(UTC).microsecond / 1e6)
    since = datetime.now(UTC).replace(microsecond=0)
    good = holdout_rows(spec, 1)[0]
    bad = {k: v for k, v in good.items() if k != "income"}
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(25):
        answer = httpx.post(f"{url}/v1/deployments/loans/predict", json={"instances": [bad]}, headers=headers)
        assert answer.status_code == 422
    for _ in range(3):
        assert httpx.post(f"{url}/v2/models/loans/infer", headers=headers, json={"inputs": []}).status_code >= 400
    checked = remote.loop.check("loans", since=since)
    assert checked["report"]["infra"]["errors"] == 28 and checked["report"]["infra"]["error_rate"] == 1.0
    assert checked["report"]["errors_by_status"]["422"] == 25
    assert checked["report"]["by_slot"]["primary"]["errors"] >= 25
    assert {"rule": "error-rate-high", "state": "pending", "value": 1.0} in checked["transitions"]
    alert = next(a for a in local.alerts.open_alerts() if a.rule == "error-rate-high")
    assert alert.evidence["errors"] == 28 and alert.evidence["by_status"]["422"] == 25

