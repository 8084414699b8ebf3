"""The prediction log, feedback and /metrics end to end: a real server on 127.0.0.1 over
a real platform, predictions over HTTP, Parquet rows and a feedback join afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from server.metrics import parse
from tests.conftest import build_loop, holdout_rows

DEPLOYMENT = "loans"


def _sample(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(labels.items())), 0.0)


def test_predictions_are_logged_joined_with_feedback_and_counted(tmp_path: Path) -> None:
    from server import create_app
    from server.runner import serve_in_thread

    platform, token, spec = build_loop(tmp_path / "home")
    server = None
    try:
        version = platform.deployments.get(DEPLOYMENT).version
        _, viewer_token = platform.tokens.create("watcher", "viewer")
        rows = holdout_rows(spec, 12)
        batches = [rows[0:1], rows[1:4], rows[4:5], rows[5:12]]
        server = serve_in_thread(create_app(platform))
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as admin:
            answers = []
            for batch in batches:
                response = admin.post(f"/v1/deployments/{DEPLOYMENT}/predict", json={"instances": batch})
                assert response.status_code == 200, response.text
                answers.append(response.json())
            missing = admin.post("/v1/deployments/nope/predict", json={"instances": rows[:1]})
            assert missing.status_code == 404

            request_ids = [a["request_id"] for a in answers]
            labels = [{"request_id": rid, "label": i % 2} for i, rid in enumerate(request_ids)]
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {viewer_token}"},
                              timeout=60) as viewer:
                denied = viewer.post(f"/v1/deployments/{DEPLOYMENT}/feedback", json={"labels": labels})
                assert denied.status_code == 403
            bad = admin.post(f"/v1/deployments/{DEPLOYMENT}/feedback",
                             json={"labels": [{"request_id": 5, "label": 1}]})
            assert bad.status_code == 422 and bad.json()["field"] == "labels[0].request_id"
            empty = admin.post(f"/v1/deployments/{DEPLOYMENT}/feedback", json={"labels": []})
            assert empty.status_code == 422 and empty.json()["field"] == "labels"
            recorded = admin.post(f"/v1/deployments/{DEPLOYMENT}/feedback", json={"labels": labels})
            assert recorded.status_code == 200, recorded.text
            assert recorded.json() == {"deployment": DEPLOYMENT, "recorded": len(labels)}

            assert platform.monitoring.flush()
            metrics = httpx.get(f"{server.url}/metrics", timeout=30)  # no token: loopback scraping
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = metrics.text
    finally:
        if server is not None:
            server.stop()
        platform.close()

    # /metrics: every line is a comment or a well-formed sample, and the counts match.
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or (
            line.startswith("mlops_lite_") and len(line.rsplit(" ", 1)) == 2), line
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])
    samples = parse(text)
    names = {name for name, _ in samples}
    assert {"mlops_lite_requests_total", "mlops_lite_request_latency_seconds_bucket",
            "mlops_lite_request_latency_seconds_count", "mlops_lite_request_latency_seconds_sum",
            "mlops_lite_batch_size_bucket", "mlops_lite_batch_size_count", "mlops_lite_batch_size_sum",
            "mlops_lite_prediction_log_dropped_total", "mlops_lite_prediction_log_errors_total",
            "mlops_lite_execution_provider"} <= names
    ok = {"deployment": DEPLOYMENT, "version": version}
    assert _sample(samples, "mlops_lite_requests_total", **ok, status="200") == len(batches)
    assert _sample(samples, "mlops_lite_requests_total", deployment="nope", version="", status="404") == 1
    assert _sample(samples, "mlops_lite_request_latency_seconds_count", **ok) == len(batches)
    assert _sample(samples, "mlops_lite_request_latency_seconds_bucket", **ok, le="+Inf") == len(batches)
    assert _sample(samples, "mlops_lite_batch_size_count", **ok) == len(batches)
    assert _sample(samples, "mlops_lite_batch_size_sum", **ok) == len(rows)
    assert _sample(samples, "mlops_lite_batch_size_bucket", **ok, le="1") == 2  # the two single-row requests
    assert _sample(samples, "mlops_lite_prediction_log_dropped_total") == 0
    assert _sample(samples, "mlops_lite_prediction_log_errors_total") == 0
    providers = [dict(labels)["provider"] for name, labels in samples if name == "mlops_lite_execution_provider"]
    assert providers and providers == platform.deployments.providers

    # The Parquet log: one row per instance, the request ids and version served, and the feedback join.
    assert list((tmp_path / "home" / "predictions").glob(f"deployment={DEPLOYMENT}/date=*/part-*.parquet"))
    logged = platform.monitoring.query(
        "SELECT request_id, version, count(*) AS n FROM predictions GROUP BY ALL").to_pylist()
    assert {r["request_id"]: r["n"] for r in logged} == {a["request_id"]: len(b) for a, b in zip(answers, batches,
                                                                                                strict=True)}
    assert {r["version"] for r in logged} == {version}
    joined = platform.monitoring.query(
        "SELECT p.request_id, p.prediction, f.label FROM predictions p JOIN feedback f USING (request_id)"
    ).to_pylist()
    assert len(joined) == len(rows)
    expected_label = {rid: str(i % 2) for i, rid in enumerate(request_ids)}
    assert all(r["label"] == expected_label[r["request_id"]] for r in joined)
    first = answers[0]
    assert [r["prediction"] for r in joined if r["request_id"] == first["request_id"]] == [
        str(first["predictions"][0])]
    assert platform.monitoring.stats()["rows_written"] == len(rows)
