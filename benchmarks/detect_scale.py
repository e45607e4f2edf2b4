"""How fast is rule-based detection over a big namespace, next to its floor, old and new code side by side?

Method
------
Offline, no cluster. For each size N (``--pods``, default 1,000 and 5,000) the script builds in memory the
namespace ``benchmarks/analysis_scale.py`` creates on the local cluster, as the API would list it: 50
healthy hardened Deployments plus four crashloop Deployments (about 2% of N) shaped like
``infragenius_devtools.devcluster.scenarios.deployment(hardened=True)``, each with its ReplicaSet and a
Service with its EndpointSlices (at most 100 endpoints a slice, as the EndpointSlice controller cuts
them); Running pods with the status a kubelet writes (the crashloop ones as ``scenarios.patch_failure``
writes it), owner references and labels; N/5 Warning events (BackOff on the crashing pods first, the other
reasons of ``bench.WARNING_EVENT_REASONS`` on random healthy pods); the kwok Nodes the pods run on
(``bench.bench_node``, as many as ``bench.pods_that_fit`` says); the ConfigMap every namespace has. Every
kind ``runner.analyze`` gathers is present (empty when the namespace has none). The clock is fixed, so
every run sees the same snapshot.

The objects are written once as JSON. Each measurement runs in a child process with one tree's
``operator/`` on ``PYTHONPATH`` (this tree's, and ``--baseline DIR``'s if given), alternating between the
trees ``--rounds`` times so both columns come from the same minutes. A child:

1. compacts each kind's objects with that tree's ``gather.compact.Compactor`` (what the gatherer hands
   over), and selects the detectors as ``runner.analyze`` does with the default spec;
2. per run, builds a fresh ``Snapshot`` (its indexes live on the snapshot, so a reused one would be
   warm; building is not timed) and times ``engine.run_detectors`` (the figure is ``result.seconds``,
   which is ``timings.detect_seconds`` in the pipeline); two warm-up runs are not counted;
3. per run, also times the floor: one plain Python pass over every pod's container statuses (what any
   detector must at least touch);
4. reports the findings: their count, their ids, and a digest of their full JSON in result order.

Printed per size and tree: median and p95 of detection, its median CPU time (``time.thread_time``: the
work, without the waits for a core a loaded machine adds), the median time the garbage collector took
within a run (``gc.callbacks``), the median of the floor, the ratio of the medians,
the target (at most 50 ms at 5,000 pods), and whether the two trees' findings are identical (same digest).
``--profile`` prints the top cProfile entries of one ``run_detectors`` on this tree's code (after the
table). Figures are printed, never asserted; the load average is printed with them.

Run: ``python benchmarks/detect_scale.py [--pods 1000 5000] [--runs 30] [--rounds 3] [--baseline DIR]
[--profile]``, a baseline made with ``git -C <repo> archive main operator | tar -x -C /tmp/detect-before``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

TARGET_DETECT_MS = 50.0
TARGET_AT_PODS = 5000
WARMUP_RUNS = 2
PROFILE_TOP = 25

# The namespace of analysis_scale.py (kept in step by hand: importing it needs a cluster's client).
HEALTHY_DEPLOYMENTS = 50
BROKEN_DEPLOYMENTS = 4
BROKEN_FRACTION = 0.02
PODS_PER_EVENT = 5
ENDPOINTS_PER_SLICE = 100
IMAGE = "registry.example/shop/web:1.4.2"
NOW = dt.datetime(2026, 1, 5, 12, 0, 0, tzinfo=dt.UTC)


# --- the namespace, as raw API objects -------------------------------------------------------------


def ago(minutes: float) -> str:
    return (NOW - dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def spread(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class Ids:
    """Deterministic uids, hashes and addresses (a seeded generator: every build is the same)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.count = 0

    def uid(self) -> str:
        self.count += 1
        return f"{self.rng.getrandbits(32):08x}-0000-4000-8000-{self.count:012x}"

    def suffix(self, length: int = 5) -> str:
        return "".join(self.rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(length))


def hardened_container() -> dict[str, Any]:
    """The container of ``scenarios.deployment(hardened=True)`` with the API server's defaults."""
    return {
        "name": "app",
        "image": IMAGE,
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": "http", "scheme": "HTTP"},
            "timeoutSeconds": 1,
            "periodSeconds": 10,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/live", "port": "http", "scheme": "HTTP"},
            "timeoutSeconds": 1,
            "periodSeconds": 10,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }


def template(name: str, broken: bool) -> dict[str, Any]:
    annotations = {"kwok.x-k8s.io/status": "custom"} if broken else {}
    return {
        "metadata": {"labels": {"app": name}, **({"annotations": annotations} if annotations else {})},
        "spec": {
            "containers": [hardened_container()],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
            "schedulerName": "default-scheduler",
        },
    }


def deployment(ns: str, name: str, replicas: int, broken: bool, ids: Ids) -> dict[str, Any]:
    ready = 0 if broken else replicas
    available = (
        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}
        if broken
        else {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}
    )
    conditions = [
        {**available, "lastUpdateTime": ago(25), "lastTransitionTime": ago(25), "message": "Deployment availability."},
        {
            "type": "Progressing",
            "status": "True",
            "reason": "NewReplicaSetAvailable" if not broken else "ReplicaSetUpdated",
            "lastUpdateTime": ago(20),
            "lastTransitionTime": ago(30),
            "message": f'ReplicaSet "{name}" is progressing.',
        },
    ]
    status: dict[str, Any] = {
        "observedGeneration": 1,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "conditions": conditions,
    }
    if ready:
        status.update(readyReplicas=ready, availableReplicas=ready)
    else:
        status["unavailableReplicas"] = replicas
    return {
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": ids.uid(),
            "generation": 1,
            "creationTimestamp": ago(30),
            "labels": {"app": name},
            "annotations": {"deployment.kubernetes.io/revision": "1"},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template(name, broken),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": status,
    }


def replicaset(deploy: dict[str, Any], pod_hash: str, broken: bool) -> dict[str, Any]:
    meta = deploy["metadata"]
    replicas = deploy["spec"]["replicas"]
    labels = {"app": meta["name"], "pod-template-hash": pod_hash}
    tmpl = json.loads(json.dumps(deploy["spec"]["template"]))
    tmpl["metadata"]["labels"] = labels
    status: dict[str, Any] = {"replicas": replicas, "fullyLabeledReplicas": replicas, "observedGeneration": 1}
    if not broken:
        status.update(readyReplicas=replicas, availableReplicas=replicas)
    return {
        "metadata": {
            "name": f"{meta['name']}-{pod_hash}",
            "namespace": meta["namespace"],
            "uid": f"rs-{meta['uid']}",
            "generation": 1,
            "creationTimestamp": ago(30),
            "labels": labels,
            "annotations": {"deployment.kubernetes.io/revision": "1"},
            "ownerReferences": [owner("Deployment", "apps/v1", meta)],
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": tmpl},
        "status": status,
    }


def owner(kind: str, api_version: str, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def container_status(broken: bool, started: str) -> dict[str, Any]:
    if not broken:
        return {
            "name": "app",
            "image": IMAGE,
            "imageID": f"{IMAGE}@sha256:0f1e2d",
            "containerID": "kwok://app",
            "ready": True,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": started}},
            "lastState": {},
        }
    # What scenarios.patch_failure writes for "CrashLoopBackOff".
    return {
        "name": "app",
        "image": IMAGE,
        "imageID": "",
        "ready": False,
        "started": False,
        "restartCount": 7,
        "state": {
            "waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container=app"}
        },
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": ago(2), "finishedAt": ago(1)}},
    }


def pod_conditions(broken: bool, started: str) -> list[dict[str, Any]]:
    ready = "False" if broken else "True"
    not_ready = {"reason": "ContainersNotReady", "message": "containers with unready status: [app]"} if broken else {}
    return [
        {"type": "Initialized", "status": "True", "lastTransitionTime": started},
        {"type": "Ready", "status": ready, "lastTransitionTime": started, **not_ready},
        {"type": "ContainersReady", "status": ready, "lastTransitionTime": started, **not_ready},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
    ]


def pod(rs: dict[str, Any], index: int, node: dict[str, Any], broken: bool, ids: Ids) -> dict[str, Any]:
    rs_meta = rs["metadata"]
    created = ago(30 - (index % 600) / 60)
    spec = json.loads(json.dumps(rs["spec"]["template"]["spec"]))
    spec["containers"][0]["volumeMounts"] = [
        {
            "name": "kube-api-access",
            "readOnly": True,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        }
    ]
    spec.update(
        nodeName=node["metadata"]["name"],
        serviceAccountName="default",
        serviceAccount="default",
        priority=0,
        enableServiceLinks=True,
        preemptionPolicy="PreemptLowerPriority",
        tolerations=[
            {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
        ],
        volumes=[
            {"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {}}]}}
        ],
    )
    address = node["status"]["addresses"][0]["address"]
    return {
        "metadata": {
            "name": f"{rs_meta['name']}-{ids.suffix()}",
            "generateName": f"{rs_meta['name']}-",
            "namespace": rs_meta["namespace"],
            "uid": ids.uid(),
            "resourceVersion": str(1000 + index),
            "creationTimestamp": created,
            "labels": dict(rs_meta["labels"]),
            **({"annotations": {"kwok.x-k8s.io/status": "custom"}} if broken else {}),
            "ownerReferences": [owner("ReplicaSet", "apps/v1", rs_meta)],
        },
        "spec": spec,
        "status": {
            "phase": "Running",
            "conditions": pod_conditions(broken, created),
            "hostIP": address,
            "podIP": f"10.244.{index // 250}.{index % 250 + 1}",
            "startTime": created,
            "containerStatuses": [container_status(broken, created)],
            "qosClass": "Burstable",
        },
    }


def service(ns: str, name: str, ids: Ids) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns, "uid": ids.uid(), "creationTimestamp": ago(30)},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            "type": "ClusterIP",
            "clusterIP": f"10.96.{ids.rng.randint(0, 255)}.{ids.rng.randint(1, 254)}",
            "sessionAffinity": "None",
        },
        "status": {"loadBalancer": {}},
    }


def endpoint_slices(svc: dict[str, Any], pods: list[dict[str, Any]], ids: Ids) -> list[dict[str, Any]]:
    meta = svc["metadata"]
    slices = []
    for start in range(0, len(pods), ENDPOINTS_PER_SLICE):
        endpoints = []
        for p in pods[start : start + ENDPOINTS_PER_SLICE]:
            ready = (p["status"]["conditions"][1]["status"]) == "True"
            endpoints.append(
                {
                    "addresses": [p["status"]["podIP"]],
                    "conditions": {"ready": ready, "serving": ready, "terminating": False},
                    "targetRef": {"kind": "Pod", "namespace": meta["namespace"], "name": p["metadata"]["name"]},
                    "nodeName": p["spec"]["nodeName"],
                }
            )
        slices.append(
            {
                "metadata": {
                    "name": f"{meta['name']}-{ids.suffix()}",
                    "namespace": meta["namespace"],
                    "uid": ids.uid(),
                    "labels": {
                        "kubernetes.io/service-name": meta["name"],
                        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                    },
                    "ownerReferences": [owner("Service", "v1", meta)],
                },
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            }
        )
    return slices


def node(index: int) -> dict[str, Any]:
    """A kwok Node as ``bench.bench_node`` creates it, with the conditions kwok then reports."""
    name = f"bench-node-{index}"
    capacity = {"cpu": "32", "memory": "128Gi", "pods": "250", "ephemeral-storage": "200Gi"}
    conditions = [
        {"type": kind, "status": "False", "reason": f"Kubelet{reason}", "lastHeartbeatTime": ago(0)}
        for kind, reason in (
            ("MemoryPressure", "HasSufficientMemory"),
            ("DiskPressure", "HasNoDiskPressure"),
            ("PIDPressure", "HasSufficientPID"),
        )
    ]
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": ago(0)})
    return {
        "metadata": {
            "name": name,
            "uid": f"node-{index}",
            "creationTimestamp": ago(120),
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
                "type": "kwok",
                "topology.kubernetes.io/zone": f"zone-{index % 3}",
            },
        },
        "spec": {},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": f"10.0.{1 + index // 250}.{index % 250 + 1}"},
                {"type": "Hostname", "address": name},
            ],
            "allocatable": capacity,
            "capacity": capacity,
            "conditions": conditions,
            "nodeInfo": {"architecture": "amd64", "kubeletVersion": "fake", "operatingSystem": "linux"},
            "phase": "Running",
        },
    }


def warning_event(ns: str, target: dict[str, Any], reason: str, message: str, count: int, ids: Ids) -> dict[str, Any]:
    meta = target["metadata"]
    node_name = target["spec"]["nodeName"]
    return {
        "metadata": {"name": f"{meta['name']}.{ids.suffix(16)}", "namespace": ns, "uid": ids.uid()},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta["name"],
            "namespace": ns,
            "uid": meta["uid"],
            "fieldPath": "spec.containers{app}",
        },
        "reason": reason,
        "message": message,
        "type": "Warning",
        "count": count,
        "firstTimestamp": ago(20),
        "lastTimestamp": ago(0),
        "source": {"component": "kubelet", "host": node_name},
        "reportingComponent": "kubelet",
        "reportingInstance": node_name,
    }


def build_namespace(pods: int, gathered: Sequence[str]) -> dict[str, Any]:
    """The raw objects of the namespace (by kind) and its Warning events, newest first."""
    ns = f"detect-{pods}"
    ids = Ids(pods)
    broken_total = max(BROKEN_DEPLOYMENTS, round(pods * BROKEN_FRACTION))
    healthy = {f"web-{i:02d}": r for i, r in enumerate(spread(pods - broken_total, HEALTHY_DEPLOYMENTS))}
    broken = {f"crashloop-{i}": r for i, r in enumerate(spread(broken_total, BROKEN_DEPLOYMENTS))}
    nodes = [node(i) for i in range(math.ceil(pods * 1.1 / 250))]
    objects: dict[str, list[dict[str, Any]]] = {kind: [] for kind in gathered}
    objects["Node"] = nodes
    objects["ConfigMap"] = [
        {"metadata": {"name": "kube-root-ca.crt", "namespace": ns, "uid": ids.uid(), "creationTimestamp": ago(40)}}
    ]
    crashing: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    index = 0
    for name, replicas in [*healthy.items(), *broken.items()]:
        is_broken = name in broken
        deploy = deployment(ns, name, replicas, is_broken, ids)
        rs = replicaset(deploy, ids.suffix(10), is_broken)
        members = []
        for _ in range(replicas):
            members.append(pod(rs, index, nodes[index % len(nodes)], is_broken, ids))
            index += 1
        svc = service(ns, name, ids)
        objects["Deployment"].append(deploy)
        objects["ReplicaSet"].append(rs)
        objects["Pod"].extend(members)
        objects["Service"].append(svc)
        objects["EndpointSlice"].extend(endpoint_slices(svc, members, ids))
        (crashing if is_broken else others).extend(members)
    # The API lists pods by name.
    objects["Pod"].sort(key=lambda p: p["metadata"]["name"])
    wanted = pods // PODS_PER_EVENT
    rng = random.Random(pods)
    events = [
        warning_event(ns, p, "BackOff", "Back-off restarting failed container app", rng.randint(5, 60), ids)
        for p in crashing[:wanted]
    ]
    from infragenius_devtools.bench import WARNING_EVENT_REASONS  # the parent builds the input, with devtools

    for i in range(wanted - len(events)):
        reason, message = WARNING_EVENT_REASONS[i % len(WARNING_EVENT_REASONS)]
        events.append(warning_event(ns, rng.choice(others), reason, message, rng.randint(1, 30), ids))
    return {"namespace": ns, "taken_at": NOW.isoformat(), "objects": objects, "events": events}


# --- the child: one tree's code over the objects ----------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def status_pass(pods: Sequence[Any]) -> float:
    """The floor: one pass reading every pod's container statuses."""
    started = time.perf_counter()
    waiting = 0
    for p in pods:
        for cs in (p.get("status") or {}).get("containerStatuses") or ():
            waiting += bool((cs.get("state") or {}).get("waiting"))
    return time.perf_counter() - started


class GcClock:
    """Time the cyclic garbage collector spends, for the share of detection it takes."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


def child(path: Path, runs: int, profile: bool) -> dict[str, Any]:
    from infragenius.analysis import engine
    from infragenius.detectors import registry
    from infragenius.gather import compact
    from infragenius.snapshot import GatherResult, GatherStatus, Snapshot

    doc = json.loads(path.read_text())
    objects = {kind: compact.Compactor().objects(items, kind) for kind, items in doc["objects"].items()}
    events = compact.Compactor().objects(doc["events"], "Event")
    results = [GatherResult(kind, GatherStatus.ok, len(items)) for kind, items in objects.items()]
    taken_at = dt.datetime.fromisoformat(doc["taken_at"])
    namespace = doc["namespace"]
    del doc  # the gatherer keeps only the compact objects, and the collector scans what is kept
    gc.collect()
    detectors = registry.select()

    def snapshot() -> Any:
        return Snapshot.build(namespace, objects, events, results=results, taken_at=taken_at)

    if profile:
        import cProfile
        import io
        import pstats

        engine.run_detectors(snapshot(), detectors)
        profiler = cProfile.Profile()
        fresh = snapshot()
        profiler.enable()
        engine.run_detectors(fresh, detectors)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        out.write(f"{stats.total_calls} calls (profiled {stats.total_tt * 1000:.0f} ms)\n")  # type: ignore[attr-defined]
        stats.sort_stats("tottime").print_stats(PROFILE_TOP)
        return {"profile": out.getvalue()}

    detect, cpu, floor, collecting = [], [], [], []
    clock = GcClock()
    gc.callbacks.append(clock.callback)
    result = None
    for run in range(WARMUP_RUNS + runs):
        fresh = snapshot()
        clock.seconds = 0.0
        cpu_started = time.thread_time()
        result = engine.run_detectors(fresh, detectors)
        cpu_seconds = time.thread_time() - cpu_started
        gc_seconds = clock.seconds
        floor_seconds = status_pass(objects["Pod"])
        if run >= WARMUP_RUNS:
            detect.append(result.seconds)
            cpu.append(cpu_seconds)
            floor.append(floor_seconds)
            collecting.append(gc_seconds)
    assert result is not None
    digest = hashlib.sha256()
    for finding in result.findings:
        digest.update(finding.model_dump_json().encode())
    return {
        "detect": detect,
        "cpu": cpu,
        "floor": floor,
        "gc": collecting,
        "findings": len(result.findings),
        "ids": sorted(f.id for f in result.findings),
        "digest": digest.hexdigest(),
        "failures": [r.error for r in result.failures],
    }


# --- the parent: alternate the trees, print the table ------------------------------------------------


def run_child(operator_dir: Path, path: Path, runs: int, profile: bool = False) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(operator_dir)}
    args = [sys.executable, __file__, "--child", str(path), "--runs", str(runs)] + (["--profile"] if profile else [])
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child on {operator_dir} failed:\n{done.stderr[-3000:]}")
    reply: dict[str, Any] = json.loads(done.stdout)
    return reply


def gathered_kinds() -> list[str]:
    """Exactly what runner.analyze lists with the default spec (this tree's registry)."""
    from infragenius.detectors import registry
    from infragenius.gather.kube import ENDPOINTS

    return sorted(registry.kinds_needed(registry.select()) & set(ENDPOINTS))


def measure(pods: int, trees: dict[str, Path], args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    path = workdir / f"namespace-{pods}.json"
    path.write_text(json.dumps(build_namespace(pods, gathered_kinds())))
    per_round = max(1, math.ceil(args.runs / args.rounds))
    merged: dict[str, dict[str, Any]] = {}
    for _ in range(args.rounds):
        for label, operator_dir in trees.items():
            reply = run_child(operator_dir, path, per_round)
            kept = merged.setdefault(label, {**reply, "detect": [], "cpu": [], "floor": [], "gc": []})
            kept["detect"] += reply["detect"]
            kept["floor"] += reply["floor"]
            kept["gc"] += reply["gc"]
            kept["cpu"] += reply["cpu"]
            if reply["digest"] != kept["digest"]:
                raise SystemExit(f"{label}: findings differ between runs of the same tree")
    return {"pods": pods, "trees": merged}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def print_table(sizes: list[dict[str, Any]]) -> None:
    header = f"{'pods':>6} {'tree':<8} {'detect med':>10} {'p95':>7} {'cpu med':>7} {'gc med':>6} {'floor med':>9} "
    header += f"{'ratio':>6} "
    print(header + f"{'target':>14} {'findings':>8}  identical")
    for size in sizes:
        trees = size["trees"]
        digests = {t["digest"] for t in trees.values()}
        identical = "yes" if len(digests) == 1 else "NO"
        if len(trees) > 1:
            ids = {tuple(t["ids"]) for t in trees.values()}
            identical += "" if len(digests) == 1 else (" (same ids)" if len(ids) == 1 else " (ids differ)")
        for label, tree in trees.items():
            median = statistics.median(tree["detect"])
            floor = statistics.median(tree["floor"])
            if size["pods"] == TARGET_AT_PODS:
                verdict = "met" if median * 1000 <= TARGET_DETECT_MS else "NOT met"
                target = f"<={TARGET_DETECT_MS:.0f} ms {verdict}"
            else:
                target = "-"
            print(
                f"{size['pods']:>6} {label:<8} {ms(median):>10} {ms(percentile(tree['detect'], 0.95)):>7} "
                f"{ms(statistics.median(tree['cpu'])):>7} {ms(statistics.median(tree['gc'])):>6} {ms(floor):>9} "
                f"{median / floor:>5.0f}x {target:>14} "
                f"{tree['findings']:>8}  "
                f"{identical if len(trees) > 1 else '-'}"
            )
            if tree["failures"]:
                print(f"       {label}: detectors failed: {tree['failures']}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--runs", type=int, default=30, help="timed runs per tree and size (after warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating child processes per tree and size")
    parser.add_argument("--baseline", type=Path, help="another tree's operator/ (or the tree holding it)")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top entries (this tree)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.runs, args.profile)))
        return 0
    sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "devtools")]
    trees: dict[str, Path] = {}
    if args.baseline is not None:
        base = args.baseline / "operator" if (args.baseline / "operator").is_dir() else args.baseline
        trees["before"] = base.resolve()
    trees["after" if trees else "this"] = ROOT / "operator"
    load = os.getloadavg()
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load average {load[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="detect-scale-") as tmp:
        sizes = [measure(pods, trees, args, Path(tmp)) for pods in args.pods]
        load = os.getloadavg()
        cell_runs = len(next(iter(sizes[0]["trees"].values()))["detect"])
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {cell_runs} timed runs per cell")
        print_table(sizes)
        if args.profile:
            path = Path(tmp) / f"namespace-{max(args.pods)}.json"
            print(f"\ncProfile of one run_detectors at {max(args.pods)} pods ({ROOT / 'operator'}):")
            print(run_child(ROOT / "operator", path, 1, profile=True)["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
