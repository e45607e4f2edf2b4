"""The operator keeps each SLOReview's Prometheus rules in the cluster, and answers the rollout gate.

Real API server, real garbage collector, real Prometheus (backfilled, ``prometheus`` fixture) for the reviews.
Each test runs its own operator (no module-scoped ``operator`` fixture here): one needs a restart after
installing a PrometheusRule CRD.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from infragenius import rbac
from infragenius.models.api import RERUN_ANNOTATION, ROLLOUT_GATE_ANNOTATION
from infragenius.models.slo import SLOReviewSpec
from infragenius.slo import rules
from infragenius_devtools.devcluster import scenarios as workloads
from tests.e2e.analysis_support import running_operator
from tests.e2e.conftest import E2ECluster
from tests.e2e.prometheus_support import LocalPrometheus, free_port
from tests.e2e.support import service_account_kubeconfig, wait_for
from tests.e2e.test_slo import get_slo, ratio_sli, slo_review

pytestmark = pytest.mark.e2e

CRD_NAME = "prometheusrules.monitoring.coreos.com"
# The Prometheus Operator's CRD, reduced to what the API server needs to serve the kind.
PROMETHEUS_RULE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": CRD_NAME},
    "spec": {
        "group": "monitoring.coreos.com",
        "names": {"kind": "PrometheusRule", "listKind": "PrometheusRuleList", "plural": "prometheusrules"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}
LABELS = {"release": "prometheus"}


@pytest.fixture
def no_prometheus_rule_crd(cluster: E2ECluster) -> Iterator[None]:
    """The CRD is cluster-wide: absent at the start, and removed again so no other test sees it."""
    cluster.kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", "--wait=true")
    yield
    cluster.kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", "--wait=false")


def install_prometheus_rule_crd(cluster: E2ECluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(PROMETHEUS_RULE_CRD))
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=30s")


def get_json(cluster: E2ECluster, *args: str) -> dict[str, Any] | None:
    done = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else None


def rules_ready(status: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == "RulesReady"), None)


def wait_rules(
    cluster: E2ECluster, namespace: str, name: str, kind: str, generation: int, timeout: float = 90
) -> dict[str, Any]:
    """The status once a finished review reports the rules of ``generation`` written as ``kind``."""

    def written() -> dict[str, Any] | None:
        status = get_slo(cluster, namespace, name).get("status") or {}
        found = status.get("rules") or {}
        done = status.get("phase") in ("Completed", "Failed")
        ok = found.get("kind") == kind and found.get("generation") == generation and found.get("current")
        return status if done and ok else None

    return wait_for(written, timeout=timeout, what=f"{kind} rules of generation {generation} for {name}")


def expected_rules(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return rules.rule_file([rules.SLOSource(namespace, name, SLOReviewSpec.model_validate(spec))])


def assert_owned(obj: dict[str, Any], review: dict[str, Any]) -> None:
    refs = obj["metadata"]["ownerReferences"]
    assert [(r["kind"], r["name"], r["uid"], r.get("controller")) for r in refs] == [
        ("SLOReview", review["metadata"]["name"], review["metadata"]["uid"], True)
    ]


def rerun(cluster: E2ECluster, namespace: str, name: str, token: str) -> None:
    cluster.kubectl("annotate", "sloreview", name, "-n", namespace, f"{RERUN_ANNOTATION}={token}", "--overwrite")
    wait_for(
        lambda: (
            get_slo(cluster, namespace, name).get("status", {}).get("rerunToken") == token
            and get_slo(cluster, namespace, name)["status"]["phase"] in ("Completed", "Failed")
        ),
        timeout=60,
        what=f"the rerun {token} of {name}",
    )


def gate(port: int, namespace: str, name: str, query: str = "") -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}/v1/slo/{namespace}/{name}/gate{query}", timeout=10)


def test_rules_configmap_then_prometheusrule_updated_and_collected_with_the_review(
    cluster: E2ECluster,
    namespace: str,
    operator_kubeconfig: str,
    prometheus: LocalPrometheus,
    no_prometheus_rule_crd: None,
) -> None:
    port = free_port()
    env = {
        "INFRAGENIUS_PROMETHEUS_URL": prometheus.url,
        "INFRAGENIUS_HEALTH_PORT": str(port),
        "INFRAGENIUS_SLO_RULE_LABELS": json.dumps(LABELS),
    }
    cluster.kubectl("wait", "--for=condition=Established", "crd/sloreviews.infragenius.io", "--timeout=30s")
    manifest = slo_review("checkout", ratio_sli("breaching"))
    manifest["metadata"]["annotations"] = {ROLLOUT_GATE_ANNOTATION: "true"}
    healthy = slo_review("steady", ratio_sli("healthy"))
    healthy["metadata"]["annotations"] = {ROLLOUT_GATE_ANNOTATION: "true"}
    private = slo_review("private", ratio_sli("healthy"))  # no gate annotation
    # A ConfigMap of the name the operator would use, made by someone else: it must not be taken over.
    squatter = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "private-slo-rules"},
        "data": {"mine": "yes"},
    }

    # (a) No PrometheusRule CRD: a ConfigMap holding the rule file, owned by the review.
    with running_operator(operator_kubeconfig, **env):
        workloads.apply(cluster.kubectl, namespace, squatter, manifest, healthy, private)
        status = wait_rules(cluster, namespace, "checkout", "ConfigMap", 1)
        review = get_slo(cluster, namespace, "checkout")
        assert status["phase"] == "Completed" and status["verdict"] == "Breaching", status
        ready = rules_ready(status)
        assert ready and (ready["status"], ready["reason"], ready["observedGeneration"]) == ("True", "RulesWritten", 1)
        cm = get_json(cluster, "configmap", "checkout-slo-rules", "-n", namespace)
        assert cm is not None
        assert_owned(cm, review)
        assert cm["metadata"]["labels"]["release"] == "prometheus"
        text = cm["data"]["checkout.rules.yaml"]
        assert yaml.safe_load(text) == expected_rules(namespace, "checkout", manifest["spec"])
        digest = hashlib.sha256(text.encode()).hexdigest()
        assert status["rules"]["hash"] == digest == cm["metadata"]["annotations"]["infragenius.io/rules-hash"]
        assert status["rules"]["key"] == "checkout.rules.yaml"

        # Idempotent: another review applies the same object, and the API server stores nothing new.
        rerun(cluster, namespace, "checkout", "again-1")
        again = get_json(cluster, "configmap", "checkout-slo-rules", "-n", namespace)
        assert again is not None
        assert again["metadata"]["resourceVersion"] == cm["metadata"]["resourceVersion"]
        assert get_slo(cluster, namespace, "checkout")["status"]["rules"]["current"] is True

        # Someone else's object of that name: reported, untouched, and the review itself completes.
        taken = wait_for(
            lambda: (
                (s := get_slo(cluster, namespace, "private").get("status") or {}).get("phase") == "Completed"
                and rules_ready(s)
                and s
            ),
            timeout=60,
            what="the private review",
        )
        refused = rules_ready(taken)
        assert refused and (refused["status"], refused["reason"]) == ("False", "RulesConflict"), refused
        assert "rules" not in taken
        kept = get_json(cluster, "configmap", "private-slo-rules", "-n", namespace)
        assert kept is not None and kept["data"] == {"mine": "yes"} and not kept["metadata"].get("ownerReferences")

        # (d) The rollout gate answers from status.
        wait_rules(cluster, namespace, "steady", "ConfigMap", 1)
        breaching = gate(port, namespace, "checkout")
        assert breaching.status_code == 200, breaching.text
        answer = breaching.json()
        assert answer["verdict"] == "Breaching" and answer["pass"] is False
        assert answer["budgetRemainingPercent"] == status["errorBudget"]["remainingPercent"]
        assert answer["burnRates"]["1h"] == pytest.approx(20.0, rel=1e-6)
        assert answer["observedAt"] == status["evaluatedAt"] and "page-1h-5m" in answer["firing"]
        passing = gate(port, namespace, "steady").json()
        assert (passing["verdict"], passing["pass"], passing["reasons"]) == ("Healthy", True, [])
        assert gate(port, namespace, "steady", "?maxAge=24h").json()["pass"] is True
        time.sleep(1.1)
        stale = gate(port, namespace, "steady", "?maxAge=1s").json()
        assert stale["pass"] is False and stale["reasons"] == ["last review older than 1s"], stale
        assert gate(port, namespace, "private").status_code == 404  # not opted in: as if absent
        assert gate(port, namespace, "no-such-review").status_code == 404
        assert gate(port, namespace, "Bad_Name").status_code == 400
        assert gate(port, "UPPER", "steady").status_code == 400
        assert gate(port, namespace, "steady", "?maxAge=soon").status_code == 400

    # (b) The Prometheus Operator's CRD appears; after a restart the rules go into a PrometheusRule.
    install_prometheus_rule_crd(cluster)
    with running_operator(operator_kubeconfig, **env):
        rerun(cluster, namespace, "checkout", "after-crd")
        status = wait_rules(cluster, namespace, "checkout", "PrometheusRule", 1)
        assert "key" not in status["rules"]  # the ConfigMap's key is not carried over
        review = get_slo(cluster, namespace, "checkout")
        pr = get_json(cluster, "prometheusrule", "checkout-slo-rules", "-n", namespace)
        assert pr is not None
        assert_owned(pr, review)
        assert pr["metadata"]["labels"]["release"] == "prometheus"
        assert pr["spec"] == {"groups": expected_rules(namespace, "checkout", manifest["spec"])["groups"]}
        first_hash = status["rules"]["hash"]

        # (c) A spec change rewrites the rules: objective 99.5 means a budget of 0.005 in every alert.
        cluster.kubectl(
            "patch", "sloreview", "checkout", "-n", namespace, "--type=merge", "-p", '{"spec":{"objective":99.5}}'
        )
        status = wait_rules(cluster, namespace, "checkout", "PrometheusRule", 2)
        assert status["rules"]["current"] is True and status["rules"]["hash"] != first_hash
        changed = get_slo(cluster, namespace, "checkout")
        pr = get_json(cluster, "prometheusrule", "checkout-slo-rules", "-n", namespace)
        assert pr is not None
        assert pr["spec"]["groups"] == expected_rules(namespace, "checkout", changed["spec"])["groups"]
        assert "/ 0.005 >" in json.dumps(pr["spec"])

        # Deleting the review deletes its rules (the garbage collector follows the owner references).
        cluster.kubectl("delete", "sloreview", "checkout", "-n", namespace, "--wait=true")
        wait_for(
            lambda: (
                get_json(cluster, "prometheusrule", "checkout-slo-rules", "-n", namespace) is None
                and get_json(cluster, "configmap", "checkout-slo-rules", "-n", namespace) is None
            ),
            timeout=90,
            what="the garbage collector to delete the rules",
        )
        assert gate(port, namespace, "checkout").status_code == 404


def test_a_refused_rules_write_is_reported_and_the_review_still_completes(
    cluster: E2ECluster, namespace: str, prometheus: LocalPrometheus, no_prometheus_rule_crd: None
) -> None:
    """A real 403: the operator's generated rules without the ConfigMap and PrometheusRule grants."""
    granted = [r for r in rbac.operator_rules() if r["resources"] not in (["configmaps"], ["prometheusrules"])]
    assert len(granted) == len(rbac.operator_rules()) - 2
    kubeconfig = service_account_kubeconfig(cluster.api, cluster.kubeconfig, namespace, "no-rules", granted)
    try:
        with running_operator(kubeconfig, INFRAGENIUS_PROMETHEUS_URL=prometheus.url):
            workloads.apply(cluster.kubectl, namespace, slo_review("checkout", ratio_sli("healthy")))
            status = wait_for(
                lambda: (
                    (s := get_slo(cluster, namespace, "checkout").get("status") or {}).get("phase") == "Completed"
                    and rules_ready(s)
                    and s
                ),
                timeout=90,
                what="the review with its rules refused",
            )
        assert status["verdict"] == "Healthy" and "rules" not in status
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("True", "Reviewed")
        refused = rules_ready(status)
        assert refused and (refused["status"], refused["reason"]) == ("False", "RulesForbidden"), refused
        assert "403" in refused["message"]
        assert get_json(cluster, "configmap", "checkout-slo-rules", "-n", namespace) is None
    finally:
        cluster.kubectl("delete", "clusterrolebinding,clusterrole", f"{namespace}-no-rules", "--ignore-not-found")
