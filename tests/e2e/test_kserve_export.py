"""`mlops-lite models export --format kserve` from a real home, in-process and over HTTP,
and the claim behind it: our /v2 and KServe's (Triton's) speak the same protocol, so the
same client works against both. tritonclient, with its defaults (binary tensors), sends
inputs built only from the exported config.pbtxt to our running server, and the answer
matches onnxruntime on the exported model.onnx."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import build_loop, holdout_rows
from tests.unit.test_kserve_export import _validate, model_config_pb2, parse_pbtxt

httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient[http] (the dev extra) is the client")

CLI = str(Path(sys.executable).with_name("mlops-lite"))
MODEL, VERSION, DEPLOYMENT = "loan-default", "1.0.0", "loans"
NUMPY = {"TYPE_FP32": np.float32, "TYPE_FP64": np.float64, "TYPE_INT64": np.int64, "TYPE_INT32": np.int32,
         "TYPE_BOOL": np.bool_, "TYPE_STRING": np.object_}


@dataclasses.dataclass
class Exported:
    home: Path
    url: str
    token: str
    platform: Any
    spec: Any
    local: Path  # the export made by the CLI on the home, in-process
    onnx: bytes  # what the registry serves for the version
    digest: str
    run_id: str | None
    data_commits: tuple[str, ...]


def _cli(*args: str, home: Path, url: str | None = None, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLOPS_LITE_URL", "MLOPS_LITE_TOKEN", "MLOPS_LITE_CONFIG")}
    env["MLOPS_LITE_HOME"] = str(home)
    if url:
        env["MLOPS_LITE_URL"], env["MLOPS_LITE_TOKEN"] = url, token or ""
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    from mlops_lite.config import load_settings
    from mlops_lite.platform import open_local
    from server import create_app
    from server.runner import serve_in_thread

    root = tmp_path_factory.mktemp("kserve")
    home = root / "home"
    platform, token, spec = build_loop(home)
    platform.close()  # type: ignore[attr-defined]
    local = root / "local"
    done = _cli("models", "export", f"{MODEL}@{VERSION}", "--format", "kserve", "--out", str(local),
                "--name", DEPLOYMENT, "--storage-uri", "s3://models/loans/model-repository", home=home)
    assert done.returncode == 0, done.stderr
    assert "kubectl apply" in done.stdout
    platform = open_local(load_settings(home=home))
    try:
        lineage = platform.registry.lineage(MODEL, VERSION)
        onnx = platform.registry.model_bytes(MODEL, VERSION)
        server = serve_in_thread(create_app(platform))
        try:
            yield Exported(home=home, url=server.url, token=token, platform=platform, spec=spec, local=local,
                           onnx=onnx, digest=lineage.version.digest, run_id=lineage.run_id,
                           data_commits=lineage.data_commits)
        finally:
            server.stop()
    finally:
        platform.close()


def _config(out: Path) -> Any:
    return parse_pbtxt((out / "model-repository" / DEPLOYMENT / "config.pbtxt").read_text())


def test_the_export_holds_the_registrys_bytes_and_lineage(exported: Exported) -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML (installed with prefect) reads the manifest")
    model_file = exported.local / "model-repository" / DEPLOYMENT / "1" / "model.onnx"
    data = model_file.read_bytes()
    assert data == exported.onnx and hashlib.sha256(data).hexdigest() == exported.digest
    assert sorted(p.name for p in exported.local.iterdir()) == ["inferenceservice.yaml", "model-repository"]
    config = _config(exported.local)
    assert config.name == DEPLOYMENT and config.platform == "onnxruntime_onnx" and config.max_batch_size == 10_000
    document = yaml.safe_load((exported.local / "inferenceservice.yaml").read_text())
    _validate(document)
    meta = document["metadata"]
    assert meta["name"] == DEPLOYMENT
    assert meta["labels"]["mlops-lite.io/model"] == MODEL and meta["labels"]["mlops-lite.io/model-version"] == VERSION
    annotations = meta["annotations"]
    assert annotations["mlops-lite.io/model-digest"] == f"sha256:{exported.digest}"
    assert exported.run_id and annotations["mlops-lite.io/run"] == exported.run_id
    assert exported.data_commits and annotations["mlops-lite.io/data-commits"] == ",".join(exported.data_commits)
    model = document["spec"]["predictor"]["model"]
    assert model["storageUri"] == "s3://models/loans/model-repository" and model["protocolVersion"] == "v2"
    assert model["runtime"] == "kserve-tritonserver"


def test_the_export_over_http_is_the_same(exported: Exported, tmp_path: Path) -> None:
    """Through the HTTP client (as with a daemon), from a machine with no home of its own."""
    out = tmp_path / "remote"
    done = _cli("models", "export", f"{MODEL}@{VERSION}", "--out", str(out), "--name", DEPLOYMENT,
                "--storage-uri", "s3://models/loans/model-repository", "--json",
                home=tmp_path / "no-home", url=exported.url, token=exported.token)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["digest"] == exported.digest and answer["version"] == VERSION
    for relative in ("model-repository/loans/1/model.onnx", "model-repository/loans/config.pbtxt",
                     "inferenceservice.yaml"):
        assert (out / relative).read_bytes() == (exported.local / relative).read_bytes(), relative
    assert not (tmp_path / "no-home").exists()
    # an alias resolves to its version; the default name and storage URI: the model's own
    # name, a pvc:// placeholder
    exported.platform.registry.set_alias(MODEL, "staging", VERSION, reason="kserve export test")
    default = tmp_path / "default"
    done = _cli("models", "export", f"{MODEL}@staging", "--out", str(default), "--json",
                home=tmp_path / "no-home", url=exported.url, token=exported.token)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["version"] == VERSION and answer["storage_uri"] == f"pvc://models/{MODEL}/model-repository"
    assert (default / "model-repository" / MODEL / "1" / "model.onnx").read_bytes() == exported.onnx


def _inputs_from_config(config: Any, rows: list[dict[str, Any]]) -> tuple[list[Any], dict[str, np.ndarray]]:
    """tritonclient inputs (its defaults: binary) and an onnxruntime feed, from config.pbtxt alone."""
    pb2 = model_config_pb2()
    triton_inputs, feed = [], {}
    for tensor in config.input:
        data_type = pb2.DataType.Name(tensor.data_type)
        shape = [len(rows), *tensor.dims] if config.max_batch_size > 0 else list(tensor.dims)
        values = [row[tensor.name] if data_type != "TYPE_STRING" else str(row[tensor.name]) for row in rows]
        array = np.asarray(values, dtype=NUMPY[data_type]).reshape(shape)
        datatype = data_type.removeprefix("TYPE_").replace("STRING", "BYTES")
        triton_input = httpclient.InferInput(tensor.name, shape, datatype)
        triton_input.set_data_from_numpy(array)
        triton_inputs.append(triton_input)
        model_shape = [len(rows), *tensor.reshape.shape] if tensor.HasField("reshape") else shape
        feed[tensor.name] = array.reshape(model_shape)
    return triton_inputs, feed


def test_the_same_client_works_against_our_v2(exported: Exported) -> None:
    import onnxruntime as ort

    config = _config(exported.local)
    rows = holdout_rows(exported.spec, 25)
    triton_inputs, feed = _inputs_from_config(config, rows)
    assert all(t._get_binary_data() is not None for t in triton_inputs)  # tritonclient's binary default
    # what KServe's Triton would run: the exported file, in onnxruntime
    session = ort.InferenceSession(str(exported.local / "model-repository" / DEPLOYMENT / "1" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed), strict=True))
    client = httpclient.InferenceServerClient(url=exported.url.removeprefix("http://"))
    try:
        headers = {"Authorization": f"Bearer {exported.token}"}
        metadata = client.get_model_metadata(DEPLOYMENT, headers=dict(headers))
        pb2 = model_config_pb2()
        # our metadata and the exported config describe the same tensors
        assert metadata["platform"] == config.platform
        for ours, theirs in ((metadata["inputs"], config.input), (metadata["outputs"], config.output)):
            assert [t["name"] for t in ours] == [t.name for t in theirs]
            for tensor, described in zip(ours, theirs, strict=True):
                assert tensor["datatype"] == pb2.DataType.Name(described.data_type).removeprefix("TYPE_").replace(
                    "STRING", "BYTES")
                model_dims = list(described.reshape.shape) if described.HasField("reshape") else list(described.dims)
                assert tensor["shape"] == [-1, *model_dims]
        result = client.infer(DEPLOYMENT, triton_inputs, headers=dict(headers), request_id="kserve-1")
    finally:
        client.close()
    response = result.get_response()
    assert response["model_name"] == DEPLOYMENT and response["model_version"] == VERSION
    assert [o["name"] for o in response["outputs"]] == [o.name for o in config.output]
    assert result.as_numpy("label").reshape(-1).tolist() == expected["label"].reshape(-1).tolist()
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (len(rows), *config.output[1].dims)
    np.testing.assert_allclose(probabilities, expected["probabilities"], rtol=0, atol=1e-6)
    # and the native /v1 path of the same deployment agrees
    native = exported.platform.deployments.predict(DEPLOYMENT, rows)
    assert list(native.predictions) == expected["label"].reshape(-1).tolist()


def test_bad_input_is_refused_naming_the_field(exported: Exported, tmp_path: Path) -> None:
    remote = {"home": tmp_path / "no-home", "url": exported.url, "token": exported.token}
    out = tmp_path / "out"
    cases = [
        (("models", "export", "nope@1.0.0", "--out", str(out)), "nope"),
        (("models", "export", f"{MODEL}@9.9.9", "--out", str(out)), "9.9.9"),
        (("models", "export", MODEL, "--out", str(out)), "NAME@VERSION"),
        (("models", "export", f"{MODEL}@{VERSION}", "--out", str(out), "--format", "mlflow"), "--format"),
        (("models", "export", f"{MODEL}@{VERSION}", "--out", str(out), "--storage-uri", "/srv/models"),
         "storage_uri"),
        (("models", "export", f"{MODEL}@{VERSION}", "--out", str(out), "--name", "Loans"), "name"),
        (("models", "export", f"{MODEL}@{VERSION}", "--out", str(out), "--cpu", "lots"), "cpu"),
    ]
    for args, named in cases:
        done = _cli(*args, **remote)  # type: ignore[arg-type]
        assert done.returncode == 1, (args, done.stdout)
        assert "error:" in done.stderr and named in done.stderr, (args, done.stderr)
        assert not out.exists(), args
    # an out folder that is not empty: refused, untouched; --force replaces the export
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    done = _cli("models", "export", f"{MODEL}@{VERSION}", "--out", str(out), **remote)  # type: ignore[arg-type]
    assert done.returncode == 1 and "not empty" in done.stderr and "--force" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    done = _cli("models", "export", f"{MODEL}@{VERSION}", "--out", str(out), "--force", **remote)  # type: ignore[arg-type]
    assert done.returncode == 0, done.stderr
    assert (out / "keep.txt").read_text() == "mine"
    assert (out / "model-repository" / MODEL / "1" / "model.onnx").read_bytes() == exported.onnx
