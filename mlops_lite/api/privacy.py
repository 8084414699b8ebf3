"""``platform.privacy``: anonymization before data is committed (keyed tokens for PII
columns), with the repository's PII patterns; the data subject's rights (erasure, access)
and retention."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mlops_lite.records import CommitReplacement, ErasureReport, RetentionReport, SubjectExport
    from mlops_lite.security.anonymize import AnonymizedFile


class PrivacyAPI(Protocol):
    def anonymize_file(self, source: Path, *, repository: str | None = None, columns: Sequence[str] | None = None,
                       out_dir: Path | None = None) -> AnonymizedFile: ...

    def key_id(self, repository: str) -> str:
        """The id of the repository's current pseudonymization key (what its tokens carry)."""

    def rotate_key(self, repository: str) -> str:
        """Move the repository to its next pseudonymization key (admin; audited ``keys.rotate``);
        the new key's id. Old tokens keep their ``pii1:`` prefix and stay accepted."""

    def erase(self, repository: str, subject: str, *, dry_run: bool = False,
              actor: str | None = None) -> ErasureReport: ...

    def export(self, repository: str, subject: str, *, actor: str | None = None) -> SubjectExport: ...

    def retention(self, *, dry_run: bool = False, actor: str | None = None) -> RetentionReport: ...

    def replacement(self, commit_id: str) -> CommitReplacement: ...
