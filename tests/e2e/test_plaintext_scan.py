"""Encryption at rest, seen from the disk: a marker string written through every path of
the platform (a data commit of CSV and Parquet, training data, a model's description and
card, run names, tags, params, metrics and artifacts, served predictions, feedback, the
audit events of all of these) is found in no file under the home, in UTF-8, UTF-16 or
base64, and in no file or folder name; yet the platform reads every one of them back.
The same writes on a home made with encryption off put the marker on disk: the scan sees
plaintext where there is plaintext.

Files that are plaintext by design hold no data and are listed here with their reason
(PLAINTEXT_BY_DESIGN); the marker must not be in them either, so they are scanned like
every other file. No flow runs here, so the Prefect database (<home>/prefect) is not made.
"""

from __future__ import annotations

import base64
import io
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_lite.config import load_settings

# Plaintext by design (docs/encryption.md says why): configuration, public material, the
# audit chain's signed checkpoints (hashes, counts and times), and the command log.
PLAINTEXT_BY_DESIGN = {
    "mlops-lite.toml": "the configuration: settings, no data",
    "tls/ca.crt": "a public certificate",
    "tls/server.crt": "a public certificate",
    "audit/public-key.pem": "the audit checkpoints' public key",
    "audit/checkpoints.jsonl": "signed hashes of the audit chain, no event contents",
    "logs/mlops-lite.log": "the command log: names and counts, never data",
}
# Where the prediction log and feedback live (mlops_lite/monitoring/prediction_log.py).
LOG_FOLDERS = ("predictions", "feedback", "errors")


@dataclass(frozen=True)
class Written:
    """What was written through the platform, to read back."""

    home: Path
    marker: str
    data_path: str
    parquet_path: str
    branch: str
    model: str
    version: str
    run_id: str
    request_id: str


def encodings(marker: str) -> dict[str, bytes]:
    """The marker as a file could hold it: UTF-8, UTF-16 (either byte order), and base64
    at each of the three alignments it can start at inside a longer base64 text."""
    raw = marker.encode()
    forms = {"utf-8": raw, "utf-16-le": marker.encode("utf-16-le"), "utf-16-be": marker.encode("utf-16-be")}
    for offset in range(3):
        part = raw[offset:]
        forms[f"base64+{offset}"] = base64.b64encode(part[:len(part) - len(part) % 3])
    return forms


def scan(home: Path, marker: str, *, within: tuple[str, ...] | None = None) -> list[str]:
    """Every place under ``home`` the marker shows: a path naming it, or a file holding
    one of its encodings. ``within``: only these top folders of the home."""
    forms = encodings(marker)
    hits: list[str] = []
    for path in sorted(home.rglob("*")):
        relative = path.relative_to(home).as_posix()
        if within is not None and relative.split("/", 1)[0] not in within:
            continue
        if marker in relative:
            hits.append(f"{relative}: the marker in its name")
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits.extend(f"{relative}: {label}" for label, form in forms.items() if form in data)
    return hits


def files_scanned(home: Path) -> list[str]:
    return [p.relative_to(home).as_posix() for p in home.rglob("*") if p.is_file()]


def training_csv(marker: str) -> bytes:
    """Rows of two numeric features and a region, the marker one of the regions (so the
    model's one-hot encoder holds it as a category), the target following x1."""
    lines = ["x1,x2,region,note,target"]
    for i in range(60):
        region = (marker, "north", "south")[i % 3]
        lines.append(f"{i / 10:.1f},{(i * 7) % 11},{region},{marker if i % 5 == 0 else 'plain'},{int(i >= 30)}")
    return ("\n".join(lines) + "\n").encode()


def parquet_bytes(marker: str) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"who": [marker, "other"], "score": [1.0, 2.0]}), out)
    return out.getvalue()


def write_everywhere(home: Path, marker: str) -> Written:
    """The marker through every path that stores something, on a home ``connect()`` makes
    (encrypted unless the settings say otherwise); the platform is closed at the end, so
    everything queued is written."""
    from mlops_lite import TrainingSpec
    from mlops_lite.platform import open_local

    platform = open_local(load_settings(home=home))
    try:
        repo = platform.data.repo("scan")
        repo.create(classification="internal")
        branch = repo.branch("dev")
        branch.create("main")
        data_path, parquet_path = f"rows/{marker}.csv", f"rows/{marker}.parquet"
        branch.upload(data_path, training_csv(marker))
        branch.upload(parquet_path, parquet_bytes(marker))
        branch.commit(f"rows of {marker}", metadata={"source": marker})

        table = repo.ref("dev").read_table(data_path).table
        spec = TrainingSpec.infer(table, target="target", exclude=("note",), algorithm="logistic_regression")
        trained = platform.training.train("scan", "dev", data_path, spec, run_name=f"train-{marker}")
        version = platform.registry.register_from_run("scan-model", trained.run.id, description=marker)
        platform.registry.set_model_card("scan-model", version.version, {"intended_use": marker})

        with platform.tracking.start_run(f"run-{marker}", tags={"about": marker}) as run:
            run.log_params({marker: marker, "plain": f"value {marker}"})
            run.log_metric(f"m_{marker}", 0.5)
            run.log_artifact(f"{marker}.txt", f"notes on {marker}\n".encode() * 20)
            run_id = run.id

        platform.deployments.deploy("scan", "scan-model", version.version, reason=f"serve {marker}")
        answer = platform.deployments.predict("scan", [{"x1": 1.5, "x2": 3.0, "region": marker}])
        platform.monitoring.flush()
        platform.monitoring.record_feedback("scan", [(answer.request_id, marker)])
        return Written(home, marker, data_path, parquet_path, "dev", "scan-model", version.version, run_id,
                       answer.request_id)
    finally:
        platform.close()


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Written]:
    home = tmp_path_factory.mktemp("scan") / "home"
    written = write_everywhere(home, "mkr" + secrets.token_hex(10))
    yield written


def test_the_home_is_encrypted(encrypted: Written) -> None:
    assert (encrypted.home / "keys" / "keyring.json").exists()
    assert not (encrypted.home / "metadata.duckdb.wal").exists(), "closed: the WAL is checkpointed"


def test_no_file_outside_the_prediction_log_holds_the_marker(encrypted: Written) -> None:
    outside = tuple(p.name for p in encrypted.home.iterdir() if p.name not in LOG_FOLDERS)
    files = files_scanned(encrypted.home)
    for kind in ("objects/data/", "objects/artifacts/", "metadata.duckdb"):
        assert any(f.startswith(kind) for f in files), f"nothing written under {kind}"
    assert scan(encrypted.home, encrypted.marker, within=outside) == []


def test_the_prediction_log_and_feedback_hold_no_plaintext(encrypted: Written) -> None:
    logged = [f for f in files_scanned(encrypted.home) if f.split("/", 1)[0] in ("predictions", "feedback")]
    assert any(f.startswith("predictions/") for f in logged) and any(f.startswith("feedback/") for f in logged)
    assert scan(encrypted.home, encrypted.marker, within=LOG_FOLDERS) == []


def test_plaintext_by_design_files_hold_no_marker(encrypted: Written) -> None:
    present = [name for name in PLAINTEXT_BY_DESIGN if (encrypted.home / name).is_file()]
    assert "mlops-lite.toml" in present or not (encrypted.home / "mlops-lite.toml").exists()
    for name in present:
        assert encrypted.marker.encode() not in (encrypted.home / name).read_bytes(), name


def test_the_platform_reads_the_marker_back(encrypted: Written) -> None:
    """The scan is not vacuous: every write happened, and decrypts to the marker."""
    from mlops_lite.platform import open_local

    marker = encrypted.marker
    with open_local(load_settings(home=encrypted.home)) as platform:
        ref = platform.data.repo("scan").ref(encrypted.branch)
        assert marker.encode() in ref.read_bytes(encrypted.data_path)
        assert ref.read_table(encrypted.parquet_path).table.column("who").to_pylist()[0] == marker
        commit = ref.commit_record()
        assert marker in commit.message and dict(commit.metadata)["source"] == marker

        model = next(m for m in platform.registry.list_models() if m.name == encrypted.model)
        assert model.description == marker
        assert platform.registry.model_card(encrypted.model, encrypted.version)["intended_use"] == marker
        assert marker.encode() in platform.registry.model_bytes(encrypted.model, encrypted.version)  # the one-hot

        run = platform.tracking.get_run(encrypted.run_id)
        assert run.params[marker] == marker and f"m_{marker}" in run.metrics and run.tags["about"] == marker
        assert platform.tracking.read_artifact(encrypted.run_id, f"{marker}.txt").startswith(
            f"notes on {marker}".encode())

        audited = {e.action for e in platform.audit.events(limit=500) if marker in _text(e)}
        assert {"run.start", "model.card.set", "deployment.deploy"} <= audited, audited

        logged = platform.monitoring.query(
            f"select features from predictions where request_id = '{encrypted.request_id}'")
        assert marker in str(logged.column("features").to_pylist())
        labels = platform.monitoring.query(
            f"select label from feedback where request_id = '{encrypted.request_id}'")
        assert labels.column("label").to_pylist() == [marker]


def _text(event: Any) -> str:
    return f"{event.object} {event.before} {event.after}"


def test_the_scan_finds_the_marker_on_a_plaintext_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mlops-lite init --no-encryption`, then the same writes: the marker is on disk, in
    the objects, the database and the prediction log, so the scan sees what is there."""
    from typer.testing import CliRunner

    from mlops_lite.cli import app

    home = tmp_path / "home"
    monkeypatch.setenv("MLOPS_LITE_HOME", str(home))
    made = CliRunner().invoke(app, ["init", "--no-encryption"])
    assert made.exit_code == 0, made.output
    marker = "mkr" + secrets.token_hex(10)
    write_everywhere(home, marker)
    assert not (home / "keys" / "keyring.json").exists()
    hits = scan(home, marker)
    assert any(hit.startswith("objects/") for hit in hits), hits
    assert any(hit.startswith("metadata.duckdb") for hit in hits), hits
    assert any(hit.startswith("predictions/") for hit in hits), hits


def test_what_the_encrypted_metadata_database_spills_is_encrypted(tmp_path: Path) -> None:
    """DuckDB writes temporary files for queries larger than memory; on an encrypted
    database they are encrypted too."""
    from sqlalchemy import text

    from mlops_lite.metadata.store import MetadataStore

    store = MetadataStore(f"duckdb:///{tmp_path / 'm.duckdb'}",
                          encryption_key=base64.b64encode(secrets.token_bytes(32)).decode())
    try:
        with store.engine.connect() as connection:
            assert connection.execute(text("select current_setting('temp_file_encryption')")).scalar() is True
    finally:
        store.close()
