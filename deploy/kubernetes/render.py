"""Render a kustomization as ``kustomize build`` does, for the features these manifests use.

Neither kustomize nor Helm is needed to read what ``deploy/kubernetes`` makes: this
renders a kustomization folder to its list of documents with the standard library and
PyYAML. It does what kustomize does for these fields of a ``kustomization.yaml``, and
refuses any other (so a new field cannot be silently ignored):

- ``resources``: files (every YAML document in them) and folders (kustomizations of their
  own, rendered first), in order;
- ``patches``: a strategic merge patch (a document; maps merged, lists of named items
  merged by ``name``, ``volumeMounts`` by ``mountPath``, other lists replaced, ``null``
  deletes) or a JSON 6902 patch (a list of ``add``/``replace``/``remove`` operations on
  the ``target``), inline (``patch``) or from a file (``path``);
- ``namespace``: set on every namespaced resource, and on the (Cluster)RoleBinding subjects
  that name a ServiceAccount of the rendering;
- ``labels`` with ``includeSelectors: false``: added to every resource's labels (a
  StatefulSet's volume claim templates too) and, with ``includeTemplates: true``, to its pod
  templates (never to selectors);
- ``images``: ``newName`` and ``newTag`` of every container whose image has that name;
- ``helmCharts``: NOT inflated (that needs Helm and the chart's repository); each entry is
  reported in ``Rendering.skipped_charts`` with the reason.

Transformers run in kustomize's order: patches, namespace, labels, images.

    python deploy/kubernetes/render.py deploy/kubernetes/overlays/small > small.yaml
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KNOWN_FIELDS = frozenset({"apiVersion", "kind", "resources", "patches", "namespace", "labels", "images",
                          "helmCharts"})
CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
                            "CustomResourceDefinition", "PriorityClass", "IngressClass"})
WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"})
MERGE_KEYS = {"volumeMounts": "mountPath", "volumeDevices": "devicePath"}
HELM_REASON = ("not inflated: a helmCharts entry needs Helm and its chart repository "
               "(`kustomize build --enable-helm`), neither reachable offline")


class RenderError(ValueError):
    """A kustomization this renderer cannot render faithfully (names the file and field)."""


@dataclass
class Rendering:
    documents: list[dict[str, Any]] = field(default_factory=list)
    skipped_charts: list[dict[str, Any]] = field(default_factory=list)

    def find(self, kind: str, name: str) -> dict[str, Any]:
        for document in self.documents:
            if document["kind"] == kind and document["metadata"]["name"] == name:
                return document
        raise KeyError(f"no {kind} {name} in the rendering")

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [document for document in self.documents if document["kind"] == kind]


def render(folder: Path) -> Rendering:
    """The documents the kustomization in ``folder`` builds to."""
    folder = Path(folder)
    file = folder / "kustomization.yaml"
    if not file.is_file():
        raise RenderError(f"{folder}: no kustomization.yaml")
    spec = yaml.safe_load(file.read_text()) or {}
    unknown = sorted(set(spec) - KNOWN_FIELDS)
    if unknown:
        raise RenderError(f"{file}: fields {unknown} are not rendered here (supported: {sorted(KNOWN_FIELDS)})")
    result = Rendering()
    for entry in spec.get("resources", []):
        path = folder / entry
        if path.is_dir():
            inner = render(path)
            result.documents.extend(inner.documents)
            result.skipped_charts.extend(inner.skipped_charts)
        else:
            result.documents.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for chart in spec.get("helmCharts", []):
        result.skipped_charts.append({**chart, "kustomization": str(file), "reason": HELM_REASON})
    for patch in spec.get("patches", []):
        _apply_patch(result.documents, patch, folder, file)
    if "namespace" in spec:
        _set_namespace(result.documents, spec["namespace"])
    for labels in spec.get("labels", []):
        _add_labels(result.documents, labels, file)
    for image in spec.get("images", []):
        _set_image(result.documents, image)
    return result


# ------------------------------------------------------------------------------ patches
def _apply_patch(documents: list[dict[str, Any]], entry: dict[str, Any], folder: Path, file: Path) -> None:
    unknown = sorted(set(entry) - {"path", "patch", "target"})
    if unknown:
        raise RenderError(f"{file}: patch fields {unknown} are not rendered here")
    text = (folder / entry["path"]).read_text() if "path" in entry else entry["patch"]
    body = yaml.safe_load(text)
    target = entry.get("target")
    if isinstance(body, list):
        if target is None:
            raise RenderError(f"{file}: a JSON 6902 patch needs a target")
        matched = _targets(documents, target)
        for document in matched:
            for operation in body:
                _json6902(document, operation, file)
    else:
        target = target or {"kind": body["kind"], "name": body["metadata"]["name"]}
        matched = _targets(documents, target)
        for document in matched:
            merged = _merge(document, body)
            document.clear()
            document.update(merged)
    if not matched:
        raise RenderError(f"{file}: patch target {target} matches no resource")


def _targets(documents: list[dict[str, Any]], target: dict[str, Any]) -> list[dict[str, Any]]:
    unknown = sorted(set(target) - {"kind", "name", "group", "version"})
    if unknown:
        raise RenderError(f"patch target fields {unknown} are not rendered here")
    found = []
    for document in documents:
        group, _, version = document["apiVersion"].rpartition("/")
        if (document["kind"] == target.get("kind", document["kind"])
                and document["metadata"]["name"] == target.get("name", document["metadata"]["name"])
                and group == target.get("group", group) and version == target.get("version", version)):
            found.append(document)
    return found


def _merge(base: Any, patch: Any, key: str | None = None) -> Any:
    """Strategic merge of ``patch`` into ``base`` (a copy is returned)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for name, value in patch.items():
            if value is None:
                merged.pop(name, None)
            elif name in merged:
                merged[name] = _merge(merged[name], value, name)
            else:
                merged[name] = copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and key is not None:
        merge_key = MERGE_KEYS.get(key, "name")
        if all(isinstance(item, dict) and merge_key in item for item in [*base, *patch]):
            merged_list = copy.deepcopy(base)
            for item in patch:
                at = next((i for i, old in enumerate(merged_list) if old[merge_key] == item[merge_key]), None)
                if at is None:
                    merged_list.append(copy.deepcopy(item))
                else:
                    merged_list[at] = _merge(merged_list[at], item)
            return merged_list
    return copy.deepcopy(patch)


def _json6902(document: dict[str, Any], operation: dict[str, Any], file: Path) -> None:
    op, path = operation.get("op"), operation.get("path", "")
    if op not in ("add", "replace", "remove"):
        raise RenderError(f"{file}: JSON 6902 operation {op!r} is not rendered here (add, replace, remove)")
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    if not parts:
        raise RenderError(f"{file}: JSON 6902 path {path!r} names no field")
    parent: Any = document
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if op == "add":
            parent.insert(index, copy.deepcopy(operation["value"]))
        elif op == "replace":
            parent[index] = copy.deepcopy(operation["value"])
        else:
            del parent[index]
        return
    if op == "remove" or (op == "replace" and last not in parent):
        if last not in parent:
            raise RenderError(f"{file}: JSON 6902 {op} of {path!r}: no such field")
    if op == "remove":
        del parent[last]
    else:
        parent[last] = copy.deepcopy(operation["value"])


# ------------------------------------------------------------------------- transformers
def _set_namespace(documents: list[dict[str, Any]], namespace: str) -> None:
    accounts = {d["metadata"]["name"] for d in documents if d["kind"] == "ServiceAccount"}
    for document in documents:
        if document["kind"] not in CLUSTER_SCOPED:
            document["metadata"]["namespace"] = namespace
        if document["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            # A subject naming a service account of this rendering follows it.
            for subject in document.get("subjects", []):
                if subject.get("kind") == "ServiceAccount" and subject.get("name") in accounts:
                    subject["namespace"] = namespace


def _add_labels(documents: list[dict[str, Any]], entry: dict[str, Any], file: Path) -> None:
    if entry.get("includeSelectors", False):
        raise RenderError(f"{file}: labels with includeSelectors are not rendered here")
    pairs = entry.get("pairs", {})
    for document in documents:
        document["metadata"].setdefault("labels", {}).update(pairs)
        for claim in document.get("spec", {}).get("volumeClaimTemplates", []) if document["kind"] == "StatefulSet" else []:
            claim.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
        if entry.get("includeTemplates", False):
            for template in _pod_templates(document):
                template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def _pod_templates(document: dict[str, Any]) -> list[dict[str, Any]]:
    spec = document.get("spec", {})
    if document["kind"] in WORKLOADS:
        return [spec["template"]]
    if document["kind"] == "CronJob":
        job = spec["jobTemplate"]
        return [job, job["spec"]["template"]]
    return []


def _pod_specs(document: dict[str, Any]) -> list[dict[str, Any]]:
    if document["kind"] == "Pod":
        return [document["spec"]]
    templates = _pod_templates(document)
    return [templates[-1]["spec"]] if templates else []


def _set_image(documents: list[dict[str, Any]], entry: dict[str, Any]) -> None:
    for document in documents:
        for pod in _pod_specs(document):
            for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
                name, tag = _split_image(container["image"])
                if name != entry["name"]:
                    continue
                name = entry.get("newName", name)
                tag = entry.get("newTag", tag)
                container["image"] = f"{name}:{tag}" if tag else name


def _split_image(image: str) -> tuple[str, str | None]:
    """``registry:5000/name:tag`` -> (``registry:5000/name``, ``tag``)."""
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1:]
    return image, None


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: render.py KUSTOMIZATION_FOLDER", file=sys.stderr)
        return 2
    rendering = render(Path(argv[0]))
    for chart in rendering.skipped_charts:
        print(f"# helm chart {chart['name']} {chart.get('version', '')} from {chart.get('repo', '')}: "
              f"{chart['reason']}", file=sys.stderr)
    print(yaml.safe_dump_all(rendering.documents, sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
