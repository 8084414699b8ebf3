"""The image's smoke check, run inside its build (deploy/Containerfile, stage `test`).

In a home of its own under a temporary folder: `mlops-lite init`; the bundled loan sample
ingested, a model trained, registered and deployed as `loans` through the Python API;
then `mlops-lite serve` on 127.0.0.1 (one process over the local stores) is asked, over
HTTP, for readiness (/v2/health/ready), by the image's HEALTHCHECK script (/v1/health),
and for one prediction (/v1/deployments/loans/predict). Everything it starts is stopped
and the folder removed. Exit 0 when all of that works; it raises otherwise.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pyarrow.csv as pacsv

HEALTHCHECK = Path("/usr/local/lib/mlops-lite/healthcheck.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_home(home: Path) -> tuple[str, dict[str, object]]:
    """A home with `loans` deployed; the admin token and one held-out row of features."""
    from mlops_lite import TrainingSpec
    from mlops_lite.config import load_settings
    from mlops_lite.platform import open_local
    from mlops_lite.samples import LOANS, path

    subprocess.run(["mlops-lite", "init"], check=True, stdout=subprocess.DEVNULL)  # its output shows the token
    settings = load_settings(home=home)
    token = settings.token_file.read_text().strip()
    platform = open_local(settings)
    try:
        platform.data.repo("loans").create(classification="internal", exist_ok=True)
        platform.data.ingest("loans", path(LOANS.train), "loans/train.csv")
        table = platform.data.repo("loans").ref("main").read_table("loans/train.csv").table
        spec = TrainingSpec.infer(table, target=LOANS.target, exclude=LOANS.excluded, sensitive="gender",
                                  algorithm="logistic_regression")
        result = platform.training.train("loans", "main", "loans/train.csv", spec)
        version = platform.registry.register_from_run("loan-default", result.run.id)
        platform.deployments.deploy("loans", version.model, version.version)
    finally:
        platform.close()
    row = pacsv.read_csv(path(LOANS.holdout)).to_pylist()[0]
    return token, {name: row[name] for name in [*spec.numeric, *spec.categorical]}


def main() -> int:
    folder = Path(tempfile.mkdtemp(prefix="mlops-lite-smoke-"))
    home = folder / "home"
    os.environ["MLOPS_LITE_HOME"] = str(home)
    server: subprocess.Popen[bytes] | None = None
    try:
        started = time.monotonic()
        token, features = build_home(home)
        print(f"smoke: home made, model trained and deployed in {time.monotonic() - started:.1f} s", flush=True)
        port = _free_port()
        log = (folder / "serve.log").open("wb")
        server = subprocess.Popen(["mlops-lite", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                  stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                raise SystemExit(f"smoke: serve exited with {server.returncode}:\n"
                                 + (folder / "serve.log").read_text(errors="replace"))
            try:
                if httpx.get(f"{base}/v2/health/ready", headers=headers, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("smoke: serve was not ready in 90 s:\n"
                                 + (folder / "serve.log").read_text(errors="replace"))
            time.sleep(0.5)
        print(f"smoke: serve ready on {base} (/v2/health/ready 200)", flush=True)
        check = subprocess.run([sys.executable, str(HEALTHCHECK)], capture_output=True, text=True,
                               env={**os.environ, "MLOPS_LITE_HEALTH_URL": f"{base}/v1/health",
                                    "MLOPS_LITE_HEALTH_TOKEN": token})
        print(f"smoke: HEALTHCHECK exit {check.returncode}: {check.stdout.strip()}", flush=True)
        assert check.returncode == 0, check.stdout + check.stderr
        response = httpx.post(f"{base}/v1/deployments/loans/predict", headers=headers,
                              json={"instances": [features]}, timeout=30)
        assert response.status_code == 200, (response.status_code, response.text)
        answer = response.json()
        assert answer["deployment"] == "loans" and len(answer["predictions"]) == 1, answer
        assert len(answer["probabilities"][0]) == len(answer["classes"]) >= 2, answer
        print(f"smoke: one prediction from model {answer['model']} v{answer['version']}: "
              f"{answer['predictions'][0]!r} (probabilities {answer['probabilities'][0]})", flush=True)
        return 0
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
