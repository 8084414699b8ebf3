"""Residency that is enforced: the policy's classification -> regions rules, and the one
check every placement of bytes goes through (a write, a repository created or reconfigured,
a transfer out, a deployment), refused with the rule, audited without data, nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops_lite.errors import InvalidInput, NotFound, PolicyViolation
from mlops_lite.policy.document import ResidencyRule, load_policy
from mlops_lite.privacy.profile import PrivacyProfile
from mlops_lite.privacy.residency import classification_of, most_restricted

CLASSES = """
[residency.classes]
personal = ["ae"]
sensitive-personal = ["ae"]
internal = ["ae", "eu"]
public = ["*"]
"""


def _policy(home: Path, text: str, name: str = "default") -> None:
    (home / "policies").mkdir(parents=True, exist_ok=True)
    (home / "policies" / f"{name}.toml").write_text(text)


def _refused(call: Any) -> PolicyViolation:
    with pytest.raises(PolicyViolation) as caught:
        call()
    return caught.value


def _refusals(platform: Any) -> list[Any]:
    return [e for e in platform.audit.events(limit=50) if e.action == "residency.refused"]


# ---- the rules ------------------------------------------------------------------------

def test_classes_map_to_regions_and_old_policies_keep_allowed_regions(tmp_path: Path) -> None:
    _policy(tmp_path, CLASSES)
    spec = load_policy(tmp_path, None, min_roc_auc=0.5)
    personal = spec.residency_rule("personal")
    assert personal == ResidencyRule("residency.classes.personal", ("ae",))
    assert spec.residency_rule("internal") is not None and spec.residency_rule("internal").permits("eu-west-1")
    assert not personal.permits("eu") and not personal.permits("aex")  # a sub-region needs the '-'
    assert spec.residency_rule("public").permits("us-east-1")  # type: ignore[union-attr]

    _policy(tmp_path, '[residency]\nallowed_regions = ["ae"]\n')
    old = load_policy(tmp_path, None, min_roc_auc=0.5)
    assert old.residency_rule("internal") == ResidencyRule("residency.allowed_regions", ("ae",))

    _policy(tmp_path, '[thresholds]\nroc_auc = 0.6\n')
    assert load_policy(tmp_path, None, min_roc_auc=0.5).residency_rule("personal") is None  # unrestricted


@pytest.mark.parametrize(("text", "field"), [
    ('[residency.classes]\nsecret = ["ae"]\n', "residency.classes.secret"),
    ('[residency.classes]\npersonal = []\n', "residency.classes.personal"),
    ('[residency.classes]\npersonal = ["Abu Dhabi"]\n', "residency.classes.personal"),
    ('[residency.classes]\npersonal = "ae"\n', "residency.classes.personal"),
    ('[residency]\nclasses = 3\n', "residency.classes"),
    ('[residency]\nallowed_regions = "ae"\n', "residency.allowed_regions"),
    ('[residency]\nregions = ["ae"]\n', "residency.regions"),
])
def test_a_bad_residency_section_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    _policy(tmp_path, text)
    with pytest.raises(InvalidInput) as caught:
        load_policy(tmp_path, None, min_roc_auc=0.5)
    assert caught.value.field == field


def test_unclassified_is_enforced_as_personal() -> None:
    assert classification_of(None) == "unclassified"
    assert most_restricted(["public", "unclassified"]) == "personal"
    assert most_restricted(["internal", "sensitive-personal"]) == "sensitive-personal"
    assert most_restricted([]) is None


# ---- enforcement in the core --------------------------------------------------------------

def _repo(platform: Any, name: str, classification: str, region: str | None = None) -> Any:
    repo = platform.data.repo(name)
    repo.create(privacy=PrivacyProfile(classification=classification, region=region))
    return repo


def test_a_write_outside_the_allowed_regions_is_refused_and_nothing_moves(platform: Any, home: Path) -> None:
    repo = _repo(platform, "people", "personal", region="eu-west-1")
    dev = repo.branch("dev")
    dev.create("main")
    dev.upload("a.csv", b"x,y\n1,2\n")
    head = dev.commit("before the policy").id
    dev.upload("b.csv", b"x,y\n3,4\n")
    _policy(home, CLASSES)

    refusal = _refused(lambda: dev.commit("after the policy"))
    assert refusal.details["rule"] == "residency.classes.personal"
    assert refusal.details["region"] == "eu-west-1" and refusal.details["allowed"] == ["ae"]
    assert "residency.classes.personal" in str(refusal)
    assert dev.head().id == head  # the branch did not move
    refusal = _refused(lambda: dev.upload("c.csv", b"x,y\n5,6\n"))
    assert refusal.details["action"] == "data.upload"
    assert {d.path for d in dev.uncommitted()} == {"b.csv"}  # c.csv was not staged
    main_head = repo.branch("main").head()
    refusal = _refused(lambda: dev.merge_into("main"))
    assert refusal.details["rule"] == "residency.classes.personal"
    assert repo.branch("main").head() == main_head

    events = _refusals(platform)
    assert [e.after["action"] for e in events] == ["data.merge", "data.upload", "data.commit"]  # newest first
    assert all(e.object == "data:people" and e.after["rule"] == "residency.classes.personal" for e in events)
    assert all(set(e.after) == {"rule", "action", "classification", "region", "allowed"} for e in events)

    _policy(home, CLASSES.replace('personal = ["ae"]', 'personal = ["ae", "eu"]', 1))
    assert dev.commit("allowed again").id != head  # the policy is read at every write


def test_a_repository_created_or_reconfigured_into_a_disallowed_region_is_refused(platform: Any,
                                                                                 home: Path) -> None:
    _policy(home, CLASSES)
    refusal = _refused(lambda: _repo(platform, "abroad", "internal", region="us-east-1"))
    assert refusal.details["rule"] == "residency.classes.internal"
    with pytest.raises(NotFound):
        platform.data.repo("abroad").info()

    repo = _repo(platform, "home-data", "internal", region="eu-central-1")  # "eu" allows its sub-regions
    before = repo.config().privacy
    refusal = _refused(lambda: repo.configure(privacy=PrivacyProfile(classification="personal",
                                                                      region="eu-central-1")))
    assert refusal.details["rule"] == "residency.classes.personal"
    assert repo.config().privacy == before
    _repo(platform, "open-data", "public", region="us-east-1")
    assert {e.after["action"] for e in _refusals(platform)} == {"data.repository.create",
                                                                "data.repository.configure"}


def test_a_transfer_to_a_disallowed_region_is_refused(platform: Any, home: Path) -> None:
    _repo(platform, "customers", "sensitive-personal")
    _repo(platform, "catalogue", "internal")
    _policy(home, CLASSES)
    refusal = _refused(lambda: platform.compliance.check_transfer("customers", "eu-west-1"))
    assert refusal.details["rule"] == "residency.classes.sensitive-personal"
    assert refusal.details["action"] == "data.export"
    platform.compliance.check_transfer("catalogue", "eu-west-1")
    platform.compliance.check_transfer("customers", "ae")
    assert len(_refusals(platform)) == 1
    with pytest.raises(InvalidInput):
        platform.compliance.check_transfer("customers", "")


def test_the_listing_says_where_each_store_lives(platform: Any, home: Path) -> None:
    _repo(platform, "people", "personal", region="eu-west-1")
    _repo(platform, "catalogue", "internal")
    _policy(home, CLASSES)
    entries = {(e.kind, e.name): e for e in platform.compliance.residency()}
    assert entries[("dataset", "people")].status == "violating"
    assert entries[("dataset", "catalogue")].status == "allowed"
    assert entries[("dataset", "catalogue")].location == str(platform.settings.objects_dir)
    artifacts = entries[("artifacts", "artifact store")]
    assert artifacts.classification == "personal" and artifacts.region == "ae" and artifacts.status == "allowed"
    assert entries[("prediction-log", "prediction log")].location == str(platform.settings.predictions_dir)


# ---- the gate and deployments: a trained, deployed model --------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.conftest import build_loop

    home = tmp_path_factory.mktemp("residency") / "home"
    platform, _, _ = build_loop(home)
    platform.data.repo("loans").configure(privacy=PrivacyProfile(classification="personal", region="ae"))
    yield platform, home
    platform.close()


def test_the_gate_checks_the_real_locations_of_the_version(trained: Any) -> None:
    platform, home = trained
    version = platform.registry.list_versions()[-1]
    try:
        _policy(home, CLASSES)
        gate = next(g for g in platform.policy.evaluate(version) if g.gate == "residency.region")
        assert gate.passed, gate.detail
        kinds = {(m["kind"], m["status"]) for m in gate.evidence["locations"]}
        assert kinds == {("dataset", "allowed"), ("artifacts", "allowed")}
        assert any(name.startswith("loans@") and region == "ae" for name, region in gate.measured.items())

        _policy(home, CLASSES.replace('personal = ["ae"]', 'personal = ["eu"]', 1))
        gate = next(g for g in platform.policy.evaluate(version) if g.gate == "residency.region")
        assert not gate.passed
        assert "residency.classes.personal" in gate.detail and "loans@" in gate.detail
        assert {m["status"] for m in gate.evidence["locations"]} == {"violating"}
        assert gate.bound == {"residency.classes.personal": ["eu"]}
    finally:
        (home / "policies" / "default.toml").unlink()


def test_a_deployment_into_a_disallowed_region_is_refused(trained: Any) -> None:
    platform, home = trained
    version = platform.registry.list_versions()[-1]
    before = platform.deployments.get("loans").revision
    try:
        _policy(home, CLASSES.replace('personal = ["ae"]', 'personal = ["eu"]', 1))
        refusal = _refused(lambda: platform.deployments.deploy("loans", version.model, version.version))
        assert refusal.details["rule"] == "residency.classes.personal"
        assert refusal.details["object"] == "deployment:loans" and refusal.details["region"] == "ae"
        refusal = _refused(lambda: platform.deployments.deploy("elsewhere", version.model, version.version))
        assert platform.deployments.get("loans").revision == before
        with pytest.raises(NotFound):
            platform.deployments.get("elsewhere")
        assert _refusals(platform)[0].after["action"] == "deployment.deploy"
    finally:
        (home / "policies" / "default.toml").unlink()
