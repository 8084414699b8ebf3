"""A CycloneDX 1.5 SBOM (JSON, on stdout) of the image it runs in, read from installed metadata:

- every distribution of the Python environment it runs with (the image's venv): name,
  version, purl ``pkg:pypi/...``, licence (License-Expression, License or the classifiers);
- every installed Debian package of the base (/var/lib/dpkg/status): ``pkg:deb/...``;
- the Python interpreter itself.

Standard library only, so it runs in the final image after pip has gone.
``python sbom.py --version 0.1.0 --revision <git sha> > sbom.cdx.json``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _licenses(dist: metadata.Distribution) -> list[dict[str, Any]]:
    meta = dist.metadata
    if meta.get("License-Expression"):
        return [{"expression": meta["License-Expression"]}]
    classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    if classifiers:
        return [{"license": {"name": name}} for name in classifiers]
    text = (meta.get("License") or "").strip()
    if text and "\n" not in text and len(text) <= 80:
        return [{"license": {"name": text}}]
    return []


def python_components() -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        purl = f"pkg:pypi/{_canonical(name)}@{dist.version}"
        component: dict[str, Any] = {"type": "library", "bom-ref": purl, "name": name, "version": dist.version,
                                     "purl": purl}
        licenses = _licenses(dist)
        if licenses:
            component["licenses"] = licenses
        seen[purl] = component
    return sorted(seen.values(), key=lambda c: c["bom-ref"])


def debian_components(status: Path = Path("/var/lib/dpkg/status")) -> list[dict[str, Any]]:
    if not status.exists():
        return []
    distro = "debian"
    try:
        ids = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
        distro = ids.get("ID", distro).strip('"')
    except OSError:
        pass
    components = []
    for stanza in status.read_text(errors="replace").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line[0].isspace())
        if fields.get("Status") != "install ok installed" or "Package" not in fields:
            continue
        name, version, arch = fields["Package"], fields.get("Version", ""), fields.get("Architecture", "")
        purl = f"pkg:deb/{distro}/{name}@{version}" + (f"?arch={arch}" if arch else "")
        components.append({"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl})
    return sorted(components, key=lambda c: c["bom-ref"])


def sbom(version: str, revision: str) -> dict[str, Any]:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    interpreter = {"type": "application", "bom-ref": "interpreter", "name": platform.python_implementation().lower(),
                   "version": platform.python_version(), "properties": [{"name": "path", "value": sys.executable}]}
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "mlops-lite deploy/container/sbom.py"}]},
            "component": {"type": "container", "bom-ref": "image", "name": "mlops-lite", "version": version,
                          "properties": [{"name": "org.opencontainers.image.revision", "value": revision}]},
        },
        "components": [interpreter, *python_components(), *debian_components()],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="Write the image's CycloneDX SBOM on stdout.")
    parser.add_argument("--version", default="unknown")
    parser.add_argument("--revision", default="unknown")
    args = parser.parse_args()
    json.dump(sbom(args.version, args.revision), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
