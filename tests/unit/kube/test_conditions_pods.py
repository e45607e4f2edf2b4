"""Conditions of raw objects, pod readiness and pod templates."""

from __future__ import annotations

import datetime as dt

from infragenius.kube.conditions import condition, condition_true, conditions_by_type, is_false, is_true
from infragenius.kube.pods import (
    containers,
    has_failed_container,
    is_starting,
    pod_ready,
    pod_spec,
    spec_path,
    template_containers,
    template_labels,
)

NOW = dt.datetime(2025, 1, 15, 12, 0, tzinfo=dt.UTC)


def _pod(ready: str | None, created: str = "2025-01-15T11:59:00Z", waiting: str | None = None) -> dict:
    conditions = [{"type": "PodScheduled", "status": "True"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    statuses = [{"name": "app", "state": {"waiting": {"reason": waiting}} if waiting else {"running": {}}}]
    return {
        "metadata": {"name": "p", "creationTimestamp": created},
        "status": {"conditions": conditions, "containerStatuses": statuses},
    }


def test_condition_lookup() -> None:
    pod = _pod("False")
    assert condition(pod, "Ready") == {"type": "Ready", "status": "False"}
    assert condition(pod, "Initialized") is None
    assert set(conditions_by_type(pod)) == {"PodScheduled", "Ready"}
    assert condition_true(pod, "PodScheduled") and not condition_true(pod, "Ready")
    assert condition({"status": None}, "Ready") is None


def test_true_false_and_unknown() -> None:
    assert is_true({"status": "True"}) and not is_true({"status": "Unknown"}) and not is_true(None)
    assert is_false({"status": "False"}) and not is_false({"status": "Unknown"}) and not is_false(None)


def test_pod_ready() -> None:
    assert pod_ready(_pod("True"))
    assert not pod_ready(_pod("False"))
    assert not pod_ready(_pod(None))  # no Ready condition yet: not ready
    assert not pod_ready({})


def test_is_starting_only_young_and_not_failing() -> None:
    assert is_starting(_pod("False"), NOW)
    assert not is_starting(_pod("False", created="2025-01-15T11:00:00Z"), NOW)
    assert not is_starting(_pod("False", waiting="CrashLoopBackOff"), NOW)
    assert has_failed_container(_pod("False", waiting="ImagePullBackOff"))
    assert not has_failed_container(_pod("False", waiting="ContainerCreating"))
    assert not is_starting(None, NOW)


def test_pod_templates() -> None:
    cron = {
        "spec": {
            "jobTemplate": {
                "spec": {
                    "template": {
                        "metadata": {"labels": {"app": "report"}},
                        "spec": {"containers": [{"name": "run"}], "initContainers": [{"name": "init"}]},
                    }
                }
            }
        }
    }
    assert spec_path("CronJob") == "spec.jobTemplate.spec.template.spec"
    assert [c["name"] for c in pod_spec(cron, "CronJob")["containers"]] == ["run"]
    assert template_labels(cron, "CronJob") == {"app": "report"}
    assert [(f, c["name"]) for f, c in containers(pod_spec(cron, "CronJob"))] == [
        ("containers", "run"),
        ("initContainers", "init"),
    ]
    assert [c["name"] for _, c in containers(pod_spec(cron, "CronJob"), init=False)] == ["run"]
    deploy = {"spec": {"template": {"spec": {"containers": [{"name": "web"}]}}}}
    assert [c["name"] for c in template_containers(deploy)] == ["web"]
    assert template_labels({"metadata": {"labels": {"a": "b"}}}, "Pod") == {"a": "b"}
