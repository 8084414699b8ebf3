"""Canary, blue-green, shadow, promote and rollback on real sessions and a real DuckDB file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_lite import Conflict, InvalidInput, NotFound, TrainingSpec
from mlops_lite.errors import IntegrityError

from ..conftest import FEATURE_EXCLUDE, build_loop, holdout_rows


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, object, str]]:
    """v1 (logistic regression) deployed as 'loans'; v2 (a random forest) registered."""
    platform, _, spec = build_loop(tmp_path_factory.mktemp("release") / "home")
    table = platform.data.repo("loans").ref("main").read_table("loans/train.csv").table
    forest = TrainingSpec.infer(table, target="default", exclude=FEATURE_EXCLUDE, sensitive="gender",
                                algorithm="random_forest", params={"n_estimators": 20, "max_depth": 6})
    run = platform.training.train("loans", "main", "loans/train.csv", forest).run
    v2 = platform.registry.register_from_run("loan-default", run.id)
    assert v2.version != "1.0.0"
    yield platform, spec, v2.version
    platform.close()


@pytest.fixture
def fresh(two) -> Iterator[tuple[object, object, str]]:
    """Each test starts from 'loans' serving v1 alone."""
    platform, spec, v2 = two
    platform.deployments.deploy("loans", "loan-default", "1.0.0")
    yield platform, spec, v2


def _versions(platform, rows, n: int, key=None) -> Counter:
    return Counter(platform.deployments.predict("loans", rows, key=key).version for _ in range(n))


def test_canary_sends_its_weight_and_sticks_by_key(fresh) -> None:
    platform, spec, v2 = fresh
    rows = holdout_rows(spec, 1)
    record = platform.deployments.canary("loans", "loan-default", v2, weight=0.25)
    assert (record.strategy, record.version, record.candidate_version, record.weight) == \
        ("canary", "1.0.0", v2, 0.25)
    seen = _versions(platform, rows, 2000)
    assert set(seen) == {"1.0.0", v2}
    assert 0.19 < seen[v2] / 2000 < 0.31, seen
    answered = platform.deployments.predict("loans", rows)
    assert answered.slot == ("canary" if answered.version == v2 else "primary")
    # sticky: one key always lands on one side; many keys split near the weight
    for key in ("user-1", "user-2", "user-3"):
        assert len(_versions(platform, rows, 20, key=key)) == 1
    sides = Counter(platform.deployments.predict("loans", rows, key=f"u{i}").version for i in range(1000))
    assert 0.19 < sides[v2] / 1000 < 0.31, sides
    # the weight changes in place; promotion makes the candidate the only version
    assert platform.deployments.canary("loans", "loan-default", v2, weight=0.5).weight == 0.5
    promoted = platform.deployments.promote("loans")
    assert (promoted.strategy, promoted.version, promoted.candidate_version) == ("single", v2, None)
    assert set(_versions(platform, rows, 50)) == {v2}


def test_blue_green_switches_and_switches_back_at_once(fresh) -> None:
    platform, spec, v2 = fresh
    rows = holdout_rows(spec, 3)
    staged = platform.deployments.stage("loans", "loan-default", v2)
    assert (staged.strategy, staged.live_slot, staged.candidate_version) == ("blue_green", "blue", v2)
    assert set(_versions(platform, rows, 20)) == {"1.0.0"}  # the standby answers nobody
    switched = platform.deployments.switch("loans")
    assert (switched.version, switched.candidate_version, switched.live_slot) == (v2, "1.0.0", "green")
    assert set(_versions(platform, rows, 20)) == {v2}
    back = platform.deployments.switch("loans")
    assert (back.version, back.live_slot) == ("1.0.0", "blue")
    assert set(_versions(platform, rows, 20)) == {"1.0.0"}
    actions = [r.action for r in platform.deployments.revisions("loans")[:4]]
    assert actions == ["switch", "switch", "stage", "deploy"]


def test_shadow_mirrors_traffic_and_logs_both_answers(fresh) -> None:
    platform, spec, v2 = fresh
    rows = holdout_rows(spec, 2)
    platform.deployments.shadow("loans", "loan-default", v2)
    ids = []
    for _ in range(5):
        answer = platform.deployments.predict("loans", rows)
        assert (answer.version, answer.slot) == ("1.0.0", "primary")
        ids.append(answer.request_id)
    assert platform.deployments.wait_for_shadows()
    assert platform.monitoring.flush()
    listed = ", ".join(f"'{i}'" for i in ids)
    got = platform.monitoring.query(
        f"SELECT slot, version, count(*) AS n FROM predictions WHERE request_id IN ({listed}) "
        f"GROUP BY ALL ORDER BY slot").to_pylist()
    assert got == [{"slot": "primary", "version": "1.0.0", "n": 10}, {"slot": "shadow", "version": v2, "n": 10}]
    features = platform.monitoring.query(
        f"SELECT f_income FROM predictions WHERE request_id = '{ids[0]}' AND slot = 'primary'").column(0).to_pylist()
    assert features == [float(r["income"]) for r in rows]


def test_rollback_restores_the_revision_before(fresh) -> None:
    platform, spec, v2 = fresh
    before = platform.deployments.get("loans")
    platform.deployments.canary("loans", "loan-default", v2, weight=0.3)
    rolled = platform.deployments.rollback("loans")
    assert (rolled.strategy, rolled.version, rolled.candidate_version) == ("single", "1.0.0", None)
    assert rolled.revision == before.revision + 2
    assert set(_versions(platform, holdout_rows(spec, 1), 50)) == {"1.0.0"}
    events = [e for e in platform.audit.events(limit=5) if e.object == "deployment:loans"]
    assert events[0].action == "deployment.rollback" and events[1].action == "deployment.canary"
    with pytest.raises(InvalidInput) as info:
        platform.deployments.rollback("loans", to_revision=rolled.revision)
    assert info.value.field == "to_revision"


@pytest.mark.parametrize(("call", "error", "field"), [
    (lambda d, v2: d.canary("loans", "loan-default", v2, weight=1.5), InvalidInput, "weight"),
    (lambda d, v2: d.canary("loans", "loan-default", v2, weight=0), InvalidInput, "weight"),
    (lambda d, v2: d.canary("loans", "loan-default", "9.9.9"), NotFound, None),
    (lambda d, v2: d.canary("nope", "loan-default", v2), NotFound, None),
    (lambda d, v2: d.canary("loans", "loan-default", "1.0.0"), Conflict, None),
    (lambda d, v2: d.switch("loans"), Conflict, None),
    (lambda d, v2: d.promote("loans"), Conflict, None),
])
def test_bad_changes_are_refused_and_change_nothing(fresh, call, error, field) -> None:
    platform, _, v2 = fresh
    before = platform.deployments.get("loans")
    with pytest.raises(error) as info:
        call(platform.deployments, v2)
    if field:
        assert info.value.field == field
    assert platform.deployments.get("loans") == before


def test_a_corrupt_model_file_is_refused_at_load_and_the_old_route_serves(fresh, tmp_path: Path) -> None:
    platform, spec, _ = fresh
    table = platform.data.repo("loans").ref("main").read_table("loans/train.csv").table
    other = TrainingSpec.infer(table, target="default", exclude=FEATURE_EXCLUDE, algorithm="random_forest",
                               params={"n_estimators": 5, "max_depth": 3})
    run = platform.training.train("loans", "main", "loans/train.csv", other).run
    v3 = platform.registry.register_from_run("loan-default", run.id)
    path = platform.registry._objects.path_of(v3.digest)
    good = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(good[:-10] + b"corrupted!")
    before = platform.deployments.get("loans")
    try:
        with pytest.raises(IntegrityError, match="digest"):
            platform.deployments.stage("loans", "loan-default", v3.version)
        assert platform.deployments.get("loans") == before
        assert platform.deployments.predict("loans", holdout_rows(spec, 1)).version == "1.0.0"
    finally:
        path.write_bytes(good)


def test_micro_batched_routes_answer_like_unbatched_ones(fresh) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mlops_lite.inference.routing import Router

    platform, spec, _ = fresh
    record = platform.deployments.get("loans")
    batches: list[tuple[int, int, str]] = []
    router = Router(platform.registry.artifact_bytes, providers=platform.deployments.providers,
                    batch_rows=64, batch_wait_ms=2.0,
                    on_batch=lambda digest, rows, requests, wait_s, reason: batches.append((rows, requests, reason)))
    router.apply(record, platform.deployments.signatures(record))
    rows = holdout_rows(spec, 40)
    try:
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda r: router.predict("loans", [r]), rows))
        from server.metrics import Metrics, parse

        samples = parse(Metrics().render(serving=router.stats()))
    finally:
        router.close()
    by_name: dict[str, float] = {}
    for (name, _labels), value in samples.items():
        by_name[name] = by_name.get(name, 0.0) + value
    assert by_name["mlops_lite_microbatches_total"] == len(batches)
    assert by_name["mlops_lite_microbatch_rows_sum"] == 40
    assert by_name["mlops_lite_route_info"] == 1 and by_name["mlops_lite_model_load_seconds"] > 0
    want = platform.deployments.predict("loans", rows)
    assert [g.predictions[0] for g in got] == list(want.predictions)
    assert max(abs(g.probabilities[0][1] - w[1]) for g, w in zip(got, want.probabilities, strict=True)) < 1e-6
    assert sum(b[1] for b in batches) == 40 and len(batches) < 40  # concurrent requests shared runs
