"""deploy/compose.yaml against the Compose schema, and one set of install steps everywhere."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from tests.deploy import install_steps as steps
from tests.deploy.kustomize import KUBERNETES, by_kind, render

SCHEMA = json.loads((steps.REPO / "deploy" / "schema" / "compose-spec.json").read_text())


def test_compose_file_matches_the_compose_schema():
    jsonschema.Draft201909Validator(SCHEMA).validate(steps.compose())


def test_schema_check_can_fail():
    broken = copy.deepcopy(steps.compose())
    broken["services"]["hub"]["healthcheck"]["interval_seconds"] = 10
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft201909Validator(SCHEMA).validate(broken)
    broken = copy.deepcopy(steps.compose())
    broken["services"]["hub"]["depends_on"] = "postgres"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft201909Validator(SCHEMA).validate(broken)


def test_every_service_and_health_check():
    services = steps.compose()["services"]
    assert set(services) == {"postgres", "redis", "hub", "worker", "scheduler", "agent"}
    for name in ("postgres", "redis", "hub", "worker", "scheduler"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert "5000/health" in " ".join(services["hub"]["healthcheck"]["test"])
    for name in ("worker", "scheduler", "agent"):
        assert services[name]["depends_on"]["hub"] == {"condition": "service_healthy"}
    assert services["hub"]["build"]["dockerfile"] == "Dockerfile.orchestrator"
    assert services["agent"]["build"]["dockerfile"] == "Dockerfile.agent"


def test_hub_install_steps_are_the_readmes_production_steps():
    block = steps.code_block_after(steps.PRODUCTION_MARKER)
    readme = [steps.normalise(c) for c in steps.shell_commands(block)]
    assert readme[:3] == [["pip", "install", ".[hub]"], ["scriptmesh", "db", "upgrade"],
                          ["gunicorn", "-c", "orchestrator/gunicorn_conf.py", "wsgi:app"]]
    roles = readme[3:]
    assert roles == [["scriptmesh", "worker"], ["scriptmesh", "scheduler"]]
    # The image: step 1 at build time, steps 3 and 4 as its command.
    assert steps.dockerfile_commands(steps.REPO / "Dockerfile.orchestrator") == readme[:3]
    services = steps.compose()["services"]
    assert [services["worker"]["command"], services["scheduler"]["command"]] == roles
    docs = render(KUBERNETES / "base")
    migrate = by_kind(docs, "Job", "scriptmesh-migrate")["spec"]["template"]["spec"]
    hub = by_kind(docs, "Deployment", "scriptmesh-hub")["spec"]["template"]["spec"]
    assert migrate["containers"][0]["command"] == readme[1]
    assert hub["containers"][0]["command"] == readme[2]
    for name, command in zip(("scriptmesh-worker", "scriptmesh-scheduler"), roles, strict=True):
        spec = by_kind(docs, "Deployment", name)["spec"]["template"]["spec"]
        assert spec["containers"][0]["command"] == command


def test_readme_settings_are_the_ones_compose_and_kubernetes_set():
    exports = steps.readme_exports(steps.code_block_after(steps.PRODUCTION_MARKER))
    assert {"SCRIPTMESH_ENV", "DATABASE_URL", "SECRET_KEY", "JWT_SECRET",
            "ENCRYPTION_KEY"} <= exports
    compose_env = set(steps.compose()["services"]["hub"]["environment"])
    assert exports - {"REDIS_SENTINELS", "REDIS_SENTINEL_MASTER"} <= compose_env
    docs = render(KUBERNETES / "base")
    kube = set(by_kind(docs, "ConfigMap", "scriptmesh-config")["data"]) | set(
        by_kind(docs, "Secret", "scriptmesh-secrets")["stringData"])
    assert exports - {"REDIS_URL"} <= kube


def test_agent_install_steps_are_the_readmes():
    readme = [steps.normalise(c)
              for c in steps.shell_commands(steps.code_block_after(steps.AGENT_MARKER))]
    pip_steps = [c for c in readme if c[0] == "pip"]
    assert pip_steps == [["pip", "install", ".[agent]"]]
    assert readme[-1] == ["scriptmesh-agent", "start"]
    image = steps.dockerfile_commands(steps.REPO / "Dockerfile.agent")
    assert image == [["pip", "install", ".[agent]"], ["scriptmesh-agent", "start"]]
