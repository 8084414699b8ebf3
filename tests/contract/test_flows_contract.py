"""The flows contract: ``platform.flows`` (mlops_lite/api/flows.py) lists the Prefect
server's flow runs and reads a run's log lines, the same local or remote; with no Prefect
server it says so (BackendUnavailable, 503 over HTTP), and over HTTP the logs need the
operator role (server/flows.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mlops_lite import BackendUnavailable, InvalidInput, NotFound, PermissionDenied
from mlops_lite.records import FlowLogRecord, FlowRunRecord


def test_with_no_prefect_server_every_read_says_so(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(BackendUnavailable) as none:
        api.flows.runs()
    assert "no Prefect server" in none.value.message
    with pytest.raises(BackendUnavailable):
        api.flows.logs("6f1c3c1e-0000-4000-8000-000000000000")


def test_a_prefect_server_that_does_not_answer_is_named(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    with pytest.raises(BackendUnavailable) as down:
        api.flows.runs()
    assert "the Prefect server at http://127.0.0.1:9/api did not answer" in down.value.message


@pytest.fixture(scope="module")
def tiny_run(prefect_harness: None) -> Iterator[tuple[str, str, str]]:
    """A tiny flow run on the session's Prefect test server, its log lines sent, and a run
    of the same flow scheduled an hour ahead; yields (the API URL, the run's id, the
    scheduled run's id)."""
    from prefect import flow, get_run_logger
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL
    from prefect.states import Scheduled

    @flow(name="console-tiny")
    def tiny(lines: int) -> int:
        logger = get_run_logger()
        for i in range(lines):
            logger.warning("tiny line %d of %d", i + 1, lines)  # the tests log WARNING and up
        return lines

    state = tiny(3, return_state=True)
    APILogWorker.drain_all(timeout=10)
    assert state.is_completed()
    with get_client(sync_client=True) as client:
        later = client.create_flow_run(tiny, parameters={"lines": 1}, state=Scheduled(
            scheduled_time=datetime.now(UTC) + timedelta(hours=1)))
    yield str(PREFECT_API_URL.value()), str(state.state_details.flow_run_id), str(later.id)


@pytest.mark.slow
def test_flow_runs_and_their_log_lines(api: Any, tiny_run: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    url, run_id, later_id = tiny_run
    monkeypatch.setenv("PREFECT_API_URL", url)
    runs = api.flows.runs(limit=20)
    assert later_id not in {r.id for r in runs}  # scheduled an hour ahead: not news yet
    assert all(type(r) is FlowRunRecord for r in runs)
    ours = [r for r in runs if r.id == run_id]
    assert len(ours) == 1 and ours[0].flow == "console-tiny" and ours[0].state == "COMPLETED"
    assert ours[0].parameters == {"lines": 3} and ours[0].started is not None and ours[0].ended is not None
    assert [r.id for r in api.flows.runs(flow="console-tiny")] == [r.id for r in runs if r.flow == "console-tiny"]
    assert api.flows.runs(flow="no-such-flow") == []
    deadline = time.monotonic() + 20
    while True:  # the log worker sends in batches: wait for ours
        lines = api.flows.logs(run_id)
        if sum("tiny line" in line.message for line in lines) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert all(type(line) is FlowLogRecord for line in lines)
    tiny_lines = [line for line in lines if "tiny line" in line.message]
    assert [line.message for line in tiny_lines] == ["tiny line 1 of 3", "tiny line 2 of 3", "tiny line 3 of 3"]
    assert {line.level for line in tiny_lines} == {"WARNING"}
    assert [line.at for line in lines] == sorted(line.at for line in lines)
    # A tail asks again from the last time it saw: that line (or those at its instant) and newer.
    again = api.flows.logs(run_id, after=lines[-1].at)
    assert again and again[0].at == lines[-1].at and {line.id for line in again} <= {line.id for line in lines}
    with pytest.raises(NotFound):
        api.flows.logs("6f1c3c1e-0000-4000-8000-000000000000")
    with pytest.raises(InvalidInput) as bad:
        api.flows.logs("not-a-uuid")
    assert bad.value.field == "flow_run_id"
    with pytest.raises(InvalidInput) as bad:
        api.flows.runs(limit=-1)
    assert bad.value.field == "limit"


@pytest.mark.slow
@pytest.mark.parametrize("api_kind", ["remote"], indirect=True)
def test_over_http_a_viewer_lists_runs_and_an_operator_reads_logs(api: Any, tiny_run: tuple[str, str, str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_lite.client import RemotePlatform

    url, run_id, _ = tiny_run
    monkeypatch.setenv("PREFECT_API_URL", url)
    _, viewer_secret = api.tokens.create("a-viewer", "viewer")
    _, operator_secret = api.tokens.create("an-operator", "operator")
    with RemotePlatform(api.url, viewer_secret) as viewer, RemotePlatform(api.url, operator_secret) as operator:
        assert run_id in {r.id for r in viewer.flows.runs()}
        with pytest.raises(PermissionDenied) as denied:
            viewer.flows.logs(run_id)
        assert denied.value.details == {"needed": "operator", "role": "viewer"}
        assert operator.flows.logs(run_id) == api.flows.logs(run_id)
