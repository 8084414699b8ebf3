"""Anonymization and pseudonymization of a table before it is committed (GDPR art. 4(5)
and recital 26; UAE PDPL).

Each column a repository declares (its privacy profile's ``transforms``) is dropped,
masked, generalized (numeric bands, date truncation, prefix truncation) or pseudonymized;
a column whose name matches the repository's PII patterns and has no declared transform
is pseudonymized. Output is deterministic: the same file and key give the same bytes.

A pseudonym is a token that says what it is: ``pii1:<keyid>:<32 hex>``, an HMAC-SHA256
under a key derived (HKDF-SHA256) from the installation's anonymization root for one
repository, one purpose and one key version; ``keyid`` is 8 hex characters that name
that key (a fingerprint, not the key). Two repositories give the same value different
tokens, so tokens do not link records across datasets. Rotation (a repository's next key
version) gives new tokens; old ones keep their prefix, so the data checks still know
them as tokens. Only the prefix makes a value a token: a 16-digit card number or any
hex string is not one. Tokens of the release before (32 bare hex characters) are
accepted only in a repository configured with ``legacy_tokens``.

The root is the encrypted home's keyring key ``anonymize``; a plaintext home keeps its
``anonymization.key`` (random, 0600); ``MLOPS_LITE_ANONYMIZATION_KEY`` (hex) overrides
both, which is how a Prefect worker on another host gets it. Losing the root means new
files get tokens that no longer match old ones; it never makes committed data readable.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import hmac
import io
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, Protocol

import pyarrow as pa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mlops_lite.errors import BackendUnavailable, InvalidInput, MissingDependency, NotFound

KEY_ENV = "MLOPS_LITE_ANONYMIZATION_KEY"
TOKEN_PREFIX = "pii1"
TOKEN = re.compile(r"^pii1:[0-9a-f]{8}:[0-9a-f]{32}$")
"""A pseudonym made by this release: the only values the PII check takes as anonymized."""
LEGACY_TOKEN = re.compile(r"^[0-9a-f]{32}$")
"""A token of the release before (bare hex): accepted only where ``legacy_tokens`` is set."""
PURPOSE = "pseudonymize"
TRANSFORMS = ("drop", "mask", "pseudonymize", "band", "truncate-date", "truncate-prefix")
ANONYMIZING = ("drop", "band", "truncate-date", "truncate-prefix")
"""Transforms that remove or generalize (anonymization, once k-anonymity holds);
``mask`` and ``pseudonymize`` leave personal data (pseudonymous, GDPR recital 26)."""
TABLE_KINDS = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".parquet", ".pq")
"""What the anonymizer reads and writes (each as the same kind)."""


def is_token(value: str, *, legacy: bool = False) -> bool:
    return bool(TOKEN.match(value) or (legacy and LEGACY_TOKEN.match(value)))


def token_pattern(*, legacy: bool = False) -> str:
    """The regular expression of a token (for the data checks' vectorized match)."""
    return f"{TOKEN.pattern}|{LEGACY_TOKEN.pattern}" if legacy else TOKEN.pattern


class Transform(Protocol):
    """A declared column transform (``mlops_lite.privacy.profile.ColumnTransform``)."""

    @property
    def column(self) -> str: ...

    @property
    def transform(self) -> str: ...

    @property
    def param(self) -> str | float | int | None: ...


class RepositoryRules(Protocol):
    """What the anonymizer reads of a repository's rules (``RepositoryConfig``)."""

    @property
    def effective_pii_patterns(self) -> tuple[str, ...]: ...

    @property
    def transforms(self) -> tuple[Transform, ...]: ...

    @property
    def anonymization_key_version(self) -> int: ...

    @property
    def legacy_tokens(self) -> bool: ...


@dataclass(frozen=True)
class ColumnPlan:
    column: str
    transform: str
    param: str | float | int | None = None


@dataclass(frozen=True)
class PseudonymKey:
    repository: str
    version: int
    id: str
    key: bytes

    def __repr__(self) -> str:  # never a key in a log or a traceback
        return f"PseudonymKey(repository={self.repository!r}, version={self.version}, id={self.id!r})"


def derive_key(root: bytes, repository: str, version: int = 1, purpose: str = PURPOSE) -> PseudonymKey:
    """The key of one repository, purpose and version: HKDF-SHA256 from the root."""
    if version < 1:
        raise InvalidInput("a key version starts at 1", field="anonymization_key_version", expected="an integer >= 1")
    info = b"\0".join((b"mlops-lite anonymization", purpose.encode(), repository.encode(), str(version).encode()))
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(root)
    key_id = hmac.new(key, b"mlops-lite key id", hashlib.sha256).hexdigest()[:8]
    return PseudonymKey(repository, version, key_id, key)


@dataclass(frozen=True)
class AnonymizedFile:
    path: Path           # the file to commit: the source itself when nothing changed
    columns: tuple[str, ...]  # the columns transformed (dropped ones included)
    rows: int
    values: int          # values replaced (a dropped column counts its non-null values)
    key_id: str | None = None  # the pseudonymization key's id, when a column was pseudonymized


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


def _kind(name: str) -> str | None:
    lower = name.lower()
    return next((k for k in sorted(TABLE_KINDS, key=len, reverse=True) if lower.endswith(k)), None)


_BAND = re.compile(r"^(-?\d+(\.\d+)?-+-?\d+(\.\d+)?|\[-?[\d.e+-]+, -?[\d.e+-]+\))$")
_DATE = {"year": (re.compile(r"^\d{4}"), 4), "month": (re.compile(r"^\d{4}-\d{2}"), 7),
         "day": (re.compile(r"^\d{4}-\d{2}-\d{2}"), 10)}


class Anonymizer:
    """Applies a plan of column transforms to a table or a file, under a repository's key."""

    def __init__(self, root: bytes | None) -> None:
        self._root = root

    def key(self, repository: str, version: int = 1) -> PseudonymKey:
        if self._root is None:
            raise MissingDependency(f"no anonymization key here: set {KEY_ENV} (the daemon's anonymization "
                                    "root, hex) on this worker")
        return derive_key(self._root, repository, version)

    @staticmethod
    def token(value: str, key: PseudonymKey) -> str:
        digest = hmac.new(key.key, value.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{TOKEN_PREFIX}:{key.id}:{digest}"

    @staticmethod
    def plan(header: Sequence[str], *, transforms: Sequence[Transform] = (), patterns: Sequence[str] = (),
             columns: Sequence[str] | None = None) -> list[ColumnPlan]:
        """What happens to each column of ``header``: the declared transforms, then the
        ``columns`` named (or, without them, those matching ``patterns``) pseudonymized."""
        declared = {t.column: ColumnPlan(t.column, t.transform, t.param) for t in transforms if t.column in header}
        if columns is not None:
            missing = [c for c in columns if c not in header]
            if missing:
                raise InvalidInput(f"no column {missing[0]!r} to anonymize", field="pii",
                                   expected=f"columns among {list(header)}")
            named = list(columns)
        else:
            compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
            named = [c for c in header if any(p.search(c) for p in compiled)]
        for column in named:
            declared.setdefault(column, ColumnPlan(column, "pseudonymize"))
        return [declared[c] for c in header if c in declared]

    def value(self, plan: ColumnPlan, value: Any, row: int, key: PseudonymKey | None, legacy: bool) -> str:
        """One non-null value transformed; refuses (naming the column and row, never the
        value) what the transform cannot read."""
        text = value.isoformat() if isinstance(value, date | datetime) else value if isinstance(value, str) \
            else str(value)
        where = f"privacy.transforms.{plan.column}"
        if plan.transform == "pseudonymize":
            if key is None:
                raise MissingDependency("no pseudonymization key")
            return text if is_token(text, legacy=legacy) else self.token(text, key)
        if plan.transform == "mask":
            kept = int(plan.param or 0)
            tail = text[-kept:] if kept else ""
            return "*" * (len(text) - len(tail)) + tail
        if plan.transform == "truncate-prefix":
            return text[:int(plan.param or 0)]
        if plan.transform == "truncate-date":
            pattern, length = _DATE[str(plan.param)]
            if not pattern.match(text):
                raise InvalidInput(f"row {row} of column {plan.column!r} is not an ISO date", field=where,
                                   expected="YYYY-MM-DD dates (or date/timestamp values)")
            return text[:length]
        if plan.transform == "band":
            return _band(text, value, float(plan.param or 1), row, plan.column)
        raise InvalidInput(f"unknown transform {plan.transform!r}", field=where, expected=" | ".join(TRANSFORMS))

    def table(self, table: pa.Table, plan: Sequence[ColumnPlan], *, key: PseudonymKey | None = None,
              legacy: bool = False) -> tuple[pa.Table, int]:
        """``table`` with the plan applied (transformed columns become strings); the count of values changed."""
        replaced = 0
        for step in plan:
            if step.column not in table.column_names:
                raise InvalidInput(f"no column {step.column!r} to anonymize", field="pii",
                                   expected=f"columns among {table.column_names}")
            index = table.column_names.index(step.column)
            if step.transform == "drop":
                replaced += len(table) - table.column(index).null_count
                table = table.remove_column(index)
                continue
            out: list[str | None] = []
            for row, value in enumerate(table.column(index).to_pylist(), start=1):
                if value is None:
                    out.append(None)
                    continue
                new = self.value(step, value, row, key, legacy)
                replaced += new != (value if isinstance(value, str) else None)
                out.append(new)
            table = table.set_column(index, pa.field(step.column, pa.string()), pa.array(out, type=pa.string()))
        return table, replaced

    def file(self, source: Path, *, transforms: Sequence[Transform] = (), patterns: Sequence[str] = (),
             columns: Sequence[str] | None = None, repository: str = "", key_version: int = 1,
             legacy_tokens: bool = False, out_dir: Path | None = None) -> AnonymizedFile:
        """Anonymize a CSV/TSV (optionally gzipped) or Parquet file by the plan its header
        gives. The result is a new file of the same kind with every other column untouched
        (a CSV's other fields keep their exact text, so types infer as before;
        deterministic bytes, so ingesting it twice commits once), or the source itself
        when nothing changed."""
        source = Path(source)
        if not source.is_file():
            raise InvalidInput(f"no such file: {source}", field="source", expected="an existing CSV or Parquet file")
        kind = _kind(source.name)
        if kind is None:
            raise InvalidInput(f"{source.name} is not a table file the anonymizer writes", field="source",
                               expected=" | ".join(TABLE_KINDS))
        folder = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="mlops-lite-anon-"))
        target = folder / source.name
        chooser: Callable[[Sequence[str]], list[ColumnPlan]] = lambda header: self.plan(  # noqa: E731
            header, transforms=transforms, patterns=patterns, columns=columns)
        needs_key: Callable[[Sequence[ColumnPlan]], PseudonymKey | None] = lambda plan: (  # noqa: E731
            self.key(repository, key_version) if any(p.transform == "pseudonymize" for p in plan) else None)
        if kind in (".parquet", ".pq"):
            return self._parquet(source, target, chooser, needs_key, legacy_tokens)
        return self._csv(source, target, kind, chooser, needs_key, legacy_tokens)

    def _parquet(self, source: Path, target: Path, chooser: Callable[[Sequence[str]], list[ColumnPlan]],
                 needs_key: Callable[[Sequence[ColumnPlan]], PseudonymKey | None], legacy: bool) -> AnonymizedFile:
        import pyarrow.parquet as pq

        table = pq.read_table(source)
        plan = chooser(table.column_names)
        key = needs_key(plan)
        anonymized, replaced = self.table(table, plan, key=key, legacy=legacy) if plan else (table, 0)
        touched = tuple(p.column for p in plan)
        if replaced == 0:
            return AnonymizedFile(source, touched, table.num_rows, 0, key.id if key else None)
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(anonymized, target)
        return AnonymizedFile(target, touched, table.num_rows, replaced, key.id if key else None)

    def _csv(self, source: Path, target: Path, kind: str, chooser: Callable[[Sequence[str]], list[ColumnPlan]],
             needs_key: Callable[[Sequence[ColumnPlan]], PseudonymKey | None], legacy: bool) -> AnonymizedFile:
        delimiter = "\t" if kind.startswith(".tsv") else ","
        with _text(source, "r") as stream:
            reader = csv.reader(stream, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise InvalidInput(f"{source.name} is empty", field="source", expected="a CSV file with a header")
            plan = chooser(header)
            if not plan:
                return AnonymizedFile(source, (), sum(1 for _ in reader), 0)
            key = needs_key(plan)
            steps = [(header.index(p.column), p) for p in plan]
            dropped = {i for i, p in steps if p.transform == "drop"}
            rows, replaced = [[h for i, h in enumerate(header) if i not in dropped]], 0
            for number, row in enumerate(reader, start=1):
                for i, step in steps:
                    if i >= len(row) or row[i] == "":
                        continue
                    new = "" if step.transform == "drop" else self.value(step, row[i], number, key, legacy)
                    replaced += new != row[i]
                    row[i] = new
                rows.append([v for i, v in enumerate(row) if i not in dropped])
        touched = tuple(p.column for p in plan)
        key_id = key.id if key else None
        if replaced == 0 and not dropped:
            return AnonymizedFile(source, touched, len(rows) - 1, 0, key_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        with _text(target, "w") as out:
            csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
        return AnonymizedFile(target, touched, len(rows) - 1, replaced, key_id)


def _band(text: str, value: Any, width: float, row: int, column: str) -> str:
    if _BAND.match(text) and not isinstance(value, int | float):
        return text  # already banded: anonymizing twice changes nothing
    try:
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise InvalidInput(f"row {row} of column {column!r} is not a number", field=f"privacy.transforms.{column}",
                           expected="numbers to put in bands")
    low = math.floor(number / width) * width
    if width.is_integer() and number.is_integer():
        return f"{int(low)}-{int(low + width - 1)}"
    return f"[{low:g}, {low + width:g})"


@contextmanager
def _text(path: Path, mode: str) -> Iterator[IO[str]]:
    """A table file as text; gzip for ``.gz`` (written with no name or time: deterministic)."""
    if path.name.lower().endswith(".gz"):
        if mode == "r":
            with gzip.open(path, "rt", newline="", encoding="utf-8") as stream:
                yield stream
            return
        with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed, \
                io.TextIOWrapper(packed, encoding="utf-8", newline="") as stream:
            yield stream
        return
    with open(path, mode, newline="", encoding="utf-8") as plain:
        yield plain


class RepositoryHandle(Protocol):
    def config(self) -> RepositoryRules: ...


class DataRepositories(Protocol):
    def repo(self, name: str) -> Any: ...


class Privacy:
    """``platform.privacy``: anonymize a file before it is committed, by the repository's
    declared transforms and PII patterns (the same patterns its checks enforce), under the
    repository's own pseudonymization key; rotate that key."""

    def __init__(self, anonymizer: Anonymizer, data: DataRepositories) -> None:
        self.anonymizer = anonymizer
        self._data = data

    def rules(self, repository: str) -> RepositoryRules | None:
        try:
            rules: RepositoryRules = self._data.repo(repository).config()
        except NotFound:
            return None
        return rules

    def anonymize_file(self, source: Path, *, repository: str | None = None, columns: Sequence[str] | None = None,
                       out_dir: Path | None = None) -> AnonymizedFile:
        """``columns`` (when given) are pseudonymized whatever the patterns say; a
        repository's declared transforms apply to the others. Without a repository, the
        key is the installation's own derivation for no repository (``""``)."""
        rules = self.rules(repository) if repository is not None else None
        if rules is None:
            return self.anonymizer.file(Path(source), columns=columns, repository=repository or "", out_dir=out_dir)
        return self.anonymizer.file(
            Path(source), transforms=rules.transforms, patterns=rules.effective_pii_patterns, columns=columns,
            repository=repository or "", key_version=rules.anonymization_key_version,
            legacy_tokens=rules.legacy_tokens, out_dir=out_dir)

    def key_id(self, repository: str) -> str:
        """The id of the repository's current pseudonymization key (what its tokens carry)."""
        rules = self.rules(repository)
        if rules is None:
            raise NotFound(f"data repository {repository!r} does not exist")
        return self.anonymizer.key(repository, rules.anonymization_key_version).id

    def rotate_key(self, repository: str) -> str:
        """Move the repository to its next pseudonymization key (audited ``keys.rotate``);
        the new key's id. Tokens made before keep their prefix and stay recognised."""
        repo = self._data.repo(repository)
        rotate = getattr(repo, "rotate_anonymization_key", None)
        if rotate is None:
            raise BackendUnavailable("rotating a repository's pseudonymization key is done where its rules are "
                                     "kept: on the daemon's host (the embedded data store)")
        version: int = rotate()
        return self.anonymizer.key(repository, version).id
