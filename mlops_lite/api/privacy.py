"""``platform.privacy``: anonymization before data is committed (keyed tokens for PII
columns), with the repository's PII patterns."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mlops_lite.security.anonymize import AnonymizedFile


class PrivacyAPI(Protocol):
    def anonymize_file(self, source: Path, *, repository: str | None = None, columns: Sequence[str] | None = None,
                       out_dir: Path | None = None) -> AnonymizedFile: ...
