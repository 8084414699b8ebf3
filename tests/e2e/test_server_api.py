"""The HTTP API end to end: a real Litestar server on 127.0.0.1 over a real platform
(DuckDB file, trained and deployed ONNX model), spoken to with a real HTTP client."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import mlops_lite
from tests.conftest import holdout_rows

MODEL, VERSION, DEPLOYMENT = "loan-default", "1.0.0", "loans"
PREDICT = f"/v1/deployments/{DEPLOYMENT}/predict"


@dataclasses.dataclass
class Api:
    url: str
    platform: Any
    token: str
    spec: Any

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def api(loop: tuple[Any, str, Any]) -> Iterator[Api]:
    from server import create_app
    from server.runner import serve_in_thread

    platform, token, spec = loop
    server = serve_in_thread(create_app(platform))
    try:
        assert server.url.startswith("http://127.0.0.1:")
        yield Api(url=server.url, platform=platform, token=token, spec=spec)
    finally:
        server.stop()


@pytest.fixture
def admin(api: Api) -> Iterator[httpx.Client]:
    with api.client(api.token) as client:
        yield client


def _features(spec: Any) -> list[str]:
    return [*spec.numeric, *spec.categorical]


# ---------------------------------------------------------------------------------------- predict


def test_predict_answers_labels_probabilities_and_the_registered_version(api: Api, admin: httpx.Client) -> None:
    rows = holdout_rows(api.spec, 5)
    response = admin.post(PREDICT, json={"instances": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    registered = api.platform.registry.get_version(MODEL, VERSION)

    assert body["model"] == MODEL
    assert body["version"] == VERSION
    assert body["deployment"] == DEPLOYMENT
    assert body["digest"] == registered.digest
    assert isinstance(body["request_id"], str) and body["request_id"]
    assert len(body["predictions"]) == 5
    assert set(body["classes"]) == {0, 1}
    assert all(label in body["classes"] for label in body["predictions"])
    assert len(body["probabilities"]) == 5
    for row, label in zip(body["probabilities"], body["predictions"], strict=True):
        assert len(row) == len(body["classes"])
        assert all(0.0 <= p <= 1.0 for p in row)
        assert math.isclose(sum(row), 1.0, abs_tol=1e-5)
        # The label is the most probable class.
        assert body["classes"][row.index(max(row))] == label


def test_each_request_gets_its_own_request_id(admin: httpx.Client, api: Api) -> None:
    rows = holdout_rows(api.spec, 1)
    ids = {admin.post(PREDICT, json={"instances": rows}).raise_for_status().json()["request_id"] for _ in range(3)}
    assert len(ids) == 3


def test_http_prediction_equals_in_process_prediction(api: Api, admin: httpx.Client) -> None:
    rows = holdout_rows(api.spec, 20)
    over_http = admin.post(PREDICT, json={"instances": rows}).raise_for_status().json()
    local = json.loads(json.dumps(dataclasses.asdict(api.platform.deployments.predict(DEPLOYMENT, rows))))
    over_http.pop("request_id")
    local.pop("request_id")
    assert over_http == local


# ------------------------------------------------------------------------------- bad input table


def _row(spec: Any, index: int = 0) -> dict[str, Any]:
    return holdout_rows(spec, index + 1)[index]


DROP = object()


def _with(spec: Any, **changes: Any) -> dict[str, Any]:
    """Two good instances, the second one changed (DROP removes the feature)."""
    good, bad = _row(spec, 0), dict(_row(spec, 1))
    for key, value in changes.items():
        if value is DROP:
            bad.pop(key)
        else:
            bad[key] = value
    return {"instances": [good, bad]}


# (id, request builder taking the spec -> httpx.post kwargs, path, status, code, field or None)
BAD_INPUTS: list[tuple[str, Any, str, int, str, str | None]] = [
    ("missing-feature", lambda s: {"json": _with(s, income=DROP)}, PREDICT, 422, "invalid_input",
     "instances[1].income"),
    ("string-for-numeric", lambda s: {"json": _with(s, income="lots")}, PREDICT, 422, "invalid_input",
     "instances[1].income"),
    ("number-for-categorical", lambda s: {"json": _with(s, employment_type=3)}, PREDICT, 422, "invalid_input",
     "instances[1].employment_type"),
    ("bool-for-numeric", lambda s: {"json": _with(s, credit_score=True)}, PREDICT, 422, "invalid_input",
     "instances[1].credit_score"),
    ("null-for-numeric", lambda s: {"json": _with(s, loan_amount=None)}, PREDICT, 422, "invalid_input",
     "instances[1].loan_amount"),
    ("unknown-feature", lambda s: {"json": _with(s, colour="red")}, PREDICT, 422, "invalid_input",
     "instances[1].colour"),
    ("unknown-deployment", lambda s: {"json": {"instances": [_row(s)]}}, "/v1/deployments/nope/predict", 404,
     "not_found", None),
    ("empty-body", lambda s: {"content": b"", "headers": {"content-type": "application/json"}}, PREDICT, 422,
     "invalid_input", "body"),
    ("non-json-body", lambda s: {"content": b"{instances: nope", "headers": {"content-type": "application/json"}},
     PREDICT, 400, "malformed_json", "body"),
    ("empty-instances", lambda s: {"json": {"instances": []}}, PREDICT, 422, "invalid_input", "instances"),
    ("instances-not-a-list", lambda s: {"json": {"instances": "x"}}, PREDICT, 422, "invalid_input", "instances"),
    ("no-instances-key", lambda s: {"json": {}}, PREDICT, 422, "invalid_input", "instances"),
    ("unknown-top-level-field", lambda s: {"json": {"instances": [_row(s)], "colour": "red"}}, PREDICT, 422,
     "invalid_input", "colour"),
    ("instance-not-an-object", lambda s: {"json": {"instances": [_row(s), 1]}}, PREDICT, 422, "invalid_input",
     "instances[1]"),
    ("over-the-batch-limit", lambda s: {"json": {"instances": [_row(s)] * 10_001}}, PREDICT, 422, "invalid_input",
     "instances"),
]


def _state(platform: Any) -> tuple[int, list[Any]]:
    return platform.audit.count(), platform.deployments.list()


@pytest.fixture(scope="module")
def state_before_table(api: Api) -> tuple[int, list[Any]]:
    return _state(api.platform)


@pytest.mark.parametrize(("build", "path", "status", "code", "field"),
                         [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_a_4xx_naming_the_field_and_changes_nothing(
        api: Api, admin: httpx.Client, state_before_table: tuple[int, list[Any]],
        build: Any, path: str, status: int, code: str, field: str | None) -> None:
    before = _state(api.platform)
    response = admin.post(path, **build(api.spec))
    assert response.status_code == status, response.text
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    if field is not None:
        assert body["field"] == field, body
        assert isinstance(body["expected"], str) and body["expected"], body
    assert _state(api.platform) == before


def test_the_bad_input_table_changed_no_state(api: Api, state_before_table: tuple[int, list[Any]]) -> None:
    """Runs after the table (file order): audit events and deployments are as before it."""
    assert _state(api.platform) == state_before_table


def test_the_batch_limit_says_what_it_is(api: Api, admin: httpx.Client) -> None:
    response = admin.post(PREDICT, json={"instances": [_row(api.spec)] * 10_001})
    assert response.status_code == 422
    assert "10000" in response.json()["expected"]
    # ...and exactly the limit is served.
    response = admin.post(PREDICT, json={"instances": [_row(api.spec)] * 10_000})
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 10_000


# ------------------------------------------------------------------------------------------ auth


def test_no_token_is_401_with_a_bearer_challenge(api: Api) -> None:
    with api.client() as anonymous:
        for method, path, kwargs in [("GET", "/v1/models", {}), ("GET", "/v1/health", {}),
                                     ("POST", PREDICT, {"json": {"instances": holdout_rows(api.spec, 1)}})]:
            response = anonymous.request(method, path, **kwargs)
            assert response.status_code == 401, (path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["code"] == "unauthenticated"


@pytest.mark.parametrize("authorization", ["Bearer mll_not-a-real-token", "Bearer", "Basic YWRtaW46YWRtaW4=",
                                           "mll_no-scheme"])
def test_a_wrong_token_is_401(api: Api, authorization: str) -> None:
    with httpx.Client(base_url=api.url, headers={"Authorization": authorization}) as client:
        response = client.get("/v1/models")
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "unauthenticated"


def test_a_viewer_reads_and_predicts_but_cannot_deploy(api: Api) -> None:
    _, secret = api.platform.tokens.create("viewer-bot", "viewer")
    before = api.platform.deployments.get(DEPLOYMENT)
    with api.client(secret) as viewer:
        assert viewer.get("/v1/models").status_code == 200
        assert viewer.post(PREDICT, json={"instances": holdout_rows(api.spec, 2)}).status_code == 200
        response = viewer.put(f"/v1/deployments/{DEPLOYMENT}", json={"model": MODEL, "version": VERSION})
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["code"] == "permission_denied"
    assert body["needed"] == "operator"
    assert body["role"] == "viewer"
    assert api.platform.deployments.get(DEPLOYMENT) == before


def test_an_operator_deploys(api: Api) -> None:
    _, secret = api.platform.tokens.create("operator-bot", "operator")
    before = api.platform.deployments.get(DEPLOYMENT)
    with api.client(secret) as operator:
        response = operator.put(f"/v1/deployments/{DEPLOYMENT}", json={"model": MODEL, "version": VERSION})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["revision"] == before.revision + 1
    assert (body["name"], body["model"], body["version"]) == (DEPLOYMENT, MODEL, VERSION)
    assert body["updated_by"] == "token:operator-bot"
    after = api.platform.deployments.get(DEPLOYMENT)
    assert after.revision == before.revision + 1
    assert after.updated_by == "token:operator-bot"
    last = api.platform.audit.events(limit=1)[-1]
    assert (last.action, last.actor) == ("deployment.deploy", "token:operator-bot")


# ------------------------------------------------------------------------------- read endpoints


def test_openapi_lists_the_predict_route(api: Api) -> None:
    with api.client() as anonymous:
        response = anonymous.get("/schema/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/v1/deployments/{name}/predict" in paths
    assert "post" in paths["/v1/deployments/{name}/predict"]


def test_list_models(api: Api, admin: httpx.Client) -> None:
    response = admin.get("/v1/models")
    assert response.status_code == 200
    body = response.json()
    assert [(m["name"], m["versions"]) for m in body] == [(MODEL, [VERSION])]


def test_list_versions(api: Api, admin: httpx.Client) -> None:
    response = admin.get(f"/v1/models/{MODEL}/versions")
    assert response.status_code == 200
    (version,) = response.json()
    registered = api.platform.registry.get_version(MODEL, VERSION)
    assert (version["model"], version["version"], version["digest"]) == (MODEL, VERSION, registered.digest)
    assert version["run_id"] == registered.run_id
    assert [spec["name"] for spec in version["signature"]["inputs"]] == _features(api.spec)
    assert version["metrics"]["roc_auc"] == registered.metrics["roc_auc"]


def test_unknown_model_versions_is_404_json(admin: httpx.Client) -> None:
    response = admin.get("/v1/models/no-such-model/versions")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert "no-such-model" in response.json()["message"]


def test_list_deployments(api: Api, admin: httpx.Client) -> None:
    response = admin.get("/v1/deployments")
    assert response.status_code == 200
    (deployment,) = response.json()
    live = api.platform.deployments.get(DEPLOYMENT)
    assert (deployment["name"], deployment["model"], deployment["version"]) == (DEPLOYMENT, MODEL, VERSION)
    assert deployment["digest"] == api.platform.registry.get_version(MODEL, VERSION).digest
    assert deployment["revision"] == live.revision


def test_list_runs(api: Api, admin: httpx.Client) -> None:
    response = admin.get("/v1/runs")
    assert response.status_code == 200
    runs = response.json()
    assert [run["id"] for run in runs] == [run.id for run in api.platform.tracking.list_runs()]
    assert api.platform.registry.get_version(MODEL, VERSION).run_id in {run["id"] for run in runs}
    assert all(run["status"] == "finished" for run in runs)
    assert admin.get("/v1/runs", params={"limit": 0}).json() == []


def test_status_counts(api: Api, admin: httpx.Client) -> None:
    response = admin.get("/v1/status")
    assert response.status_code == 200
    body = response.json()
    local = api.platform.summary()
    for key in ("data_repositories", "runs", "models", "model_versions", "deployments", "audit_events"):
        assert body[key] == local[key], key
    assert (body["models"], body["model_versions"], body["deployments"]) == (1, 1, 1)


def test_health(admin: httpx.Client) -> None:
    response = admin.get("/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["version"] == mlops_lite.__version__
    assert "CPUExecutionProvider" in body["providers"]


# ------------------------------------------------------------------------- OPTIONS and CORS

ORIGIN = "https://ops.example.com"


@pytest.mark.parametrize(("path", "methods"), [
    ("/v1/runs", {"GET", "POST", "OPTIONS"}),
    ("/v1/tokens", {"GET", "POST", "OPTIONS"}),
    (f"/v1/deployments/{DEPLOYMENT}", {"GET", "PUT", "OPTIONS"}),
    ("/v1/health", {"GET", "OPTIONS"}),
    ("/v2/models/loans/infer", {"POST", "OPTIONS"}),
    ("/api/v1/repositories", {"GET", "POST", "OPTIONS"}),
])
def test_options_answers_allow_with_every_method_and_no_cors_headers(api: Api, path: str, methods: set[str]) -> None:
    for token in (api.token, None):
        with api.client(token) as client:
            response = client.options(path, headers={"Origin": ORIGIN})
        assert response.status_code == 204, response.text
        assert {m.strip() for m in response.headers["allow"].split(",")} == methods
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]


@pytest.fixture(scope="module")
def cors_api(api: Api) -> Iterator[str]:
    """A second server over the same platform, with one browser origin allowed."""
    from server import create_app
    from server.runner import serve_in_thread

    server = serve_in_thread(create_app(api.platform, cors_origins=[ORIGIN]))
    try:
        yield server.url
    finally:
        server.stop()


def test_cors_preflight_needs_no_token_and_names_the_origin(cors_api: str) -> None:
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    with httpx.Client(base_url=cors_api) as anonymous:
        response = anonymous.options(PREDICT, headers=preflight)
        assert response.status_code == 204, response.text
        assert response.headers["access-control-allow-origin"] == ORIGIN
        allowed_headers = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "content-type"} <= allowed_headers
        # Another origin is refused, and the answer does not name it.
        refused = anonymous.options(PREDICT, headers={**preflight, "Origin": "https://evil.example"})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        # CORS lets a browser ask; the token is still needed to get an answer.
        unauthenticated = anonymous.get("/v1/models", headers={"Origin": ORIGIN})
        assert unauthenticated.status_code == 401
        assert unauthenticated.headers["access-control-allow-origin"] == ORIGIN


def test_cors_answers_carry_the_allowed_origin(api: Api, cors_api: str) -> None:
    with httpx.Client(base_url=cors_api, headers={"Authorization": f"Bearer {api.token}"}) as client:
        response = client.get("/v1/models", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN


# ------------------------------------------------------------------- bounds on client input

# (id, method, path, request kwargs, field, words the `expected` says)
BAD_PARAMETERS: list[tuple[str, str, str, dict[str, Any], str, str]] = [
    ("runs-negative-limit", "GET", "/v1/runs", {"params": {"limit": -5}}, "limit", ">= 0"),
    ("runs-huge-limit", "GET", "/v1/runs", {"params": {"limit": 10**30}}, "limit", "<= 10000"),
    ("runs-text-limit", "GET", "/v1/runs", {"params": {"limit": "many"}}, "limit", "int"),
    ("alerts-zero-limit", "GET", "/v1/alerts", {"params": {"limit": 0}}, "limit", ">= 1"),
    ("alerts-huge-limit", "GET", "/v1/alerts", {"params": {"limit": 10_001}}, "limit", "<= 10000"),
    ("alerts-unknown-state", "GET", "/v1/alerts", {"params": {"state": "asleep"}}, "state", "firing"),
    ("compare-without-runs", "GET", "/v1/compare", {}, "runs", "query parameter"),
    ("lineage-bad-time", "GET", f"/v1/models/{MODEL}/lineage/{VERSION}", {"params": {"at": "yesterday"}}, "at",
     "ISO"),
    # Parses, but its instant in UTC is before year 1 (the conversion overflowed: a 500).
    ("lineage-time-out-of-range", "GET", f"/v1/models/{MODEL}/lineage/production",
     {"params": {"at": "0001-01-01T00:00:00+14:00"}}, "at", "ISO 8601"),
    ("approvals-unknown-status", "GET", "/v1/approvals", {"params": {"status": "maybe"}}, "status", "pending"),
    ("gate-negative-rows", "POST", f"/v1/deployments/{DEPLOYMENT}/gate",
     {"json": {"model": MODEL, "version": VERSION, "min_rows": -1}}, "min_rows", ">= 1"),
    ("monitor-negative-debounce", "POST", f"/v1/deployments/{DEPLOYMENT}/monitor", {"json": {"debounce_s": -1}},
     "debounce_s", ">= 0"),
    ("judge-zero-requests", "POST", f"/v1/deployments/{DEPLOYMENT}/judge-canary",
     {"json": {"since": "2026-01-01T00:00:00+00:00", "min_requests": 0}}, "min_requests", ">= 1"),
    ("canary-weight-above-one", "POST", f"/v1/deployments/{DEPLOYMENT}/canary",
     {"json": {"model": MODEL, "version": VERSION, "weight": 2}}, "weight", "< 1"),
    ("rollback-revision-zero", "POST", f"/v1/deployments/{DEPLOYMENT}/rollback", {"json": {"to_revision": 0}},
     "to_revision", ">= 1"),
    ("sql-negative-rows", "POST", "/v1/sql", {"json": {"query": "select 1", "max_rows": -1}}, "max_rows", ">= 0"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "field", "expected"),
                         [case[1:] for case in BAD_PARAMETERS], ids=[case[0] for case in BAD_PARAMETERS])
def test_out_of_bounds_input_is_a_422_naming_the_field_and_changes_nothing(
        api: Api, admin: httpx.Client, method: str, path: str, kwargs: dict[str, Any], field: str,
        expected: str) -> None:
    before = _state(api.platform)
    response = admin.request(method, path, **kwargs)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == "invalid_input"
    assert body["field"] == field, body
    assert expected in body["expected"], body
    assert isinstance(body["message"], str) and body["message"]
    assert _state(api.platform) == before


def test_limits_at_their_bounds_are_served(admin: httpx.Client) -> None:
    assert admin.get("/v1/runs", params={"limit": 10_000}).status_code == 200
    assert admin.get("/v1/alerts", params={"limit": 1}).status_code == 200
    assert admin.get("/v1/alerts", params={"limit": 10_000}).status_code == 200


def test_openapi_documents_the_bounds(api: Api) -> None:
    with api.client() as anonymous:
        paths = anonymous.get("/schema/openapi.json").json()["paths"]

    def schema(path: str, name: str) -> dict[str, Any]:
        (parameter,) = [p for p in paths[path]["get"]["parameters"] if p["name"] == name]
        found: dict[str, Any] = parameter["schema"]
        return found

    assert (schema("/v1/runs", "limit")["minimum"], schema("/v1/runs", "limit")["maximum"]) == (0, 10_000)
    assert (schema("/v1/alerts", "limit")["minimum"], schema("/v1/alerts", "limit")["maximum"]) == (1, 10_000)
