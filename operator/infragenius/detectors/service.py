"""Services that route nowhere: selectors matching no pods, no ready endpoints, unknown named ports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infragenius.detectors._index import endpoint_health
from infragenius.detectors.base import finding
from infragenius.detectors.evidence import examples
from infragenius.kube.meta import name_of, namespace_of, ref_of
from infragenius.kube.pods import containers, template_labels
from infragenius.kube.selectors import map_selector_matches, selector_text
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Obj, PodIndex, Snapshot

DOCS = "https://kubernetes.io/docs/concepts/services-networking/service/"
DEBUG_DOCS = "https://kubernetes.io/docs/tasks/debug/debug-application/debug-service/"


class ServiceDetector:
    name: str = "service"
    kinds: frozenset[str] = frozenset({"Service", "Pod", "EndpointSlice", "Deployment", "StatefulSet"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        if not snapshot.has("Service"):
            return []
        pods = snapshot.active_pods if snapshot.has("Pod") else None
        findings: list[Finding] = []
        for svc in snapshot.items("Service"):
            findings.extend(self._check(snapshot, svc, pods))
        return findings

    def _check(self, snapshot: Snapshot, svc: Obj, pods: PodIndex | None) -> list[Finding]:
        spec = svc.get("spec") or {}
        selector = spec.get("selector") or {}
        resource = ref_of(svc, "Service")
        owners = snapshot.owner_chain(svc)
        out: list[Finding] = []
        lb_ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress")
        if spec.get("type") == "LoadBalancer" and not lb_ingress:
            out.append(self._lb_pending(svc, resource, owners))
        # Services without a selector (manual endpoints, ExternalName) route where their owner says.
        if not selector or spec.get("type") == "ExternalName" or pods is None:
            return out
        selected = pods.select_map(namespace_of(svc), selector)
        if not selected:
            return [*out, self._no_pods(snapshot, svc, pods, resource, owners)]
        out.extend(self._endpoints(snapshot, svc, selected, resource, owners))
        out.extend(self._named_ports(svc, selected, resource, owners))
        return out

    def _lb_pending(self, svc: Obj, resource: Any, owners: list[Any]) -> Finding:
        namespace, name = namespace_of(svc), name_of(svc)
        return finding(
            detector=self.name,
            severity=Severity.info,
            resource=resource,
            owners=owners,
            problem="LoadBalancerPending",
            title=f"LoadBalancer Service {name} has no external address assigned",
            evidence=[("status.loadBalancer.ingress", "<empty>"), ("spec.type", "LoadBalancer")],
            remediation=(
                f"Check the cloud controller or load-balancer implementation (e.g. MetalLB): "
                f"kubectl -n {namespace} describe service {name}. If no load balancer is available, "
                "use type NodePort or ClusterIP with an Ingress."
            ),
            docs="https://kubernetes.io/docs/concepts/services-networking/service/#loadbalancer",
        )

    def _no_pods(self, snapshot: Snapshot, svc: Obj, pods: PodIndex, resource: Any, owners: list[Any]) -> Finding:
        """The selector picks no active pod: deliberately (workloads scaled to zero) or by mistake."""
        namespace, name = namespace_of(svc), name_of(svc)
        selector = svc["spec"]["selector"]
        shown = selector_text(selector)
        scaled_to_zero = self._scaled_to_zero(snapshot, namespace, selector)
        if scaled_to_zero:
            return finding(
                detector=self.name,
                severity=Severity.info,
                resource=resource,
                owners=owners,
                problem="SelectorMatchesNoPods",
                title=f"Service {name} has no backends: its workloads are scaled to zero ({examples(scaled_to_zero)})",
                evidence=[("spec.selector", shown), ("spec.replicas", f"0 on {examples(scaled_to_zero)}")],
                remediation="Scale the workload up if the Service should serve traffic: "
                f"kubectl -n {namespace} scale {scaled_to_zero[0].lower()} --replicas=1",
                docs=DEBUG_DOCS,
            )
        in_ns = len(pods.by_ns.get(namespace, []))
        return finding(
            detector=self.name,
            severity=Severity.warning,
            resource=resource,
            owners=owners,
            problem="SelectorMatchesNoPods",
            title=f"Service {name} selector {shown} matches no running pods",
            evidence=[("spec.selector", shown), ("pods matching selector", f"0 of {in_ns} active pods in {namespace}")],
            remediation=(
                f"Compare the selector with the pod labels: kubectl -n {namespace} get pods --show-labels -l {shown}. "
                "Fix the Service selector or the workload's pod template labels."
            ),
            docs=DEBUG_DOCS,
        )

    def _endpoints(
        self, snapshot: Snapshot, svc: Obj, selected: list[Obj], resource: Any, owners: list[Any]
    ) -> list[Finding]:
        namespace, name = namespace_of(svc), name_of(svc)
        health = endpoint_health(snapshot, namespace, name, selected)
        if not health.not_ready:
            return []  # all ready, or the only unready ones are still starting
        if health.source == "EndpointSlice":
            source = f"EndpointSlice[kubernetes.io/service-name={name}].endpoints[].conditions.ready"
        else:
            source = "Pod.status.conditions[Ready].status"
        evidence = [
            (source, f"{health.ready} ready, {len(health.not_ready)} not ready, {health.starting} starting"),
            ("not ready backends", examples(list(health.not_ready))),
            ("spec.selector", selector_text(svc["spec"]["selector"])),
        ]
        remediation = (
            f"Find out why the backing pods are not ready: kubectl -n {namespace} describe pod {health.not_ready[0]}; "
            f"kubectl -n {namespace} get endpointslices -l kubernetes.io/service-name={name}. "
            "Check readiness probes, crashes and the container logs."
        )
        if health.ready == 0:
            return [
                finding(
                    detector=self.name,
                    severity=Severity.critical,
                    resource=resource,
                    owners=owners,
                    problem="NoReadyEndpoints",
                    title=f"Service {name} has no ready endpoints: "
                    f"all {len(health.not_ready)} backing pods are not ready",
                    evidence=evidence,
                    remediation=remediation,
                    docs=DEBUG_DOCS,
                    affected=len(health.not_ready),
                )
            ]
        return [
            finding(
                detector=self.name,
                severity=Severity.warning,
                resource=resource,
                owners=owners,
                problem="EndpointsNotReady",
                title=f"Service {name}: {len(health.not_ready)} of {health.total} endpoints are not ready",
                evidence=evidence,
                remediation=remediation,
                docs=DEBUG_DOCS,
                affected=len(health.not_ready),
            )
        ]

    def _named_ports(self, svc: Obj, selected: list[Obj], resource: Any, owners: list[Any]) -> list[Finding]:
        named = [
            (p.get("name") or str(p.get("port")), p["targetPort"])
            for p in svc["spec"].get("ports") or []
            if isinstance(p.get("targetPort"), str)
        ]
        if not named:
            return []
        wanted = {target for _, target in named}
        declared: set[str] = set()
        for pod in selected:
            for _, container in containers(pod.get("spec") or {}, init=False):
                for port in container.get("ports") or []:
                    if port.get("name"):
                        declared.add(port["name"])
            if wanted <= declared:
                break  # usually the first pod already declares every name
        out = []
        namespace, name = namespace_of(svc), name_of(svc)
        for port_name, target in named:
            if target in declared:
                continue
            out.append(
                finding(
                    detector=self.name,
                    severity=Severity.warning,
                    resource=resource,
                    owners=owners,
                    problem=f"NamedTargetPortMissing:{target}",
                    title=f"Service {name} port {port_name} targets port name '{target}', "
                    "which no selected pod declares",
                    evidence=[
                        (f"spec.ports[{port_name}].targetPort", target),
                        ("spec.containers[].ports[].name", ", ".join(sorted(declared)) or "<none declared>"),
                        ("selected pods", examples([name_of(p) for p in selected])),
                    ],
                    remediation=(
                        f"Name the container port '{target}' in the pod template, "
                        "or set targetPort to the port number: "
                        f"kubectl -n {namespace} edit service {name}"
                    ),
                    docs="https://kubernetes.io/docs/concepts/services-networking/service/#field-spec-ports",
                    affected=len(selected),
                )
            )
        return out

    @staticmethod
    def _scaled_to_zero(snapshot: Snapshot, namespace: str | None, selector: Mapping[str, str]) -> list[str]:
        """Workloads whose pods this Service would select but which are deliberately at 0 replicas."""
        found = []
        for kind in ("Deployment", "StatefulSet"):
            for obj in snapshot.items(kind):
                if namespace_of(obj) != namespace or (obj.get("spec") or {}).get("replicas") != 0:
                    continue
                if map_selector_matches(selector, template_labels(obj, kind)):
                    found.append(f"{kind}/{name_of(obj)}")
        return found


DETECTOR = ServiceDetector()
