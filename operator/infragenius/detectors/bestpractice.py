"""Hygiene of pod templates: resources, probes, image tags and risky security settings.

One finding per (workload, problem) naming the containers, judged on the workload's template
(bare pods on their own spec), never per pod.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from infragenius.detectors import _posture
from infragenius.detectors._index import SpecSource, Target, workload_targets
from infragenius.detectors.base import Problem
from infragenius.kube.meta import annotations_of, namespace_of, ref_from_key
from infragenius.kube.pods import containers
from infragenius.kube.selectors import map_selector_matches
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Snapshot

RESOURCES_DOCS = "https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/"
PROBE_DOCS = "https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/"
IMAGE_DOCS = "https://kubernetes.io/docs/concepts/containers/images/#image-names"
PSS_DOCS = "https://kubernetes.io/docs/concepts/security/pod-security-standards/"
SECURITY_CONTEXT_DOCS = "https://kubernetes.io/docs/tasks/configure-pod-container/security-context/"
# Control-plane and CNI components legitimately run privileged on the host network.
SYSTEM_NAMESPACES = frozenset({"kube-system"})


def image_tag(image: str) -> str | None:
    """The tag of an image reference; "@digest" when pinned by digest; None when untagged."""
    if "@" in image:
        return "@digest"
    last = image.rsplit("/", 1)[-1]  # a registry host may carry a ":port"
    return last.split(":", 1)[1] if ":" in last else None


def _missing_resources(container: Mapping[str, Any]) -> list[str]:
    resources = container.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    missing = []
    if "cpu" not in requests and "cpu" not in limits:  # a limit alone defaults the request
        missing.append("cpu request")
    if "memory" not in requests and "memory" not in limits:
        missing.append("memory request")
    if "memory" not in limits:
        missing.append("memory limit")
    return missing


Evidence = list[tuple[str, str]]

_PROBLEMS: dict[str, Problem] = {
    "MissingResources": Problem(
        Severity.info,
        "{kind} {name}: {count} container(s) without cpu/memory requests or a memory limit",
        "Set resources.requests (cpu, memory) and resources.limits.memory so the scheduler places pods correctly and "
        "one pod cannot exhaust the node: kubectl -n {namespace} set resources {kind_lower}/{name} "
        "--requests=cpu=100m,memory=128Mi --limits=memory=256Mi (size from real usage).",
        RESOURCES_DOCS,
    ),
    "NoReadinessProbe": Problem(
        Severity.info,
        "{kind} {name}: {count} serving container(s) without a readiness probe; traffic arrives before the app is "
        "ready",
        "Add a readinessProbe (httpGet on a health endpoint, or tcpSocket on the serving port) so Services and "
        "rollouts only use pods that can answer.",
        PROBE_DOCS,
    ),
    "LatestTag": Problem(
        Severity.info,
        "{kind} {name}: {count} container image(s) use ':latest' or no tag",
        "Pin images to a version tag or digest (image: repo/app:1.4.2 or @sha256:...) so rollouts are reproducible "
        "and a restart cannot silently change the code.",
        IMAGE_DOCS,
    ),
    "Privileged": Problem(
        Severity.warning,
        "{kind} {name}: {count} container(s) run privileged with full access to the node",
        "Remove securityContext.privileged; grant only the specific capabilities needed "
        "(securityContext.capabilities.add).",
        PSS_DOCS,
    ),
    "HostPath": Problem(
        Severity.warning,
        "{kind} {name} mounts {count} hostPath volume(s) from the node's filesystem",
        "Use a PersistentVolumeClaim, emptyDir, ConfigMap or Secret instead; hostPath exposes the node and ties pods "
        "to it.",
        "https://kubernetes.io/docs/concepts/storage/volumes/#hostpath",
    ),
    "HostNamespaces": Problem(
        Severity.warning,
        "{kind} {name} shares the node's namespaces ({flags})",
        "Remove {flags} from the pod spec unless this is a node agent that truly needs it.",
        PSS_DOCS,
    ),
    "MayRunAsRoot": Problem(
        Severity.info,
        "{kind} {name}: {count} container(s) may run as root (runAsNonRoot not set, runAsUser unset or 0)",
        "Set securityContext.runAsNonRoot: true and a non-zero runAsUser in the pod template (and build the image "
        "with a non-root USER).",
        SECURITY_CONTEXT_DOCS,
    ),
}
_SECURITY = _posture.POSTURE_PROBLEMS


@dataclass(frozen=True)
class _Template:
    """The pod spec judged for one roll-up target, and what the checks need besides it."""

    target: Target
    spec: Mapping[str, Any]
    prefix: str
    served: bool  # a Service selects its pods
    running: Mapping[str, Any]  # containers of one running pod by name (LimitRange defaults show there)


class BestpracticeDetector:
    name: str = "bestpractice"
    kinds: frozenset[str] = frozenset(
        {"Pod", "ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Service"}
    )

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        selectors: dict[str | None, list[Mapping[str, str]]] = {}
        for svc in snapshot.items("Service"):
            if (svc.get("spec") or {}).get("selector"):
                selectors.setdefault(namespace_of(svc), []).append(svc["spec"]["selector"])
        findings: list[Finding] = []
        for target in workload_targets(snapshot).values():
            source = target.template or next(iter(target.sources()), None)
            if source is None:
                continue
            served = any(map_selector_matches(s, source.labels) for s in selectors.get(target.key[1], []))
            findings.extend(self._check(snapshot, _template(target, source, served)))
        return findings

    def _check(self, snapshot: Snapshot, t: _Template) -> list[Finding]:
        kind, namespace, name = t.target.key
        problems = _CHECKS if namespace in SYSTEM_NAMESPACES else (*_CHECKS, *_SECURITY)
        out: list[Finding] = []
        for problem in problems:
            evidence = _CHECKS_BY_NAME[problem](t)
            if not evidence:
                continue
            flags = ", ".join(src.rsplit(".", 1)[1] for src, _ in evidence)  # HostNamespaces' title names them
            count, severity = len(evidence), None
            if problem in _SECURITY:  # the posture policy: a node agent's host access is info (see _posture)
                judged = _posture.verdict(problem, kind, t.spec, _annotations(snapshot, t))
                severity, evidence = judged.severity, [*evidence, *judged.evidence]
            out.append(
                _PROBLEMS[problem].finding(
                    self.name, problem, ref_from_key(t.target.key), evidence, snapshot.owners_of(t.target.key),
                    severity=severity, affected=max(1, len(t.target.pods)), kind=kind, kind_lower=kind.lower(),
                    namespace=namespace, count=count, flags=flags,
                )
            )  # fmt: skip
        return out


def _annotations(snapshot: Snapshot, t: _Template) -> dict[str, Mapping[str, str]]:
    """The workload's annotations and its pod template's, by field path, for the posture policy."""
    kind, namespace, name = t.target.key
    obj = snapshot.get(kind, name, namespace)
    if obj is None:  # the workload was not gathered: the pod the spec came from
        obj, kind = next(iter(t.target.pods), None), "Pod"
    if obj is None:
        return {}
    found = {"metadata.annotations": annotations_of(obj)}
    if kind != "Pod":
        found[f"{t.prefix.removesuffix('.spec')}.metadata.annotations"] = _posture.template_annotations(obj, kind)
    return found


def _template(target: Target, source: SpecSource, served: bool) -> _Template:
    sample_pod = (target.pods[0].get("spec") or {}) if target.pods and source.kind != "Pod" else {}
    running = {c.get("name"): c for c in sample_pod.get("containers") or []}
    return _Template(target, source.spec, source.path, served, running)


def _resources(t: _Template) -> Evidence:
    """A LimitRange may fill defaults into the pods, so a running pod must lack them too."""
    out: Evidence = []
    for container in t.spec.get("containers") or []:
        missing = _missing_resources(container)
        running = t.running.get(container.get("name"))
        if running is not None:
            missing = [m for m in missing if m in _missing_resources(running)]
        if missing:
            out.append((f"{t.prefix}.containers[{container.get('name')}].resources", "no " + ", no ".join(missing)))
    return out


def _readiness(t: _Template) -> Evidence:
    """Only long-running workloads that serve traffic (declared ports or behind a Service) need one."""
    if t.target.runs_to_completion:
        return []
    return [
        (f"{t.prefix}.containers[{c.get('name')}].readinessProbe", "<unset>")
        for c in t.spec.get("containers") or []
        if not c.get("readinessProbe") and (t.served or c.get("ports"))
    ]


def _unpinned(t: _Template) -> Evidence:
    out: Evidence = []
    for field_name, container in containers(t.spec):
        image = container.get("image") or ""
        tag = image_tag(image)
        if image and (tag is None or tag == "latest"):
            out.append((f"{t.prefix}.{field_name}[{container.get('name')}].image", image))
    return out


def _privileged(t: _Template) -> Evidence:
    return [
        (f"{t.prefix}.{f}[{c.get('name')}].securityContext.privileged", "true")
        for f, c in containers(t.spec)
        if (c.get("securityContext") or {}).get("privileged") is True
    ]


def _host_paths(t: _Template) -> Evidence:
    return [
        (f"{t.prefix}.volumes[{v.get('name')}].hostPath.path", (v.get("hostPath") or {}).get("path") or "")
        for v in t.spec.get("volumes") or []
        if v.get("hostPath") is not None
    ]


def _host_namespaces(t: _Template) -> Evidence:
    flags = ("hostNetwork", "hostPID", "hostIPC")
    return [(f"{t.prefix}.{flag}", "true") for flag in flags if t.spec.get(flag) is True]


def _as_root(t: _Template) -> Evidence:
    pod_sc = t.spec.get("securityContext") or {}
    out: Evidence = []
    for f, c in containers(t.spec):
        sc = c.get("securityContext") or {}
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        user = sc.get("runAsUser", pod_sc.get("runAsUser"))
        if non_root is not True and user in (None, 0):
            shown_user = "unset" if user is None else user
            shown = f"{'unset' if non_root is None else str(non_root).lower()}, runAsUser {shown_user}"
            out.append((f"{t.prefix}.{f}[{c.get('name')}].securityContext.runAsNonRoot", shown))
    return out


_CHECKS_BY_NAME: dict[str, Callable[[_Template], Evidence]] = {
    "MissingResources": _resources,
    "NoReadinessProbe": _readiness,
    "LatestTag": _unpinned,
    "Privileged": _privileged,
    "HostPath": _host_paths,
    "HostNamespaces": _host_namespaces,
    "MayRunAsRoot": _as_root,
}
_CHECKS = ("MissingResources", "NoReadinessProbe", "LatestTag")


DETECTOR = BestpracticeDetector()
