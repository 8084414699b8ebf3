"""The CLI starts lazily: importing it (all `--help` needs) loads no store, no server,
no flow engine and no model runtime. Checked in a fresh interpreter, by what it imported."""

import json
import subprocess
import sys

HEAVY = ("sqlalchemy", "sqlmodel", "pyarrow", "pandas", "onnxruntime", "prefect", "litestar", "duckdb", "httpx",
         "pydantic_settings")


def _imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_importing_the_cli_loads_no_store_server_or_runtime() -> None:
    assert _imported_after("import mlops_lite.cli") & set(HEAVY) == set()


def test_importing_the_package_and_its_errors_loads_nothing_heavy() -> None:
    loaded = _imported_after("import mlops_lite\nfrom mlops_lite import InvalidInput, NotFound, __version__")
    assert loaded & set(HEAVY) == set()


def test_importing_the_http_client_loads_no_store() -> None:
    loaded = _imported_after("from mlops_lite.client import RemotePlatform")
    assert "httpx" in loaded
    assert loaded & {"sqlalchemy", "sqlmodel", "duckdb", "onnxruntime", "prefect", "litestar"} == set()


def test_a_client_that_only_reads_the_registry_builds_no_data_facet() -> None:
    """Connecting to a daemon (every CLI command while `up` runs) loads neither pyarrow nor
    the lakeFS client nor the anonymizer's store until the data facet is used."""
    loaded = _imported_after("from mlops_lite.client import RemotePlatform\n"
                             "RemotePlatform('http://127.0.0.1:9', 'token').close()")
    assert loaded & {"pyarrow", "lakefs_sdk", "sqlalchemy", "duckdb"} == set()
    used = _imported_after("from mlops_lite.client import RemotePlatform\n"
                           "remote = RemotePlatform('http://127.0.0.1:9', 'token')\nremote.data\nremote.close()")
    assert "lakefs_sdk" in used


def test_help_lists_the_commands_without_loading_the_stores() -> None:
    code = ("import sys\nfrom mlops_lite.cli import app\nsys.argv = ['mlops-lite', '--help']\n"
            "try:\n    app()\nexcept SystemExit:\n    pass")
    done = subprocess.run([sys.executable, "-c", code + "\nimport json\nprint(json.dumps(sorted(sys.modules)))"],
                          capture_output=True, text=True, check=True)
    *help_lines, modules = done.stdout.strip().splitlines()
    assert "models" in "\n".join(help_lines) and "demo" in "\n".join(help_lines)
    assert {m.split(".")[0] for m in json.loads(modules)} & set(HEAVY) == set()
