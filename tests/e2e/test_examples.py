"""The files in examples/ run for real: the operator, a broken namespace, Prometheus and Ollama.

Each runnable example is applied as written (``kubectl apply -n <test namespace> -f examples/...``);
only a namespace written into the file is replaced by the test's. What the examples leave to the
operator's settings comes from its environment, as in a real install: ``INFRAGENIUS_PROMETHEUS_URL``
points at a local Prometheus backfilled with the series the SLO examples query (``namespace="shop"``,
``service="checkout"``), and ``INFRAGENIUS_OLLAMA_URL``/``INFRAGENIUS_LLM_MODEL`` at a real Ollama
serving a tiny local model.

Not run here, and why:
- ``argocd-application.yaml`` needs Argo CD (its CRDs and controller, and a Git server for the chart);
  the chart it installs is installed for real by test_helm.py, and the health checks it relies on are
  exercised by tests/unit/test_argocd_health.py.
- ``alertmanager-receiver.yaml`` is Alertmanager configuration, not a Kubernetes object: test_helm.py
  checks that its URL is the chart's webhook Service, and test_slo.py drives the webhook it points at.
- ``rollout-gate-analysis-template.yaml`` is an Argo Rollouts AnalysisTemplate (needs Argo Rollouts' CRDs and
  controller): the gate URL it calls is answered for real in test_slo_rules_live.py, and
  tests/unit/test_slo_rules_live.py checks the template's URL and jsonPath against the gate.
- ``analysis-notify.yaml`` posts to Slack and PagerDuty, which need real accounts and credentials: the
  spec is validated by tests/unit/test_notify.py, and every sink type
  is driven for real against local receivers by test_notifications.py and test_outbox.py.
- The periodic analysis re-runs every 15 minutes (at least 1m): only its first run is waited for.

All examples are also dry-run against the API server by test_helm.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner
from kubernetes import client

from infragenius_devtools.devcluster import scenarios
from infragenius_devtools.devcluster.services import LocalOllama
from infragenius_devtools.prometheus import is_ready, stop_process
from infragenius_devtools.support import free_port
from tests.e2e.analysis_support import by_problem, running_operator
from tests.e2e.conftest import E2ECluster, _unavailable
from tests.e2e.support import wait_for
from tests.e2e.test_llm import llm_env

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
RUN_HERE = {
    "analysis.yaml": "analysis",
    "analysis-deployment.yaml": "analysis",
    "analysis-periodic.yaml": "analysis",
    "analysis-llm.yaml": "analysis",
    "analysis-lifecycle.yaml": "analysis",
    "incidentreport.yaml": "incidentreport",
    "sloreview-ratio.yaml": "sloreview",
    "sloreview-latency.yaml": "sloreview",
    "sloreview-calendar.yaml": "sloreview",
}
NOT_RUN_HERE = {
    "analysis-notify.yaml",
    "argocd-application.yaml",
    "alertmanager-receiver.yaml",
    "rollout-gate-analysis-template.yaml",
}  # see the module docstring


# --- Prometheus with the series the SLO examples read ------------------------------------------------

MINUTES = 3 * 1440 + 120  # enough history for the 3d burn-rate lookback
REQUESTS = 1000.0  # per minute
ERRORS = 0.5  # per minute: an error ratio of 0.05%, half the 99.9% objective's budget (burn rate 0.5)
# Cumulative requests per minute at or below each bucket bound: 5 of 1000 take longer than 0.3s, half
# the 99% latency objective's budget.
BUCKETS = {"0.1": 900.0, "0.3": 995.0, "1": 999.0, "+Inf": REQUESTS}
SHOP = 'namespace="shop",service="checkout"'


def _openmetrics(end: int) -> str:
    """One sample a minute for MINUTES minutes, ending at ``end`` (a whole minute, close to now)."""
    series = {
        f'http_requests_total{{{SHOP},code="200"}}': REQUESTS - ERRORS,
        f'http_requests_total{{{SHOP},code="500"}}': ERRORS,
        f"http_request_duration_seconds_count{{{SHOP}}}": REQUESTS,
        **{f'http_request_duration_seconds_bucket{{{SHOP},le="{le}"}}': n for le, n in BUCKETS.items()},
    }
    lines = []
    for name, per_minute in series.items():
        for i in range(MINUTES + 1):
            lines.append(f"{name} {per_minute * i:.12g} {end - (MINUTES - i) * 60}")  # exact: no rounding
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def shop_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus whose data ends now, so the examples' reviews (as of now) find it."""
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not prometheus or not promtool:
        _unavailable("prometheus/promtool not installed (Debian: apt-get install prometheus)")
    home = tmp_path_factory.mktemp("examples-prometheus")
    source = home / "shop.om"
    source.write_text(_openmetrics(int(time.time()) // 60 * 60))
    created = subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=768h",
            str(source),
            str(home / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if created.returncode != 0:
        _unavailable(f"promtool failed: {created.stderr[-500:]}")
    (home / "prometheus.yml").write_text("global:\n  scrape_interval: 1m\n")
    port = free_port()
    with (home / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                prometheus,
                f"--config.file={home / 'prometheus.yml'}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: is_ready(url) or process.poll() is not None, timeout=60, what="prometheus to start")
        if process.poll() is not None:
            _unavailable(f"prometheus exited: {(home / 'prometheus.log').read_text()[-800:]}")
        yield url
    finally:
        stop_process(process)


# --- the namespace, the operator and the applied examples ---------------------------------------------


@pytest.fixture(scope="module")
def shop(cluster: E2ECluster, examples_operator: KopfRunner) -> Iterator[str]:
    """One broken namespace for every example (crash loop, OOM kill, bad image, quota, ...).

    It is deleted while the operator still runs: the operator's finalizers on the examples' objects
    would otherwise keep the namespace terminating forever.
    """
    name = f"t-examples-{uuid.uuid4().hex[:5]}"
    core = client.CoreV1Api(cluster.api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(lambda: core.list_namespaced_service_account(name).items, timeout=30, what=f"service account in {name}")
    scenarios.break_namespace(cluster.kubectl, core, name)
    yield name
    kinds = ",".join(sorted(set(RUN_HERE.values())))
    released = cluster.kubectl("delete", kinds, "--all", "-n", name, "--timeout=30s", check=False)
    # kwok leaves pods with a hand-written status alone, deletion included: nothing plays the kubelet.
    # Their owners go first, so that no ReplicaSet recreates what is force-deleted.
    cluster.kubectl("delete", "deployments,replicasets", "--all", "-n", name, "--timeout=30s", check=False)
    cluster.kubectl("delete", "pods", "--all", "-n", name, "--grace-period=0", "--force", "--wait=false", check=False)
    core.delete_namespace(name)
    assert released.returncode == 0, f"the operator did not release the examples in {name}: {released.stderr}"


@pytest.fixture(scope="module")
def examples_operator(operator_kubeconfig: str, shop_prometheus: str, ollama: LocalOllama) -> Iterator[KopfRunner]:
    env = llm_env(ollama.url, INFRAGENIUS_PROMETHEUS_URL=shop_prometheus)
    with running_operator(operator_kubeconfig, **env) as runner:
        yield runner


def apply_example(cluster: E2ECluster, filename: str, namespace: str) -> list[dict[str, Any]]:
    """``kubectl apply -n <namespace> -f examples/<filename>``; a namespace named in the file is replaced."""
    path = EXAMPLES / filename
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    if any("namespace" in d["metadata"] or "targetNamespace" in d.get("spec", {}) for d in docs):
        for doc in docs:
            doc["metadata"]["namespace"] = namespace
            if "targetNamespace" in doc.get("spec", {}):
                doc["spec"]["targetNamespace"] = namespace
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs))
    else:
        cluster.kubectl("apply", "-n", namespace, "-f", str(path))
    return docs


@pytest.fixture(scope="module")
def applied(cluster: E2ECluster, shop: str) -> dict[str, dict[str, Any]]:
    """Every runnable example applied at once, so that their runs overlap; name -> the example's object."""
    objects = {}
    for filename in RUN_HERE:
        (doc,) = apply_example(cluster, filename, shop)
        objects[filename] = doc
    return objects


def get(cluster: E2ECluster, kind: str, namespace: str, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)


def finished(
    cluster: E2ECluster, filename: str, namespace: str, doc: dict[str, Any], timeout: float = 90
) -> dict[str, Any]:
    """The object once its run ended and its Ready condition is True (checked by `kubectl wait` too)."""
    kind, name = RUN_HERE[filename], doc["metadata"]["name"]

    def done() -> Any:
        body = get(cluster, kind, namespace, name)
        status = body.get("status", {})
        if kind == "sloreview" and not (status.get("lastReview") or {}).get("completedAt"):
            return None
        return status.get("phase") in ("Completed", "Failed") and body

    body = wait_for(done, timeout=timeout, what=f"{kind} {name} from {filename} to finish")
    assert body["status"]["phase"] == "Completed", body["status"]
    ready = condition(body["status"], "Ready")
    assert ready["status"] == "True" and ready["observedGeneration"] == body["metadata"]["generation"], ready
    cluster.kubectl("wait", "--for=condition=Ready", f"{kind}/{name}", "-n", namespace, "--timeout=5s")
    return body


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


# --- the tests -------------------------------------------------------------------------------------------


def test_every_example_is_run_here_or_says_why_not() -> None:
    """A new example must be added to RUN_HERE, or to NOT_RUN_HERE with a reason in the docstring."""
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted([*RUN_HERE, *NOT_RUN_HERE])
    for filename in NOT_RUN_HERE:
        assert filename in (__doc__ or "")


def test_namespace_analysis(cluster: E2ECluster, shop: str, applied: dict[str, dict[str, Any]]) -> None:
    doc = applied["analysis.yaml"]
    status = finished(cluster, "analysis.yaml", shop, doc)["status"]
    found = by_problem(status)
    crash = found[("pod", "Deployment", "checkout")]
    assert crash["severity"] == "critical" and crash["affected"] == 2
    assert any("CrashLoopBackOff" in e["value"] for e in crash["evidence"])
    assert any("OOMKilled" in e["value"] for e in found[("pod", "Deployment", "recommender")]["evidence"])
    assert any("ImagePullBackOff" in e["value"] for e in found[("pod", "Deployment", "payments")]["evidence"])
    assert status["counts"]["critical"] >= 5 and status["summary"].startswith(
        f"{status['counts']['critical']} critical"
    )
    assert status["totalFindings"] <= doc["spec"]["maxFindings"] or status["truncated"]
    # Prometheus is enabled in the example and configured: asked, though it has no container metrics.
    assert all(m["source"] != "prometheus" or m["status"] == "no_data" for m in status["missing"]), status["missing"]

    table = cluster.kubectl("get", "analyses", "-n", shop).stdout
    header = table.splitlines()[0].split()
    assert header[:4] == ["NAME", "PHASE", "NEW", "CRITICAL"], table
    row = next(line.split() for line in table.splitlines() if line.startswith("shop-health "))
    counts = [
        str(status["lifecycle"]["counts"]["new"]),
        str(status["counts"]["critical"]),
        str(status["counts"]["warning"]),
    ]
    assert row[1:5] == ["Completed", *counts], table
    described = cluster.kubectl("describe", "analysis", "shop-health", "-n", shop).stdout
    assert "Completed" in described and "CrashLoopBackOff" in described, described


def test_analysis_of_one_workload(cluster: E2ECluster, shop: str, applied: dict[str, dict[str, Any]]) -> None:
    doc = applied["analysis-deployment.yaml"]
    status = finished(cluster, "analysis-deployment.yaml", shop, doc)["status"]
    assert status["findings"], status["summary"]
    kinds = set(doc["spec"]["kinds"])
    for finding in status["findings"]:
        assert finding["resource"]["kind"] in kinds, finding
        assert finding["severity"] in ("critical", "warning"), finding  # minSeverity: warning
        assert "checkout" in finding["resource"]["name"], finding  # labelSelector: app=checkout
    assert by_problem(status)[("pod", "Deployment", "checkout")]["severity"] == "critical"


def test_periodic_analysis_first_run(cluster: E2ECluster, shop: str, applied: dict[str, dict[str, Any]]) -> None:
    doc = applied["analysis-periodic.yaml"]
    body = finished(cluster, "analysis-periodic.yaml", shop, doc)
    status = body["status"]
    assert body["spec"]["interval"] == "15m"
    assert status["findings"] and all(f["severity"] in ("critical", "warning") for f in status["findings"])
    assert len(status["findings"]) <= doc["spec"]["maxFindings"]
    assert status["totalFindings"] >= len(status["findings"])
    assert status["truncated"] == (status["totalFindings"] > len(status["findings"]))
    assert status["completedAt"] >= status["startedAt"]


def test_lifecycle_analysis_first_run(cluster: E2ECluster, shop: str, applied: dict[str, dict[str, Any]]) -> None:
    doc = applied["analysis-lifecycle.yaml"]
    status = finished(cluster, "analysis-lifecycle.yaml", shop, doc)["status"]
    counts = status["lifecycle"]["counts"]
    # The first run: everything it found (warning and up) is new; nothing was resolved.
    assert counts["new"] == status["totalFindings"] - counts["silenced"] > 0, counts
    assert counts["resolved"] == counts["open"] == 0
    assert all(f["lifecycle"]["state"] == "New" and f["lifecycle"]["occurrences"] == 1 for f in status["findings"])
    assert f"({counts['new']} new" in status["summary"], status["summary"]


def test_analysis_with_the_llm(cluster: E2ECluster, shop: str, applied: dict[str, dict[str, Any]]) -> None:
    doc = applied["analysis-llm.yaml"]
    # A CPU-only model on a busy 2-core runner may take a while; it usually answers within seconds.
    status = finished(cluster, "analysis-llm.yaml", shop, doc, timeout=180)["status"]
    explained = condition(status, "Explained")
    assert (explained["status"], explained["reason"]) == ("True", "Explained"), explained
    explanation = status["explanation"]
    assert explanation["promptVersion"] == "explain-v1" and explanation["promptTokens"] > 50
    ids = {f["id"] for f in status["findings"]}
    assert explanation["rootCauses"] and all(set(c["findingIds"]) <= ids for c in explanation["rootCauses"])
    assert explanation["remediation"] and explanation["confidence"] in ("low", "medium", "high")
    assert status["counts"]["critical"] >= 1  # the rule-based findings stay


def test_incident_report(cluster: E2ECluster, shop: str, applied: dict[str, dict[str, Any]]) -> None:
    doc = applied["incidentreport.yaml"]
    status = finished(cluster, "incidentreport.yaml", shop, doc)["status"]
    timeline = status["timeline"]
    assert [e["time"] for e in timeline] == sorted(e["time"] for e in timeline)
    assert {"Restart", "Event"} <= {e["kind"] for e in timeline}, timeline
    causes = status["suspectedCauses"]
    assert causes and causes[0]["rank"] == 1 and causes[0]["why"]
    assert [c["score"] for c in causes] == sorted((c["score"] for c in causes), reverse=True)
    assert status["impact"]["restarts"] >= 7 * 2  # the two crash-looping checkout pods
    markdown = status["postmortem"]["markdown"]
    for section in ("## Summary", "## Impact", "## Timeline", "## Suspected root cause", "## Action items"):
        assert section in markdown
    table = cluster.kubectl("get", "incidentreports", "-n", shop).stdout
    assert "checkout-down" in table and "SEV2" in table and "Completed" in table, table


@pytest.mark.parametrize(
    ("filename", "objective"),
    [("sloreview-ratio.yaml", 99.9), ("sloreview-latency.yaml", 99.0), ("sloreview-calendar.yaml", 99.9)],
    ids=["ratio", "latency", "calendar"],
)
def test_slo_reviews(
    cluster: E2ECluster, shop: str, applied: dict[str, dict[str, Any]], filename: str, objective: float
) -> None:
    doc = applied[filename]
    assert doc["spec"]["objective"] == objective
    status = finished(cluster, filename, shop, doc)["status"]
    assert condition(status, "Ready")["reason"] == "Reviewed"
    # Both data sets spend errors at half the budget's rate throughout.
    assert status["verdict"] == "Healthy", status
    for window in ("5m", "1h", "6h", "1d", "3d"):
        assert status["burnRates"][window] == pytest.approx(0.5, rel=1e-3), (window, status["burnRates"])
    assert status["errorBudget"]["total"] == pytest.approx(1 - objective / 100)
    assert status["errorBudget"]["remaining"] == pytest.approx(0.5, rel=1e-3)
    assert not any(a["firing"] for a in status["alerts"])
    # The calendar month so far (its first minutes aside, the series cover it at the same rate).
    assert status["period"]["calendar"] is ("calendar" in doc["spec"]), status["period"]
    table = cluster.kubectl("get", "sloreviews", "-n", shop).stdout
    assert any(line.startswith(doc["metadata"]["name"] + " ") and "Healthy" in line for line in table.splitlines()), (
        table
    )
