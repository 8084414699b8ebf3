"""The bundled sample problem (loan default), as the demo and the flows use it.

The files live in the repository's ``data/`` folder; ``MLOPS_LITE_SAMPLE_DATA``
may point elsewhere. Nothing is downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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


def sample_data_dir() -> Path:
    folder = Path(os.environ.get("MLOPS_LITE_SAMPLE_DATA") or Path(__file__).resolve().parents[1] / "data")
    if not (folder / LOANS.train).is_file():
        raise NotFound(f"the sample data is not in {folder}; set MLOPS_LITE_SAMPLE_DATA to the folder "
                       "holding loans.csv (regenerate it with `python data/generate.py`)")
    return folder
