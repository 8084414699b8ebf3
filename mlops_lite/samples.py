"""The bundled sample problem (loan default), as the demo uses it.

The files are the top-level ``data/`` folder of the repository, where their generator
lives; the package carries them as ``mlops_lite/sample_data`` (a link to that folder in
a checkout, the files themselves in an installed wheel), so ``path(name)`` finds them
either way. ``MLOPS_LITE_SAMPLE_DATA`` may name another folder. Nothing is downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

from mlops_lite.errors import NotFound


@dataclass(frozen=True)
class SampleDataset:
    train: str
    drifted: str
    holdout: str
    target: str
    pii: tuple[str, ...]
    sensitive: tuple[str, ...]

    @property
    def excluded(self) -> tuple[str, ...]:
        """Columns never fed to a model: PII and protected attributes."""
        return self.pii + self.sensitive


LOANS = SampleDataset(train="loans.csv", drifted="loans_drifted.csv", holdout="loans_holdout.csv",
                      target="default", pii=("name", "email", "phone"), sensitive=("gender", "age"))



@dataclass(frozen=True)
class SampleFeatures:
    """The customer entity's sample (docs/features.md): monthly history snapshots and loan
    applications (the entity rows, labelled), the feature definitions over them, and the
    paths the demo commits each file at in the ``loans`` repository (the definitions read
    those folders). The history ends on ``history_end``; ``timestamps`` are the columns the
    demo moves by whole days so that it ends today and the TTLs mean now what they meant then."""

    history: str
    applications: str
    definitions: str
    history_path: str
    applications_path: str
    service: str
    target: str
    timestamps: tuple[str, ...]
    history_end: datetime


LOAN_FEATURES = SampleFeatures(history="customers.csv", applications="applications.csv",
                               definitions="features.toml", history_path="customers/customers.csv",
                               applications_path="applications/applications.csv",
                               service="loan-default-by-customer", target="default",
                               timestamps=("event_timestamp", "created_timestamp"),
                               history_end=datetime(2026, 1, 1, tzinfo=UTC))


def path(name: str) -> Path:
    """The sample file ``name`` (e.g. ``LOANS.train``) on disk. NotFound when it is not
    there, saying how to make it."""
    folder = os.environ.get("MLOPS_LITE_SAMPLE_DATA")
    found = Path(folder) / name if folder else Path(str(files("mlops_lite") / "sample_data" / name))
    if not found.is_file():
        raise NotFound(f"the sample file {name} is not in {found.parent}; set MLOPS_LITE_SAMPLE_DATA to the folder "
                       "holding it (regenerate the files with `python data/generate.py`)")
    return found
