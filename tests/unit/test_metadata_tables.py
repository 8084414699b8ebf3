"""The tables, one module per domain, store what the one file of every table stored: a
home made before the split opens with nothing created or altered, and its rows read
back through the models."""

from datetime import UTC, datetime
from pathlib import Path

import duckdb
from sqlmodel import SQLModel, select

from mlops_lite.metadata import MetadataStore, tables
from mlops_lite.metadata.tables import AuditEvent, DataCommit, Deployment, Experiment, Run

# information_schema of a home made by the release before the split: column:type, in order.
TYPES = {"s": "VARCHAR", "t": "TIMESTAMP WITH TIME ZONE", "j": "JSON", "b": "BIGINT", "d": "DOUBLE",
         "?": "BOOLEAN", "i": "INTEGER"}
BEFORE = {
    "alert_silences": "id:s rule_pattern:s subject_pattern:s until:t reason:s created_by:s created_at:t lifted_at:t "
                      "lifted_by:s",
    "alerts": "id:s rule:s metric:s subject:s op:s state:s severity:s value:d threshold:d description:s started_at:t "
              "last_seen_at:t fired_at:t resolved_at:t acknowledged_by:s acknowledged_at:t evidence:s silenced:? "
              "silence_id:s delivery:s attempts:i last_error:s notice_seq:i",
    "alias_events": "id:s model:s alias:s seq:i kind:s from_version:s to_version:s actor:s reason:s occurred_at:t",
    "api_tokens": "id:s name:s role:s token_hash:s created_at:t revoked:? access_key_id:s",
    "approval_requests": "id:s model:s version:s alias:s status:s requested_by:s requested_at:t comment:s "
                         "updated_at:t completed_at:t completed_by:s decision_id:s",
    "approval_votes": "id:s request_id:s approver:s role:s vote:s comment:s voted_at:t",
    "audit_events": "seq:i id:s occurred_at:t actor:s action:s object:s before:j after:j prev_hash:s hash:s",
    "data_branches": "repository:s name:s head:s created_at:t",
    "data_commits": "id:s repository:s parents:j tree:s message:s author:s created_at:t meta:j",
    "data_repositories": "name:s default_branch:s created_at:t created_by:s config:j",
    "data_staged": "repository:s branch:s path:s digest:s size:b",
    "data_tags": "repository:s name:s commit:s created_at:t",
    "deployment_revisions": "name:s revision:i action:s strategy:s model:s version:s digest:s candidate_model:s "
                            "candidate_version:s candidate_digest:s weight:d live_slot:s changed_at:t changed_by:s "
                            "reason:s",
    "deployments": "name:s model:s version:s digest:s strategy:s revision:i updated_at:t updated_by:s "
                   "candidate_model:s candidate_version:s candidate_digest:s weight:d live_slot:s",
    "experiments": "name:s created_at:t created_by:s description:s tags:j",
    "metrics": "run_id:s key:s step:i value:d timestamp:t",
    "model_aliases": "model:s alias:s version:s moved_at:t moved_by:s",
    "model_cards": "model:s version:s card:j updated_at:t updated_by:s",
    "model_versions": "model:s version:s digest:s size:b signature:j run_id:s data_commits:j params:j metrics:j "
                      "created_at:t created_by:s",
    "models": "name:s description:s created_at:t",
    "params": "run_id:s key:s value:s",
    "policy_decisions": "id:s model:s version:s alias:s decided_at:t passed:? gates:j actor:s override_reason:s "
                        "digest:s policy:j",
    "runs": "id:s name:s experiment:s status:s started_at:t ended_at:t data_commits:j tags:j artifacts:j "
            "git_commit:s git_dirty:? environment:j pid:i host:s heartbeat_at:t",
}

# The feature store's tables (added later): an older home gets them, with these columns.
FEATURE_TABLES = {
    "feature_definitions": "kind:s name:s digest:s version:s spec:s applied_at:t applied_by:s current:? retired_at:t",
    "feature_materializations": "id:s view:s view_digest:s mode:s repository:s data_commit:s as_of_us:b max_event_us:b keys:i "
                                "written:i deleted:i started_at:t finished_at:t actor:s",
    "feature_online": "view:s entity_key:s event_us:b created_us:b payload:s",
    "feature_overrides": "deployment:s model:s version:s service_version:s reason:s actor:s created_at:t",
    "feature_served": "id:s service:s service_version:s served_us:b entity:s payload:s statuses:s commits:s "
                      "deployment:s",
    "feature_service_versions": "service:s version:s plan:s applied_at:t applied_by:s",
    "feature_training_sets": "id:s service:s service_version:s commits:s entities:s entity_digest:s digest:s rows:i "
                             "columns:s created_at:t created_by:s",
}


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in con.execute(
            "select table_name, column_name, data_type from information_schema.columns "
            "where table_schema = 'main' order by table_name, ordinal_position").fetchall():
        out.setdefault(table, []).append((column, kind))
    return out


def test_a_home_made_before_the_split_opens_and_reads_through_the_models(tmp_path: Path) -> None:
    path = tmp_path / "before.duckdb"
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with duckdb.connect(str(path)) as old:
        for table, spec in BEFORE.items():
            columns = ", ".join(f'"{name}" {TYPES[kind]}' for name, kind in (c.split(":") for c in spec.split()))
            old.execute(f'create table "{table}" ({columns})')
        old.execute("insert into deployments values ('loans', 'loan-default', '1.0.0', 'ab', 'canary', 3, ?, 'me', "
                    "'loan-default', '1.1.0', 'cd', 0.25, null)", [at])
        old.execute("insert into data_commits values ('c1', 'loans', '[\"c0\"]', 't1', 'first', 'me', ?, "
                    "'{\"k\": 1}')", [at])
        old.execute("insert into runs (id, name, experiment, status, started_at, data_commits, tags, artifacts) "
                    "values ('r1', 'train', 'default', 'finished', ?, '[\"c1\"]', '{\"a\": \"b\"}', '{}')", [at])
        old.execute("insert into experiments values ('default', ?, null, '', '{}')", [at])
        old.execute("insert into audit_events values (1, 'e1', ?, 'me', 'deployment.canary', 'deployment:loans', "
                    "'{}', '{\"revision\": 3}', '', 'h1')", [at])
        before = _columns(old)

    store = MetadataStore(f"duckdb:///{path}")
    try:
        with store.session() as db:
            deployment = db.get(Deployment, "loans")
            commit = db.get(DataCommit, "c1")
            run = db.get(Run, "r1")
            experiment = db.get(Experiment, "default")
            event = db.exec(select(AuditEvent)).one()
    finally:
        store.close()
    assert deployment is not None and (deployment.strategy, deployment.revision, deployment.weight) == ("canary", 3, 0.25)
    assert commit is not None and (commit.parents, commit.meta) == (["c0"], {"k": 1})
    assert run is not None and (run.data_commits, run.tags) == (["c1"], {"a": "b"})
    assert experiment is not None and experiment.tags == {}
    assert event.after == {"revision": 3}

    with duckdb.connect(str(path)) as reopened:
        after = _columns(reopened)
    # Nothing the old home stored was renamed, dropped or retyped (a newer table or nullable
    # column may be added by the store's additive upgrade, never the reverse).
    for table, columns in before.items():
        assert after[table][:len(columns)] == columns, table
    for table, spec in FEATURE_TABLES.items():
        assert table not in before
        assert after[table] == [(n, TYPES[k]) for n, k in (c.split(":") for c in spec.split())], table


def test_every_table_is_in_one_domain_module_and_importable_from_the_package() -> None:
    defined = {cls.__tablename__: cls for cls in SQLModel.__subclasses__()  # type: ignore[attr-defined]
               if getattr(cls, "__module__", "").startswith("mlops_lite.metadata.tables.")}
    exported = {getattr(tables, name) for name in tables.__all__}
    assert set(defined.values()) <= exported
    assert {cls.__module__.rsplit(".", 1)[-1] for cls in defined.values()} == {
        "data", "tracking", "registry", "deployments", "security", "policy", "alerts", "privacy", "features"}
