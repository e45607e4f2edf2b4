"""Admission webhooks (validating and mutating) whose backing Service in this namespace is gone or down.

A webhook with failurePolicy Fail that cannot be reached rejects every API request it
matches, so a dead webhook service in one namespace can block deploys cluster-wide.
Webhooks served from other namespaces are skipped: their Services are not in the snapshot.
"""

from __future__ import annotations

from typing import Any, Mapping

from infragenius.detectors._index import endpoint_health
from infragenius.detectors.base import finding
from infragenius.detectors.evidence import examples
from infragenius.kube.meta import name_of
from infragenius.kube.selectors import selector_text
from infragenius.models.findings import Finding, ResourceRef, Severity
from infragenius.snapshot import Obj, PodIndex, Snapshot

DOCS = "https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/"
CONFIG_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
# API server default is 10s; long timeouts on a Fail webhook stall every matching request.
SLOW_TIMEOUT_SECONDS = 15


class WebhookDetector:
    name: str = "webhook"
    kinds: frozenset[str] = frozenset({*CONFIG_KINDS, "Service", "EndpointSlice", "Pod"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        pods = snapshot.active_pods if snapshot.has("Pod") else None
        findings: list[Finding] = []
        for kind in CONFIG_KINDS:
            for cfg in snapshot.items(kind):
                resource = ResourceRef(kind=kind, name=name_of(cfg))
                for hook in cfg.get("webhooks") or []:
                    service = (hook.get("clientConfig") or {}).get("service") or {}
                    if not service.get("name"):
                        continue  # URL webhooks point outside the cluster
                    if snapshot.namespace and service.get("namespace") != snapshot.namespace:
                        continue
                    findings.extend(self._check(snapshot, kind, resource, hook, service, pods))
        return findings

    def _check(self, snapshot: Snapshot, kind: str, resource: ResourceRef, hook: Obj,
               service: Mapping[str, Any], pods: PodIndex | None) -> list[Finding]:
        hook_name = hook.get("name", "?")
        policy = hook.get("failurePolicy") or "Fail"  # the admissionregistration/v1 default
        blocking = policy == "Fail"
        severity = Severity.critical if blocking else Severity.warning
        svc_ns, svc_name = service.get("namespace"), service["name"]
        what = "Validating" if kind.startswith("Validating") else "Mutating"
        impact = ("the API server rejects every request it matches (failurePolicy Fail)" if blocking
                  else "its checks are silently skipped (failurePolicy Ignore)")
        base_evidence = [
            (f"webhooks[{hook_name}].clientConfig.service", f"{svc_ns}/{svc_name}:{service.get('port') or 443}"),
            (f"webhooks[{hook_name}].failurePolicy", policy),
        ]
        fix_disable = (
            f"If the webhook's operator was removed, delete the configuration: kubectl delete {kind.lower()} {resource.name}"
        )
        out: list[Finding] = []
        timeout = hook.get("timeoutSeconds")
        if blocking and isinstance(timeout, int) and timeout > SLOW_TIMEOUT_SECONDS:
            out.append(finding(
                detector=self.name, severity=Severity.info, resource=resource, problem=f"SlowTimeout:{hook_name}",
                title=f"{what} webhook {hook_name} fails closed with a {timeout}s timeout; a slow backend stalls matching API requests",
                evidence=[*base_evidence, (f"webhooks[{hook_name}].timeoutSeconds", timeout)],
                remediation="Keep timeoutSeconds at 10s or less for failurePolicy Fail webhooks so API calls fail fast.",
                docs=f"{DOCS}#timeouts",
            ))

        if not snapshot.has("Service"):
            return out
        svc = snapshot.get("Service", svc_name, svc_ns)
        if svc is None:
            out.append(finding(
                detector=self.name, severity=severity, resource=resource, problem=f"ServiceMissing:{hook_name}",
                title=f"{what} webhook {hook_name} calls Service {svc_ns}/{svc_name}, which does not exist; {impact}",
                evidence=[*base_evidence, ("Service", f"{svc_ns}/{svc_name} not found")],
                remediation=f"Reinstall the component that serves the webhook (kubectl -n {svc_ns} get svc). {fix_disable}",
                docs=DOCS,
            ))
            return out

        port = service.get("port") or 443
        svc_ports = [p.get("port") for p in (svc.get("spec") or {}).get("ports") or []]
        if svc_ports and port not in svc_ports:
            out.append(finding(
                detector=self.name, severity=severity, resource=resource, problem=f"ServicePortMissing:{hook_name}",
                title=f"{what} webhook {hook_name} calls port {port} of Service {svc_ns}/{svc_name}, which only exposes {svc_ports}; {impact}",
                evidence=[*base_evidence, (f"Service/{svc_name}.spec.ports[].port", ", ".join(map(str, svc_ports)))],
                remediation=f"Set clientConfig.service.port to a port the Service exposes: kubectl edit {kind.lower()} {resource.name}",
                docs=DOCS,
            ))

        selector = (svc.get("spec") or {}).get("selector") or {}
        if not snapshot.has("EndpointSlice") and (pods is None or not selector):
            return out  # nothing to judge the backends by
        selected = pods.select_map(svc_ns, selector) if pods is not None else []
        health = endpoint_health(snapshot, svc_ns, svc_name, selected)
        if health.ready or health.starting:
            return out
        if health.total == 0 and (not selector or pods is None):
            return out  # manual endpoints not listed, or pods unknown: cannot tell
        backends = examples(list(health.not_ready)) if health.not_ready else f"no pods match {selector_text(selector)}"
        out.append(finding(
            detector=self.name, severity=severity, resource=resource, problem=f"NoReadyEndpoints:{hook_name}",
            title=f"{what} webhook {hook_name}: Service {svc_ns}/{svc_name} has no ready endpoints; {impact}",
            evidence=[*base_evidence, ("not ready backends", backends),
                      ("ready endpoints", f"0 of {health.total} ({health.source})")],
            remediation=(
                f"Bring the webhook server back: kubectl -n {svc_ns} get pods -l {selector_text(selector)}; "
                f"kubectl -n {svc_ns} describe endpointslices -l kubernetes.io/service-name={svc_name}. {fix_disable}"
            ),
            docs=DOCS, affected=max(1, len(health.not_ready)),
        ))
        return out


DETECTOR = WebhookDetector()
