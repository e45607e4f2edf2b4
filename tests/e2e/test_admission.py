"""The chart's ValidatingAdmissionPolicy: reading another namespace through the operator needs own rights."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.e2e.conftest import E2ECluster
from tests.e2e.support import service_account_kubeconfig, wait_for
from tests.e2e.test_helm import CHART, _run, helm  # noqa: F401  (helm is a fixture)

pytestmark = pytest.mark.e2e
POLICY_TEMPLATE = "templates/admission-policy.yaml"
REQUIRED = {"Analysis": {}, "IncidentReport": {"since": "30m"}}  # what each kind needs besides its target


@pytest.fixture
def policy(helm: list[str], cluster: E2ECluster, crds: None) -> Iterator[str]:  # noqa: F811
    """The policy and its binding as the chart renders them (only those templates), applied; removed afterwards."""
    release = f"adm{uuid.uuid4().hex[:5]}"
    rendered = _run([*helm, "template", release, str(CHART), "--namespace", "ops", "-s", POLICY_TEMPLATE]).stdout
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(rendered) if d)
    assert kinds == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    cluster.kubectl("apply", "-f", "-", input=rendered)
    yield rendered
    cluster.kubectl("delete", "--ignore-not-found", "-f", "-", input=rendered)


def _namespace(cluster: E2ECluster, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:5]}"
    client.CoreV1Api(cluster.api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def _author(cluster: E2ECluster, namespace: str) -> str:
    """A ServiceAccount that may create Analyses and IncidentReports, and list pods, in its own namespace only."""
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    rbac.create_namespaced_role(
        namespace,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "author"},
            "rules": [
                {"apiGroups": ["infragenius.io"], "resources": ["analyses", "incidentreports"], "verbs": ["create"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "author"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "author"},
            "subjects": [{"kind": "ServiceAccount", "name": "author", "namespace": namespace}],
        },
    )
    return service_account_kubeconfig(cluster.api, cluster.kubeconfig, namespace, "author")


def _create(
    cluster: E2ECluster, kubeconfig: str, kind: str, namespace: str, spec: dict
) -> subprocess.CompletedProcess[str]:
    """A server-side dry-run create: authorization and admission run, nothing is stored."""
    body = {
        "apiVersion": "infragenius.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": f"x-{uuid.uuid4().hex[:6]}", "namespace": namespace},
        "spec": {**REQUIRED[kind], **spec},
    }
    return subprocess.run(
        [cluster.kubectl_path, f"--kubeconfig={kubeconfig}", "create", "--dry-run=server", "-f", "-"],
        input=yaml.safe_dump(body),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cross_namespace_targets_need_the_authors_own_rights(cluster: E2ECluster, policy: str) -> None:
    team_a, team_b = _namespace(cluster, "team-a"), _namespace(cluster, "team-b")
    author = _author(cluster, team_a)
    user = f"system:serviceaccount:{team_a}:author"
    other = {"targetNamespace": team_b}
    # Policies are picked up asynchronously: wait until the API server enforces this one.
    wait_for(
        lambda: "ValidatingAdmissionPolicy" in _create(cluster, author, "Analysis", team_a, other).stderr,
        timeout=120,
        what="the admission policy in effect",
    )
    for kind in ("Analysis", "IncidentReport"):
        refused = _create(cluster, author, kind, team_a, other)
        assert refused.returncode != 0, f"{kind} with another namespace's target was admitted"
        assert f"needs permission to list pods in namespace {team_b}" in refused.stderr, refused.stderr
        assert user in refused.stderr and "ValidatingAdmissionPolicy" in refused.stderr, refused.stderr
        # Its own namespace, named or by default, is fine.
        for spec in ({"targetNamespace": team_a}, {}):
            admitted = _create(cluster, author, kind, team_a, spec)
            assert admitted.returncode == 0, f"{kind} {spec}: {admitted.stderr}"
    everywhere = _create(cluster, author, "Analysis", team_a, {"allNamespaces": True})
    assert everywhere.returncode != 0, "allNamespaces was admitted for a namespace-scoped user"
    assert "spec.allNamespaces needs permission to list pods in all namespaces" in everywhere.stderr, everywhere.stderr
    # The cluster's admin may list pods everywhere: admitted for both.
    for kind, spec in (("Analysis", other), ("IncidentReport", other), ("Analysis", {"allNamespaces": True})):
        admitted = _create(cluster, cluster.kubeconfig, kind, team_a, spec)
        assert admitted.returncode == 0, f"admin {kind} {spec}: {admitted.stderr}"
    # Findings carry log lines: listing the other namespace's pods is not enough without reading their logs.
    _grant(cluster, team_b, team_a, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}])
    wait_for(
        lambda: "read pod logs" in _create(cluster, author, "Analysis", team_a, other).stderr,
        timeout=60,
        what="list pods in team-b granted",
    )
    for kind in ("Analysis", "IncidentReport"):
        refused = _create(cluster, author, kind, team_a, other)
        assert refused.returncode != 0, f"{kind} targeting pods whose logs the author may not read was admitted"
        assert f"needs permission to read pod logs (get pods/log) in namespace {team_b}" in refused.stderr
    _grant(cluster, team_b, team_a, [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}], "logs")
    admitted = wait_for(
        lambda: (r := _create(cluster, author, "Analysis", team_a, other)).returncode == 0 and r,
        timeout=60,
        what="the Analysis admitted once pods/log is granted",
    )
    assert admitted.returncode == 0
    for name in (team_a, team_b):
        client.CoreV1Api(cluster.api).delete_namespace(name)
    Path(author).unlink()


def _grant(cluster: E2ECluster, namespace: str, author_namespace: str, rules: list[dict], name: str = "reader") -> None:
    """Let the author (of ``author_namespace``) do ``rules`` in ``namespace``."""
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name}, "rules": rules}
    rbac.create_namespaced_role(namespace, role)
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "author", "namespace": author_namespace}],
        },
    )


def test_without_container_logs_the_policy_asks_only_for_list_pods(helm: list[str]) -> None:  # noqa: F811
    def rendered(*values: str) -> str:
        return _run([*helm, "template", "adm", str(CHART), "-s", POLICY_TEMPLATE, *values]).stdout

    assert rendered().count("subresource('log')") == 2
    off = rendered("--set", "operator.containerLogs=false")
    assert "pods/log" not in off and "subresource('log')" not in off
    assert off.count("check('list')") == 2
