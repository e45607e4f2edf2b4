"""The posture severity policy (detectors/_posture.py): each rule with a case that stays info and one
that becomes a warning, and the per-workload acceptance annotation recorded in the evidence."""

from __future__ import annotations

from infragenius.detectors._posture import ACCEPT_ANNOTATION, POLICY_SOURCE
from infragenius.detectors.bestpractice import DETECTOR
from infragenius.models.findings import Finding, Severity
from tests.unit import factories as f


def posture(objs: list[f.Obj], problem: str) -> Finding:
    """The single bestpractice finding of ``problem`` (its id names the problem; the title wording differs)."""
    findings = DETECTOR.detect(f.snap(*objs))
    wanted = {"Privileged": "privileged", "HostPath": "hostPath", "HostNamespaces": "namespaces"}[problem]
    return f.only(findings, wanted)


def agent_spec(*, read_only: bool = True, **extra: object) -> f.Obj:
    volume, mount = f.host_mount("logs", "/var/log", "/var/log", read_only=read_only)
    container = f.app_container("agent", ports=[], readiness=False, volumeMounts=[mount])
    return f.pod_spec(container, volumes=[volume], **extra)


def daemonset(spec: f.Obj, **kw: object) -> list[f.Obj]:
    ds, pods = f.app_daemonset("agent", spec, **kw)  # type: ignore[arg-type]
    return [ds, *pods]


def deployment(spec: f.Obj) -> list[f.Obj]:
    deploy, rs, pods = f.deployment_with_pods("agent", 2, spec=spec)
    return [deploy, rs, *pods]


# --- HostPath ---------------------------------------------------------------------------------------


def test_read_only_host_mount_on_a_daemonset_is_info() -> None:
    found = posture(daemonset(agent_spec()), "HostPath")
    assert found.severity is Severity.info
    assert f.ev(found)[POLICY_SOURCE] == "info: read-only host mounts on a DaemonSet: expected of a node agent"
    assert f.ev(found)["spec.template.spec.volumes[logs].hostPath.path"] == "/var/log"


def test_writable_host_mount_on_a_daemonset_is_a_warning() -> None:
    found = posture(daemonset(agent_spec(read_only=False)), "HostPath")
    assert found.severity is Severity.warning
    assert f.ev(found)[POLICY_SOURCE] == "warning: hostPath mounted writable: logs"


def test_read_only_host_mount_on_a_deployment_is_a_warning() -> None:
    found = posture(deployment(agent_spec()), "HostPath")
    assert found.severity is Severity.warning
    assert "where a node agent is not plausible" in f.ev(found)[POLICY_SOURCE]


def test_a_runtime_socket_is_a_warning_even_read_only() -> None:
    volume, mount = f.host_mount("sock", "/run/containerd/containerd.sock", "/run/containerd.sock", type_="Socket")
    spec = f.pod_spec(f.app_container("agent", ports=[], readiness=False, volumeMounts=[mount]), volumes=[volume])
    found = posture(daemonset(spec), "HostPath")
    assert found.severity is Severity.warning and "socket" in f.ev(found)[POLICY_SOURCE]


# --- HostNamespaces -----------------------------------------------------------------------------------


def test_host_namespaces_on_a_daemonset_are_info() -> None:
    found = posture(daemonset(agent_spec(hostNetwork=True, hostPID=True)), "HostNamespaces")
    assert found.severity is Severity.info
    assert found.title == "DaemonSet agent shares the node's namespaces (hostNetwork, hostPID)"
    # Adding a capability from the baseline set (the runtime default) changes nothing.
    spec = agent_spec(hostNetwork=True)
    spec["containers"][0]["securityContext"]["capabilities"] = {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}
    assert posture(daemonset(spec), "HostNamespaces").severity is Severity.info


def test_host_namespaces_with_added_capabilities_are_a_warning() -> None:
    spec = agent_spec(hostNetwork=True)
    spec["containers"][0]["securityContext"]["capabilities"] = {"add": ["NET_ADMIN", "SYS_PTRACE"]}
    found = posture(daemonset(spec), "HostNamespaces")
    assert found.severity is Severity.warning
    assert (
        f.ev(found)[POLICY_SOURCE]
        == "warning: host namespaces with added capabilities: NET_ADMIN (agent), SYS_PTRACE (agent)"
    )


def test_host_namespaces_on_a_deployment_are_a_warning() -> None:
    found = posture(deployment(agent_spec(hostNetwork=True)), "HostNamespaces")
    assert found.severity is Severity.warning


# --- Privileged ---------------------------------------------------------------------------------------


def privileged_spec() -> f.Obj:
    container = f.app_container("agent", ports=[], readiness=False, securityContext={"privileged": True})
    return f.pod_spec(container)


def test_privileged_is_a_warning_even_on_a_daemonset_and_makes_host_access_one() -> None:
    spec = agent_spec(hostNetwork=True)
    spec["containers"][0]["securityContext"]["privileged"] = True
    objs = daemonset(spec)
    assert posture(objs, "Privileged").severity is Severity.warning
    assert posture(objs, "HostNamespaces").severity is Severity.warning
    assert posture(objs, "HostPath").severity is Severity.warning


def test_privileged_accepted_by_annotation_stays_info_with_the_annotation_in_evidence() -> None:
    objs = daemonset(privileged_spec(), annotations={ACCEPT_ANNOTATION: "Privileged"})
    found = posture(objs, "Privileged")
    assert found.severity is Severity.info
    assert f.ev(found)[f"metadata.annotations[{ACCEPT_ANNOTATION}]"] == "Privileged (accepted: info)"
    # The policy's own verdict stays in the evidence, so the reader sees what was accepted.
    assert f.ev(found)[POLICY_SOURCE].startswith("warning: a privileged container")


# --- acceptance annotation ------------------------------------------------------------------------------


def test_annotation_accepts_only_the_named_problems() -> None:
    spec = agent_spec(read_only=False, hostNetwork=True)
    objs = deployment(spec)
    objs[0]["metadata"]["annotations"] = {ACCEPT_ANNOTATION: "HostPath"}
    assert posture(objs, "HostPath").severity is Severity.info
    assert posture(objs, "HostNamespaces").severity is Severity.warning
    objs[0]["metadata"]["annotations"] = {ACCEPT_ANNOTATION: " HostNamespaces , HostPath"}
    assert posture(objs, "HostNamespaces").severity is Severity.info


def test_annotation_on_the_pod_template_and_wildcard() -> None:
    spec = agent_spec(read_only=False, hostPID=True)
    objs = deployment(spec)
    objs[0]["spec"]["template"]["metadata"]["annotations"] = {ACCEPT_ANNOTATION: "*"}
    for problem in ("HostPath", "HostNamespaces"):
        found = posture(objs, problem)
        assert found.severity is Severity.info
        assert f.ev(found)[f"spec.template.metadata.annotations[{ACCEPT_ANNOTATION}]"] == "* (accepted: info)"


def test_annotation_on_a_bare_pod() -> None:
    pod = f.app_pod("debug", spec=privileged_spec())
    pod["metadata"]["annotations"] = {ACCEPT_ANNOTATION: "Privileged"}
    found = posture([pod], "Privileged")
    assert found.severity is Severity.info and f"metadata.annotations[{ACCEPT_ANNOTATION}]" in f.ev(found)
    assert posture([f.app_pod("debug", spec=privileged_spec())], "Privileged").severity is Severity.warning


def test_readme_documents_the_policy_and_the_annotation() -> None:
    from pathlib import Path

    from infragenius.detectors._posture import POSTURE_PROBLEMS

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme[readme.index("**Security posture**") :][:3000]
    assert ACCEPT_ANNOTATION in section
    for problem in POSTURE_PROBLEMS:
        assert f"| `{problem}`" in section
