"""Issue 8: the Kubernetes deployment holds on paper (deploy/k8s, deploy/crds,
Dockerfile). No cluster or container engine runs here, so every check is offline:

1. every overlay renders (`kubectl kustomize`, the kustomize built into kubectl);
2. every built-in kind validates against the OpenAPI schemas of a pinned
   Kubernetes version (kubernetes-validate, strict: an unknown field is an error,
   as with `kubectl apply`'s default strict field validation);
3. every Strimzi and CloudNativePG resource validates against the CRD schemas
   kept in deploy/crds (unknown fields are errors there too), and a custom kind
   without a schema there is an error (kubernetes-validate would only warn);
4. yamllint (.yamllint) on deploy/ and config/kustomization.yaml;
5. what no schema sees: the manifests agree with the code (modules, roles,
   probe paths, setting names, topics, consumer groups, ACLs, database roles),
   the pods are locked down, every pod is covered by network policies, the
   dashboards and the policy file are provisioned as they are in the repo, and
   every Secret the manifests expect is documented in docs/operations.md.

The negative tests break a copy of the tree in tmp_path and show that each
check fails: a check that cannot fail proves nothing.

`make manifests` runs this module alone.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import shutil
import subprocess
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes_validate import utils as kubernetes_validate
from yamllint import linter
from yamllint.config import YamlLintConfig

from shared.policy import load_policy
from shared.runtime import ROLES, ops_router
from shared.settings import SERVICE_NAMES, Settings

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ("dev", "prod")
#: The Kubernetes version the built-in kinds are held against (Strimzi 1.x and
#: CloudNativePG 1.26-1.28 both support it).
KUBERNETES_VERSION = "1.33"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
#: The pods' uid; the Dockerfile's USER must be the same.
APP_UID = 10001
#: Settings the manifests set that shared/settings.py does not read yet: the
#: Kafka client has no SASL/TLS options (see test_kafka_client_security_is_read).
KAFKA_AUTH_SETTINGS = frozenset(
    {
        "PL_KAFKA_SECURITY_PROTOCOL",
        "PL_KAFKA_SASL_MECHANISM",
        "PL_KAFKA_SASL_USERNAME",
        "PL_KAFKA_SASL_PASSWORD",
        "PL_KAFKA_SSL_CAFILE",
    }
)

Doc = dict[str, Any]

#: kubernetes-validate reads its bundled schemas (megabytes of JSON) again for
#: every resource; read each file once.
kubernetes_validate.schema_contents = cache(kubernetes_validate.schema_contents)


class RenderError(Exception):
    pass


# -- the checks (each takes a tree, so the negative tests can run them on a copy) ------


def render(root: Path, overlay: str) -> list[Doc]:
    """`kubectl kustomize` of an overlay; RenderError with kustomize's message."""
    if not Path(KUBECTL).exists():
        raise RenderError(
            "kubectl is not installed: it carries kustomize. Install the kubectl binary"
            " of your cluster's version (https://kubernetes.io/docs/tasks/tools/); on"
            " Debian do not use the kubernetes-client package over an existing kubectl"
        )
    result = subprocess.run(
        [KUBECTL, "kustomize", str(root / "deploy/k8s/overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RenderError(f"{overlay} does not render: {result.stderr.strip()[-2000:]}")
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def ident(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def is_custom(doc: Doc) -> bool:
    group = doc["apiVersion"].rpartition("/")[0]
    return group.endswith(("strimzi.io", "cnpg.io"))


def validate_builtin(docs: list[Doc]) -> list[str]:
    errors = []
    for doc in docs:
        if is_custom(doc):
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{ident(doc)}: {exc.message}")
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            errors.append(f"{ident(doc)} at {where}: {exc.message}")
    return errors


def strict_schema(node: Any) -> Any:
    """A CRD's structural OpenAPI schema as JSON Schema, with unknown fields
    refused where the CRD lists the fields (what the API server's strict
    field validation does)."""
    if isinstance(node, list):
        return [strict_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            out[key] = {name: strict_schema(schema) for name, schema in value.items()}
        else:
            out[key] = strict_schema(value)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_schemas(crd_dir: Path) -> dict[tuple[str, str], Doc]:
    """(apiVersion, kind) -> JSON Schema, from the CRDs kept in the repo."""
    schemas = {}
    for path in sorted(crd_dir.rglob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = strict_schema(version["schema"]["openAPIV3Schema"])
            schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def validate_custom(docs: list[Doc], crd_dir: Path) -> list[str]:
    schemas = crd_schemas(crd_dir)
    errors = []
    for doc in docs:
        if not is_custom(doc):
            continue
        schema = schemas.get((doc["apiVersion"], doc["kind"]))
        if schema is None:
            errors.append(f"{ident(doc)}: no schema for {doc['apiVersion']} in {crd_dir}")
            continue
        for error in jsonschema.Draft7Validator(schema).iter_errors(doc):
            where = "/".join(str(p) for p in error.absolute_path)
            errors.append(f"{ident(doc)} at {where}: {error.message}")
    return errors


def lint_yaml(root: Path) -> list[str]:
    config = YamlLintConfig(file=str(root / ".yamllint"))
    files = [*sorted((root / "deploy").rglob("*.yaml")), root / "config/kustomization.yaml"]
    errors = []
    for path in files:
        for problem in linter.run(path.read_text(), config, str(path)):
            errors.append(f"{path.relative_to(root)}:{problem.line}: {problem.desc}")
    return errors


def check_references(docs: list[Doc]) -> list[str]:
    """Custom resources name each other: the Strimzi resources their Kafka,
    the backup its Cluster, the Cluster its ObjectStore."""
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    errors = []
    for doc in docs:
        if doc["apiVersion"].startswith("kafka.strimzi.io/") and doc["kind"] != "Kafka":
            cluster = doc["metadata"].get("labels", {}).get("strimzi.io/cluster")
            if ("Kafka", cluster) not in names:
                errors.append(f"{ident(doc)}: strimzi.io/cluster {cluster!r} is no Kafka here")
        if doc["kind"] == "ScheduledBackup":
            cluster = doc["spec"]["cluster"]["name"]
            if ("Cluster", cluster) not in names:
                errors.append(f"{ident(doc)}: backs up {cluster!r}, which is not here")
        if doc["kind"] == "Cluster":
            for plugin in doc["spec"].get("plugins", []):
                store = plugin.get("parameters", {}).get("barmanObjectName")
                if store and ("ObjectStore", store) not in names:
                    errors.append(f"{ident(doc)}: archives to {store!r}, which is not here")
    return errors


# -- what the code says -----------------------------------------------------------


@dataclass(frozen=True)
class Consumer:
    service: str
    group: str
    sources: frozenset[str]


@cache
def consumers() -> tuple[Consumer, ...]:
    """The consumer groups of each service and the services they read, from
    the ServiceSpecs themselves (subscriptions need only the application's
    class and the policy)."""
    settings, policy, found = Settings(schema_prefix=""), load_policy(), []
    for service in SERVICE_NAMES:
        spec = importlib.import_module(f"services.{service}.service").SPEC
        fake = types.SimpleNamespace(
            application=spec.application.__new__(spec.application), policy=policy
        )
        for consumer in spec.consumers:
            sources = frozenset(s.source for s in consumer.subscriptions(fake))
            group = f"{settings.consumer_group_of(service)}.{consumer.name}"
            found.append(Consumer(service, group, sources))
    return tuple(found)


def setting_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(f"PL_{name.upper()}")
        alias = field.validation_alias
        if alias is not None and hasattr(alias, "choices"):
            names.update(str(choice) for choice in alias.choices)
    return names


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    (found,) = [d for d in of_kind(docs, kind) if d["metadata"]["name"].startswith(name)]
    return found


def service_deployments(docs: list[Doc]) -> Iterator[tuple[str, str, Doc]]:
    """(service, component, Deployment) of the four services."""
    for doc in of_kind(docs, "Deployment"):
        labels = doc["spec"]["template"]["metadata"]["labels"]
        if labels.get("partnerledger.io/role") == "service":
            yield labels["app.kubernetes.io/name"], labels["app.kubernetes.io/component"], doc


def app_container(deployment: Doc) -> Doc:
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"]]
    return container


def check_topics(docs: list[Doc]) -> list[str]:
    """One topic per service, named as the code names it, kept forever, with
    enough partitions for every member its consumer groups can have."""
    settings, errors = Settings(schema_prefix=""), []
    topics = {d["metadata"]["name"]: d for d in of_kind(docs, "KafkaTopic")}
    if set(topics) != {settings.topic_of(s) for s in SERVICE_NAMES}:
        errors.append(f"topics {sorted(topics)} are not the services' topics")
    for name, topic in topics.items():
        config = topic["spec"].get("config", {})
        if config.get("retention.ms") != -1 or config.get("retention.bytes") != -1:
            errors.append(f"{name}: events are kept forever (retention -1)")
        if "compact" in str(config.get("cleanup.policy", "delete")):
            errors.append(f"{name}: compaction would keep one event per aggregate")
    max_members = {
        d["spec"]["scaleTargetRef"]["name"]: d["spec"]["maxReplicas"]
        for d in of_kind(docs, "HorizontalPodAutoscaler")
    }
    for consumer in consumers():
        members = max_members.get(f"{consumer.service}-workers", 0)
        for source in consumer.sources:
            topic = topics.get(settings.topic_of(source))
            if topic is not None and topic["spec"]["partitions"] < members:
                errors.append(
                    f"{consumer.group} may have {members} members but"
                    f" {topic['metadata']['name']} has {topic['spec']['partitions']} partitions"
                )
    return errors


def check_users(docs: list[Doc]) -> list[str]:
    """Each service's KafkaUser: write its topic, read what it consumes, its
    consumer groups; nothing else."""
    settings, errors = Settings(schema_prefix=""), []
    users = {d["metadata"]["name"]: d for d in of_kind(docs, "KafkaUser")}
    for service in SERVICE_NAMES:
        user = users.get(f"pl-{service}")
        if user is None:
            errors.append(f"no KafkaUser pl-{service}")
            continue
        granted = {
            (
                acl["resource"]["type"],
                acl["resource"].get("name"),
                acl["resource"].get("patternType", "literal"),
                op,
            )
            for acl in user["spec"]["authorization"]["acls"]
            for op in acl["operations"]
        }
        own = settings.topic_of(service)
        reads = {
            settings.topic_of(s) for c in consumers() if c.service == service for s in c.sources
        }
        expected = {("topic", own, "literal", op) for op in ("Write", "Read", "Describe")}
        expected |= {("topic", t, "literal", op) for t in reads for op in ("Read", "Describe")}
        prefix = f"{settings.consumer_group_of(service)}."
        expected.add(("group", prefix, "prefix", "Read"))
        if granted != expected:
            missing, extra = sorted(expected - granted), sorted(granted - expected)
            errors.append(f"pl-{service}: missing {missing}, extra {extra}")
        groups = [c.group for c in consumers() if c.service == service]
        if not all(g.startswith(prefix) for g in groups):
            errors.append(f"pl-{service}: groups {groups} outside its prefix {prefix}")
    return errors


def check_pods(docs: list[Doc]) -> list[str]:
    """Restricted pods: non-root, read-only root, no capabilities, seccomp,
    resources; the services probed on their real endpoints."""
    errors = []
    for deployment in of_kind(docs, "Deployment"):
        name, pod = ident(deployment), deployment["spec"]["template"]["spec"]
        security = pod.get("securityContext", {})
        if security.get("runAsNonRoot") is not True:
            errors.append(f"{name}: runAsNonRoot")
        if security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            errors.append(f"{name}: seccompProfile RuntimeDefault")
        if pod.get("automountServiceAccountToken") is not False:
            errors.append(f"{name}: mounts a service account token")
        for container in pod["containers"]:
            where = f"{name}/{container['name']}"
            sc = container.get("securityContext", {})
            if sc.get("readOnlyRootFilesystem") is not True:
                errors.append(f"{where}: readOnlyRootFilesystem")
            if sc.get("allowPrivilegeEscalation") is not False:
                errors.append(f"{where}: allowPrivilegeEscalation")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                errors.append(f"{where}: capabilities drop ALL")
            resources = container.get("resources", {})
            if not {"cpu", "memory"} <= set(resources.get("requests", {})) or "memory" not in (
                resources.get("limits", {})
            ):
                errors.append(f"{where}: cpu/memory requests and a memory limit")
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in container:
                    errors.append(f"{where}: no {probe}")
            if ":latest" in container["image"] or ":" not in container["image"].rsplit("/", 1)[-1]:
                errors.append(f"{where}: image {container['image']} has no pinned tag")
    paths = {route.path for route in ops_router().routes}  # type: ignore[attr-defined]
    for service, component, deployment in service_deployments(docs):
        container, where = app_container(deployment), ident(deployment)
        pod_uid = deployment["spec"]["template"]["spec"]["securityContext"].get("runAsUser")
        if pod_uid != APP_UID:
            errors.append(f"{where}: runs as {pod_uid}, the image as {APP_UID}")
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            got = container.get(probe, {}).get("httpGet", {}).get("path")
            if got != path or path not in paths:
                errors.append(f"{where}: {probe} must be {path} (served: {sorted(paths)})")
        if container["command"] != ["python", "-m", f"services.{service}"]:
            errors.append(f"{where}: command {container['command']}")
        args = container.get("args", [])
        role = args[args.index("--role") + 1] if "--role" in args else "all"
        wanted = {"api": "api", "workers": "all"}[component]
        if role != wanted or role not in ROLES:
            errors.append(f"{where}: --role {role}, expected {wanted}")
    return errors


def check_environment(docs: list[Doc]) -> list[str]:
    """Every setting the services are given is one shared/settings.py reads
    (a typo would be ignored silently: extra="ignore"), and every $(VAR)
    refers to a variable defined before it."""
    known, errors = setting_names() | KAFKA_AUTH_SETTINGS, []
    configmaps = {d["metadata"]["name"]: d for d in of_kind(docs, "ConfigMap")}
    for _, _, deployment in service_deployments(docs):
        container, where = app_container(deployment), ident(deployment)
        names = []
        for source in container.get("envFrom", []):
            names += list(configmaps[source["configMapRef"]["name"]].get("data", {}))
        defined = set(names)
        for var in container.get("env", []):
            for ref in re.findall(r"\$\((\w+)\)", var.get("value", "")):
                if ref not in defined:
                    errors.append(f"{where}: {var['name']} uses $({ref}) before it is defined")
            defined.add(var["name"])
            names.append(var["name"])
        for name in names:
            if (name.startswith("PL_") or name in {"DATABASE_URL"}) and name not in known:
                errors.append(f"{where}: {name} is no setting of shared/settings.py")
    return errors


def check_database(docs: list[Doc]) -> list[str]:
    """A schema and a login role per service, each schema owned by its role,
    and the pods log in as the role whose Secret the operator manages."""
    settings, errors = Settings(schema_prefix=""), []
    (cluster,) = of_kind(docs, "Cluster")
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    sql = " ; ".join(cluster["spec"]["bootstrap"]["initdb"]["postInitApplicationSQL"])
    for service in SERVICE_NAMES:
        role = roles.get(f"pl_{service}")
        if role is None or not role.get("login"):
            errors.append(f"no login role pl_{service}")
            continue
        schema = settings.schema_of(service)
        if f"CREATE SCHEMA {schema} AUTHORIZATION pl_{service}" not in sql:
            errors.append(f"schema {schema} is not created owned by pl_{service}")
        secret = role["passwordSecret"]["name"]
        for svc, _, deployment in service_deployments(docs):
            if svc != service:
                continue
            env = {e["name"]: e for e in app_container(deployment)["env"]}
            used = env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
            if used != secret:
                errors.append(f"{ident(deployment)}: logs in with {used}, the role uses {secret}")
    if "GRANT SELECT ON TABLES TO pl_grafana" not in sql or "pl_grafana" not in roles:
        errors.append("Grafana has no read-only role on the kpi schema")
    return errors


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        present = expr["key"] in labels
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
        if expr["operator"] == "NotIn" and labels.get(expr["key"]) in expr["values"]:
            return False
        if expr["operator"] == "Exists" and not present:
            return False
        if expr["operator"] == "DoesNotExist" and present:
            return False
    return True


def check_network(docs: list[Doc]) -> list[str]:
    """Ingress is closed for every pod of the namespace, egress for ours; each
    of our pods has rules that open what it needs (a policy of its own)."""
    policies = of_kind(docs, "NetworkPolicy")
    errors = []
    if not any(p["spec"]["podSelector"] == {} and "ingress" not in p["spec"] for p in policies):
        errors.append("no default-deny ingress policy for the namespace")
    for deployment in of_kind(docs, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        mine = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
        for direction in ("Ingress", "Egress"):
            key = direction.lower()
            closed = any(direction in p["spec"]["policyTypes"] for p in mine)
            opened = any(p["spec"].get(key) for p in mine)
            if not (closed and opened):
                errors.append(f"{ident(deployment)}: no {direction} rules of its own")
    return errors


def secret_names(docs: list[Doc]) -> set[str]:
    """Every Secret the manifests expect to exist (none is in the repo)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("secretKeyRef", "passwordSecret"):
                if isinstance(node.get(key), dict):
                    found.add(node[key]["name"])
            if isinstance(node.get("secretName"), str):  # volumes, ingress TLS
                found.add(node["secretName"])
            for key in ("accessKeyId", "secretAccessKey"):
                if isinstance(node.get(key), dict) and "name" in node[key]:
                    found.add(node[key]["name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for doc in docs:
        if doc["kind"] == "Secret":
            raise AssertionError(f"{ident(doc)}: secrets are never kept in the repo")
        walk(doc.get("spec", {}))
    return found


# -- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Doc]]:
    return {overlay: render(ROOT, overlay) for overlay in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def docs(request: pytest.FixtureRequest, rendered: dict[str, list[Doc]]) -> list[Doc]:
    return rendered[request.param]


# -- the tree as it is ------------------------------------------------------------


def test_every_overlay_renders(docs: list[Doc]) -> None:
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "Cluster"} <= kinds
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    (namespace,) = [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"]
    assert namespaces == {namespace}, "everything lives in the overlay's namespace"


def test_built_in_kinds_match_the_kubernetes_schemas(docs: list[Doc]) -> None:
    assert validate_builtin(docs) == []


def test_strimzi_and_cloudnativepg_resources_match_their_crds(docs: list[Doc]) -> None:
    assert validate_custom(docs, ROOT / "deploy/crds") == []
    assert check_references(docs) == []


def test_the_kept_crd_schemas_are_valid_crds() -> None:
    for path in sorted((ROOT / "deploy/crds").rglob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        kubernetes_validate.validate(crd, KUBERNETES_VERSION, strict=True)
        for version in crd["spec"]["versions"]:
            jsonschema.Draft7Validator.check_schema(
                strict_schema(version["schema"]["openAPIV3Schema"])
            )


def test_yamllint() -> None:
    assert lint_yaml(ROOT) == []


def test_topics_are_the_services_topics_sized_for_their_consumer_groups(docs: list[Doc]) -> None:
    assert check_topics(docs) == []


def test_each_service_has_a_kafka_user_with_the_acls_its_code_needs(docs: list[Doc]) -> None:
    assert check_users(docs) == []


def test_pods_are_restricted_and_probed_on_real_endpoints(docs: list[Doc]) -> None:
    assert check_pods(docs) == []


def test_settings_given_to_the_services_exist(docs: list[Doc]) -> None:
    assert check_environment(docs) == []


def test_kafka_client_security_is_read() -> None:
    assert setting_names() >= KAFKA_AUTH_SETTINGS


def test_a_schema_and_a_role_per_service(docs: list[Doc]) -> None:
    assert check_database(docs) == []


def test_network_policies_cover_every_pod(docs: list[Doc]) -> None:
    assert check_network(docs) == []


def test_every_expected_secret_is_documented(docs: list[Doc]) -> None:
    operations = (ROOT / "docs/operations.md").read_text()
    missing = sorted(name for name in secret_names(docs) if f"`{name}`" not in operations)
    assert missing == [], "docs/operations.md, Secrets: document how to create them"


def test_dashboards_datasource_and_policy_are_provisioned_as_in_the_repo(
    docs: list[Doc],
) -> None:
    dashboards = one(docs, "ConfigMap", "grafana-dashboards")["data"]
    files = {p.name: p.read_text() for p in (ROOT / "deploy/grafana/dashboards").glob("*.json")}
    assert dashboards == files, "deploy/grafana/kustomization.yaml lists every dashboard"
    for name in files:
        assert json.loads(dashboards[name])["uid"]
    datasource = one(docs, "ConfigMap", "grafana-datasources")["data"]["postgres.yaml"]
    assert (
        datasource == (ROOT / "deploy/grafana/provisioning/datasources/postgres.yaml").read_text()
    )
    policy = one(docs, "ConfigMap", "partnerledger-policy")["data"]["policy.toml"]
    assert policy == (ROOT / "config/policy.toml").read_text()
    scorecard = one(docs, "ConfigMap", "partnerledger-scorecard")["data"]["scorecard.toml"]
    assert scorecard == (ROOT / "config/scorecard.toml").read_text()
    # Client-side apply keeps the object in an annotation (256 KiB at most).
    assert len(json.dumps(dashboards)) < 256 * 1024


def test_the_image_runs_as_the_pods_user_and_carries_no_local_state() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)", dockerfile, re.MULTILINE)
    assert stages == ["build", "runtime"]
    final = dockerfile.split("AS runtime", 1)[1]
    assert re.search(rf"^USER {APP_UID}:{APP_UID}$", final, re.MULTILINE)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in dockerfile
    assert "PL_DATA_DIR=/tmp/partnerledger" in final
    rules = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert rules[0] == "*", "the build context is an allow-list"
    assert {"!shared/", "!services/", "!partnerledger/", "!config/"} <= set(rules)
    assert not any(line.startswith("!") and ".data" in line for line in rules)


# -- the checks fail on broken copies -----------------------------------------------


def broken_copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for part in ("deploy", "config"):
        shutil.copytree(ROOT / part, root / part)
    shutil.copy(ROOT / ".yamllint", root / ".yamllint")
    return root


def edit(root: Path, relative: str, old: str, new: str) -> None:
    path = root / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new, 1))


def test_an_overlay_that_stops_rendering_fails(tmp_path: Path) -> None:
    root = broken_copy(tmp_path)
    (root / "deploy/k8s/base/kafka/users.yaml").unlink()
    with pytest.raises(RenderError, match=r"users\.yaml"):
        render(root, "prod")


Breaker = Callable[[Path], None]


@pytest.mark.parametrize(
    ("breaker", "check", "expected"),
    [
        pytest.param(
            lambda r: edit(
                r, "deploy/k8s/base/kafka/topics.yaml", "partitions: 12", "partitions: twelve"
            ),
            lambda r, d: validate_custom(d, r / "deploy/crds"),
            "KafkaTopic/partner.events at spec/partitions: 'twelve' is not of type 'integer'",
            id="wrong type in a KafkaTopic",
        ),
        pytest.param(
            lambda r: edit(r, "deploy/k8s/base/kafka/users.yaml", "operations:", "operation:"),
            lambda r, d: validate_custom(d, r / "deploy/crds"),
            "KafkaUser/pl-partner at spec/authorization/acls/0: Additional properties",
            id="v1beta2 field in a v1 KafkaUser",
        ),
        pytest.param(
            lambda r: edit(
                r, "deploy/k8s/base/postgres/cluster.yaml", "primaryUpdateStrategy", "primaryUpdate"
            ),
            lambda r, d: validate_custom(d, r / "deploy/crds"),
            "Cluster/pl-db at spec: Additional properties are not allowed ('primaryUpdate'",
            id="unknown field in the Cluster",
        ),
        pytest.param(
            lambda r: edit(
                r,
                "deploy/k8s/base/kafka/topics.yaml",
                "apiVersion: kafka.strimzi.io/v1\n",
                "apiVersion: kafka.strimzi.io/v1beta2\n",
            ),
            lambda r, d: validate_custom(d, r / "deploy/crds"),
            "KafkaTopic/partner.events: no schema for kafka.strimzi.io/v1beta2",
            id="custom kind without a kept schema",
        ),
        pytest.param(
            lambda r: edit(
                r,
                "deploy/k8s/base/service/deployment-api.yaml",
                "readOnlyRootFilesystem: true",
                "readOnlyRootFileSystem: true",
            ),
            lambda r, d: validate_builtin(d),
            "'readOnlyRootFileSystem' was unexpected",
            id="misspelt field in a Deployment",
        ),
        pytest.param(
            lambda r: edit(r, "deploy/k8s/base/service/service.yaml", "port: 80", "port: eighty"),
            lambda r, d: validate_builtin(d),
            "Service/partner-api at spec/ports/0/port",
            id="wrong type in a Service",
        ),
        pytest.param(
            lambda r: edit(
                r, "deploy/k8s/base/kafka/topics.yaml", "partitions: 12", "partitions: 4"
            ),
            lambda r, d: check_topics(d),
            "kpi.projections may have 6 members but partner.events has 4 partitions",
            id="topic too small for its consumer group",
        ),
        pytest.param(
            lambda r: edit(
                r, "deploy/k8s/base/common/kustomization.yaml", "PL_LOG_JSON", "PL_LOG_JSN"
            ),
            lambda r, d: check_environment(d),
            "PL_LOG_JSN is no setting of shared/settings.py",
            id="misspelt setting",
        ),
        pytest.param(
            lambda r: edit(r, "deploy/k8s/base/kafka/users.yaml", "[Read, Describe]", "[All]"),
            lambda r, d: check_users(d),
            "pl-partner: missing",
            id="ACL wider than the code needs",
        ),
        pytest.param(
            lambda r: edit(
                r, "deploy/k8s/base/service/deployment-api.yaml", "path: /readyz", "path: /ready"
            ),
            lambda r, d: check_pods(d),
            "readinessProbe must be /readyz",
            id="probe on a path the service does not serve",
        ),
        pytest.param(
            lambda r: edit(
                r,
                "deploy/k8s/base/grafana/deployment.yaml",
                "partnerledger.io/role: grafana",
                "partnerledger.io/role: dashboards",
            ),
            lambda r, d: check_network(d),
            "Deployment/grafana: no Egress rules of its own",
            id="a pod no network policy opens",
        ),
    ],
)
def test_each_check_fails_on_a_broken_copy(
    tmp_path: Path,
    breaker: Breaker,
    check: Callable[[Path, list[Doc]], list[str]],
    expected: str,
) -> None:
    root = broken_copy(tmp_path)  # the tree above passes every check
    breaker(root)
    errors = check(root, render(root, "prod"))
    assert any(expected in e for e in errors), errors


def test_yamllint_fails_on_a_broken_copy(tmp_path: Path) -> None:
    root = broken_copy(tmp_path)
    edit(root, "deploy/k8s/base/namespace.yaml", "name: partnerledger\n", "name: partnerledger  \n")
    assert any("trailing spaces" in e for e in lint_yaml(root))


def test_the_kept_schemas_refuse_what_the_crds_refuse() -> None:
    """The conversion keeps CRD semantics: int-or-string quantities, open
    maps where the CRD preserves unknown fields, closed objects elsewhere."""
    schemas = crd_schemas(ROOT / "deploy/crds")
    pool = schemas[("kafka.strimzi.io/v1", "KafkaNodePool")]
    good = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaNodePool",
        "metadata": {"name": "p"},
        "spec": {
            "replicas": 1,
            "roles": ["broker"],
            "storage": {"type": "ephemeral"},
            "resources": {"requests": {"cpu": 1, "memory": "1Gi"}},
            "template": {"pod": {"anything": True}},
        },
    }
    jsonschema.validate(good, pool)
    bad = copy.deepcopy(good)
    bad["spec"]["roles"] = ["zookeeper"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, pool)
