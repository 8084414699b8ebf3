"""A repository never exists without a classification: the CLI requires it, the lakeFS
API's create defaults it (audited as defaulted); deleting one needs admin over HTTP and
leaves a tombstone, so lineage still names the commit and says the repository was
deleted; a name comes back only as the same or a stricter classification."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlops_lite.errors import PolicyViolation

SCRIPT = Path(sys.executable).with_name("mlops-lite")


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLOPS_LITE_HOME": str(home)}
    for key in ("MLOPS_LITE_URL", "MLOPS_LITE_TOKEN", "MLOPS_LITE_CONFIG"):
        env.pop(key, None)
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120)


def test_the_cli_requires_a_classification(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _cli(home, "init").returncode == 0
    missing = _cli(home, "data", "repo", "create", "people")
    assert missing.returncode != 0 and "--classification" in missing.stderr + missing.stdout
    bad = _cli(home, "data", "repo", "create", "people", "--classification", "secret")
    assert bad.returncode != 0 and "classification" in bad.stderr + bad.stdout
    made = _cli(home, "data", "repo", "create", "people", "--classification", "sensitive-personal")
    assert made.returncode == 0, made.stderr
    rotated = _cli(home, "data", "repo", "rotate-key", "people")
    assert rotated.returncode == 0 and "pseudonymizes under key" in rotated.stdout, rotated.stderr
    from mlops_lite import connect
    from mlops_lite.privacy.profile import DEFAULT_PII_PATTERNS

    with connect(home=home) as platform:
        config = platform.data.repo("people").config()
        assert config.classification == "sensitive-personal" and config.effective_pii_patterns == DEFAULT_PII_PATTERNS
        assert [r.name for r in platform.data.repositories()] == ["people"]
        assert config.anonymization_key_version == 2 and platform.privacy.key_id("people") in rotated.stdout


@pytest.fixture(scope="module")
def served(loop: tuple[Any, str, Any]) -> Iterator[tuple[Any, str, str]]:
    from server import create_app
    from server.runner import serve_in_thread

    platform, token, _ = loop
    server = serve_in_thread(create_app(platform))
    try:
        yield platform, token, str(server.url)
    finally:
        server.stop()


def test_lakefs_create_defaults_the_classification_and_delete_needs_admin(served: tuple[Any, str, str]) -> None:
    platform, admin, url = served
    _, operator = platform.tokens.create("classification-operator", "operator")
    with httpx.Client(base_url=url, timeout=30) as http:
        as_operator = {"Authorization": f"Bearer {operator}"}
        made = http.post("/api/v1/repositories", headers=as_operator,
                         json={"name": "lakefs-made", "storage_namespace": "local://lakefs-made"})
        assert made.status_code == 201, made.text
        config = platform.data.repo("lakefs-made").config()
        assert config.classification == platform.settings.default_classification == "personal"
        [event] = [e for e in platform.audit.events(1000)
                   if e.action == "data.repository.create" and e.object == "data:lakefs-made"]
        assert event.after["classification_defaulted"] is True
        # /v1 takes the classification
        v1 = http.post("/v1/data/repositories", headers=as_operator, json={"name": "v1-made",
                                                                             "classification": "internal"})
        assert v1.status_code == 201, v1.text
        assert platform.data.repo("v1-made").config().classification == "internal"
        refused = http.delete("/api/v1/repositories/lakefs-made", headers=as_operator)
        assert refused.status_code == 403 and "admin" in refused.text
        assert platform.data.repo("lakefs-made").info().name == "lakefs-made"
        deleted = http.delete("/api/v1/repositories/lakefs-made", headers={"Authorization": f"Bearer {admin}"})
        assert deleted.status_code == 204, deleted.text
        assert "lakefs-made" not in [r.name for r in platform.data.repositories()]
        # only an admin makes the name again as something weaker
        weaker = http.post("/v1/data/repositories", headers=as_operator,
                           json={"name": "lakefs-made", "classification": "public", "allow_weaker": True})
        assert weaker.status_code == 403


def test_lineage_after_the_repository_is_deleted_names_the_commit(loop: tuple[Any, str, Any]) -> None:
    platform = loop[0]
    assert platform.deployments.lineage("loans").missing == ()
    commit = platform.registry.get_version("loan-default", "1.0.0").data_commits[0]
    classification = platform.data.repo("loans").config().classification
    platform.data.repo("loans").delete()
    after = platform.deployments.lineage("loans")  # answers, instead of failing
    [primary] = [s for s in after.slots if s.slot == "primary"]
    assert primary.data_commits == (commit,) and primary.data_repository == "loans"
    [gap] = after.missing
    assert commit in gap and "was deleted" in gap, gap
    # the name comes back only as the same or a stricter classification
    with pytest.raises(PolicyViolation, match="stricter"):
        platform.data.repo("loans").create(classification="public")
    platform.data.repo("loans").create(classification="public", allow_weaker=True)
    [event] = [e for e in platform.audit.events(1000)
               if e.action == "data.repository.create" and e.object == "data:loans"
               and e.after.get("weaker_than_deleted")]
    assert event.after["weaker_than_deleted"] == classification
