"""Tests for the bundled sample data (data/loans.csv, data/loans_drifted.csv) and its generator."""

from __future__ import annotations

import csv
import importlib.util
import math
import statistics
from collections import Counter
from pathlib import Path

import pytest

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
GENERATOR_PATH = DATA_DIR / "generate.py"

EXPECTED_COLUMNS = [
    "name",
    "email",
    "phone",
    "gender",
    "age",
    "income",
    "loan_amount",
    "term_months",
    "credit_score",
    "debt_to_income",
    "num_open_accounts",
    "years_employed",
    "employment_type",
    "home_ownership",
    "purpose",
    "region",
    "default",
]
FILES = {"loans.csv": 6_000, "loans_drifted.csv": 2_000, "loans_holdout.csv": 500}


def _load_generator():
    spec = importlib.util.spec_from_file_location(
        "mlops_lite_sample_data_generate", GENERATOR_PATH
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


def _read(name: str) -> tuple[list[str], list[dict[str, str]]]:
    with (DATA_DIR / name).open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _floats(rows: list[dict[str, str]], column: str) -> list[float]:
    return [float(r[column]) for r in rows]


def _shares(values: list[str]) -> dict[str, float]:
    counts = Counter(values)
    return {k: v / len(values) for k, v in counts.items()}


def test_regenerating_gives_byte_identical_files(tmp_path: Path) -> None:
    written = gen.write_all(tmp_path)
    assert sorted(p.name for p in written) == sorted(FILES)
    for name in FILES:
        shipped = (DATA_DIR / name).read_bytes()
        fresh = (tmp_path / name).read_bytes()
        assert fresh == shipped, (
            f"{name} differs from `python data/generate.py` output; regenerate it"
        )


def test_main_writes_into_out_dir(tmp_path: Path) -> None:
    assert gen.main(["--out-dir", str(tmp_path)]) == 0
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (DATA_DIR / name).read_bytes()


@pytest.mark.parametrize(("name", "n_rows"), sorted(FILES.items()))
def test_columns_row_counts_and_no_missing(name: str, n_rows: int) -> None:
    columns, rows = _read(name)
    assert columns == EXPECTED_COLUMNS
    assert len(rows) == n_rows
    for row in rows:
        assert all(v != "" for v in row.values()), row
    assert {r["gender"] for r in rows} == {"female", "male"}
    assert {r["default"] for r in rows} == {"0", "1"}
    ages = [int(r["age"]) for r in rows]
    assert 21 <= min(ages) and max(ages) <= 75
    scores = [int(r["credit_score"]) for r in rows]
    assert 300 <= min(scores) and max(scores) <= 850
    dti = _floats(rows, "debt_to_income")
    assert 0.0 <= min(dti) and max(dti) <= 1.0
    assert {int(r["term_months"]) for r in rows} <= {12, 24, 36, 48, 60}
    assert {r["employment_type"] for r in rows} <= {
        "salaried",
        "self_employed",
        "contract",
        "unemployed",
    }
    assert {r["home_ownership"] for r in rows} <= {"rent", "own", "mortgage"}
    assert {r["purpose"] for r in rows} <= {
        "car",
        "home",
        "education",
        "business",
        "personal",
        "medical",
    }
    assert all(r["email"].endswith("@example.com") for r in rows)
    assert all(r["phone"].startswith("+971-5") for r in rows)


def test_generator_column_order_matches() -> None:
    assert gen.COLUMNS == EXPECTED_COLUMNS
    assert list(gen.generate(5, seed=0)) == EXPECTED_COLUMNS


def test_combined_size_under_2_mb() -> None:
    total = sum((DATA_DIR / name).stat().st_size for name in FILES)
    assert total < 2 * 1024 * 1024, total


@pytest.mark.parametrize("name", sorted(FILES))
def test_default_rate_is_realistic(name: str) -> None:
    _, rows = _read(name)
    rate = statistics.fmean(int(r["default"]) for r in rows)
    assert 0.10 <= rate <= 0.35, rate


def test_drifted_batch_has_clear_drift() -> None:
    _, ref = _read("loans.csv")
    _, cur = _read("loans_drifted.csv")

    ref_credit = statistics.fmean(_floats(ref, "credit_score"))
    cur_credit = statistics.fmean(_floats(cur, "credit_score"))
    assert ref_credit - cur_credit >= 25.0, (ref_credit, cur_credit)

    ref_income = statistics.fmean(_floats(ref, "income"))
    cur_income = statistics.fmean(_floats(cur, "income"))
    assert cur_income <= 0.92 * ref_income, (ref_income, cur_income)
    ref_median = statistics.median(_floats(ref, "income"))
    cur_median = statistics.median(_floats(cur, "income"))
    assert cur_median <= 0.92 * ref_median, (ref_median, cur_median)

    assert (
        statistics.fmean(_floats(cur, "debt_to_income"))
        > statistics.fmean(_floats(ref, "debt_to_income")) + 0.02
    )

    # Undrifted columns keep their distributions.
    for column, tolerance in (("term_months", 0.03), ("home_ownership", 0.04)):
        ref_shares = _shares([r[column] for r in ref])
        cur_shares = _shares([r[column] for r in cur])
        assert set(ref_shares) == set(cur_shares)
        gap = max(abs(ref_shares[k] - cur_shares[k]) for k in ref_shares)
        assert gap <= tolerance, (column, gap)
    ref_term = statistics.fmean(_floats(ref, "term_months"))
    cur_term = statistics.fmean(_floats(cur, "term_months"))
    assert abs(ref_term - cur_term) <= 1.0, (ref_term, cur_term)

    # Category mix shifts that a drift check should catch.
    purpose_gap = max(
        abs(
            _shares([r["purpose"] for r in ref]).get(k, 0.0)
            - _shares([r["purpose"] for r in cur]).get(k, 0.0)
        )
        for k in ("car", "home", "business", "medical")
    )
    assert purpose_gap >= 0.05, purpose_gap
    assert (
        _shares([r["employment_type"] for r in cur])["salaried"]
        < _shares([r["employment_type"] for r in ref])["salaried"] - 0.08
    )


def test_generate_is_deterministic_per_seed() -> None:
    a = gen.generate(300, seed=123)
    b = gen.generate(300, seed=123)
    c = gen.generate(300, seed=124)
    assert a == b
    assert a != c
    assert a["income"] != c["income"]
    assert a["name"] != c["name"]
    d = gen.generate(300, seed=123, drift=True)
    assert d == gen.generate(300, seed=123, drift=True)
    assert d != a


def test_generate_returns_plain_python_values() -> None:
    table = gen.generate(50, seed=1)
    assert all(len(v) == 50 for v in table.values())
    assert all(isinstance(v, int) and not isinstance(v, bool) for v in table["age"])
    assert all(isinstance(v, float) and math.isfinite(v) for v in table["income"])
    assert all(isinstance(v, str) for v in table["name"])
    assert set(table["default"]) <= {0, 1}


def test_the_package_finds_the_sample_where_the_data_folder_is(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    from mlops_lite.errors import NotFound
    from mlops_lite.samples import LOANS, path

    for name in (LOANS.train, LOANS.drifted, LOANS.holdout):
        assert path(name).read_bytes() == (DATA_DIR / name).read_bytes()
    monkeypatch.setenv("MLOPS_LITE_SAMPLE_DATA", str(tmp_path))
    with pytest.raises(NotFound) as missing:
        path(LOANS.train)
    assert "MLOPS_LITE_SAMPLE_DATA" in missing.value.message
    (tmp_path / LOANS.train).write_text("x\n1\n")
    assert path(LOANS.train) == tmp_path / LOANS.train


def test_an_installed_wheel_carries_the_sample(tmp_path: Path) -> None:
    """Built from a copy of the project as pip builds it, the wheel holds the CSVs (and not
    the generator), and the package installed from it finds them."""
    import os
    import shutil
    import subprocess
    import sys
    import zipfile

    repo = DATA_DIR.parent
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, source / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for folder in ("mlops_lite", "flows", "server", "tui", "data"):
        shutil.copytree(repo / folder, source / folder, symlinks=True, ignore=skip)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                            str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = (tmp_path / "dist").glob("mlops_lite-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"mlops_lite/sample_data/{name}" for name in FILES} <= names
    assert {"mlops_lite/sample_data/customers.csv", "mlops_lite/sample_data/features.toml"} <= names
    assert not any(n.startswith("mlops_lite/sample_data/") and not n.endswith((".csv", ".toml")) for n in names)

    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                                str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    found = subprocess.run(
        [sys.executable, "-c", "import mlops_lite, mlops_lite.samples as s; "
                               "print(mlops_lite.__file__); print(s.path(s.LOANS.train))"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)})
    assert found.returncode == 0, found.stderr
    package, csv_path = found.stdout.split()
    assert package.startswith(str(target)) and csv_path == str(target / "mlops_lite" / "sample_data" / "loans.csv")
    assert Path(csv_path).read_bytes() == (DATA_DIR / "loans.csv").read_bytes()
