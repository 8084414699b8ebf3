import pytest

from mlops_lite import Conflict, InvalidInput, NotFound, TrainingSpec
from mlops_lite.registry import next_version

from ..conftest import DATA, FEATURE_EXCLUDE


def _train(platform, source: str = "loans.csv", **options):
    platform.data.repo("loans").create(classification="internal", exist_ok=True)
    platform.data.ingest("loans", DATA / source, "loans/train.csv")
    table = platform.data.repo("loans").ref("main").read_table("loans/train.csv").table
    spec = TrainingSpec.infer(table, target="default", exclude=FEATURE_EXCLUDE, **options)
    return platform.training.train("loans", "main", "loans/train.csv", spec)


def test_semver_rules() -> None:
    assert next_version(None, signature_changed=False, data_changed=False) == "1.0.0"
    assert next_version("1.2.3", signature_changed=True, data_changed=True) == "2.0.0"
    assert next_version("1.2.3", signature_changed=False, data_changed=True) == "1.3.0"
    assert next_version("1.2.3", signature_changed=False, data_changed=False) == "1.2.4"


def test_register_records_digest_and_lineage(platform) -> None:
    result = _train(platform)
    version = platform.registry.register_from_run("loan-default", result.run.id)
    assert version.version == "1.0.0"
    assert version.digest == result.model_digest
    assert version.run_id == result.run.id and version.data_commits == (result.data_commit,)
    assert version.metrics["roc_auc"] == result.metrics["roc_auc"]
    assert version.params["algorithm"] == "logistic_regression"
    assert [s["name"] for s in version.signature["inputs"]][:2] == ["income", "loan_amount"]
    import hashlib

    assert hashlib.sha256(platform.registry.model_bytes("loan-default", "1.0.0")).hexdigest() == version.digest


def test_same_digest_returns_the_same_version_and_new_data_bumps_minor(platform) -> None:
    first = _train(platform)
    v1 = platform.registry.register_from_run("loan-default", first.run.id)
    again = _train(platform)
    assert again.model_digest == first.model_digest
    assert platform.registry.register_from_run("loan-default", again.run.id) == v1
    other_algorithm = _train(platform, algorithm="random_forest")
    assert platform.registry.register_from_run("loan-default", other_algorithm.run.id).version == "1.0.1"
    drifted = _train(platform, "loans_drifted.csv")
    assert platform.registry.register_from_run("loan-default", drifted.run.id).version == "1.1.0"
    assert [m.versions for m in platform.registry.list_models()] == [("1.0.0", "1.0.1", "1.1.0")]


def test_explicit_version_must_be_greater(platform) -> None:
    result = _train(platform)
    platform.registry.register_from_run("loan-default", result.run.id, version="2.0.0")
    other = _train(platform, algorithm="random_forest")
    with pytest.raises(InvalidInput) as info:
        platform.registry.register_from_run("loan-default", other.run.id, version="1.5.0")
    assert info.value.field == "version"
    with pytest.raises(InvalidInput):
        platform.registry.register_from_run("loan-default", other.run.id, version="v3")
    assert [v.version for v in platform.registry.list_versions()] == ["2.0.0"]


def test_refusals(platform) -> None:
    with pytest.raises(NotFound):
        platform.registry.register_from_run("loan-default", "no-such-run")
    run = platform.tracking.start_run("unfinished")
    with pytest.raises(Conflict, match="running"):
        platform.registry.register_from_run("loan-default", run.id)
    run.end()
    with pytest.raises(InvalidInput, match=r"model\.onnx"):
        platform.registry.register_from_run("loan-default", run.id)
    with pytest.raises(InvalidInput) as info:
        platform.registry.register_from_run("Bad Name", run.id)
    assert info.value.field == "model"
    assert platform.registry.list_models() == []
