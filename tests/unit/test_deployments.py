import pytest

from mlops_lite import InvalidInput, NotFound, PolicyViolation, TrainingSpec
from mlops_lite.config import load_settings
from mlops_lite.platform import Platform

from ..conftest import DATA, FEATURE_EXCLUDE, holdout_rows


def test_predict_answers_version_digest_and_probabilities(loop) -> None:
    platform, _, spec = loop
    rows = holdout_rows(spec, 10)
    prediction = platform.deployments.predict("loans", rows)
    deployment = platform.deployments.get("loans")
    assert prediction.version == deployment.version == "1.0.0"
    assert prediction.digest == deployment.digest
    assert len(prediction.predictions) == 10 and set(prediction.predictions) <= {0, 1}
    assert all(abs(sum(p) - 1) < 1e-5 for p in prediction.probabilities)
    assert prediction.classes == (0, 1)


@pytest.mark.parametrize(("change", "field"), [
    (lambda r: r.pop("income"), "instances[0].income"),
    (lambda r: r.update(income="high"), "instances[0].income"),
    (lambda r: r.update(income=True), "instances[0].income"),
    (lambda r: r.update(income=float("nan")), "instances[0].income"),
    (lambda r: r.update(purpose=3), "instances[0].purpose"),
    (lambda r: r.update(favourite_colour="red"), "instances[0].favourite_colour"),
])
def test_bad_instances_name_the_field(loop, change, field: str) -> None:
    platform, _, spec = loop
    row = holdout_rows(spec, 1)[0]
    change(row)
    with pytest.raises(InvalidInput) as info:
        platform.deployments.predict("loans", [row])
    assert info.value.field == field and info.value.expected


def test_batch_shape_errors(loop) -> None:
    platform, _, spec = loop
    with pytest.raises(InvalidInput, match="empty"):
        platform.deployments.predict("loans", [])
    with pytest.raises(InvalidInput):
        platform.deployments.predict("loans", "not a list")
    with pytest.raises(InvalidInput) as info:
        platform.deployments.predict("loans", [1])
    assert info.value.field == "instances[0]"
    with pytest.raises(NotFound):
        platform.deployments.predict("nope", holdout_rows(spec, 1))


def test_the_gate_refuses_a_weak_model_and_nothing_moves(tmp_path) -> None:
    settings = load_settings(home=tmp_path / "home", min_roc_auc=0.99)
    with Platform(settings) as platform:
        platform.data.repo("loans").create(classification="internal", exist_ok=True)
        platform.data.ingest("loans", DATA / "loans.csv", "loans/train.csv")
        table = platform.data.repo("loans").ref("main").read_table("loans/train.csv").table
        spec = TrainingSpec.infer(table, target="default", exclude=FEATURE_EXCLUDE)
        run = platform.training.train("loans", "main", "loans/train.csv", spec).run
        version = platform.registry.register_from_run("loan-default", run.id)
        events = platform.audit.count()
        with pytest.raises(PolicyViolation) as info:
            platform.deployments.deploy("loans", version.model, version.version)
        gates = {g["gate"]: g for g in info.value.details["gates"]}
        assert gates["metric.roc_auc"]["passed"] is False and gates["lineage.complete"]["passed"] is True
        assert platform.deployments.list() == []
        assert platform.audit.count() == events


def test_redeploy_bumps_the_revision(loop) -> None:
    platform, _, _ = loop
    before = platform.deployments.get("loans")
    after = platform.deployments.deploy("loans", before.model, before.version)
    assert after.revision == before.revision + 1
    with pytest.raises(InvalidInput):
        platform.deployments.deploy("Bad Name", before.model, before.version)
    with pytest.raises(NotFound):
        platform.deployments.deploy("loans", before.model, "9.9.9")
    assert platform.deployments.get("loans").revision == after.revision


def test_the_fast_feed_equals_the_checked_one_and_defers_on_anything_odd(loop) -> None:
    import numpy as np

    platform, _, spec = loop
    session = platform.deployments.route("loans").primary.session
    rows = holdout_rows(spec, 50)
    fast, checked = session._fast_feed(rows), session._checked_feed(rows)
    assert fast is not None and fast.keys() == checked.keys()
    for name in fast:
        assert fast[name].dtype == checked[name].dtype and np.array_equal(fast[name], checked[name])
    for odd in ({"income": True}, {"income": float("inf")}, {"income": "12"}, {"purpose": 3}, {"extra": 1.0}):
        assert session._fast_feed([rows[0], {**rows[1], **odd}]) is None  # the checked path names the field
