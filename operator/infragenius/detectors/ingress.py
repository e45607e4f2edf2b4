"""Ingresses whose backends, class or TLS secrets do not exist."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from infragenius.detectors.base import finding
from infragenius.detectors.evidence import examples
from infragenius.kube.meta import meta, name_of, namespace_of, ref_of
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Obj, Snapshot

DOCS = "https://kubernetes.io/docs/concepts/services-networking/ingress/"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


def _backends(ing: Obj) -> Iterator[tuple[str, str, Any]]:
    """(field path, readable host+path, backend) for every backend, the default backend first."""
    spec = ing.get("spec") or {}
    if spec.get("defaultBackend"):
        yield "spec.defaultBackend", "default backend", spec["defaultBackend"]
    for i, rule in enumerate(spec.get("rules") or []):
        for j, path in enumerate((rule.get("http") or {}).get("paths") or []):
            if path.get("backend"):
                where = f"{rule.get('host') or '*'}{path.get('path') or '/'}"
                yield f"spec.rules[{i}].http.paths[{j}].backend", where, path["backend"]


Where = tuple[str, str]  # (field path, readable host+path)


def _broken_backends(snapshot: Snapshot, ing: Obj) -> tuple[dict[str, list[Where]], dict[tuple[str, str], list[Where]]]:
    """Backends naming a missing Service, and ones naming a port their Service lacks; each with every
    path that uses it, so one finding per missing service / port lists them all."""
    namespace = namespace_of(ing)
    missing: dict[str, list[Where]] = {}
    bad_port: dict[tuple[str, str], list[Where]] = {}
    for path, where_text, backend in _backends(ing):
        service = backend.get("service")
        if not service or not service.get("name"):
            continue  # a resource backend (e.g. a storage bucket) is not ours to check
        svc = snapshot.get("Service", service["name"], namespace)
        if svc is None:
            missing.setdefault(service["name"], []).append((path, where_text))
            continue
        port = service.get("port") or {}
        ports = (svc.get("spec") or {}).get("ports") or []
        if "number" in port and port["number"] is not None:
            wanted, ok = str(port["number"]), any(p.get("port") == port["number"] for p in ports)
        elif port.get("name"):
            wanted, ok = port["name"], any(p.get("name") == port["name"] for p in ports)
        else:
            continue
        if not ok:
            bad_port.setdefault((service["name"], wanted), []).append((path, where_text))
    return missing, bad_port


def _ports_text(svc: Obj) -> str:
    return ", ".join(
        f"{p.get('name')}:{p.get('port')}" if p.get("name") else str(p.get("port"))
        for p in (svc.get("spec") or {}).get("ports") or []
    )


class IngressDetector:
    name: str = "ingress"
    kinds: frozenset[str] = frozenset({"Ingress", "Service", "IngressClass", "Secret"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        findings: list[Finding] = []
        default_class = any(
            (meta(c).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
            for c in snapshot.items("IngressClass")
        )
        for ing in snapshot.items("Ingress"):
            findings.extend(self._backends(snapshot, ing))
            findings.extend(self._class(snapshot, ing, default_class))
            findings.extend(self._tls(snapshot, ing))
        return findings

    def _backends(self, snapshot: Snapshot, ing: Obj) -> list[Finding]:
        if not snapshot.has("Service"):
            return []
        missing, bad_port = _broken_backends(snapshot, ing)
        namespace, name = namespace_of(ing), name_of(ing)
        resource, owners = ref_of(ing, "Ingress"), snapshot.owner_chain(ing)
        out = []
        for service, wheres in missing.items():
            out.append(
                finding(
                    detector=self.name,
                    severity=Severity.critical,
                    resource=resource,
                    owners=owners,
                    problem=f"BackendServiceMissing:{service}",
                    title=f"Ingress {name} routes {examples([w[1] for w in wheres], 3)} to Service {service}, "
                    "which does not exist",
                    evidence=[(f"{p}.service.name", service) for p, _ in wheres[:5]]
                    + [("Service", f"{namespace}/{service} not found")],
                    remediation=(
                        "Create the Service or point the Ingress at an existing one: "
                        f"kubectl -n {namespace} get services; "
                        f"kubectl -n {namespace} edit ingress {name}"
                    ),
                    docs=DOCS,
                    affected=len(wheres),
                )
            )
        for (service, port), wheres in bad_port.items():
            have = _ports_text(snapshot.get("Service", service, namespace) or {})
            out.append(
                finding(
                    detector=self.name,
                    severity=Severity.warning,
                    resource=resource,
                    owners=owners,
                    problem=f"BackendPortMissing:{service}:{port}",
                    title=f"Ingress {name} uses port {port} of Service {service}, which the Service does not expose",
                    evidence=[(f"{p}.service.port", port) for p, _ in wheres[:5]]
                    + [(f"Service/{service}.spec.ports", have or "<none>")],
                    remediation=f"Use one of the Service's ports ({have or 'none defined'}) in the Ingress backend: "
                    f"kubectl -n {namespace} edit ingress {name}",
                    docs=DOCS,
                    affected=len(wheres),
                )
            )
        return out

    def _class(self, snapshot: Snapshot, ing: Obj, default_class: bool) -> list[Finding]:
        if not snapshot.has("IngressClass"):
            return []
        namespace, name = namespace_of(ing), name_of(ing)
        resource, owners = ref_of(ing, "Ingress"), snapshot.owner_chain(ing)
        class_name = (ing.get("spec") or {}).get("ingressClassName")
        if class_name:
            if snapshot.get("IngressClass", class_name) is not None:
                return []
            known = ", ".join(name_of(c) for c in snapshot.items("IngressClass")) or "<none>"
            return [
                finding(
                    detector=self.name,
                    severity=Severity.warning,
                    resource=resource,
                    owners=owners,
                    problem="IngressClassMissing",
                    title=f"Ingress {name} uses IngressClass {class_name}, which does not exist; "
                    "no controller will serve it",
                    evidence=[("spec.ingressClassName", class_name), ("IngressClass", f"existing: {known}")],
                    remediation=(
                        f"Set spec.ingressClassName to an installed class ({known}) or install its controller: "
                        f"kubectl -n {namespace} edit ingress {name}"
                    ),
                    docs="https://kubernetes.io/docs/concepts/services-networking/ingress/#ingress-class",
                )
            ]
        if (meta(ing).get("annotations") or {}).get(LEGACY_CLASS_ANNOTATION) or default_class:
            return []  # the legacy annotation or the default class picks a controller
        return [
            finding(
                detector=self.name,
                severity=Severity.info,
                resource=resource,
                owners=owners,
                problem="NoIngressClass",
                title=f"Ingress {name} names no IngressClass and the cluster has no default class",
                evidence=[
                    ("spec.ingressClassName", "<unset>"),
                    (f"IngressClass annotation {DEFAULT_CLASS_ANNOTATION}", "no class marked default"),
                ],
                remediation=(
                    "Controllers that require a class will ignore this Ingress. Set spec.ingressClassName "
                    "(kubectl get ingressclass) or mark a class default with annotation "
                    f"{DEFAULT_CLASS_ANNOTATION}=true."
                ),
                docs="https://kubernetes.io/docs/concepts/services-networking/ingress/#default-ingress-class",
            )
        ]

    def _tls(self, snapshot: Snapshot, ing: Obj) -> list[Finding]:
        if not snapshot.has("Secret"):
            return []
        namespace, name = namespace_of(ing), name_of(ing)
        out = []
        for i, tls in enumerate((ing.get("spec") or {}).get("tls") or []):
            secret = tls.get("secretName")
            if not secret or snapshot.get("Secret", secret, namespace) is not None:
                continue
            hosts = ", ".join(tls.get("hosts") or []) or "<all hosts>"
            out.append(
                finding(
                    detector=self.name,
                    severity=Severity.warning,
                    resource=ref_of(ing, "Ingress"),
                    owners=snapshot.owner_chain(ing),
                    problem=f"TLSSecretMissing:{secret}",
                    title=f"Ingress {name} TLS secret {secret} does not exist; "
                    f"HTTPS for {hosts} falls back to the controller's default certificate",
                    evidence=[
                        (f"spec.tls[{i}].secretName", secret),
                        (f"spec.tls[{i}].hosts", hosts),
                        ("Secret", f"{namespace}/{secret} not found"),
                    ],
                    remediation=(
                        f"Create the TLS secret (kubectl -n {namespace} create secret tls {secret} "
                        "--cert=tls.crt --key=tls.key) "
                        "or check the cert-manager Certificate that should issue it."
                    ),
                    docs="https://kubernetes.io/docs/concepts/services-networking/ingress/#tls",
                )
            )
        return out


DETECTOR = IngressDetector()
