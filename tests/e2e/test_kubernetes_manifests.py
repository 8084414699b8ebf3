"""deploy/kubernetes: rendered as kustomize renders it, validated against the Kubernetes
schemas (kubernetes-validate, strict: an unknown field is an error), and the topology
checked: selectors, Services, the autoscaler, probes, non-root pods, Secrets that exist,
and NetworkPolicies that let through what must talk and nothing else."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33.0"  # the API the manifests are written for
TARGETS = ["base", "lakefs", "overlays/small", "overlays/production"]
OVERLAYS = ["overlays/small", "overlays/production"]
# The pods of the lakeFS chart (its selector labels) and of the flow-run Jobs (their template).
LAKEFS_POD = {"app": "lakefs", "app.kubernetes.io/name": "lakefs", "app.kubernetes.io/instance": "lakefs"}
KUBE_DNS = ({"kubernetes.io/metadata.name": "kube-system"}, {"k8s-app": "kube-dns"})


def _load_renderer() -> Any:
    spec = importlib.util.spec_from_file_location("kustomize_render", KUBERNETES / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


render = _load_renderer()


def validate(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def secret_templates() -> dict[str, dict[str, Any]]:
    documents = yaml.safe_load_all((KUBERNETES / "secrets" / "templates.yaml").read_text())
    return {d["metadata"]["name"]: d for d in documents if d}


def job_template(rendering: Any) -> dict[str, Any]:
    """The work pool's base job template as the worker hands it to Prefect."""
    config_map = rendering.find("ConfigMap", "mlops-lite-worker-job-template")
    worker = rendering.find("Deployment", "mlops-lite-worker")
    env = {e["name"]: e.get("value") for e in worker["spec"]["template"]["spec"]["containers"][0]["env"]}
    text = config_map["data"]["base-job-template.json"]
    text = text.replace("__IMAGE__", env["FLOW_RUN_IMAGE"]).replace("__NAMESPACE__", worker["metadata"]["namespace"])
    return json.loads(text)


def flow_run_job(rendering: Any) -> dict[str, Any]:
    """The Job a flow run becomes: Prefect's own templating over the pool's variables."""
    from prefect.utilities.templating import apply_values

    template = job_template(rendering)
    values = {name: spec["default"] for name, spec in template["variables"]["properties"].items() if "default" in spec}
    values.update(command="prefect flow-run execute", env={"PREFECT__FLOW_RUN_ID": "0"},
                  labels={"prefect.io/flow-run-id": "0"}, name="retrain-release-abc")
    manifest = apply_values(template["job_configuration"], values)["job_manifest"]
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["args"] = container["args"].split()  # what prefect-kubernetes does with a string command
    return as_applied(manifest)


def as_applied(job: dict[str, Any]) -> dict[str, Any]:
    """The Job as the API server keeps it. prefect-kubernetes refuses a template whose pod
    spec lacks ``parallelism`` and ``completions`` (fields of a Job, not of a pod), which the
    API server drops with a warning; nothing else is removed before strict validation."""
    pod = job["spec"]["template"]["spec"]
    assert (pod.pop("parallelism"), pod.pop("completions")) == (1, 1)
    return job


def pod_specs(rendering: Any) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """(name, pod spec, pod labels) of every workload, the flow-run Job's included."""
    found = []
    for document in rendering.documents:
        if document["kind"] in ("Deployment", "StatefulSet"):
            template = document["spec"]["template"]
            found.append((document["metadata"]["name"], template["spec"], template["metadata"]["labels"]))
    if any(d["kind"] == "ConfigMap" and d["metadata"]["name"] == "mlops-lite-worker-job-template"
           for d in rendering.documents):
        template = flow_run_job(rendering)["spec"]["template"]
        found.append(("flow-run", template["spec"], template["metadata"]["labels"]))
    return found


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) selects ``labels``."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[operator]
        if not ok:
            return False
    return True


# ------------------------------------------------------------------------ render + validate
@pytest.mark.parametrize("target", TARGETS)
def test_every_document_validates_against_the_kubernetes_schemas(target: str) -> None:
    rendering = render.render(KUBERNETES / target)
    assert rendering.documents
    for document in rendering.documents:
        validate(document)
        assert document["metadata"]["namespace"] == "mlops-lite"
        assert document["metadata"]["labels"]["app.kubernetes.io/part-of"] == "mlops-lite"
    if target != "lakefs":
        validate(flow_run_job(rendering))


def test_secret_templates_validate_and_hold_no_value() -> None:
    templates = secret_templates()
    assert templates
    for secret in templates.values():
        validate(secret)
        assert all(value == "" for value in secret["stringData"].values()), secret["metadata"]["name"]


def test_the_validator_reports_a_wrong_field_type_and_an_unknown_field() -> None:
    serve = render.render(KUBERNETES / "base").find("Deployment", "mlops-lite-serve")
    validate(serve)
    typo = json.loads(json.dumps(serve))
    typo["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError) as wrong_type:
        validate(typo)
    assert "replicas" in str(wrong_type.value) and "'two'" in str(wrong_type.value)
    misspelt = json.loads(json.dumps(serve))
    container = misspelt["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        validate(misspelt)


@pytest.mark.parametrize("target", TARGETS)
def test_the_renderer_builds_what_kustomize_builds(target: str, tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (whose `kubectl kustomize` is kustomize) is not installed")
    # Helm charts aside (neither side inflates them offline), both must build the same documents.
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    for file in copy.rglob("kustomization.yaml"):
        spec = yaml.safe_load(file.read_text())
        spec.pop("helmCharts", None)
        file.write_text(yaml.safe_dump(spec))
    built = subprocess.run([kubectl, "kustomize", str(copy / target)], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    theirs = sorted((d for d in yaml.safe_load_all(built.stdout) if d), key=lambda d: (d["kind"], d["metadata"]["name"]))
    ours = sorted(render.render(KUBERNETES / target).documents, key=lambda d: (d["kind"], d["metadata"]["name"]))
    assert ours == theirs


def test_the_lakefs_chart_is_a_helm_dependency_not_inflated_offline() -> None:
    rendering = render.render(KUBERNETES / "overlays" / "production")
    [chart] = rendering.skipped_charts
    assert (chart["name"], chart["repo"], chart["releaseName"]) == ("lakefs", "https://charts.lakefs.io", "lakefs")
    assert chart["version"].count(".") == 2, "the chart's version is pinned"
    assert "--enable-helm" in chart["reason"]
    values = chart["valuesInline"]  # what the chart's pod gets, read before it is inflated
    assert values["podSecurityContext"]["runAsNonRoot"] is True and values["podSecurityContext"]["runAsUser"] != 0
    assert values["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert set(values["resources"]["requests"]) == set(values["resources"]["limits"]) == {"cpu", "memory"}
    assert values["existingSecret"] == "lakefs-server" and "secrets" not in values  # no value in the manifests
    pytest.skip("the lakeFS chart's expansion is not rendered: it needs helm and https://charts.lakefs.io, "
                "neither reachable here (`kustomize build --enable-helm` renders it)")


def test_the_renderer_refuses_what_it_does_not_render(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nconfigMapGenerator:\n  - name: x\n")
    with pytest.raises(render.RenderError, match="configMapGenerator"):
        render.render(tmp_path)
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [cm.yaml]\npatches:\n  - target: {kind: ConfigMap, name: b}\n"
        "    patch: '[{op: add, path: /data, value: {}}]'\n")
    with pytest.raises(render.RenderError, match="matches no resource"):
        render.render(tmp_path)


# ---------------------------------------------------------------------------------- topology
@pytest.mark.parametrize("target", OVERLAYS)
def test_selectors_services_and_the_autoscaler_fit_together(target: str) -> None:
    rendering = render.render(KUBERNETES / target)
    templates = []
    for document in rendering.of_kind("Deployment") + rendering.of_kind("StatefulSet"):
        labels = document["spec"]["template"]["metadata"]["labels"]
        assert selects(document["spec"]["selector"], labels), document["metadata"]["name"]
        templates.append(labels)
    for service in rendering.of_kind("Service"):
        assert any(selects({"matchLabels": service["spec"]["selector"]}, labels) for labels in templates), \
            f"Service {service['metadata']['name']} selects no pod"
    up = rendering.find("Deployment", "mlops-lite-up")
    assert up["spec"]["replicas"] == 1 and up["spec"]["strategy"]["type"] == "Recreate"
    [hpa] = rendering.of_kind("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target_ref = hpa["spec"]["scaleTargetRef"]
    assert (target_ref["kind"], target_ref["name"]) == ("Deployment", "mlops-lite-serve")
    rendering.find("Deployment", "mlops-lite-serve")
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    for pdb in rendering.of_kind("PodDisruptionBudget"):
        assert any(selects(pdb["spec"]["selector"], labels) for labels in templates)


@pytest.mark.parametrize("target", OVERLAYS)
def test_probes_ask_the_real_health_routes(target: str) -> None:
    from server.oip import server_live, server_ready  # the routes the probes ask, as server/ declares them

    assert (server_ready.paths, server_live.paths) == ({"/health/ready"}, {"/health/live"})
    rendering = render.render(KUBERNETES / target)
    serve = rendering.find("Deployment", "mlops-lite-serve")["spec"]["template"]["spec"]["containers"][0]
    assert "MLOPS_LITE_HEALTH_URL=https://127.0.0.1:8080/v2/health/ready" in serve["readinessProbe"]["exec"]["command"]
    assert "MLOPS_LITE_HEALTH_URL=https://127.0.0.1:8080/v2/health/live" in serve["livenessProbe"]["exec"]["command"]
    assert "/usr/local/lib/mlops-lite/healthcheck.py" in serve["readinessProbe"]["exec"]["command"]
    assert (ROOT / "deploy" / "container" / "healthcheck.py").exists()
    up = rendering.find("Deployment", "mlops-lite-up")["spec"]["template"]["spec"]["containers"][0]
    assert up["livenessProbe"]["httpGet"]["path"] == "/api/v1/healthcheck"
    access = (ROOT / "docs" / "access.md").read_text()
    assert "| GET | `/api/v1/healthcheck` | none (public)" in access  # kubelet sends no token
    for name, spec, _ in pod_specs(rendering):
        for container in spec["containers"]:
            if name != "flow-run":
                assert "livenessProbe" in container, f"{name}/{container['name']} has no liveness probe"


@pytest.mark.parametrize("target", OVERLAYS)
def test_every_container_runs_as_non_root_with_limits(target: str) -> None:
    for name, spec, _ in pod_specs(render.render(KUBERNETES / target)):
        pod = spec.get("securityContext", {})
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            where = f"{name}/{container['name']}"
            context = {**pod, **container.get("securityContext", {})}
            assert context.get("runAsNonRoot") is True, where
            assert context.get("runAsUser", 1) != 0, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            resources = container["resources"]
            assert set(resources["requests"]) >= {"cpu", "memory"} and set(resources["limits"]) >= {"cpu", "memory"}, where


def _secret_references(value: Any) -> list[tuple[str, str | None]]:
    """Every (secret, key) a manifest names: secretKeyRef, envFrom secretRef, secret volumes."""
    found: list[tuple[str, str | None]] = []
    if isinstance(value, dict):
        if "secretKeyRef" in value:
            found.append((value["secretKeyRef"]["name"], value["secretKeyRef"]["key"]))
        if "secretRef" in value:
            found.append((value["secretRef"]["name"], None))
        if isinstance(value.get("secret"), dict) and "secretName" in value["secret"]:
            keys = [item["key"] for item in value["secret"].get("items", [])] or [None]
            found.extend((value["secret"]["secretName"], key) for key in keys)
        for item in value.values():
            found.extend(_secret_references(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_secret_references(item))
    return found


@pytest.mark.parametrize("target", OVERLAYS)
def test_every_secret_named_is_a_documented_secret_with_that_key(target: str) -> None:
    rendering = render.render(KUBERNETES / target)
    templates = secret_templates()
    references = _secret_references(rendering.documents) + _secret_references(flow_run_job(rendering))
    worker_env = rendering.find("Deployment", "mlops-lite-worker")["spec"]["template"]["spec"]["containers"][0]["env"]
    prefect_secret = {e["name"]: e.get("value") for e in worker_env}
    references.append((prefect_secret["PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_AUTH_STRING_SECRET_NAME"],
                       prefect_secret["PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_AUTH_STRING_SECRET_KEY"]))
    for chart in rendering.skipped_charts:
        values = chart["valuesInline"]
        references.extend((values["existingSecret"], key) for key in values["secretKeys"].values() if key)
        references.extend(_secret_references(values))
    assert references
    for name, key in references:
        assert name in templates, f"Secret {name} is named but not in secrets/templates.yaml"
        if key is not None:
            assert key in templates[name]["stringData"], f"Secret {name} has no key {key}"
    section = (ROOT / "docs" / "deploy.md").read_text().split("## Kubernetes", 1)[1]
    for name in templates:
        assert name in {n for n, _ in references}, f"secrets/templates.yaml holds {name}, which nothing reads"
        assert f"create secret generic {name} " in section, \
            f"docs/deploy.md does not say how to make {name}"


@pytest.mark.parametrize("target", OVERLAYS)
def test_flow_runs_use_the_workers_image(target: str) -> None:
    rendering = render.render(KUBERNETES / target)
    worker = rendering.find("Deployment", "mlops-lite-worker")["spec"]["template"]["spec"]["containers"][0]
    job = flow_run_job(rendering)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == worker["image"]
    assert job["metadata"]["namespace"] == "mlops-lite"
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "mlops-lite-flow-run"
    rendering.find("ServiceAccount", "mlops-lite-flow-run")


def test_prefect_kubernetes_builds_the_flow_run_job_from_the_template() -> None:
    worker = pytest.importorskip("prefect_kubernetes.worker", reason="prefect-kubernetes (the worker the image "
                                 "runs) is not installed in this environment")
    import asyncio
    import uuid

    from prefect.client.schemas.objects import FlowRun

    rendering = render.render(KUBERNETES / "overlays" / "production")

    async def build() -> Any:
        from prefect.client.orchestration import PrefectClient

        # A client nothing answers: the template names no Prefect block or variable, so none
        # is asked for (without one, Prefect would start a server of its own for the call).
        configuration = await worker.KubernetesWorkerJobConfiguration.from_template_and_values(
            job_template(rendering), {"cpu_limit": "3"}, client=PrefectClient("http://127.0.0.1:9/api"))
        configuration.prepare_for_flow_run(FlowRun(flow_id=uuid.uuid4(), name="calm-otter"))
        return configuration

    configuration = asyncio.run(build())
    job = configuration.job_manifest
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] + container["args"] == ["/usr/bin/env", "prefect", "flow-run", "execute"]
    assert container["resources"]["limits"]["cpu"] == "3"
    env = {e["name"]: e for e in container["env"]}
    assert env["MLOPS_LITE_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "mlops-lite-tokens", "key": "worker"}
    assert "PREFECT__FLOW_RUN_ID" in env
    assert configuration.namespace == job["metadata"]["namespace"] == "mlops-lite"
    validate(as_applied(job))


def test_the_worker_may_run_jobs_and_nothing_cluster_wide() -> None:
    rendering = render.render(KUBERNETES / "overlays" / "production")
    assert not rendering.of_kind("ClusterRole") and not rendering.of_kind("ClusterRoleBinding")
    role = rendering.find("Role", "mlops-lite-worker")
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert {("batch", "jobs", "create"), ("batch", "jobs", "delete"), ("", "pods", "watch"),
            ("", "pods/log", "get")} <= granted
    assert not any(resource in ("secrets", "*") or verb == "*" for _, resource, verb in granted)
    binding = rendering.find("RoleBinding", "mlops-lite-worker")
    assert binding["roleRef"]["name"] == "mlops-lite-worker"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "mlops-lite-worker", "namespace": "mlops-lite"}]
    worker = rendering.find("Deployment", "mlops-lite-worker")["spec"]["template"]["spec"]
    assert worker["serviceAccountName"] == "mlops-lite-worker"
    for name, spec, _ in pod_specs(rendering):
        if name != "mlops-lite-worker":
            assert spec.get("automountServiceAccountToken") is False, f"{name} mounts an API token"


# ------------------------------------------------------------------------- network policies
NAMESPACE = {"kubernetes.io/metadata.name": "mlops-lite"}


def _peer_matches(peer: dict[str, Any], namespace: dict[str, str], pod: dict[str, str]) -> bool:
    if "ipBlock" in peer:
        return False  # pod addresses are private: every ipBlock here leaves them out
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], namespace):
            return False
    elif namespace != NAMESPACE:
        return False
    return selects(peer.get("podSelector", {}), pod)


def _port_matches(rule: dict[str, Any], port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    return not ports or any(p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports)


def _allowed(policies: list[dict[str, Any]], direction: str, pod: dict[str, str], peer_namespace: dict[str, str],
             peer: dict[str, str], port: int, protocol: str) -> bool:
    """Kubernetes' rule: isolated in ``direction`` once a policy selects the pod for it; then
    allowed when some such policy has a rule matching the peer and port."""
    key, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [p for p in policies if direction in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], pod)]
    if not selecting:
        return True
    return any(_port_matches(rule, port, protocol) and
               (peers not in rule or any(_peer_matches(x, peer_namespace, peer) for x in rule[peers]))
               for policy in selecting for rule in policy["spec"].get(key, []))


def talks(policies: list[dict[str, Any]], source: dict[str, str], target: dict[str, str], port: int) -> bool:
    return (_allowed(policies, "Egress", source, NAMESPACE, target, port, "TCP")
            and _allowed(policies, "Ingress", target, NAMESPACE, source, port, "TCP"))


@pytest.mark.parametrize("target", OVERLAYS)
def test_network_policies_let_through_what_must_talk_and_nothing_else(target: str) -> None:
    rendering = render.render(KUBERNETES / target)
    policies = rendering.of_kind("NetworkPolicy")
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    assert deny, "no default-deny NetworkPolicy"
    pods = {name: labels for name, _, labels in pod_specs(rendering)}
    pods["lakefs"] = LAKEFS_POD
    up, serve, worker, flow_run = (pods[n] for n in ("mlops-lite-up", "mlops-lite-serve", "mlops-lite-worker", "flow-run"))
    postgres, lakefs = pods["mlops-lite-postgres"], pods["lakefs"]
    for name, labels in pods.items():  # each component has a policy of its own beside the blanket ones
        assert any(p["spec"]["podSelector"] != {} and selects(p["spec"]["podSelector"], labels) for p in policies), name
        assert _allowed(policies, "Egress", labels, KUBE_DNS[0], KUBE_DNS[1], 53, "UDP"), f"{name} cannot resolve names"
        assert not _allowed(policies, "Egress", labels, {"kubernetes.io/metadata.name": "other"}, {}, 5432, "TCP")
    must = [(serve, up, 8000), (flow_run, up, 8000), (flow_run, up, 4200), (worker, up, 4200),
            (up, postgres, 5432), (up, lakefs, 8000), (lakefs, postgres, 5432)]
    for source, destination, port in must:
        assert talks(policies, source, destination, port), f"{source} cannot reach {destination}:{port}"
    never = [(serve, postgres, 5432), (serve, lakefs, 8000), (serve, up, 4200), (flow_run, postgres, 5432),
             (flow_run, lakefs, 8000), (worker, postgres, 5432), (worker, up, 8000), (worker, lakefs, 8000),
             (lakefs, up, 8000), (postgres, up, 8000), (up, serve, 8080), (flow_run, serve, 8080)]
    for source, destination, port in never:  # each side refuses on its own
        assert not _allowed(policies, "Egress", source, NAMESPACE, destination, port, "TCP"), \
            f"{source} may send to {destination}:{port}"
        assert not _allowed(policies, "Ingress", destination, NAMESPACE, source, port, "TCP"), \
            f"{destination}:{port} accepts {source}"
    ingress = {"kubernetes.io/metadata.name": "ingress-nginx"}
    assert _allowed(policies, "Ingress", serve, ingress, {}, 8080, "TCP")
    assert _allowed(policies, "Ingress", up, ingress, {}, 8000, "TCP")
    assert not _allowed(policies, "Ingress", postgres, ingress, {}, 5432, "TCP")
    assert not _allowed(policies, "Ingress", up, ingress, {}, 4200, "TCP")


# ------------------------------------------------------------------ a replica's view of the home
def test_a_replica_serves_from_only_the_folders_its_pod_mounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The serve pod mounts five folders of the home (subPath), not the home: a real
    replica over exactly those (links here, to a real control plane's home) loads the
    model, answers, and writes its prediction log where the control plane reads it."""
    import httpx

    from server.app import create_app
    from server.runner import serve_in_thread
    from server.serving import ServingPlatform, build_serving_app
    from tests.conftest import build_loop, holdout_rows

    rendering = render.render(KUBERNETES / "overlays" / "production")
    pod = rendering.find("Deployment", "mlops-lite-serve")["spec"]["template"]["spec"]
    [serve] = pod["containers"]
    env = {e["name"]: e.get("value") for e in serve["env"]}
    mounts = [m for m in serve["volumeMounts"] if m["name"] == "home"]
    assert all(m["mountPath"] == f"/data/{m['subPath']}" for m in mounts)
    folders = {m["subPath"].removeprefix("home/"): m.get("readOnly", False) for m in mounts}
    assert folders == {"objects/artifacts": True, "keys": True, "predictions": False, "feedback": False,
                       "errors": False}
    [init] = pod["initContainers"]
    made = {part.removeprefix("/data/home/") for part in init["args"][0].split() if part.startswith("/data/home/")}
    assert made == set(folders), "the init container makes every folder the replica mounts"

    platform, _, spec = build_loop(tmp_path / "home")
    home = platform.settings.home
    for folder in made:  # what the init container does
        (home / folder).mkdir(mode=0o700, parents=True, exist_ok=True)
    view = tmp_path / "replica" / "home"
    for folder in folders:
        (view / folder).parent.mkdir(parents=True, exist_ok=True)
        (view / folder).symlink_to(home / folder, target_is_directory=True)
    control = serve_in_thread(create_app(platform))
    try:
        _, replica_token = platform.tokens.create("replica@k8s", "predictor", service="replica")
        _, caller = platform.tokens.create("app", "predictor")
        monkeypatch.setenv("MLOPS_LITE_HOME", str(view))
        monkeypatch.setenv("MLOPS_LITE_ENCRYPTION", env["MLOPS_LITE_ENCRYPTION"])
        replica = serve_in_thread(build_serving_app(ServingPlatform(control.url, replica_token, poll_s=0.2)))
        try:
            rows = holdout_rows(spec, 3)
            deadline = time.monotonic() + 30
            while True:
                answer = httpx.post(f"{replica.url}/v1/deployments/loans/predict", json={"instances": rows},
                                    headers={"Authorization": f"Bearer {caller}"}, timeout=10)
                if answer.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert answer.status_code == 200, answer.text
            assert len(answer.json()["predictions"]) == 3
        finally:
            replica.stop()
    finally:
        control.stop()
        platform.close()
    assert sorted(p.name for p in view.rglob("*") if p.parent == view) == ["errors", "feedback", "keys", "objects",
                                                                         "predictions"]
    assert any(f.is_file() and f.stat().st_size for f in (home / "predictions").rglob("*")), "no prediction logged"


# ------------------------------------------------------------- the pods' commands, run here
REPO_IMAGE_PATHS = {  # where the image keeps what these files are, in this checkout
    "/opt/mlops-lite/bin/python": sys.executable,
    "/usr/local/lib/mlops-lite/healthcheck.py": str(ROOT / "deploy" / "container" / "healthcheck.py"),
    "/usr/local/lib/mlops-lite/entrypoint.sh": str(ROOT / "deploy" / "container" / "entrypoint.sh"),
}


class PodHere:
    """A pod spec run as processes on this host: each volume a folder (a claim's subPath a
    folder inside it), the container's file system a folder of links at the mount paths, the
    env resolved from ``secrets``, and the paths, ports and Service URLs of the manifest
    rewritten to those folders and to local ports."""

    def __init__(self, name: str, spec: dict[str, Any], rendering: Any, work: Path,
                 secrets: dict[str, dict[str, str]], rewrite: dict[str, str]) -> None:
        self.spec, self.secrets, self.rewrite = spec, secrets, rewrite
        self.root = work / "pods" / name
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        self.sources: dict[str, Path] = {}
        for volume in volumes.values():
            self.sources[volume["name"]] = self._volume(volume, rendering, work)

    def _volume(self, volume: dict[str, Any], rendering: Any, work: Path) -> Path:
        if "persistentVolumeClaim" in volume:
            folder = work / "claims" / volume["persistentVolumeClaim"]["claimName"]
        elif "emptyDir" in volume:
            folder = self.root.with_name(self.root.name + "-volumes") / volume["name"]
        else:
            folder = self.root.with_name(self.root.name + "-volumes") / volume["name"]
            if "secret" in volume:
                files = self.secrets[volume["secret"]["secretName"]]
                items = volume["secret"].get("items") or [{"key": k, "path": k} for k in files]
            else:
                files = rendering.find("ConfigMap", volume["configMap"]["name"])["data"]
                items = [{"key": k, "path": k} for k in files]
            folder.mkdir(parents=True, exist_ok=True)
            for item in items:
                (folder / item["path"]).write_text(files[item["key"]])
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _mount(self, container: dict[str, Any]) -> Path:
        root = self.root / container["name"]
        for mount in container.get("volumeMounts", []):
            source = self.sources[mount["name"]] / mount.get("subPath", "")
            source.mkdir(parents=True, exist_ok=True)
            link = root / mount["mountPath"].lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(source, target_is_directory=True)
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        return root

    def _value(self, text: str, root: Path) -> str:
        if text in REPO_IMAGE_PATHS:
            return REPO_IMAGE_PATHS[text]
        for old, new in self.rewrite.items():
            if text == old or (not old.isdigit() and old in text):
                text = new if text == old else text.replace(old, new)
        # A path of the container's file system, alone or inside a shell line or an assignment.
        return re.sub(r"(^|[\s=>])(/data|/etc/mlops-lite|/tmp)(?=/|\s|$)", lambda m: f"{m[1]}{root}{m[2]}", text)

    def environment(self, container: dict[str, Any]) -> dict[str, str]:
        root = self._mount(container)
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "LANG": "C.UTF-8"}
        for entry in container.get("env", []):
            if "value" in entry:
                env[entry["name"]] = self._value(entry["value"], root)
            elif "secretKeyRef" in entry.get("valueFrom", {}):
                ref = entry["valueFrom"]["secretKeyRef"]
                value = self.secrets.get(ref["name"], {}).get(ref["key"])
                assert value is not None or ref.get("optional"), f"{ref} is not optional"
                if value is not None:
                    env[entry["name"]] = value
            elif "fieldRef" in entry.get("valueFrom", {}):
                env[entry["name"]] = "mlops-lite"
        return env

    def argv(self, container: dict[str, Any], words: list[str] | None = None) -> list[str]:
        root = self.root / container["name"]
        if words is None:
            words = container.get("command") or ["/usr/local/lib/mlops-lite/entrypoint.sh"]
            words = [*words, *container.get("args", [])]
        return [self._value(word, root) for word in words]

    def run(self, container: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
        env = self.environment(container)
        with log.open("ab") as out:
            return subprocess.Popen(self.argv(container), env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def probe(self, container: dict[str, Any], which: str) -> subprocess.CompletedProcess[str]:
        env = self.environment(container)
        return subprocess.run(self.argv(container, container[which]["exec"]["command"]), env=env,
                              capture_output=True, text=True, timeout=30)


@pytest.mark.slow
def test_up_and_a_replica_start_from_their_pod_specs(tmp_path: Path, postgres: Any) -> None:
    """The control plane's and a replica's containers, with the commands, environment and
    mounts of overlays/small, run here against a real PostgreSQL: `up` (after its init
    container) serves HTTPS with the Secret's certificate, its Prefect server keeps its runs in
    PostgreSQL and asks for the Secret's auth string, the admin token stays out of the log,
    the docs' token command makes the replica's identity, and the replica's exec probes pass.
    lakeFS aside: no lakeFS server here, so `up` runs with the embedded data backend."""
    import base64
    import os
    import secrets as random

    import httpx

    from tests.e2e.test_daemon import free_port, kill_prefect_server, stop_group

    rendering = render.render(KUBERNETES / "overlays" / "small")
    scratch = tmp_path / "scratch" / "home"
    names = "mlops-lite-up,mlops-lite-serve,localhost"
    made = subprocess.run([str(Path(sys.executable).with_name("mlops-lite")), "init", "--no-encryption"],
                          env={"PATH": os.environ["PATH"], "MLOPS_LITE_HOME": str(scratch),
                               "MLOPS_LITE_TLS_NAMES": names}, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    auth = f"mlops-lite:{random.token_hex(16)}"
    with postgres.database() as metadata_url, postgres.database() as prefect_db:
        secrets = {
            "mlops-lite-database": {"url": metadata_url, "prefect-url": prefect_db.replace("+psycopg", "+asyncpg"),
                                    "password": ""},
            "mlops-lite-master-key": {"master-key": base64.b64encode(random.token_bytes(32)).decode()},
            "mlops-lite-anonymization": {"key": random.token_hex(32)},
            "mlops-lite-prefect": {"auth-string": auth},
            "mlops-lite-lakefs": {"access-key-id": "AKIAEXAMPLE", "secret-access-key": "unused"},
            "mlops-lite-tls": {"tls.crt": (scratch / "tls" / "server.crt").read_text(),
                               "tls.key": (scratch / "tls" / "server.key").read_text(),
                               "ca.crt": (scratch / "tls" / "ca.crt").read_text()},
        }
        up_port, prefect_port, serve_port = free_port(), free_port(), free_port()
        rewrite = {"8000": str(up_port), "4200": str(prefect_port), "8080": str(serve_port),
                   "https://mlops-lite-up:8000": f"https://localhost:{up_port}",
                   "http://mlops-lite-prefect:4200": f"http://127.0.0.1:{prefect_port}",
                   "127.0.0.1:8080": f"127.0.0.1:{serve_port}"}
        up_spec = rendering.find("Deployment", "mlops-lite-up")["spec"]["template"]["spec"]
        up_pod = PodHere("up", up_spec, rendering, tmp_path, secrets, rewrite)
        [init] = up_spec["initContainers"]
        [up] = up_spec["containers"]
        up = json.loads(json.dumps(up))
        for entry in up["env"]:  # no lakeFS server here
            if entry["name"] == "MLOPS_LITE_DATA_BACKEND":
                entry["value"] = "embedded"
        logs = tmp_path / "logs"
        logs.mkdir()
        assert up_pod.run(init, logs / "init.log").wait(timeout=60) == 0, (logs / "init.log").read_text()
        home = tmp_path / "claims" / "mlops-lite-home" / "home"
        assert (home / "prefect.auth").read_text() == auth
        assert oct((home / "prefect.auth").stat().st_mode & 0o777) == "0o600"
        processes = [up_pod.run(up, logs / "up.log")]
        ca = str(tmp_path / "pods" / "up-volumes" / "tls" / "ca.crt")
        try:
            deadline = time.monotonic() + 240
            while True:
                try:
                    live = httpx.get(f"https://localhost:{up_port}/api/v1/healthcheck", verify=ca, timeout=5)
                    prefect = httpx.get(f"http://127.0.0.1:{prefect_port}/api/admin/version", timeout=5,
                                        auth=tuple(auth.split(":", 1)))  # type: ignore[arg-type]
                    if live.status_code == 204 or live.is_success:
                        if prefect.is_success:
                            break
                except httpx.HTTPError:
                    pass
                assert processes[0].poll() is None, (logs / "up.log").read_text()
                assert time.monotonic() < deadline, (logs / "up.log").read_text()
                time.sleep(1)
            assert httpx.get(f"http://127.0.0.1:{prefect_port}/api/admin/version", timeout=5).status_code == 401
            admin = (home / "admin.token").read_text().strip()
            assert admin not in (logs / "up.log").read_text()
            import psycopg

            with psycopg.connect(prefect_db.replace("postgresql+psycopg://", "postgresql://")) as connection:
                tables = connection.execute("select count(*) from information_schema.tables "
                                            "where table_name = 'flow_run'").fetchone()
            assert tables == (1,), "the Prefect server keeps its runs in PostgreSQL"

            token = subprocess.run([str(Path(sys.executable).with_name("mlops-lite")), "token", "create", "--name",
                                    "k8s-replica", "--service", "replica", "--json"],
                                   env={"PATH": os.environ["PATH"], "MLOPS_LITE_URL": f"https://localhost:{up_port}",
                                        "MLOPS_LITE_CA_BUNDLE": ca, "MLOPS_LITE_TOKEN": admin,
                                        "MLOPS_LITE_HOME": str(tmp_path / "client-home")},
                                   capture_output=True, text=True, timeout=120)
            assert token.returncode == 0, token.stderr
            secrets["mlops-lite-tokens"] = {"replica": json.loads(token.stdout)["token"], "worker": ""}

            serve_spec = rendering.find("Deployment", "mlops-lite-serve")["spec"]["template"]["spec"]
            serve_pod = PodHere("serve", serve_spec, rendering, tmp_path, secrets, rewrite)
            [folders] = serve_spec["initContainers"]
            [serve] = serve_spec["containers"]
            assert serve_pod.run(folders, logs / "folders.log").wait(timeout=60) == 0
            processes.append(serve_pod.run(serve, logs / "serve.log"))
            deadline = time.monotonic() + 120
            while (ready := serve_pod.probe(serve, "readinessProbe")).returncode != 0:
                assert processes[1].poll() is None, (logs / "serve.log").read_text()
                assert time.monotonic() < deadline, ready.stdout + (logs / "serve.log").read_text()
                time.sleep(1)
            assert "/v2/health/ready: 200" in ready.stdout
            live_probe = serve_pod.probe(serve, "livenessProbe")
            assert live_probe.returncode == 0 and "/v2/health/live: 200" in live_probe.stdout
            no_token = httpx.get(f"https://127.0.0.1:{serve_port}/v2/health/ready", verify=ca, timeout=5)
            assert no_token.status_code == 401  # why the probes are exec probes with the replica's token

            # The worker's start, up to `prefect worker start` (which needs a cluster): the pool
            # gets the job template, accepted by the Prefect server that `up` runs.
            worker_spec = rendering.find("Deployment", "mlops-lite-worker")["spec"]["template"]["spec"]
            worker_pod = PodHere("worker", worker_spec, rendering, tmp_path, secrets, rewrite)
            [worker] = worker_spec["containers"]
            script = worker["args"][0]
            assert script.count("exec prefect worker start") == 1
            setup = {**worker, "args": [script.split("exec prefect worker start")[0] + "true"]}
            made_pool = worker_pod.run(setup, logs / "worker.log")
            assert made_pool.wait(timeout=120) == 0, (logs / "worker.log").read_text()
            prefect_api = f"http://127.0.0.1:{prefect_port}/api"
            pool = httpx.get(f"{prefect_api}/work_pools/mlops-lite", auth=tuple(auth.split(":", 1)),  # type: ignore[arg-type]
                             timeout=10).json()
            job = pool["base_job_template"]["job_configuration"]["job_manifest"]
            assert job["spec"]["template"]["spec"]["containers"][0]["image"] == worker["image"] == "mlops-lite:0.1.0"
            assert job["metadata"]["namespace"] == "mlops-lite"
            # ...and the pool is the one `up` deploys its flows on, as `<flow>/workers`.
            deadline = time.monotonic() + 90
            while True:
                deployments = httpx.post(f"{prefect_api}/deployments/filter", auth=tuple(auth.split(":", 1)),  # type: ignore[arg-type]
                                         json={"work_pools": {"name": {"any_": ["mlops-lite"]}}}, timeout=10).json()
                if len(deployments) >= 3 or time.monotonic() > deadline:
                    break
                time.sleep(2)
            assert {d["name"] for d in deployments} == {"workers"} and len(deployments) >= 3, deployments
        finally:
            for process in reversed(processes):
                stop_group(process)
            kill_prefect_server(prefect_port)
