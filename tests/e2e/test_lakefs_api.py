"""The lakeFS-compatible API (/api/v1) end to end: a real server over a real platform,
driven by the official lakeFS clients, unmodified: the legacy ``lakefs_client``, the
``lakefs_sdk`` and the high-level ``lakefs`` package. What they see is checked against
``platform.data`` in-process."""

from __future__ import annotations

import dataclasses
import io
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import mlops_lite

lakefs_client = pytest.importorskip("lakefs_client")
lakefs_sdk = pytest.importorskip("lakefs_sdk")
lakefs = pytest.importorskip("lakefs")

from lakefs_client.client import LakeFSClient as LegacyClient  # noqa: E402
from lakefs_sdk.client import LakeFSClient as SdkClient  # noqa: E402

CSV = b"id,amount\n1,100\n2,250\n"


@dataclasses.dataclass
class Served:
    url: str
    platform: Any
    key: str
    secret: str
    viewer_key: str
    viewer_secret: str

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    def http(self, *, key: str | None = None, secret: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.api, auth=(key or self.key, secret or self.secret), timeout=60)


@contextmanager
def lakefs_server(name: str) -> Iterator[Served]:
    """A fresh home served on 127.0.0.1, with an operator and a viewer access key named for ``name``."""
    from mlops_lite import connect
    from server import create_app
    from server.runner import serve_in_thread

    with tempfile.TemporaryDirectory(prefix=f"mlops-lite-{name}-") as home:
        platform = connect(home=Path(home) / "home")
        try:
            _, key, secret = platform.tokens.create_access_key(name, "operator")
            _, viewer_key, viewer_secret = platform.tokens.create_access_key(f"{name}-viewer", "viewer")
            server = serve_in_thread(create_app(platform), host="127.0.0.1")
            try:
                assert server.url.startswith("http://127.0.0.1:")
                yield Served(server.url, platform, key, secret, viewer_key, viewer_secret)
            finally:
                server.stop()
        finally:
            platform.close()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with lakefs_server("lakefs-tests") as running:
        yield running


@pytest.fixture
def legacy(served: Served) -> Iterator[Any]:
    config = lakefs_client.Configuration(host=served.api, username=served.key, password=served.secret)
    client = LegacyClient(config)
    try:
        yield client
    finally:
        client._api.close()


def _sdk(served: Served, key: str | None = None, secret: str | None = None) -> Any:
    config = lakefs_sdk.Configuration(host=served.api, username=key or served.key, password=secret or served.secret)
    return SdkClient(config)


@pytest.fixture
def sdk(served: Served) -> Iterator[Any]:
    client = _sdk(served)
    try:
        yield client
    finally:
        client._api.close()


@pytest.fixture
def hl(served: Served) -> Iterator[Any]:
    client = lakefs.Client(host=served.url, username=served.key, password=served.secret)
    try:
        yield client
    finally:
        client.sdk_client._api.close()


def _delete_as_admin(served: Served, name: str) -> None:
    """Delete a repository as lakeFS clients do; it needs admin (the operator's key gets 403)."""
    with served.http() as http:
        refused = http.delete(f"/repositories/{name}")
        assert refused.status_code == 403 and "admin" in refused.text
    _, key, secret = served.platform.tokens.create_access_key(f"admin-{name}", "admin")
    with served.http(key=key, secret=secret) as http:
        assert http.delete(f"/repositories/{name}").status_code == 204


def _pages(call: Any, *args: Any, **kwargs: Any) -> list[list[Any]]:
    """Every page of a lakeFS listing, following ``next_offset``."""
    pages, after = [], ""
    while True:
        page = call(*args, after=after, **kwargs)
        pages.append(list(page.results))
        if not page.pagination.has_more:
            assert page.pagination.next_offset == ""
            return pages
        assert page.pagination.next_offset
        after = page.pagination.next_offset


def _drain(file: Any) -> bytes:
    """The legacy client answers object bytes as a temporary file it leaves behind: read it, remove it."""
    try:
        return bytes(file.read())
    finally:
        file.close()
        Path(file.name).unlink(missing_ok=True)


# ------------------------------------------------------------------------------ config and auth


def test_config_answers_what_the_sdk_and_the_lakefs_package_read(served: Served, sdk: Any, hl: Any) -> None:
    config = sdk.config_api.get_config()
    assert config.version_config.version == mlops_lite.__version__
    assert config.storage_config.blockstore_type == "local"
    assert config.storage_config.pre_sign_support is False
    assert hl.version == mlops_lite.__version__
    assert hl.storage_config.pre_sign_support is False
    assert hl.storage_config.blockstore_type == "local"
    user = sdk.auth_api.get_current_user()
    assert user.user.id == "lakefs-tests"


def test_wrong_secret_is_401_for_every_client(served: Served) -> None:
    config = lakefs_client.Configuration(host=served.api, username=served.key, password="not-the-secret")
    legacy = LegacyClient(config)
    try:
        with pytest.raises(lakefs_client.exceptions.UnauthorizedException):
            legacy.repositories_api.list_repositories()
    finally:
        legacy._api.close()
    sdk = _sdk(served, secret="not-the-secret")
    try:
        with pytest.raises(lakefs_sdk.exceptions.UnauthorizedException):
            sdk.repositories_api.list_repositories()
        with pytest.raises(lakefs_sdk.exceptions.UnauthorizedException):
            sdk.config_api.get_config()
    finally:
        sdk._api.close()
    hl = lakefs.Client(host=served.url, username="AKIAMLLNOSUCHKEY0000", password=served.secret)
    try:
        with pytest.raises(lakefs.exceptions.NotAuthorizedException):
            list(lakefs.repositories(client=hl))
    finally:
        hl.sdk_client._api.close()


def test_missing_or_malformed_credentials_answer_401_json(served: Served) -> None:
    with httpx.Client(base_url=served.api, timeout=30) as anonymous:
        response = anonymous.get("/repositories")
        assert response.status_code == 401
        assert response.json()["message"]
        assert response.headers["www-authenticate"].lower().startswith("basic")
        response = anonymous.get("/repositories", headers={"Authorization": "Basic !!!not-base64"})
        assert response.status_code == 401 and response.json()["message"]
        # an API token works as a bearer token (as lakeFS takes bearer tokens); an access key's
        # secret is not a bearer token, and a made-up bearer token is refused
        _, token = served.platform.tokens.create("bearer-only", "admin")
        assert anonymous.get("/repositories", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert anonymous.get("/repositories", headers={"Authorization": f"Bearer {served.secret}"}).status_code == 401
        assert anonymous.get("/repositories", headers={"Authorization": "Bearer mll_made_up"}).status_code == 401
        assert httpx.get(served.url + "/v1/status", headers={"Authorization": f"Bearer {served.secret}"},
                         timeout=30).status_code == 401
        # the health check needs no credentials, as lakeFS's
        assert anonymous.get("/healthcheck").status_code == 204


def test_a_viewer_key_reads_but_cannot_write(served: Served) -> None:
    served.platform.data.repo("viewer-reads").create(classification="internal", exist_ok=True)
    sdk = _sdk(served, served.viewer_key, served.viewer_secret)
    try:
        assert sdk.repositories_api.get_repository("viewer-reads").id == "viewer-reads"
        with pytest.raises(lakefs_sdk.exceptions.ForbiddenException):
            sdk.branches_api.create_branch("viewer-reads", lakefs_sdk.BranchCreation(name="x", source="main"))
    finally:
        sdk._api.close()
    assert [b.name for b in served.platform.data.repo("viewer-reads").branches()] == ["main"]


def test_access_keys_are_stored_hashed_and_audited(served: Served) -> None:
    identity, key, secret = served.platform.tokens.create_access_key("audit-me", "viewer")
    assert key.startswith("AKIAMLL") and len(key) == 20 and key[7:].isalnum() and key[7:].isupper()
    assert served.platform.tokens.authenticate_access_key(key, secret) == identity
    with pytest.raises(mlops_lite.Unauthenticated):
        served.platform.tokens.authenticate_access_key(key, secret + "x")
    with pytest.raises(mlops_lite.Unauthenticated):
        served.platform.tokens.authenticate(secret)
    events = [e for e in served.platform.audit.events(limit=10_000) if e.object == f"token:{identity.token_id}"]
    assert [e.action for e in events] == ["access_key.create"]
    assert events[0].after == {"name": "audit-me", "role": "viewer", "access_key_id": key}
    assert served.platform.audit.verify() is None


# ------------------------------------------------------------------------------ errors


def test_unknown_repository_is_404_and_a_bad_name_400(served: Served, legacy: Any, sdk: Any) -> None:
    with pytest.raises(lakefs_client.exceptions.NotFoundException):
        legacy.repositories_api.get_repository("no-such-repo")
    with pytest.raises(lakefs_sdk.exceptions.NotFoundException):
        sdk.branches_api.list_branches("no-such-repo")
    with pytest.raises(lakefs_sdk.exceptions.NotFoundException):
        sdk.objects_api.stat_object("no-such-repo", "main", "x.csv")
    # The clients check repository names themselves; the server checks again.
    bad = lakefs_sdk.RepositoryCreation.construct(name="Bad_Name", storage_namespace="local://bad",
                                                  default_branch="main", sample_data=False)
    with pytest.raises(lakefs_sdk.exceptions.BadRequestException) as caught:
        sdk.repositories_api.create_repository(bad)
    assert "Bad_Name" in caught.value.body
    with served.http() as http:
        response = http.post("/repositories", json={"name": "ab", "storage_namespace": "local://ab"})
        assert response.status_code == 400 and "ab" in response.json()["message"]
        response = http.post("/repositories", content=b"{not json", headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and response.json()["message"]
    assert not any(r.name in ("ab", "Bad_Name") for r in served.platform.data.repositories())


def test_failed_data_checks_are_412_with_the_reasons(served: Served, sdk: Any) -> None:
    from lakefs_sdk import models

    repo = served.platform.data.repo("checked")
    repo.create(classification="internal")
    repo.configure(max_object_bytes=10)
    repo.branch("dev").create("main")
    sdk.objects_api.upload_object("checked", "dev", "big.csv", content=b"0123456789abcdef")
    with pytest.raises(lakefs_sdk.ApiException) as caught:
        sdk.commits_api.commit("checked", "dev", models.CommitCreation(message="too big"))
    assert caught.value.status == 412
    assert "big.csv: 16 bytes is over the limit of 10" in caught.value.body
    assert repo.branch("dev").head() is None
    repo.delete()


# ------------------------------------------------------------------------------ legacy lakefs_client


def test_legacy_client_full_flow(served: Served, legacy: Any) -> None:
    from lakefs_client import models

    data = served.platform.data
    name = "legacy-flow"
    repo = legacy.repositories_api.create_repository(
        models.RepositoryCreation(name=name, storage_namespace=f"local://{name}", default_branch="main"))
    assert repo.id == name and repo.default_branch == "main"
    assert data.repo(name).info().protected_branches == ("main",)
    assert name in [r.id for r in legacy.repositories_api.list_repositories().results]
    with pytest.raises(lakefs_client.ApiException) as caught:
        legacy.repositories_api.create_repository(
            models.RepositoryCreation(name=name, storage_namespace=f"local://{name}"))
    assert caught.value.status == 409

    # main is protected: direct writes are 403
    with pytest.raises(lakefs_client.exceptions.ForbiddenException):
        legacy.objects_api.upload_object(name, "main", "x.csv", content=io.BytesIO(CSV))

    legacy.branches_api.create_branch(name, models.BranchCreation(name="dev", source="main"))
    assert legacy.branches_api.get_branch(name, "dev").id == "dev"
    assert sorted(b.id for b in legacy.branches_api.list_branches(name).results) == ["dev", "main"]

    # multipart uploads (field "content")
    for i in range(5):
        stats = legacy.objects_api.upload_object(name, "dev", f"data/part-{i}.csv",
                                                 content=io.BytesIO(CSV + str(i).encode() + b",1\n"))
        assert stats.path == f"data/part-{i}.csv"
        assert stats.checksum == data.repo(name).branch("dev").stat(f"data/part-{i}.csv").digest
    legacy.objects_api.upload_object(name, "dev", "readme.txt", content=io.BytesIO(b"hello lakeFS"))

    stat = legacy.objects_api.stat_object(name, "dev", "readme.txt")
    assert stat.size_bytes == 12 and stat.path_type == "object" and isinstance(stat.mtime, int)
    assert stat.checksum == data.repo(name).ref("dev").stat("readme.txt").digest

    assert _drain(legacy.objects_api.get_object(name, "dev", "readme.txt")) == b"hello lakeFS"
    part, status, headers = legacy.objects_api.get_object(name, "dev", "readme.txt", range="bytes=6-11",
                                                          _return_http_data_only=False)
    assert status == 206 and _drain(part) == b"lakeFS"
    assert headers["Content-Range"] == "bytes 6-11/12"
    legacy.objects_api.head_object(name, "dev", "readme.txt")
    with pytest.raises(lakefs_client.exceptions.NotFoundException):
        legacy.objects_api.head_object(name, "dev", "missing.txt")

    # listing: delimiter, prefix, and pagination of 2 over 5
    listing = legacy.objects_api.list_objects(name, "dev", delimiter="/")
    assert [(o.path, o.path_type) for o in listing.results] == [("data/", "common_prefix"),
                                                                ("readme.txt", "object")]
    pages = _pages(legacy.objects_api.list_objects, name, "dev", prefix="data/", amount=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    listed = [o.path for page in pages for o in page]
    assert listed == [r.path for r in data.repo(name).ref("dev").objects("data/")]

    legacy.objects_api.delete_object(name, "dev", "data/part-4.csv")
    changes = legacy.branches_api.diff_branch(name, "dev").results
    assert sorted((c.path, c.type) for c in changes) == sorted(
        [(f"data/part-{i}.csv", "added") for i in range(4)] + [("readme.txt", "added")])
    assert [(c.path, c.type) for c in changes] == [(d.path, d.type) for d in data.repo(name).branch("dev").uncommitted()]

    commit = legacy.commits_api.commit(name, "dev", models.CommitCreation(message="first data",
                                                                           metadata={"source": "legacy"}))
    head = data.repo(name).branch("dev").head()
    assert head is not None and commit.id == head.id and commit.metadata == {"source": "legacy"}
    assert commit.meta_range_id == head.tree and commit.committer == head.author == "access-key:lakefs-tests"
    assert legacy.commits_api.get_commit(name, commit.id).message == "first data"
    with pytest.raises(lakefs_client.ApiException) as caught:
        legacy.commits_api.commit(name, "dev", models.CommitCreation(message="nothing"))
    assert caught.value.status == 400

    diff = legacy.refs_api.diff_refs(name, "main", "dev").results
    assert sorted(d.path for d in diff) == sorted(d.path for d in data.repo(name).diff("main", "dev"))
    assert {d.type for d in diff} == {"added"}

    merged = legacy.refs_api.merge_into_branch(name, "dev", "main")
    assert merged.reference == data.repo(name).branch("main").head().id
    log = legacy.refs_api.log_commits(name, "main").results
    assert [c.id for c in log] == [c.id for c in data.repo(name).log("main")]

    tag = legacy.tags_api.create_tag(name, models.TagCreation(id="v1", ref="main"))
    assert tag.commit_id == merged.reference
    assert [t.id for t in legacy.tags_api.list_tags(name).results] == ["v1"]
    legacy.tags_api.delete_tag(name, "v1")
    assert data.repo(name).tags() == []

    legacy.objects_api.upload_object(name, "dev", "scratch.txt", content=io.BytesIO(b"scratch"))
    legacy.branches_api.reset_branch(name, "dev", models.ResetCreation(type="reset"))
    assert data.repo(name).branch("dev").uncommitted() == []

    legacy.branches_api.delete_branch(name, "dev")
    assert [b.name for b in data.repo(name).branches()] == ["main"]
    _delete_as_admin(served, name)
    with pytest.raises(mlops_lite.NotFound):
        data.repo(name).info()


# ------------------------------------------------------------------------------ lakefs_sdk


def test_sdk_full_flow(served: Served, sdk: Any) -> None:
    from lakefs_sdk import models

    data = served.platform.data
    name = "sdk-flow"
    sdk.repositories_api.create_repository(models.RepositoryCreation(name=name, storage_namespace=f"local://{name}"))
    assert sdk.repositories_api.get_repository(name).default_branch == "main"
    sdk.branches_api.create_branch(name, models.BranchCreation(name="dev", source="main"))

    stats = sdk.objects_api.upload_object(name, "dev", "a.csv", content=CSV)
    assert stats.checksum == data.repo(name).branch("dev").stat("a.csv").digest
    assert stats.size_bytes == len(CSV)
    # If-None-Match: * refuses an existing path with 412, and takes a new one
    with pytest.raises(lakefs_sdk.ApiException) as caught:
        sdk.objects_api.upload_object(name, "dev", "a.csv", content=b"other", if_none_match="*")
    assert caught.value.status == 412
    assert data.repo(name).ref("dev").read_bytes("a.csv") == CSV
    sdk.objects_api.upload_object(name, "dev", "b.csv", content=b"x\n1\n", if_none_match="*")

    assert bytes(sdk.objects_api.get_object(name, "dev", "a.csv")) == CSV
    response = sdk.objects_api.get_object_with_http_info(name, "dev", "a.csv", range="bytes=0-1")
    assert response.status_code == 206 and bytes(response.data) == CSV[:2]
    assert response.headers["Content-Range"] == f"bytes 0-1/{len(CSV)}"
    response = sdk.objects_api.get_object_with_http_info(name, "dev", "a.csv", range=f"bytes={len(CSV) - 3}-")
    assert response.status_code == 206 and bytes(response.data) == CSV[-3:]
    with pytest.raises(lakefs_sdk.ApiException) as caught:
        sdk.objects_api.get_object(name, "dev", "a.csv", range=f"bytes={len(CSV) + 5}-")
    assert caught.value.status == 416
    sdk.objects_api.head_object(name, "dev", "a.csv")
    with pytest.raises(lakefs_sdk.exceptions.NotFoundException):
        sdk.objects_api.head_object(name, "dev", "nope.csv")
    with pytest.raises(lakefs_sdk.exceptions.NotFoundException):
        sdk.objects_api.get_object(name, "dev", "nope.csv")

    commit = sdk.commits_api.commit(name, "dev", models.CommitCreation(message="sdk data", metadata={"k": "v"}))
    assert commit.id == data.repo(name).branch("dev").head().id
    assert commit.metadata == {"k": "v"} and commit.parents == []

    # merge, then a conflict: the same path changed differently on both sides
    first = sdk.refs_api.merge_into_branch(name, "dev", "main", merge=models.Merge(message="to main"))
    assert first.reference == data.repo(name).branch("main").head().id
    assert data.repo(name).commit(first.reference).message == "to main"
    sdk.branches_api.create_branch(name, models.BranchCreation(name="other", source="main"))
    sdk.objects_api.upload_object(name, "dev", "a.csv", content=b"dev side\n")
    sdk.commits_api.commit(name, "dev", models.CommitCreation(message="dev edit"))
    sdk.objects_api.upload_object(name, "other", "a.csv", content=b"other side\n")
    sdk.commits_api.commit(name, "other", models.CommitCreation(message="other edit"))
    sdk.refs_api.merge_into_branch(name, "other", "main")
    with pytest.raises(lakefs_sdk.ApiException) as caught:
        sdk.refs_api.merge_into_branch(name, "dev", "main")
    assert caught.value.status == 409 and "a.csv" in caught.value.body
    main_before = data.repo(name).branch("main").head().id
    assert data.repo(name).ref("main").read_bytes("a.csv") == b"other side\n"
    won = sdk.refs_api.merge_into_branch(name, "dev", "main", merge=models.Merge(strategy="source-wins"))
    assert won.reference != main_before
    assert data.repo(name).ref("main").read_bytes("a.csv") == b"dev side\n"
    assert bytes(sdk.objects_api.get_object(name, "main", "a.csv")) == b"dev side\n"

    # revert the dev edit on dev -> 204, a new commit restoring the CSV
    dev_edit = data.repo(name).branch("dev").head()
    assert sdk.branches_api.revert_branch(name, "dev", models.RevertCreation(ref=dev_edit.id, parent_number=1)) \
        is None
    reverted = data.repo(name).branch("dev").head()
    assert reverted.parents == (dev_edit.id,)
    assert data.repo(name).ref("dev").read_bytes("a.csv") == CSV
    assert sdk.commits_api.get_commit(name, "dev").id == reverted.id

    log = [c for page in _pages(sdk.refs_api.log_commits, name, "dev", amount=1) for c in page]
    assert [c.id for c in log] == [c.id for c in data.repo(name).log("dev")]
    assert len(log) == 3

    # tags: create, get, list, delete
    tag = sdk.tags_api.create_tag(name, models.TagCreation(id="v1", ref="dev"))
    assert tag.commit_id == reverted.id
    assert sdk.tags_api.get_tag(name, "v1").commit_id == reverted.id
    sdk.tags_api.create_tag(name, models.TagCreation(id="v0", ref=commit.id))
    assert [t.id for t in sdk.tags_api.list_tags(name).results] == ["v0", "v1"]
    assert bytes(sdk.objects_api.get_object(name, "v0", "a.csv")) == CSV
    sdk.tags_api.delete_tag(name, "v1")
    with pytest.raises(lakefs_sdk.exceptions.NotFoundException):
        sdk.tags_api.get_tag(name, "v1")
    assert [t.name for t in data.repo(name).tags()] == ["v0"]

    # branch from a commit, reset, delete
    sdk.branches_api.create_branch(name, models.BranchCreation(name="from-commit", source=commit.id))
    assert sdk.branches_api.get_branch(name, "from-commit").commit_id == commit.id
    sdk.objects_api.upload_object(name, "from-commit", "tmp.bin", content=b"\x00\x01")
    assert len(sdk.branches_api.diff_branch(name, "from-commit").results) == 1
    sdk.branches_api.reset_branch(name, "from-commit", models.ResetCreation(type="reset"))
    assert sdk.branches_api.diff_branch(name, "from-commit").results == []
    sdk.branches_api.delete_branch(name, "from-commit")
    with pytest.raises(lakefs_sdk.exceptions.NotFoundException):
        sdk.branches_api.get_branch(name, "from-commit")
    with pytest.raises(lakefs_sdk.ApiException) as caught:
        sdk.branches_api.delete_branch(name, "main")
    assert caught.value.status == 403 and "default branch" in caught.value.body  # lakeFS: 403

    _delete_as_admin(served, name)
    assert name not in [r.name for r in data.repositories()]


def test_sdk_listing_pages_match_the_platform(served: Served, sdk: Any) -> None:
    data = served.platform.data
    name = "sdk-listing"
    repo = data.repo(name)
    repo.create(classification="internal")
    repo.branch("work").create("main")
    for path in ["a/1.csv", "a/2.csv", "b/1.csv", "b/c/2.csv", "c.csv", "d.csv", "e.csv"]:
        repo.branch("work").upload(path, path.encode())
    repo.branch("work").commit("seven objects")

    everything = [o for page in _pages(sdk.objects_api.list_objects, name, "work", amount=2) for o in page]
    assert [o.path for o in everything] == [r.path for r in repo.ref("work").objects()]
    assert [o.checksum for o in everything] == [r.digest for r in repo.ref("work").objects()]
    assert [o.size_bytes for o in everything] == [r.size for r in repo.ref("work").objects()]

    top = [o for page in _pages(sdk.objects_api.list_objects, name, "work", delimiter="/", amount=2) for o in page]
    assert [(o.path, o.path_type) for o in top] == [
        ("a/", "common_prefix"), ("b/", "common_prefix"), ("c.csv", "object"), ("d.csv", "object"),
        ("e.csv", "object")]
    under_b = sdk.objects_api.list_objects(name, "work", prefix="b/", delimiter="/").results
    assert [(o.path, o.path_type) for o in under_b] == [("b/1.csv", "object"), ("b/c/", "common_prefix")]

    branches = [b.id for page in _pages(sdk.branches_api.list_branches, name, amount=1) for b in page]
    assert branches == ["main", "work"]
    repos = [r.id for page in _pages(sdk.repositories_api.list_repositories, amount=1) for r in page]
    assert repos == [r.name for r in data.repositories()]

    repo.branch("work").upload("a/3.csv", b"3")
    grouped = sdk.branches_api.diff_branch(name, "work", delimiter="/").results
    assert [(d.path, d.type, d.path_type) for d in grouped] == [("a/", "prefix_changed", "common_prefix")]
    repo.delete()


def test_raw_uploads_stream_past_the_default_body_limit(served: Served) -> None:
    """A 12 MiB raw body, sent chunked, lands whole (Litestar's default limit is 10 MB)."""
    import hashlib

    repo = served.platform.data.repo("big-upload")
    repo.create(classification="internal")
    repo.branch("dev").create("main")
    block = bytes(range(256)) * 4096  # 1 MiB
    digest = hashlib.sha256(block * 12).hexdigest()
    with served.http() as http:
        response = http.post("/repositories/big-upload/branches/dev/objects", params={"path": "big.bin"},
                             content=(block for _ in range(12)),
                             headers={"Content-Type": "application/octet-stream"})
        assert response.status_code == 201, response.text
        assert response.json()["checksum"] == digest == repo.ref("dev").stat("big.bin").digest
        assert response.json()["size_bytes"] == 12 << 20
        got = hashlib.sha256()
        with http.stream("GET", "/repositories/big-upload/refs/dev/objects", params={"path": "big.bin"}) as stream:
            assert stream.status_code == 200 and stream.headers["content-length"] == str(12 << 20)
            for chunk in stream.iter_bytes():
                got.update(chunk)
        assert got.hexdigest() == digest
        # HEAD answers the size and ETag, no body
        head = http.head("/repositories/big-upload/refs/dev/objects", params={"path": "big.bin"})
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(12 << 20) and head.headers["etag"] == f'"{digest}"'
        missing = http.head("/repositories/big-upload/refs/dev/objects", params={"path": "nope"})
        assert missing.status_code == 404 and missing.content == b""
    repo.delete()


# ------------------------------------------------------------------------------ high-level lakefs


def test_lakefs_package_flow(served: Served, hl: Any) -> None:
    data = served.platform.data
    repo = lakefs.repository("hl-flow", client=hl).create(storage_namespace="local://hl-flow", exist_ok=True)
    assert repo.properties.default_branch == "main"
    assert lakefs.repository("hl-flow", client=hl).create(storage_namespace="local://hl-flow", exist_ok=True)
    main = repo.branch("main")
    dev = repo.branch("dev").create(source_reference="main")

    # raw octet-stream uploads
    info = dev.object("tables/a.csv").upload(data=CSV)
    assert info.stat().checksum == data.repo("hl-flow").branch("dev").stat("tables/a.csv").digest
    dev.object("tables/b.csv").upload(data=b"b\n2\n", content_type="text/csv")
    dev.object("notes.txt").upload(data="text mode", mode="w")
    with pytest.raises(lakefs.exceptions.ObjectExistsException):
        dev.object("notes.txt").upload(data=b"again", mode="x")
    assert data.repo("hl-flow").ref("dev").read_bytes("notes.txt") == b"text mode"
    with pytest.raises(lakefs.exceptions.ForbiddenException):
        main.object("direct.csv").upload(data=b"no")

    assert dev.object("tables/a.csv").exists()
    assert not dev.object("tables/zzz.csv").exists()
    with dev.object("tables/a.csv").reader() as reader:
        assert reader.read() == CSV
    with dev.object("tables/a.csv").reader() as reader:
        assert reader.read(2) == CSV[:2]
        assert reader.read(3) == CSV[2:5]
        assert reader.read() == CSV[5:]
        assert reader.read(10) == b""
    with dev.object("notes.txt").reader(mode="r") as reader:
        assert reader.read() == "text mode"

    listed = [o.path for o in dev.objects(prefix="tables/")]
    assert listed == [r.path for r in data.repo("hl-flow").ref("dev").objects("tables/")]
    top = [(type(o).__name__, o.path) for o in dev.objects(delimiter="/")]
    assert top == [("ObjectInfo", "notes.txt"), ("CommonPrefix", "tables/")]
    assert sorted(c.path for c in dev.uncommitted()) == ["notes.txt", "tables/a.csv", "tables/b.csv"]

    ref = dev.commit(message="hl commit", metadata={"who": "hl"})
    head = data.repo("hl-flow").branch("dev").head()
    assert ref.id == head.id and ref.get_commit().metadata == {"who": "hl"}
    assert dev.get_commit().id == head.id and dev.head.id == head.id
    assert [c.id for c in dev.log()] == [c.id for c in data.repo("hl-flow").log("dev")]
    changes = list(main.diff(dev))
    assert sorted((c.path, c.type) for c in changes) == [
        ("notes.txt", "added"), ("tables/a.csv", "added"), ("tables/b.csv", "added")]

    merge_id = dev.merge_into(main, message="hl merge")
    assert merge_id == data.repo("hl-flow").branch("main").head().id
    assert list(main.diff(dev)) == []
    with main.object("tables/a.csv").reader() as reader:
        assert reader.read() == CSV

    tag = repo.tag("release").create(main)
    assert tag.get_commit().id == merge_id
    assert [t.id for t in repo.tags()] == ["release"]
    tag.delete()
    assert list(repo.tags()) == []

    dev.object("tables/a.csv").delete()
    assert not dev.object("tables/a.csv").exists()
    dev.commit(message="drop a")
    removed = dev.head.id
    dev.revert(removed)  # the lakefs package's default parent_number is 0
    assert data.repo("hl-flow").ref("dev").read_bytes("tables/a.csv") == CSV
    dev.object("scratch").upload(data=b"s")
    dev.reset_changes()
    assert list(dev.uncommitted()) == []
    dev.delete_objects(["notes.txt", "tables/b.csv"])
    assert sorted(c.path for c in dev.uncommitted()) == ["notes.txt", "tables/b.csv"]
    dev.reset_changes()

    assert sorted(b.id for b in repo.branches()) == ["dev", "main"]
    dev.delete()
    assert [b.id for b in repo.branches()] == ["main"]
    _delete_as_admin(served, "hl-flow")
    with pytest.raises(lakefs.exceptions.NotFoundException):
        lakefs.repository("hl-flow", client=hl).properties  # noqa: B018


# ------------------------------------------------------------------------------ mlops-lite's own lakefs backend


def test_mlops_lite_lakefs_backend_against_this_api(served: Served) -> None:
    """The platform's lakefs data backend (lakefs-sdk + streamed httpx uploads) spoken to this API."""
    from mlops_lite.data.lakefs_backend import LakeFSDataStore

    remote = LakeFSDataStore(served.url, served.key, served.secret)
    try:
        repo = remote.repo("via-backend")
        record = repo.create()
        assert record.protected_branches == ("main",)
        work = repo.branch("work")
        work.create("main")
        uploaded = work.upload("x/data.csv", io.BytesIO(CSV * 1000), if_absent=True)
        local = served.platform.data.repo("via-backend")
        assert uploaded.digest == local.ref("work").stat("x/data.csv").digest
        work.commit("first")
        with pytest.raises(mlops_lite.Conflict):
            work.commit("again")
        with pytest.raises(mlops_lite.PolicyViolation):
            repo.branch("main").upload("y.csv", CSV)
        assert work.read_bytes("x/data.csv", start=3, end=8) == (CSV * 1000)[3:9]
        merged = work.merge_into("main")
        assert merged.id == local.branch("main").head().id
        assert [c.id for c in repo.log("main")] == [c.id for c in local.log("main")]
        with pytest.raises(mlops_lite.PermissionDenied):
            repo.delete()  # deleting a repository needs admin; this key is an operator's
        _delete_as_admin(served, "via-backend")
    finally:
        remote.close()


def test_the_lakefs_backend_reads_rules_opens_imports_and_queries_as_the_platform(served: Served,
                                                                                   tmp_path: Path) -> None:
    """What the lakefs backend answers with lakeFS calls alone, checked against the platform
    behind this API: the rules lakeFS keeps (branch protection; PII patterns in the
    repository metadata), an object opened, a folder imported, SQL over tables at refs."""
    from mlops_lite.data import RepositoryConfig
    from mlops_lite.data.lakefs_backend import LakeFSDataStore

    local = served.platform.data.repo("rules-via-backend")
    local.create(classification="internal", config=RepositoryConfig(protected_branches=("main", "release"), pii_patterns=("ssn", "e.?mail")))
    remote = LakeFSDataStore(served.url, served.key, served.secret)
    try:
        repo = remote.repo("rules-via-backend")
        assert repo.config() == RepositoryConfig(protected_branches=("main", "release"),
                                                 pii_patterns=("ssn", "e.?mail"))
        assert remote.pii_patterns("rules-via-backend") == ("ssn", "e.?mail")
        with pytest.raises(mlops_lite.BackendUnavailable, match=r"mlops_lite\.pii_patterns"):
            repo.configure(pii_patterns=["ssn"])
        with pytest.raises(mlops_lite.BackendUnavailable):
            remote.gc()
        work = repo.branch("work")
        work.create("main")
        (tmp_path / "drop" / "b").mkdir(parents=True)
        (tmp_path / "drop" / "a.csv").write_bytes(CSV)
        (tmp_path / "drop" / "b" / "c.csv").write_bytes(b"id,amount\n3,50\n")
        assert work.import_directory(tmp_path / "drop", prefix="t") == 2
        assert [d.path for d in local.branch("work").uncommitted()] == ["t/a.csv", "t/b/c.csv"]
        made = work.commit("import")
        assert work.commit_record() == made and made.id == local.ref("work").commit_record().id  # lakeFS times: seconds
        assert [c.id for c in repo.ref("work").log()] == [c.id for c in local.ref("work").log()]
        with repo.ref(made.id).open("t/b/c.csv") as stream:
            assert stream.read() == local.ref(made.id).read_bytes("t/b/c.csv")
        sql = "select count(*) as n, sum(amount) as total from t"
        answer = repo.query(sql, t=("work", "t/*.csv"))
        assert answer.commits == {"t": made.id} and answer.table.to_pylist() == [{"n": 2, "total": 350}]
        assert answer == local.query(sql, t=("work", "t/*.csv"))
        with pytest.raises(mlops_lite.PolicyViolation):
            repo.branch("main").import_directory(tmp_path / "drop")
        assert local.branch("main").uncommitted() == []
    finally:
        remote.close()
