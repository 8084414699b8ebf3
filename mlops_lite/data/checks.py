"""Repository rules: protected branches, and checks that run before a ref moves.

A check reads the objects a commit or merge would add or change and returns
every reason it fails; the operation is refused with all of them, and the
branch stays where it was.
"""

from __future__ import annotations

import fnmatch
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
from mlops_lite.privacy.profile import PrivacyProfile
from mlops_lite.security.anonymize import ANONYMIZED

# What an anonymized value looks like: a keyed hash in hex (mlops_lite.security.anonymize).

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
                         privacy=PrivacyProfile.from_json(data.get("privacy")))
        except (KeyError, TypeError) as exc:
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
        if self.max_object_bytes is not None and self.max_object_bytes <= 0:
            raise InvalidInput("max_object_bytes must be positive", field="max_object_bytes",
                               expected="a positive number of bytes")


def _read(path: str, file: Path | Callable[[], BinaryIO]) -> pa.Table | None:
    kind = "parquet" if path.endswith(".parquet") else "csv" if path.endswith(".csv") else None
    if kind is None:
        return None
    reader = pq.read_table if kind == "parquet" else pacsv.read_csv
    if isinstance(file, Path):
        return reader(file)
    with file() as stream:
        return reader(stream)


def run_checks(config: RepositoryConfig, changed: Sequence[tuple[str, Path | Callable[[], BinaryIO], int]]) -> list[str]:
    """Every reason the changed objects (path, file, size) break the rules; empty when they pass."""
    reasons: list[str] = []
    pii = [re.compile(p, re.IGNORECASE) for p in config.pii_patterns]
    for path, file, size in changed:
        if config.max_object_bytes is not None and size > config.max_object_bytes:
            reasons.append(f"{path}: {size} bytes is over the limit of {config.max_object_bytes}")
        rules = [s for s in config.schemas if fnmatch.fnmatch(path, s.paths)]
        if not rules and not pii:
            continue
        try:
            table = _read(path, file)
        except (pa.ArrowInvalid, OSError) as exc:
            reasons.append(f"{path}: cannot be read as a table ({exc})")
            continue
        if table is None:
            continue
        for rule in rules:
            reasons += _schema_reasons(path, table, rule)
        for column in table.column_names:
            if any(p.search(column) for p in pii):
                values = table.column(column).drop_null().cast(pa.string())
                plain = pc.sum(pc.invert(pc.match_substring_regex(values, ANONYMIZED.pattern))).as_py() or 0
                if plain:
                    reasons.append(f"{path}: column {column!r} matches a PII pattern and holds {plain} "
                                   "values that are not anonymized")
    return reasons


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
