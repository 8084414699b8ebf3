"""``mlops-lite compliance`` and residency refusals end to end: the real script in its own
home, and the HTTP API of a real server (the rule in a 412's body, never a 5xx)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlops_lite.config import load_settings
from mlops_lite.home import init_home
from mlops_lite.platform import open_local
from mlops_lite.privacy.profile import PrivacyProfile
from tests.e2e.test_cli import cli

POLICY = '[residency.classes]\npersonal = ["ae"]\ninternal = ["ae", "eu"]\npublic = ["*"]\n'
PERSON = "Fatima Al Mansoori"  # a data subject's name: in the data, never in a report
EMAIL = "fatima.mansoori@example.ae"


def _home(home: Path) -> str:
    """A home with a personal repository (a subject's row committed), an internal one in
    eu-west-1, a key rotation and the residency policy. Returns the admin token."""
    settings = load_settings(home=home)
    token = init_home(settings).token
    assert token is not None
    with open_local(settings) as platform:
        repo = platform.data.repo("applicants")
        repo.create(privacy=PrivacyProfile(
            classification="personal", purpose="credit scoring", lawful_basis="contract",
            categories=("contact details", "financial"), data_subjects="loan applicants", retention_days=730))
        dev = repo.branch("dev")
        dev.create("main")
        dev.upload("people.csv", f"applicant,contact,income\n{PERSON},{EMAIL},5000\n".encode())
        dev.commit("one applicant")
        platform.data.repo("catalogue").create(privacy=PrivacyProfile(classification="internal",
                                                                      region="eu-west-1"))
        platform.keys.rotate()
    (home / "policies").mkdir(exist_ok=True)
    (home / "policies" / "default.toml").write_text(POLICY)
    return token


def test_the_cli_lists_residency_refuses_an_export_and_writes_the_report(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _home(home)
    listed = cli(home, "compliance", "residency", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = {(e["kind"], e["name"]): e for e in json.loads(listed.stdout)}
    assert entries[("dataset", "catalogue")]["region"] == "eu-west-1"
    assert entries[("dataset", "catalogue")]["status"] == "allowed"  # "eu" allows its sub-regions
    assert entries[("dataset", "applicants")]["classification"] == "personal"
    assert {k for k, _ in entries} == {"dataset", "artifacts", "prediction-log"}

    exported = cli(home, "data", "get", "applicants", "dev", "people.csv", "--region", "us-east-1")
    assert exported.returncode != 0
    assert "residency.classes.personal" in exported.stderr + exported.stdout
    assert PERSON not in exported.stdout  # refused before a byte was read
    allowed = cli(home, "data", "get", "applicants", "dev", "people.csv", "--region", "ae")
    assert allowed.returncode == 0 and PERSON in allowed.stdout

    out = tmp_path / "report"
    written = cli(home, "compliance", "report", "--out", str(out))
    assert written.returncode == 0, written.stderr
    markdown = next(out.glob("compliance-report-*.md")).read_text()
    document = json.loads(next(out.glob("compliance-report-*.json")).read_text())
    records = {r["repository"]: r for r in document["records_of_processing"]}
    assert records["applicants"]["lawful_basis"] == "contract" and records["applicants"]["retention_days"] == 730
    assert document["encryption"]["encrypted"] and len(document["key_rotations"]) == 1
    assert document["audit_chain"]["verified"] is True
    assert [e["details"]["region"] for e in document["residency_refusals"]] == ["us-east-1"]
    for title in ("Records of processing", "Residency", "Encryption at rest", "Key rotations", "Retention runs",
                  "Erasures", "Residency refusals", "Audit chain"):
        assert f"## {title}" in markdown
    assert "| applicants | personal | credit scoring | contract |" in markdown
    for text in (markdown, json.dumps(document)):
        assert PERSON not in text and EMAIL not in text and "Fatima" not in text

    (home / "policies" / "default.toml").write_text(POLICY.replace('internal = ["ae", "eu"]', 'internal = ["ae"]'))
    table = cli(home, "compliance", "residency")
    assert table.returncode == 1  # a location violates the rules
    row = next(line for line in table.stdout.splitlines() if "catalogue" in line)
    assert "VIOLATING" in row and "residency.classes.internal" in row and "eu-west-1" in row
    assert "1 location(s) violate the residency rules" in table.stdout


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    from server import create_app
    from server.runner import serve_in_thread

    home = tmp_path / "home"
    token = _home(home)
    platform = open_local(load_settings(home=home))
    running = serve_in_thread(create_app(platform))
    try:
        yield running.url, token
    finally:
        running.stop()
        platform.close()


def test_refusals_over_http_are_412_with_the_rule(served: tuple[str, str]) -> None:
    url, token = served
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        refused = http.post("/v1/compliance/transfers", json={"repository": "applicants", "region": "us-east-1"})
        assert refused.status_code == 412, refused.text
        assert refused.json()["rule"] == "residency.classes.personal"
        assert PERSON not in refused.text
        ok = http.post("/v1/compliance/transfers", json={"repository": "catalogue", "region": "eu-central-1"})
        assert ok.status_code == 200 and ok.json()["allowed"] is True
        for body in ({"repository": "applicants"}, {"repository": "applicants", "region": "Mars!"}, {},
                     {"repository": 7, "region": "ae"}, {"repository": "applicants", "region": ["ae"]}):
            bad = http.post("/v1/compliance/transfers", json=body)
            assert bad.status_code == 422, (body, bad.text)
        for raw in (b"[1, 2]", b"null", b"not json", b'"ae"'):
            bad = http.post("/v1/compliance/transfers", content=raw, headers={"Content-Type": "application/json"})
            assert 400 <= bad.status_code < 500, (raw, bad.status_code, bad.text)
        missing = http.post("/v1/compliance/transfers", json={"repository": "no-such-repo", "region": "ae"})
        assert missing.status_code == 404, missing.text

        report = http.get("/v1/compliance/report")
        assert report.status_code == 200
        assert [e["details"]["rule"] for e in report.json()["residency_refusals"]] == ["residency.classes.personal"]
        residency = http.get("/v1/compliance/residency").json()
        assert {e["name"] for e in residency if e["kind"] == "dataset"} == {"applicants", "catalogue"}
