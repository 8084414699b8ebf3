"""Every Python example in README.md runs, as written, against a fresh home."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import REPO

BLOCKS = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "MLOPS_LITE_HOME": str(home)}
    server = None
    if "MLOPS_LITE_URL" in BLOCKS[index]:
        from server import create_app
        from server.runner import serve_in_thread

        from ..conftest import build_loop

        platform, token, _ = build_loop(home)
        server = serve_in_thread(create_app(platform))
        env.update(MLOPS_LITE_URL=server.url, MLOPS_LITE_TOKEN=token)
    try:
        done = subprocess.run([sys.executable, "-c", BLOCKS[index]], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=180)
    finally:
        if server is not None:
            server.stop()
            platform.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    if server is not None:
        assert done.stdout.startswith("200 ")


SHELL_BLOCKS = [b for b in re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
                if "mlops-lite data" in b]


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(SHELL_BLOCKS)))
def test_readme_shell_example_runs(index: int, tmp_path: Path) -> None:
    import shlex

    cli = str(Path(sys.executable).with_name("mlops-lite"))
    env = {**os.environ, "MLOPS_LITE_HOME": str(tmp_path / "home")}
    (tmp_path / "prices").mkdir()
    (tmp_path / "prices" / "2026.csv").write_text("sku,price\nA,1.5\nB,2.0\n")
    for line in SHELL_BLOCKS[index].splitlines():
        command = line.split("#", 1)[0].strip()
        if not command:
            continue
        args = shlex.split(command)
        assert args[0] == "mlops-lite"
        done = subprocess.run([cli, *args[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"


TOML_BLOCKS = re.findall(r"```toml\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
# Each block says in its first line which file it is: a policy, or the settings file.
SETTINGS_BLOCKS = [b for b in TOML_BLOCKS if b.startswith("# $MLOPS_LITE_HOME/mlops-lite.toml")]
POLICY_BLOCKS = [b for b in TOML_BLOCKS if b not in SETTINGS_BLOCKS]


@pytest.mark.parametrize("index", range(len(SETTINGS_BLOCKS)))
def test_readme_settings_example_loads(index: int, tmp_path: Path) -> None:
    from mlops_lite.config import load_settings

    home = tmp_path / "home"
    home.mkdir()
    (home / "mlops-lite.toml").write_text(SETTINGS_BLOCKS[index])
    settings = load_settings(home=home)
    assert settings.oidc and settings.oidc[0].issuer.startswith("https://")


@pytest.mark.parametrize("index", range(len(POLICY_BLOCKS)))
def test_readme_policy_example_is_a_valid_policy(index: int, tmp_path: Path) -> None:
    from mlops_lite.policy.document import load_policy, policy_dir

    folder = policy_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "loan-default.toml").write_text(POLICY_BLOCKS[index])
    spec = load_policy(tmp_path, "loan-default", min_roc_auc=0.6)
    if "[residency.classes]" in POLICY_BLOCKS[index]:  # the residency example (Data residency)
        assert spec.files and spec.residency_rule("personal") is not None
        assert spec.residency_rule("public") is not None and spec.residency_rule("public").permits("us-east-1")
        return
    assert spec.files and spec.approvals_required == 1
    assert {t.metric for t in spec.thresholds} == {"roc_auc"} and spec.fairness is not None
