"""The severity policy of security-posture findings (the README's detector section explains it).

Node agents (metrics exporters, log shippers) run as DaemonSets and need host access by design:
read-only host mounts and host namespaces there are facts to know (info), not problems to act on.
What can change the node, or host access where a node agent is not plausible, stays a warning:

- ``Privileged``: always a warning.
- ``HostPath``: info on a DaemonSet whose hostPath volumes are all mounted read-only, none is a socket
  and no container is privileged; otherwise (a writable mount, a socket, a privileged container, or
  any other kind) a warning.
- ``HostNamespaces``: info on a DaemonSet whose containers are not privileged and add no capability
  beyond the Pod Security baseline set; otherwise a warning.
- ``MayRunAsRoot``: always info.

The annotation ``infragenius.io/accept-posture`` on the workload (or on its pod template), a comma
separated list of these problem names or ``*``, accepts them for that workload: the finding stays,
as info, with the annotation in its evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from infragenius.kube.pods import SPEC_PATHS, containers
from infragenius.models.findings import Severity

ACCEPT_ANNOTATION = "infragenius.io/accept-posture"
POSTURE_PROBLEMS = ("Privileged", "HostPath", "HostNamespaces", "MayRunAsRoot")
NODE_AGENT_KINDS = frozenset({"DaemonSet"})
#: Capabilities the Pod Security "baseline" profile lets a container add (the runtimes' default set):
#: adding them grants nothing a container does not already have.
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
        "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    }
)  # fmt: skip
POLICY_SOURCE = "posture policy"

Evidence = list[tuple[str, str]]


@dataclass(frozen=True)
class Verdict:
    """The severity a posture finding gets, and the evidence that says why."""

    severity: Severity
    evidence: Evidence


def verdict(problem: str, kind: str, spec: Mapping[str, Any], annotations: Mapping[str, Mapping[str, str]]) -> Verdict:
    """Judge one posture problem of a workload of ``kind``; ``annotations`` by field path (workload, template)."""
    severity, why = _RULES[problem](kind, spec)
    evidence: Evidence = [(POLICY_SOURCE, f"{severity.value}: {why}")] if why else []
    for path, values in annotations.items():
        accepted = {p.strip() for p in (values.get(ACCEPT_ANNOTATION) or "").split(",") if p.strip()}
        if problem in accepted or "*" in accepted:
            evidence.append((f"{path}[{ACCEPT_ANNOTATION}]", f"{values[ACCEPT_ANNOTATION]} (accepted: info)"))
            return Verdict(Severity.info, evidence)
    return Verdict(severity, evidence)


def template_annotations(obj: Mapping[str, Any], kind: str) -> Mapping[str, str]:
    """Annotations of a workload's pod template (of the pod itself for a Pod)."""
    current: Any = obj
    for part in (*SPEC_PATHS[kind][:-1], "metadata"):
        current = (current or {}).get(part) or {}
    found: Mapping[str, str] = current.get("annotations") or {}
    return found


def _privileged_containers(spec: Mapping[str, Any]) -> list[str]:
    return [
        str(c.get("name")) for _f, c in containers(spec) if (c.get("securityContext") or {}).get("privileged") is True
    ]


def _added_capabilities(spec: Mapping[str, Any]) -> list[str]:
    """``CAP (container)`` for each added capability outside the baseline set."""
    out = []
    for _field, c in containers(spec):
        added = ((c.get("securityContext") or {}).get("capabilities") or {}).get("add") or []
        out += [
            f"{cap} ({c.get('name')})"
            for cap in added
            if str(cap).upper().removeprefix("CAP_") not in BASELINE_CAPABILITIES
        ]
    return out


def _writable_host_mounts(spec: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(hostPath volumes some container mounts writable, hostPath volumes that are sockets)."""
    host = {v.get("name"): v.get("hostPath") or {} for v in spec.get("volumes") or [] if v.get("hostPath") is not None}
    writable = sorted(
        {
            str(m.get("name"))
            for _f, c in containers(spec)
            for m in c.get("volumeMounts") or []
            if m.get("name") in host and m.get("readOnly") is not True
        }
    )
    sockets = sorted(
        str(name)
        for name, hp in host.items()
        if hp.get("type") == "Socket" or str(hp.get("path") or "").rstrip("/").endswith(".sock")
    )
    return writable, sockets


def _privileged_rule(kind: str, spec: Mapping[str, Any]) -> tuple[Severity, str]:
    return Severity.warning, "a privileged container controls the node, on any kind of workload"


def _host_path_rule(kind: str, spec: Mapping[str, Any]) -> tuple[Severity, str]:
    if kind not in NODE_AGENT_KINDS:
        return Severity.warning, f"host mounts on a {kind}, where a node agent is not plausible"
    writable, sockets = _writable_host_mounts(spec)
    if writable:
        return Severity.warning, f"hostPath mounted writable: {', '.join(writable)}"
    if sockets:
        return Severity.warning, f"hostPath socket (read-only does not stop its use): {', '.join(sockets)}"
    privileged = _privileged_containers(spec)
    if privileged:
        return Severity.warning, f"host mounts with a privileged container: {', '.join(privileged)}"
    return Severity.info, "read-only host mounts on a DaemonSet: expected of a node agent"


def _host_namespaces_rule(kind: str, spec: Mapping[str, Any]) -> tuple[Severity, str]:
    if kind not in NODE_AGENT_KINDS:
        return Severity.warning, f"host namespaces on a {kind}, where a node agent is not plausible"
    privileged = _privileged_containers(spec)
    if privileged:
        return Severity.warning, f"host namespaces with a privileged container: {', '.join(privileged)}"
    added = _added_capabilities(spec)
    if added:
        return Severity.warning, f"host namespaces with added capabilities: {', '.join(added)}"
    return Severity.info, "host namespaces on a DaemonSet without added capabilities: expected of a node agent"


def _root_rule(kind: str, spec: Mapping[str, Any]) -> tuple[Severity, str]:
    return Severity.info, ""  # hygiene in every workload: nothing to weigh


_RULES: dict[str, Callable[[str, Mapping[str, Any]], tuple[Severity, str]]] = {
    "Privileged": _privileged_rule,
    "HostPath": _host_path_rule,
    "HostNamespaces": _host_namespaces_rule,
    "MayRunAsRoot": _root_rule,
}
