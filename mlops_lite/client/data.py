"""``platform.data`` of a RemotePlatform: the lakeFS backend pointed at the server's
lakeFS-compatible API (/api/v1), with what an mlops-lite server offers beyond lakeFS
over its own routes (server/data.py, /v1): a repository's rules (``config``/``configure``,
``create(config=...)``), ``query`` (run by the server), ``gc`` and ``fsck``. The same
verbs, records and errors as the embedded store.

``LakeFSDataStore`` stays a plain lakeFS client (it works against a real lakeFS server);
the classes here subclass it and its repository handle. The verbs lakeFS calls suffice
for (``Reference.open``, ``commit_record`` and ``log``, ``Branch.import_directory``) are
the lakeFS backend's own, inherited here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import msgspec

from mlops_lite.data.checks import RepositoryConfig, SchemaRule
from mlops_lite.data.context import check_ref_name, check_repository_name
from mlops_lite.data.lakefs_backend import LakeFSDataStore, LakeFSRepository
from mlops_lite.data.lifecycle import FsckReport, GcReport
from mlops_lite.errors import InvalidInput, NotFound
from mlops_lite.records import RepositoryRecord

if TYPE_CHECKING:
    from mlops_lite.api.data import DataAPI
    from mlops_lite.client.remote import RemotePlatform
    from mlops_lite.data.tables import QueryResult
    from mlops_lite.privacy.profile import PrivacyProfile

COMMITS_KEY = b"mlops_lite.commits"
"""The query answer's schema metadata: table name -> the commit it was read at (JSON)."""


class RemoteData(LakeFSDataStore):
    """The data facet over HTTP to an mlops-lite server, with ``token``'s role."""

    def __init__(self, remote: RemotePlatform, token: str | None) -> None:
        tls = remote.tls
        super().__init__(remote.url, token=token,
                         ca_file=str(tls.ca_file) if tls is not None and tls.ca_file is not None else None,
                         cert_file=str(tls.cert_file) if tls is not None and tls.cert_file else None,
                         key_file=str(tls.key_file) if tls is not None and tls.key_file else None,
                         verify=tls.verify(remote.url) if tls is not None else True)
        self._remote = remote
        if remote._credentials is not None:
            self._follow_login()

    def _follow_login(self) -> None:
        """Send the login's current bearer with every request (refreshed as it nears its
        expiry), not the one this facet was made with: the lakeFS SDK reads its access token
        in each call, the HTTP client takes it from a request hook."""
        api = self._client
        call = api.call_api

        def call_api(*args: Any, **kwargs: Any) -> Any:
            api.configuration.access_token = self._remote.bearer()
            return call(*args, **kwargs)  # type: ignore[no-untyped-call]

        api.call_api = call_api  # type: ignore[method-assign]

        def current_bearer(request: httpx.Request) -> None:
            request.headers["Authorization"] = f"Bearer {self._remote.bearer()}"

        self._http.event_hooks["request"].append(current_bearer)

    def repo(self, name: str) -> RemoteRepository:
        return RemoteRepository(self, check_repository_name(name))

    def gc(self, *, retention_days: float = 7.0, dry_run: bool = True, grace_seconds: float = 3600) -> GcReport:
        """The server's garbage collection (role admin); a dry run unless ``dry_run`` is false."""
        body = self._remote.request("POST", "/v1/data/gc", json={
            "retention_days": retention_days, "dry_run": dry_run, "grace_seconds": grace_seconds})
        return msgspec.convert(body, GcReport, strict=False)

    def fsck(self) -> FsckReport:
        """The server's integrity check of every object and commit (role admin)."""
        body = dict(self._remote.request("GET", "/v1/data/fsck"))
        body.pop("clean", None)  # a property of the report, computed again here
        return msgspec.convert(body, FsckReport, strict=False)


class RemoteRepository(LakeFSRepository):
    def __init__(self, data: RemoteData, name: str) -> None:
        super().__init__(data, name)
        self._data = data

    @property
    def _path(self) -> str:
        return f"/v1/data/repositories/{quote(self.name, safe='')}"

    def create(self, *, classification: str | None = None, privacy: PrivacyProfile | None = None,
               default_branch: str = "main", exist_ok: bool = False, config: RepositoryConfig | None = None,
               allow_weaker: bool = False, actor: str | None = None) -> RepositoryRecord:
        """Create the repository with an empty, protected default branch and its
        classification (``POST /v1/data/repositories``); ``config`` sets its rules too
        (checked before anything is created). Without a classification, the server's
        ``default_classification`` applies (the lakeFS API's create; audited as defaulted).
        ``actor`` is accepted for the local signature; the server records this client's token."""
        check_ref_name(default_branch)
        if config is not None:
            config.validate()
        if exist_ok:
            try:
                return self.info()
            except NotFound:
                pass
        profile = privacy or (config.privacy if config is not None else None)
        if classification is None and profile is None:
            super().create(default_branch=default_branch)
        else:
            self._data._remote.request("POST", "/v1/data/repositories", json={
                "name": self.name, "classification": classification,
                "privacy": None if profile is None else profile.to_json(), "default_branch": default_branch,
                "allow_weaker": allow_weaker})
        if config is not None:
            self.configure(protected_branches=config.protected_branches, schemas=config.schemas,
                           pii_patterns=config.pii_patterns, max_object_bytes=config.max_object_bytes)
        return self.info()

    def rotate_anonymization_key(self, *, actor: str | None = None) -> int:
        """The repository's next pseudonymization key version (role admin; audited)."""
        return int(self._data._remote.request("POST", f"{self._path}/anonymization/rotate")["version"])

    def config(self) -> RepositoryConfig:
        return RepositoryConfig.from_json(self._data._remote.request("GET", f"{self._path}/config"))

    def configure(self, *, protected_branches: Sequence[str] | None = None,
                  schemas: Sequence[SchemaRule] | None = None, pii_patterns: Sequence[str] | None = None,
                  max_object_bytes: int | None = None, privacy: PrivacyProfile | None = None,
                  legacy_tokens: bool | None = None, actor: str | None = None) -> RepositoryConfig:
        """Change the repository's rules; what is not given stays as it is (role operator; the
        privacy profile: role admin)."""
        if legacy_tokens is not None:
            raise InvalidInput("legacy_tokens is set where the home is (in-process), not over HTTP",
                               field="legacy_tokens", expected="None")
        if privacy is not None:
            changed = RepositoryConfig.from_json(self._data._remote.request(
                "PUT", f"{self._path}/privacy", json=privacy.to_json()))
            if protected_branches is None and schemas is None and pii_patterns is None and max_object_bytes is None:
                return changed
        body = {"protected_branches": None if protected_branches is None else list(protected_branches),
                "schemas": None if schemas is None else [asdict(s) for s in schemas],
                "pii_patterns": None if pii_patterns is None else list(pii_patterns),
                "max_object_bytes": max_object_bytes}
        return RepositoryConfig.from_json(self._data._remote.request("PUT", f"{self._path}/config", json=body))

    def query(self, sql: str, **tables: tuple[str, str]) -> QueryResult:
        """DuckDB SQL over tables at refs, run by the server: ``query("select ... from loans",
        loans=("main", "loans/*.csv"))``; the result names the commit each table was read at."""
        import pyarrow as pa

        from mlops_lite.data.tables import QueryResult

        raw = self._data._remote.request_bytes("POST", f"{self._path}/query", json={
            "sql": sql, "tables": {name: list(spec) if isinstance(spec, tuple | list) else spec
                                   for name, spec in tables.items()}})
        table = pa.ipc.open_stream(raw).read_all()
        metadata = dict(table.schema.metadata or {})
        commits = json.loads(metadata.pop(COMMITS_KEY, b"{}"))
        return QueryResult(table=table.replace_schema_metadata(metadata or None), commits=dict(commits))


if TYPE_CHECKING:
    def _remote_data_is_the_data_api(data: RemoteData) -> DataAPI:
        """For mypy only: RemoteData conforms to the data facet's Protocol."""
        return data
