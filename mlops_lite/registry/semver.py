"""Semantic versions for models.

Rules: the first version is 1.0.0; a changed input signature bumps major; other
training data bumps minor; anything else bumps patch. An explicit version is
accepted when it is greater than every existing one.
"""

from __future__ import annotations

import re

from mlops_lite.errors import InvalidInput

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


def parse(version: str) -> tuple[int, int, int]:
    match = _SEMVER.match(version)
    if not match:
        raise InvalidInput(f"bad version {version!r}", field="version", expected="MAJOR.MINOR.PATCH, e.g. 1.2.0")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def next_version(latest: str | None, *, signature_changed: bool, data_changed: bool) -> str:
    if latest is None:
        return "1.0.0"
    major, minor, patch = parse(latest)
    if signature_changed:
        return f"{major + 1}.0.0"
    if data_changed:
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"
