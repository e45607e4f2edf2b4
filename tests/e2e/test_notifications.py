"""Notifications end to end: the operator as a process, history and outbox in a real Postgres, and real
HTTP receivers on loopback (a signed webhook, CloudEvents, one that hangs).

A crash loop appears (one message per sink), persists for three runs (none), is fixed while the receivers
are down and the operator is SIGKILLed with the resolve messages in the outbox (sent after the restart,
once), and comes back (one reopened message). The webhook answers 500 to its first deliveries: every
message still arrives exactly once. The hanging receiver never blocks a run; its sink shows the timeout.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cloudevents.core.bindings import http as ce_http
from kubernetes import client

from infragenius.notify import formats
from infragenius_devtools.devcluster import scenarios as workloads
from infragenius_devtools.devcluster.operator_process import OperatorProcess
from infragenius_devtools.devcluster.services import LocalPostgres
from tests.e2e.analysis_support import analysis, get_analysis
from tests.e2e.conftest import E2ECluster, OperatorAccount
from tests.e2e.operator_process import start_operator
from tests.e2e.support import wait_for
from tests.unit.test_notify import PAGERDUTY_SCHEMA, SLACK_SCHEMA

pytestmark = pytest.mark.e2e
HMAC_KEY = "e2e-hmac-key-not-a-real-secret"


@dataclass
class Receiver:
    """Records what each path accepted; can refuse (500 for the first N, 503 while down) or hang."""

    accepted: dict[str, list[tuple[dict[str, str], bytes]]] = field(default_factory=dict)
    refuse_first: dict[str, int] = field(default_factory=dict)
    down: bool = False
    attempts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            self.attempts[path] = self.attempts.get(path, 0) + 1
            if self.down:
                return 503
            if self.refuse_first.get(path, 0) > 0:
                self.refuse_first[path] -= 1
                return 500
            self.accepted.setdefault(path, []).append((headers, body))
            return 204

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for _, body in self.accepted.get(path, [])]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver(refuse_first={"/hook": 3})

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path == "/hang":
                time.sleep(30)
                code = 204
            else:
                code = state.handle(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def grant_secret(cluster: E2ECluster, home: str, account: str, secret: str) -> None:
    """What the chart renders for notifications.secrets: get on exactly that Secret, in its namespace."""
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    rule = client.V1PolicyRule(api_groups=[""], resources=["secrets"], resource_names=[secret], verbs=["get"])
    rbac.create_namespaced_role(home, client.V1Role(metadata=client.V1ObjectMeta(name=secret), rules=[rule]))
    binding = client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name=secret),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=secret),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=account, namespace=home)],
    )
    rbac.create_namespaced_role_binding(home, binding)


def completed_run(cluster: E2ECluster, namespace: str, before: str | None) -> dict[str, Any]:
    return wait_for(
        lambda: (
            (s := get_analysis(cluster, namespace, "shop").get("status", {})).get("phase") == "Completed"
            and s.get("runId") != before
            and s
        ),
        timeout=120,
        what="an analysis run",
    )


def rerun(cluster: E2ECluster, namespace: str, token: str) -> dict[str, Any]:
    before = get_analysis(cluster, namespace, "shop")["status"]["runId"]
    cluster.kubectl("annotate", "analysis", "shop", "-n", namespace, f"infragenius.io/rerun={token}", "--overwrite")
    return completed_run(cluster, namespace, before)


def pending(postgres: LocalPostgres, uid: str) -> int:
    return int(
        postgres.psql(
            f"SELECT count(*) FROM notification_outbox WHERE resource_uid = '{uid}' AND state = 'pending'"
            " AND sink <> 'slow'"
        )
    )


def test_each_change_reaches_each_sink_once_through_failures_and_a_sigkill(
    cluster: E2ECluster,
    namespace: str,
    operator_account: OperatorAccount,
    operator_kubeconfig: str,
    postgres: LocalPostgres,
    receiver: tuple[Receiver, str],
    tmp_path: Path,
) -> None:
    state, base = receiver
    core = client.CoreV1Api(cluster.api)
    home = operator_account.namespace  # the operator's namespace: where the platform team registers sinks
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=f"sink-hmac-{namespace[-5:]}",
            labels={"infragenius.io/notification-secret": "true"},
            annotations={"infragenius.io/notification-namespaces": namespace},
        ),
        data={
            key: base64.b64encode(value.encode()).decode()
            for key, value in {"key": HMAC_KEY, "slack-url": f"{base}/slack", "pd-key": "R0UT1NGKEY"}.items()
        },
    )
    core.create_namespaced_secret(home, secret)
    grant_secret(cluster, home, operator_account.name, str(secret.metadata.name))
    env = {
        "INFRAGENIUS_POSTGRES_URL": postgres.url,
        "INFRAGENIUS_OPERATOR_NAMESPACE": home,
        "INFRAGENIUS_NOTIFY_TIMEOUT_SECONDS": "2",
        "INFRAGENIUS_NOTIFY_POLL_SECONDS": "0.5",
    }
    operator: OperatorProcess = start_operator(operator_kubeconfig, tmp_path / "operator-1.log", **env)
    try:
        workloads.apply(cluster.kubectl, namespace, workloads.deployment("checkout", 1, custom_status=True))
        (pod,) = workloads.wait_pods(core, namespace, "app=checkout", 1)
        assert pod.metadata is not None and pod.metadata.name
        workloads.patch_failure(core, pod, "CrashLoopBackOff")
        ref = {"name": str(secret.metadata.name), "key": "key"}
        sinks = [
            {"name": "hook", "type": "Webhook", "url": f"{base}/hook", "secretRef": ref, "minSeverity": "critical"},
            {"name": "ce", "type": "CloudEvents", "url": f"{base}/ce", "mode": "binary", "minSeverity": "critical"},
            {"name": "slow", "type": "Webhook", "url": f"{base}/hang", "secretRef": ref, "minSeverity": "critical"},
            {"name": "chat", "type": "Slack", "secretRef": {**ref, "key": "slack-url"}, "minSeverity": "critical"},
            {"name": "pager", "type": "PagerDuty", "url": f"{base}/pd", "secretRef": {**ref, "key": "pd-key"}},
        ]
        workloads.apply(cluster.kubectl, namespace, analysis("shop", {"notify": {"sinks": sinks}}))
        first = completed_run(cluster, namespace, None)
        uid = get_analysis(cluster, namespace, "shop")["metadata"]["uid"]
        crash = next(f for f in first["findings"] if f["severity"] == "critical" and f["detector"] == "pod")

        # New: once to each sink; the webhook's first three attempts got 500s.
        wait_for(lambda: len(state.bodies("/hook")) == 1 and len(state.bodies("/ce")) == 1, timeout=120, what="new")
        assert state.attempts["/hook"] == 4

        for n in range(3):  # persists: no messages
            rerun(cluster, namespace, f"persist-{n}")
        wait_for(lambda: pending(postgres, uid) == 0, timeout=60, what="an empty outbox")
        assert (len(state.bodies("/hook")), len(state.bodies("/ce"))) == (1, 1)

        # Fixed while the receivers are down; the operator dies with the resolve messages in its outbox.
        state.down = True
        workloads.patch_healthy(core, namespace, pod.metadata.name)
        rerun(cluster, namespace, "fixed")
        wait_for(lambda: state.attempts.get("/ce", 0) >= 2, timeout=60, what="a refused resolve delivery")
        assert pending(postgres, uid) == 4  # the resolve for hook, ce, chat and pager
        operator.kill()
        state.down = False
        operator = start_operator(operator_kubeconfig, tmp_path / "operator-2.log", **env)
        wait_for(
            lambda: len(state.bodies("/hook")) == 2 and len(state.bodies("/ce")) == 2, timeout=180, what="resolved"
        )

        workloads.patch_failure(core, pod, "CrashLoopBackOff")  # back within the quiet period
        rerun(cluster, namespace, "back")
        wait_for(
            lambda: len(state.bodies("/hook")) == 3 and len(state.bodies("/ce")) == 3, timeout=180, what="reopened"
        )
        wait_for(lambda: pending(postgres, uid) == 0, timeout=60, what="an empty outbox")

        # Slack and PagerDuty, as their receivers would take them (schemas written from their API docs).
        slack, pages = state.bodies("/slack"), state.bodies("/pd")
        assert len(slack) == 3 and all(jsonschema.validate(m, SLACK_SCHEMA) is None for m in slack)
        for page in pages:
            jsonschema.validate(page, PAGERDUTY_SCHEMA)
        assert [(p["event_action"], p["dedup_key"]) for p in pages] == [
            ("trigger", crash["id"]),
            ("resolve", crash["id"]),
            ("trigger", crash["id"]),
        ]
        assert all(p["routing_key"] == "R0UT1NGKEY" for p in pages)

        hook = state.bodies("/hook")
        assert [(m["event"], m["findings"][0]["id"]) for m in hook] == [
            ("new", crash["id"]),
            ("resolved", crash["id"]),
            ("reopened", crash["id"]),
        ]
        assert len({m["delivery"] for m in hook}) == 3
        for headers, body in state.accepted["/hook"]:  # verified as a receiver would, from the shared key
            signed = headers[formats.TIMESTAMP_HEADER.lower()].encode() + b"." + body
            expected = "v1=" + hmac.new(HMAC_KEY.encode(), signed, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(headers[formats.SIGNATURE_HEADER.lower()], expected)
            assert HMAC_KEY not in body.decode()
        events = [ce_http.from_http_event(ce_http.HTTPMessage(h, b)) for h, b in state.accepted["/ce"]]
        assert [e.get_attributes()["type"] for e in events] == [
            "io.infragenius.finding.new",
            "io.infragenius.finding.resolved",
            "io.infragenius.finding.reopened",
        ]
        assert {e.get_attributes()["subject"] for e in events} == {crash["id"]}

        def reported() -> dict[str, Any] | None:
            status = get_analysis(cluster, namespace, "shop")["status"]
            sinks = {n["sink"]: n for n in status.get("notifications", [])}
            done = sinks.get("hook", {}).get("sent") == 3 and sinks.get("ce", {}).get("sent") == 3
            return sinks if done and sinks.get("slow", {}).get("lastError") else None

        delivered = wait_for(reported, timeout=60, what="status.notifications to catch up")
        assert (delivered["hook"]["sent"], delivered["hook"]["failed"], delivered["hook"]["pending"]) == (3, 0, 0)
        assert delivered["ce"]["sent"] == 3
        assert delivered["slow"]["sent"] == 0 and "timed out" in delivered["slow"]["lastError"], delivered["slow"]
        assert get_analysis(cluster, namespace, "shop")["status"]["phase"] == "Completed"
    finally:
        operator.stop()
        # The hanging sink's rows would be retried by every later operator on this session's Postgres.
        postgres.psql("UPDATE notification_outbox SET state = 'failed' WHERE state = 'pending' AND sink = 'slow'")
