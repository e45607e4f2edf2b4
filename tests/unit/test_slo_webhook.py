"""The Alertmanager webhook: auth, limits, parsing, matching and de-duplication (real aiohttp server)."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from typing import Any, AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from infragenius.models.slo import TRIGGER_ANNOTATION, TriggerRecord
from infragenius.slo.service import KubeTriggerSink, TriggerUnavailable, UnknownSLO
from infragenius.slo.webhook import PATH, AlertWebhook, RecentKeys, WebhookOptions

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def alert(fp: str = "4a3b2c1d00000001", status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "SLOBurnRateHigh", "slo": "checkout", "namespace": "shop", "severity": "page", **labels},
        "annotations": {"summary": "burning"},
        "startsAt": "2025-01-01T00:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2025-01-01T01:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fp,
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="SLOBurnRateHigh"}',
        "truncatedAlerts": 0,
        "status": alerts[0]["status"] if alerts else "firing",
        "receiver": "infragenius",
        "groupLabels": {"alertname": "SLOBurnRateHigh"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


class FakeSink:
    def __init__(self, known: set[tuple[str, str]] | None = None, delay: float = 0.0) -> None:
        self.known = known if known is not None else {("shop", "checkout")}
        self.delivered: list[tuple[str, str, TriggerRecord]] = []
        self.delay = delay
        self.down = False

    async def deliver(self, namespace: str, name: str, record: TriggerRecord) -> str:
        await asyncio.sleep(self.delay)
        if self.down:
            raise TriggerUnavailable("API down")
        if (namespace, name) not in self.known:
            raise UnknownSLO(name)
        self.delivered.append((namespace, name, record))
        return "triggered" if record.status.value == "firing" else "recorded"


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture
async def client(sink: FakeSink) -> AsyncIterator[TestClient]:
    webhook = AlertWebhook(WebhookOptions(token=SecretStr(TOKEN), max_body_bytes=64 * 1024), sink)
    async with TestClient(TestServer(webhook.app())) as test_client:
        test_client.webhook = webhook  # type: ignore[attr-defined]
        yield test_client


async def test_token_is_required(client: TestClient, sink: FakeSink) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic " + TOKEN}):
        reply = await client.post(PATH, json=payload(alert()), headers=headers)
        assert reply.status == 401, headers
        assert (await reply.json())["error"] == "unauthorized"
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert sink.delivered == []


async def test_firing_alert_triggers_once_per_fingerprint_and_start(client: TestClient, sink: FakeSink) -> None:
    body = payload(alert())
    replies = [await client.post(PATH, json=body, headers=AUTH) for _ in range(5)]
    assert [r.status for r in replies] == [200] * 5
    actions = [(await r.json())["results"][0]["action"] for r in replies]
    assert actions == ["triggered"] + ["duplicate"] * 4
    assert len(sink.delivered) == 1
    namespace, name, record = sink.delivered[0]
    assert (namespace, name) == ("shop", "checkout")
    assert (record.alertname, record.fingerprint, record.starts_at) == (
        "SLOBurnRateHigh", "4a3b2c1d00000001", "2025-01-01T00:00:00.123456789Z"
    )
    assert record.labels["severity"] == "page"

    # The same alert firing again later (new startsAt) is a new trigger; its resolution is recorded.
    again = alert()
    again["startsAt"] = "2025-01-02T00:00:00Z"
    assert (await (await client.post(PATH, json=payload(again), headers=AUTH)).json())["results"][0]["action"] == "triggered"
    resolved = await client.post(PATH, json=payload(alert(status="resolved")), headers=AUTH)
    assert (await resolved.json())["results"][0]["action"] == "recorded"
    assert [d[2].status.value for d in sink.delivered] == ["firing", "firing", "resolved"]


async def test_concurrent_duplicates_trigger_once(sink: FakeSink) -> None:
    sink.delay = 0.05  # deliveries overlap
    webhook = AlertWebhook(WebhookOptions(token=SecretStr(TOKEN)), sink)
    async with TestClient(TestServer(webhook.app())) as test_client:
        replies = await asyncio.gather(*(test_client.post(PATH, json=payload(alert()), headers=AUTH) for _ in range(5)))
        assert {r.status for r in replies} == {200}
    assert len(sink.delivered) == 1


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe\x00garbage", "malformed_json"),
        (b"[" * 50000, "malformed_json"),  # deep nesting must not become a 5xx
        (b"[]", "invalid_payload"),
        (b'"text"', "invalid_payload"),
        (json.dumps({**payload(alert()), "version": "3"}).encode(), "unsupported_version"),
        (json.dumps({"version": "4"}).encode(), "invalid_payload"),
        (json.dumps({**payload(alert()), "alerts": [{"status": "firing"}]}).encode(), "invalid_payload"),
        (json.dumps({**payload(alert()), "alerts": [{**alert(), "labels": {"slo": 5}}]}).encode(), "invalid_payload"),
        (json.dumps({**payload(alert()), "alerts": [{**alert(), "status": "pending"}]}).encode(), "invalid_payload"),
    ],
)
async def test_bad_payloads_get_a_400_with_a_reason(client: TestClient, body: bytes, error: str) -> None:
    reply = await client.post(PATH, data=body, headers={**AUTH, "Content-Type": "application/json"})
    assert reply.status == 400, await reply.text()
    answer = await reply.json()
    assert answer["error"] == error and answer["reason"]


async def test_body_size_is_limited(client: TestClient, sink: FakeSink) -> None:
    big = payload(alert(padding="x" * 70 * 1024))
    reply = await client.post(PATH, json=big, headers=AUTH)
    assert reply.status == 413
    assert (await reply.json())["error"] == "too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit applies while reading
        for _ in range(100):
            yield b" " * 1024

    reply = await client.post(PATH, data=chunks(), headers=AUTH)
    assert reply.status == 413
    assert sink.delivered == []


async def test_unknown_and_unmatched_slos(client: TestClient, sink: FakeSink) -> None:
    reply = await client.post(PATH, json=payload(alert(slo="nope")), headers=AUTH)
    assert reply.status == 404
    answer = await reply.json()
    assert answer["error"] == "unknown_slo" and answer["results"][0]["reason"] == "no SLOReview shop/nope"

    unlabeled = alert()
    del unlabeled["labels"]["slo"]
    reply = await client.post(PATH, json=payload(unlabeled), headers=AUTH)
    assert reply.status == 422 and (await reply.json())["error"] == "unmatched"

    reply = await client.post(PATH, json=payload(alert(slo="Not_A_Name")), headers=AUTH)
    assert reply.status == 422

    # An SLO created after a 404 is triggered by the next delivery (unknown alerts are not remembered).
    sink.known.add(("shop", "nope"))
    reply = await client.post(PATH, json=payload(alert(slo="nope")), headers=AUTH)
    assert reply.status == 200 and len(sink.delivered) == 1

    # Mixed: one known, one unknown -> 200 with per-alert results.
    reply = await client.post(PATH, json=payload(alert("f2"), alert("f3", slo="other")), headers=AUTH)
    assert reply.status == 200
    assert [r["action"] for r in (await reply.json())["results"]] == ["triggered", "unknown"]


async def test_api_outage_gets_503_and_the_retry_goes_through(client: TestClient, sink: FakeSink) -> None:
    sink.down = True
    reply = await client.post(PATH, json=payload(alert()), headers=AUTH)
    assert reply.status == 503
    sink.down = False
    reply = await client.post(PATH, json=payload(alert()), headers=AUTH)
    assert reply.status == 200 and (await reply.json())["results"][0]["action"] == "triggered"


async def test_mapping_labels_are_configurable(sink: FakeSink) -> None:
    options = WebhookOptions(token=SecretStr(TOKEN), slo_label="slo_name", namespace_label="slo_namespace")
    webhook = AlertWebhook(options, sink)
    async with TestClient(TestServer(webhook.app())) as test_client:
        labels = {"slo_name": "checkout", "slo_namespace": "shop"}
        body = payload({**alert(), "labels": {"alertname": "X", **labels}})
        reply = await test_client.post(PATH, json=body, headers=AUTH)
        assert reply.status == 200
        reply = await test_client.post(PATH, json=payload(alert("other")), headers=AUTH)  # default labels ignored
        assert reply.status == 422


async def test_flood_of_bad_requests_leaves_the_server_healthy(client: TestClient, sink: FakeSink) -> None:
    started = time.perf_counter()

    async def bad(i: int) -> int:
        body = [b"{", b"[]", json.dumps({"version": "4", "alerts": "x"}).encode(), b"\x00" * 100][i % 4]
        headers = AUTH if i % 5 else {}
        return (await client.post(PATH, data=body, headers=headers)).status

    statuses: list[int] = []
    for start in range(0, 1000, 50):
        statuses += await asyncio.gather(*(bad(i) for i in range(start, start + 50)))
    elapsed = time.perf_counter() - started
    assert set(statuses) <= {400, 401} and len(statuses) == 1000
    assert (await client.get("/healthz")).status == 200
    assert (await client.post(PATH, json=payload(alert()), headers=AUTH)).status == 200
    assert client.webhook.replies[400] + client.webhook.replies[401] == 1000  # type: ignore[attr-defined]
    print(f"1000 bad requests in {elapsed:.2f}s")


async def test_unknown_paths_and_methods_answer_json(client: TestClient) -> None:
    reply = await client.get(PATH)
    assert reply.status == 405 and (await reply.json())["error"]
    reply = await client.post("/elsewhere", json={})
    assert reply.status == 404 and (await reply.json())["error"]


def test_recent_keys_is_a_bounded_lru() -> None:
    keys = RecentKeys(3)
    assert all(keys.add(k) for k in "abc")
    assert not keys.add("a")  # refreshes "a"
    assert keys.add("d")  # evicts "b", the least recently seen
    assert not keys.add("a") and keys.add("b") and len(keys) == 3


# --- the Kubernetes side, with the API faked at the request level ---------------------------------


class FakeApiSink(KubeTriggerSink):
    """KubeTriggerSink over an in-memory object instead of the API server."""

    def __init__(self, obj: dict[str, Any] | None, fail_annotation: bool = False) -> None:
        super().__init__(api=None, history=3)  # type: ignore[arg-type]
        self.obj = obj
        self.fail_annotation = fail_annotation
        self.calls: list[tuple[str, str]] = []

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        self.calls.append((method, path.rsplit("/", 1)[-1]))
        if self.obj is None:
            raise UnknownSLO(path)
        if method == "GET":
            return copy.deepcopy(self.obj)
        if path.endswith("/status"):
            self.obj.setdefault("status", {}).update(body["status"])
        else:
            if self.fail_annotation:
                raise TriggerUnavailable("boom")
            self.obj["metadata"].setdefault("annotations", {}).update(body["metadata"]["annotations"])
        return self.obj


def _rec(fp: str, status: str = "firing") -> TriggerRecord:
    return TriggerRecord.model_validate(
        {"alertname": "A", "fingerprint": fp, "startsAt": "2025-01-01T00:00:00Z", "status": status,
         "labels": {}, "receivedAt": "2025-01-01T00:00:00Z"}
    )


async def test_status_dedupes_across_restarts_and_history_is_bounded() -> None:
    fake = FakeApiSink({"metadata": {"name": "checkout"}, "status": {}})
    assert await fake.deliver("shop", "checkout", _rec("f1")) == "triggered"
    assert fake.obj["metadata"]["annotations"][TRIGGER_ANNOTATION] == "f1@2025-01-01T00:00:00Z"
    # A new operator process (empty memory) gets the same alert again: the status record stops it.
    restarted = FakeApiSink(fake.obj)
    assert await restarted.deliver("shop", "checkout", _rec("f1")) == "duplicate"
    assert restarted.calls == [("GET", "checkout")]
    assert await restarted.deliver("shop", "checkout", _rec("f1", "resolved")) == "recorded"
    for fp in ("f2", "f3", "f4"):
        await restarted.deliver("shop", "checkout", _rec(fp))
    assert [t["fingerprint"] for t in restarted.obj["status"]["triggers"]] == ["f2", "f3", "f4"]


async def test_failed_annotation_is_completed_by_the_retry() -> None:
    fake = FakeApiSink({"metadata": {"name": "checkout"}, "status": {}}, fail_annotation=True)
    with pytest.raises(TriggerUnavailable):
        await fake.deliver("shop", "checkout", _rec("f1"))
    fake.fail_annotation = False
    assert await fake.deliver("shop", "checkout", _rec("f1")) == "triggered"
    assert len(fake.obj["status"]["triggers"]) == 1
    assert await fake.deliver("shop", "checkout", _rec("f1")) == "duplicate"


async def test_unknown_slo_raises() -> None:
    with pytest.raises(UnknownSLO):
        await FakeApiSink(None).deliver("shop", "gone", _rec("f1"))
