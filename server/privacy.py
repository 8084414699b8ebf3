"""The data subject's rights and retention (admin): erase a subject from a repository's
history and the prediction log, export every row of a subject, run retention now. The
subject travels in the body of a POST, never in a URL (URLs reach access logs)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, post

from mlops_lite.records import CommitReplacement, ErasureReport, RetentionReport, SubjectExport
from server.context import actor as _actor
from server.context import platform as _platform


class SubjectRequest(msgspec.Struct, forbid_unknown_fields=True):
    subject: str
    dry_run: bool = False


class RetentionRequest(msgspec.Struct, forbid_unknown_fields=True):
    dry_run: bool = False


@post("/privacy/repositories/{repository:str}/erase", opt={"permission": "admin", "repository_param": "repository"},
      status_code=200, sync_to_thread=True)
def erase_subject(request: Request[Any, Any, Any], repository: str, data: SubjectRequest) -> ErasureReport:
    """Remove the subject's rows from every commit of the repository, the prediction log and
    feedback (``dry_run``: only count them)."""
    return _platform(request).privacy.erase(repository, data.subject, dry_run=data.dry_run, actor=_actor(request))


@post("/privacy/repositories/{repository:str}/export", opt={"permission": "admin", "repository_param": "repository"},
      status_code=200, sync_to_thread=True)
def export_subject(request: Request[Any, Any, Any], repository: str, data: SubjectRequest) -> SubjectExport:
    """Every row of the subject at each branch head and in the prediction log (personal data: admins only)."""
    return _platform(request).privacy.export(repository, data.subject, actor=_actor(request))


@post("/privacy/retention", opt={"permission": "admin"}, status_code=200, sync_to_thread=True)
def run_retention(request: Request[Any, Any, Any], data: RetentionRequest) -> RetentionReport:
    """Apply every repository's retention and the prediction log's now."""
    return _platform(request).privacy.retention(dry_run=data.dry_run, actor=_actor(request))


@get("/privacy/commits/{commit_id:str}/replacement", opt={"permission": "viewer"}, sync_to_thread=True)
def commit_replacement(request: Request[Any, Any, Any], commit_id: str) -> CommitReplacement:
    """The commit that replaced ``commit_id`` in an erasure or retention run (no personal data)."""
    return _platform(request).privacy.replacement(commit_id)


PRIVACY_ROUTES = [erase_subject, export_subject, run_retention, commit_replacement]
