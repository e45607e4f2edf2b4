"""The Alertmanager webhook's pure parts (the de-duplication memory, matching an alert to an SLOReview, the
bounded record kept in status), and its server's own answers: a malformed token, and TLS.

Everything that goes through the HTTP server or the Kubernetes side (auth, limits, malformed payloads,
de-duplication in memory and in status, unknown SLOs, API failures) runs against the real KubeTriggerSink
and a real API server in tests/e2e/test_slo.py.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from infragenius.alerts.receiver import (
    MAX_LABEL_VALUE,
    MAX_LABELS,
    AlertWebhook,
    RecentKeys,
    WebhookOptions,
    _record,
)
from infragenius.models.alertmanager import Alert
from tests.tls_support import self_signed

OPTIONS = WebhookOptions(token=SecretStr("s3cret-token"))


def alert(status: str = "firing", **labels: str) -> Alert:
    return Alert.model_validate(
        {
            "status": status,
            "labels": {
                "alertname": "SLOBurnRateHigh",
                "slo": "checkout",
                "namespace": "shop",
                "severity": "page",
                **labels,
            },
            "annotations": {"summary": "burning"},
            "startsAt": "2025-01-01T00:00:00.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph",
            "fingerprint": "4a3b2c1d00000001",
        }
    )


def test_recent_keys_is_a_bounded_lru() -> None:
    keys = RecentKeys(3)
    assert all(keys.add(k) for k in "abc")
    assert not keys.add("a")  # refreshes "a"
    assert keys.add("d")  # evicts "b", the least recently seen
    assert not keys.add("a") and keys.add("b") and len(keys) == 3


def test_alerts_are_matched_by_their_labels() -> None:
    # The webhook's matching never touches its sink; there is none here.
    webhook = AlertWebhook(OPTIONS, sink=None)  # type: ignore[arg-type]
    assert webhook._target(alert()) == ("shop", "checkout")
    assert "no 'slo' and 'namespace' labels" in str(webhook._target(alert(slo="")))
    assert webhook._target(alert(slo="Not_A_Name")) == "shop/Not_A_Name is not a valid SLOReview name"
    assert isinstance(webhook._target(alert(namespace="a.b")), str)  # a namespace is an RFC 1123 label
    relabelled = AlertWebhook(
        WebhookOptions(token=SecretStr("t"), slo_label="slo_name", namespace_label="slo_namespace"),
        sink=None,  # type: ignore[arg-type]
    )
    assert relabelled._target(alert(slo_name="api", slo_namespace="prod")) == ("prod", "api")
    assert isinstance(relabelled._target(alert()), str)  # the default labels are ignored


def test_the_record_kept_in_status_is_bounded() -> None:
    many: dict[str, Any] = {f"label{i:02d}": "v" * 500 for i in range(40)}
    rec = _record(alert(**many), OPTIONS)
    assert len(rec.labels) == MAX_LABELS
    assert list(rec.labels)[:4] == ["alertname", "namespace", "severity", "slo"]  # the ones that matter first
    assert all(len(v) <= MAX_LABEL_VALUE for v in rec.labels.values())
    assert (rec.alertname, rec.fingerprint, rec.starts_at, rec.status.value) == (
        "SLOBurnRateHigh",
        "4a3b2c1d00000001",
        "2025-01-01T00:00:00.123456789Z",
        "firing",
    )
    assert rec.token == "4a3b2c1d00000001@2025-01-01T00:00:00.123456789Z"


async def _raw_post(port: int, authorization: bytes, ssl_context: Any = None) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ssl_context)
    writer.write(
        b"POST /alertmanager HTTP/1.1\r\nHost: localhost\r\nAuthorization: " + authorization + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    await writer.drain()
    reply = await reader.read()
    writer.close()
    return reply


async def test_a_token_that_is_not_utf8_is_unauthorized_not_a_server_error() -> None:
    hook = AlertWebhook(OPTIONS, sink=None)  # type: ignore[arg-type]  # never reached without a valid token
    port = await hook.start("127.0.0.1", 0)
    try:
        for token in (b"Bearer \xff", b"Bearer \xc3\x28", b"Bearer s3cret-token\xff", b"\xff\xfe"):
            reply = await _raw_post(port, token)
            assert reply.startswith(b"HTTP/1.1 401"), (token, reply[:200])
            assert b'"error": "unauthorized"' in reply
        assert await _raw_post(port, b"Bearer s3cret-token") != b""
    finally:
        await hook.stop()
    assert hook.replies[500] == 0


async def test_the_webhook_serves_https_with_the_mounted_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    options = WebhookOptions(token=SecretStr("s3cret-token"), tls_cert_file=str(cert), tls_key_file=str(key))
    hook = AlertWebhook(options, sink=None)  # type: ignore[arg-type]
    port = await hook.start("127.0.0.1", 0)
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        trusted.check_hostname = False  # connecting by address; the chain is what is checked
        reply = await _raw_post(port, b"Bearer wrong", ssl_context=trusted)
        assert reply.startswith(b"HTTP/1.1 401")
        plain = await _raw_post(port, b"Bearer wrong")  # plain HTTP to the TLS port gets no HTTP answer
        assert not plain.startswith(b"HTTP/1.1 401")
    finally:
        await hook.stop()
    half = WebhookOptions(token=SecretStr("s3cret-token"), tls_cert_file=str(cert))
    with pytest.raises(ValueError, match="both a certificate and a key"):
        await AlertWebhook(half, sink=None).start("127.0.0.1", 0)  # type: ignore[arg-type]
