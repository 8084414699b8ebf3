"""Grants of a role on models and data repositories: stored on tokens and access keys (a
home made before grants opens and its tokens still work), and checked by the guard's
``check`` on the route's resource, never lifting a route that names none."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from mlops_lite import InvalidInput, PermissionDenied
from mlops_lite.metadata import MetadataStore
from mlops_lite.records import Grant, Identity
from mlops_lite.security.audit import AuditLog
from mlops_lite.security.tokens import Tokens, grants_of, parse_duration

# api_tokens as the release before grants and expiry created it.
BEFORE_GRANTS = ('create table api_tokens (id VARCHAR PRIMARY KEY, name VARCHAR, role VARCHAR, token_hash VARCHAR, '
                 'created_at TIMESTAMP WITH TIME ZONE, revoked BOOLEAN, access_key_id VARCHAR)')


def test_a_home_made_before_grants_gains_the_columns_and_its_tokens_still_work(tmp_path: Path) -> None:
    path = tmp_path / "before.duckdb"
    secret = "mll_old-secret"
    with duckdb.connect(str(path)) as old:
        old.execute(BEFORE_GRANTS)
        old.execute("insert into api_tokens values ('t1', 'old-bot', 'operator', ?, ?, false, null)",
                    [hashlib.sha256(secret.encode()).hexdigest(), datetime(2026, 1, 2, tzinfo=UTC)])
    store = MetadataStore(f"duckdb:///{path}")
    try:
        tokens = Tokens(store, AuditLog(store, b"k" * 32))
        identity = tokens.authenticate(secret)
        assert (identity.name, identity.role, identity.grants) == ("old-bot", "operator", ())
        (record,) = tokens.list()
        assert (record.grants, record.expires_at) == ((), None)
        made, _ = tokens.create("team-a", "viewer", grants=["operator:model:teamA-*"])
        assert made.grants == (Grant("operator", models="teamA-*"),)
    finally:
        store.close()
    with duckdb.connect(str(path)) as reopened:
        columns = [c for (c,) in reopened.execute(
            "select column_name from information_schema.columns where table_name = 'api_tokens' "
            "order by ordinal_position").fetchall()]
    # The old columns as they were, the new ones added after them.
    assert columns[:9] == ["id", "name", "role", "token_hash", "created_at", "revoked", "access_key_id", "grants",
                           "expires_at"]


TEAM_A = Identity("team-a", "viewer", kind="token",
                  grants=(Grant("operator", models="teama-*"), Grant("operator", repositories="teama-data")))


def test_a_grant_lifts_the_routes_of_its_own_resources_only() -> None:
    from server.auth import check

    check(TEAM_A, "operator", {"model": "teama-x"})
    check(TEAM_A, "operator", {"repository": "teama-data"})
    check(TEAM_A, "viewer", {"model": "teamb-y"})  # the global role reads everything
    with pytest.raises(PermissionDenied) as denied:
        check(TEAM_A, "operator", {"model": "teamb-y"})
    assert denied.value.details == {"needed": "operator", "role": "viewer", "model": "teamb-y"}
    with pytest.raises(PermissionDenied):
        check(TEAM_A, "operator", {"repository": "teama-data-2"})
    with pytest.raises(PermissionDenied):
        check(TEAM_A, "approver", {"model": "teama-x"})  # a grant gives its role, not more


def test_a_deployment_needs_the_role_on_every_model_it_serves() -> None:
    from server.auth import check

    check(TEAM_A, "operator", [{"model": "teama-x"}, {"model": "teama-x2"}])
    with pytest.raises(PermissionDenied) as denied:
        check(TEAM_A, "operator", [{"model": "teama-x"}, {"model": "teamb-y"}])  # a canary of team B's model
    assert denied.value.details["model"] == "teamb-y"


@pytest.mark.parametrize(("scope", "lifted"), [(None, False), ("body", True), ("any", True)])
def test_a_route_naming_no_resource_needs_the_global_role_unless_its_body_names_one(scope: str | None,
                                                                                    lifted: bool) -> None:
    from server.auth import check

    if lifted:
        check(TEAM_A, "operator", {}, scope)
    else:
        with pytest.raises(PermissionDenied) as denied:
            check(TEAM_A, "operator", {}, scope)
        assert denied.value.details == {"needed": "operator", "role": "viewer"}
    with pytest.raises(PermissionDenied):
        check(TEAM_A, "admin", {}, scope)  # no grant reaches admin


def test_a_predictor_predicts_and_reads_nothing() -> None:
    from server.auth import check

    predictor = Identity("replica", "predictor", kind="token")
    check(predictor, "predictor", [{"model": "loan-default"}])
    for needed in ("viewer", "operator"):
        with pytest.raises(PermissionDenied):
            check(predictor, needed, {"model": "loan-default"})


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800),
                                               ("2w", 1209600), ("1.5h", 5400), (" 3d ", 259200)])
def test_a_duration_reads_as_the_cli_takes_it(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "30", "d", "3x", "-1d", "0s", "4000d", "1d2h"])
def test_a_bad_duration_is_refused_naming_expires_in(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_duration(text)
    assert refused.value.field == "expires_in"


def test_grants_of_checks_each_grant() -> None:
    assert grants_of(["operator:repo:teama-*", Grant("viewer", models="m")]) == (
        Grant("operator", repositories="teama-*"), Grant("viewer", models="m"))
    for bad, field in (("operator:model:", "grant"), ("root:model:x", "role"), (Grant("operator"), "grants"),
                       (Grant("operator", models="a", repositories="b"), "grants")):
        with pytest.raises(InvalidInput) as refused:
            grants_of([bad])
        assert refused.value.field == field


def test_the_cli_commands_of_docs_access_md_run_and_store_their_grants(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "access.md").read_text()
    (block,) = re.findall(r"```\n(mlops-lite .*?)```", doc, flags=re.S)
    cli = str(Path(sys.executable).with_name("mlops-lite"))
    env = {**os.environ, "MLOPS_LITE_HOME": str(tmp_path / "home")}
    env.pop("MLOPS_LITE_URL", None)
    subprocess.run([cli, "init"], env=env, capture_output=True, check=True, timeout=120)
    for command in block.replace("\\\n", " ").splitlines():
        args = shlex.split(command.split("#", 1)[0])
        done = subprocess.run([cli, *args[1:]], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    listed = subprocess.run([cli, "token", "list", "--json"], env=env, capture_output=True, text=True, check=True,
                            timeout=120)
    records = {r["name"]: r for r in json.loads(listed.stdout)}
    assert records["team-a"]["grants"] == [{"role": "operator", "models": "teama-*", "repositories": None},
                                           {"role": "operator", "models": None, "repositories": "teama-data"}]
    assert records["team-a"]["expires_at"] is not None and records["team-a-lakefs"]["access_key_id"]
