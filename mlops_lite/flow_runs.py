"""``platform.flows`` in-process: the flow runs and logs of the Prefect server that
``mlops-lite up`` starts beside its API (mlops_lite/api/flows.py says why they go through
the platform: a remote console reaches the daemon, never Prefect's loopback API).

The server is found at each call, since the daemon writes its file after its Platform
opened and a worker or test harness names one in its environment:
``PREFECT_API_URL`` first, else the running daemon's ``prefect_url``. The client sends
the home's auth string (``PREFECT_API_AUTH_STRING``, else ``<home>/prefect.auth``). Prefect's
client is built here with the URL and auth string given, never from Prefect's own
settings, so a call from any thread reads the server named, and never starts Prefect's
ephemeral server. Prefect's and httpx's errors become ``BackendUnavailable`` here."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from mlops_lite.config import Settings, prefect_auth
from mlops_lite.daemon import read_daemon
from mlops_lite.errors import BackendUnavailable, InvalidInput, MlopsLiteError, NotFound
from mlops_lite.records import FlowLogRecord, FlowRunRecord

MAX_RUNS = 200  # the most Prefect answers in one request
PAGE = 200
MAX_LOG_LINES = 5000
LEVELS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


class PrefectFlowRuns:
    """Reads only: starting and cancelling flow runs stay with the daemon's jobs and the
    Prefect UI."""

    def __init__(self, settings: Settings, *, timeout: float = 5.0) -> None:
        self.settings = settings
        self.timeout = timeout

    def api_url(self) -> str | None:
        """The Prefect API this platform reads (``.../api``), or None when there is none."""
        url = os.environ.get("PREFECT_API_URL", "").strip()
        if url:
            return url.rstrip("/")
        daemon = read_daemon(self.settings.daemon_file)
        if daemon is not None and daemon.prefect_url:
            return daemon.prefect_url.rstrip("/") + "/api"
        return None

    def runs(self, *, limit: int = 50, flow: str | None = None) -> list[FlowRunRecord]:
        if not 0 <= limit <= MAX_RUNS:
            raise InvalidInput(f"limit must be 0..{MAX_RUNS}, not {limit}", field="limit",
                               expected=f"an integer 0..{MAX_RUNS}")
        connection = self._client()  # no server: said before Prefect is imported (seconds)
        from prefect.client.schemas.filters import (
            FlowFilter,
            FlowFilterId,
            FlowFilterName,
            FlowRunFilter,
            FlowRunFilterExpectedStartTime,
        )
        from prefect.client.schemas.sorting import FlowRunSort

        with connection as client:
            flow_filter = None if flow is None else FlowFilter(name=FlowFilterName(any_=[flow]))
            # Due by now: a schedule's runs ahead of time (Prefect creates many) are not news.
            due = FlowRunFilter(expected_start_time=FlowRunFilterExpectedStartTime(
                before_=_prefect_time(datetime.now(UTC))))
            found = client.read_flow_runs(flow_filter=flow_filter, flow_run_filter=due,
                                          sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=limit)
            flow_ids = sorted({run.flow_id for run in found}, key=str)
            names = {f.id: f.name for f in client.read_flows(flow_filter=FlowFilter(id=FlowFilterId(any_=flow_ids)))
                     } if flow_ids else {}
        return [_run(run, names.get(run.flow_id, str(run.flow_id))) for run in found]

    def logs(self, flow_run_id: str, *, after: datetime | None = None, limit: int = 500) -> list[FlowLogRecord]:
        if not 0 <= limit <= MAX_LOG_LINES:
            raise InvalidInput(f"limit must be 0..{MAX_LOG_LINES}, not {limit}", field="limit",
                               expected=f"an integer 0..{MAX_LOG_LINES}")
        run_id = _uuid(flow_run_id)
        connection = self._client()
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId, LogFilterTimestamp
        from prefect.client.schemas.sorting import LogSort
        from prefect.exceptions import ObjectNotFound

        with connection as client:
            try:
                client.read_flow_run(run_id)
            except ObjectNotFound as exc:
                raise NotFound(f"no flow run {flow_run_id}") from exc
            log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]),
                                   timestamp=None if after is None else LogFilterTimestamp(after_=_prefect_time(after)))
            lines: list[Any] = []
            while len(lines) < limit:  # Prefect answers at most PAGE lines a request
                want = min(PAGE, limit - len(lines))
                page = client.read_logs(log_filter=log_filter, limit=want, offset=len(lines),
                                        sort=LogSort.TIMESTAMP_ASC)
                lines += page
                if len(page) < want:
                    break
        return [FlowLogRecord(id=str(line.id), at=_utc(line.timestamp), level=LEVELS.get(line.level, str(line.level)),
                              message=line.message,
                              task_run_id=None if line.task_run_id is None else str(line.task_run_id))
                for line in lines]

    # --- the client -----------------------------------------------------------------

    def _client(self) -> _Client:
        url = self.api_url()
        if url is None:
            raise BackendUnavailable("no Prefect server: `mlops-lite up` runs one beside the API (none is running "
                                     "here, or it was started without Prefect), and PREFECT_API_URL is not set")
        auth = os.environ.get("PREFECT_API_AUTH_STRING") or prefect_auth(self.settings)
        return _Client(url, auth, self.timeout)


class _Client:
    """Prefect's sync client for one call, its errors as ``BackendUnavailable``."""

    def __init__(self, url: str, auth: str | None, timeout: float) -> None:
        self.url, self.auth, self.timeout = url, auth, timeout
        self._client: Any = None

    def __enter__(self) -> Any:
        from prefect.client.orchestration import SyncPrefectClient

        self._client = SyncPrefectClient(self.url, auth_string=self.auth,
                                         httpx_settings={"timeout": self.timeout})
        try:
            self._client.__enter__()
        except Exception as exc:
            raise _unavailable(self.url, exc) from exc
        return self._client

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._client.__exit__(None, None, None)
        if exc is not None and not isinstance(exc, MlopsLiteError):
            raise _unavailable(self.url, exc) from exc


def _unavailable(url: str, exc: BaseException) -> BackendUnavailable:
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        reason = f"it answered HTTP {exc.response.status_code}"
    elif isinstance(exc, httpx.HTTPError):
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return BackendUnavailable(f"the Prefect server at {url} did not answer: {reason}")


def _uuid(value: str) -> Any:
    from uuid import UUID

    try:
        return UUID(value)
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"flow_run_id must be a UUID, not {value!r}", field="flow_run_id",
                           expected="a flow run id (a UUID)") from exc


def _prefect_time(moment: datetime) -> Any:
    """A time as Prefect's filters take it (naive: UTC)."""
    from prefect.types._datetime import DateTime

    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return DateTime.fromtimestamp(aware.timestamp(), tz=UTC)


def _utc(moment: Any) -> Any:
    """Prefect's datetime (a subclass, in UTC) as a plain one; None stays None."""
    return None if moment is None else datetime.fromtimestamp(moment.timestamp(), tz=UTC)


def _run(run: Any, flow: str) -> FlowRunRecord:
    state_type = getattr(run.state_type, "value", run.state_type)
    return FlowRunRecord(id=str(run.id), name=run.name, flow=flow, state=str(state_type or "UNKNOWN"),
                         state_name=str(run.state_name or state_type or "Unknown"),
                         created=_utc(run.created), started=_utc(run.start_time), ended=_utc(run.end_time),
                         deployment_id=None if run.deployment_id is None else str(run.deployment_id),
                         parameters=dict(run.parameters or {}), tags=tuple(run.tags or ()))

