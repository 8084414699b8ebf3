"""docs/deploy.md names the home's paths ("What lives where"): those it says `init` makes
exist in a home `mlops-lite init` has just made, everything such a home holds is named,
and the paths made later are ones the code writes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "deploy.md"
SCRIPT = Path(sys.executable).with_name("mlops-lite")


def section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def table() -> list[tuple[list[str], str]]:
    """Each row's home paths (column 2) and its "made by" cell."""
    rows = []
    for line in section("What lives where").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("what", "---"):
            rows.append((re.findall(r"`([^`]+)`", cells[1]), cells[2]))
    return rows


@pytest.fixture(scope="module")
def fresh_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("deploy-doc") / "home"
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLOPS_LITE_")}
    done = subprocess.run([str(SCRIPT), "init"], env={**env, "MLOPS_LITE_HOME": str(home)}, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return home


def test_the_table_has_the_rows_the_doc_promises() -> None:
    paths = {path for row, _ in table() for path in row}
    for needed in ("metadata.duckdb", "objects/data/", "keys/keyring.json", "keys/master.key",
                   "audit/checkpoints.jsonl", "predictions/", "prefect/", "tls/server.key", "admin.token",
                   "services/"):
        assert needed in paths, needed


def test_what_init_makes_exists_in_a_fresh_home(fresh_home: Path) -> None:
    made = [(path, made_by) for row, made_by in table() for path in row if made_by == "`init`"]
    assert len(made) >= 15
    for path, _ in made:
        found = fresh_home / path
        assert found.exists(), f"docs/deploy.md says `init` makes {path}; {fresh_home} has no such path"
        assert found.is_dir() == path.endswith("/"), path


def test_everything_a_fresh_home_holds_is_named(fresh_home: Path) -> None:
    paths = {path.rstrip("/") for row, _ in table() for path in row}
    for entry in sorted(fresh_home.iterdir()):
        name = entry.name
        if entry.is_dir() and name not in paths:
            # a folder is named whole (inbox/) or by what is in it (keys/keyring.json, objects/data/)
            inner = {path.split("/", 1)[1].split("/")[0] for path in paths if path.startswith(name + "/")}
            assert inner, f"{name}/ of a fresh home is not in docs/deploy.md"
            assert {child.name for child in entry.iterdir()} <= inner, (name, inner)
        else:
            assert name in paths, f"{name} of a fresh home is not in docs/deploy.md"


def test_paths_made_later_are_written_by_the_code() -> None:
    code = "\n".join(path.read_text() for folder in ("mlops_lite", "server")
                     for path in (ROOT / folder).rglob("*.py"))
    later = [path for row, made_by in table() if made_by != "`init`" for path in row]
    assert "predictions/" in later and "daemon.json" in later
    for path in later:
        assert f'"{Path(path).name}"' in code, f"{path}: no code names it"


def test_the_backup_section_names_only_paths_of_the_table() -> None:
    paths = {path for row, _ in table() for path in row}
    # a path is a word with a '/' or a '.' in it (`key_file`, `pg_dump` are not)
    home_paths = {word for word in re.findall(r"`([^`\s]+)`", section("What to back up"))
                  if ("/" in word or "." in word) and not word.startswith("/")}
    assert {"metadata.duckdb", "keys/keyring.json", "keys/master.key", "audit/"} <= home_paths
    for word in home_paths:
        assert word in paths or any(path.startswith(word) for path in paths), word
