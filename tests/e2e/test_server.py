"""`infragenius serve` end to end: two real server processes, the real operator, Postgres and Redis.

The official MCP client (from the `mcp` SDK) lists tools, reads findings, searches history and triggers an
IncidentReport; API keys and service accounts are refused for what they lack, with real RBAC and real
SubjectAccessReviews; the rate limit holds across both processes and, with Redis stopped, per process; the
audit trail matches the calls; malformed requests are all answered and the server stays healthy.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import yaml
from kopf.testing import KopfRunner
from kubernetes import client
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from infragenius.server.rbac_rules import SERVER_RULES
from infragenius_devtools.devcluster import scenarios as workloads
from infragenius_devtools.devcluster.services import LocalPostgres, LocalRedis
from infragenius_devtools.server_process import ServerProcess, launch
from tests.e2e.analysis_support import analysis, running_operator, wait_phase
from tests.e2e.conftest import E2ECluster
from tests.e2e.prometheus_support import SCENARIOS, T_END, LocalPrometheus, ratio_queries
from tests.e2e.support import SETUP_TIMEOUT, service_account_kubeconfig, wait_for

pytestmark = pytest.mark.e2e
TIER_LIMITS = json.dumps({"free": 60, "team": 600, "bulk": 1_000_000})


def _env(**settings: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k != "INFRAGENIUS_KUBECONFIG"}
    environment.update(settings)
    return environment


def start_server(kubeconfig: str, log: Path, postgres: LocalPostgres, redis_url: str) -> ServerProcess:
    env = _env(
        KUBECONFIG=kubeconfig,
        INFRAGENIUS_POSTGRES_URL=postgres.url,
        INFRAGENIUS_REDIS_URL=redis_url,
        INFRAGENIUS_STACK_MANAGE="false",
        INFRAGENIUS_SERVER_TIER_LIMITS=TIER_LIMITS,
        INFRAGENIUS_SERVER_AUTH_CACHE_SECONDS="2",
    )
    server = launch(env, log)
    process = server.process
    try:
        wait_for(
            lambda: server.ready() or process.poll() is not None, timeout=SETUP_TIMEOUT, what="the server's /readyz"
        )
    except Exception:
        server.stop()
        raise
    if process.poll() is not None:
        raise AssertionError(f"the server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
    return server


def create_key(
    postgres: LocalPostgres, namespaces: list[str], scopes: list[str], tier: str = "team", **extra: str
) -> str:
    """Through the real CLI, as an administrator would."""
    args = ["--owner", f"owner-{uuid.uuid4().hex[:6]}", "--tier", tier]
    args += [a for s in scopes for a in ("--scope", s)] + [a for n in namespaces for a in ("--namespace", n)]
    args += [a for k, v in extra.items() for a in (f"--{k.replace('_', '-')}", v)]
    reply = subprocess.run(
        [sys.executable, "-m", "infragenius.cli", "keys", "create", *args],
        env=_env(INFRAGENIUS_POSTGRES_URL=postgres.url, INFRAGENIUS_SERVER_TIER_LIMITS=TIER_LIMITS),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert reply.returncode == 0, reply.stderr
    return reply.stdout.strip()


def keys_cli(postgres: LocalPostgres, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infragenius.cli", "keys", *args],
        env=_env(INFRAGENIUS_POSTGRES_URL=postgres.url, INFRAGENIUS_SERVER_TIER_LIMITS=TIER_LIMITS),
        capture_output=True,
        text=True,
        timeout=60,
    )


def mcp_client(server: ServerProcess, token: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(200))
    return Client(streamable_http_client(f"{server.url}/mcp", http_client=http))


def get_json(server: ServerProcess, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{server.url}{path}", headers=headers, timeout=60)


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_kubeconfig(cluster: E2ECluster, crds: None) -> str:
    """The server's own service account, with exactly the rules the chart would give it."""
    home = f"ig-server-{uuid.uuid4().hex[:5]}"
    core = client.CoreV1Api(cluster.api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=home)))
    wait_for(lambda: core.list_namespaced_service_account(home).items, timeout=SETUP_TIMEOUT, what="SA controller")
    return service_account_kubeconfig(cluster.api, cluster.kubeconfig, home, "server", SERVER_RULES)


@pytest.fixture(scope="module")
def history_operator(
    operator_kubeconfig: str, postgres: LocalPostgres, prometheus: LocalPrometheus
) -> Iterator[KopfRunner]:
    """The real operator, writing history to the same Postgres the servers read, with real SLO data."""
    env = {"INFRAGENIUS_POSTGRES_URL": postgres.url, "INFRAGENIUS_PROMETHEUS_URL": prometheus.url}
    with running_operator(operator_kubeconfig, **env) as runner:
        yield runner


@pytest.fixture(scope="module")
def servers(
    server_kubeconfig: str, postgres: LocalPostgres, redis_server: LocalRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    logs = tmp_path_factory.mktemp("server")
    first = start_server(server_kubeconfig, logs / "a.log", postgres, redis_server.url)
    try:
        second = start_server(server_kubeconfig, logs / "b.log", postgres, redis_server.url)
    except Exception:
        first.stop()
        raise
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()
        # SIGTERM is a clean stop: the audit trail is flushed and the pools closed before exit.
        assert (first.process.returncode, second.process.returncode) == (0, 0)
        # No stack trace may reach a log line a caller caused; an internal failure would show one here.
        for log in (logs / "a.log", logs / "b.log"):
            assert "Traceback" not in log.read_text(errors="replace"), log.read_text(errors="replace")[-3000:]


# --- tests -------------------------------------------------------------------------------------------


def test_mcp_client_reads_findings_searches_history_and_triggers_an_incident_report(
    cluster: E2ECluster,
    core: client.CoreV1Api,
    namespace: str,
    history_operator: KopfRunner,
    servers: tuple[ServerProcess, ServerProcess],
    postgres: LocalPostgres,
) -> None:
    server = servers[0]
    workloads.break_namespace(cluster.kubectl, core, namespace)
    workloads.apply(cluster.kubectl, namespace, analysis("shop"))
    status = wait_phase(cluster, namespace, "shop", ("Completed",), timeout=SETUP_TIMEOUT)["status"]
    assert status["findings"], "the broken namespace must give findings"
    key = create_key(postgres, [namespace], ["read", "run"])

    async def conversation() -> dict[str, Any]:
        async with mcp_client(server, key) as mcp:
            tools = {t.name for t in (await mcp.list_tools()).tools}
            runs = (await mcp.call_tool("list_runs", {"namespace": namespace, "kind": "Analysis"})).structured_content
            critical = await mcp.call_tool(
                "list_runs", {"namespace": namespace, "kind": "Analysis", "severity": "critical"}
            )
            detail = (await mcp.call_tool("get_analysis", {"namespace": namespace, "name": "shop"})).structured_content
            resource = await mcp.read_resource(f"infragenius://analyses/{namespace}/shop")
            first = status["findings"][0]
            search = {"namespace": namespace, "workload": first["resource"]["name"], "detector": first["detector"]}
            history = await mcp.call_tool("search_finding_history", search)
            deadline = time.monotonic() + 60
            # The operator writes history after it writes status: wait for the row, generously.
            while not (history.structured_content or {}).get("items") and time.monotonic() < deadline:
                await asyncio.sleep(1)
                history = await mcp.call_tool("search_finding_history", search)
            triggered = await mcp.call_tool(
                "trigger_incident_report", {"namespace": namespace, "since": "30m", "wait_seconds": 150}
            )
            postmortem = None
            if triggered.structured_content and triggered.structured_content["finished"]:
                postmortem = await mcp.get_prompt(
                    "draft_postmortem", {"namespace": namespace, "name": triggered.structured_content["name"]}
                )
            return {
                "tools": tools,
                "runs": runs,
                "critical": critical.structured_content,
                "detail": detail,
                "resource": resource,
                "history": history.structured_content,
                "triggered": triggered.structured_content,
                "postmortem": postmortem,
            }

    result = asyncio.run(conversation())
    assert {"list_runs", "get_analysis", "search_finding_history", "trigger_incident_report"} <= result["tools"]
    assert [r["name"] for r in result["runs"]["items"]] == ["shop"]
    has_critical = any(f["severity"] == "critical" for f in status["findings"])
    assert [r["name"] for r in result["critical"]["items"]] == (["shop"] if has_critical else [])
    findings = result["detail"]["findings"]
    assert result["detail"]["findings_in_run"] >= result["detail"]["total_findings"]
    assert findings and result["detail"]["total_findings"] == len(status["findings"])
    ranks = [{"critical": 0, "warning": 1, "info": 2}[f["severity"]] for f in findings]
    assert ranks == sorted(ranks), "most severe first"
    assert {f["id"] for f in findings} <= {f["id"] for f in status["findings"]}
    assert json.loads(result["resource"].contents[0].text)["run"]["name"] == "shop"
    # The operator wrote the run to Postgres; every finding it kept is in the history, seen once so far.
    entries = {e["finding_id"]: e for e in result["history"]["items"]}
    first = entries[status["findings"][0]["id"]]
    assert first["occurrences"] >= 1 and first["first_seen"] <= first["last_seen"]
    assert first["detector"] == status["findings"][0]["detector"]
    triggered = result["triggered"]
    assert triggered["kind"] == "IncidentReport" and triggered["finished"], triggered
    assert triggered["phase"] == "Completed" and triggered["incident"]["window"]
    report = cluster.kubectl("get", "incidentreport", triggered["name"], "-n", namespace, "-o", "json")
    assert json.loads(report.stdout)["status"]["phase"] == "Completed"
    assert result["postmortem"] is not None and triggered["name"] in result["postmortem"].messages[0].content.text
    transcript(result, namespace)


def transcript(result: dict[str, Any], namespace: str) -> None:
    """What the assistant saw, shown with -s (the README's transcript comes from here)."""
    lines = [f"> list_tools -> {', '.join(sorted(result['tools']))}"]
    lines.append(f"> get_analysis(namespace={namespace}, name=shop) -> {result['detail']['total_findings']} findings:")
    for finding in result["detail"]["findings"][:3]:
        lines.append(f"    {finding['severity']:<8} {finding['title'][:100]}")
    entry = result["history"]["items"][0]
    lines.append(
        f"> search_finding_history(workload=...) -> {entry['resource']}: first seen {entry['first_seen']}, "
        f"{entry['occurrences']} run(s)"
    )
    triggered = result["triggered"]
    causes = (triggered.get("incident") or {}).get("suspected_causes") or []
    top = f"{causes[0]['title']} ({causes[0]['resource']})" if causes else "none"
    lines.append(f"> trigger_incident_report(since=30m) -> {triggered['name']} {triggered['phase']}; top cause: {top}")
    print("\n" + "\n".join(str(line)[:220] for line in lines), file=sys.__stdout__, flush=True)


def _api_server_reads(cluster: E2ECluster, resource: str) -> float:
    """LIST and GET requests the API server has answered for ``resource``, from its own /metrics."""
    total = 0.0
    for line in cluster.kubectl("get", "--raw", "/metrics").stdout.splitlines():
        reads = 'verb="LIST"' in line or 'verb="GET"' in line
        if line.startswith("apiserver_request_total{") and f'resource="{resource}"' in line and reads:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_reads_come_from_the_watch_not_a_request_per_call(
    cluster: E2ECluster, namespace: str, servers: tuple[ServerProcess, ServerProcess], postgres: LocalPostgres
) -> None:
    key = create_key(postgres, [namespace], ["read"])
    runs = f"/v1/namespaces/{namespace}/runs?kind=SLOReview"
    slo = {
        "apiVersion": "infragenius.io/v1alpha1",
        "kind": "SLOReview",
        "metadata": {"name": "checkout"},
        "spec": {
            "service": "checkout",
            "objective": 99.9,
            "sli": {"ratio": {"errorQuery": 'http_requests_total{code=~"5.."}', "totalQuery": "http_requests_total"}},
        },
    }
    created = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(slo), check=False)
    if created.returncode != 0:
        pytest.fail(f"the SLOReview was refused: {created.stderr}")
    for server in servers:
        wait_for(
            lambda s=server: [r["name"] for r in get_json(s, runs, key).json()["items"]] == ["checkout"],
            timeout=30,
            what="the new SLOReview in the cache",
        )
    before = _api_server_reads(cluster, "sloreviews")
    for n in range(50):
        listed = get_json(servers[n % 2], runs, key)
        assert listed.status_code == 200 and listed.json()["items"][0]["service"] == "checkout"
        slo = get_json(servers[n % 2], f"/v1/namespaces/{namespace}/sloreviews/checkout", key)
        assert slo.status_code == 200 and slo.json()["run"]["name"] == "checkout", slo.text
    # No server call became an API request (another client may read now and then: allow a handful).
    assert _api_server_reads(cluster, "sloreviews") - before < 5
    cluster.kubectl("delete", "sloreview", "checkout", "-n", namespace)
    for server in servers:
        wait_for(lambda s=server: get_json(s, runs, key).json()["items"] == [], timeout=30, what="the deletion")


def test_slo_status_of_a_service_from_a_review_of_real_prometheus_data(
    cluster: E2ECluster, namespace: str, history_operator: KopfRunner, servers: tuple[ServerProcess, ServerProcess],
    postgres: LocalPostgres,
) -> None:  # fmt: skip
    errors, total = ratio_queries("breaching")
    review = {
        "apiVersion": "infragenius.io/v1alpha1",
        "kind": "SLOReview",
        "metadata": {"name": "checkout"},
        "spec": {
            "service": "checkout",
            "objective": SCENARIOS["breaching"].objective,
            "sli": {"ratio": {"errorQuery": errors, "totalQuery": total}},
            "evaluationTime": T_END.isoformat().replace("+00:00", "Z"),
        },
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(review))
    wait_for(
        lambda: (
            json.loads(cluster.kubectl("get", "sloreview", "checkout", "-n", namespace, "-o", "json").stdout)
            .get("status", {})
            .get("verdict")
        ),
        timeout=SETUP_TIMEOUT,
        what="the SLOReview's verdict",
    )
    key = create_key(postgres, [namespace], ["read"])

    async def ask() -> dict[str, Any]:
        async with mcp_client(servers[0], key) as mcp:
            reply = await mcp.call_tool("get_slo_status", {"namespace": namespace, "name": "checkout"})
            assert not reply.is_error, reply.content
            return reply.structured_content or {}

    status = asyncio.run(ask())
    assert status["verdict"] == "Breaching"
    assert status["budget_remaining_percent"] is not None and status["budget_remaining_percent"] < 100
    assert status["burn_rates"]["1h"] is not None and status["burn_rates"]["1h"] > 14.4
    assert status["time_to_exhaustion"] and status["alerts_firing"]


def test_api_keys_are_refused_for_what_they_lack(
    namespace: str, servers: tuple[ServerProcess, ServerProcess], postgres: LocalPostgres
) -> None:
    server = servers[0]
    runs = f"/v1/namespaces/{namespace}/runs?kind=Analysis"
    anonymous = get_json(server, runs, None)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthenticated"
    anonymous_mcp = httpx.post(f"{server.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert anonymous_mcp.status_code == 401 and anonymous_mcp.json()["error"]["code"] == -32001

    expired = create_key(postgres, [namespace], ["read"], expires_in_days="0.00001")  # about one second
    time.sleep(1.5)
    refused = get_json(server, runs, expired)
    assert refused.status_code == 401 and "expired" in refused.json()["error"]["message"]

    reader = create_key(postgres, [namespace], ["read"])
    assert get_json(server, runs, reader).status_code == 200
    no_run = httpx.post(
        f"{server.url}/v1/namespaces/{namespace}/analyses", headers={"Authorization": f"Bearer {reader}"}
    )
    assert no_run.status_code == 403 and "'run'" in no_run.json()["error"]["message"]
    elsewhere = get_json(server, "/v1/namespaces/kube-system/runs?kind=Analysis", reader)
    assert elsewhere.status_code == 403 and "'kube-system'" in elsewhere.json()["error"]["message"]

    key_id = reader.split("_")[1]
    assert keys_cli(postgres, "revoke", key_id).returncode == 0
    listed = json.loads(keys_cli(postgres, "list", "-o", "json").stdout)
    assert any(k["keyId"] == key_id and k["revoked"] for k in listed)
    assert reader.rsplit("_", 1)[1] not in json.dumps(listed)
    # Revocation holds on the next request once the few-second cache has passed.
    wait_for(lambda: get_json(server, runs, reader).status_code == 401, timeout=30, what="revocation")


def namespaced_reader(cluster: E2ECluster, namespace: str) -> str:
    """A service account whose Role lets it get and list Analyses in ``namespace`` only; returns its token."""
    core = client.CoreV1Api(cluster.api)
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    rbac.create_namespaced_role(
        namespace,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "infragenius-reader"},
            "rules": [{"apiGroups": ["infragenius.io"], "resources": ["analyses"], "verbs": ["get", "list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "infragenius-reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "infragenius-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    )
    token: str = core.create_namespaced_service_account_token(
        "reader", namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    ).status.token
    return token


def reader_kubeconfig(cluster: E2ECluster, namespace: str, directory: Path, token: str | None = None) -> Path:
    """A kubeconfig for the namespaced reader (created unless ``token`` is given), as a local user has one."""
    token = token or namespaced_reader(cluster, namespace)
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    kubeconfig = directory / "reader.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                **admin,
                "users": [{"name": "reader", "user": {"token": token}}],
                "contexts": [
                    {"name": "reader", "context": {"cluster": admin["clusters"][0]["name"], "user": "reader"}}
                ],
                "current-context": "reader",
            }
        )
    )
    return kubeconfig


@pytest.fixture
def other_namespace(cluster: E2ECluster, namespace: str) -> Iterator[str]:
    core = client.CoreV1Api(cluster.api)
    other = f"{namespace[:50]}-other"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    yield other
    core.delete_namespace(other)


def test_a_service_account_is_allowed_where_rbac_allows_it_and_denied_elsewhere(
    cluster: E2ECluster, namespace: str, other_namespace: str, servers: tuple[ServerProcess, ServerProcess]
) -> None:
    token = namespaced_reader(cluster, namespace)
    allowed = get_json(servers[1], f"/v1/namespaces/{namespace}/runs?kind=Analysis", token)
    assert allowed.status_code == 200, allowed.text
    denied = get_json(servers[1], f"/v1/namespaces/{other_namespace}/runs?kind=Analysis", token)
    assert denied.status_code == 403
    assert f"system:serviceaccount:{namespace}:reader" in denied.json()["error"]["message"]
    # The Role grants no create: a trigger is refused by the same SubjectAccessReview path.
    no_create = httpx.post(
        f"{servers[1].url}/v1/namespaces/{namespace}/incidentreports", headers={"Authorization": f"Bearer {token}"}
    )
    assert no_create.status_code == 403 and "create incidentreports" in no_create.json()["error"]["message"]
    assert get_json(servers[1], f"/v1/namespaces/{namespace}/runs?kind=Analysis", "not-a-token").status_code == 401


def test_stdio_serves_a_local_assistant_with_the_callers_own_kubeconfig(
    cluster: E2ECluster, namespace: str, other_namespace: str, history_operator: KopfRunner, tmp_path: Path
) -> None:
    token = namespaced_reader(cluster, namespace)
    workloads.apply(cluster.kubectl, namespace, analysis("local"))
    wait_phase(cluster, namespace, "local", ("Completed",), timeout=SETUP_TIMEOUT)
    kubeconfig = reader_kubeconfig(cluster, namespace, tmp_path, token)
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "infragenius.cli", "mcp", "--stdio", "--kubeconfig", str(kubeconfig)],
        env={"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "INFRAGENIUS_STACK_MANAGE": "false"},
    )

    async def conversation() -> tuple[Any, Any, Any]:
        async with Client(parameters) as mcp:
            mine = await mcp.call_tool("get_analysis", {"namespace": namespace, "name": "local"})
            theirs = await mcp.call_tool("list_runs", {"namespace": other_namespace, "kind": "Analysis"})
            no_create = await mcp.call_tool("trigger_analysis", {"namespace": namespace, "wait_seconds": 0})
            return mine, theirs, no_create

    mine, theirs, no_create = asyncio.run(conversation())
    assert not mine.is_error and mine.structured_content["run"]["phase"] == "Completed"
    # The API server, not the server, refuses what the kubeconfig's user may not do.
    assert theirs.is_error and json.loads(theirs.content[0].text)["error"]["code"] == "forbidden"
    assert no_create.is_error and json.loads(no_create.content[0].text)["error"]["code"] == "forbidden"


INSPECTOR = "@modelcontextprotocol/inspector-cli@0.14.0"  # 0.14.0 declares no Node engine; newer ones want Node 22


def inspector(kubeconfig: Path, *arguments: str) -> dict[str, Any]:
    """The MCP Inspector's CLI (the TypeScript SDK's client) against `infragenius mcp --stdio`."""
    npx = shutil.which("npx")
    if npx is None:
        if os.environ.get("CI"):
            pytest.fail("npx (Node.js) is not installed (CI=true): make install provides nodejs and npm")
        pytest.skip("npx (Node.js) is not installed: the MCP Inspector cannot run; set CI=true to make this a failure")
    command = [npx, "--yes", "-p", INSPECTOR, "mcp-inspector-cli", "--cli"]
    command += [sys.executable, "-m", "infragenius.cli", "mcp", "--stdio", "--kubeconfig", str(kubeconfig)]
    reply = subprocess.run(
        [*command, *arguments],
        env=_env(INFRAGENIUS_STACK_MANAGE="false"),
        capture_output=True,
        text=True,
        timeout=SETUP_TIMEOUT,
    )
    assert reply.returncode == 0, reply.stdout[-2000:] + reply.stderr[-2000:]
    result: dict[str, Any] = json.loads(reply.stdout)
    return result


def test_the_mcp_inspector_as_an_independent_client(
    cluster: E2ECluster, namespace: str, other_namespace: str, history_operator: KopfRunner, tmp_path: Path
) -> None:
    kubeconfig = reader_kubeconfig(cluster, namespace, tmp_path)
    workloads.apply(cluster.kubectl, namespace, analysis("inspected"))
    wait_phase(cluster, namespace, "inspected", ("Completed",), timeout=SETUP_TIMEOUT)
    tools = inspector(kubeconfig, "--method", "tools/list")["tools"]
    assert {t["name"] for t in tools} >= {"list_runs", "get_analysis", "search_finding_history"}
    listed = inspector(
        kubeconfig, "--method", "tools/call", "--tool-name", "list_runs", "--tool-arg", f"namespace={namespace}",
        "kind=Analysis",
    )  # fmt: skip
    assert not listed["isError"] and [r["name"] for r in listed["structuredContent"]["items"]] == ["inspected"]
    refused = inspector(
        kubeconfig, "--method", "tools/call", "--tool-name", "list_runs", "--tool-arg",
        f"namespace={other_namespace}", "kind=Analysis",
    )  # fmt: skip
    assert refused["isError"] and json.loads(refused["content"][0]["text"])["error"]["code"] == "forbidden"
    prompts = inspector(kubeconfig, "--method", "prompts/list")["prompts"]
    assert {"triage_namespace", "draft_postmortem"} <= {p["name"] for p in prompts}


def _calls_until_refused(
    servers: tuple[ServerProcess, ...], path: str, key: str, limit: int = 200
) -> tuple[int, httpx.Response]:
    """Calls alternating between the servers until one is refused: (calls allowed, the refusal).

    One kept-alive connection per server, so the calls come as fast as the servers answer them.
    """
    clients = [httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) for s in servers]
    try:
        for call in range(limit):
            reply = clients[call % len(clients)].get(path)
            if reply.status_code != 200:
                return call, reply
    finally:
        for http in clients:
            http.close()
    raise AssertionError(f"no call of {limit} was refused")


def test_the_61st_call_of_a_free_key_is_refused_across_two_servers(
    namespace: str, servers: tuple[ServerProcess, ServerProcess], postgres: LocalPostgres
) -> None:
    key = create_key(postgres, [namespace], ["read"], tier="free")
    started = time.monotonic()
    allowed, refusal = _calls_until_refused(servers, f"/v1/namespaces/{namespace}/runs?kind=Analysis", key)
    elapsed = time.monotonic() - started
    assert refusal.status_code == 429 and int(refusal.headers["Retry-After"]) >= 1
    # 60 at once, plus the one token a second a free key earns back while the loop ran.
    assert 60 <= allowed <= 60 + int(elapsed) + 1, (allowed, elapsed)
    print(f"free key: {allowed} calls allowed across two servers in {elapsed:.2f}s", file=sys.__stdout__)

    async def one_more() -> MCPError:
        async with mcp_client(servers[0], key) as mcp:
            with pytest.raises(MCPError) as refused:
                await mcp.call_tool("list_runs", {"namespace": namespace, "kind": "Analysis"})
            return refused.value

    error = asyncio.run(one_more())
    assert error.error.code == -32029 and "rate limit" in error.error.message


def test_with_redis_stopped_each_server_still_limits(
    namespace: str, servers: tuple[ServerProcess, ServerProcess], postgres: LocalPostgres, redis_server: LocalRedis
) -> None:
    key = create_key(postgres, [namespace], ["read"], tier="free")
    redis_server.stop()
    try:
        allowed, refusal = _calls_until_refused((servers[0],), f"/v1/namespaces/{namespace}/runs?kind=Analysis", key)
        assert refusal.status_code == 429
        assert 60 <= allowed <= 70, allowed
        assert servers[0].metric("infragenius_server_rate_limit_local") == 1
        # The other replica has its own bucket while Redis is away: a looser limit, never none.
        allowed_second, refusal_second = _calls_until_refused(
            (servers[1],), f"/v1/namespaces/{namespace}/runs?kind=Analysis", key
        )
        assert refusal_second.status_code == 429 and 60 <= allowed_second <= 70
    finally:
        redis_server.start()
    # Shared again once Redis is back (the limiter retries it every few seconds).
    fresh = create_key(postgres, [namespace], ["read"], tier="free")
    wait_for(
        lambda: (
            get_json(servers[0], f"/v1/namespaces/{namespace}/runs?kind=Analysis", fresh).status_code == 200
            and servers[0].metric("infragenius_server_rate_limit_local") == 0
        ),
        timeout=60,
        what="the limiter back on Redis",
    )


def _audit_rows(postgres: LocalPostgres, principal_like: str) -> list[tuple[str, str, str]]:
    text = postgres.psql(
        "SELECT operation || '|' || outcome || '|' || coalesce(namespace, '') FROM api_requests"
        f" WHERE principal LIKE '{principal_like}' ORDER BY id"
    )
    return [tuple(line.split("|")) for line in text.splitlines() if line]  # type: ignore[misc]


def test_audit_rows_match_the_calls_exactly(
    namespace: str, servers: tuple[ServerProcess, ServerProcess], postgres: LocalPostgres
) -> None:
    key = create_key(postgres, [namespace], ["read"])
    key_id = key.split("_")[1]
    expected: Counter[tuple[str, str, str]] = Counter()
    for n in range(6):
        get_json(servers[n % 2], f"/v1/namespaces/{namespace}/runs?kind=Analysis", key)
        expected[("list_analyses", "ok", namespace)] += 1
    get_json(servers[0], f"/v1/namespaces/{namespace}/analyses/missing", key)
    expected[("get_analysis", "not_found", namespace)] += 1
    get_json(servers[1], "/v1/namespaces/default/sloreviews/x", key)
    expected[("slo_status", "forbidden", "default")] += 1

    async def over_mcp() -> None:
        async with mcp_client(servers[0], key) as mcp:
            await mcp.call_tool("list_runs", {"namespace": namespace, "kind": "IncidentReport"})
            await mcp.call_tool("trigger_analysis", {"namespace": namespace})

    asyncio.run(over_mcp())
    expected[("list_incidentreports", "ok", namespace)] += 1
    expected[("trigger_analysis", "forbidden", namespace)] += 1
    total = sum(expected.values())
    rows = wait_for(
        lambda: (r := _audit_rows(postgres, f"key:%/{key_id}")) and len(r) >= total and r,
        timeout=60,
        what="the audit rows",
    )
    time.sleep(2)  # a late extra row would show now
    assert Counter(_audit_rows(postgres, f"key:%/{key_id}")) == expected
    assert key.rsplit("_", 1)[1] not in postgres.psql(
        "SELECT string_agg(principal || operation, ',') FROM api_requests"
    )
    assert len(rows) == total


def test_audit_rows_of_an_outage_are_written_once_postgres_is_back(
    cluster: E2ECluster, namespace: str, servers: tuple[ServerProcess, ServerProcess], postgres: LocalPostgres
) -> None:
    """Calls keep working for Kubernetes identities while Postgres is away; their rows wait in memory."""
    token = namespaced_reader(cluster, namespace)
    principal = f"k8s:system:serviceaccount:{namespace}:reader"
    postgres.stop()
    try:
        for n in range(5):
            reply = get_json(servers[n % 2], f"/v1/namespaces/{namespace}/runs?kind=Analysis", token)
            assert reply.status_code == 200, reply.text
    finally:
        postgres.start()
    wait_for(lambda: len(_audit_rows(postgres, principal)) >= 5, timeout=120, what="the outage's audit rows")
    time.sleep(2)
    assert _audit_rows(postgres, principal) == [("list_analyses", "ok", namespace)] * 5


def _malformed_requests(namespace: str) -> list[tuple[str, str, Any, dict[str, str]]]:
    """(method, path, body, headers) of many kinds of bad input, to /mcp and /v1."""
    rpc = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}

    def call(name: str, arguments: Any) -> bytes:
        message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
        return json.dumps(message).encode()

    bodies: list[tuple[str, str, Any, dict[str, str]]] = [
        ("POST", "/mcp", b"{not json", rpc),
        ("POST", "/mcp", b"", rpc),
        ("POST", "/mcp", b"[]", rpc),
        ("POST", "/mcp", b'{"jsonrpc": "1.0", "id": 1, "method": "tools/list"}', rpc),
        ("POST", "/mcp", b'{"jsonrpc": "2.0", "id": 1, "method": "no/such/method"}', rpc),
        ("POST", "/mcp", b'{"jsonrpc": "2.0", "id": {"x": 1}, "method": "tools/list"}', rpc),
        ("POST", "/mcp", call("no_such_tool", {}), rpc),
        ("POST", "/mcp", call("list_runs", {"namespace": 5, "kind": "Analysis"}), rpc),
        ("POST", "/mcp", call("list_runs", {"namespace": "Kube_System", "kind": "Analysis"}), rpc),
        ("POST", "/mcp", call("list_runs", {"namespace": "te\u0455t", "kind": "Analysis"}), rpc),  # Cyrillic s
        ("POST", "/mcp", call("list_runs", {"namespace": "test\u200b", "kind": "Analysis"}), rpc),  # zero-width
        ("POST", "/mcp", call("get_analysis", {"namespace": namespace, "name": "../../etc"}), rpc),
        ("POST", "/mcp", call("list_runs", {"namespace": namespace, "kind": "Analysis", "limit": 10**9}), rpc),
        ("POST", "/mcp", call("search_finding_history", {"namespace": namespace, "since": "yesterday"}), rpc),
        ("POST", "/mcp", call("list_runs", "not an object"), rpc),
        ("POST", "/mcp", b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": null}', rpc),
        ("POST", "/mcp", b"\xff\xfe\x00garbage", rpc),
        ("POST", "/mcp", b"{}", {"Content-Type": "text/plain"}),
        ("POST", "/mcp", b"x" * (300 * 1024), rpc),
        ("GET", f"/v1/namespaces/{namespace}/runs?kind=Nope", None, {}),
        ("GET", f"/v1/namespaces/{namespace}/runs?kind=Analysis&limit=-1", None, {}),
        ("GET", f"/v1/namespaces/{namespace}/runs?kind=Analysis&cursor=%FF%FE", None, {}),
        ("GET", "/v1/namespaces/NOT..A..LABEL/runs?kind=Analysis", None, {}),
        ("GET", "/v1/namespaces/%E2%80%AEevil/runs?kind=Analysis", None, {}),  # right-to-left override
        ("GET", f"/v1/namespaces/{namespace}/history?since=not-a-time", None, {}),
        ("POST", f"/v1/namespaces/{namespace}/incidentreports", b'{"since": "forever"}', {}),
        ("POST", f"/v1/namespaces/{namespace}/incidentreports", b'{"since": 30}', {}),
        ("POST", f"/v1/namespaces/{namespace}/analyses", b'{"wait_seconds": 1e308}', {}),
        ("POST", f"/v1/namespaces/{namespace}/analyses", b"\x00\x01\x02", {}),
        ("DELETE", f"/v1/namespaces/{namespace}/analyses", None, {}),
        ("GET", "/v1/no/such/route", None, {}),
    ]
    return bodies


def test_a_thousand_malformed_requests_are_all_answered_and_the_server_stays_healthy(
    cluster: E2ECluster, namespace: str, servers: tuple[ServerProcess, ServerProcess], postgres: LocalPostgres
) -> None:
    server = servers[0]
    # With the run scope too, so the triggers' own checks are reached (none of the bodies is valid).
    key = create_key(postgres, [namespace], ["read", "run"], tier="bulk")
    requests = _malformed_requests(namespace)
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        for n in range(1000):
            method, path, body, headers = requests[n % len(requests)]
            reply = http.request(method, path, content=body, headers=headers)
            statuses[reply.status_code] += 1
            assert reply.status_code < 500, (method, path, body if body is None else body[:80], reply.text[:300])
            assert "Traceback" not in reply.text
            # A message the SDK reads as a notification gets 202 and no body, as the transport specifies.
            if reply.content and reply.headers.get("content-type", "").startswith("application/json"):
                payload = reply.json()
                assert "error" in payload or payload.get("result", {}).get("isError"), (path, reply.text[:300])
    elapsed = time.monotonic() - started
    assert sum(statuses.values()) == 1000
    assert 403 not in statuses and statuses[400] > 0
    created = cluster.kubectl("get", "analyses,incidentreports", "-n", namespace, "-o", "name").stdout
    assert created.strip() == "", f"a malformed request created something: {created}"
    assert server.ready() and server.process.poll() is None
    assert get_json(server, f"/v1/namespaces/{namespace}/runs?kind=Analysis", key).status_code == 200
    # Shown with -s (KopfRunner swaps sys.stdout while the operator runs).
    print(f"1000 malformed requests in {elapsed:.1f}s; statuses {dict(statuses)}", file=sys.__stdout__)
