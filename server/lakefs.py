"""A lakeFS-compatible REST API under ``/api/v1``, over ``platform.data``.

Enough of lakeFS's API for the official clients, unmodified (the legacy
``lakefs_client``, ``lakefs_sdk`` and the high-level ``lakefs`` package), to work
with repositories, branches, objects, commits, diffs, merges, reverts and tags.

- Auth: HTTP Basic with an access key from ``platform.tokens.create_access_key``,
  or a bearer API token (as lakeFS accepts bearer tokens)
  (key id, secret). Reads need ``viewer``, writes ``operator``; each route says
  which in ``opt["lakefs"]``.
- Bodies are lakeFS's JSON shapes (Repository, Ref, ObjectStats, Commit, Diff,
  lists with ``pagination``); errors are ``{"message": ...}`` with lakeFS's
  statuses, mapped from the core's error tree in one place (``_lakefs_error``).
- Routes are thin: parse, call one data-facet method, format. Blocking calls
  run on worker threads; uploads stream into the object store.

The deliberate differences from lakeFS, each with its reason, are listed in
server/README.md ("lakeFS compatibility"); operations not offered answer 400 naming themselves.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from datetime import datetime
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
import msgspec
from litestar import Request, Response, Router, delete, get, head, post, put, route
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter
from litestar.response import Stream
from litestar.types import Method
from multipart import MultipartSegment, ParserError, ParserLimitReached, PushMultipartParser  # type: ignore[import-untyped]

import mlops_lite
from mlops_lite.clock import as_utc
from mlops_lite.data import Branch, DataStore, DiffEntry, Repository
from mlops_lite.errors import (
    BackendUnavailable,
    Conflict,
    InvalidInput,
    MlopsLiteError,
    NotFound,
    PermissionDenied,
    PolicyViolation,
    Unauthenticated,
)
from mlops_lite.records import CommitRecord, Identity, ObjectRecord, RepositoryRecord
from mlops_lite.security.roles import require
from server.audit import record_read
from server.auth import authorize_lakefs
from server.context import platform as _platform
from server.hardening import StreamedBody, hide_home

if TYPE_CHECKING:
    from mlops_lite.data.lakefs_backend import LakeFSBranch, LakeFSRepository

log = logging.getLogger("mlops_lite.server.lakefs")

T = TypeVar("T")
DEFAULT_AMOUNT = 100
MAX_DELETE_PATHS = 1000  # lakeFS's DefaultMaxDeleteObjects
MAX_AMOUNT = 1000
_CHUNK = 1 << 20
MAX_FORM_PARTS = 16  # an upload's multipart body: the 'content' part and a few others
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class LakeFSError(Exception):
    """An answer only the lakeFS dialect has (a status the core's tree does not say)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


# ------------------------------------------------------------------------------ request bodies


class RepositoryCreation(msgspec.Struct, kw_only=True):
    name: str
    storage_namespace: str = ""
    default_branch: str | None = None
    sample_data: bool | None = False
    read_only: bool | None = False


class BranchCreation(msgspec.Struct, kw_only=True):
    name: str
    source: str


class ResetCreation(msgspec.Struct, kw_only=True):
    type: str
    path: str | None = None


class CommitCreation(msgspec.Struct, kw_only=True):
    message: str
    metadata: dict[str, str] | None = None


class MergeBody(msgspec.Struct, kw_only=True):
    message: str | None = None
    metadata: dict[str, str] | None = None
    strategy: str | None = None
    force: bool | None = False
    allow_empty: bool | None = False
    squash_merge: bool | None = False


class CommitOverrides(msgspec.Struct, kw_only=True):
    message: str | None = None
    metadata: dict[str, str] | None = None


class RevertCreation(msgspec.Struct, kw_only=True):
    ref: str
    parent_number: int = 0
    commit_overrides: CommitOverrides | None = None
    force: bool | None = False
    allow_empty: bool | None = False


class TagCreation(msgspec.Struct, kw_only=True):
    id: str
    ref: str


class PathList(msgspec.Struct, kw_only=True):
    paths: list[str]


# ------------------------------------------------------------------------------ auth


def _actor(request: Request[Any, Any, Any]) -> str:
    identity: Identity = request.state.identity
    return identity.principal




def _repo(request: Request[Any, Any, Any], name: str) -> Repository | LakeFSRepository:
    return _platform(request).data.repo(name)


# ------------------------------------------------------------------------------ formatting


def _epoch(moment: Any) -> int:
    return int(as_utc(moment).timestamp())


def _repository(record: RepositoryRecord) -> dict[str, Any]:
    return {"id": record.name, "creation_date": _epoch(record.created_at), "default_branch": record.default_branch,
            "storage_namespace": f"local://{record.name}", "read_only": False}


def _ref(name: str, commit: str | None) -> dict[str, Any]:
    return {"id": name, "commit_id": commit or ""}


def _commit(record: CommitRecord) -> dict[str, Any]:
    return {"id": record.id, "parents": list(record.parents), "committer": record.author,
            "message": record.message, "creation_date": _epoch(record.created_at),
            "meta_range_id": record.tree, "metadata": dict(record.metadata)}


def _embedded_data(request: Request[Any, Any, Any]) -> DataStore:
    """The platform's data store when it is the embedded one (what object bytes, a
    repository's config and a ref's commit record need)."""
    data = _platform(request).data
    if not isinstance(data, DataStore):
        raise BackendUnavailable("the lakeFS-compatible API serves the embedded data backend only")
    return data


def _object_file(request: Request[Any, Any, Any], digest: str) -> Path:
    return _embedded_data(request).object_file(digest)


def _object_stats(request: Request[Any, Any, Any], record: ObjectRecord) -> dict[str, Any]:
    file = _object_file(request, record.digest)
    try:
        mtime = int(file.stat().st_mtime)
    except OSError:
        mtime = 0
    # An opaque address, never the server's absolute path: the object's digest, as stored.
    return {"path": record.path, "path_type": "object", "physical_address": f"local://objects/{record.digest}",
            "checksum": record.digest, "size_bytes": record.size, "mtime": mtime,
            "metadata": {}, "content_type": "application/octet-stream"}


def _prefix_stats(prefix: str) -> dict[str, Any]:
    return {"path": prefix, "path_type": "common_prefix", "physical_address": "", "checksum": "", "mtime": 0}


def _diff(entry: DiffEntry) -> dict[str, Any]:
    return {"type": entry.type, "path": entry.path, "path_type": "object", "size_bytes": entry.size}


def _amount(amount: int | None) -> int:
    if amount is None or amount <= 0:
        return DEFAULT_AMOUNT
    return min(amount, MAX_AMOUNT)


def _page(items: Iterable[T], key: Callable[[T], str], fmt: Callable[[T], dict[str, Any]], *,
          after: str | None, amount: int | None, prefix: str | None = None) -> dict[str, Any]:
    """lakeFS pagination over a sorted list: ``after`` the last key seen, ``amount`` per page."""
    size = _amount(amount)
    chosen = [i for i in items if (not prefix or key(i).startswith(prefix)) and (not after or key(i) > after)]
    page = chosen[:size]
    has_more = len(chosen) > size
    return {"pagination": {"has_more": has_more, "next_offset": key(page[-1]) if has_more else "",
                           "results": len(page), "max_per_page": size},
            "results": [fmt(i) for i in page]}


def _group(entries: Sequence[DiffEntry], prefix: str, delimiter: str) -> list[dict[str, Any]]:
    """Diff entries, with those below ``prefix`` + a folder folded into one ``prefix_changed``."""
    if not delimiter:
        return [_diff(e) for e in entries]
    out: list[dict[str, Any]] = []
    for entry in entries:
        rest = entry.path[len(prefix):]
        if delimiter in rest:
            folder = prefix + rest.split(delimiter, 1)[0] + delimiter
            if not out or out[-1]["path"] != folder:
                out.append({"type": "prefix_changed", "path": folder, "path_type": "common_prefix"})
        else:
            out.append(_diff(entry))
    return out


# ------------------------------------------------------------------------------ errors


def _lakefs_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The one place errors become lakeFS answers: ``{"message": ...}`` and lakeFS's status."""
    headers: dict[str, str] = {}
    body: dict[str, Any]
    if isinstance(exc, LakeFSError):
        status, body, headers = exc.status, {"message": exc.message}, exc.headers
    elif isinstance(exc, MlopsLiteError):
        status, body = exc.http_status, {"message": exc.message, "code": exc.code}
        headers.update(getattr(exc, "headers", None) or {})  # Retry-After of a 429
        if isinstance(exc, Unauthenticated):
            status = 401
            headers["WWW-Authenticate"] = 'Basic realm="mlops-lite"'
        elif isinstance(exc, PermissionDenied):
            status = 403
        elif isinstance(exc, NotFound):
            status = 404
        elif isinstance(exc, InvalidInput):
            status = 400
            body.update({k: v for k, v in exc.details.items() if k in ("field", "expected")})
        elif isinstance(exc, Conflict):
            # lakeFS's statuses for what the core calls conflicts: nothing to commit, merge or
            # revert is "no changes" (400), a dirty branch is 400, the default branch is 403.
            reason = exc.details.get("reason", "")
            status = {"no_changes": 400, "dirty_branch": 400, "default_branch": 403}.get(reason, 409)
            if reason == "no_changes":
                body["message"] = f"no changes ({exc.message})"
            elif reason == "dirty_branch":
                body["message"] = f"uncommitted changes (dirty branch): {exc.message}"
            if "conflicts" in exc.details:
                body["conflicts"] = exc.details["conflicts"]
        elif isinstance(exc, PolicyViolation):
            # lakeFS answers a write to a protected branch with 403 and a failed
            # pre-commit/pre-merge check with 412.
            if "is protected" in exc.message:
                status = 403
            else:
                status = 412
                reasons = exc.details.get("reasons") or []
                body["reasons"] = reasons
                if "rule" in exc.details:  # a residency refusal names the policy key that refused it
                    body["rule"] = exc.details["rule"]
                if reasons and not all(str(r) in exc.message for r in reasons):
                    body["message"] = f"{exc.message}: " + "; ".join(map(str, reasons))
    elif isinstance(exc, ValidationException):
        status = 400
        problems = [e for e in (exc.extra or []) if isinstance(e, dict)]
        detail = "; ".join(f"{p.get('key')}: {p.get('message')}" for p in problems) or str(exc.detail)
        body = {"message": f"bad request: {detail}"}
    elif isinstance(exc, HTTPException):
        status, body = exc.status_code, {"message": str(exc.detail)}
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        status, body = 500, {"message": "internal error; see the server log"}
    body["message"] = hide_home(str(body["message"]), _platform(request).settings.home)
    if request.method == "HEAD":
        return Response(content=b"", status_code=status, headers=headers)
    return Response(body, status_code=status, headers=headers)


# ------------------------------------------------------------------------------ config, user


@get("/healthcheck", status_code=204, sync_to_thread=False)
def healthcheck() -> None:
    """Liveness, as lakeFS answers it (no credentials needed)."""


STORAGE_CONFIG = {
    "blockstore_type": "local",
    "blockstore_namespace_example": "local://example-repo",
    "blockstore_namespace_ValidityRegex": "^local://",
    "default_namespace_prefix": "local://",
    "pre_sign_support": False,
    "pre_sign_support_ui": False,
    "import_support": False,
    "import_validity_regex": "^local://",
    "pre_sign_multipart_upload": False,
    "blockstore_description": "mlops-lite content-addressed object store",
}


@get("/config", opt={"lakefs": "viewer", "resource": "any"}, sync_to_thread=False)
def config() -> dict[str, Any]:
    """What the lakeFS SDK reads first: the server's version and its storage."""
    return {"version_config": {"version": mlops_lite.__version__, "version_context": "mlops-lite",
                               "upgrade_recommended": False},
            "storage_config": STORAGE_CONFIG}


@get("/config/version", opt={"lakefs": "viewer", "resource": "any"}, sync_to_thread=False)
def config_version() -> dict[str, Any]:
    """lakeFS's older version route (clients before /config read it)."""
    return {"version": mlops_lite.__version__, "upgrade_recommended": False}


@get("/config/storage", opt={"lakefs": "viewer", "resource": "any"}, sync_to_thread=False)
def config_storage() -> dict[str, Any]:
    return STORAGE_CONFIG


@get("/user", opt={"lakefs": "viewer", "resource": "any"}, sync_to_thread=False)
def current_user(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Who the access key belongs to (its creation date is not kept on the identity: 0)."""
    identity: Identity = request.state.identity
    return {"user": {"id": identity.name, "creation_date": 0, "friendly_name": identity.name}}


# ------------------------------------------------------------------------------ repositories


@post("/repositories", opt={"lakefs": "operator", "resource": "body"}, status_code=201, sync_to_thread=True)
def create_repository(request: Request[Any, Any, Any], data: RepositoryCreation) -> dict[str, Any]:
    if data.sample_data:
        raise LakeFSError(400, "sample data is not supported by mlops-lite")
    if data.read_only:
        raise LakeFSError(400, "read-only repositories are not supported by mlops-lite")
    require(request.state.identity, "operator", repository=data.name)
    # lakeFS's RepositoryCreation has no classification: the installation's default, recorded as defaulted.
    record = _embedded_data(request).repo(data.name).create(
        classification=_platform(request).settings.default_classification, defaulted=True,
        default_branch=data.default_branch or "main", actor=_actor(request))
    return _repository(record)


@get("/repositories", opt={"lakefs": "viewer"}, sync_to_thread=True)
def list_repositories(request: Request[Any, Any, Any], prefix: str | None = None, after: str | None = None,
                      amount: int | None = None) -> dict[str, Any]:
    return _page(_platform(request).data.repositories(), lambda r: r.name, _repository,
                 after=after, amount=amount, prefix=prefix)


@get("/repositories/{repository:str}", opt={"lakefs": "viewer", "repository_param": "repository"}, sync_to_thread=True)
def get_repository(request: Request[Any, Any, Any], repository: str) -> dict[str, Any]:
    return _repository(_repo(request, repository).info())


@delete("/repositories/{repository:str}", opt={"lakefs": "admin", "repository_param": "repository"}, status_code=204, sync_to_thread=True)
def delete_repository(request: Request[Any, Any, Any], repository: str) -> None:
    """Admin only: a deletion keeps a tombstone (classification, commits' records) for lineage."""
    _repo(request, repository).delete(actor=_actor(request))


@get("/repositories/{repository:str}/metadata", opt={"lakefs": "viewer", "repository_param": "repository"}, sync_to_thread=True)
def repository_metadata(request: Request[Any, Any, Any], repository: str) -> dict[str, str]:
    """lakeFS's string map; here it carries the repository's PII column patterns (one per
    line), so that a remote ingest anonymizes what main's checks will demand."""
    config = _embedded_data(request).repo(repository).config()
    patterns = config.effective_pii_patterns
    return {"mlops_lite.pii_patterns": "\n".join(patterns)} if patterns else {}


@get("/repositories/{repository:str}/settings/branch_protection", opt={"lakefs": "viewer", "repository_param": "repository"}, sync_to_thread=True)
def branch_protection(request: Request[Any, Any, Any], repository: str) -> list[dict[str, str]]:
    return [{"pattern": name} for name in _repo(request, repository).info().protected_branches]


# ------------------------------------------------------------------------------ branches


@post("/repositories/{repository:str}/branches", opt={"lakefs": "operator", "repository_param": "repository"}, status_code=201,
      sync_to_thread=True, media_type="text/html")
def create_branch(request: Request[Any, Any, Any], repository: str, data: BranchCreation) -> str:
    """Create a branch at any ref; answers the commit id it points at (lakeFS: text)."""
    record = _repo(request, repository).branch(data.name).create(data.source, actor=_actor(request))
    return record.head or ""


@get("/repositories/{repository:str}/branches", opt={"lakefs": "viewer", "repository_param": "repository"}, sync_to_thread=True)
def list_branches(request: Request[Any, Any, Any], repository: str, prefix: str | None = None,
                  after: str | None = None, amount: int | None = None) -> dict[str, Any]:
    return _page(_repo(request, repository).branches(), lambda b: b.name, lambda b: _ref(b.name, b.head),
                 after=after, amount=amount, prefix=prefix)


@get("/repositories/{repository:str}/branches/{branch:str}", opt={"lakefs": "viewer", "repository_param": "repository"}, sync_to_thread=True)
def get_branch(request: Request[Any, Any, Any], repository: str, branch: str) -> dict[str, Any]:
    head_commit = _repo(request, repository).branch(branch).head()
    return _ref(branch, head_commit.id if head_commit else None)


@delete("/repositories/{repository:str}/branches/{branch:str}", opt={"lakefs": "operator", "repository_param": "repository"}, status_code=204,
        sync_to_thread=True)
def delete_branch(request: Request[Any, Any, Any], repository: str, branch: str) -> None:
    _repo(request, repository).branch(branch).delete(actor=_actor(request))


@put("/repositories/{repository:str}/branches/{branch:str}", opt={"lakefs": "operator", "repository_param": "repository"}, status_code=204,
     sync_to_thread=True)
def reset_branch(request: Request[Any, Any, Any], repository: str, branch: str, data: ResetCreation) -> None:
    """Drop uncommitted changes: all (``reset``), one path (``object``) or a prefix (``common_prefix``)."""
    target = _repo(request, repository).branch(branch)
    if data.type == "reset":
        target.reset(actor=_actor(request))
    elif data.type in ("object", "common_prefix"):
        if not data.path:
            raise LakeFSError(400, f"reset of type {data.type!r} needs a path")
        if data.type == "object":
            target.reset(path=data.path, actor=_actor(request))
        else:
            target.reset(prefix=data.path, actor=_actor(request))
    else:
        raise LakeFSError(400, f"unknown reset type {data.type!r}; expected object, common_prefix or reset")


@get("/repositories/{repository:str}/branches/{branch:str}/diff", opt={"lakefs": "viewer", "repository_param": "repository"}, sync_to_thread=True)
def diff_branch(request: Request[Any, Any, Any], repository: str, branch: str, after: str | None = None,
                amount: int | None = None, prefix: str | None = None,
                delimiter: str | None = None) -> dict[str, Any]:
    """Uncommitted changes on the branch."""
    entries = [e for e in _repo(request, repository).branch(branch).uncommitted()
               if e.path.startswith(prefix or "")]
    return _page(_group(entries, prefix or "", delimiter or ""), lambda d: d["path"], lambda d: d,
                 after=after, amount=amount)


@post("/repositories/{repository:str}/branches/{branch:str}/revert", opt={"lakefs": "operator", "repository_param": "repository"},
      status_code=204, sync_to_thread=True)
def revert_branch(request: Request[Any, Any, Any], repository: str, branch: str, data: RevertCreation) -> None:
    """A commit on the branch undoing ``ref`` against its parent (``parent_number``, 1-based,
    for a merge commit). Allowed on a protected branch, as lakeFS allows it."""
    overrides = data.commit_overrides or CommitOverrides()
    _repo(request, repository).branch(branch).revert(
        data.ref, parent_number=data.parent_number, message=overrides.message or None,
        metadata=overrides.metadata, allow_empty=bool(data.allow_empty), actor=_actor(request))


# ------------------------------------------------------------------------------ commits, log, diff, merge


@post("/repositories/{repository:str}/branches/{branch:str}/commits", opt={"lakefs": "operator", "repository_param": "repository"},
      status_code=201, sync_to_thread=True)
def commit(request: Request[Any, Any, Any], repository: str, branch: str, data: CommitCreation) -> dict[str, Any]:
    record = _repo(request, repository).branch(branch).commit(data.message, metadata=data.metadata,
                                                              actor=_actor(request))
    return _commit(record)


@get("/repositories/{repository:str}/commits/{commit_id:str}", opt={"lakefs": "viewer", "repository_param": "repository"}, sync_to_thread=True)
def get_commit(request: Request[Any, Any, Any], repository: str, commit_id: str) -> dict[str, Any]:
    """A commit by id, or the commit any ref (branch, tag) points at."""
    return _commit(_embedded_data(request).repo(repository).ref(commit_id).commit_record())


@get("/repositories/{repository:str}/refs/{ref:str}/commits", opt={"lakefs": "viewer", "repository_param": "repository"}, sync_to_thread=True)
def log_commits(request: Request[Any, Any, Any], repository: str, ref: str, after: str | None = None,
                amount: int | None = None, objects: list[str] | None = None,
                prefixes: list[str] | None = None, since: datetime | None = None,
                stop_at: str | None = None) -> dict[str, Any]:
    """Commits from ``ref`` back along first parents, newest first; pages by commit id. Stops
    before the first commit older than ``since`` and after the commit ``stop_at`` names."""
    if objects or prefixes:
        raise LakeFSError(400, "log filtered by objects or prefixes is not supported by mlops-lite")
    size = _amount(amount)
    repo = _repo(request, repository)
    stop = repo.ref(stop_at).resolve() if stop_at else None
    records = repo.log(ref, amount=size + 1, after=after or None)
    for index, record in enumerate(records):
        if since is not None and as_utc(record.created_at) < as_utc(since):
            records = records[:index]
            break
        if record.id == stop:
            records = records[:index + 1]
            break
    page = records[:size]
    has_more = len(records) > size
    return {"pagination": {"has_more": has_more, "next_offset": page[-1].id if has_more else "",
                           "results": len(page), "max_per_page": size},
            "results": [_commit(r) for r in page]}


@get("/repositories/{repository:str}/refs/{left_ref:str}/diff/{right_ref:str}", opt={"lakefs": "viewer", "repository_param": "repository"},
     sync_to_thread=True)
def diff_refs(request: Request[Any, Any, Any], repository: str, left_ref: str, right_ref: str,
              after: str | None = None, amount: int | None = None, prefix: str | None = None,
              delimiter: str | None = None,
              diff_type: str | None = Parameter(query="type", default=None)) -> dict[str, Any]:
    """``three_dot`` (lakeFS's default): what merging ``right_ref`` into ``left_ref`` would change;
    ``two_dot``: ``left_ref``'s committed tree against ``right_ref``'s."""
    if diff_type not in (None, "", "two_dot", "three_dot"):
        raise LakeFSError(400, f"unknown diff type {diff_type!r}; expected two_dot or three_dot")
    entries = _repo(request, repository).diff(left_ref, right_ref, prefix=prefix or "",
                                              three_dot=diff_type != "two_dot")
    return _page(_group(entries, prefix or "", delimiter or ""), lambda d: d["path"], lambda d: d,
                 after=after, amount=amount)


@post("/repositories/{repository:str}/refs/{source_ref:str}/merge/{destination_branch:str}",
      opt={"lakefs": "operator", "repository_param": "repository"}, status_code=200, sync_to_thread=True)
def merge_into_branch(request: Request[Any, Any, Any], repository: str, source_ref: str,
                      destination_branch: str, data: MergeBody | None = None) -> dict[str, Any]:
    """Three-way merge of any ref into a branch; conflicts answer 409 unless a strategy
    (``source-wins`` / ``dest-wins``) settles them."""
    body = data or MergeBody()
    if body.squash_merge:
        raise LakeFSError(400, "squash merges are not supported by mlops-lite")
    # Branch handles resolve their name as any ref (branch, tag or commit id) when merging.
    record = _repo(request, repository).branch(source_ref).merge_into(
        destination_branch, strategy=body.strategy or "fail", message=body.message or None,
        metadata=body.metadata, actor=_actor(request), if_nothing="commit" if body.allow_empty else "fail")
    return {"reference": record.id}


# ------------------------------------------------------------------------------ tags


@post("/repositories/{repository:str}/tags", opt={"lakefs": "operator", "repository_param": "repository"}, status_code=201, sync_to_thread=True)
def create_tag(request: Request[Any, Any, Any], repository: str, data: TagCreation) -> dict[str, Any]:
    record = _repo(request, repository).create_tag(data.id, data.ref, actor=_actor(request))
    return _ref(record.name, record.commit)


@get("/repositories/{repository:str}/tags", opt={"lakefs": "viewer", "repository_param": "repository"}, sync_to_thread=True)
def list_tags(request: Request[Any, Any, Any], repository: str, prefix: str | None = None,
              after: str | None = None, amount: int | None = None) -> dict[str, Any]:
    return _page(_repo(request, repository).tags(), lambda t: t.name, lambda t: _ref(t.name, t.commit),
                 after=after, amount=amount, prefix=prefix)


@get("/repositories/{repository:str}/tags/{tag:str}", opt={"lakefs": "viewer", "repository_param": "repository"}, sync_to_thread=True)
def get_tag(request: Request[Any, Any, Any], repository: str, tag: str) -> dict[str, Any]:
    for record in _repo(request, repository).tags():
        if record.name == tag:
            return _ref(record.name, record.commit)
    raise NotFound(f"tag {tag!r} of {repository!r} does not exist")


@delete("/repositories/{repository:str}/tags/{tag:str}", opt={"lakefs": "operator", "repository_param": "repository"}, status_code=204,
        sync_to_thread=True)
def delete_tag(request: Request[Any, Any, Any], repository: str, tag: str) -> None:
    _repo(request, repository).delete_tag(tag, actor=_actor(request))


# ------------------------------------------------------------------------------ objects


@post("/repositories/{repository:str}/branches/{branch:str}/objects",
      opt={"lakefs": "operator", "repository_param": "repository", "body": "upload"}, status_code=201)
async def upload_object(request: Request[Any, Any, Any], repository: str, branch: str,
                        object_path: str = Parameter(query="path"),
                        if_none_match: str | None = Parameter(header="If-None-Match", default=None),
                        if_match: str | None = Parameter(header="If-Match", default=None)) -> dict[str, Any]:
    """Stage an object: a multipart field ``content`` (legacy client, lakefs_sdk) or the raw
    body (the ``lakefs`` package). ``If-None-Match: *`` fails with 412 when the path exists."""
    if if_match is not None:
        raise LakeFSError(400, "If-Match uploads are not offered by mlops-lite's lakeFS-compatible API")
    if if_none_match not in (None, "*"):
        raise LakeFSError(400, "If-None-Match supports only '*'")
    if_absent = if_none_match == "*"
    target = _repo(request, repository).branch(branch)
    media_type, options = request.content_type
    chunks: AsyncIterator[bytes] = request.stream().__aiter__()
    if media_type == "multipart/form-data":
        if not options.get("boundary"):
            raise LakeFSError(400, "the multipart body has no boundary in its Content-Type")
        chunks = _form_field(chunks, options["boundary"].encode(), "content")
    record = await anyio.to_thread.run_sync(_stage, target, object_path, StreamedBody(chunks), if_absent)
    return await anyio.to_thread.run_sync(_uploaded, request, repository, branch, record)


def _uploaded(request: Request[Any, Any, Any], repository: str, branch: str, record: ObjectRecord) -> dict[str, Any]:
    """The staged object's stats, once its upload is in the audit chain."""
    record_read(request, "data.upload", f"data:{repository}/{branch}",
                {"path": record.path, "digest": record.digest, "bytes": record.size})
    return _object_stats(request, record)


async def _form_field(chunks: AsyncIterator[bytes], boundary: bytes, name: str) -> AsyncIterator[bytes]:
    """The bytes of the multipart field ``name`` as they arrive, a file part or a text
    part alike (nothing is held whole in memory); the other parts are read past."""
    found = inside = False
    try:
        with PushMultipartParser(boundary, max_segment_count=MAX_FORM_PARTS) as parser:
            while not parser.closed:
                chunk = await anext(chunks, b"")
                for part in parser.parse(chunk):
                    if isinstance(part, MultipartSegment):
                        inside = not found and part.name == name
                        found = found or inside
                    elif part is None:
                        inside = False
                    elif inside and part:
                        yield bytes(part)
    except (ParserError, ParserLimitReached) as exc:
        raise LakeFSError(400, f"the multipart body is not valid: {exc}") from exc
    if not found:
        raise LakeFSError(400, f"the multipart body needs a field named {name!r}")


def _stage(target: Branch | LakeFSBranch, path: str, source: Any, if_absent: bool) -> ObjectRecord:
    try:
        return target.upload(path, source, if_absent=if_absent)
    except Conflict as exc:
        if if_absent:
            raise LakeFSError(412, f"precondition failed: {exc.message}") from exc
        raise


@get("/repositories/{repository:str}/refs/{ref:str}/objects/stat", opt={"lakefs": "viewer", "repository_param": "repository"}, sync_to_thread=True)
def stat_object(request: Request[Any, Any, Any], repository: str, ref: str,
                object_path: str = Parameter(query="path")) -> dict[str, Any]:
    return _object_stats(request, _repo(request, repository).ref(ref).stat(object_path))


@get("/repositories/{repository:str}/refs/{ref:str}/objects/ls", opt={"lakefs": "viewer", "repository_param": "repository"}, sync_to_thread=True)
def list_objects(request: Request[Any, Any, Any], repository: str, ref: str, prefix: str | None = None,
                 delimiter: str | None = None, after: str | None = None,
                 amount: int | None = None) -> dict[str, Any]:
    """A page of objects (and, with ``delimiter=/``, common prefixes) in path order."""
    size = _amount(amount)
    listing = _repo(request, repository).ref(ref).ls(prefix or "", delimiter=delimiter or "", after=after or "",
                                                     amount=size)
    rows = sorted([(o.path, _object_stats(request, o)) for o in listing.objects]
                  + [(p, _prefix_stats(p)) for p in listing.prefixes], key=lambda row: row[0])
    return {"pagination": {"has_more": listing.has_more, "next_offset": listing.next_after if listing.has_more else "",
                           "results": len(rows), "max_per_page": size},
            "results": [stats for _, stats in rows]}


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) of a single ``bytes=`` range; None for the whole object."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        raise LakeFSError(416, f"unsupported range {header!r}; one 'bytes=first-last' range is supported",
                          {"Content-Range": f"bytes */{size}"})
    first_text, last_text = match.groups()
    if first_text == "":
        first, last = max(size - int(last_text), 0), size - 1
    else:
        first = int(first_text)
        last = size - 1 if last_text == "" else min(int(last_text), size - 1)
    if first >= size or first > last:
        raise LakeFSError(416, f"range {header!r} is outside the object ({size} bytes)",
                          {"Content-Range": f"bytes */{size}"})
    return first, last


def _read(data: DataStore, digest: str, first: int, last: int) -> Iterator[bytes]:
    with data.open_object(digest) as stream:
        stream.seek(first)
        left = last - first + 1
        while left > 0:
            chunk = stream.read(min(_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def _object_headers(record: ObjectRecord, file: Path) -> dict[str, str]:
    try:
        modified = formatdate(file.stat().st_mtime, usegmt=True)
    except OSError:
        modified = formatdate(0, usegmt=True)
    return {"ETag": f'"{record.digest}"', "Last-Modified": modified, "Accept-Ranges": "bytes"}


@get("/repositories/{repository:str}/refs/{ref:str}/objects", opt={"lakefs": "viewer", "repository_param": "repository"}, sync_to_thread=True)
def get_object(request: Request[Any, Any, Any], repository: str, ref: str,
               object_path: str = Parameter(query="path"),
               byte_range: str | None = Parameter(header="Range", default=None),
               if_none_match: str | None = Parameter(header="If-None-Match", default=None)) -> Response[Any]:
    """The object's bytes, streamed; a ``Range: bytes=first-last`` answers 206."""
    record = _repo(request, repository).ref(ref).stat(object_path)
    file = _object_file(request, record.digest)
    headers = _object_headers(record, file)
    if if_none_match is not None and if_none_match.strip() in (headers["ETag"], record.digest, "*"):
        return Response(content=b"", status_code=304, headers=headers)
    span = _byte_range(byte_range, record.size)
    if span is None:
        first, last, status = 0, record.size - 1, 200
    else:
        (first, last), status = span, 206
        headers["Content-Range"] = f"bytes {first}-{last}/{record.size}"
    headers["Content-Length"] = str(max(last - first + 1, 0))
    data = _embedded_data(request)
    if not data.has_object(record.digest):
        raise NotFound(f"the bytes of {object_path!r} ({record.digest}) are not in the object store")
    record_read(request, "data.read", f"data:{repository}/{ref}",
                {"path": record.path, "digest": record.digest, "bytes": max(last - first + 1, 0),
                 **({"range": [first, last]} if status == 206 else {})})
    return Stream(_read(data, record.digest, first, last), status_code=status, headers=headers,
                  media_type="application/octet-stream")


@head("/repositories/{repository:str}/refs/{ref:str}/objects", opt={"lakefs": "viewer", "repository_param": "repository"}, sync_to_thread=True)
def head_object(request: Request[Any, Any, Any], repository: str, ref: str,
                object_path: str = Parameter(query="path"),
                byte_range: str | None = Parameter(header="Range", default=None)) -> Response[None]:
    """Whether the object exists (200 with its size and ETag, else 404), without its bytes;
    with a ``Range``, 206 and the range's length, as a GET would answer."""
    record = _repo(request, repository).ref(ref).stat(object_path)
    headers = _object_headers(record, _object_file(request, record.digest))
    span = _byte_range(byte_range, record.size)
    if span is None:
        headers["Content-Length"] = str(record.size)
        return Response(content=b"", status_code=200, headers=headers)  # type: ignore[arg-type]  # a HEAD handler must say Response[None]; b"" keeps the body empty (None renders "null")
    first, last = span
    headers["Content-Range"] = f"bytes {first}-{last}/{record.size}"
    headers["Content-Length"] = str(last - first + 1)
    return Response(content=b"", status_code=206, headers=headers)  # type: ignore[arg-type]  # a HEAD handler must say Response[None]; b"" keeps the body empty (None renders "null")


@delete("/repositories/{repository:str}/branches/{branch:str}/objects", opt={"lakefs": "operator", "repository_param": "repository"},
        status_code=204, sync_to_thread=True)
def delete_object(request: Request[Any, Any, Any], repository: str, branch: str,
                  object_path: str = Parameter(query="path")) -> None:
    """Stage the deletion; a missing object is no error (lakeFS: "Missing objects will not
    return a NotFound error"), a missing branch or repository still is."""
    _repo(request, repository).branch(branch).delete_object(object_path, missing_ok=True)


@post("/repositories/{repository:str}/branches/{branch:str}/objects/delete", opt={"lakefs": "operator", "repository_param": "repository"},
      status_code=200, sync_to_thread=True)
def delete_objects(request: Request[Any, Any, Any], repository: str, branch: str,
                   data: PathList) -> dict[str, Any]:
    """Stage the deletion of each path; answers the paths that failed, each with its status
    (a missing path is no failure, as in lakeFS)."""
    if len(data.paths) > MAX_DELETE_PATHS:
        raise LakeFSError(400, f"too many paths: {len(data.paths)}, max paths is set to {MAX_DELETE_PATHS}")
    target = _repo(request, repository).branch(branch)
    target.head()  # a missing repository or branch is the request's 404, not each path's
    errors = []
    for path in data.paths:
        try:
            target.delete_object(path, missing_ok=True)
        except (InvalidInput, PolicyViolation, Conflict) as exc:
            response = _lakefs_error(request, exc)
            errors.append({"status_code": response.status_code, "message": exc.message, "path": path})
    return {"errors": errors}


# ------------------------------------------------------------------------------ not implemented

# lakeFS operations this API does not offer (paths as lakeFS's OpenAPI spec names them). They
# answer 400 with lakeFS's error body, naming the operation: a 404 would read to the clients as
# "no such repository or branch", and lakeFS's 501 is a server error, which client input never
# gets here.
NOT_IMPLEMENTED: dict[str, dict[Method, str]] = {
    "/setup_lakefs": {"GET": "getSetupState", "POST": "setup"},
    "/setup_comm_prefs": {"POST": "setupCommPrefs"},
    "/auth/login": {"POST": "login"},
    "/auth/capabilities": {"GET": "getAuthCapabilities"},
    "/auth/users": {"GET": "listUsers", "POST": "createUser"},
    "/auth/users/{user_id:str}": {"GET": "getUser", "DELETE": "deleteUser"},
    "/auth/users/{user_id:str}/credentials": {"GET": "listUserCredentials", "POST": "createCredentials"},
    "/auth/groups": {"GET": "listGroups", "POST": "createGroup"},
    "/auth/policies": {"GET": "listPolicies", "POST": "createPolicy"},
    "/repositories/{repository:str}/metadata": {"POST": "setRepositoryMetadata",
                                                "DELETE": "deleteRepositoryMetadata"},
    "/repositories/{repository:str}/settings/gc_rules": {"GET": "getGCRules", "PUT": "setGCRules",
                                                         "DELETE": "deleteGCRules"},
    "/repositories/{repository:str}/settings/branch_protection": {"PUT": "setBranchProtectionRules"},
    "/repositories/{repository:str}/refs/dump": {"PUT": "dumpRefs"},
    "/repositories/{repository:str}/refs/restore": {"PUT": "restoreRefs"},
    "/repositories/{repository:str}/dump": {"GET": "dumpStatus", "POST": "dumpSubmit"},
    "/repositories/{repository:str}/restore": {"GET": "restoreStatus", "POST": "restoreSubmit"},
    "/repositories/{repository:str}/commits": {"POST": "CreateCommitRecord"},
    "/repositories/{repository:str}/branches/{branch:str}/hard_reset": {"PUT": "hardResetBranch"},
    "/repositories/{repository:str}/branches/{branch:str}/cherry-pick": {"POST": "cherryPick"},
    "/repositories/{repository:str}/refs/{source_ref:str}/merge/{destination_branch:str}": {
        "GET": "findMergeBase"},
    "/repositories/{repository:str}/branches/{branch:str}/staging/pmpu": {"POST": "createPresignMultipartUpload"},
    "/repositories/{repository:str}/branches/{branch:str}/staging/backing": {"GET": "getPhysicalAddress",
                                                                            "PUT": "linkPhysicalAddress"},
    "/repositories/{repository:str}/branches/{branch:str}/import": {"GET": "importStatus", "POST": "importStart",
                                                                   "DELETE": "importCancel"},
    "/repositories/{repository:str}/branches/{branch:str}/objects/stage_allowed": {"GET": "uploadObjectPreflight"},
    "/repositories/{repository:str}/branches/{branch:str}/objects/copy": {"POST": "copyObject"},
    "/repositories/{repository:str}/branches/{branch:str}/objects/stat/user_metadata": {
        "PUT": "updateObjectUserMetadata"},
    "/repositories/{repository:str}/refs/{ref:str}/objects/underlyingProperties": {"GET": "getUnderlyingProperties"},
    "/repositories/{repository:str}/refs/{ref:str}/symlink": {"POST": "createSymlinkFile"},
    "/repositories/{repository:str}/actions/runs": {"GET": "listRepositoryRuns"},
    "/repositories/{repository:str}/branch_protection": {"GET": "internalGetBranchProtectionRules",
                                                         "POST": "internalCreateBranchProtectionRule",
                                                         "DELETE": "internalDeleteBranchProtectionRule"},
    "/repositories/{repository:str}/pulls": {"GET": "listPullRequests", "POST": "createPullRequest"},
    "/config/garbage-collection": {"GET": "getGarbageCollectionConfig"},
}


def _not_implemented(path: str, operations: dict[Method, str]) -> HTTPRouteHandler:
    def answer(request: Request[Any, Any, Any]) -> None:
        operation = operations.get(request.method, "this operation")
        raise LakeFSError(400, f"{operation} ({request.method} {path.replace(':str', '')}) is not offered "
                               "by mlops-lite's lakeFS-compatible API")

    return route(path, http_method=sorted(operations), opt={"lakefs": "viewer"}, status_code=400,
                 sync_to_thread=False, name=f"lakefs-not-implemented:{path}")(answer)


def lakefs_router() -> Router:
    """The lakeFS-compatible API, to mount on the app at ``/api/v1``."""
    return Router(
        path="/api/v1",
        guards=[authorize_lakefs],
        exception_handlers={Exception: _lakefs_error},
        route_handlers=[
            healthcheck, config, current_user,
            create_repository, list_repositories, get_repository, delete_repository, repository_metadata,
            branch_protection,
            create_branch, list_branches, get_branch, delete_branch, reset_branch, diff_branch, revert_branch,
            commit, get_commit, log_commits, diff_refs, merge_into_branch,
            create_tag, list_tags, get_tag, delete_tag,
            upload_object, stat_object, list_objects, get_object, head_object, delete_object, delete_objects,
            config_version, config_storage,
            *(_not_implemented(path, operations) for path, operations in NOT_IMPLEMENTED.items()),
        ],
    )
