"""The PII check and the tokens it accepts: every tabular format is read (any case of
suffix, gzip, JSON lines, JSON records), a file that cannot be read is refused, only a
``pii1:`` token counts as pseudonymized (a card number or a hex string does not), each
repository has its own key, and rotation keeps old tokens recognised."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_lite import connect
from mlops_lite.data.checks import RepositoryConfig, run_checks
from mlops_lite.errors import InvalidInput, PolicyViolation
from mlops_lite.privacy.profile import DEFAULT_PII_PATTERNS, PrivacyProfile
from mlops_lite.security.anonymize import TOKEN, Anonymizer, derive_key, is_token

RULES = RepositoryConfig(pii_patterns=("^email$",))
ROWS = [{"email": "ann@example.ae", "score": 1}, {"email": "bob@example.ae", "score": 2}]


def _encode(name: str, rows: list[dict[str, object]]) -> bytes:
    lower = name.lower()
    packed = lower.endswith(".gz")
    lower = lower.removesuffix(".gz")
    if lower.endswith((".csv", ".tsv")):
        sep = "\t" if lower.endswith(".tsv") else ","
        text = sep.join(rows[0]) + "\n" + "".join(sep.join(str(v) for v in r.values()) + "\n" for r in rows)
        raw = text.encode()
    elif lower.endswith((".jsonl", ".ndjson")):
        raw = "".join(json.dumps(r) + "\n" for r in rows).encode()
    elif lower.endswith(".json"):
        raw = json.dumps(rows).encode()
    else:
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), sink)
        raw = sink.getvalue()
    return gzip.compress(raw, mtime=0) if packed else raw


def _check(tmp_path: Path, name: str, content: bytes, config: RepositoryConfig = RULES) -> list[str]:
    path = tmp_path / name
    path.write_bytes(content)
    return run_checks(config, [(f"t/{name}", path, len(content))])


@pytest.mark.parametrize("name", ["x.CSV", "x.csv", "x.csv.gz", "x.tsv", "X.TSV.GZ", "x.jsonl", "x.ndjson",
                                  "x.json", "x.parquet", "x.PQ"])
def test_every_tabular_format_is_checked(tmp_path: Path, name: str) -> None:
    reasons = _check(tmp_path, name, _encode(name, ROWS))
    assert len(reasons) == 1 and "column 'email' matches a PII pattern" in reasons[0] and "2 values" in reasons[0]
    key = derive_key(b"r" * 32, "repo")
    tokens = [{**r, "email": Anonymizer.token(str(r["email"]), key)} for r in ROWS]
    assert _check(tmp_path, name, _encode(name, tokens)) == []


@pytest.mark.parametrize(("name", "content"), [
    ("bad.parquet", b"not parquet at all"),
    ("bad.csv.gz", b"not gzip"),
    ("bad.json", b'{"email": "not a list of records"}'),
    ("bad.jsonl", b'{"email": "ann@example.ae"}\n{not json\n'),
])
def test_a_table_that_cannot_be_read_is_refused_not_passed(tmp_path: Path, name: str, content: bytes) -> None:
    reasons = _check(tmp_path, name, content)
    assert len(reasons) == 1 and "cannot be read as a table" in reasons[0], reasons
    assert _check(tmp_path, name, content, RepositoryConfig(privacy=PrivacyProfile("internal"))) == []  # no rules


def test_a_card_number_or_a_hex_string_is_not_a_token(tmp_path: Path) -> None:
    card, hexy = "4111111111111111", "0123456789abcdef0123456789abcdef"
    for value in (card, hexy, "pii1:zz:" + "0" * 32, "PII1:01234567:" + "0" * 32):
        assert not is_token(value)
    config = RepositoryConfig(pii_patterns=("^card$",))
    assert "2 values" in _check(tmp_path, "cards.csv", f"card\n{card}\n{hexy}\n".encode(), config)[0]
    # the anonymizer does not keep them as "already anonymized"
    anonymizer = Anonymizer(b"k" * 32)
    table, replaced = anonymizer.table(pa.table({"card": [int(card), None]}), anonymizer.plan(["card"],
                                       columns=["card"]), key=anonymizer.key("r"))
    assert replaced == 1 and TOKEN.match(table.column("card")[0].as_py())
    # bare hex of the release before passes only where legacy_tokens is set
    legacy = RepositoryConfig(pii_patterns=("^card$",), legacy_tokens=True)
    assert _check(tmp_path, "old.csv", f"card\n{hexy}\n".encode(), legacy) == []
    assert _check(tmp_path, "old.csv", f"card\n{card}\n".encode(), legacy)


def test_personal_and_unclassified_repositories_check_the_default_patterns() -> None:
    assert RepositoryConfig(privacy=PrivacyProfile("personal")).effective_pii_patterns == DEFAULT_PII_PATTERNS
    assert RepositoryConfig().effective_pii_patterns == DEFAULT_PII_PATTERNS  # made by the release before
    assert RepositoryConfig(privacy=PrivacyProfile("internal")).effective_pii_patterns == ()
    assert RepositoryConfig(pii_patterns=("^x$",), privacy=PrivacyProfile("personal")).effective_pii_patterns \
        == ("^x$",)


def test_repositories_get_their_own_keys_and_rotation_keeps_old_tokens_recognised(tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text("email,score\nann@example.ae,1\n")
    with connect(home=tmp_path / "home") as platform:
        for name in ("alpha", "beta"):
            platform.data.repo(name).create(classification="personal")
        a = platform.privacy.anonymize_file(source, repository="alpha", out_dir=tmp_path / "a")
        b = platform.privacy.anonymize_file(source, repository="beta", out_dir=tmp_path / "b")
        token_a, token_b = (p.path.read_text().splitlines()[1].split(",")[0] for p in (a, b))
        assert TOKEN.match(token_a) and TOKEN.match(token_b) and token_a != token_b and a.key_id != b.key_id
        assert token_a.split(":")[1] == a.key_id == platform.privacy.key_id("alpha")
        platform.data.ingest("alpha", a.path, "people.csv")

        new_id = platform.privacy.rotate_key("alpha")
        assert new_id != a.key_id and platform.data.repo("alpha").config().anonymization_key_version == 2
        again = platform.privacy.anonymize_file(source, repository="alpha", out_dir=tmp_path / "a2")
        token_new = again.path.read_text().splitlines()[1].split(",")[0]
        assert token_new.split(":")[1] == new_id and token_new != token_a
        # a file holding tokens of both keys passes the check: both are tokens
        (tmp_path / "both.csv").write_text(f"email,score\n{token_a},1\n{token_new},2\n")
        platform.data.ingest("alpha", tmp_path / "both.csv", "people.csv")
        events = [e for e in platform.audit.events(1000)
                  if e.action == "keys.rotate" and e.object == "data:alpha/anonymization"]
        assert [e.after for e in events] == [{"version": 2}]


def test_main_refuses_a_card_number_in_clear_and_takes_its_token(tmp_path: Path) -> None:
    source = tmp_path / "cards.csv"
    source.write_text("card_number,amount\n4111111111111111,10\n")
    with connect(home=tmp_path / "home") as platform:
        platform.data.repo("pay").create(classification="sensitive-personal")  # default patterns name card_number
        with pytest.raises(PolicyViolation) as refused:
            platform.data.ingest("pay", source, "cards.csv")
        assert "card_number" in refused.value.message and "4111" not in refused.value.message
        out = platform.privacy.anonymize_file(source, repository="pay", out_dir=tmp_path / "out")
        platform.data.ingest("pay", out.path, "cards.csv")
        with pytest.raises(InvalidInput) as unclassified:
            platform.data.repo("nope").create()
        assert unclassified.value.field == "classification"


def test_a_home_of_the_release_before_reads_its_repositories_as_personal(tmp_path: Path) -> None:
    """A plaintext home whose repository config was written before classifications, key
    versions and token prefixes: read as personal (default patterns when it named none),
    key version 1, and its bare-hex tokens accepted only once legacy_tokens is set."""
    from mlops_lite.metadata.tables import DataRepository

    old_token = "0123456789abcdef0123456789abcdef"
    with connect(home=tmp_path / "home", encryption=False) as platform:
        platform.data.repo("legacy").create(classification="internal")
        with platform._store.session() as session:  # the row as the release before stored it
            row = session.get(DataRepository, "legacy")
            row.config = {"protected_branches": ["main"], "schemas": [], "pii_patterns": [],
                          "max_object_bytes": None, "extra": {}}
            session.add(row)
    with connect(home=tmp_path / "home", encryption=False) as platform:
        repo = platform.data.repo("legacy")
        config = repo.config()
        assert config.privacy is None and config.classification == "personal"
        assert config.effective_pii_patterns == DEFAULT_PII_PATTERNS and config.anonymization_key_version == 1
        source = tmp_path / "old.csv"
        source.write_text(f"email,score\n{old_token},1\n")
        with pytest.raises(PolicyViolation, match="not pseudonymized"):
            platform.data.ingest("legacy", source, "old.csv")
        repo.configure(legacy_tokens=True)
        platform.data.ingest("legacy", source, "old.csv")
        # a plaintext home keeps anonymization.key as the root (0600)
        out = platform.privacy.anonymize_file(source, columns=["score"], repository="legacy",
                                              out_dir=tmp_path / "out")
        assert TOKEN.match(out.path.read_text().splitlines()[1].split(",")[1])
        assert (tmp_path / "home" / "anonymization.key").stat().st_mode & 0o777 == 0o600
