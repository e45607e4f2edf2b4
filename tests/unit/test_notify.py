"""Notification payloads checked against each format's published rules, the outbox plan, and sending.

The JSON schemas below are written from the public API documentation (Slack's Block Kit reference for
incoming webhooks; PagerDuty's Events API v2 "Send an Event"); CloudEvents are parsed by the CNCF SDK;
the webhook signature is recomputed here with the standard library.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cloudevents.core.bindings import http as ce_http

from infragenius.history import outbox
from infragenius.models.analysis import CloudEventsMode, SinkType
from infragenius.notify import formats
from infragenius.notify.send import Delivery, backoff, send
from infragenius.runs.notifications import host_allowed

TEXT_OBJECT = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"enum": ["plain_text", "mrkdwn"]}, "text": {"type": "string", "minLength": 1}},
}
SLACK_SCHEMA = {
    "type": "object",
    "required": ["text"],
    "properties": {
        "text": {"type": "string"},
        "blocks": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["type", "text"],
                        "properties": {
                            "type": {"const": "header"},
                            "text": {
                                "type": "object",
                                "properties": {
                                    "type": {"const": "plain_text"},
                                    "text": {"type": "string", "maxLength": 150},
                                },
                            },
                        },
                    },
                    {
                        "type": "object",
                        "required": ["type", "text"],
                        "properties": {
                            "type": {"const": "section"},
                            "text": {
                                **TEXT_OBJECT,
                                "properties": {
                                    **TEXT_OBJECT["properties"],
                                    "text": {"type": "string", "maxLength": 3000},
                                },
                            },
                        },
                    },
                    {
                        "type": "object",
                        "required": ["type", "elements"],
                        "properties": {
                            "type": {"const": "context"},
                            "elements": {"type": "array", "maxItems": 10, "items": TEXT_OBJECT},
                        },
                    },
                ]
            },
        },
    },
}
PAGERDUTY_SCHEMA = {
    "type": "object",
    "required": ["routing_key", "event_action"],
    "additionalProperties": False,
    "properties": {
        "routing_key": {"type": "string", "minLength": 1},
        "event_action": {"enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "maxLength": 255},
        "payload": {
            "type": "object",
            "required": ["summary", "source", "severity"],
            "properties": {
                "summary": {"type": "string", "maxLength": 1024},
                "source": {"type": "string", "minLength": 1},
                "severity": {"enum": ["critical", "error", "warning", "info"]},
                "timestamp": {"type": "string"},
                "component": {"type": "string"},
                "group": {"type": "string"},
                "class": {"type": "string"},
                "custom_details": {"type": "object"},
            },
        },
    },
    "if": {"properties": {"event_action": {"const": "trigger"}}},
    "then": {"required": ["payload", "dedup_key"]},
    "else": {"required": ["dedup_key"]},
}

ANALYSIS = {"namespace": "shop", "name": "shop-health", "uid": "u-1"}
HOSTILE = "<!channel> crash <https://evil.example|click> [here](https://evil.example) & *bold*"


def entry(
    state: str = "New", severity: str = "critical", title: str = "checkout is crash looping", n: int = 0
) -> dict[str, Any]:
    return {
        "id": f"{n:016x}",
        "state": state,
        "detector": "pod",
        "severity": severity,
        "resource": "Deployment/shop/checkout",
        "title": title,
        "firstSeen": "2026-12-02T10:00:00Z",
    }


def message(event: str = "new", **kw: Any) -> dict[str, Any]:
    return {
        "event": event,
        "analysis": ANALYSIS,
        "runId": "r1",
        "at": "2026-12-02T10:05:00Z",
        "findings": [entry(**kw)],
    }


def test_slack_block_kit_and_escaping() -> None:
    request = formats.slack(message(title=HOSTILE), "https://hooks.slack.example/T/B/X")
    body = json.loads(request.body)
    jsonschema.validate(body, SLACK_SCHEMA)
    section = body["blocks"][1]["text"]["text"]
    assert "<!channel>" not in section and "&lt;!channel&gt;" in section and "<https://" not in section
    assert request.url == "https://hooks.slack.example/T/B/X" and "hooks.slack" not in request.body.decode()


def test_slack_digest_lists_twenty_and_counts_the_rest() -> None:
    digest = {
        "event": "digest",
        "of": "opened",
        "total": 200,
        "analysis": ANALYSIS,
        "runId": "r1",
        "at": "x",
        "findings": [entry(n=i) for i in range(20)],
    }
    body = json.loads(formats.slack(digest, "https://h/x").body)
    jsonschema.validate(body, SLACK_SCHEMA)
    assert (
        body["text"].startswith("200 findings new or reopened") and "and 190 more" in body["blocks"][1]["text"]["text"]
    )


def test_teams_adaptive_card() -> None:
    body = json.loads(formats.teams(message(title=HOSTILE), "https://teams.example/workflow").body)
    (attachment,) = body["attachments"]
    card = attachment["content"]
    assert body["type"] == "message" and attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    fact = card["body"][1]["facts"][0]["value"]
    assert "](https://" not in fact and "\\[here\\]" in fact


@pytest.mark.parametrize(("event", "action"), [("new", "trigger"), ("reopened", "trigger"), ("resolved", "resolve")])
def test_pagerduty_events_v2(event: str, action: str) -> None:
    request = formats.pagerduty(message(event), "R0UT1NGKEY", None)
    body = json.loads(request.body)
    jsonschema.validate(body, PAGERDUTY_SCHEMA)
    assert (body["event_action"], body["dedup_key"]) == (action, entry()["id"])
    assert request.url == formats.PAGERDUTY_EVENTS_URL
    with pytest.raises(formats.FormatError):
        formats.pagerduty({**message(), "event": "digest"}, "k", None)


def test_webhook_signature_verifies_independently_and_binds_the_timestamp() -> None:
    request = formats.webhook(message(), "https://receiver.example/hook", "s3cr3t", 1764669900, "u-1-42")
    timestamp = request.headers[formats.TIMESTAMP_HEADER]
    expected = "v1=" + hmac.new(b"s3cr3t", f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers[formats.SIGNATURE_HEADER], expected)
    replayed = "v1=" + hmac.new(b"s3cr3t", b"1764670000." + request.body, hashlib.sha256).hexdigest()
    assert request.headers[formats.SIGNATURE_HEADER] != replayed
    assert json.loads(request.body)["delivery"] == "u-1-42" and "s3cr3t" not in request.body.decode()
    with pytest.raises(formats.FormatError):
        formats.webhook(message(), "https://r/h", None, 1, "d")


@pytest.mark.parametrize("mode", list(CloudEventsMode))
def test_cloudevents_parse_with_the_sdk(mode: CloudEventsMode) -> None:
    request = formats.cloudevent(message(), "https://ce.example/", mode, "u-1-7")
    parsed = ce_http.from_http_event(ce_http.HTTPMessage(request.headers, request.body))
    attributes = parsed.get_attributes()
    assert attributes["specversion"] == "1.0" and attributes["id"] == "u-1-7"
    assert attributes["type"] == "io.infragenius.finding.new" and attributes["subject"] == entry()["id"]
    assert attributes["source"] == "/apis/infragenius.io/v1alpha1/namespaces/shop/analyses/shop-health"
    data = parsed.get_data()
    assert (json.loads(data) if isinstance(data, (bytes, str)) else data)["findings"][0]["id"] == entry()["id"]
    if mode is CloudEventsMode.binary:
        assert request.headers["ce-id"] == "u-1-7"
    else:
        assert request.headers["content-type"].startswith("application/cloudevents+json")


def test_build_needs_the_secret_and_names_none() -> None:
    with pytest.raises(formats.FormatError, match="needs its secret"):
        formats.build(SinkType.slack, {}, message(), None, timestamp=1, delivery="d")


def transitions(*states: tuple[str, str], notifiable: bool = True) -> list[dict[str, Any]]:
    return [
        {
            "finding_id": f"{i:016x}",
            "to_state": s,
            "severity": sev,
            "detector": "pod",
            "resource": "Pod/shop/p",
            "title": "t",
            "first_seen": "x",
            "notifiable": notifiable,
        }
        for i, (s, sev) in enumerate(states)
    ]


def sinks(*items: dict[str, Any], digest_over: int = 10) -> dict[str, Any]:
    return {"notify": {"sinks": list(items), "digestOver": digest_over}}


def test_plan_one_message_per_opened_or_resolved_finding_per_sink() -> None:
    spec = sinks({"name": "hook", "type": "Webhook", "url": "http://r/", "minSeverity": "warning"})
    planned = outbox.plan(
        spec, transitions(("New", "critical"), ("Resolved", "warning"), ("New", "info")), ANALYSIS, "r", "t"
    )
    assert [(p.sink, p.message_key, p.message["event"]) for p in planned] == [
        ("hook", f"new:{0:016x}", "new"),
        ("hook", f"resolved:{1:016x}", "resolved"),
    ]
    assert planned[0].sink_config == {"type": "Webhook", "url": "http://r/", "minSeverity": "warning"}
    assert outbox.plan(spec, transitions(("New", "critical"), notifiable=False), ANALYSIS, "r", "t") == []
    assert outbox.plan({}, transitions(("New", "critical")), ANALYSIS, "r", "t") == []


def test_plan_digest_when_many_are_new_at_once_but_pagerduty_pages_each_critical() -> None:
    spec = sinks(
        {"name": "chat", "type": "Slack", "secretRef": {"name": "s", "key": "url"}},
        {"name": "pd", "type": "PagerDuty", "secretRef": {"name": "p", "key": "key"}},
    )
    many = transitions(*([("New", "critical")] * 150 + [("New", "warning")] * 50))
    planned = outbox.plan(spec, many, ANALYSIS, "r", "t")
    chat = [p for p in planned if p.sink == "chat"]
    assert len(chat) == 1 and chat[0].message["total"] == 200 and len(chat[0].message["findings"]) == 20
    assert all(f["severity"] == "critical" for f in chat[0].message["findings"])  # most severe listed first
    assert len([p for p in planned if p.sink == "pd"]) == 150  # warnings never page


async def test_send_classifies_outcomes_against_a_real_server() -> None:
    async def handler(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        headers = {"Retry-After": "7"} if code == 429 else {}
        return web.Response(status=code, headers=headers)

    async def hang(request: web.Request) -> web.Response:
        import asyncio

        await asyncio.sleep(30)
        return web.Response()

    app = web.Application()
    app.router.add_post("/hang", hang)
    app.router.add_post("/{code}", handler)
    async with TestServer(app) as server, aiohttp.ClientSession() as client:
        base = str(server.make_url(""))

        async def outcome(path: str, timeout: float = 5.0) -> tuple[Delivery, int | None, float | None]:
            result = await send(client, formats.HTTPRequest(base + path, {}, b"{}"), timeout)
            assert result.error is None or base not in result.error  # the URL may be the secret
            return result.delivery, result.status, result.retry_after

        assert await outcome("/204") == (Delivery.sent, 204, None)
        assert await outcome("/500") == (Delivery.retry, 500, None)
        assert await outcome("/429") == (Delivery.retry, 429, 7.0)
        assert await outcome("/400") == (Delivery.failed, 400, None)
        assert await outcome("/404") == (Delivery.failed, 404, None)
        assert (await outcome("/hang", timeout=0.5))[0] is Delivery.retry
    async with aiohttp.ClientSession() as client:
        down = await send(client, formats.HTTPRequest(base + "/204", {}, b""), 2.0)
    assert down.delivery is Delivery.retry and base not in (down.error or "")


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    waits = [backoff(n, rng=rng) for n in range(12)]
    assert all(0.5 * min(2**n, 300) <= w <= min(2**n, 300) for n, w in enumerate(waits))
    assert max(waits) <= 300


@pytest.mark.parametrize(
    ("url", "patterns", "allowed"),
    [
        ("https://hooks.slack.com/services/x", [], True),
        ("http://169.254.169.254/latest/meta-data", [], False),
        ("http://metadata.google.internal/", [], False),
        ("http://[fe80::1]/", [], False),
        ("https://hooks.slack.com/x", ["hooks.slack.com"], True),
        ("https://evil.example/x", ["hooks.slack.com", "*.example.com"], False),
        ("https://a.example.com/x", ["*.example.com"], True),
        ("not a url", [], False),
    ],
)
def test_host_allowed(url: str, patterns: list[str], allowed: bool) -> None:
    assert host_allowed(url, patterns) is allowed


def test_the_notify_example_is_a_valid_analysis_with_slack_pagerduty_and_a_silence() -> None:
    from pathlib import Path

    import yaml

    from infragenius.models.analysis import AnalysisSpec

    doc = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "analysis-notify.yaml").read_text())
    spec = AnalysisSpec.model_validate(doc["spec"])
    assert [s.type for s in spec.notify.sinks] == [SinkType.slack, SinkType.pagerduty]
    assert spec.silences and spec.silences[0].by == "alice"


def test_default_sinks_apply_only_to_analyses_naming_none_and_are_checked_at_start_up() -> None:
    from infragenius.analysis.reconcile import recorded_spec
    from infragenius.models.analysis import AnalysisSpec
    from infragenius.runs.startup import check_default_sinks
    from infragenius.settings import Settings

    default = [{"name": "platform", "type": "CloudEvents", "url": "https://events.example/"}]
    bare = AnalysisSpec()
    assert recorded_spec(bare, default)["notify"]["sinks"] == default
    own = AnalysisSpec.model_validate(
        {
            "notify": {
                "sinks": [
                    {"name": "mine", "type": "Webhook", "url": "https://x/", "secretRef": {"name": "s", "key": "k"}}
                ]
            }
        }
    )
    assert [s["name"] for s in recorded_spec(own, default)["notify"]["sinks"]] == ["mine"]
    check_default_sinks(Settings(notify_default_sinks=default))  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="INFRAGENIUS_NOTIFY_DEFAULT_SINKS: sinks.0"):
        check_default_sinks(Settings(notify_default_sinks=[{"name": "x", "type": "Slack"}]))  # type: ignore[call-arg]
