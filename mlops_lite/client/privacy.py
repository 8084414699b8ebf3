"""``platform.privacy``'s data-subject rights over HTTP (role admin): erase, export,
retention. The subject is sent in a POST body, never in a URL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

from mlops_lite.records import CommitReplacement, ErasureReport, RetentionReport, SubjectExport

if TYPE_CHECKING:
    from mlops_lite.client.remote import RemotePlatform


class RemoteRights:
    def __init__(self, remote: RemotePlatform) -> None:
        self._remote = remote

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._remote.request("POST", path, json=body)

    def erase(self, repository: str, subject: str, *, dry_run: bool = False,
              actor: str | None = None) -> ErasureReport:
        answer = self._post(f"/v1/privacy/repositories/{quote(repository, safe='')}/erase",
                            {"subject": subject, "dry_run": dry_run})
        return msgspec.convert(answer, type=ErasureReport, strict=False)

    def export(self, repository: str, subject: str, *, actor: str | None = None) -> SubjectExport:
        answer = self._post(f"/v1/privacy/repositories/{quote(repository, safe='')}/export", {"subject": subject})
        return msgspec.convert(answer, type=SubjectExport, strict=False)

    def retention(self, *, dry_run: bool = False, actor: str | None = None) -> RetentionReport:
        return msgspec.convert(self._post("/v1/privacy/retention", {"dry_run": dry_run}), type=RetentionReport,
                               strict=False)

    def replacement(self, commit_id: str) -> CommitReplacement:
        answer = self._remote.request("GET", f"/v1/privacy/commits/{quote(commit_id, safe='')}/replacement")
        return msgspec.convert(answer, type=CommitReplacement, strict=False)
