"""Repository rules: protected branches, and checks that run before a ref moves.

A check reads the objects a commit or merge would add or change and returns
every reason it fails; the operation is refused with all of them, and the
branch stays where it was.
"""

from __future__ import annotations

import fnmatch
import gzip
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mlops_lite.errors import InvalidInput
from mlops_lite.privacy.profile import DEFAULT_PII_PATTERNS, ColumnTransform, PrivacyProfile
from mlops_lite.security.anonymize import token_pattern

TABLE_KINDS = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")
"""Every tabular format the checks read (by suffix, any case): a file of one of these in a
repository with rules is read and checked, and refused when it cannot be read."""

TYPE_NAMES = ("int", "float", "string", "bool", "timestamp", "date")


def type_name(dtype: pa.DataType) -> str:
    if pa.types.is_integer(dtype):
        return "int"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "float"
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_timestamp(dtype):
        return "timestamp"
    if pa.types.is_date(dtype):
        return "date"
    return "string"


@dataclass(frozen=True)
class ColumnRule:
    name: str
    type: str
    nullable: bool = True


@dataclass(frozen=True)
class SchemaRule:
    """Tabular files matching ``paths`` (a glob) must have exactly these columns."""

    paths: str
    columns: tuple[ColumnRule, ...]


@dataclass(frozen=True)
class RepositoryConfig:
    protected_branches: tuple[str, ...] = ("main",)
    schemas: tuple[SchemaRule, ...] = ()
    pii_patterns: tuple[str, ...] = ()
    max_object_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    privacy: PrivacyProfile | None = None
    """Classification, residency, purpose, retention, data subjects, anonymization."""
    anonymization_key_version: int = 1
    """The repository's pseudonymization key (``platform.privacy.rotate_key`` moves it on)."""
    legacy_tokens: bool = False
    """Accept the previous release's bare-hex tokens (32 hex characters) as anonymized."""

    @property
    def classification(self) -> str:
        """The profile's classification; a repository made before classifications existed
        (no profile) is read as ``personal``."""
        return "personal" if self.privacy is None else self.privacy.classification

    @property
    def effective_pii_patterns(self) -> tuple[str, ...]:
        """The PII column patterns the checks enforce: those configured, else the default
        ones for a personal (or unclassified) repository."""
        if self.pii_patterns:
            return self.pii_patterns
        return DEFAULT_PII_PATTERNS if self.classification in ("personal", "sensitive-personal") else ()

    @property
    def transforms(self) -> tuple[ColumnTransform, ...]:
        return () if self.privacy is None else self.privacy.transforms

    @property
    def has_rules(self) -> bool:
        return bool(self.schemas or self.effective_pii_patterns or self.max_object_bytes is not None
                    or (self.privacy is not None and self.privacy.k_anonymity))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["privacy"] = None if self.privacy is None else self.privacy.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RepositoryConfig:
        if not data:
            return cls()
        try:
            schemas = tuple(SchemaRule(paths=s["paths"], columns=tuple(ColumnRule(**c) for c in s["columns"]))
                            for s in data.get("schemas", ()))
            config = cls(protected_branches=tuple(data.get("protected_branches", ("main",))), schemas=schemas,
                         pii_patterns=tuple(data.get("pii_patterns", ())),
                         max_object_bytes=data.get("max_object_bytes"), extra=dict(data.get("extra", {})),
                         privacy=PrivacyProfile.from_json(data.get("privacy")),
                         anonymization_key_version=int(data.get("anonymization_key_version", 1)),
                         legacy_tokens=bool(data.get("legacy_tokens", False)))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"bad repository config: {exc}", field="config",
                               expected="protected_branches, schemas[{paths, columns[{name, type, nullable}]}], "
                                        "pii_patterns, max_object_bytes") from exc
        config.validate()
        return config

    def validate(self) -> None:
        if self.privacy is not None:
            self.privacy.validate()
        for pattern in self.pii_patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise InvalidInput(f"bad PII pattern {pattern!r}: {exc}", field="pii_patterns",
                                   expected="regular expressions over column names") from exc
        for schema in self.schemas:
            for column in schema.columns:
                if column.type not in TYPE_NAMES:
                    raise InvalidInput(f"unknown column type {column.type!r}", field=f"schemas.{column.name}.type",
                                       expected=" | ".join(TYPE_NAMES))
        if not (isinstance(self.anonymization_key_version, int) and self.anonymization_key_version >= 1):
            raise InvalidInput("anonymization_key_version must be 1 or more", field="anonymization_key_version",
                               expected="an integer >= 1")
        if self.max_object_bytes is not None and self.max_object_bytes <= 0:
            raise InvalidInput("max_object_bytes must be positive", field="max_object_bytes",
                               expected="a positive number of bytes")


def table_kind(path: str) -> str | None:
    """The tabular format of ``path`` by its suffix (any case), or None."""
    lower = path.lower()
    return next((k for k in sorted(TABLE_KINDS, key=len, reverse=True) if lower.endswith(k)), None)


def _read(path: str, file: Path | Callable[[], BinaryIO]) -> pa.Table | None:
    kind = table_kind(path)
    if kind is None:
        return None
    if isinstance(file, Path):
        with open(file, "rb") as stream:
            return _parse(kind, stream)
    with file() as stream:
        return _parse(kind, stream)


def _parse(kind: str, stream: BinaryIO) -> pa.Table:
    import pyarrow.json as pajson

    if kind.endswith(".gz"):
        stream = io.BytesIO(gzip.decompress(stream.read()))
        kind = kind[:-3]
    if kind in (".parquet", ".pq"):
        return pq.read_table(stream)
    if kind in (".csv", ".tsv"):
        return pacsv.read_csv(stream, parse_options=pacsv.ParseOptions(delimiter="\t" if kind == ".tsv" else ","))
    if kind in (".jsonl", ".ndjson"):
        return pajson.read_json(stream)
    records = json.loads(stream.read())
    if not (isinstance(records, list) and all(isinstance(r, dict) for r in records)):
        raise pa.ArrowInvalid("a .json table file holds a list of records (objects)")
    return pa.Table.from_pylist(records)


def run_checks(config: RepositoryConfig, changed: Sequence[tuple[str, Path | Callable[[], BinaryIO], int]], *,
               protected: bool = False) -> list[str]:
    """Every reason the changed objects (path, file, size) break the rules; empty when they
    pass. ``protected``: the destination is a protected branch (k-anonymity is checked there)."""
    reasons: list[str] = []
    pii = [re.compile(p, re.IGNORECASE) for p in config.effective_pii_patterns]
    tokens = token_pattern(legacy=config.legacy_tokens)
    profile = config.privacy
    k_check = protected and profile is not None and profile.k_anonymity is not None
    for path, file, size in changed:
        if config.max_object_bytes is not None and size > config.max_object_bytes:
            reasons.append(f"{path}: {size} bytes is over the limit of {config.max_object_bytes}")
        rules = [s for s in config.schemas if fnmatch.fnmatch(path, s.paths)]
        if not rules and not pii and not k_check:
            continue
        try:
            table = _read(path, file)
        except (pa.ArrowInvalid, OSError, EOFError, ValueError, UnicodeDecodeError) as exc:
            reasons.append(f"{path}: cannot be read as a table, so it cannot be checked "
                           f"({type(exc).__name__}); fix the file or its suffix")
            continue
        if table is None:
            continue
        for rule in rules:
            reasons += _schema_reasons(path, table, rule)
        for column in table.column_names:
            if any(p.search(column) for p in pii):
                values = table.column(column).drop_null().cast(pa.string())
                plain = pc.sum(pc.invert(pc.match_substring_regex(values, tokens))).as_py() or 0
                if plain:
                    reasons.append(f"{path}: column {column!r} matches a PII pattern and holds {plain} "
                                   f"values that are not pseudonymized (tokens look like pii1:<keyid>:<hex>)")
        if k_check and profile is not None and profile.k_anonymity is not None:
            reasons += k_anonymity_reasons(path, table, profile.quasi_identifiers, profile.k_anonymity, pii)
    return reasons


def k_anonymity_reasons(path: str, table: pa.Table, quasi_identifiers: Sequence[str], k: int,
                        pii: Sequence[re.Pattern[str]] = ()) -> list[str]:
    """Why ``table`` is not k-anonymous over the quasi-identifiers it holds (none: it is, or
    it holds none of them). The smallest equivalence class is named by its values, as
    stored (the generalized values); a column that matches a PII pattern is withheld."""
    present = [q for q in quasi_identifiers if q in table.column_names]
    if not present or table.num_rows == 0:
        return []
    keys = table.select(present).cast(pa.schema([pa.field(q, pa.string()) for q in present]))
    groups = keys.group_by(present, use_threads=False).aggregate([([], "count_all")])
    rows = sorted(groups.to_pylist(), key=lambda g: (g["count_all"], [str(g[q]) for q in present]))
    smallest = rows[0]
    if smallest["count_all"] >= k:
        return []
    shown = ", ".join(f"{q}=" + ("(withheld)" if any(p.search(q) for p in pii) else repr(smallest[q]))
                      for q in present)
    small = sum(1 for g in rows if g["count_all"] < k)
    return [f"{path}: not {k}-anonymous over ({', '.join(present)}): the smallest equivalence class "
            f"({shown}) has {smallest['count_all']} row(s); {small} of {len(rows)} classes are under {k} "
            "(generalize further: wider bands, coarser dates, shorter prefixes)"]


def _schema_reasons(path: str, table: pa.Table, rule: SchemaRule) -> list[str]:
    reasons = []
    expected = [c.name for c in rule.columns]
    if table.column_names != expected:
        missing = [c for c in expected if c not in table.column_names]
        extra = [c for c in table.column_names if c not in expected]
        reasons.append(f"{path}: columns differ from the pinned schema ({rule.paths}): "
                       f"missing {missing}, unexpected {extra}" if missing or extra else
                       f"{path}: columns are in another order than the pinned schema ({rule.paths})")
    for column in rule.columns:
        if column.name not in table.column_names:
            continue
        actual = type_name(table.column(column.name).type)
        if actual != column.type and not (column.type == "float" and actual == "int"):
            reasons.append(f"{path}: column {column.name!r} is {actual}, the pinned schema says {column.type}")
        nulls = table.column(column.name).null_count
        if nulls and not column.nullable:
            reasons.append(f"{path}: column {column.name!r} has {nulls} nulls and is pinned not nullable")
    return reasons
