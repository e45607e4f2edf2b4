"""Prometheus figures: CPU throttling, memory close to the limit, restarts over the window."""

from __future__ import annotations

from dataclasses import dataclass, field

from infragenius.detectors.base import finding
from infragenius.kube.meta import Key, ref_from_key
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import ContainerMetrics, Snapshot

DOCS = "https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/"
THROTTLE_WARNING, THROTTLE_CRITICAL = 0.25, 0.5
MEMORY_WARNING, MEMORY_CRITICAL = 0.9, 0.97
RESTARTS_WARNING = 3
MIB = 1024 * 1024


@dataclass
class _Group:
    critical: bool = False
    pods: set[str] = field(default_factory=set)
    # (sort value, pod, container, metrics); formatted only for the few shown as evidence
    samples: list[tuple[float, str, str, ContainerMetrics]] = field(default_factory=list)


class MetricsDetector:
    name: str = "metrics"
    kinds: frozenset[str] = frozenset({"Pod", "ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        groups: dict[tuple[Key, str], _Group] = {}
        for (namespace, pod, container), m in snapshot.metrics.items():
            if snapshot.namespace and namespace != snapshot.namespace:
                continue
            problems = self._problems(m)
            if not problems:
                continue  # the common case: skip the owner lookup entirely
            pod_obj = snapshot.get("Pod", pod, namespace)
            key = snapshot.rollup_key(pod_obj, "Pod") if pod_obj is not None else ("Pod", namespace or None, pod)
            for problem, critical, value in problems:
                group = groups.get((key, problem))
                if group is None:
                    group = groups[(key, problem)] = _Group()
                group.critical = group.critical or critical
                group.pods.add(pod)
                group.samples.append((value, pod, container, m))
        return [self._finding(snapshot, key, problem, group) for (key, problem), group in groups.items()]

    @staticmethod
    def _problems(m: ContainerMetrics) -> list[tuple[str, bool, float]]:
        """(problem, critical?, value) for each threshold this container crosses."""
        out = []
        throttled = m.cpu_throttled_ratio
        if throttled is not None and throttled >= THROTTLE_WARNING:
            out.append(("CPUThrottled", throttled >= THROTTLE_CRITICAL, throttled))
        if m.memory_working_set_bytes is not None and m.memory_limit_bytes:
            ratio = m.memory_working_set_bytes / m.memory_limit_bytes
            if ratio >= MEMORY_WARNING:
                out.append(("MemoryNearLimit", ratio >= MEMORY_CRITICAL, ratio))
        if m.restarts is not None and m.restarts >= RESTARTS_WARNING:
            out.append(("Restarts", False, m.restarts))
        return out

    @staticmethod
    def _format(problem: str, m: ContainerMetrics) -> str:
        if problem == "CPUThrottled":
            return f"{m.cpu_throttled_ratio:.0%} of CFS periods throttled"
        if problem == "MemoryNearLimit":
            assert m.memory_working_set_bytes is not None and m.memory_limit_bytes
            ratio = m.memory_working_set_bytes / m.memory_limit_bytes
            return (
                f"{m.memory_working_set_bytes / MIB:.0f}MiB of {m.memory_limit_bytes / MIB:.0f}MiB limit ({ratio:.0%})"
            )
        return f"{round(m.restarts or 0)} restarts"

    def _finding(self, snapshot: Snapshot, key: Key, problem: str, group: _Group) -> Finding:
        kind, namespace, name = key
        samples = sorted(group.samples, key=lambda s: (-s[0], s[1], s[2]))[:5]
        worst_value = samples[0][0]
        worst_where = f"{samples[0][1]}/{samples[0][2]}"
        worst_text = self._format(problem, samples[0][3])
        window = snapshot.metrics_window
        metric, title, remediation = {
            "CPUThrottled": (
                "cpu_throttled_ratio",
                f"{kind} {name}: CPU throttled in {worst_text.split(' ', 1)[0]} of periods "
                f"({worst_where}, over {window})",
                "The container hits its CPU limit: raise or remove resources.limits.cpu (keep the request), or reduce "
                f"CPU use. kubectl -n {namespace} top pod --containers",
            ),
            "MemoryNearLimit": (
                "memory_working_set_bytes",
                f"{kind} {name}: memory at {worst_value:.0%} of its limit ({worst_where}); OOM kill is near",
                "Raise resources.limits.memory (and the request) to real peak usage plus headroom, or fix the leak. "
                f"kubectl -n {namespace} top pod --containers",
            ),
            "Restarts": (
                "restarts",
                f"{kind} {name}: {round(worst_value)} container restarts in {window} ({worst_where})",
                f"Read why the previous container ended: kubectl -n {namespace} logs {worst_where.split('/')[0]} "
                f"-c {worst_where.split('/')[1]} --previous; "
                f"kubectl -n {namespace} describe pod {worst_where.split('/')[0]}",
            ),
        }[problem]
        evidence = [
            (f"metric:{metric}", f"{pod}/{container}: {self._format(problem, m)}") for _, pod, container, m in samples
        ]
        if len(group.pods) > 1:
            evidence.append(("pods affected", str(len(group.pods))))
        return finding(
            detector=self.name,
            severity=Severity.critical if group.critical else Severity.warning,
            resource=ref_from_key(key),
            owners=snapshot.owners_of(key),
            problem=problem,
            title=title,
            evidence=evidence,
            remediation=remediation,
            docs=DOCS,
            affected=len(group.pods),
        )


DETECTOR = MetricsDetector()
