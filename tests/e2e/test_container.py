"""The container image (deploy/Containerfile), built with podman as CI builds it.

No image registry is reachable here, so the base is made from Debian packages with
debootstrap (once per session) and imported; set MLOPS_LITE_TEST_BASE_IMAGE to an image
already in podman's store (e.g. python:3.11-slim) to skip that. Containers cannot run on
these machines (cgroups), so what runs is checked inside the build: the `test` stage
trains a model, serves it on 127.0.0.1 and gets one prediction over HTTP; the image's
configuration and files are checked with `podman image inspect` and `podman image mount`.
Everything lives in a podman store of the test's own (--root/--runroot under a temporary
folder): its images are removed and the folder deleted at the end.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import REPO

BASE_ENV = "MLOPS_LITE_TEST_BASE_IMAGE"
MIRROR = os.environ.get("MLOPS_LITE_DEBIAN_MIRROR", "http://deb.debian.org/debian")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("podman") is None,
                       reason="podman is not installed (apt-get install podman; .ci/run installs it)"),
    pytest.mark.skipif(not os.environ.get(BASE_ENV) and (shutil.which("debootstrap") is None or os.geteuid() != 0),
                       reason=f"debootstrap (as root) makes the base image: apt-get install debootstrap, run as "
                              f"root, or set {BASE_ENV} to a base image in podman's store"),
]


class Podman:
    """podman on a store of its own under ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        conf = os.environ.get("CONTAINERS_CONF") or str(REPO / "deploy" / "container" / "containers.conf")
        self.env = {**os.environ, "CONTAINERS_CONF": conf}
        self.globals = ["--root", str(folder / "storage"), "--runroot", str(folder / "run")]

    def __call__(self, *args: str, timeout: float = 600, input: bytes | None = None,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["podman", *self.globals, *args], env=self.env, input=input, capture_output=True,
                              timeout=timeout, cwd=REPO)
        result = subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(errors="replace"),
                                             done.stderr.decode(errors="replace"))
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args[:2])} failed ({result.returncode}):\n"
                                 f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
        return result


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    folder = tmp_path_factory.mktemp("podman")
    runner = Podman(folder)
    try:
        yield runner
    finally:
        runner("rmi", "--all", "--force", check=False, timeout=300)
        # The overlay driver mounts its folder on itself; unmount what is under ours, deepest first.
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for point in sorted((m for m in mounts if m.startswith(f"{folder}/")), key=len, reverse=True):
            subprocess.run(["umount", point], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def base(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The base image: $MLOPS_LITE_TEST_BASE_IMAGE (copied from podman's own store), else Debian
    bookworm made with debootstrap."""
    rootfs = tmp_path_factory.mktemp("rootfs")
    if os.environ.get(BASE_ENV):
        archive = rootfs / "base.tar"
        subprocess.run(["podman", "save", "-o", str(archive), os.environ[BASE_ENV]], env=podman.env, check=True,
                       capture_output=True, timeout=300)
        podman("load", "-i", str(archive), timeout=300)
        shutil.rmtree(rootfs, ignore_errors=True)
        return os.environ[BASE_ENV]
    try:
        subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
                        "bookworm", str(rootfs), MIRROR], check=True, capture_output=True, timeout=600)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        name = "localhost/mlops-lite-test-base:bookworm"
        imported = subprocess.run(["podman", *podman.globals, "import", "-", name], stdin=tar.stdout,
                                  env=podman.env, capture_output=True, timeout=300)
        tar.stdout.close()
        assert tar.wait() == 0 and imported.returncode == 0, imported.stderr.decode(errors="replace")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return name


@functools.cache
def _revision() -> str:
    """The commit the image is labelled with (read once: commits may land while the test runs)."""
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def _build(podman: Podman, base: str, target: str, tag: str) -> subprocess.CompletedProcess[str]:
    return podman("build", "--isolation=chroot", "--format", "docker", "-f", "deploy/Containerfile",
                  "--secret", "id=ca,src=/etc/ssl/certs/ca-certificates.crt",
                  "--build-arg", f"BASE={base}", "--build-arg", f"REVISION={_revision()}",
                  "--build-arg", "SOURCE=https://git.example.test/mlops-lite.git",
                  "--target", target, "-t", tag, ".", timeout=1200)


@pytest.fixture(scope="module")
def image(podman: Podman, base: str) -> str:
    tag = "localhost/mlops-lite-test:latest"
    _build(podman, base, "final", tag)
    return tag


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "deploy" / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip()] = version.strip()
    return pins


def test_a_model_serves_a_prediction_inside_the_build(podman: Podman, base: str, image: str) -> None:
    """The `test` stage (FROM the runtime image, as its user): no compilers, `mlops-lite --help`,
    then a model trained, served by `mlops-lite serve` on loopback and asked over HTTP."""
    built = _build(podman, base, "test", "localhost/mlops-lite-test:smoke")
    log = built.stdout + built.stderr
    assert "smoke: serve ready on http://127.0.0.1:" in log
    assert "smoke: HEALTHCHECK exit 0: healthy: " in log and "/v1/health: 200" in log
    assert "smoke: one prediction from model loan-default v1.0.0:" in log
    podman("rmi", "localhost/mlops-lite-test:smoke")


def test_image_configuration(podman: Podman, image: str) -> None:
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "mlops-lite"
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.revision"] == _revision()
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.source"] == "https://git.example.test/mlops-lite.git"
    assert config["User"] == "mlops:mlops"
    assert list(config["Volumes"]) == ["/data"]
    assert "MLOPS_LITE_HOME=/data/home" in config["Env"]
    assert config["Entrypoint"] == ["/usr/local/lib/mlops-lite/entrypoint.sh"]
    assert config["Cmd"] == ["up", "--host", "0.0.0.0"]
    # The docker format keeps the HEALTHCHECK (the OCI image format has no field for it).
    assert inspected["ManifestType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert inspected["Healthcheck"]["Test"] == ["CMD", "/opt/mlops-lite/bin/python",
                                                "/usr/local/lib/mlops-lite/healthcheck.py"]


def test_image_holds_exactly_the_lock_and_its_sbom(podman: Podman, image: str) -> None:
    root = Path(podman("image", "mount", image).stdout.strip())
    try:
        venv = root / "opt" / "mlops-lite"
        site = next((venv / "lib").glob("python3.*/site-packages"))
        installed = {}
        for info in site.glob("*.dist-info"):
            fields = dict(line.split(": ", 1) for line in (info / "METADATA").read_text(errors="replace")
                          .split("\n\n", 1)[0].splitlines() if ": " in line)
            installed[fields["Name"].lower().replace("_", "-").replace(".", "-")] = fields["Version"]
        lock = _lock()
        assert installed.pop("mlops-lite") == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
        assert installed == lock  # nothing more, nothing less, at the locked versions (pip and setuptools gone)
        for tool in ("gcc", "cc", "g++", "make", "ld", "cpp"):  # no build tools in the final image
            for folder in ("usr/bin", "usr/local/bin", "bin"):
                assert not (root / folder / tool).exists(), f"/{folder}/{tool} is in the image"
        assert (root / "data").stat().st_uid == 10001
        text = (root / "usr/share/doc/mlops-lite/sbom.cdx.json").read_text()
        sbom = json.loads(text)
        assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.5"
        try:
            from cyclonedx.schema import SchemaVersion
            from cyclonedx.validation.json import JsonStrictValidator
        except ImportError:  # the dev extra's validator; the unit suite says when it is missing
            pass
        else:
            assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(text) is None
        assert sbom["metadata"]["component"]["properties"] == [
            {"name": "org.opencontainers.image.revision", "value": _revision()}]
        purls = {c.get("purl") for c in sbom["components"]}
        missing = [f"{name}=={version}" for name, version in lock.items() if f"pkg:pypi/{name}@{version}" not in purls]
        assert not missing, f"the SBOM lacks {missing}"
        assert any(str(p).startswith("pkg:deb/debian/python3.11@") for p in purls)
    finally:
        podman("image", "unmount", image, check=False)
