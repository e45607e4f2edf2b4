"""Admission webhooks (validating and mutating) whose backing Service in this namespace is gone or down.

A webhook with failurePolicy Fail that cannot be reached rejects every API request it
matches, so a dead webhook service in one namespace can block deploys cluster-wide.
Webhooks served from other namespaces are skipped: their Services are not in the snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from infragenius.detectors._index import endpoint_health
from infragenius.detectors.base import Problem
from infragenius.detectors.evidence import examples
from infragenius.kube.meta import ref_of
from infragenius.kube.selectors import selector_text
from infragenius.models.findings import Finding, ResourceRef, Severity
from infragenius.snapshot import Obj, Snapshot

DOCS = "https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/"
CONFIG_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
# API server default is 10s; long timeouts on a Fail webhook stall every matching request.
SLOW_TIMEOUT_SECONDS = 15


_PROBLEMS: dict[str, Problem] = {
    "SlowTimeout": Problem(
        Severity.info,
        "{what} webhook {hook} fails closed with a {timeout}s timeout; a slow backend stalls matching API requests",
        "Keep timeoutSeconds at 10s or less for failurePolicy Fail webhooks so API calls fail fast.",
        f"{DOCS}#timeouts",
    ),
    "ServiceMissing": Problem(
        Severity.critical,
        "{what} webhook {hook} calls Service {service}, which does not exist; {impact}",
        "Reinstall the component that serves the webhook (kubectl -n {svc_ns} get svc). {fix_disable}",
        DOCS,
    ),
    "ServicePortMissing": Problem(
        Severity.critical,
        "{what} webhook {hook} calls port {port} of Service {service}, which only exposes {svc_ports}; {impact}",
        "Set clientConfig.service.port to a port the Service exposes: kubectl edit {kind} {name}",
        DOCS,
    ),
    "NoReadyEndpoints": Problem(
        Severity.critical,
        "{what} webhook {hook}: Service {service} has no ready endpoints; {impact}",
        "Bring the webhook server back: kubectl -n {svc_ns} get pods -l {selector}; kubectl -n {svc_ns} describe "
        "endpointslices -l kubernetes.io/service-name={svc_name}. {fix_disable}",
        DOCS,
    ),
}


class _Hook:
    """One webhook of a configuration, the Service it calls and what its findings share."""

    def __init__(self, kind: str, resource: ResourceRef, hook: Obj, service: Mapping[str, Any]) -> None:
        self.hook, self.resource = hook, resource
        self.name = hook.get("name", "?")
        self.policy = hook.get("failurePolicy") or "Fail"  # the admissionregistration/v1 default
        self.blocking = self.policy == "Fail"
        self.svc_ns, self.svc_name = service.get("namespace"), service["name"]
        self.port = service.get("port") or 443
        self.fields: dict[str, Any] = {
            "what": "Validating" if kind.startswith("Validating") else "Mutating",
            "hook": self.name,
            "kind": kind.lower(),
            "service": f"{self.svc_ns}/{self.svc_name}",
            "svc_ns": self.svc_ns,
            "svc_name": self.svc_name,
            "impact": "the API server rejects every request it matches (failurePolicy Fail)"
            if self.blocking
            else "its checks are silently skipped (failurePolicy Ignore)",
            "fix_disable": "If the webhook's operator was removed, delete the configuration: "
            f"kubectl delete {kind.lower()} {resource.name}",
        }
        self.evidence: list[tuple[str, object]] = [
            (f"webhooks[{self.name}].clientConfig.service", f"{self.svc_ns}/{self.svc_name}:{self.port}"),
            (f"webhooks[{self.name}].failurePolicy", self.policy),
        ]

    def finding(self, problem: str, evidence: Sequence[tuple[str, object]], **fields: Any) -> Finding:
        # Unreachable Fail webhooks block the API; Ignore ones only skip their checks.
        severity = fields.pop("severity", None) or (Severity.critical if self.blocking else Severity.warning)
        return _PROBLEMS[problem].finding(
            WebhookDetector.name, f"{problem}:{self.name}", self.resource, [*self.evidence, *evidence],
            severity=severity, **self.fields, **fields,
        )  # fmt: skip


class WebhookDetector:
    name: str = "webhook"
    kinds: frozenset[str] = frozenset({*CONFIG_KINDS, "Service", "EndpointSlice", "Pod"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        findings: list[Finding] = []
        for kind in CONFIG_KINDS:
            for cfg in snapshot.items(kind):
                resource = ref_of(cfg, kind)
                for hook in cfg.get("webhooks") or []:
                    service = (hook.get("clientConfig") or {}).get("service") or {}
                    if not service.get("name"):
                        continue  # URL webhooks point outside the cluster
                    if snapshot.namespace and service.get("namespace") != snapshot.namespace:
                        continue
                    findings.extend(self._check(snapshot, _Hook(kind, resource, hook, service)))
        return findings

    def _check(self, snapshot: Snapshot, h: _Hook) -> list[Finding]:
        out = _slow_timeout(h)
        if not snapshot.has("Service"):
            return out
        svc = snapshot.get("Service", h.svc_name, h.svc_ns)
        if svc is None:
            return [*out, h.finding("ServiceMissing", [("Service", f"{h.svc_ns}/{h.svc_name} not found")])]
        svc_ports = [p.get("port") for p in (svc.get("spec") or {}).get("ports") or []]
        if svc_ports and h.port not in svc_ports:
            evidence = [(f"Service/{h.svc_name}.spec.ports[].port", ", ".join(map(str, svc_ports)))]
            out.append(h.finding("ServicePortMissing", evidence, port=h.port, svc_ports=svc_ports))
        out.extend(_no_ready_endpoints(snapshot, h, svc))
        return out


def _slow_timeout(h: _Hook) -> list[Finding]:
    timeout = h.hook.get("timeoutSeconds")
    if not h.blocking or not isinstance(timeout, int) or timeout <= SLOW_TIMEOUT_SECONDS:
        return []
    evidence = [(f"webhooks[{h.name}].timeoutSeconds", timeout)]
    return [h.finding("SlowTimeout", evidence, severity=Severity.info, timeout=timeout)]


def _no_ready_endpoints(snapshot: Snapshot, h: _Hook, svc: Obj) -> list[Finding]:
    pods = snapshot.active_pods if snapshot.has("Pod") else None
    selector = (svc.get("spec") or {}).get("selector") or {}
    if not snapshot.has("EndpointSlice") and (pods is None or not selector):
        return []  # nothing to judge the backends by
    selected = pods.select_map(h.svc_ns, selector) if pods is not None else []
    health = endpoint_health(snapshot, h.svc_ns, h.svc_name, selected)
    if health.ready or health.starting:
        return []
    if health.total == 0 and (not selector or pods is None):
        return []  # manual endpoints not listed, or pods unknown: cannot tell
    shown = selector_text(selector)
    backends = examples(list(health.not_ready)) if health.not_ready else f"no pods match {shown}"
    evidence: list[tuple[str, object]] = [
        ("not ready backends", backends),
        ("ready endpoints", f"0 of {health.total} ({health.source})"),
    ]
    return [h.finding("NoReadyEndpoints", evidence, selector=shown, affected=max(1, len(health.not_ready)))]


DETECTOR = WebhookDetector()
