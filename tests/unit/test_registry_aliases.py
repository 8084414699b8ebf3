"""Aliases with history, rollback, racing moves, comparison, lineage and model cards,
on real platforms with versions registered by real training."""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from mlops_lite import Conflict, InvalidInput, NotFound, TrainingSpec, connect
from mlops_lite.records import AliasEventRecord, Lineage, VersionComparison
from mlops_lite.registry import aliases as aliases_module

from ..conftest import DATA, FEATURE_EXCLUDE

MODEL = "loan-default"


def _train(platform, source: str):
    platform.data.repo("loans").create(classification="internal", exist_ok=True)
    platform.data.ingest("loans", DATA / source, "loans/train.csv")
    table = platform.data.repo("loans").ref("main").read_table("loans/train.csv").table
    spec = TrainingSpec.infer(table, target="default", exclude=FEATURE_EXCLUDE, algorithm="logistic_regression")
    return platform.training.train("loans", "main", "loans/train.csv", spec)


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, object, object]]:
    """A platform with two real versions: 1.0.0 on loans.csv, 1.1.0 on loans_drifted.csv."""
    p = connect(home=tmp_path_factory.mktemp("aliases") / "home")
    first = _train(p, "loans.csv")
    v1 = p.registry.register_from_run(MODEL, first.run.id)
    drifted = _train(p, "loans_drifted.csv")
    v2 = p.registry.register_from_run(MODEL, drifted.run.id)
    assert (v1.version, v2.version) == ("1.0.0", "1.1.0")
    yield p, v1, v2
    p.close()


def _assert_no_gap(history: list[AliasEventRecord]) -> None:
    assert [e.seq for e in history] == list(range(1, len(history) + 1))
    for before, after in itertools.pairwise(history):
        assert after.from_version == before.to_version
        assert after.at >= before.at
    assert history[0].from_version is None


def test_set_get_and_history(reg) -> None:
    p, v1, v2 = reg
    r = p.registry
    assert r.set_alias(MODEL, "staging", "1.0.0", reason="first candidate", actor="alice") == v1
    assert r.get_alias(MODEL, "staging") == v1
    assert r.set_alias(MODEL, "staging", "1.1.0", reason="retrained on new data", actor="bob",
                       expected="1.0.0") == v2
    assert r.get_alias(MODEL, "staging") == v2
    assert r.aliases(MODEL)["staging"] == "1.1.0"
    # Moving to where it already points records nothing.
    r.set_alias(MODEL, "staging", "1.1.0", reason="again")
    history = r.alias_history(MODEL, "staging")
    assert [(e.kind, e.from_version, e.to_version, e.actor, e.reason) for e in history] == [
        ("move", None, "1.0.0", "alice", "first candidate"),
        ("move", "1.0.0", "1.1.0", "bob", "retrained on new data"),
    ]
    _assert_no_gap(history)
    assert all(e.at.tzinfo is not None and e.at.utcoffset() == timedelta(0) for e in history)
    # The model-wide history holds these events, oldest first.
    everything = r.alias_history(MODEL)
    assert [e.id for e in everything if e.alias == "staging"] == [e.id for e in history]
    assert [e.at for e in everything] == sorted(e.at for e in everything)
    # Expected version no longer current: Conflict, nothing written.
    with pytest.raises(Conflict, match=r"1\.1\.0"):
        r.set_alias(MODEL, "staging", "1.0.0", reason="stale", expected="1.0.0")
    with pytest.raises(Conflict):
        r.set_alias(MODEL, "staging", "1.0.0", reason="must be new", expected=None)
    assert r.alias_history(MODEL, "staging") == history


def test_alias_at_before_between_and_after_moves(reg) -> None:
    p, v1, v2 = reg
    r = p.registry
    r.set_alias(MODEL, "timeline", "1.0.0", reason="one")
    r.set_alias(MODEL, "timeline", "1.1.0", reason="two")
    first, second = r.alias_history(MODEL, "timeline")
    assert r.alias_at(MODEL, "timeline", first.at - timedelta(microseconds=1)) is None
    assert r.alias_at(MODEL, "timeline", first.at) == v1
    assert r.alias_at(MODEL, "timeline", first.at + (second.at - first.at) / 2) == v1
    assert r.alias_at(MODEL, "timeline", second.at - timedelta(microseconds=1)) == v1
    assert r.alias_at(MODEL, "timeline", second.at) == v2
    assert r.alias_at(MODEL, "timeline", second.at + timedelta(days=365)) == v2
    # Naive times are UTC; other zones are the same instant.
    assert r.alias_at(MODEL, "timeline", second.at.replace(tzinfo=None)) == v2
    eastern = second.at.astimezone(timezone(timedelta(hours=-5)))
    assert eastern.utcoffset() == timedelta(hours=-5) and r.alias_at(MODEL, "timeline", eastern) == v2
    # After a delete the alias points nowhere; before it, where it was.
    deleted = r.delete_alias(MODEL, "timeline", reason="retired")
    assert deleted.kind == "delete" and deleted.from_version == "1.1.0" and deleted.to_version is None
    assert r.alias_at(MODEL, "timeline", deleted.at) is None
    assert r.alias_at(MODEL, "timeline", deleted.at - timedelta(microseconds=1)) == v2
    assert "timeline" not in r.aliases(MODEL)
    with pytest.raises(NotFound, match="timeline"):
        r.get_alias(MODEL, "timeline")
    # Set again after the delete: history continues without a gap.
    r.set_alias(MODEL, "timeline", "1.0.0", reason="back in use", expected=None)
    _assert_no_gap(r.alias_history(MODEL, "timeline"))


def test_rollback(reg) -> None:
    p, v1, v2 = reg
    r = p.registry
    r.set_alias(MODEL, "production", "1.0.0", reason="launch", actor="alice")
    with pytest.raises(Conflict, match="no previous version"):
        r.rollback(MODEL, "production", reason="nothing before the launch")
    r.set_alias(MODEL, "production", "1.1.0", reason="promote", actor="alice")
    assert r.rollback(MODEL, "production", reason="error rate up", actor="oncall") == v1
    assert r.get_alias(MODEL, "production") == v1
    last = r.alias_history(MODEL, "production")[-1]
    assert (last.kind, last.from_version, last.to_version, last.actor, last.reason) == (
        "rollback", "1.1.0", "1.0.0", "oncall", "error rate up")
    # A second rollback undoes the first.
    assert r.rollback(MODEL, "production", reason="false alarm") == v2
    _assert_no_gap(r.alias_history(MODEL, "production"))
    with pytest.raises(NotFound, match="never-set"):
        r.rollback(MODEL, "never-set", reason="x")
    actions = [e.action for e in p.audit.events(limit=10) if e.object == f"model:{MODEL}/alias:production"]
    assert actions[:2] == ["model.alias.rollback", "model.alias.rollback"]


def test_racing_moves_one_wins(reg) -> None:
    p, _v1, _v2 = reg
    r = p.registry
    r.set_alias(MODEL, "race", "1.0.0", reason="start")
    rounds = 6
    for round_ in range(rounds):
        current = r.get_alias(MODEL, "race").version
        target = "1.1.0" if current == "1.0.0" else "1.0.0"
        barrier = threading.Barrier(2)
        outcomes: list[object] = []

        def move(who: str, current=current, target=target, barrier=barrier, outcomes=outcomes,
                 round_=round_) -> None:
            barrier.wait()
            try:
                outcomes.append(r.set_alias(MODEL, "race", target, reason=f"round {round_} by {who}",
                                            actor=who, expected=current))
            except Conflict as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=move, args=(who,)) for who in ("alice", "bob")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        conflicts = [o for o in outcomes if isinstance(o, Conflict)]
        wins = [o for o in outcomes if not isinstance(o, Conflict)]
        assert len(conflicts) == 1 and len(wins) == 1, outcomes
        assert wins[0].version == target
    history = r.alias_history(MODEL, "race")
    assert len(history) == 1 + rounds
    _assert_no_gap(history)


def test_compare_and_swap_holds_without_the_lock(reg, monkeypatch) -> None:
    """With the per-alias lock disabled, a writer whose read went stale still loses:
    the compare-and-swap refuses it with Conflict and writes nothing."""
    p, _v1, _v2 = reg
    r = p.registry
    r.set_alias(MODEL, "cas", "1.0.0", reason="start")
    monkeypatch.setattr(aliases_module, "_alias_lock", lambda *a: threading.RLock())
    slow_has_read, fast_done = threading.Event(), threading.Event()
    real_version_row = aliases_module._version_row

    def version_row(session, model, version):
        row = real_version_row(session, model, version)
        if threading.current_thread().name == "slow":
            session.get(aliases_module.ModelAlias, (model, "cas"))  # read the current version now
            slow_has_read.set()
            assert fast_done.wait(30)
        return row

    monkeypatch.setattr(aliases_module, "_version_row", version_row)
    result: list[object] = []

    def slow() -> None:
        try:
            result.append(r.set_alias(MODEL, "cas", "1.1.0", reason="slow writer"))
        except Conflict as exc:
            result.append(exc)

    thread = threading.Thread(target=slow, name="slow")
    thread.start()
    assert slow_has_read.wait(30)
    r.set_alias(MODEL, "cas", "1.1.0", reason="fast writer")
    fast_done.set()
    thread.join()
    assert isinstance(result[0], Conflict)
    history = r.alias_history(MODEL, "cas")
    assert [e.reason for e in history] == ["start", "fast writer"]
    _assert_no_gap(history)


def test_a_stale_view_is_refused_by_the_compare_and_swap(reg) -> None:
    """The swap matches the version the writer read; a row that moved since matches
    nothing (RETURNING gives no row), and the writer gets Conflict."""
    p, _v1, _v2 = reg
    r = p.registry
    r.set_alias(MODEL, "swap", "1.0.0", reason="start")
    stale = aliases_module.ModelAlias(model=MODEL, alias="swap", version="1.1.0", moved_at=datetime.now(UTC),
                                      moved_by="x")
    with pytest.raises(Conflict, match="moved while"), p._store.session() as session:
        r._aliases._move(session, MODEL, "swap", stale, "1.0.0", actor="x", reason="stale", kind="move")
    assert [e.reason for e in r.alias_history(MODEL, "swap")] == ["start"]
    assert r.get_alias(MODEL, "swap").version == "1.0.0"


def test_unknown_names_and_bad_input(reg) -> None:
    p, _v1, _v2 = reg
    r = p.registry
    with pytest.raises(NotFound, match="'no-such-model'"):
        r.set_alias("no-such-model", "production", "1.0.0", reason="x")
    with pytest.raises(NotFound, match=r"'9\.9\.9'"):
        r.set_alias(MODEL, "production", "9.9.9", reason="x")
    with pytest.raises(NotFound, match="'nowhere'"):
        r.get_alias(MODEL, "nowhere")
    with pytest.raises(NotFound, match="'nowhere'"):
        r.alias_at(MODEL, "nowhere", datetime.now(UTC))
    with pytest.raises(NotFound, match="'nowhere'"):
        r.alias_history(MODEL, "nowhere")
    with pytest.raises(NotFound, match="'nowhere'"):
        r.delete_alias(MODEL, "nowhere", reason="x")
    with pytest.raises(NotFound, match="'no-such-model'"):
        r.aliases("no-such-model")
    with pytest.raises(NotFound, match="'no-such-model'"):
        r.alias_history("no-such-model")
    with pytest.raises(NotFound, match="'no-such-model'"):
        r.get_alias("no-such-model", "production")
    with pytest.raises(NotFound, match=r"'1\.9\.0'"):
        r.compare_versions(MODEL, "1.0.0", "1.9.0")
    with pytest.raises(NotFound, match=r"'1\.9\.0'"):
        r.lineage(MODEL, "1.9.0")
    with pytest.raises(NotFound, match="'nowhere'"):
        r.lineage(MODEL, "nowhere")
    with pytest.raises(NotFound, match=r"'1\.9\.0'"):
        r.model_card(MODEL, "1.9.0")
    for bad in ("Production", "1st", "", "a" * 64, "has space", "prod@1", "-x"):
        with pytest.raises(InvalidInput) as info:
            r.set_alias(MODEL, bad, "1.0.0", reason="x")
        assert info.value.field == "alias"
        assert "lowercase letter" in info.value.expected
    with pytest.raises(InvalidInput) as info:
        r.set_alias(MODEL, "ok", "1.0.0", reason="  ")
    assert info.value.field == "reason"
    with pytest.raises(InvalidInput) as info:
        r.lineage(MODEL, "Bad Ref")
    assert info.value.field == "ref"
    with pytest.raises(InvalidInput) as info:
        r.lineage(MODEL, "1.0.0", at=datetime.now(UTC))
    assert info.value.field == "at"
    with pytest.raises(InvalidInput) as info:
        r.set_model_card(MODEL, "1.0.0", {"evaluation": {"auc": float("nan")}})
    assert info.value.field == "card"
    assert "ok" not in r.aliases(MODEL)


def test_compare_versions(reg) -> None:
    p, v1, v2 = reg
    c = p.registry.compare_versions(MODEL, "1.0.0", "1.1.0")
    assert isinstance(c, VersionComparison)
    assert (c.model, c.a, c.b) == (MODEL, "1.0.0", "1.1.0")
    shared = sorted(v1.metrics.keys() & v2.metrics.keys())
    assert "roc_auc" in shared and sorted(c.metric_deltas) == shared
    assert c.metric_deltas["roc_auc"] == pytest.approx(v2.metrics["roc_auc"] - v1.metrics["roc_auc"])
    # Same features, other data: no signature change, data changed.
    assert not c.signature_changed and c.inputs_added == c.inputs_removed == () and c.inputs_changed == {}
    assert c.data_commits_a == v1.data_commits and c.data_commits_b == v2.data_commits
    assert c.data_commits_a != c.data_commits_b and c.data_changed
    assert c.params_changed == {}  # same algorithm and settings
    same = p.registry.compare_versions(MODEL, "1.0.0", "1.0.0")
    assert not same.data_changed and all(d == 0 for d in same.metric_deltas.values())


def test_compare_versions_signature_and_params(tmp_path: Path) -> None:
    """Signature and params diffs, on versions whose rows differ there."""
    with connect(home=tmp_path / "home") as p:
        now = datetime.now(UTC)
        base = {"inputs": [{"name": "income", "type": "float"}, {"name": "region", "type": "string"},
                           {"name": "age", "type": "float"}], "outputs": [{"name": "label", "type": "int64"}]}
        other = {"inputs": [{"name": "income", "type": "float"}, {"name": "region", "type": "float"},
                            {"name": "tenure", "type": "float"}], "outputs": [{"name": "label", "type": "int64"}]}
        from mlops_lite.metadata.tables import Model, ModelVersion

        with p._store.session() as s:
            s.add(Model(name="m", created_at=now))
            s.add(ModelVersion(model="m", version="1.0.0", digest="a", size=1, signature=base, data_commits=["c1"],
                               params={"C": 1.0, "seed": 7}, metrics={"auc": 0.8, "f1": 0.5, "note": "x"},
                               created_at=now, created_by="t"))
            s.add(ModelVersion(model="m", version="2.0.0", digest="b", size=1, signature=other,
                               data_commits=["c1"], params={"C": 0.5, "seed": 7, "l1": 0.1},
                               metrics={"auc": 0.85, "recall": 0.7}, created_at=now, created_by="t"))
        c = p.registry.compare_versions("m", "1.0.0", "2.0.0")
        assert c.signature_changed and not c.outputs_changed
        assert c.inputs_added == ("tenure",) and c.inputs_removed == ("age",)
        assert c.inputs_changed == {"region": ("string", "float")}
        assert c.metric_deltas == {"auc": pytest.approx(0.05)}
        assert c.metrics_only_in_a == ("f1",) and c.metrics_only_in_b == ("recall",)
        assert not c.data_changed and c.data_commits_a == c.data_commits_b == ("c1",)
        assert c.params_changed == {"C": (1.0, 0.5), "l1": (None, 0.1)}


def test_lineage_by_version_and_alias(reg) -> None:
    p, v1, v2 = reg
    r = p.registry
    r.set_alias(MODEL, "lineage", "1.0.0", reason="first", actor="alice")
    r.set_alias(MODEL, "lineage", "1.1.0", reason="second", actor="bob")
    first, second = r.alias_history(MODEL, "lineage")

    by_version = r.lineage(MODEL, "1.0.0")
    assert isinstance(by_version, Lineage)
    assert by_version.version == v1 and by_version.alias is None and by_version.at is None
    assert by_version.run_id == v1.run_id and by_version.data_commits == v1.data_commits
    assert by_version.params == v1.params and by_version.metrics == v1.metrics
    assert first.id in [e.id for e in by_version.alias_events]
    assert all(e.to_version == "1.0.0" for e in by_version.alias_events)
    assert next(e.action for e in by_version.audit_events) == "model.version.register"
    assert all(e.object == f"model:{MODEL}@1.0.0" for e in by_version.audit_events)
    assert by_version.audit_events[0].after["run_id"] == v1.run_id

    now = r.lineage(MODEL, "lineage")
    assert now.version == v2 and now.alias == "lineage"
    assert [e.id for e in now.alias_events] == [second.id]
    assert now.data_commits == v2.data_commits != v1.data_commits

    then = r.lineage(MODEL, "lineage", at=first.at + (second.at - first.at) / 2)
    assert then.version == v1 and then.run_id == v1.run_id
    assert [e.id for e in then.alias_events] == [first.id]

    # Back onto 1.0.0: now both moves onto it count; at the earlier time only the first.
    r.rollback(MODEL, "lineage", reason="back")
    back = r.alias_history(MODEL, "lineage")[-1]
    assert [e.id for e in r.lineage(MODEL, "lineage").alias_events] == [first.id, back.id]
    assert [e.id for e in r.lineage(MODEL, "lineage", at=back.at).alias_events] == [first.id, back.id]
    just_before = r.lineage(MODEL, "lineage", at=back.at - timedelta(microseconds=1))
    assert just_before.version == v2 and [e.id for e in just_before.alias_events] == [second.id]
    assert [e.id for e in r.lineage(MODEL, "lineage",
                                    at=first.at + (second.at - first.at) / 2).alias_events] == [first.id]
    with pytest.raises(NotFound, match="pointed to no version"):
        r.lineage(MODEL, "lineage", at=first.at - timedelta(seconds=1))


def test_model_card_round_trip_and_lineage(reg) -> None:
    p, _v1, v2 = reg
    r = p.registry
    assert r.model_card(MODEL, "1.1.0") == {}
    card = {"intended_use": "pre-screening consumer loans", "limitations": ["not for mortgages"],
            "evaluation": {"roc_auc": v2.metrics["roc_auc"]},
            "fairness": {"attribute": "gender", "demographic_parity_difference": 0.03}}
    assert r.set_model_card(MODEL, "1.1.0", card, actor="carol") == card
    assert r.model_card(MODEL, "1.1.0") == card
    revised = {**card, "limitations": ["not for mortgages", "not for business loans"]}
    r.set_model_card(MODEL, "1.1.0", revised, actor="carol")
    assert r.model_card(MODEL, "1.1.0") == revised
    assert r.model_card(MODEL, "1.0.0") == {}
    lineage = r.lineage(MODEL, "1.1.0")
    assert lineage.card == revised
    card_events = [e for e in lineage.audit_events if e.action == "model.card.set"]
    assert [(e.before, e.after, e.actor) for e in card_events] == [({}, card, "carol"), (card, revised, "carol")]


def test_audit_events_and_chain(reg) -> None:
    p, _v1, _v2 = reg
    r = p.registry
    r.set_alias(MODEL, "audited", "1.0.0", reason="why not", actor="dave")
    from mlops_lite.records import Identity

    forced = p.policy.override(MODEL, "1.1.0", alias="audited", reason="incident", identity=Identity("admin", "admin"),
                               move=False)
    r.set_alias(MODEL, "audited", "1.1.0", reason="override for incident", actor="admin", decision=forced.id)
    r.delete_alias(MODEL, "audited", reason="done", actor="dave")
    events = [e for e in p.audit.events(limit=50) if e.object == f"model:{MODEL}/alias:audited"][::-1]
    assert [(e.action, e.actor, e.before, e.after["version"], e.after["reason"]) for e in events] == [
        ("model.alias.move", "dave", {"version": None}, "1.0.0", "why not"),
        ("model.alias.override", "admin", {"version": "1.0.0"}, "1.1.0", "override for incident"),
        ("model.alias.delete", "dave", {"version": "1.1.0"}, None, "done"),
    ]
    history = r.alias_history(MODEL, "audited")
    assert [e.kind for e in history] == ["move", "override", "delete"]
    assert [e.after["event"] for e in events] == [e.id for e in history]
    assert p.audit.verify() is None


def test_a_failed_move_writes_nothing(reg) -> None:
    p, _v1, _v2 = reg
    r = p.registry
    before_audit = p.audit.count()
    before_history = r.alias_history(MODEL)
    for call in (lambda: r.set_alias(MODEL, "ghost", "7.0.0", reason="x"),
                 lambda: r.set_alias(MODEL, "Ghost", "1.0.0", reason="x"),
                 lambda: r.set_alias(MODEL, "ghost", "1.0.0", reason="x", expected="1.0.0")):
        with pytest.raises((NotFound, InvalidInput, Conflict)):
            call()
    assert p.audit.count() == before_audit
    assert r.alias_history(MODEL) == before_history
    assert "ghost" not in r.aliases(MODEL)


def _ms(call, repeat: int = 30) -> float:
    call()  # warm
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


DIV100 = "CAST(floor(i / 100.0) AS INTEGER)"  # integer division in DuckDB and PostgreSQL alike


def test_alias_at_and_lineage_with_10000_versions(tmp_path: Path) -> None:
    """10,000 versions and 10,000 alias events, inserted set-based; the queries stay
    correct (timings are printed, never asserted)."""
    n = 10_000
    base = datetime(2025, 3, 1, tzinfo=UTC)
    with connect(home=tmp_path / "home") as p:
        start = time.perf_counter()
        with p._store.engine.begin() as db:
            db.execute(text("INSERT INTO models (name, description, created_at) VALUES ('bulk', '', :at)"),
                       {"at": base})
            db.execute(text(
                "INSERT INTO model_versions (model, version, digest, size, signature, run_id, data_commits, "
                "params, metrics, created_at, created_by) "
                "SELECT 'bulk', '1.' || " + DIV100 + " || '.' || (i % 100), 'sha-' || i, 1, '{}'::JSON, 'run-' || i, "
                "('[\"commit-' || i || '\"]')::JSON, ('{\"seed\": ' || i || '}')::JSON, "
                "('{\"roc_auc\": ' || (0.5 + i / 100000.0) || '}')::JSON, :at + i * INTERVAL '1 second', 'bulk' "
                "FROM generate_series(0, :n - 1) t(i)"), {"at": base, "n": n})
            # Event i moves 'production' (even i) or 'staging' (odd i) to version i, i seconds after base.
            db.execute(text(
                "INSERT INTO alias_events (id, model, alias, seq, kind, from_version, to_version, actor, reason, "
                "occurred_at) "
                "SELECT 'e' || i, 'bulk', CASE WHEN i % 2 = 0 THEN 'production' ELSE 'staging' END, "
                "CAST(floor(i / 2.0) AS INTEGER) + 1, "
                "'move', CASE WHEN i >= 2 THEN '1.' || CAST(floor((i - 2) / 100.0) AS INTEGER) || '.' || ((i - 2) % 100) "
                "END, '1.' || " + DIV100 + " || '.' || (i % 100), 'bulk', 'event ' || i, :at + i * INTERVAL '1 second' "
                "FROM generate_series(0, :n - 1) t(i)"), {"at": base, "n": n})
            db.execute(text(
                "INSERT INTO model_aliases (model, alias, version, moved_at, moved_by) VALUES "
                "('bulk', 'production', '1.99.98', :last, 'bulk'), ('bulk', 'staging', '1.99.99', :last, 'bulk')"),
                {"last": base + timedelta(seconds=n - 1)})
        print(f"\ninserted {n} versions and {n} alias events in {(time.perf_counter() - start) * 1000:.0f} ms")
        r = p.registry
        assert len(r.list_versions("bulk")) == n

        when = base + timedelta(seconds=5000.5)  # just after event 5000 (production -> 1.50.0)
        at_t = r.alias_at("bulk", "production", when)
        assert at_t is not None and at_t.version == "1.50.0" and at_t.data_commits == ("commit-5000",)
        assert r.alias_at("bulk", "staging", when).version == "1.49.99"  # event 4999
        assert r.alias_at("bulk", "production", base - timedelta(seconds=1)) is None
        assert r.alias_at("bulk", "production", base).version == "1.0.0"
        assert r.alias_at("bulk", "production", base + timedelta(days=1)).version == "1.99.98"

        lineage = r.lineage("bulk", "production", at=when)
        assert lineage.version.version == "1.50.0" and lineage.run_id == "run-5000"
        assert lineage.data_commits == ("commit-5000",) and lineage.params == {"seed": 5000}
        assert [e.id for e in lineage.alias_events] == ["e5000"]
        by_version = r.lineage("bulk", "1.73.21")
        assert by_version.run_id == "run-7321" and [e.id for e in by_version.alias_events] == ["e7321"]
        assert r.lineage("bulk", "staging").version.version == "1.99.99"

        history = r.alias_history("bulk", "production")
        assert len(history) == n // 2
        _assert_no_gap(history)
        # A real move on top of the bulk history continues it.
        assert r.rollback("bulk", "production", reason="bulk rollback").version == "1.99.96"
        assert r.alias_history("bulk", "production")[-1].seq == n // 2 + 1

        alias_at_ms = _ms(lambda: r.alias_at("bulk", "production", when))
        lineage_alias_ms = _ms(lambda: r.lineage("bulk", "production", at=when))
        lineage_version_ms = _ms(lambda: r.lineage("bulk", "1.73.21"))
        print(f"alias_at: {alias_at_ms:.2f} ms, lineage(alias, at): {lineage_alias_ms:.2f} ms, "
              f"lineage(version): {lineage_version_ms:.2f} ms (median of 30, {n} versions, {n} alias events)")
        assert p.audit.verify() is None
