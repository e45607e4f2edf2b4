"""Precision: healthy, well-built workloads shaped like common real-world software get no warning.

Every detector of the registry runs over each case; a well-run install of a node agent, a database,
a web app behind TLS, an admission webhook or an operator must produce 0 warnings and 0 criticals.
The cases are written for these tests (no manifests are copied from anywhere).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from infragenius.detectors._posture import ACCEPT_ANNOTATION
from infragenius.detectors.registry import DETECTORS
from infragenius.models.findings import Finding
from infragenius.snapshot import Snapshot
from tests.unit import factories as f

Obj = f.Obj


def run_all(snapshot: Snapshot) -> list[Finding]:
    return [finding for detector in DETECTORS.values() for finding in detector.detect(snapshot)]


def _cluster() -> list[Obj]:
    return [f.node(f"node-{i}") for i in (1, 2, 3)] + [f.storage_class("standard", default=True)]


def node_exporter() -> list[Obj]:
    """A metrics exporter: host network and PID namespace, /proc, /sys and / mounted read-only."""
    mounts = [
        f.host_mount("proc", "/proc", "/host/proc"),
        f.host_mount("sys", "/sys", "/host/sys"),
        f.host_mount("root", "/", "/host/root"),
    ]
    container = f.app_container(
        "exporter",
        "registry.example.com/metrics/node-exporter:1.8.2",
        ports=[{"name": "metrics", "containerPort": 9100, "hostPort": 9100}],
        args=["--path.procfs=/host/proc", "--path.sysfs=/host/sys", "--path.rootfs=/host/root"],
        volumeMounts=[m for _v, m in mounts],
        securityContext={"runAsNonRoot": True, "runAsUser": 65534, "readOnlyRootFilesystem": True},
    )
    container["volumeMounts"][2]["mountPropagation"] = "HostToContainer"
    spec = f.pod_spec(container, volumes=[v for v, _m in mounts], hostNetwork=True, hostPID=True,
                      tolerations=[{"operator": "Exists"}])  # fmt: skip
    ds, pods = f.app_daemonset("node-exporter", spec)
    return [
        ds,
        *pods,
        f.service_for("node-exporter", {"app": "node-exporter"}, port=9100, target="metrics"),
        *_cluster(),
    ]


def log_shipper() -> list[Obj]:
    """A log shipper: the node's log directories read-only, its own positions in a ConfigMap-configured pod."""
    mounts = [
        f.host_mount("varlog", "/var/log", "/var/log"),
        f.host_mount("containers", "/var/lib/docker/containers", "/var/lib/docker/containers"),
        f.host_mount("machine-id", "/etc/machine-id", "/etc/machine-id", type_="File"),
    ]
    container = f.app_container(
        "shipper",
        "registry.example.com/logging/shipper:3.1.4",
        ports=[{"name": "http", "containerPort": 2020}],
        volumeMounts=[*(m for _v, m in mounts), {"name": "config", "mountPath": "/etc/shipper"}],
    )
    volumes = [*(v for v, _m in mounts), {"name": "config", "configMap": {"name": "log-shipper"}}]
    ds, pods = f.app_daemonset("log-shipper", f.pod_spec(container, volumes=volumes))
    return [ds, *pods, f.configmap("log-shipper"), *_cluster()]


def log_shipper_with_positions() -> list[Obj]:
    """A log shipper that keeps its read positions in a writable host directory: a warning by policy,
    accepted by its owner with the annotation, so it stays visible as info."""
    logs, logs_mount = f.host_mount("varlog", "/var/log", "/var/log")
    state, state_mount = f.host_mount("positions", "/var/lib/log-agent", "/run/positions", read_only=False)
    container = f.app_container("agent", "registry.example.com/logging/agent:2.9.0", ports=[], readiness=False,
                                volumeMounts=[logs_mount, state_mount])  # fmt: skip
    ds, pods = f.app_daemonset("log-agent", f.pod_spec(container, volumes=[logs, state]),
                               annotations={ACCEPT_ANNOTATION: "HostPath"})  # fmt: skip
    return [ds, *pods, *_cluster()]


def database() -> list[Obj]:
    """A replicated database: StatefulSet, headless Service, client Service, PDB, bound claims."""
    container = f.app_container(
        "db",
        "registry.example.com/db/postgres:16.4",
        ports=[{"name": "postgres", "containerPort": 5432}],
        readinessProbe={"exec": {"command": ["pg_isready"]}, "periodSeconds": 10},
        volumeMounts=[{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
    )
    objs = f.app_statefulset("db", 3, f.pod_spec(container, securityContext={"fsGroup": 999}), target="postgres")
    pods = [o for o in objs if o["kind"] == "Pod"]
    client = f.service_for("db", {"app": "db"}, port=5432, target="postgres")
    return [*objs, client, f.slice_for("db", pods), f.app_pdb("db", {"app": "db"}, healthy=3, min_available=2),
            *_cluster()]  # fmt: skip


def web_behind_ingress() -> list[Obj]:
    """A web Deployment behind a TLS Ingress, with an HPA and a PDB."""
    deploy, rs, pods = f.deployment_with_pods("web", 3)
    return [
        deploy, rs, *pods,
        f.service_for("web", {"app": "web"}), f.slice_for("web", pods),
        f.ingress("web", [("/", {"name": "web", "port": {"number": 80}})],
                  tls=[{"hosts": ["shop.example.com"], "secretName": "web-tls"}]),
        f.ingress_class("nginx", default=True), f.secret("web-tls"),
        f.hpa("web", current=3, min_replicas=3),
        f.app_pdb("web", {"app": "web"}, healthy=3, min_available=2),
        *_cluster(),
    ]  # fmt: skip


def admission_webhook() -> list[Obj]:
    """An admission webhook: its server, a Service on 443, the configurations, and the completed job that
    generated its certificate (cert-gen jobs run once per install)."""
    deploy, rs, pods = f.deployment_with_pods("policy-webhook", 2)
    svc = f.service("policy-webhook", {"app": "policy-webhook"},
                    ports=[{"name": "https", "port": 443, "targetPort": "http"}])  # fmt: skip
    cert_job = f.workload("Job", "policy-webhook-certgen",
                          spec=f.pod_spec(f.app_container("certgen", ports=[], readiness=False)))  # fmt: skip
    cert_job["status"] = {"succeeded": 1, "startTime": f.ts(3600), "completionTime": f.ts(3550),
                          "conditions": [f.cond("Complete", "True", ago=3550)]}  # fmt: skip
    cert_pod = f.app_pod("policy-webhook-certgen-x7k2p", {"app": "policy-webhook-certgen"},
                         owner=f.owner_ref("Job", "policy-webhook-certgen"), phase="Succeeded", ready=False,
                         spec=f.pod_spec(f.app_container("certgen", ports=[], readiness=False),
                                         restartPolicy="OnFailure"))  # fmt: skip
    return [
        deploy, rs, *pods, svc, f.slice_for("policy-webhook", pods), cert_job, cert_pod, f.secret("policy-webhook-tls"),
        f.webhook_config("policy-webhook", [f.webhook("validate.policy.example.com", "policy-webhook")]),
        f.webhook_config("policy-webhook", [f.webhook("mutate.policy.example.com", "policy-webhook",
                                                      failure_policy="Ignore")],
                         kind="MutatingWebhookConfiguration"),
        *_cluster(),
    ]  # fmt: skip


def operator_with_leader_election() -> list[Obj]:
    """An operator: two replicas, one leader (the other is Ready but idle), a metrics Service."""
    container = f.app_container(
        "manager",
        "registry.example.com/platform/operator:0.9.1",
        ports=[{"name": "http", "containerPort": 8080}],
        args=["--leader-elect", "--health-probe-bind-address=:8081"],
        livenessProbe={"httpGet": {"path": "/healthz", "port": 8081}},
        securityContext={"runAsNonRoot": True, "runAsUser": 65532, "allowPrivilegeEscalation": False,
                         "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True},
    )  # fmt: skip
    deploy, rs, pods = f.deployment_with_pods("operator", 2, spec=f.pod_spec(container))
    return [deploy, rs, *pods, f.service_for("operator-metrics", {"app": "operator"}),
            f.slice_for("operator-metrics", pods), *_cluster()]  # fmt: skip


CORPUS: dict[str, Callable[[], list[Obj]]] = {
    "node-exporter": node_exporter,
    "log-shipper": log_shipper,
    "log-shipper-with-accepted-positions": log_shipper_with_positions,
    "database": database,
    "web-behind-ingress": web_behind_ingress,
    "admission-webhook": admission_webhook,
    "operator": operator_with_leader_election,
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_well_built_workload_has_no_warning(case: str) -> None:
    findings = run_all(f.snap(*CORPUS[case]()))
    assert [(x.severity.value, x.detector, x.title) for x in f.serious(findings)] == []


def test_the_whole_corpus_in_one_namespace_has_no_warning() -> None:
    objs: dict[tuple[str, str], Obj] = {}
    for build in CORPUS.values():
        for obj in build():
            objs[(obj["kind"], obj["metadata"]["name"])] = obj
    findings = run_all(f.snap(*objs.values()))
    assert f.serious(findings) == []
    # The node agents' host access is still visible, as info with the policy's reason.
    host = {(x.resource.name, x.title.split(" ")[2]) for x in findings if "host" in x.title.lower()}
    assert {("node-exporter", "mounts"), ("node-exporter", "shares"), ("log-shipper", "mounts")} <= host
    accepted = next(x for x in findings if x.resource.name == "log-agent" and "hostPath" in x.title)
    assert f.ev(accepted)[f"metadata.annotations[{ACCEPT_ANNOTATION}]"] == "HostPath (accepted: info)"
    assert f.ev(accepted)["posture policy"] == "warning: hostPath mounted writable: positions"
