"""RemotePlatform against a real server: the same records and the same errors as the
local Platform it serves."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

import mlops_lite
from mlops_lite.client import RemotePlatform
from mlops_lite.records import DeploymentRecord, Prediction
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


def test_list_deployments_equals_local(remote: RemotePlatform, local: Any) -> None:
    got = remote.deployments.list()
    assert got and all(type(record) is DeploymentRecord for record in got)
    assert got == local.deployments.list()


def test_summary_counts_equal_local(remote: RemotePlatform, local: Any) -> None:
    got, want = remote.summary(), local.summary()
    assert {key: got[key] for key in COUNTS} == {key: want[key] for key in COUNTS}


def test_predict_equals_local(remote: RemotePlatform, local: Any, served: tuple[Any, str, str, Any]) -> None:
    rows = holdout_rows(served[3], 25)
    got = remote.deployments.predict("loans", rows)
    assert type(got) is Prediction
    want = local.deployments.predict("loans", rows)
    assert got.request_id and got.request_id != want.request_id
    assert dataclasses.replace(got, request_id="") == dataclasses.replace(want, request_id="")


def test_deploy_over_remote_returns_the_local_record(remote: RemotePlatform, local: Any) -> None:
    before = local.deployments.get("loans")
    got = remote.deployments.deploy("loans", "loan-default", "1.0.0")
    assert type(got) is DeploymentRecord
    assert got.revision == before.revision + 1
    assert got == local.deployments.get("loans")


# ------------------------------------------------------------------------------------- errors


def test_unknown_deployment_is_not_found(remote: RemotePlatform, served: tuple[Any, str, str, Any]) -> None:
    with pytest.raises(mlops_lite.NotFound, match="nope"):
        remote.deployments.predict("nope", holdout_rows(served[3], 1))


def test_bad_feature_is_invalid_input_with_its_field(remote: RemotePlatform, local: Any,
                                                     served: tuple[Any, str, str, Any]) -> None:
    rows = holdout_rows(served[3], 2)
    rows[1]["income"] = "lots"
    with pytest.raises(mlops_lite.InvalidInput) as remote_error:
        remote.deployments.predict("loans", rows)
    with pytest.raises(mlops_lite.InvalidInput) as local_error:
        local.deployments.predict("loans", rows)
    assert remote_error.value.field == local_error.value.field == "instances[1].income"
    assert remote_error.value.expected == local_error.value.expected
    assert remote_error.value.message == local_error.value.message


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
    repo.create(exist_ok=True)
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


def test_alerts_and_releases_over_http_equal_local(remote: RemotePlatform, local: Any) -> None:
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
    assert remote.deployments.get("loans") == local.deployments.get("loans")
    assert remote.deployments.revisions("loans") == local.deployments.revisions("loans")
    window = remote.loop.check("loans")
    assert window["report"]["deployment"] == "loans" and "transitions" in window


def test_versions_and_tables_over_http_equal_local(remote: RemotePlatform, local: Any) -> None:
    """What a worker's flow reads: one version, and a table (by glob) at one commit."""
    assert remote.registry.get_version("loan-default", "1.0.0") == local.registry.get_version("loan-default", "1.0.0")
    with pytest.raises(mlops_lite.NotFound):
        remote.registry.get_version("loan-default", "9.9.9")
    got = remote.data.repo("loans").ref("main").read_table("loans/*.csv")
    want = local.data.repo("loans").ref("main").read_table("loans/*.csv")
    assert got.commit == want.commit and got.table.equals(want.table)
    with pytest.raises(mlops_lite.NotFound):
        remote.data.repo("loans").ref("main").read_table("nothing/*.csv")


def test_training_over_http_trains_here_and_records_one_run(remote: RemotePlatform, local: Any,
                                                            served: tuple[Any, str, str, Any]) -> None:
    """Remote training: the model trains in this process, the server records the finished
    run; registering it answers the version its digest already has, like local training."""
    import os

    spec = served[3]
    before = local.tracking.count()
    result = remote.training.train("loans", "main", "loans/train.csv", spec, run_name="remote-train")
    assert local.tracking.count() == before + 1
    run = local.tracking.get_run(result.run.id)
    assert run.status == "finished" and run.tags["trained_by_pid"] == str(os.getpid())
    assert run.metrics == pytest.approx(result.metrics) and run.params["algorithm"] == spec.algorithm
    assert local.tracking.read_artifact(run.id, "model.onnx")  # the ONNX bytes reached the server
    # the same data and spec give the same bytes as the local run behind 1.0.0
    assert remote.registry.register_from_run("loan-default", run.id).version == "1.0.0"


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


def test_loop_steps_over_http_refuse_bad_input(remote: RemotePlatform, local: Any) -> None:
    revisions = len(local.deployments.revisions("loans"))
    with pytest.raises(mlops_lite.InvalidInput) as bad:
        remote.loop.finish("loans", "maybe", [])
    assert bad.value.field == "decision"
    with pytest.raises(mlops_lite.InvalidInput) as bad:
        remote.loop.check("loans", since="yesterday")
    assert bad.value.field == "since"
    with pytest.raises(mlops_lite.NotFound):
        remote.loop.gate("no-such-deployment", "loan-default", "1.0.0")
    assert len(local.deployments.revisions("loans")) == revisions
    request = local.policy.request_promotion("loan-default", "1.0.0", requested_by="test", alias="staging")
    assert remote.policy.get_request(request.id) == local.policy.get_request(request.id)


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

