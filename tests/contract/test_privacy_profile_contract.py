"""A repository's privacy profile (records of processing, retention, data subjects), set
and read the same way local and over HTTP; over HTTP changing it needs an admin; a bad
field is refused by name and changes nothing; the change is audited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops_lite.errors import InvalidInput, PermissionDenied
from mlops_lite.privacy.profile import PrivacyProfile
from tests.contract.conftest import refused


def test_the_profile_is_set_read_and_audited(api: Any) -> None:
    repo = api.data.repo("profiled")
    repo.create(classification="personal")
    profile = repo.config().privacy.with_changes(
        purpose="credit risk scoring", lawful_basis="contract", categories=("contact details", "financial"),
        data_subjects="loan applicants", retention_days=730, subject_columns=("email",))
    after = repo.configure(privacy=profile)
    assert after.privacy == profile == repo.config().privacy
    event = next(e for e in api.audit.events(limit=10) if e.action == "data.repository.configure")
    assert event.after["privacy"]["purpose"] == "credit risk scoring"

    bad = refused(InvalidInput, lambda: repo.configure(privacy=PrivacyProfile.from_json(
        {**profile.to_json(), "lawful_basis": "because"})))
    assert bad.field == "privacy.lawful_basis"
    assert repo.config().privacy == profile


def test_changing_the_profile_needs_an_admin_over_http(api: Any, api_kind: str) -> None:
    if api_kind == "local":
        pytest.skip("roles are the server's: in-process the platform acts as its own actor")
    from mlops_lite.client import RemotePlatform

    api.data.repo("guarded").create(classification="personal")
    _, secret = api.tokens.create("ops", "operator")
    with RemotePlatform(api.url, secret) as operator:
        repo = operator.data.repo("guarded")
        before = repo.config().privacy
        refused(PermissionDenied, lambda: repo.configure(privacy=before.with_changes(classification="public")))
    assert api.data.repo("guarded").config().privacy.classification == "personal"


def test_the_cli_shows_and_changes_the_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from mlops_lite.cli import app

    monkeypatch.setenv("MLOPS_LITE_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    made = runner.invoke(app, ["data", "repo", "create", "people", "--classification", "personal"])
    assert made.exit_code == 0, made.output
    changed = runner.invoke(app, ["data", "repo", "privacy", "people", "--purpose", "support",
                                  "--lawful-basis", "consent", "--subject-column", "email",
                                  "--retention-days", "30"])
    assert changed.exit_code == 0, changed.output
    assert "lawful_basis      consent" in changed.output and "subject_columns   email" in changed.output
    bad = runner.invoke(app, ["data", "repo", "privacy", "people", "--retention-days", "0"])
    assert bad.exit_code != 0 and "retention_days" in bad.output + str(bad.exception)
    shown = runner.invoke(app, ["data", "repo", "privacy", "people", "--json"])
    assert '"retention_days": 30' in shown.output
