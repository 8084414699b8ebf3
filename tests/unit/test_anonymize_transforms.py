"""Per-column transforms declared on a repository (drop, mask, pseudonymize, band,
truncate-date, truncate-prefix) applied to CSV and Parquet, deterministically, and the
k-anonymity check over quasi-identifiers before a merge into a protected branch."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_lite import connect
from mlops_lite.data.checks import k_anonymity_reasons
from mlops_lite.errors import InvalidInput, PolicyViolation
from mlops_lite.privacy.profile import ColumnTransform, PrivacyProfile
from mlops_lite.security.anonymize import TOKEN, Anonymizer

TRANSFORMS = (
    ColumnTransform("name", "drop"),
    ColumnTransform("card", "mask", 4),
    ColumnTransform("email", "pseudonymize"),
    ColumnTransform("age", "band", 10),
    ColumnTransform("born", "truncate-date", "year"),
    ColumnTransform("postcode", "truncate-prefix", 3),
)
CSV = ("name,card,email,age,born,postcode,score\n"
       "Ann Lee,4111111111111111,ann@example.ae,34,1990-05-17,SW1A 1AA,0.5\n"
       "Bob Ray,5500000000000004,bob@example.ae,41,1983-11-02,EC2V 7HH,0.25\n"
       ",,,,,,1\n")


def test_each_transform_on_a_csv(tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text(CSV)
    anonymizer = Anonymizer(b"k" * 32)
    out = anonymizer.file(source, transforms=TRANSFORMS, repository="r", out_dir=tmp_path / "out")
    lines = out.path.read_text().splitlines()
    assert lines[0] == "card,email,age,born,postcode,score"  # name dropped
    card, email, age, born, postcode, score = lines[1].split(",")
    assert card == "************1111" and TOKEN.match(email) and email.split(":")[1] == out.key_id
    assert (age, born, postcode, score) == ("30-39", "1990", "SW1", "0.5")  # other columns keep their text
    assert lines[2].split(",")[2:5] == ["40-49", "1983", "EC2"]
    assert lines[3] == ",,,,,1"  # empty fields stay empty
    assert out.columns == ("name", "card", "email", "age", "born", "postcode") and out.rows == 3
    # deterministic, and anonymizing the result again changes nothing
    rerun = anonymizer.file(source, transforms=TRANSFORMS, repository="r", out_dir=tmp_path / "rerun")
    assert rerun.path.read_bytes() == out.path.read_bytes()
    again = anonymizer.file(out.path, transforms=TRANSFORMS, repository="r", out_dir=tmp_path / "again")
    assert again.values == 0 and again.path == out.path


def test_each_transform_on_parquet_with_typed_columns(tmp_path: Path) -> None:
    source = tmp_path / "people.parquet"
    pq.write_table(pa.table({"name": ["Ann", "Bob"], "card": ["4111111111111111", None],
                             "email": ["ann@example.ae", "bob@example.ae"], "age": [34, 7],
                             "born": [date(1990, 5, 17), date(2017, 1, 9)], "postcode": ["SW1A 1AA", "EC2V 7HH"],
                             "score": [0.5, 0.25]}), source)
    anonymizer = Anonymizer(b"k" * 32)
    transforms = (*TRANSFORMS[:4], ColumnTransform("born", "truncate-date", "month"), TRANSFORMS[5])
    out = anonymizer.file(source, transforms=transforms, repository="r", out_dir=tmp_path / "out")
    table = pq.read_table(out.path)
    assert table.column_names == ["card", "email", "age", "born", "postcode", "score"]
    assert table.column("card").to_pylist() == ["************1111", None]
    assert table.column("age").to_pylist() == ["30-39", "0-9"]
    assert table.column("born").to_pylist() == ["1990-05", "2017-01"]
    assert table.column("postcode").to_pylist() == ["SW1", "EC2"]
    assert table.column("score").to_pylist() == [0.5, 0.25]
    rerun = anonymizer.file(source, transforms=transforms, repository="r", out_dir=tmp_path / "rerun")
    assert rerun.path.read_bytes() == out.path.read_bytes()
    other = anonymizer.file(source, transforms=transforms, repository="s", out_dir=tmp_path / "other")
    assert pq.read_table(other.path).column("email") != table.column("email")  # another repository's key


def test_a_value_a_transform_cannot_read_is_refused_without_echoing_it(tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("age,born\n34,1990-01-01\nsecret-age,1990-01-01\n")
    with pytest.raises(InvalidInput) as bad:
        Anonymizer(b"k" * 32).file(source, transforms=(ColumnTransform("age", "band", 10),), out_dir=tmp_path / "o")
    assert bad.value.field == "privacy.transforms.age" and "row 2" in bad.value.message
    assert "secret-age" not in bad.value.message
    source.write_text("age,born\n34,17/05/1990\n")
    with pytest.raises(InvalidInput) as bad:
        Anonymizer(b"k" * 32).file(source, transforms=(ColumnTransform("born", "truncate-date", "day"),),
                                   out_dir=tmp_path / "o2")
    assert bad.value.field == "privacy.transforms.born"


def test_k_anonymity_names_the_smallest_class() -> None:
    table = pa.table({"age": ["30-39"] * 3 + ["40-49"] * 2 + ["50-59"], "zip": ["SW1"] * 5 + ["EC2"],
                      "email": ["t"] * 6})
    assert k_anonymity_reasons("p.csv", table, ("age", "zip"), 1) == []
    [reason] = k_anonymity_reasons("p.csv", table, ("age", "zip"), 2)
    assert "smallest equivalence class (age='50-59', zip='EC2') has 1 row(s)" in reason
    assert "1 of 3 classes are under 2" in reason
    import re

    [withheld] = k_anonymity_reasons("p.csv", table, ("age", "zip"), 4, [re.compile("zip")])
    assert "zip=(withheld)" in withheld and "EC2" not in withheld
    assert k_anonymity_reasons("p.csv", table.select(["email"]), ("age", "zip"), 5) == []  # holds none of them


def test_a_merge_into_main_must_be_k_anonymous(tmp_path: Path) -> None:
    rows = "".join(f"{age},SW1A {i}AA,{i}\n" for i, age in enumerate([31, 33, 35, 38, 52]))
    source = tmp_path / "people.csv"
    source.write_text("age,postcode,score\n" + rows)
    profile = PrivacyProfile("personal", transforms=(ColumnTransform("age", "band", 10),
                                                     ColumnTransform("postcode", "truncate-prefix", 3)),
                             quasi_identifiers=("age", "postcode"), k_anonymity=2)
    with connect(home=tmp_path / "home") as platform:
        repo = platform.data.repo("people")
        repo.create(privacy=profile)
        out = platform.privacy.anonymize_file(source, repository="people", out_dir=tmp_path / "a")
        with pytest.raises(PolicyViolation) as refused:
            platform.data.ingest("people", out.path, "people.csv")  # by merge: main is protected
        assert "smallest equivalence class (age='50-59', postcode='SW1') has 1 row(s)" in refused.value.message
        assert repo.branch("main").head() is None
        # a side branch takes it (k-anonymity is a pre-merge check of protected branches)
        repo.branch("work").create("main")
        repo.branch("work").upload("people.csv", out.path)
        repo.branch("work").commit("unbalanced")
        # wider bands: every class has two or more rows, and main takes it
        repo.configure(privacy=profile.with_changes(transforms=(ColumnTransform("age", "band", 100),
                                                                ColumnTransform("postcode", "truncate-prefix", 3))))
        wider = platform.privacy.anonymize_file(source, repository="people", out_dir=tmp_path / "b")
        commit = platform.data.ingest("people", wider.path, "people.csv")
        assert repo.ref(commit.id).read_table("people.csv").table.column("age").to_pylist() == ["0-99"] * 5
