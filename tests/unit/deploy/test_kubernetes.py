"""The Kubernetes example (``deploy/kubernetes``): it parses, and what it says about the
gateway is true: the probes name endpoints the gateway serves on the ports its config
listens on, the config and policy in the ConfigMap load without a problem, the secrets
it references are the variables the config names, and it runs as the image's user."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from gateway.app import admin_app, create_app
from gateway.config.settings import Settings, read_settings
from gateway.config.yamlsource import Problem, parse_text
from gateway.policy.loader import policy_from_mapping, read_policy
from gateway.state import GATEWAY
from tests.support.paths import ROOT

K8S = ROOT / "deploy" / "kubernetes"
ENV = {
    "DCR_GATEWAY_ADMIN_TOKEN": "k" * 64,
    "DCR_GATEWAY_REGISTRY_KEY": "kUKlhN4Ap0WYX4nNa4x3dUp_0iyY6Ah6SLhtdEExb1o=",
}


def documents() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":  # kustomize's own file, not a manifest
            continue
        found += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return found


def one(kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def gateway_container() -> dict[str, Any]:
    [container] = one("Deployment", "dcr-gateway")["spec"]["template"]["spec"]["containers"]
    return container


def configured() -> Settings:
    config = one("ConfigMap", "dcr-gateway")["data"]["config.yaml"]
    problems: list[Problem] = []
    document = parse_text(config, "config.yaml", problems, env=ENV)
    settings = read_settings(document, Path("/etc/dcr-gateway"), problems, env=ENV)
    assert problems == []
    return settings


def paths_of(app: web.Application) -> set[str]:
    return {r.canonical for r in app.router.resources()}


def test_every_file_parses_into_the_expected_kinds() -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in documents())
    assert kinds == [
        ("ConfigMap", "dcr-gateway"),
        ("Deployment", "dcr-gateway"),
        ("Deployment", "dcr-gateway-redis"),
        ("PodDisruptionBudget", "dcr-gateway"),
        ("Secret", "dcr-gateway"),
        ("Service", "dcr-gateway"),
        ("Service", "dcr-gateway-redis"),
    ]


def test_the_kustomization_lists_every_manifest_but_the_secret() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.yaml"}
    assert set(kustomization["resources"]) == manifests


def test_the_configmap_config_and_policy_load() -> None:
    settings = configured()
    assert settings.admin.serve_health and settings.admin.listen is not None
    assert settings.storage.startswith("redis://")
    data = one("ConfigMap", "dcr-gateway")["data"]
    problems: list[Problem] = []
    policy = read_policy(parse_text(data["policy.yaml"], "policy.yaml", problems), problems)
    assert problems == []
    assert policy is not None
    assert settings.policy_file == Path("/etc/dcr-gateway") / "policy.yaml"


def test_probes_name_real_endpoints_on_the_configured_ports() -> None:
    settings = configured()
    assert settings.admin.listen is not None
    container = gateway_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": settings.listen.port, "admin": settings.admin.listen.port}
    readiness = container["readinessProbe"]["httpGet"]
    liveness = container["livenessProbe"]["httpGet"]
    startup = container["startupProbe"]["httpGet"]
    assert readiness == {"path": "/-/readyz", "port": "admin"}  # admin.serve_health
    assert liveness == startup == {"path": "/-/healthz", "port": "http"}
    # The gateway built from this config serves exactly that: liveness on the public
    # listener, readiness only on the admin listener.
    public = create_app(settings, policy_from_mapping({"version": 1, "mode": "open"}))
    assert "/-/healthz" in paths_of(public)
    assert "/-/readyz" not in paths_of(public)
    assert {"/-/healthz", "/-/readyz"} <= paths_of(admin_app(public[GATEWAY]))


def test_secrets_fill_the_variables_the_config_names() -> None:
    settings = configured()
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in gateway_container()["env"]}
    assert set(env) == {settings.admin.token_env, settings.registry.key_env}
    secret_keys = set(one("Secret", "dcr-gateway")["stringData"])
    assert {ref["name"] for ref in env.values()} == {"dcr-gateway"}
    assert {ref["key"] for ref in env.values()} == secret_keys


def test_runs_as_the_images_user_with_a_read_only_root() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    match = re.search(r"--uid (\d+)", dockerfile)
    assert match is not None
    pod = one("Deployment", "dcr-gateway")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(match.group(1))
    container = gateway_container()["securityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert {"requests", "limits"} <= set(gateway_container()["resources"])


def test_shutdown_fits_in_the_grace_period() -> None:
    settings = configured()
    pod = one("Deployment", "dcr-gateway")["spec"]["template"]["spec"]
    pre_stop = gateway_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    budget = float(pre_stop[1]) + settings.server.shutdown_timeout
    assert pod["terminationGracePeriodSeconds"] > budget


@pytest.mark.parametrize("kind", ["Service", "PodDisruptionBudget"])
def test_selectors_match_the_pods(kind: str) -> None:
    labels = one("Deployment", "dcr-gateway")["spec"]["template"]["metadata"]["labels"]
    spec = one(kind, "dcr-gateway")["spec"]
    selector = spec["selector"].get("matchLabels", spec["selector"])
    assert selector.items() <= labels.items()


def test_the_service_exposes_the_public_port_only() -> None:
    [port] = one("Service", "dcr-gateway")["spec"]["ports"]
    assert port["targetPort"] == "http"


def test_storage_points_at_the_redis_service() -> None:
    settings = configured()
    redis = one("Service", "dcr-gateway-redis")
    [port] = redis["spec"]["ports"]
    assert settings.storage == f"redis://{redis['metadata']['name']}:{port['port']}/0"
