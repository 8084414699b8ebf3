"""Pseudonymization before commit: keyed tokens, the other columns untouched, idempotent,
and main refuses PII in clear."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from mlops_lite import connect
from mlops_lite.errors import InvalidInput, MissingDependency, PolicyViolation
from mlops_lite.security.anonymize import KEY_ENV, TOKEN, Anonymizer, key_from_env

from ..conftest import DATA


def test_csv_pii_columns_become_keyed_tokens_and_nothing_else_changes(tmp_path: Path) -> None:
    anonymizer = Anonymizer(b"k" * 32)
    out = anonymizer.file(DATA / "loans.csv", patterns=["^(name|email|phone)$"], out_dir=tmp_path)
    assert out.columns == ("name", "email", "phone") and out.path != DATA / "loans.csv"
    before, after = pacsv.read_csv(DATA / "loans.csv"), pacsv.read_csv(out.path)
    assert out.rows == before.num_rows and out.values == 3 * before.num_rows
    for column in before.column_names:
        if column in out.columns:
            values = after.column(column).to_pylist()
            assert all(TOKEN.match(v) for v in values)
            assert not set(values) & set(map(str, before.column(column).to_pylist()))
        else:
            assert after.column(column).equals(before.column(column)), column  # same text, same types
    # the same person gets the same token; another key gives other tokens
    name = before.column("name")[0].as_py()
    other = Anonymizer(b"x" * 32)
    assert after.column("name")[0].as_py() == anonymizer.token(name, anonymizer.key("")) \
        != other.token(name, other.key(""))
    # again: already anonymized, nothing to replace, and the bytes are stable
    again = anonymizer.file(out.path, patterns=["^(name|email|phone)$"], out_dir=tmp_path / "again")
    assert again.values == 0 and again.path == out.path
    rerun = anonymizer.file(DATA / "loans.csv", patterns=["^(name|email|phone)$"], out_dir=tmp_path / "rerun")
    assert rerun.path.read_bytes() == out.path.read_bytes()


def test_parquet_and_bad_input(tmp_path: Path) -> None:
    anonymizer = Anonymizer(b"k" * 32)
    source = tmp_path / "people.parquet"
    pq.write_table(pa.table({"email": ["a@x.ae", None], "score": [1.5, 2.5]}), source)
    out = anonymizer.file(source, columns=["email"], out_dir=tmp_path / "out")
    table = pq.read_table(out.path)
    assert table.column("email")[1].as_py() is None and TOKEN.match(table.column("email")[0].as_py())
    assert table.column("score").to_pylist() == [1.5, 2.5] and out.values == 1
    with pytest.raises(InvalidInput) as bad:
        anonymizer.file(source, columns=["phone"])
    assert bad.value.field == "pii"
    with pytest.raises(InvalidInput) as bad:
        anonymizer.file(tmp_path / "missing.csv")
    assert bad.value.field == "source"
    with pytest.raises(MissingDependency):
        Anonymizer(None).file(DATA / "loans.csv", columns=["name"], out_dir=tmp_path / "nokey")


def test_the_key_comes_from_the_environment_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    assert key_from_env() is None
    monkeypatch.setenv(KEY_ENV, "ab" * 32)
    assert key_from_env() == bytes.fromhex("ab" * 32)
    for bad in ("not hex", "abcd"):
        monkeypatch.setenv(KEY_ENV, bad)
        with pytest.raises(InvalidInput) as info:
            key_from_env()
        assert info.value.field == KEY_ENV


def test_the_ingest_flow_step_anonymizes_by_the_repositorys_patterns(tmp_path: Path) -> None:
    with connect(home=tmp_path / "home") as platform:
        repo = platform.data.repo("loans")
        repo.create(classification="internal")
        repo.configure(pii_patterns=["^(name|email|phone)$"])
        # main refuses the file in clear, naming the column, and commits nothing
        with pytest.raises(PolicyViolation) as refused:
            platform.data.ingest("loans", DATA / "loans.csv", "loans/train.csv")
        assert "column 'email' matches a PII pattern" in refused.value.message
        assert repo.branch("main").head() is None or not list(repo.ref("main").objects())
        out = platform.privacy.anonymize_file(DATA / "loans.csv", repository="loans", out_dir=tmp_path / "a")
        assert out.columns == ("name", "email", "phone")
        commit = platform.data.ingest("loans", out.path, "loans/train.csv")
        table = repo.ref(commit.id).read_table("loans/train.csv").table
        assert all(TOKEN.match(v) for v in table.column("email").to_pylist())
        assert not (tmp_path / "home" / "anonymization.key").exists()  # an encrypted home's keyring holds the root
        # a repository with no patterns (or none yet) leaves the file as it is
        assert platform.privacy.anonymize_file(DATA / "loans.csv", repository="other").path == DATA / "loans.csv"
