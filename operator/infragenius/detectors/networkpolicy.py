"""NetworkPolicies that select nothing, and deny-all ingress policies that cut Services off."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infragenius.detectors.base import finding
from infragenius.detectors.evidence import examples
from infragenius.kube.meta import name_of, namespace_of, ref_of
from infragenius.kube.selectors import selector_text
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Obj, PodIndex, Snapshot

DOCS = "https://kubernetes.io/docs/concepts/services-networking/network-policies/"


def _policy_types(spec: Mapping[str, Any]) -> list[str]:
    """Declared policyTypes, or the API's default: Ingress, plus Egress when egress rules exist."""
    if spec.get("policyTypes"):
        return list(spec["policyTypes"])
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def _is_empty(selector: Mapping[str, Any] | None) -> bool:
    return not selector or (not selector.get("matchLabels") and not selector.get("matchExpressions"))


class NetworkpolicyDetector:
    name: str = "networkpolicy"
    kinds: frozenset[str] = frozenset({"NetworkPolicy", "Pod", "Service"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        policies = snapshot.items("NetworkPolicy")
        if not policies:
            return []
        pods = snapshot.active_pods if snapshot.has("Pod") else None
        findings: list[Finding] = []
        by_ns: dict[str | None, list[Obj]] = {}
        for policy in policies:
            by_ns.setdefault(namespace_of(policy), []).append(policy)
        for namespace, ns_policies in by_ns.items():
            for policy in ns_policies:
                selector = (policy.get("spec") or {}).get("podSelector") or {}
                if pods is not None and not _is_empty(selector) and not pods.select(namespace, selector):
                    findings.append(
                        self._selects_nothing(snapshot, policy, selector, len(pods.by_ns.get(namespace, [])))
                    )
            findings.extend(self._deny_all(snapshot, namespace, ns_policies, pods))
        return findings

    def _selects_nothing(self, snapshot: Snapshot, policy: Obj, selector: Mapping[str, Any], in_ns: int) -> Finding:
        namespace, name = namespace_of(policy), name_of(policy)
        text = selector_text(selector, api_operators=True)  # the wording its findings have always had
        return finding(
            detector=self.name,
            severity=Severity.warning,
            resource=ref_of(policy, "NetworkPolicy"),
            owners=snapshot.owner_chain(policy),
            problem="SelectsNoPods",
            title=f"NetworkPolicy {name} podSelector {text} matches no pods; it protects nothing",
            evidence=[
                ("spec.podSelector", text),
                ("pods matching selector", f"0 of {in_ns} active pods in {namespace}"),
            ],
            remediation=(
                f"Compare with the pod labels (kubectl -n {namespace} get pods --show-labels) "
                "and fix spec.podSelector; "
                "a typo here silently leaves the intended pods unprotected."
            ),
            docs=DOCS,
        )

    def _deny_all(
        self, snapshot: Snapshot, namespace: str | None, policies: list[Obj], pods: PodIndex | None
    ) -> list[Finding]:
        if not snapshot.has("Service"):
            return []
        deny = [
            p
            for p in policies
            if _is_empty((p.get("spec") or {}).get("podSelector"))
            and "Ingress" in _policy_types(p.get("spec") or {})
            and not (p.get("spec") or {}).get("ingress")
        ]
        if not deny:
            return []
        allowing = [
            p
            for p in policies
            if "Ingress" in _policy_types(p.get("spec") or {}) and (p.get("spec") or {}).get("ingress")
        ]
        services = [
            s
            for s in snapshot.items("Service")
            if namespace_of(s) == namespace and (s.get("spec") or {}).get("selector")
        ]
        if not services:
            return []
        blocked = _blocked(namespace, services, allowing, pods)
        if not blocked:
            return []
        policy = deny[0]
        name = name_of(policy)
        return [
            finding(
                detector=self.name,
                severity=Severity.info,
                resource=ref_of(policy, "NetworkPolicy"),
                owners=snapshot.owner_chain(policy),
                problem="DenyAllIngress",
                title=f"NetworkPolicy {name} denies all ingress in {namespace}; "
                f"{len(blocked)} Services receive no traffic ({examples(sorted(blocked), 3)})",
                evidence=[
                    ("spec.podSelector", "{} (all pods)"),
                    ("spec.policyTypes", ", ".join(_policy_types(policy.get("spec") or {}))),
                    ("spec.ingress", "<none>"),
                    ("Services with no allowing policy", examples(sorted(blocked))),
                ],
                remediation=(
                    "If these Services should be reachable, add a NetworkPolicy that selects their pods and allows the "
                    "callers (namespaceSelector/podSelector/ports); "
                    f"check with kubectl -n {namespace} get networkpolicy."
                ),
                docs="https://kubernetes.io/docs/concepts/services-networking/network-policies/#default-deny-all-ingress-traffic",
                affected=len(blocked),
            )
        ]


def _blocked(namespace: str | None, services: list[Obj], allowing: list[Obj], pods: PodIndex | None) -> list[str]:
    """Services whose backing pods no allowing policy admits traffic to."""
    if pods is None:
        if allowing:
            return []  # other policies may open exactly these services; without pods we cannot tell
        return [name_of(s) for s in services]
    # Pods some policy admits traffic to; a deny-all plus targeted allows is the recommended pattern.
    allowed: set[int] = set()
    for policy in allowing:
        allowed.update(id(p) for p in pods.select(namespace, (policy.get("spec") or {}).get("podSelector") or {}))
    blocked = []
    for svc in services:
        backing = pods.select_map(namespace, svc["spec"]["selector"])
        if backing and not any(id(p) in allowed for p in backing):
            blocked.append(name_of(svc))
    return blocked


DETECTOR = NetworkpolicyDetector()
