"""An incremental materialization reads only the files added since the last one when that
is exact, and its online rows then equal a full materialization's, row by row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DEFINITIONS = {
    "entity": [{"name": "customer", "join_keys": {"customer_id": "int64"}}],
    "feature_view": [{"name": "history", "entities": ["customer"],
                      "source": {"repository": "shop", "path": "history/*.csv"},
                      "created_timestamp_field": "created", "ttl": "120d",
                      "features": {"n": "int64", "score": "float64"}}],
    "feature_service": [{"name": "credit", "features": ["history"]}],
}
HEADER = "customer_id,event_timestamp,created,n,score\n"
AS_OF = "2024-06-01T00:00:00+00:00"


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Any]:
    from mlops_lite import connect

    p = connect(home=tmp_path / "home")
    p.data.repo("shop").create(classification="internal")
    try:
        yield p
    finally:
        p.close()


def commit(platform: Any, files: dict[str, str], name: str) -> None:
    branch = platform.data.repo("shop").branch(name)
    branch.create()
    for path, rows in files.items():
        branch.upload(path, (HEADER + rows).encode())
    branch.commit(name)
    branch.merge_into("main")


def stored(platform: Any) -> set[tuple[Any, ...]]:
    table = platform.features.online_store.stored("history")
    return set(zip(*(table.column(c).to_pylist() for c in ("entity_key", "event_us", "created_us", "payload")),
                   strict=True))


def test_added_files_are_read_alone_and_give_what_a_full_run_gives(platform: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_lite.features import offline

    read: list[Any] = []
    register = offline.register_view_source

    def watched(*args: Any, **kwargs: Any) -> None:
        read.append(kwargs.get("paths"))
        register(*args, **kwargs)

    monkeypatch.setattr(offline, "register_view_source", watched)
    commit(platform, {"history/a.csv": "1,2024-01-01,2024-01-01,1,0.5\n2,2024-02-01,2024-02-01,2,1.5\n"
                                       "3,2024-03-01,2024-03-01,3,2.5\n"}, "first")
    platform.features.apply(DEFINITIONS)
    [full] = platform.features.materialize(mode="full", as_of=AS_OF)
    assert (full.mode, full.written) == ("full", 3)
    # Added: a newer row for 1, an older one for 2 (must not win), a later correction for 3
    # (same event time, later created), and a new customer 4.
    commit(platform, {"history/b.csv": "1,2024-04-01,2024-04-01,10,9.5\n2,2024-01-15,2024-01-15,20,9.5\n"
                                       "3,2024-03-01,2024-03-05,30,9.5\n4,2024-05-01,2024-05-01,40,9.5\n"}, "second")
    read.clear()
    [step] = platform.features.materialize(as_of=AS_OF)
    assert (step.mode, step.written, step.keys) == ("incremental", 3, 4)
    assert read == [["history/b.csv"]]  # the added file alone
    incremental = stored(platform)
    platform.features.materialize(mode="full", as_of=AS_OF)
    assert incremental == stored(platform)
    got = platform.features.online("credit", [{"customer_id": k} for k in (1, 2, 3, 4)], at=AS_OF, log=False)
    assert [r["n"] for r in got.rows] == [10, None, 30, 40]  # 2 expired: its newest row is from February
    assert got.statuses[1]["n"] == "expired"


def test_a_changed_file_or_a_row_after_the_as_of_reads_everything_again(platform: Any) -> None:
    commit(platform, {"history/a.csv": "1,2024-01-01,2024-01-01,1,0.5\n2,2024-07-01,2024-07-01,2,1.5\n"}, "first")
    platform.features.apply(DEFINITIONS)
    platform.features.materialize(mode="full", as_of=AS_OF)
    # Customer 2's July row lay after the as-of: at a later as-of it is due, in no added file.
    [later] = platform.features.materialize(as_of="2024-07-15T00:00:00+00:00")
    assert (later.written, later.keys) == (1, 2)
    before = stored(platform)
    platform.features.materialize(mode="full", as_of="2024-07-15T00:00:00+00:00")
    assert before == stored(platform)
    # A rewritten file: rows may have gone, so the whole source is read and the gone key deleted.
    commit(platform, {"history/a.csv": "1,2024-01-02,2024-01-02,5,0.5\n"}, "rewrite")
    [step] = platform.features.materialize(as_of="2024-07-15T00:00:00+00:00")
    assert (step.mode, step.written, step.deleted, step.keys) == ("incremental", 1, 1, 1)
    rewritten = stored(platform)
    platform.features.materialize(mode="full", as_of="2024-07-15T00:00:00+00:00")
    assert rewritten == stored(platform)
