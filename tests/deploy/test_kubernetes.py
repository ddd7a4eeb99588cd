"""The Kubernetes manifests: valid against pinned Kubernetes schemas, and the shape stated."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.kustomize import (
    KUBERNETES,
    KUBERNETES_VERSION,
    by_kind,
    have_kubectl,
    load_all,
    render,
    resource_files,
)

BASE = KUBERNETES / "base"
DEV = KUBERNETES / "overlays" / "dev"
EXAMPLES = sorted((KUBERNETES / "examples").glob("*.yaml"))


def validate(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return workload["spec"]["template"]["spec"]["containers"]


@pytest.mark.parametrize("directory", [BASE, DEV], ids=["base", "dev"])
def test_every_rendered_resource_validates_strictly(directory):
    docs = render(directory)
    assert len(docs) >= 10
    for doc in docs:
        validate(doc)


def test_examples_validate_strictly():
    assert EXAMPLES
    for path in EXAMPLES:
        for doc in load_all(path.read_text()):
            validate(doc)


def test_validation_rejects_a_broken_manifest():
    """The check can fail: a typo'd field and a wrong type are refused."""
    hub = by_kind(render(BASE), "Deployment", "scriptmesh-hub")
    typo = copy.deepcopy(hub)
    typo["spec"]["replica"] = typo["spec"].pop("replicas")
    wrong_type = copy.deepcopy(hub)
    containers(wrong_type)[0]["ports"][0]["containerPort"] = "five thousand"
    for broken in (typo, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            validate(broken)


def test_base_lists_only_existing_files():
    for path in resource_files(BASE) + resource_files(DEV):
        assert path.is_file(), path


def test_hub_three_replicas_with_health_probes_and_a_budget():
    docs = render(BASE)
    hub = by_kind(docs, "Deployment", "scriptmesh-hub")
    assert hub["spec"]["replicas"] == 3
    (container,) = containers(hub)
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    assert container["command"] == ["gunicorn", "-c", "orchestrator/gunicorn_conf.py",
                                    "wsgi:app"]
    budget = by_kind(docs, "PodDisruptionBudget", "scriptmesh-hub")
    labels = hub["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["minAvailable"] == 2
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = by_kind(docs, "Service", "scriptmesh-hub")
    assert service["spec"]["selector"].items() <= labels.items()


def test_roles_commands_replicas_and_requests():
    docs = render(BASE)
    assert by_kind(docs, "Deployment", "scriptmesh-scheduler")["spec"]["replicas"] == 2
    expected = {"scriptmesh-worker": ["scriptmesh", "worker"],
                "scriptmesh-scheduler": ["scriptmesh", "scheduler"]}
    for name, command in expected.items():
        assert containers(by_kind(docs, "Deployment", name))[0]["command"] == command
    job = by_kind(docs, "Job", "scriptmesh-migrate")
    assert containers(job)[0]["command"] == ["scriptmesh", "db", "upgrade"]
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job", "DaemonSet"):
            for container in containers(doc):
                assert container["resources"]["requests"]["cpu"], doc["metadata"]["name"]
                assert container["resources"]["requests"]["memory"]


def test_config_and_secret_references_resolve():
    docs = render(BASE)
    config = by_kind(docs, "ConfigMap", "scriptmesh-config")["data"]
    assert config["REDIS_SENTINEL_MASTER"] and config["REDIS_SENTINELS"].count(":") == 3
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        for container in containers(doc):
            for source in container.get("envFrom", []):
                kind = "ConfigMap" if "configMapRef" in source else "Secret"
                ref = source.get("configMapRef") or source["secretRef"]
                assert (kind, ref["name"]) in names
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secret = by_kind(docs, "Secret", ref["name"])
                    assert ref["key"] in secret["stringData"]


def test_agent_key_comes_from_a_secret():
    docs = render(BASE)
    agent = by_kind(docs, "Deployment", "scriptmesh-agent")
    env = {e["name"]: e for e in containers(agent)[0]["env"]}
    assert "value" not in env["API_KEY"]
    assert env["API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "scriptmesh-agent",
                                                           "key": "api-key"}
    assert agent["spec"]["strategy"]["type"] == "Recreate"
    (daemonset,) = load_all((KUBERNETES / "examples" / "agent-daemonset.yaml").read_text())
    spec = daemonset["spec"]["template"]["spec"]
    assert spec["volumes"][0]["secret"]["secretName"] == "scriptmesh-node-agents"
    name = {e["name"]: e for e in spec["containers"][0]["env"]}["AGENT_NAME"]
    assert name["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


@pytest.mark.skipif(not have_kubectl(), reason="overlay patches need kubectl kustomize")
def test_dev_overlay_is_self_contained():
    docs = render(DEV)
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {
        "scriptmesh-dev"}
    config = by_kind(docs, "ConfigMap", "scriptmesh-config")["data"]
    assert "REDIS_SENTINELS" not in config and config["REDIS_URL"] == "redis://redis:6379/0"
    assert by_kind(docs, "Deployment", "scriptmesh-hub")["spec"]["replicas"] == 1
    assert by_kind(docs, "Service", "postgres") and by_kind(docs, "Service", "redis")
