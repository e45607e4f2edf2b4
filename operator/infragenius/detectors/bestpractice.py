"""Hygiene of pod templates: resources, probes, image tags and risky security settings.

One finding per (workload, problem) naming the containers, judged on the workload's template
(bare pods on their own spec), never per pod.
"""

from __future__ import annotations

from typing import Any, Mapping

from infragenius.detectors._index import SpecSource, Target, workload_targets
from infragenius.detectors.base import finding
from infragenius.kube.meta import namespace_of, ref_from_key
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


class BestpracticeDetector:
    name: str = "bestpractice"
    kinds: frozenset[str] = frozenset({"Pod", "ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Service"})

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
            findings.extend(self._check(snapshot, target, source, served))
        return findings

    def _check(self, snapshot: Snapshot, target: Target, source: SpecSource, served: bool) -> list[Finding]:
        kind, namespace, name = target.key
        spec, prefix = source.spec, source.path
        sample_pod = (target.pods[0].get("spec") or {}) if target.pods and source.kind != "Pod" else None
        pod_containers = {c.get("name"): c for c in (sample_pod or {}).get("containers") or []}
        problems: list[tuple[str, Severity, str, list[tuple[str, str]], str, str]] = []

        # Resources: a LimitRange may fill defaults into the pods, so a running pod must lack them too.
        no_resources = []
        for container in spec.get("containers") or []:
            missing = _missing_resources(container)
            running = pod_containers.get(container.get("name"))
            if running is not None:
                missing = [m for m in missing if m in _missing_resources(running)]
            if missing:
                no_resources.append((f"{prefix}.containers[{container.get('name')}].resources", "no " + ", no ".join(missing)))
        if no_resources:
            problems.append((
                "MissingResources", Severity.info,
                f"{kind} {name}: {len(no_resources)} container(s) without cpu/memory requests or a memory limit",
                no_resources,
                "Set resources.requests (cpu, memory) and resources.limits.memory so the scheduler places pods "
                f"correctly and one pod cannot exhaust the node: kubectl -n {namespace} set resources {kind.lower()}/{name} "
                "--requests=cpu=100m,memory=128Mi --limits=memory=256Mi (size from real usage).",
                RESOURCES_DOCS,
            ))

        # Readiness: only long-running workloads that serve traffic (declared ports or behind a Service).
        if not target.runs_to_completion:
            no_probe = [
                (f"{prefix}.containers[{c.get('name')}].readinessProbe", "<unset>")
                for c in spec.get("containers") or []
                if not c.get("readinessProbe") and (served or c.get("ports"))
            ]
            if no_probe:
                problems.append((
                    "NoReadinessProbe", Severity.info,
                    f"{kind} {name}: {len(no_probe)} serving container(s) without a readiness probe; traffic arrives before the app is ready",
                    no_probe,
                    "Add a readinessProbe (httpGet on a health endpoint, or tcpSocket on the serving port) so Services "
                    "and rollouts only use pods that can answer.",
                    PROBE_DOCS,
                ))

        unpinned = []
        for field_name, container in containers(spec):
            image = container.get("image") or ""
            tag = image_tag(image)
            if image and (tag is None or tag == "latest"):
                unpinned.append((f"{prefix}.{field_name}[{container.get('name')}].image", image))
        if unpinned:
            problems.append((
                "LatestTag", Severity.info,
                f"{kind} {name}: {len(unpinned)} container image(s) use ':latest' or no tag",
                unpinned,
                "Pin images to a version tag or digest (image: repo/app:1.4.2 or @sha256:...) so rollouts are "
                "reproducible and a restart cannot silently change the code.",
                IMAGE_DOCS,
            ))

        if namespace not in SYSTEM_NAMESPACES:
            problems.extend(self._security(kind, name, spec, prefix))

        return [
            finding(
                detector=self.name, severity=severity, resource=ref_from_key(target.key), owners=snapshot.owners_of(target.key),
                problem=problem, title=title, evidence=evidence, remediation=remediation, docs=docs,
                affected=max(1, len(target.pods)),
            )
            for problem, severity, title, evidence, remediation, docs in problems
        ]

    @staticmethod
    def _security(kind: str, name: str, spec: Mapping[str, Any], prefix: str) -> list[tuple[str, Severity, str, list[tuple[str, str]], str, str]]:
        out: list[tuple[str, Severity, str, list[tuple[str, str]], str, str]] = []
        privileged = [
            (f"{prefix}.{f}[{c.get('name')}].securityContext.privileged", "true")
            for f, c in containers(spec) if (c.get("securityContext") or {}).get("privileged") is True
        ]
        if privileged:
            out.append((
                "Privileged", Severity.warning,
                f"{kind} {name}: {len(privileged)} container(s) run privileged with full access to the node",
                privileged,
                "Remove securityContext.privileged; grant only the specific capabilities needed (securityContext.capabilities.add).",
                PSS_DOCS,
            ))

        host_paths = [
            (f"{prefix}.volumes[{v.get('name')}].hostPath.path", (v.get("hostPath") or {}).get("path") or "")
            for v in spec.get("volumes") or [] if v.get("hostPath") is not None
        ]
        if host_paths:
            out.append((
                "HostPath", Severity.warning,
                f"{kind} {name} mounts {len(host_paths)} hostPath volume(s) from the node's filesystem",
                host_paths,
                "Use a PersistentVolumeClaim, emptyDir, ConfigMap or Secret instead; hostPath exposes the node and ties pods to it.",
                "https://kubernetes.io/docs/concepts/storage/volumes/#hostpath",
            ))

        host_ns = [(f"{prefix}.{flag}", "true") for flag in ("hostNetwork", "hostPID", "hostIPC") if spec.get(flag) is True]
        if host_ns:
            flags = ", ".join(src.rsplit(".", 1)[1] for src, _ in host_ns)
            out.append((
                "HostNamespaces", Severity.warning,
                f"{kind} {name} shares the node's namespaces ({flags})",
                host_ns,
                f"Remove {flags} from the pod spec unless this is a node agent that truly needs it.",
                PSS_DOCS,
            ))

        pod_sc = spec.get("securityContext") or {}
        as_root = []
        for f, c in containers(spec):
            sc = c.get("securityContext") or {}
            non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
            user = sc.get("runAsUser", pod_sc.get("runAsUser"))
            if non_root is not True and user in (None, 0):
                as_root.append((f"{prefix}.{f}[{c.get('name')}].securityContext.runAsNonRoot",
                                f"{'unset' if non_root is None else str(non_root).lower()}, runAsUser {'unset' if user is None else user}"))
        if as_root:
            out.append((
                "MayRunAsRoot", Severity.info,
                f"{kind} {name}: {len(as_root)} container(s) may run as root (runAsNonRoot not set, runAsUser unset or 0)",
                as_root,
                "Set securityContext.runAsNonRoot: true and a non-zero runAsUser in the pod template (and build the image with a non-root USER).",
                SECURITY_CONTEXT_DOCS,
            ))
        return out


DETECTOR = BestpracticeDetector()
