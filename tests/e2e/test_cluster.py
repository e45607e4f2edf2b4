"""The test cluster behaves like a real one: controllers, scheduler, fake kubelet, quota, GC."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from infragenius_devtools.devcluster import LocalCluster, versions
from tests.e2e.conftest import TEST_CLUSTER_NAME, E2ECluster
from tests.e2e.support import wait_for

pytestmark = pytest.mark.e2e


def _deployment(name: str, replicas: int, cpu: str = "100m") -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(
                            name="app",
                            image="registry.example/app:1.0",
                            resources=client.V1ResourceRequirements(
                                requests={"cpu": cpu, "memory": "64Mi"}, limits={"cpu": cpu, "memory": "64Mi"}
                            ),
                        )
                    ]
                ),
            ),
        ),
    )


def _ready(pod: client.V1Pod) -> bool:
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or [])
    )


def test_nodes_are_ready_with_realistic_capacity(core: client.CoreV1Api, cluster: E2ECluster) -> None:
    nodes = core.list_node().items
    ready = [n for n in nodes if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])]
    assert len(ready) >= 3
    if cluster.provider == "local":
        fake = [n for n in nodes if (n.metadata.annotations or {}).get("kwok.x-k8s.io/node") == "fake"]
        assert len(fake) == 3
        for node in fake:
            assert node.status.allocatable["cpu"] == "8"
            assert node.status.allocatable["memory"] == "32Gi"
            assert node.status.allocatable["pods"] == "110"
        # The real node (when the cluster has one) reports what the machine has.
        real = [n for n in nodes if n not in fake]
        assert [n.metadata.name for n in real] == ([cluster.real_node["name"]] if cluster.real_node else [])


def test_version_reports_the_pinned_release(cluster: E2ECluster) -> None:
    if cluster.provider != "local":
        pytest.skip("the pinned version applies to the local cluster only")
    reply = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert reply["serverVersion"]["gitVersion"] == f"v{versions.KUBERNETES_VERSION}"
    assert reply["clientVersion"]["gitVersion"] == f"v{versions.KUBERNETES_VERSION}"


def test_deployment_gets_three_running_ready_pods(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, _deployment("web", 3))

    def ready_pods() -> list[client.V1Pod]:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        return [p for p in pods if _ready(p)] if len(pods) == 3 and all(_ready(p) for p in pods) else []

    pods = wait_for(ready_pods, timeout=60, what="3 Running and Ready pods")
    assert {p.spec.node_name for p in pods} <= {n.metadata.name for n in core.list_node().items}
    assert all(p.spec.node_name for p in pods)
    # The pods came from the real controllers: Deployment -> ReplicaSet -> Pod.
    owners = {p.metadata.owner_references[0].kind for p in pods}
    assert owners == {"ReplicaSet"}
    deployment = wait_for(
        lambda: (
            (d := apps.read_namespaced_deployment(name="web", namespace=namespace)).status.ready_replicas == 3 and d
        ),
        timeout=30,
        what="deployment status readyReplicas=3",
    )
    assert deployment.status.available_replicas == 3


def test_pod_asking_for_1000_cpus_is_unschedulable(core: client.CoreV1Api, namespace: str) -> None:
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="huge"),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="app",
                    image="registry.example/app:1.0",
                    resources=client.V1ResourceRequirements(requests={"cpu": "1000"}),
                )
            ]
        ),
    )
    core.create_namespaced_pod(namespace, pod)

    def scheduled_condition() -> client.V1PodCondition | None:
        status = core.read_namespaced_pod("huge", namespace).status
        return next((c for c in status.conditions or [] if c.type == "PodScheduled"), None)

    cond = wait_for(scheduled_condition, timeout=30, what="a PodScheduled condition")
    assert cond.status == "False"
    assert cond.reason == "Unschedulable"
    assert "Insufficient cpu" in cond.message
    assert core.read_namespaced_pod("huge", namespace).status.phase == "Pending"


def test_namespace_deletion_completes(core: client.CoreV1Api, apps: client.AppsV1Api, cluster: E2ECluster) -> None:
    name = "t-delete-ns"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        apps.create_namespaced_deployment(name, _deployment("doomed", 2))
        core.create_namespaced_config_map(
            name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cfg"), data={"a": "b"})
        )
        wait_for(lambda: len(core.list_namespaced_pod(name).items) == 2, timeout=60, what="2 pods before deletion")
    finally:
        core.delete_namespace(name)

    def gone() -> bool:
        try:
            core.read_namespace(name)
        except client.ApiException as err:
            return err.status == 404
        return False

    # The namespace controller must drain every object (pods via kwok's graceful deletion) and remove it.
    wait_for(gone, timeout=120, what=f"namespace {name} to be deleted")


def test_exceeded_resource_quota_sets_replica_failure(
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str
) -> None:
    core.create_namespaced_resource_quota(
        namespace,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="small"), spec=client.V1ResourceQuotaSpec(hard={"pods": "2"})
        ),
    )
    # Quota admission needs the quota's status to be computed before it enforces.
    wait_for(
        lambda: (core.read_namespaced_resource_quota("small", namespace).status.hard or {}).get("pods") == "2",
        timeout=30,
        what="quota status",
    )
    apps.create_namespaced_deployment(namespace, _deployment("greedy", 4))

    def replica_failure() -> client.V1ReplicaSetCondition | None:
        for rs in apps.list_namespaced_replica_set(namespace, label_selector="app=greedy").items:
            for cond in rs.status.conditions or []:
                if cond.type == "ReplicaFailure" and cond.status == "True":
                    return cond
        return None

    cond = wait_for(replica_failure, timeout=60, what="ReplicaFailure on the ReplicaSet")
    assert cond.reason == "FailedCreate"
    assert "exceeded quota" in cond.message
    assert len(core.list_namespaced_pod(namespace, label_selector="app=greedy").items) == 2


def test_default_service_account_and_rbac(core: client.CoreV1Api, cluster: E2ECluster) -> None:
    assert core.read_namespaced_service_account("default", "default").metadata.name == "default"
    # RBAC is enforced: an unprivileged service account may not list pods.
    reply = cluster.kubectl(
        "auth", "can-i", "list", "pods", "--as=system:serviceaccount:default:default", "-n", "default", check=False
    )
    assert reply.stdout.strip() == "no"


def test_second_up_reports_the_running_cluster(cluster: E2ECluster) -> None:
    if cluster.provider != "local":
        pytest.skip("only the local cluster is started by `up`")
    messages: list[str] = []
    local = LocalCluster(TEST_CLUSTER_NAME)
    before = local.info()
    after = local.up(echo=messages.append)
    assert messages == [f"cluster {TEST_CLUSTER_NAME!r} is already running at {before.server}"]
    assert after.pids == before.pids
