"""``platform.compliance``, local and over HTTP: the same residency listing, the same
refusal (the rule in the error, audited, nothing written) and the same report records."""

from __future__ import annotations

from typing import Any

from mlops_lite.errors import PermissionDenied, PolicyViolation
from mlops_lite.privacy.profile import PrivacyProfile
from tests.contract.conftest import actor_of, home_of, refused

POLICY = '[residency.classes]\npersonal = ["ae"]\ninternal = ["ae", "eu"]\npublic = ["*"]\n'


def _setup(api: Any) -> Any:
    api.data.repo("applicants").create(privacy=PrivacyProfile(
        classification="personal", purpose="credit scoring", lawful_basis="contract",
        categories=("contact details", "financial"), data_subjects="loan applicants", retention_days=365))
    api.data.repo("euro-copy").create(privacy=PrivacyProfile(classification="personal", region="eu-west-1"))
    folder = home_of(api) / "policies"
    folder.mkdir(exist_ok=True)
    (folder / "default.toml").write_text(POLICY)
    return api.data.repo("euro-copy")


def test_residency_refusals_and_the_report_are_the_same_local_and_remote(api: Any) -> None:
    euro = _setup(api)
    listed = {(e.kind, e.name): e for e in api.compliance.residency()}
    assert listed[("dataset", "euro-copy")].status == "violating"
    assert listed[("dataset", "euro-copy")].rule == "residency.classes.personal"
    assert listed[("dataset", "applicants")].status == "allowed"
    assert listed[("artifacts", "artifact store")].classification == "personal"

    dev = euro.branch("dev")
    dev.create("main")
    error = refused(PolicyViolation, lambda: dev.upload("a.csv", b"x\n1\n"))
    assert "residency.classes.personal" in str(error)  # over HTTP the lakeFS API's message carries it
    assert dev.uncommitted() == []
    error = refused(PolicyViolation, lambda: api.compliance.check_transfer("applicants", "us-east-1"))
    assert error.details["rule"] == "residency.classes.personal" and error.details["action"] == "data.export"

    report = api.compliance.report()
    records = {r.repository: r for r in report.records_of_processing}
    assert records["applicants"].purpose == "credit scoring" and records["applicants"].retention_days == 365
    assert records["applicants"].categories == ("contact details", "financial")
    assert records["euro-copy"].region == "eu-west-1"
    assert report.encryption.encrypted and report.audit_chain.verified
    assert [(e.details["action"], e.object) for e in report.residency_refusals] == [
        ("data.upload", "data:euro-copy"), ("data.export", "data:applicants")]
    assert report.residency_refusals[-1].actor == actor_of(api)


def test_the_report_needs_an_admin_over_http(api: Any, api_kind: str) -> None:
    if api_kind == "local":
        return  # roles are the server's: in-process the platform acts as its own actor
    from mlops_lite.client import RemotePlatform

    _, secret = api.tokens.create("ops", "operator")
    with RemotePlatform(api.url, secret) as operator:
        refused(PermissionDenied, operator.compliance.report)
        assert operator.compliance.residency() == api.compliance.residency()


def test_a_deployment_whose_data_may_not_be_served_here_is_refused(loop_api: Any) -> None:
    policy = home_of(loop_api) / "policies" / "default.toml"
    version = loop_api.registry.list_versions("loan-default")[-1]
    before = loop_api.deployments.get("loans").revision
    policy.parent.mkdir(exist_ok=True)
    policy.write_text('[residency.classes]\ninternal = ["eu"]\npersonal = ["eu"]\nsensitive-personal = ["eu"]\n')
    try:
        error = refused(PolicyViolation, lambda: loop_api.deployments.deploy("loans", version.model, version.version))
        assert error.details["rule"].startswith("residency.classes.")
        assert error.details["object"] == "deployment:loans" and error.details["region"] == "ae"
        assert loop_api.deployments.get("loans").revision == before
    finally:
        policy.unlink()
    assert loop_api.deployments.deploy("loans", version.model, version.version).revision == before + 1
