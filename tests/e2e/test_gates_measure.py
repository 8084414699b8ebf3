"""Over HTTP, the gates measure what an operator uploads: POST /v1/runs stores any ONNX
bytes and any metrics, and the production decision rests on the version scored by the
server on the held-out slice of its recorded data commit, with the claim beside it."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import pyarrow as pa
import pytest

from mlops_lite.training.classifier import TrainedModel, train_classifier

from ..conftest import build_loop

MODEL = "loan-default"
PATH = "loans/train.csv"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, str, Any]]:
    from server import create_app
    from server.runner import serve_in_thread

    platform, _, spec = build_loop(tmp_path_factory.mktemp("gates-measure") / "home")
    operator = platform.tokens.create("olga", "operator")[1]
    running = serve_in_thread(create_app(platform))
    try:
        yield platform, running.url, operator, spec
    finally:
        running.stop()
        platform.close()


def constant_model(table: pa.Table, spec: Any, value: float = 0.0) -> TrainedModel:
    """A model that answers the same for every row (ROC AUC 0.5): trained with every
    feature held at one value, so it learned the base rate and nothing else."""
    columns = {name: pa.array([value] * table.num_rows) for name in spec.numeric}
    columns.update({name: pa.array(["same"] * table.num_rows) for name in spec.categorical})
    for name in {spec.target, spec.sensitive} - {None}:
        columns[name] = table.column(name)
    return train_classifier(pa.table(columns), spec)


def _upload(client: httpx.Client, name: str, model: TrainedModel, commit: str, metrics: dict[str, float]) -> str:
    """POST /v1/runs, then register the run: the new version's name."""
    run = client.post("/v1/runs", json={
        "name": name, "data_commit": commit, "tags": {"repository": "loans", "path": PATH},
        "params": {k: str(v) for k, v in model.params.items()}, "metrics": metrics,
        "onnx": base64.b64encode(model.onnx).decode(), "signature": model.signature})
    assert run.status_code == 201, run.text
    registered = client.post(f"/v1/models/{MODEL}/versions", json={"run_id": run.json()["run"]["id"]})
    assert registered.status_code == 201, registered.text
    return str(registered.json()["version"])


def _decide(client: httpx.Client, version: str) -> dict[str, Any]:
    answer = client.post(f"/v1/models/{MODEL}/versions/{version}/decisions", json={"alias": "production"})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_a_poor_model_claiming_roc_auc_099_is_refused_production_on_what_it_measures(api) -> None:
    platform, url, operator, spec = api
    read = platform.data.repo("loans").ref("main").read_table(PATH)
    poor = constant_model(read.table, spec)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {operator}"}, timeout=120) as client:
        version = _upload(client, "poor", poor, read.commit, {"roc_auc": 0.99, "accuracy": 0.97})
        stored = client.get(f"/v1/models/{MODEL}/versions/{version}").json()
        assert stored["metrics"] == {"roc_auc": 0.99, "accuracy": 0.97}  # the claim is kept as sent

        decision = _decide(client, version)
        assert decision["passed"] is False
        gate = next(g for g in decision["gates"] if g["gate"] == "metric.roc_auc")
        assert gate["passed"] is False
        evidence = gate["evidence"]
        assert evidence["measured"] == pytest.approx(0.5) and gate["measured"] == evidence["measured"]
        assert evidence["claimed"] == 0.99
        assert evidence["data"] == {"kind": "held-out", "repository": "loans", "commit": read.commit, "path": PATH,
                                    "target": "default", "rows": 1200, "test_size": 0.2, "seed": 42}
        assert "claims 0.99" in gate["detail"] and "held-out slice" in gate["detail"]

        moved = client.put(f"/v1/models/{MODEL}/aliases/production", json={"version": version, "reason": "ship"})
        assert moved.status_code == 412, moved.text
    assert "production" not in platform.registry.aliases(MODEL)
    # the stored decision says the same
    latest = platform.policy.latest_decision(MODEL, version)
    assert latest is not None and not latest.passed
    assert next(g for g in latest.gates if g.gate == "metric.roc_auc").evidence["claimed"] == 0.99


def test_an_honest_upload_and_the_trained_version_pass(api) -> None:
    platform, url, operator, spec = api
    read = platform.data.repo("loans").ref("main").read_table(PATH)
    honest = train_classifier(read.table, dataclasses.replace(spec, algorithm="random_forest", params={}))
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {operator}"}, timeout=120) as client:
        version = _upload(client, "honest", honest, read.commit, honest.metrics)
        decision = _decide(client, version)
        assert decision["passed"] is True, decision["gates"]
        gate = next(g for g in decision["gates"] if g["gate"] == "metric.roc_auc")
        assert gate["evidence"]["claimed"] == pytest.approx(honest.metrics["roc_auc"])
        assert gate["evidence"]["measured"] == pytest.approx(honest.metrics["roc_auc"], abs=1e-4)
        assert _decide(client, "1.0.0")["passed"] is True
        moved = client.put(f"/v1/models/{MODEL}/aliases/production", json={"version": version, "reason": "ship"})
        assert moved.status_code == 200, moved.text


def test_the_server_never_reads_the_claimed_number_for_the_verdict(api) -> None:
    """The same poor bytes under an honest claim fail the same way: the claim changes
    nothing but the claim check."""
    platform, url, operator, spec = api
    read = platform.data.repo("loans").ref("main").read_table(PATH)
    poor = constant_model(read.table, spec, value=1.0)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {operator}"}, timeout=120) as client:
        version = _upload(client, "poor-quiet", poor, read.commit, {})
        gate = next(g for g in _decide(client, version)["gates"] if g["gate"] == "metric.roc_auc")
    assert gate["passed"] is False and gate["evidence"]["claimed"] is None
    assert gate["measured"] == pytest.approx(0.5)
