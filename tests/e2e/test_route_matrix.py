"""Every route of the API against every kind of caller, generated from the route table of a
real app (``create_app`` over a home with a trained, deployed model), so a route added
later is checked the day it is added.

For each (method, path) under /v1, /v2 and /api/v1:
- it declares a role (``opt["permission"]``, or ``opt["lakefs"]``): one that does not fails
  here (the guards would refuse every caller, or, for /api/v1, let every caller through);
- no credential: 401;
- a token one role below the route's: 403;
- a viewer holding admin grants on OTHER models and repositories: 403 on every route
  above viewer (a grant lifts only the routes of its own resources);
- the route's role (a GET): neither 401 nor 403, globally or through a grant on the
  deployed model and repository alone;
- never a 5xx, whoever asks (but the flow runs' 503 "no Prefect server": none runs here).
The path parameters are real names (the deployed model, its data repository, its run).

Plus team A's operator (viewer, with an operator grant on teama-*) moving teama-x's alias
but not teamb-y's over HTTP, and writing teama-data but not teamb-data through the
official ``lakefs_sdk``; and docs/access.md's table of routes, which is this table."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlops_lite.records import Grant
from mlops_lite.security.roles import ROLES, role_rank

PREFIXES = ("/v1", "/v2", "/api/v1")
# Routes that answer without a credential, on purpose.
PUBLIC = {("GET", "/api/v1/healthcheck"), ("HEAD", "/api/v1/healthcheck")}
RESOURCE_OPTIONS = ("model_param", "repository_param", "deployment_param")
MODEL, REPOSITORY, DEPLOYMENT = "loan-default", "loans", "loans"
ACCESS_DOC = Path(__file__).resolve().parents[2] / "docs" / "access.md"
TABLE_START, TABLE_END = "<!-- route table: start -->", "<!-- route table: end -->"


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    path: str  # as declared: /v1/models/{model:str}/versions
    role: str | None
    opt: dict[str, Any]

    @property
    def scope(self) -> str:
        """What a grant can cover: "model", "repository", "deployment" (its models), "body",
        "any", or "global" (a grant never lifts it)."""
        for option in RESOURCE_OPTIONS:
            if option in self.opt:
                return option.removesuffix("_param")
        return str(self.opt.get("resource", "global"))

    def url(self, params: dict[str, str]) -> str:
        return re.sub(r"\{(\w+):\w+\}", lambda m: params[m.group(1)], self.path)


def route_table(app: Any) -> list[Route]:
    """Every (method, path) of the app under the API prefixes, with what it declares."""
    from litestar.routes import HTTPRoute

    routes = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith(PREFIXES):
            continue
        for handler in route.route_handlers:
            for method in sorted(set(handler.http_methods) - {"OPTIONS"}):
                key = "lakefs" if route.path.startswith("/api/v1") else "permission"
                routes.append(Route(method, route.path, handler.opt.get(key), dict(handler.opt)))
    return sorted(routes, key=lambda r: (r.path, r.method))


def access_table(routes: list[Route]) -> str:
    """The markdown table of docs/access.md: every route, its role and what a grant covers."""
    lines = ["| method | path | role | a grant on |", "|---|---|---|---|"]
    for r in routes:
        covered = {"model": "the model", "repository": "the repository",
                   "deployment": "the deployment's models", "body": "the model or repository in the body",
                   "any": "anything (no resource)", "global": "- (global role only)"}[r.scope]
        if r.scope != "body" and r.opt.get("resource") == "body":
            covered += " and the model in the body"
        lines.append(f"| {r.method} | `{r.path}` | {r.role or 'none (public)'} | {covered} |")
    return "\n".join(lines)


# Bodies for the routes whose resource is in the body: each names the deployed model or
# repository, so a grant on another one is refused by the handler or the core.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/v1/deployments/{name:str}"): {"model": MODEL, "version": "1.0.0"},
    ("POST", "/v1/deployments/{name:str}/canary"): {"model": MODEL, "version": "1.0.0"},
    ("POST", "/v1/deployments/{name:str}/shadow"): {"model": MODEL, "version": "1.0.0"},
    ("POST", "/v1/deployments/{name:str}/stage"): {"model": MODEL, "version": "1.0.0"},
    ("POST", "/v1/runs"): {"name": "r", "data_commit": "c", "tags": {"repository": REPOSITORY}, "params": {},
                           "metrics": {}, "onnx": "", "signature": {}},
    ("POST", "/v1/approvals"): {"model": MODEL, "version": "1.0.0"},
    ("POST", "/v1/approvals/{request_id:str}/approve"): {},
    ("POST", "/v1/approvals/{request_id:str}/reject"): {},
    ("POST", "/v1/approvals/{request_id:str}/complete"): {},
    ("POST", "/api/v1/repositories"): {"name": REPOSITORY, "storage_namespace": "local://loans"},
    ("POST", "/v1/data/repositories"): {"name": REPOSITORY, "classification": "internal"},
}


@dataclasses.dataclass
class Served:
    url: str
    params: dict[str, str]
    routes: list[Route]
    tokens: dict[str, str]  # role -> a bearer token of that global role
    other_team: str  # viewer + admin grants on other-* models and repositories
    granted: str  # predictor + admin grants on the deployed model and its repository
    platform: Any
    spec: Any


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from server import create_app
    from server.runner import serve_in_thread
    from tests.conftest import build_loop

    with pytest.MonkeyPatch.context() as env:
        # The matrix sends a few hundred refused credentials from one client on purpose.
        env.setenv("MLOPS_LITE_AUTH_FAILURES_MAX", "100000")
        platform, _token, spec = build_loop(tmp_path_factory.mktemp("matrix") / "home")
    p: Any = platform
    try:
        version = p.registry.get_version(MODEL, "1.0.0")
        for name in ("teama-x", "teamb-y"):
            p.registry.register_from_run(name, version.run_id)
        for repository in ("teama-data", "teamb-data"):
            p.data.repo(repository).create(classification="internal")
        approval = p.policy.request_promotion(MODEL, "1.0.0", alias="staging", requested_by="someone")
        commit = p.data.repo(REPOSITORY).ref("main").log()[0].id
        params = {"model": MODEL, "repository": REPOSITORY, "name": DEPLOYMENT, "version": "1.0.0",
                  "alias": "production", "ref": "main", "left_ref": "main", "right_ref": "main",
                  "source_ref": "main", "destination_branch": "main", "branch": "main", "tag": "no-such-tag",
                  "commit_id": commit, "run_id": version.run_id, "digest": version.digest,
                  "request_id": approval.id, "decision_id": "no-such-decision", "alert_id": "no-such-alert",
                  "silence_id": "no-such-silence", "token_id": "no-such-token", "flow": "monitor",
                  "user_id": "no-such-user", "path": "x", "flow_run_id": "6f1c3c1e-0000-4000-8000-000000000000",
                  "kind": "feature_view", "service": "no-such-service", "training_set_id": "no-such-set"}
        tokens = {role: p.tokens.create(f"as-{role}", role)[1] for role in ROLES}
        _, other_team = p.tokens.create("other-team", "viewer", grants=["admin:model:other-*", "admin:repo:other-*"])
        _, granted = p.tokens.create("loans-team", "predictor", grants=[f"admin:model:{MODEL}",
                                                                           f"admin:repo:{REPOSITORY}"])
        app = create_app(p)
        server = serve_in_thread(app, host="127.0.0.1")
        try:
            yield Served(server.url, params, route_table(app), tokens, other_team, granted, p, spec)
        finally:
            server.stop()
    finally:
        p.close()


def _call(served: Served, route: Route, *, bearer: str | None = None, body: bool = False) -> httpx.Response:
    headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
    payload = BODIES.get((route.method, route.path)) if body else None
    response = httpx.request(route.method, served.url + route.url(served.params), headers=headers,
                             json=payload, timeout=60)
    # The flow routes read the Prefect server beside `up`; none runs here, which they say (503).
    no_prefect = route.path.startswith("/v1/flows/") and response.status_code == 503 \
        and "no Prefect server" in response.text
    assert response.status_code < 500 or no_prefect, (route.method, route.path, response.status_code,
                                                      response.text[:300])
    return response


def test_every_route_declares_a_known_role_and_real_resource_parameters(served: Served) -> None:
    from server.auth import RESOURCE_SCOPES

    assert len(served.routes) > 100
    undeclared = [(r.method, r.path) for r in served.routes if r.role is None and (r.method, r.path) not in PUBLIC]
    assert undeclared == [], "routes without a declared role (opt['permission'] / opt['lakefs'])"
    for r in served.routes:
        if r.role is not None:
            role_rank(r.role)
        for option in RESOURCE_OPTIONS:
            if option in r.opt:
                assert f"{{{r.opt[option]}:" in r.path, (r.path, option)
        assert r.opt.get("resource") in (None, *RESOURCE_SCOPES), (r.path, r.opt.get("resource"))
        if r.scope == "body":
            assert (r.method, r.path) in BODIES, f"give the matrix a body for {r.method} {r.path}"


def test_a_route_added_without_a_role_is_found_and_refuses_even_an_admin(served: Served) -> None:
    """A route registered on the app later, with the guard but no role: the check above
    lists it, and the guard answers it 403 (never a 5xx), whoever asks."""
    from litestar import get

    from server import create_app
    from server.auth import authorize
    from server.runner import serve_in_thread

    @get("/v1/undeclared", guards=[authorize], sync_to_thread=False)
    def undeclared() -> str:
        return "open"

    app = create_app(served.platform)
    app.register(undeclared)
    assert [(r.method, r.path) for r in route_table(app) if r.role is None and (r.method, r.path) not in PUBLIC] \
        == [("GET", "/v1/undeclared")]
    server = serve_in_thread(app, host="127.0.0.1")
    try:
        admin = {"Authorization": f"Bearer {served.tokens['admin']}"}
        assert httpx.get(f"{server.url}/v1/undeclared", headers=admin).status_code == 403
        assert httpx.get(f"{server.url}/v1/undeclared").status_code == 401
    finally:
        server.stop()


def test_no_credential_is_401_everywhere(served: Served) -> None:
    for route in served.routes:
        if (route.method, route.path) in PUBLIC:
            continue
        assert _call(served, route).status_code == 401, (route.method, route.path)


def test_one_role_below_the_routes_is_403(served: Served) -> None:
    checked = 0
    for route in served.routes:
        if route.role is None or route.role == ROLES[0]:
            continue
        below = ROLES[role_rank(route.role) - 1]
        assert _call(served, route, bearer=served.tokens[below]).status_code == 403, (route.method, route.path, below)
        checked += 1
    assert checked > 100


def test_grants_on_other_resources_lift_no_route_of_these(served: Served) -> None:
    """Admin on other-* models and repositories, viewer elsewhere: every route above viewer
    that acts on the deployed model, its repository or its deployment (or on no resource at
    all) is 403; only the routes whose resource is anything (experiments, runs) let it in."""
    refused = 0
    for route in served.routes:
        if route.role is None or role_rank(route.role) <= role_rank("viewer") or route.scope == "any":
            continue
        response = _call(served, route, bearer=served.other_team, body=True)
        assert response.status_code == 403, (route.method, route.path, response.status_code, response.text[:200])
        refused += 1
    assert refused > 50


@pytest.mark.parametrize("who", ["global role", "grant on the resource"])
def test_the_routes_role_gets_through_the_guard(served: Served, who: str) -> None:
    """Reads only (a GET or HEAD changes nothing): the route's role, held globally, or held
    through a grant on the deployed model and repository by a predictor."""
    passed = 0
    for route in served.routes:
        if route.method not in ("GET", "HEAD") or route.role is None:
            continue
        if who == "global role":
            bearer = served.tokens[route.role]
        elif route.scope in ("model", "repository", "deployment") or route.role == "predictor":
            bearer = served.granted
        else:
            continue
        status = _call(served, route, bearer=bearer).status_code
        assert status not in (401, 403), (route.method, route.path, status)
        passed += 1
    assert passed > (50 if who == "global role" else 30)


def test_a_predictor_predicts_and_reads_nothing_else(served: Served) -> None:
    from tests.conftest import holdout_rows

    predictor = {"Authorization": f"Bearer {served.tokens['predictor']}"}
    spec_rows = holdout_rows(served.spec, 2)
    answer = httpx.post(f"{served.url}/v1/deployments/{DEPLOYMENT}/predict", headers=predictor,
                        json={"instances": spec_rows}, timeout=60)
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2
    assert httpx.get(f"{served.url}/v2/models/{DEPLOYMENT}/ready", headers=predictor).status_code == 200
    assert httpx.get(f"{served.url}/v1/whoami", headers=predictor).json()["role"] == "predictor"
    for path in ("/v1/models", "/v1/data/repositories/loans/config", f"/v1/models/{MODEL}/versions",
                 "/v1/runs", f"/v1/deployments/{DEPLOYMENT}"):
        assert httpx.get(served.url + path, headers=predictor).status_code == 403, path
    lakefs = httpx.get(f"{served.url}/api/v1/repositories/loans/refs/main/objects/ls", headers=predictor)
    assert lakefs.status_code == 403


def test_team_a_moves_its_models_alias_and_not_team_bs(served: Served) -> None:
    from mlops_lite import PermissionDenied
    from mlops_lite.client import RemotePlatform

    p = served.platform
    identity, secret = p.tokens.create("team-a-operator", "viewer", grants=["operator:model:teama-*"])
    assert identity.grants == (Grant("operator", models="teama-*"),)
    team_a = {"Authorization": f"Bearer {secret}"}
    whoami = httpx.get(f"{served.url}/v1/whoami", headers=team_a).json()
    assert (whoami["role"], whoami["grants"]) == ("viewer", [{"role": "operator", "models": "teama-*",
                                                               "repositories": None}])
    body = {"version": "1.0.0", "reason": "team A's release"}
    moved = httpx.put(f"{served.url}/v1/models/teama-x/aliases/staging", headers=team_a, json=body)
    assert moved.status_code == 200 and moved.json()["version"] == "1.0.0"
    refused = httpx.put(f"{served.url}/v1/models/teamb-y/aliases/staging", headers=team_a, json=body)
    assert refused.status_code == 403
    assert {k: refused.json()[k] for k in ("code", "needed", "role", "model")} == {
        "code": "permission_denied", "needed": "operator", "role": "viewer", "model": "teamb-y"}
    assert p.registry.aliases("teamb-y") == {}
    # The same through the Python client, and for a deployment of team B's model.
    with RemotePlatform(served.url, secret) as remote:
        assert remote.registry.set_alias("teama-x", "candidate", "1.0.0", reason="r").version == "1.0.0"
        with pytest.raises(PermissionDenied):
            remote.registry.set_alias("teamb-y", "candidate", "1.0.0", reason="r")
        with pytest.raises(PermissionDenied):
            remote.deployments.deploy("team-b", "teamb-y", "1.0.0")
        with pytest.raises(PermissionDenied):  # the deployment serves loan-default, not a teama-* model
            remote.deployments.canary(DEPLOYMENT, "teama-x", "1.0.0", weight=0.1)
    assert "team-b" not in {d.name for d in p.deployments.list()}
    assert p.deployments.get(DEPLOYMENT).candidate_model is None


def test_team_a_writes_its_repository_and_not_team_bs_through_the_lakefs_sdk(served: Served) -> None:
    lakefs_sdk = pytest.importorskip("lakefs_sdk")
    from lakefs_sdk.client import LakeFSClient

    p = served.platform
    _, key_id, secret = p.tokens.create_access_key("team-a-data", "viewer", grants=["operator:repo:teama-*"])
    client = LakeFSClient(lakefs_sdk.Configuration(host=served.url + "/api/v1", username=key_id, password=secret))
    creation = lakefs_sdk.BranchCreation(name="feature", source="main")
    client.branches_api.create_branch("teama-data", creation)
    assert [b.name for b in p.data.repo("teama-data").branches()] == ["feature", "main"]
    with pytest.raises(lakefs_sdk.exceptions.ForbiddenException):
        client.branches_api.create_branch("teamb-data", creation)
    client.repositories_api.create_repository(lakefs_sdk.RepositoryCreation(
        name="teama-more", storage_namespace="local://teama-more"))
    with pytest.raises(lakefs_sdk.exceptions.ForbiddenException):
        client.repositories_api.create_repository(lakefs_sdk.RepositoryCreation(
            name="teamb-more", storage_namespace="local://teamb-more"))
    # Reading team B's data is a viewer's right, which the key holds globally.
    assert [b.id for b in client.branches_api.list_branches("teamb-data").results] == ["main"]
    assert {r.name for r in p.data.repositories()} >= {"teama-more"}
    assert "teamb-more" not in {r.name for r in p.data.repositories()}
    assert [b.name for b in p.data.repo("teamb-data").branches()] == ["main"]
    # A key whose only reading right is its grant: the SDK's first calls (/config, /user)
    # pass, team A's data reads and writes, team B's does not even read.
    _, key_id, secret = p.tokens.create_access_key("team-a-only", "predictor", grants=["operator:repo:teama-*"])
    narrow = LakeFSClient(lakefs_sdk.Configuration(host=served.url + "/api/v1", username=key_id, password=secret))
    assert narrow.auth_api.get_current_user().user.id == "team-a-only"
    narrow.branches_api.create_branch("teama-data", lakefs_sdk.BranchCreation(name="narrow", source="main"))
    assert {b.id for b in narrow.branches_api.list_branches("teama-data").results} == {"feature", "main", "narrow"}
    for denied in (lambda: narrow.branches_api.list_branches("teamb-data"),
                   lambda: narrow.repositories_api.list_repositories()):
        with pytest.raises(lakefs_sdk.exceptions.ForbiddenException):
            denied()


def test_docs_access_md_holds_this_route_table(served: Served) -> None:
    """docs/access.md's table is generated from the route table; with UPDATE_ACCESS_DOC=1
    this test writes it."""
    table = "\n" + access_table(served.routes) + "\n"
    text = ACCESS_DOC.read_text()
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    if os.environ.get("UPDATE_ACCESS_DOC") == "1":
        ACCESS_DOC.write_text(text[:start] + table + text[end:])
        text = ACCESS_DOC.read_text()
        start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    assert text[start:end] == table, "docs/access.md is out of date: rerun this test with UPDATE_ACCESS_DOC=1"
