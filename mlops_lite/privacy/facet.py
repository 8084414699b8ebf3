"""``platform.privacy``: anonymization before data is committed (the anonymizer's facet),
and the data subject's rights and retention: erase, export, retention."""

from __future__ import annotations

from typing import Protocol

from mlops_lite.errors import BackendUnavailable, NotFound
from mlops_lite.privacy.erasure import Erasure
from mlops_lite.privacy.retention import Retention
from mlops_lite.records import CommitReplacement, ErasureReport, RetentionReport, SubjectExport
from mlops_lite.security.anonymize import Anonymizer, DataRepositories
from mlops_lite.security.anonymize import Privacy as Anonymization


class SubjectRights(Protocol):
    """Erasure, export and retention: over the embedded stores, or over HTTP."""

    def erase(self, repository: str, subject: str, *, dry_run: bool = False,
              actor: str | None = None) -> ErasureReport: ...

    def export(self, repository: str, subject: str, *, actor: str | None = None) -> SubjectExport: ...

    def retention(self, *, dry_run: bool = False, actor: str | None = None) -> RetentionReport: ...

    def replacement(self, commit_id: str) -> CommitReplacement: ...


class Privacy(Anonymization):
    def __init__(self, anonymizer: Anonymizer, data: DataRepositories, rights: SubjectRights) -> None:
        super().__init__(anonymizer, data)
        self._rights = rights

    def subject_tokens(self, repository: str, subject: str) -> set[str]:
        """The pseudonymous tokens ``subject`` has in ``repository``: one per key the repository
        has had (a rotation keeps older tokens in older commits)."""
        rules = self.rules(repository)
        if rules is None:
            return set()
        return {self.anonymizer.token(subject, self.anonymizer.key(repository, version))
                for version in range(1, rules.anonymization_key_version + 1)}

    def erase(self, repository: str, subject: str, *, dry_run: bool = False,
              actor: str | None = None) -> ErasureReport:
        """Remove the subject (its identifier, or its token) from every commit of ``repository``
        (and of any repository sharing an affected object), the prediction log and feedback;
        the old objects are deleted, commits mapped old -> new, models trained on them flagged.
        Audited as ``privacy.erase`` with a keyed digest of the subject, never the identifier."""
        return self._rights.erase(repository, subject, dry_run=dry_run, actor=actor)

    def export(self, repository: str, subject: str, *, actor: str | None = None) -> SubjectExport:
        """Every row of the subject at each branch head and in the prediction log (audited
        as ``privacy.export``, without the rows)."""
        return self._rights.export(repository, subject, actor=actor)

    def retention(self, *, dry_run: bool = False, actor: str | None = None) -> RetentionReport:
        """Apply every repository's ``retention_days`` and the prediction log's retention now."""
        return self._rights.retention(dry_run=dry_run, actor=actor)

    def replacement(self, commit_id: str) -> CommitReplacement:
        """The commit that replaced ``commit_id`` when an erasure or retention run rewrote it
        (what lineage naming the old commit follows); NotFound when none did."""
        return self._rights.replacement(commit_id)


class LocalRights:
    """The data subject's rights over the embedded data store."""

    def __init__(self, erasure: Erasure, retention: Retention) -> None:
        self._erasure = erasure
        self._retention = retention

    def erase(self, repository: str, subject: str, *, dry_run: bool = False,
              actor: str | None = None) -> ErasureReport:
        return self._erasure.erase(repository, subject, dry_run=dry_run, actor=actor)

    def export(self, repository: str, subject: str, *, actor: str | None = None) -> SubjectExport:
        return self._erasure.export(repository, subject, actor=actor)

    def retention(self, *, dry_run: bool = False, actor: str | None = None) -> RetentionReport:
        return self._retention.run(dry_run=dry_run, actor=actor)

    def replacement(self, commit_id: str) -> CommitReplacement:
        return self._erasure.replacement(commit_id)


class NoHistoryRewrite:
    """A data backend whose history this process cannot rewrite (a lakeFS server)."""

    def _refuse(self) -> BackendUnavailable:
        return BackendUnavailable("erasure, export and retention rewrite the embedded data store's history; "
                                  "this home keeps its data on a lakeFS server, which they do not reach")

    def erase(self, repository: str, subject: str, *, dry_run: bool = False,
              actor: str | None = None) -> ErasureReport:
        raise self._refuse()

    def export(self, repository: str, subject: str, *, actor: str | None = None) -> SubjectExport:
        raise self._refuse()

    def retention(self, *, dry_run: bool = False, actor: str | None = None) -> RetentionReport:
        raise self._refuse()

    def replacement(self, commit_id: str) -> CommitReplacement:
        raise NotFound(f"no erasure or retention run replaced commit {commit_id!r}")
