"""Deployment lineage and prediction traces over the real HTTP server: RemotePlatform
answers the same records and the same errors as the local Platform it serves."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from mlops_lite.client import RemotePlatform
from mlops_lite.errors import InvalidInput, NotFound
from mlops_lite.records import DeploymentLineage, PredictionTrace
from tests.conftest import holdout_rows
from tests.unit.test_deployment_lineage import release_two_versions


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from server import create_app
    from server.runner import serve_in_thread

    state = release_two_versions(tmp_path_factory.mktemp("lineage-e2e") / "home")
    try:
        server = serve_in_thread(create_app(state["platform"]))
        try:
            yield {**state, "url": server.url}
        finally:
            server.stop()
    finally:
        state["platform"].close()


@pytest.fixture
def remote(served: dict[str, Any]) -> Iterator[RemotePlatform]:
    with RemotePlatform(served["url"], served["token"]) as client:
        yield client


def test_lineage_at_each_revision_equals_local(served: dict[str, Any], remote: RemotePlatform) -> None:
    local = served["platform"]
    for revision in served["revisions"].values():
        got = remote.deployments.lineage("loans", revision.changed_at)
        assert type(got) is DeploymentLineage and got.revision.revision == revision.revision
        assert got == local.deployments.lineage("loans", revision.changed_at)
    canary = remote.deployments.lineage("loans", served["revisions"][2].changed_at)
    assert [(s.slot, s.version) for s in canary.slots] == [("primary", "1.0.0"), ("canary", "1.1.0")]
    assert canary.slots[1].approvals[0].approvers == ("alice",)


def test_lineage_now_equals_local(served: dict[str, Any], remote: RemotePlatform) -> None:
    got = remote.deployments.lineage("loans")
    want = served["platform"].deployments.lineage("loans")
    assert dataclasses.replace(got, at=want.at) == want
    assert got.slots[0].version == "1.1.0" and got.slots[0].run is not None and got.missing == ()


def test_an_iso_time_is_taken_as_text(served: dict[str, Any], remote: RemotePlatform) -> None:
    moment = served["revisions"][1].changed_at
    assert remote.deployments.lineage("loans", moment.isoformat()) == remote.deployments.lineage("loans", moment)


def test_trace_of_a_request_served_over_http_equals_local(served: dict[str, Any], remote: RemotePlatform) -> None:
    rows = holdout_rows(served["spec"], 2)
    answer = remote.deployments.predict("loans", rows)
    got = remote.monitoring.trace(answer.request_id)
    assert type(got) is PredictionTrace
    assert got == served["platform"].monitoring.trace(answer.request_id)
    assert list(got.instances) == rows and (got.slot, got.version) == ("primary", "1.1.0")
    assert got.lineage.revision.revision == 3


def test_trace_with_feedback_equals_local(served: dict[str, Any], remote: RemotePlatform) -> None:
    request_id = served["first"].request_id
    got = remote.monitoring.trace(request_id)
    assert got == served["platform"].monitoring.trace(request_id)
    assert got.feedback == "1" and got.version == "1.0.0" and got.lineage.revision.revision == 1


def test_errors_are_the_same_classes_as_local(served: dict[str, Any], remote: RemotePlatform) -> None:
    with pytest.raises(NotFound, match="nope"):
        remote.deployments.lineage("nope")
    with pytest.raises(InvalidInput) as bad:
        remote.deployments.lineage("loans", "not a time")
    assert bad.value.field == "at"
    with pytest.raises(NotFound, match="served nothing"):
        remote.deployments.lineage("loans", served["revisions"][1].changed_at - timedelta(days=1))
    with pytest.raises(NotFound, match="feedfacefeedface"):
        remote.monitoring.trace("feedfacefeedface")
    with pytest.raises(InvalidInput) as bad_id:
        remote.monitoring.trace("x' OR '1'='1")
    assert bad_id.value.field == "request_id"


def test_the_routes_need_a_viewer_token_and_answer_4xx_naming_the_field(served: dict[str, Any]) -> None:
    url, platform = served["url"], served["platform"]
    _, viewer = platform.tokens.create("lineage-viewer", "viewer")
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {viewer}"}) as http:
        assert http.get("/v1/deployments/loans/lineage").status_code == 200
        bad = http.get("/v1/deployments/loans/lineage", params={"at": "soon"})
        assert bad.status_code == 422 and bad.json()["field"] == "at"
        unknown = http.get("/v1/predictions/feedfacefeedface/trace")
        assert unknown.status_code == 404 and "feedfacefeedface" in unknown.json()["message"]
        assert http.get(f"/v1/predictions/{served['first'].request_id}/trace").status_code == 200
    with httpx.Client(base_url=url) as anonymous:
        assert anonymous.get("/v1/deployments/loans/lineage").status_code == 401
    assert platform.deployments.revisions("loans")[0].revision == 3  # reading changed nothing


def test_the_openapi_schema_lists_both_routes(served: dict[str, Any]) -> None:
    paths = httpx.get(f"{served['url']}/schema/openapi.json").json()["paths"]
    assert "/v1/deployments/{name}/lineage" in paths and "/v1/predictions/{request_id}/trace" in paths
