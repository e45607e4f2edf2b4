"""Bad input without a cluster: bytes the real API server cannot produce, served by kmock, and the bounds
that keep odd specs and oversized findings from breaking the operator.

The real API server stores only valid UTF-8, so invalid bytes in a LIST answer (from a proxy, or a
server other than Kubernetes' own) can only be produced by a mock. The e2e counterpart with the real
server and the real operator is tests/e2e/test_bad_input.py.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from typing import Any

import kmock
import pytest
from kubernetes import client
from pydantic import ValidationError

from infragenius.analysis.runner import analyze
from infragenius.detectors.base import finding
from infragenius.gather.kube import KubeGatherer
from infragenius.kube.events import event_recency
from infragenius.models.analysis import STATUS_FINDINGS_BUDGET, AnalysisSpec, AnalysisStatus
from infragenius.models.common import parse_duration
from infragenius.models.findings import ResourceRef, Severity
from infragenius.models.incident import IncidentReportSpec
from infragenius.models.slo import SLOReviewSpec

NS = "ns"
EVENTS = f"/api/v1/namespaces/{NS}/events"
REPLACEMENT = "\ufffd"


@pytest.fixture
async def served() -> AsyncIterator[tuple[kmock.RawHandler, client.ApiClient]]:
    async with kmock.RawHandler() as handler, kmock.Server(handler) as server:
        with client.ApiClient(client.Configuration(host=str(server.url).rstrip("/"))) as api:
            yield handler, api


def _event_json(name: str, message: str, at: str = "2026-01-01T00:00:00Z", involved: str = "web-1") -> str:
    return json.dumps(
        {
            "metadata": {"name": name, "namespace": NS, "creationTimestamp": at},
            "involvedObject": {"kind": "Pod", "name": involved, "namespace": NS},
            "type": "Warning",
            "reason": "FailedMount",
            "message": message,
            "count": 3,
            "lastTimestamp": at,
        }
    )


def _list_bytes(items: list[bytes], continue_token: str = "") -> bytes:
    meta = json.dumps({"continue": continue_token} if continue_token else {}).encode()
    return b'{"kind":"EventList","apiVersion":"v1","metadata":' + meta + b',"items":[' + b",".join(items) + b"]}"


async def test_invalid_utf8_in_an_event_list_is_decoded_with_replacement(served) -> None:
    handler, api = served
    # \xff and \xfe never occur in UTF-8; \xc3 starts a two-byte sequence that the quote ends too early.
    bad = _event_json("e1", "MARK").encode().replace(b"MARK", b"volume \xff\xfe mount failed \xc3")
    good = _event_json("e2", "plain message", at="2025-12-31T00:00:00Z").encode()
    handler[f"get {EVENTS}"] << _list_bytes([bad, good])

    events, report = await KubeGatherer(api).warning_events(NS)

    assert report.status.value == "ok" and report.count == 2 and report.error is None
    assert events[0]["message"] == f"volume {REPLACEMENT}{REPLACEMENT} mount failed {REPLACEMENT}"
    assert events[1]["message"] == "plain message"
    # The decoded text can be sent on: it encodes as UTF-8 again.
    json.dumps(events, ensure_ascii=False).encode("utf-8")


async def test_invalid_utf8_on_a_later_page_keeps_the_earlier_pages(served) -> None:
    handler, api = served
    first = _list_bytes([_event_json("e1", "first page").encode()], continue_token="page-2")
    second = _list_bytes([b'{"metadata":{"name":"e2"},"type":"Warning","reason":"Odd","message":"\x80\x81 end"}'])

    def answer(request: kmock.Request) -> bytes:
        return second if request.params.get("continue") == "page-2" else first

    handler[f"get {EVENTS}"] << answer

    events, report = await KubeGatherer(api).warning_events(NS)

    assert report.status.value == "ok"
    assert sorted(e["metadata"]["name"] for e in events) == ["e1", "e2"]
    assert next(e for e in events if e["metadata"]["name"] == "e2")["message"] == f"{REPLACEMENT}{REPLACEMENT} end"


async def test_lone_surrogate_escapes_next_to_bad_bytes_become_replacement_characters(served) -> None:
    handler, api = served
    # Valid JSON escapes, but a lone surrogate cannot be encoded as UTF-8 again (nor stored by Postgres).
    raw = _event_json("e1", "MARK").encode().replace(b"MARK", b"a \\ud800 b \\udc00 c \\ud83d\\ude80 \xff")
    handler[f"get {EVENTS}"] << _list_bytes([raw])

    events, _ = await KubeGatherer(api).warning_events(NS)

    assert events[0]["message"] == f"a {REPLACEMENT} b {REPLACEMENT} c 🚀 {REPLACEMENT}"


async def test_the_whole_analysis_runs_over_a_pod_list_with_invalid_utf8(served) -> None:
    """Every LIST answered; pods carry bytes that are not UTF-8 in annotations and a termination message."""
    handler, api = served
    handler[f"get /api/v1/namespaces/{NS}"] << {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
    pod = json.dumps(
        {
            "metadata": {"name": "web-1", "namespace": NS, "uid": "u1", "annotations": {"note": "ANNOT"}},
            "spec": {"containers": [{"name": "app", "image": "web:1"}]},
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": "app",
                        "ready": False,
                        "restartCount": 9,
                        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off \xff"}},
                        "lastState": {"terminated": {"reason": "Error", "exitCode": 1, "message": "TERM"}},
                    }
                ],
            },
        }
    ).encode()
    pod = pod.replace(b"ANNOT", b"\xfe\xfe" * 1000).replace(b"TERM", b"panic: \xc0\xaf")
    handler[f"get /api/v1/namespaces/{NS}/pods"] << b'{"metadata":{},"items":[' + pod + b"]}"
    handler[f"get {EVENTS}"] << _list_bytes([_event_json("e1", "MARK").encode().replace(b"MARK", b"mount \xff")])
    handler["get"] << {"metadata": {}, "items": []}  # every other kind: empty

    outcome = await analyze(KubeGatherer(api), AnalysisSpec(), NS)

    assert outcome.missing == []
    crash = next(f for f in outcome.findings if f.detector == "pod")
    assert crash.severity is Severity.critical
    text = json.dumps([f.model_dump(mode="json") for f in outcome.findings], ensure_ascii=False)
    text.encode("utf-8")  # no surrogates or undecodable bytes left anywhere in the findings
    assert REPLACEMENT in text


async def test_events_are_trimmed_page_by_page_to_the_same_newest_events_as_one_sort(served) -> None:
    """10 pages of 50 events (many sharing a timestamp): the cap of 25 keeps exactly what sorting all would."""
    handler, api = served
    rng = random.Random(9)
    pages: list[list[dict[str, Any]]] = []
    for page in range(10):
        pages.append(
            [
                json.loads(_event_json(f"e{page:02d}-{i:02d}", "m", at=f"2026-01-01T00:{rng.randint(0, 5):02d}:00Z"))
                for i in range(50)
            ]
        )

    def answer(request: kmock.Request) -> dict[str, Any]:
        page = int(request.params.get("continue") or 0)
        token = str(page + 1) if page + 1 < len(pages) else ""
        return {"metadata": {"continue": token} if token else {}, "items": pages[page]}

    handler[f"get {EVENTS}"] << answer

    events, report = await KubeGatherer(api, event_cap=25).warning_events(NS)

    everything = [e for page in pages for e in page]
    expected = sorted(everything, key=event_recency, reverse=True)[:25]
    assert [e["metadata"]["name"] for e in events] == [e["metadata"]["name"] for e in expected]
    assert report.count == 25
    assert len(handler[f"get {EVENTS}"]) == 10


# --- bounds in the models ------------------------------------------------------------------------------


def _big_finding(i: int, severity: Severity) -> Any:
    resource = ResourceRef(kind="Pod", name=f"gone-{i}", namespace=NS)
    return finding(
        detector="events",
        severity=severity,
        resource=resource,
        problem=f"p{i}",
        title=f"Pod gone-{i}: " + "ünïcödé 🚀 " * 40,
        evidence=[("event:FailedMount", "x" * 5000), ("event:FailedMount", "\u202e" * 2000)],
        remediation="r" * 2000,
    )


def test_status_keeps_findings_within_a_byte_budget_most_severe_first() -> None:
    findings = [_big_finding(i, Severity.critical if i < 20 else Severity.warning) for i in range(500)]
    status = AnalysisStatus(findings=findings, total_findings=500)
    dumped = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    size = len(json.dumps(dumped, ensure_ascii=False).encode())
    assert size < 256 * 1024, size
    assert dumped["truncated"] is True and dumped["totalFindings"] == 500
    kept = dumped["findings"]
    assert 20 < len(kept) < 500
    assert [f["resource"]["name"] for f in kept] == [f"gone-{i}" for i in range(len(kept))]
    assert len(json.dumps(kept, ensure_ascii=False).encode()) <= STATUS_FINDINGS_BUDGET
    # Each field was truncated where it was built, not rejected.
    assert all(len(f["title"]) <= 256 and all(len(e["value"]) <= 1024 for e in f["evidence"]) for f in kept)


def test_a_small_status_is_left_alone() -> None:
    findings = [_big_finding(i, Severity.warning) for i in range(5)]
    status = AnalysisStatus(findings=findings, total_findings=5)
    assert len(status.findings) == 5 and status.truncated is False


@pytest.mark.parametrize("text", ["99999999999999999999h", "9" * 30 + "s"])
def test_huge_durations_are_value_errors_not_overflows(text: str) -> None:
    with pytest.raises(ValueError, match="too long"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("model", "spec"),
    [
        (AnalysisSpec, {"interval": "99999999999999999999h"}),
        (AnalysisSpec, {"labelSelector": "app in ("}),
        (AnalysisSpec, {"maxFindings": "5"}),
        (AnalysisSpec, {"llm": {"enabled": "true"}}),
        (AnalysisSpec, {"prometheus": {"lookback": "0h"}}),
        (IncidentReportSpec, {"since": "0s"}),
        (IncidentReportSpec, {"start": "2026-01-01T01:00:00Z", "end": "2026-01-01T01:00:00Z"}),
        (IncidentReportSpec, {"start": "2026-02-30T00:00:00Z", "end": "2026-03-01T00:00:00Z"}),
        (IncidentReportSpec, {"since": "1h", "alert": {"name": "a", "startsAt": "2026-13-01T00:00:00Z"}}),
        (SLOReviewSpec, {"service": "s", "objective": "99.9", "sli": {"raw": {"errorRatioQuery": "x[$window]"}}}),
        (
            SLOReviewSpec,
            {
                "service": "s",
                "objective": 99,
                "sli": {"raw": {"errorRatioQuery": "x[$window]"}},
                "evaluationTime": "2026-01-01",
            },
        ),
        (
            SLOReviewSpec,
            {
                "service": "s",
                "objective": 99,
                "sli": {"raw": {"errorRatioQuery": "x[$window]"}},
                "evaluationTime": 1767225600,
            },
        ),
    ],
)
def test_models_refuse_what_the_api_server_refuses(model: Any, spec: dict[str, Any]) -> None:
    """A few of the mismatches the e2e fuzz found, kept here so they are checked without a cluster."""
    with pytest.raises(ValidationError):
        model.model_validate(spec)


def test_models_take_edge_values_the_api_server_takes() -> None:
    AnalysisSpec.model_validate({"interval": "999999h", "maxFindings": 7.0, "labelSelector": "app in (a,,b)"})
    IncidentReportSpec.model_validate({"start": "2026-01-01T00:00:00.123456789+05:30", "end": "2026-01-01T00:00:00Z"})
    slo = SLOReviewSpec.model_validate(
        {
            "service": "s",
            "objective": 1e-9,
            "sli": {"raw": {"errorRatioQuery": "x[$window]"}},
            "evaluationTime": "2026-01-01T00:00:00.5Z",
        }
    )
    assert slo.evaluation_time is not None and slo.evaluation_time.tzinfo is not None
