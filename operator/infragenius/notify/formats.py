"""One outbox message as the HTTP request each sink type expects (pure).

Messages (see ``history.outbox.plan``): ``event`` (new, reopened, flapping, resolved, digest), ``analysis``
{namespace, name, uid}, ``runId``, ``at``, ``findings`` [{id, state, detector, severity, resource, title,
firstSeen}] and, for a digest, ``of`` (opened or resolved) and ``total``.

Finding titles come from cluster text (events, logs): they are escaped for each format so they cannot
mention a channel, add a link or break the layout. Secrets (webhook URLs, routing keys, HMAC keys) are
arguments, used for the request and never put in a body or an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent

from infragenius.models.analysis import CloudEventsMode, SinkType
from infragenius.models.api import ANALYSIS

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SIGNATURE_HEADER = "X-InfraGenius-Signature"
TIMESTAMP_HEADER = "X-InfraGenius-Timestamp"
DELIVERY_HEADER = "X-InfraGenius-Delivery"
CE_TYPE_PREFIX = "io.infragenius.finding."
LISTED = 10  # findings shown in a chat message; the rest are counted
_PD_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


@dataclass(frozen=True)
class HTTPRequest:
    url: str
    headers: dict[str, str]
    body: bytes


class FormatError(ValueError):
    """The sink cannot carry this message (e.g. no secret where one is needed); the text names no secret."""


def headline(message: dict[str, Any]) -> str:
    analysis = message.get("analysis") or {}
    where = f"{analysis.get('namespace', '?')}/{analysis.get('name', '?')}"
    findings = message.get("findings") or []
    if message.get("event") == "digest":
        verb = "resolved" if message.get("of") == "resolved" else "new or reopened"
        return f"{message.get('total', len(findings))} findings {verb} in Analysis {where}"
    first = findings[0] if findings else {}
    return f"{str(first.get('state', '?'))} {first.get('severity', '?')} finding in Analysis {where}"


def _line(finding: dict[str, Any]) -> str:
    return f"[{finding.get('severity')}] {finding.get('resource')}: {finding.get('title')} ({finding.get('id')})"


def slack_escape(text: str) -> str:
    """Slack's three control characters; with them escaped no text becomes a mention or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def markdown_escape(text: str) -> str:
    return _MARKDOWN.sub(r"\\\1", text)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def slack(message: dict[str, Any], webhook_url: str) -> HTTPRequest:
    findings = message.get("findings") or []
    lines = [slack_escape(_line(f)) for f in findings[:LISTED]]
    if len(findings) > LISTED or message.get("total", 0) > len(findings):
        lines.append(f"... and {int(message.get('total', len(findings))) - min(len(findings), LISTED)} more")
    body = {
        "text": slack_escape(headline(message)),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": headline(message)[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000] or "-"}},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": slack_escape(f"run {message.get('runId')} at {message.get('at')}")}
                ],
            },
        ],
    }
    return HTTPRequest(webhook_url, {"Content-Type": "application/json"}, _json(body))


def teams(message: dict[str, Any], webhook_url: str) -> HTTPRequest:
    findings = message.get("findings") or []
    facts = [{"title": str(f.get("severity")), "value": markdown_escape(_line(f))[:500]} for f in findings[:LISTED]]
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "size": "Medium",
                "weight": "Bolder",
                "wrap": True,
                "text": markdown_escape(headline(message)),
            },
            {"type": "FactSet", "facts": facts},
            {
                "type": "TextBlock",
                "isSubtle": True,
                "wrap": True,
                "text": markdown_escape(f"run {message.get('runId')}"),
            },
        ],
    }
    body = {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }
    return HTTPRequest(webhook_url, {"Content-Type": "application/json"}, _json(body))


def pagerduty(message: dict[str, Any], routing_key: str, url: str | None) -> HTTPRequest:
    """Events API v2: trigger a New/Reopened/Flapping critical finding, resolve a Resolved one; dedup_key
    is the finding id, so the incident follows the finding."""
    findings = message.get("findings") or []
    if message.get("event") == "digest" or len(findings) != 1:
        raise FormatError("a PagerDuty event carries exactly one finding")
    finding = findings[0]
    analysis = message.get("analysis") or {}
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "resolve" if message.get("event") == "resolved" else "trigger",
        "dedup_key": str(finding.get("id")),
    }
    if body["event_action"] == "trigger":
        body["payload"] = {
            "summary": _line(finding)[:1024],
            "source": f"{analysis.get('namespace')}/{analysis.get('name')}",
            "severity": _PD_SEVERITY.get(str(finding.get("severity")), "error"),
            "component": str(finding.get("resource")),
            "group": str(analysis.get("namespace")),
            "class": str(finding.get("detector")),
            "custom_details": {
                "state": finding.get("state"),
                "firstSeen": finding.get("firstSeen"),
                "run": message.get("runId"),
            },
        }
    return HTTPRequest(url or PAGERDUTY_EVENTS_URL, {"Content-Type": "application/json"}, _json(body))


def signature(key: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 over "<timestamp>.<body>" (the timestamp is signed too: a replayed body with a new
    timestamp fails), hex, prefixed with the scheme version."""
    digest = hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def webhook(message: dict[str, Any], url: str, key: str | None, timestamp: int, delivery: str) -> HTTPRequest:
    body = _json({"delivery": delivery, **message})
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: str(timestamp), DELIVERY_HEADER: delivery}
    if key is None:
        raise FormatError("a Webhook sink signs every body: set secretRef to its HMAC key")
    headers[SIGNATURE_HEADER] = signature(key, timestamp, body)
    return HTTPRequest(url, headers, body)


def cloudevent(message: dict[str, Any], url: str, mode: CloudEventsMode, delivery: str) -> HTTPRequest:
    analysis = message.get("analysis") or {}
    findings = message.get("findings") or []
    event = CloudEvent(
        attributes={
            "type": CE_TYPE_PREFIX + str(message.get("event")),
            "source": ANALYSIS.path(str(analysis.get("namespace")), str(analysis.get("name"))),
            "id": delivery,
            "subject": str(findings[0].get("id")) if message.get("event") != "digest" and findings else "digest",
            "datacontenttype": "application/json",
        },
        data=message,
    )
    encoded = ce_http.to_binary_event(event) if mode is CloudEventsMode.binary else ce_http.to_structured_event(event)
    return HTTPRequest(url, dict(encoded.headers), encoded.body)


def build(
    sink_type: SinkType,
    config: dict[str, Any],
    message: dict[str, Any],
    secret: str | None,
    *,
    timestamp: int,
    delivery: str,
) -> HTTPRequest:
    url = config.get("url")
    if sink_type in (SinkType.slack, SinkType.teams, SinkType.pagerduty) and not secret:
        raise FormatError(f"a {sink_type.value} sink needs its secret")
    if sink_type is SinkType.slack:
        return slack(message, str(secret))
    if sink_type is SinkType.teams:
        return teams(message, str(secret))
    if sink_type is SinkType.pagerduty:
        return pagerduty(message, str(secret), url)
    if not url:
        raise FormatError(f"a {sink_type.value} sink needs url")
    if sink_type is SinkType.webhook:
        return webhook(message, url, secret, timestamp, delivery)
    return cloudevent(message, url, CloudEventsMode(config.get("mode", "binary")), delivery)
