"""What a data repository declares about the personal data it holds: its
classification, where it lives, why it is processed, for how long, who its data
subjects are, and how its columns are anonymized.

Stored in the repository's config (``RepositoryConfig.privacy``); set at creation
(``Repository.create(privacy=...)``, ``mlops-lite data repo create --classification``)
and changed with ``Repository.configure(privacy=...)``. One shape for every backend.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mlops_lite.errors import InvalidInput

CLASSIFICATIONS = ("public", "internal", "personal", "sensitive-personal")
"""From least to most restricted (GDPR art. 9 / UAE PDPL "sensitive personal data" last)."""

LAWFUL_BASES = ("consent", "contract", "legal-obligation", "vital-interests", "public-task",
                "legitimate-interests")
"""GDPR art. 6(1) (a) to (f); the UAE PDPL's art. 4 and 5 bases map onto them."""

TRANSFORMS = ("drop", "mask", "pseudonymize", "band", "truncate-date", "truncate-prefix")
"""Per-column transforms. ``drop``, ``band``, ``truncate-date`` and ``truncate-prefix``
generalize or remove (anonymization, once k-anonymity holds over the quasi-identifiers);
``mask`` hides part of a value; ``pseudonymize`` is a keyed token, and pseudonymous data
is still personal data under the GDPR (recital 26)."""

DEFAULT_PII_PATTERNS = (r"(^|_)(e-?mail|phone|mobile|name|first_?name|last_?name|surname|address|street|"
                        r"national_?id|emirates_?id|passport|ssn|iban|card(_?number)?|dob|birth)($|_)",)
"""Column names a ``personal`` or ``sensitive-personal`` repository checks by default."""

_REGION = re.compile(r"^[a-z][a-z0-9-]{1,31}$")


@dataclass(frozen=True)
class ColumnTransform:
    column: str
    transform: str
    # band: the width of a numeric band (e.g. 10 -> "30-39"); truncate-date: "year" | "month"
    # | "day"; truncate-prefix: characters kept; mask: characters kept at the end.
    param: str | float | int | None = None

    def validate(self, where: str) -> None:
        if not isinstance(self.column, str) or not self.column:
            raise InvalidInput("a transform needs a column", field=f"{where}.column", expected="a column name")
        if self.transform not in TRANSFORMS:
            raise InvalidInput(f"unknown transform {self.transform!r}", field=f"{where}.transform",
                               expected=" | ".join(TRANSFORMS))
        if self.transform == "band" and not (isinstance(self.param, int | float) and self.param > 0):
            raise InvalidInput("band needs a positive width", field=f"{where}.param", expected="a number > 0")
        if self.transform == "truncate-date" and self.param not in ("year", "month", "day"):
            raise InvalidInput("truncate-date needs a unit", field=f"{where}.param", expected="year | month | day")
        if self.transform == "truncate-prefix" and not (isinstance(self.param, int) and self.param >= 0):
            raise InvalidInput("truncate-prefix needs the characters kept", field=f"{where}.param",
                               expected="an integer >= 0")


@dataclass(frozen=True)
class PrivacyProfile:
    classification: str
    region: str | None = None
    """Where the repository's bytes are stored (None: the installation's ``region``)."""
    location: str | None = None
    """The storage location, as an operator reads it (None: the backend's own: the home's
    objects folder, or the lakeFS storage namespace)."""
    purpose: str | None = None
    lawful_basis: str | None = None
    categories: tuple[str, ...] = ()
    """Categories of personal data (e.g. "contact details", "financial")."""
    data_subjects: str | None = None
    """Who the data is about (e.g. "loan applicants")."""
    retention_days: int | None = None
    time_column: str | None = None
    """The column whose age retention counts (rows older than retention_days go); without
    it, retention counts from the commit that added the object."""
    subject_columns: tuple[str, ...] = ()
    """Columns that identify a data subject: what ``privacy erase``/``export`` match on."""
    transforms: tuple[ColumnTransform, ...] = ()
    quasi_identifiers: tuple[str, ...] = ()
    k_anonymity: int | None = None
    """With quasi-identifiers, the smallest equivalence class a merge to a protected branch allows."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def personal(self) -> bool:
        return self.classification in ("personal", "sensitive-personal")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> PrivacyProfile | None:
        if data is None:
            return None
        if not isinstance(data, dict):
            raise InvalidInput("privacy must be a table", field="privacy", expected="{classification: ..., ...}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"unknown privacy field {unknown[0]!r}", field=f"privacy.{unknown[0]}",
                               expected=", ".join(sorted(known)))
        values = dict(data)
        try:
            values["transforms"] = tuple(t if isinstance(t, ColumnTransform) else ColumnTransform(**t)
                                         for t in values.get("transforms", ()))
        except TypeError as exc:
            raise InvalidInput(f"bad transform: {exc}", field="privacy.transforms",
                               expected="[{column, transform, param}]") from exc
        for name in ("categories", "subject_columns", "quasi_identifiers"):
            if name in values:
                if isinstance(values[name], str) or not all(isinstance(v, str) for v in values[name]):
                    raise InvalidInput(f"privacy.{name} must be a list of strings", field=f"privacy.{name}",
                                       expected="a list of strings")
                values[name] = tuple(values[name])
        if "classification" not in values:
            raise InvalidInput("a repository's privacy profile needs a classification",
                               field="privacy.classification", expected=" | ".join(CLASSIFICATIONS))
        profile = cls(**values)
        profile.validate()
        return profile

    def validate(self) -> None:
        if self.classification not in CLASSIFICATIONS:
            raise InvalidInput(f"unknown classification {self.classification!r}", field="privacy.classification",
                               expected=" | ".join(CLASSIFICATIONS))
        if self.region is not None and not (isinstance(self.region, str) and _REGION.match(self.region)):
            raise InvalidInput(f"bad region {self.region!r}", field="privacy.region",
                               expected="a lowercase region code such as 'ae' or 'eu-west-1'")
        if self.lawful_basis is not None and self.lawful_basis not in LAWFUL_BASES:
            raise InvalidInput(f"unknown lawful basis {self.lawful_basis!r}", field="privacy.lawful_basis",
                               expected=" | ".join(LAWFUL_BASES))
        if self.retention_days is not None and not (isinstance(self.retention_days, int)
                                                    and self.retention_days >= 1):
            raise InvalidInput("retention_days must be a whole number of days >= 1", field="privacy.retention_days",
                               expected="an integer >= 1")
        if self.k_anonymity is not None and not (isinstance(self.k_anonymity, int) and self.k_anonymity >= 2):
            raise InvalidInput("k_anonymity must be 2 or more", field="privacy.k_anonymity", expected="an integer >= 2")
        if self.k_anonymity is not None and not self.quasi_identifiers:
            raise InvalidInput("k_anonymity needs quasi_identifiers", field="privacy.quasi_identifiers",
                               expected="the columns that together could single a person out")
        for i, transform in enumerate(self.transforms):
            transform.validate(f"privacy.transforms[{i}]")

    def with_changes(self, **changes: Any) -> PrivacyProfile:
        profile = replace(self, **changes)
        profile.validate()
        return profile
