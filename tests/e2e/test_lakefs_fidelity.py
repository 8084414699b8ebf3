"""Where lakeFS's semantics matter to its users, checked with the official clients as users
call them (the high-level ``lakefs`` package, ``lakefs_sdk``, the legacy ``lakefs_client``),
defaults included, against a real server on 127.0.0.1. Each answer is the one lakeFS's
OpenAPI spec (api/swagger.yml) and its server give; server/README.md lists the deliberate
differences."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

lakefs_client = pytest.importorskip("lakefs_client")
lakefs_sdk = pytest.importorskip("lakefs_sdk")
lakefs = pytest.importorskip("lakefs")

from .test_lakefs_api import Served, hl, lakefs_server, legacy, sdk  # noqa: E402  (the clients as users make them)

__all__ = ["hl", "legacy", "sdk"]  # fixtures, used by name

GOOD = b"id,amount\n1,100\n2,250\n"
BAD = b"id,amount\n1,-999\n2,oops\n"
ACTOR = "access-key:fidelity"


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with lakefs_server("fidelity") as running:
        yield running


def _loans(served: Served, name: str) -> tuple[Any, str, str]:
    """A repository whose protected main took good data, then bad data, each by merge from dev.
    Returns (the repository handle, the good merge's id, the bad merge's id)."""
    repo = served.platform.data.repo(name)
    repo.create(classification="internal")
    dev = repo.branch("dev")
    dev.create("main")
    dev.upload("loans.csv", GOOD)
    dev.commit("good loans")
    good = dev.merge_into("main", message="good loans to main")
    dev.upload("loans.csv", BAD)
    dev.upload("extra.csv", b"x\n1\n")
    dev.commit("bad loans")
    bad = dev.merge_into("main", message="bad loans to main")
    assert "main" in repo.info().protected_branches and len(bad.parents) == 2
    return repo, good.id, bad.id


def _reverts(served: Served, name: str) -> list[Any]:
    return [e for e in served.platform.audit.events(limit=10_000)
            if e.action == "data.revert" and e.object == f"data:{name}/main"]


# ------------------------------------------------------------------------------ revert on a protected branch


def test_lakefs_package_reverts_a_bad_merge_on_protected_main(served: Served, hl: Any) -> None:
    repo, good, bad = _loans(served, "loans-hl")
    main = lakefs.repository("loans-hl", client=hl).branch("main")

    # a merge commit needs its parent named, as lakeFS says (409); nothing moves
    with pytest.raises(lakefs.exceptions.ConflictException):
        main.revert(bad)
    assert repo.branch("main").head().id == bad

    reverted = main.revert(bad, parent_number=1)
    head = repo.branch("main").head()
    assert reverted.id == head.id and head.parents == (bad,)
    assert repo.ref("main").read_bytes("loans.csv") == GOOD
    assert [o.path for o in repo.ref("main").objects()] == ["loans.csv"]
    assert head.tree == repo.commit(good).tree  # the content is the bad merge's first parent's
    assert head.author == ACTOR
    events = _reverts(served, "loans-hl")
    assert [(e.actor, e.before, e.after["head"], e.after["reverted"]) for e in events] == [
        (ACTOR, {"head": bad}, head.id, bad)]
    assert served.platform.audit.verify() is None

    # a revert is an ordinary commit: reverting it with the package's defaults brings the bad data back
    again = main.revert(head.id)
    assert repo.ref("main").read_bytes("loans.csv") == BAD and again.parents == [head.id]
    # ... while direct writes to main stay refused
    with pytest.raises(lakefs.exceptions.ForbiddenException):
        main.object("loans.csv").upload(data=GOOD)
    with pytest.raises(lakefs_sdk.exceptions.ForbiddenException):  # reset_changes passes the SDK's errors on
        main.reset_changes()
    assert repo.branch("main").uncommitted() == []


def test_sdk_and_legacy_client_revert_on_protected_main(served: Served, sdk: Any, legacy: Any) -> None:
    repo, _, bad = _loans(served, "loans-sdk")
    answer = sdk.branches_api.revert_branch("loans-sdk", "main", lakefs_sdk.RevertCreation(
        ref=bad, parent_number=1,
        commit_overrides=lakefs_sdk.CommitOverrides(message="roll back bad loans", metadata={"ticket": "42"})))
    assert answer is None  # 204
    head = repo.branch("main").head()
    assert head.message == "roll back bad loans" and head.metadata == {"ticket": "42"}
    assert repo.ref("main").read_bytes("loans.csv") == GOOD
    assert sdk.commits_api.get_commit("loans-sdk", "main").id == head.id

    # the legacy client, on the revert just made (one parent: parent_number 1 is that parent)
    from lakefs_client import models

    legacy.branches_api.revert_branch("loans-sdk", "main", models.RevertCreation(
        ref=head.id, parent_number=1))
    assert repo.ref("main").read_bytes("loans.csv") == BAD
    assert sorted(e.after["reverted"] for e in _reverts(served, "loans-sdk")) == sorted([bad, head.id])


def test_revert_errors_are_lakefs_statuses_and_change_nothing(served: Served, sdk: Any) -> None:
    repo, _, bad = _loans(served, "loans-errors")
    before = repo.branch("main").head().id

    def revert(**body: Any) -> int:
        with pytest.raises(lakefs_sdk.ApiException) as caught:
            sdk.branches_api.revert_branch("loans-errors", "main", lakefs_sdk.RevertCreation(**body))
        assert caught.value.body and "message" in caught.value.body
        return int(caught.value.status)

    assert revert(ref=bad, parent_number=3) == 400  # out of range
    assert revert(ref="no-such-ref", parent_number=1) == 404
    assert revert(ref=bad, parent_number=0) == 409  # a merge needs its parent
    # reverting what main already undid: "no changes" (400), unless allow_empty
    repo.branch("main").revert(bad, parent_number=1)
    reverted = repo.branch("main").head()
    assert revert(ref=bad, parent_number=1) == 400
    sdk.branches_api.revert_branch("loans-errors", "main", lakefs_sdk.RevertCreation(
        ref=bad, parent_number=1, allow_empty=True))
    empty = repo.branch("main").head()
    assert empty.parents == (reverted.id,) and empty.tree == reverted.tree
    # a dirty branch is refused (400) before anything changes
    dev = repo.branch("dev")
    dev.upload("pending.csv", b"p\n")
    last = dev.head().id
    with pytest.raises(lakefs_sdk.exceptions.BadRequestException) as caught:
        sdk.branches_api.revert_branch("loans-errors", "dev", lakefs_sdk.RevertCreation(ref=last, parent_number=0))
    assert "uncommitted" in caught.value.body
    assert dev.head().id == last
    assert repo.branch("main").head().id != before == bad


def test_a_revert_still_passes_the_data_checks(served: Served, sdk: Any) -> None:
    """lakeFS runs pre-revert hooks; the repository's checks play that part, so every state of
    a protected branch passed them."""
    repo, _, bad = _loans(served, "loans-checked")
    repo.configure(max_object_bytes=len(GOOD) - 1)
    with pytest.raises(lakefs_sdk.ApiException) as caught:
        sdk.branches_api.revert_branch("loans-checked", "main", lakefs_sdk.RevertCreation(ref=bad, parent_number=1))
    assert caught.value.status == 412 and "loans.csv" in caught.value.body
    assert repo.branch("main").head().id == bad
    assert _reverts(served, "loans-checked") == []


# ------------------------------------------------------------------------------ merge, diff


def test_merge_that_brings_nothing_is_no_changes(served: Served, sdk: Any, hl: Any) -> None:
    repo, _, bad = _loans(served, "merge-nothing")
    with pytest.raises(lakefs.exceptions.BadRequestException):
        lakefs.repository("merge-nothing", client=hl).branch("dev").merge_into("main")
    assert repo.branch("main").head().id == bad
    result = sdk.refs_api.merge_into_branch("merge-nothing", "dev", "main",
                                            merge=lakefs_sdk.Merge(allow_empty=True))
    head = repo.branch("main").head()
    assert result.reference == head.id and head.parents[0] == bad and head.tree == repo.commit(bad).tree
    # a dirty destination is refused with 400, as lakeFS does
    repo.branch("side").create("main")
    repo.branch("side").upload("x.csv", b"1\n")
    repo.branch("side").commit("x")
    repo.branch("dev").upload("dirty.csv", b"d\n")
    with pytest.raises(lakefs_sdk.exceptions.BadRequestException) as caught:
        sdk.refs_api.merge_into_branch("merge-nothing", "side", "dev")
    assert "uncommitted" in caught.value.body


def test_ref_diff_is_three_dot_by_default(served: Served, sdk: Any, hl: Any) -> None:
    repo = served.platform.data.repo("three-dot")
    repo.create(classification="internal")
    dev = repo.branch("dev")
    dev.create("main")
    dev.upload("shared.csv", b"base\n")
    dev.upload("both.csv", b"base\n")
    dev.commit("base")
    dev.merge_into("main")
    feature = repo.branch("feature")
    feature.create("main")
    feature.upload("mine.csv", b"feature\n")
    feature.upload("both.csv", b"feature\n")
    feature.commit("feature work")
    dev.upload("theirs.csv", b"dev\n")
    dev.upload("both.csv", b"dev\n")
    dev.commit("dev work")
    dev.merge_into("main")

    # what merging feature into main would change: feature's work only, the clash marked
    changes = sorted((c.path, c.type) for c in lakefs.repository("three-dot", client=hl).branch("main")
                     .diff("feature"))
    assert changes == [("both.csv", "conflict"), ("mine.csv", "added")]
    two_dot = sdk.refs_api.diff_refs("three-dot", "main", "feature", type="two_dot").results
    assert sorted((d.path, d.type) for d in two_dot) == [
        ("both.csv", "changed"), ("mine.csv", "added"), ("theirs.csv", "removed")]
    assert [(d.path, d.type) for d in repo.diff("main", "feature")] == sorted((d.path, d.type) for d in two_dot)


# ------------------------------------------------------------------------------ objects, reset, log


def test_deleting_a_missing_object_succeeds_as_in_lakefs(served: Served, sdk: Any, hl: Any) -> None:
    repo, _, _ = _loans(served, "deletes")
    dev = lakefs.repository("deletes", client=hl).branch("dev")
    dev.object("never-there.csv").delete()
    assert sdk.objects_api.delete_objects("deletes", "dev", lakefs_sdk.PathList(
        paths=["loans.csv", "never-there.csv"])).errors == []
    assert [(d.path, d.type) for d in repo.branch("dev").uncommitted()] == [("loans.csv", "removed")]
    # protected main refuses each path with 403; an unknown branch is the request's 404
    errors = sdk.objects_api.delete_objects("deletes", "main", lakefs_sdk.PathList(paths=["loans.csv"])).errors
    assert [(e.path, e.status_code) for e in errors] == [("loans.csv", 403)]
    with pytest.raises(lakefs_sdk.exceptions.ForbiddenException):
        sdk.objects_api.delete_object("deletes", "main", "never-there.csv")
    with pytest.raises(lakefs_sdk.exceptions.NotFoundException):
        sdk.objects_api.delete_object("deletes", "no-such-branch", "loans.csv")
    with pytest.raises(lakefs_sdk.exceptions.NotFoundException):
        sdk.objects_api.delete_objects("deletes", "no-such-branch", lakefs_sdk.PathList(paths=["loans.csv"]))


def test_reset_one_object_or_one_prefix(served: Served, hl: Any) -> None:
    repo = served.platform.data.repo("resets")
    repo.create(classification="internal")
    repo.branch("work").create("main")
    branch = lakefs.repository("resets", client=hl).branch("work")
    for path in ["a.csv", "dir/b.csv", "dir/c.csv", "dirt.csv"]:
        branch.object(path).upload(data=path.encode())
    branch.reset_changes(path_type="object", path="a.csv")
    assert sorted(c.path for c in branch.uncommitted()) == ["dir/b.csv", "dir/c.csv", "dirt.csv"]
    branch.reset_changes(path_type="common_prefix", path="dir/")
    assert [c.path for c in branch.uncommitted()] == ["dirt.csv"]
    with pytest.raises(lakefs_sdk.exceptions.BadRequestException):
        branch.reset_changes(path_type="object")
    branch.reset_changes()
    assert list(branch.uncommitted()) == []


def test_log_stops_at_a_ref_or_a_date(served: Served, sdk: Any) -> None:
    repo = served.platform.data.repo("log-stops")
    repo.create(classification="internal")
    work = repo.branch("work")
    work.create("main")
    commits = []
    for i in range(4):
        work.upload(f"{i}.csv", b"%d" % i)
        commits.append(work.commit(f"c{i}"))
    log = sdk.refs_api.log_commits("log-stops", "work", stop_at=commits[1].id)
    assert [c.id for c in log.results] == [c.id for c in reversed(commits[1:])]
    assert log.pagination.has_more is False
    since = commits[3].created_at + timedelta(seconds=1)
    assert sdk.refs_api.log_commits("log-stops", "work", since=since).results == []
    assert len(sdk.refs_api.log_commits("log-stops", "work", since=commits[0].created_at).results) == 4


def test_head_with_a_range_answers_206(served: Served) -> None:
    _loans(served, "head-range")
    with served.http() as http:
        response = http.head("/repositories/head-range/refs/main/objects", params={"path": "extra.csv"},
                             headers={"Range": "bytes=0-1"})
        assert response.status_code == 206 and response.content == b""
        assert response.headers["content-range"] == "bytes 0-1/4" and response.headers["content-length"] == "2"


# ------------------------------------------------------------------------------ what is not implemented


def test_operations_not_offered_answer_400_naming_themselves(served: Served, sdk: Any, hl: Any) -> None:
    _, _, bad = _loans(served, "not-implemented")
    with pytest.raises(lakefs_sdk.ApiException) as caught:
        sdk.branches_api.cherry_pick("not-implemented", "dev", lakefs_sdk.CherryPickCreation(ref=bad))
    assert caught.value.status == 400 and "cherryPick" in caught.value.body
    with pytest.raises(lakefs_sdk.ApiException) as caught:
        sdk.refs_api.find_merge_base("not-implemented", "dev", "main")
    assert caught.value.status == 400
    with pytest.raises(lakefs_sdk.ApiException) as caught:
        sdk.auth_api.list_users()
    assert caught.value.status == 400
    with served.http() as http:
        response = http.put("/repositories/not-implemented/settings/branch_protection", json=[{"pattern": "*"}])
        assert response.status_code == 400 and "setBranchProtectionRules" in response.json()["message"]
        assert httpx.put(served.api + "/repositories/not-implemented/branches/main/hard_reset",
                         params={"ref": bad}, timeout=30).status_code == 401
    assert served.platform.data.repo("not-implemented").info().protected_branches == ("main",)
    assert sdk.config_api.get_config().version_config.version
