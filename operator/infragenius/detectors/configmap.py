"""ConfigMaps that pods need but that do not exist, and ConfigMaps nothing uses."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from infragenius.detectors._index import SpecSource, Target, workload_targets
from infragenius.detectors.base import finding
from infragenius.detectors.evidence import examples
from infragenius.kube.meta import Key, meta, name_of, namespace_of, ref_from_key, ref_of
from infragenius.kube.pods import containers
from infragenius.kube.time import human_duration, seconds_since
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Obj, Snapshot

DOCS = "https://kubernetes.io/docs/concepts/configuration/configmap/"
# Published into every namespace by the control plane or a mesh; nothing has to mount them.
AUTO_CONFIGMAPS = frozenset({"kube-root-ca.crt", "openshift-service-ca.crt", "istio-ca-root-cert"})
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
# Without all of these, "nothing references it" could just mean "we did not look".
REFERRER_KINDS = ("Pod", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def configmap_refs(spec: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str, bool]]:
    """(ConfigMap name, field path, optional) for every ConfigMap a pod spec uses."""
    for vol in spec.get("volumes") or []:
        vname = vol.get("name", "?")
        cm = vol.get("configMap")
        if cm and cm.get("name"):
            yield cm["name"], f"{prefix}.volumes[{vname}].configMap.name", bool(cm.get("optional"))
        for i, source in enumerate((vol.get("projected") or {}).get("sources") or []):
            cm = source.get("configMap")
            if cm and cm.get("name"):
                yield (
                    cm["name"],
                    f"{prefix}.volumes[{vname}].projected.sources[{i}].configMap.name",
                    bool(cm.get("optional")),
                )
    for field_name, container in containers(spec):
        cname = container.get("name", "?")
        for env_from in container.get("envFrom") or []:
            cm = env_from.get("configMapRef")
            if cm and cm.get("name"):
                yield (
                    cm["name"],
                    f"{prefix}.{field_name}[{cname}].envFrom[].configMapRef.name",
                    bool(cm.get("optional")),
                )
        for env in container.get("env") or []:
            cm = (env.get("valueFrom") or {}).get("configMapKeyRef")
            if cm and cm.get("name"):
                yield (
                    cm["name"],
                    f"{prefix}.{field_name}[{cname}].env[{env.get('name', '?')}].valueFrom.configMapKeyRef.name",
                    bool(cm.get("optional")),
                )


def _strings(spec: Mapping[str, Any]) -> Iterator[str]:
    """Command lines and env values, where controllers name ConfigMaps they read via the API."""
    for _, container in containers(spec):
        yield from container.get("command") or []
        yield from container.get("args") or []
        for env in container.get("env") or []:
            if env.get("value"):
                yield env["value"]


class ConfigmapDetector:
    name: str = "configmap"
    kinds: frozenset[str] = frozenset(
        {"ConfigMap", "Pod", "ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
    )

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        if not snapshot.has("ConfigMap"):
            return []
        targets = workload_targets(snapshot)
        referenced: set[tuple[str | None, str]] = set()
        findings: list[Finding] = []
        for target in targets.values():
            namespace = target.key[1]
            # name -> (first field path, pods referencing it, the source it was first seen in)
            missing: dict[str, tuple[str, set[str], str]] = {}
            # The template, plus what actually runs (pods can lag behind it, e.g. old ReplicaSets):
            # one pod per controller stands for all its pods, which share its spec.
            sources: list[tuple[SpecSource, list[Obj]]] = [(target.template, [])] if target.template else []
            for pods in target.groups.values():
                sources.append((SpecSource("Pod", name_of(pods[0]), "spec", pods[0].get("spec") or {}, {}), pods))
            for source, pods in sources:
                for cm_name, path, optional in configmap_refs(source.spec, source.path):
                    referenced.add((namespace, cm_name))
                    if optional or snapshot.get("ConfigMap", cm_name, namespace) is not None:
                        continue
                    entry = missing.setdefault(cm_name, (path, set(), f"{source.kind}/{source.name}"))
                    entry[1].update(name_of(p) for p in pods)
            for cm_name, (path, pod_names, where) in missing.items():
                findings.append(self._missing(snapshot, target, cm_name, path, sorted(pod_names), where))
        if all(snapshot.has(k) for k in REFERRER_KINDS):
            findings.extend(self._unreferenced(snapshot, targets, referenced))
        return findings

    def _missing(
        self, snapshot: Snapshot, target: Target, cm_name: str, path: str, pods: list[str], where: str
    ) -> Finding:
        kind, namespace, name = target.key
        evidence: list[tuple[str, str]] = [(path, cm_name), ("ConfigMap", f"{namespace}/{cm_name} not found")]
        if pods:
            evidence.append(("pods referencing it", examples(pods)))
        else:
            evidence.append(("referenced by", where))
        return finding(
            detector=self.name,
            severity=Severity.critical,
            resource=ref_from_key(target.key),
            owners=snapshot.owners_of(target.key),
            problem=f"ConfigMapMissing:{cm_name}",
            title=f"{kind} {name} references ConfigMap {cm_name}, which does not exist; its pods cannot start",
            evidence=evidence,
            remediation=(
                f"Create the ConfigMap (kubectl -n {namespace} create configmap {cm_name} --from-file=...) or fix the "
                f"name in the pod template; mark the reference optional: true only if the app can run without it."
            ),
            docs=DOCS,
            affected=max(1, len(pods)),
        )

    def _unreferenced(
        self, snapshot: Snapshot, targets: dict[Key, Target], referenced: set[tuple[str | None, str]]
    ) -> list[Finding]:
        parts: dict[str | None, list[str]] = {}
        for target in targets.values():
            for source in target.sources():
                parts.setdefault(target.key[1], []).extend(_strings(source.spec))
        mentioned_by_ns = {namespace: "\n".join(texts) for namespace, texts in parts.items()}
        out = []
        for cm in snapshot.items("ConfigMap"):
            cm_meta = meta(cm)
            namespace, name = namespace_of(cm), name_of(cm)
            if (
                (namespace, name) in referenced
                or name in AUTO_CONFIGMAPS
                or namespace in SYSTEM_NAMESPACES
                or cm_meta.get("ownerReferences")
                or LEADER_ANNOTATION in (cm_meta.get("annotations") or {})
                or (cm_meta.get("labels") or {}).get("owner") == "helm"  # Helm release storage (configmap driver)
                or name in mentioned_by_ns.get(namespace, "")
            ):
                continue
            age = seconds_since(snapshot.taken_at, cm_meta.get("creationTimestamp"))
            out.append(
                finding(
                    detector=self.name,
                    severity=Severity.info,
                    resource=ref_of(cm, "ConfigMap"),
                    problem="Unreferenced",
                    title=f"ConfigMap {name} is not used by any pod or workload template in {namespace}",
                    evidence=[
                        ("references", "no volume, projected source, envFrom or env valueFrom names it"),
                        (
                            "metadata.creationTimestamp",
                            f"{cm_meta.get('creationTimestamp')} ({human_duration(age, coarse=True)} ago)",
                        ),
                    ],
                    remediation=(
                        "If nothing reads it through the API either, delete it: "
                        f"kubectl -n {namespace} delete configmap {name}"
                    ),
                    docs=DOCS,
                )
            )
        return out


DETECTOR = ConfigmapDetector()
