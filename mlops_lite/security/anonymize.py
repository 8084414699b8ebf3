"""Pseudonymization of PII before data is committed (GDPR art. 4(5); UAE PDPL).

Each value of a PII column becomes a keyed hash: HMAC-SHA256 under a secret of this
installation, as 32 hex characters. The same person gets the same token in every
file (joins and counts still work), and nobody without the key can recompute it from
a guessed name or phone number. Values that already look anonymized are kept, so
anonymizing twice changes nothing; nulls stay null.

The key is ``MLOPS_LITE_ANONYMIZATION_KEY`` (hex) when set, which is how a Prefect
worker on another host gets it, else ``anonymization.key`` in the home (random, mode
0600, created on first use). Losing it means new files get tokens that no longer
match old ones; it never makes committed data readable.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from mlops_lite.errors import InvalidInput, MissingDependency

ANONYMIZED = re.compile(r"^[0-9a-f]{16,64}$")  # what the data checks accept in a PII column
KEY_ENV = "MLOPS_LITE_ANONYMIZATION_KEY"
TOKEN_HEX = 32


@dataclass(frozen=True)
class AnonymizedFile:
    path: Path           # the file to commit: the source itself when no column needed it
    columns: tuple[str, ...]
    rows: int
    values: int          # values replaced by tokens


def key_from_env() -> bytes | None:
    raw = os.environ.get(KEY_ENV)
    if not raw:
        return None
    try:
        key = bytes.fromhex(raw.strip())
    except ValueError as exc:
        raise InvalidInput(f"{KEY_ENV} is not hex", field=KEY_ENV, expected="a hex key of 32 bytes or more") from exc
    if len(key) < 16:
        raise InvalidInput(f"{KEY_ENV} is too short", field=KEY_ENV, expected="a hex key of 16 bytes or more")
    return key


class Anonymizer:
    def __init__(self, key: bytes | None) -> None:
        self._key = key

    def _require_key(self) -> bytes:
        if self._key is None:
            raise MissingDependency(f"no anonymization key here: set {KEY_ENV} (the hex key in the daemon's "
                                    "home, anonymization.key) on this worker")
        return self._key

    def token(self, value: str) -> str:
        return hmac.new(self._require_key(), value.encode(), hashlib.sha256).hexdigest()[:TOKEN_HEX]

    def columns_of(self, table: pa.Table, patterns: Sequence[str]) -> list[str]:
        compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
        return [c for c in table.column_names if any(p.search(c) for p in compiled)]

    def table(self, table: pa.Table, columns: Sequence[str]) -> tuple[pa.Table, int]:
        """``table`` with ``columns`` replaced by tokens (as strings); answers the count replaced."""
        replaced = 0
        for name in columns:
            if name not in table.column_names:
                raise InvalidInput(f"no column {name!r} to anonymize", field="pii",
                                   expected=f"columns among {table.column_names}")
            out: list[str | None] = []
            for value in table.column(name).to_pylist():
                if value is None:
                    out.append(None)
                    continue
                text = value if isinstance(value, str) else str(value)
                if ANONYMIZED.match(text):
                    out.append(text)
                else:
                    out.append(self.token(text))
                    replaced += 1
            table = table.set_column(table.column_names.index(name), pa.field(name, pa.string()),
                                     pa.array(out, type=pa.string()))
        return table, replaced

    def file(self, source: Path, *, columns: Sequence[str] | None = None, patterns: Sequence[str] = (),
             out_dir: Path | None = None) -> AnonymizedFile:
        """Anonymize a CSV or Parquet file: the named ``columns``, or those whose names match
        ``patterns``. The result is a new file of the same kind with every other column
        untouched (a CSV's other fields keep their exact text, so types infer as before;
        deterministic bytes, so ingesting it twice commits once), or the source itself
        when nothing needed it."""
        source = Path(source)
        if not source.is_file():
            raise InvalidInput(f"no such file: {source}", field="source", expected="an existing CSV or Parquet file")
        kind = source.suffix.lower()
        if kind not in (".csv", ".parquet"):
            raise InvalidInput(f"{source.name} is not a table file", field="source", expected="a .csv or .parquet file")
        folder = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="mlops-lite-anon-"))
        target = folder / source.name
        if kind == ".parquet":
            return self._parquet(source, target, columns, patterns)
        return self._csv(source, target, columns, patterns)

    def _parquet(self, source: Path, target: Path, columns: Sequence[str] | None,
                 patterns: Sequence[str]) -> AnonymizedFile:
        import pyarrow.parquet as pq

        table = pq.read_table(source)
        chosen = list(columns) if columns is not None else self.columns_of(table, patterns)
        anonymized, replaced = self.table(table, chosen) if chosen else (table, 0)
        if replaced == 0:
            return AnonymizedFile(source, tuple(chosen), table.num_rows, 0)
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(anonymized, target)
        return AnonymizedFile(target, tuple(chosen), table.num_rows, replaced)

    def _csv(self, source: Path, target: Path, columns: Sequence[str] | None,
             patterns: Sequence[str]) -> AnonymizedFile:
        import csv

        with open(source, newline="", encoding="utf-8") as stream:
            reader = csv.reader(stream)
            header = next(reader, None)
            if header is None:
                raise InvalidInput(f"{source.name} is empty", field="source", expected="a CSV file with a header")
            if columns is not None:
                missing = [c for c in columns if c not in header]
                if missing:
                    raise InvalidInput(f"no column {missing[0]!r} to anonymize", field="pii",
                                       expected=f"columns among {header}")
                chosen = list(columns)
            else:
                compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
                chosen = [c for c in header if any(p.search(c) for p in compiled)]
            if not chosen:
                return AnonymizedFile(source, (), sum(1 for _ in reader), 0)
            indices = [header.index(c) for c in chosen]
            rows, replaced = [header], 0
            for row in reader:
                for i in indices:
                    if i < len(row) and row[i] != "" and not ANONYMIZED.match(row[i]):
                        row[i] = self.token(row[i])
                        replaced += 1
                rows.append(row)
        if replaced == 0:
            return AnonymizedFile(source, tuple(chosen), len(rows) - 1, 0)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "w", newline="", encoding="utf-8") as out:
            csv.writer(out, lineterminator="\n").writerows(rows)
        return AnonymizedFile(target, tuple(chosen), len(rows) - 1, replaced)


class Privacy:
    """``platform.privacy``: anonymize a file before it is committed, by the columns named
    or by the repository's PII patterns (the same patterns main's checks enforce)."""

    def __init__(self, anonymizer: Anonymizer, patterns_of: Callable[[str], Sequence[str]]) -> None:
        self.anonymizer = anonymizer
        self._patterns_of = patterns_of

    def anonymize_file(self, source: Path, *, repository: str | None = None, columns: Sequence[str] | None = None,
                       out_dir: Path | None = None) -> AnonymizedFile:
        patterns: Sequence[str] = ()
        if columns is None and repository is not None:
            patterns = self._patterns_of(repository)
        return self.anonymizer.file(Path(source), columns=columns, patterns=patterns, out_dir=out_dir)
