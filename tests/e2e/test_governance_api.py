"""Governance enforced by the server: production moves only through the gates, admin
overrides need a reason, approvals follow four-eyes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..conftest import build_loop


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Any, str, dict[str, str]]]:
    from server import create_app
    from server.runner import serve_in_thread

    home = tmp_path / "home"
    platform, admin, _ = build_loop(home)
    tokens = {"admin": admin}
    for name, role in (("olga", "operator"), ("alice", "approver"), ("bob", "approver"), ("vic", "viewer")):
        tokens[name] = platform.tokens.create(name, role)[1]
    running = serve_in_thread(create_app(platform))
    try:
        yield platform, running.url, tokens
    finally:
        running.stop()
        platform.close()


def _as(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _policy(platform: Any, text: str) -> None:
    folder = platform.settings.home / "policies"
    folder.mkdir(exist_ok=True)
    (folder / "loan-default.toml").write_text(text)


def test_production_moves_only_through_the_gates_or_an_admin_override(api) -> None:
    platform, url, tokens = api
    _policy(platform, "[thresholds]\nroc_auc = 0.99\n")
    body = {"version": "1.0.0", "reason": "first release"}
    with _as(url, tokens["olga"]) as operator, _as(url, tokens["admin"]) as admin:
        refused = operator.put("/v1/models/loan-default/aliases/production", json=body)
        assert refused.status_code == 412, refused.text
        gates = {g["gate"]: g for g in refused.json()["gates"]}
        assert gates["metric.roc_auc"]["passed"] is False and gates["metric.roc_auc"]["bound"]
        assert platform.registry.aliases("loan-default") == {}
        assert operator.put("/v1/models/loan-default/aliases/staging", json=body).status_code == 200
        forced = {**body, "override": True}
        assert operator.put("/v1/models/loan-default/aliases/production", json=forced).status_code == 403
        assert admin.put("/v1/models/loan-default/aliases/production",
                         json={**forced, "reason": "  "}).status_code == 422
        done = admin.put("/v1/models/loan-default/aliases/production", json={**forced, "reason": "hotfix"})
        assert done.status_code == 200 and done.json()["version"] == "1.0.0"
    assert platform.registry.alias_history("loan-default", "production")[-1].kind == "override"
    decisions = platform.policy.decisions("loan-default", "1.0.0")
    assert [d.passed for d in decisions] == [False, False] and decisions[-1].override_reason == "hotfix"
    assert "policy.override" in [e.action for e in platform.audit.events(limit=50)]
    assert platform.audit.verify() is None


def test_approvals_follow_four_eyes_and_then_promote(api) -> None:
    platform, url, tokens = api
    _policy(platform, "[approvals]\nrequired = 1\n")
    body = {"version": "1.0.0", "reason": "release"}
    with _as(url, tokens["olga"]) as olga, _as(url, tokens["alice"]) as alice, _as(url, tokens["bob"]) as bob, \
            _as(url, tokens["vic"]) as vic:
        assert olga.put("/v1/models/loan-default/aliases/production", json=body).status_code == 412
        assert vic.post("/v1/approvals", json={"model": "loan-default", "version": "1.0.0"}).status_code == 403
        created = bob.post("/v1/approvals", json={"model": "loan-default", "version": "1.0.0", "comment": "go"})
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]
        own = bob.post(f"/v1/approvals/{request_id}/approve", json={"comment": "mine"})
        assert own.status_code == 403 and "four-eyes" in own.text
        assert olga.post(f"/v1/approvals/{request_id}/approve", json={}).status_code == 403
        assert alice.post(f"/v1/approvals/{request_id}/approve", json={"comment": "ok"}).status_code == 200
        finished = olga.post(f"/v1/approvals/{request_id}/complete")
        assert finished.status_code == 200, finished.text
        assert olga.get("/v1/models/loan-default/aliases").json() == {"production": "1.0.0"}
        lineage = olga.get("/v1/models/loan-default/lineage/production").json()
        actions = [e["action"] for e in lineage["audit_events"]]
        assert {"approval.request", "approval.approve", "policy.decision"} <= set(actions)
        assert lineage["data_commits"] == list(platform.registry.get_version("loan-default", "1.0.0").data_commits)


def test_the_remote_platform_speaks_the_same_governance(api) -> None:
    from mlops_lite import PolicyViolation
    from mlops_lite.client import RemotePlatform

    platform, url, tokens = api
    _policy(platform, "[approvals]\nrequired = 1\n")
    with RemotePlatform(url, tokens["olga"]) as olga, RemotePlatform(url, tokens["alice"]) as alice:
        with pytest.raises(PolicyViolation) as refused:
            olga.registry.set_alias("loan-default", "production", "1.0.0", reason="release")
        assert any(g["gate"] == "approvals" and not g["passed"] for g in refused.value.details["gates"])
        staged = olga.registry.set_alias("loan-default", "staging", "1.0.0", reason="try it")
        assert staged.version == "1.0.0" and olga.registry.aliases("loan-default") == {"staging": "1.0.0"}
        request = olga.policy.request_promotion("loan-default", "1.0.0", comment="ready")
        approved = alice.policy.approve(request.id, comment="ok")
        assert approved.status == "approved"
        assert olga.policy.complete(request.id).status == "completed"
        remote = olga.registry.lineage("loan-default", "production")
        local = platform.registry.lineage("loan-default", "production")
        assert remote.version.digest == local.version.digest and remote.data_commits == local.data_commits
        assert [e.action for e in remote.audit_events] == [e.action for e in local.audit_events]
        assert [d.passed for d in olga.policy.decisions("loan-default", "1.0.0")] == \
            [d.passed for d in platform.policy.decisions("loan-default", "1.0.0")]


def test_an_approver_cannot_approve_a_version_they_registered_over_http(api) -> None:
    """Four-eyes holds across the API: a version registered with a token is stored as
    ``token:NAME``; the vote check and the approvals gate compare principals, so the same
    person voting with the same token (or another token of the same name) is refused."""
    from mlops_lite.client import RemotePlatform

    platform, url, tokens = api
    (platform.settings.home / "policies").mkdir(exist_ok=True)
    (platform.settings.home / "policies" / "loan-alt.toml").write_text("[approvals]\nrequired = 1\n")
    run_id = platform.registry.get_version("loan-default", "1.0.0").run_id
    with RemotePlatform(url, tokens["alice"]) as alice, _as(url, tokens["olga"]) as olga:
        mine = alice.registry.register_from_run("loan-alt", run_id, version="2.0.0")
        assert mine.created_by == "token:alice"
        created = olga.post("/v1/approvals", json={"model": "loan-alt", "version": "2.0.0"})
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]
        refused = httpx.post(f"{url}/v1/approvals/{request_id}/approve", json={"comment": "lgtm"},
                             headers={"Authorization": f"Bearer {tokens['alice']}"}, timeout=60)
        assert refused.status_code == 403 and "four-eyes" in refused.text, refused.text
        # A second token under the same name is the same person.
        again = platform.tokens.create("alice", "approver")[1]
        refused = httpx.post(f"{url}/v1/approvals/{request_id}/approve", json={"comment": "lgtm"},
                             headers={"Authorization": f"Bearer {again}"}, timeout=60)
        assert refused.status_code == 403 and "four-eyes" in refused.text, refused.text
        assert olga.put("/v1/models/loan-alt/aliases/production",
                        json={"version": "2.0.0", "reason": "release"}).status_code == 412
        ok = httpx.post(f"{url}/v1/approvals/{request_id}/approve", json={"comment": "ok"},
                        headers={"Authorization": f"Bearer {tokens['bob']}"}, timeout=60)
        assert ok.status_code == 200 and ok.json()["status"] == "approved", ok.text
        votes = platform.policy.get_request(request_id).votes
        assert [v.approver for v in votes] == ["token:bob"]
    approvers = platform.policy.approvals.approvers(platform.registry.get_version("loan-alt", "2.0.0"),
                                                    "production")
    assert approvers == ["token:bob"]
