"""Bad input against the real API server and the real operator.

1. A seeded fuzz set of invalid specs for all three kinds goes to the API server (server-side dry run,
   strict field validation, as ``kubectl apply`` sends): each must be refused with a message that names
   the offending field. Valid specs drawn from the same seed must be accepted, and the operator's pydantic
   models must agree with the server on every one (the server is what users meet; the models are what
   the operator, the CLI and the webhook check with).
2. Odd and oversized objects in an analysed namespace (annotations near the 256 KiB limit, 10,000 Warning
   events, control characters, RTL marks, emoji and 10 KB messages): the Analysis completes, its status stays
   small, and the analysis's memory stays bounded.
"""

from __future__ import annotations

import copy
import json
import random
import re
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client
from pydantic import BaseModel, ValidationError

from infragenius import kubeapi
from infragenius.models.analysis import AnalysisSpec, DetectorName, ResourceKind
from infragenius.models.incident import IncidentReportSpec
from infragenius.models.slo import SLOReviewSpec
from tests.e2e.analysis_support import analysis, wait_phase
from tests.e2e.conftest import E2ECluster
from tests.e2e.support import wait_for

pytestmark = pytest.mark.e2e

SEED = 9
API = "/apis/infragenius.io/v1alpha1"
KINDS: dict[str, tuple[str, type[BaseModel]]] = {
    "Analysis": ("analyses", AnalysisSpec),
    "SLOReview": ("sloreviews", SLOReviewSpec),
    "IncidentReport": ("incidentreports", IncidentReportSpec),
}
DELETE = object()  # a mutation that removes the field


@dataclass(frozen=True)
class Case:
    kind: str
    spec: dict[str, Any]
    #: Fields the refusal must name, as the server spells them (``spec.kinds[0]``).
    fields: tuple[str, ...] = ()
    #: Words the refusal must contain besides the field (a CEL rule's message).
    says: str = ""
    why: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.why}: {json.dumps(self.spec)[:300]}"


@dataclass(frozen=True)
class Mutation:
    path: tuple[str, ...]
    value: Any
    field: str
    says: str = ""
    #: Checked by a CEL rule, which runs only once the schema holds: not combined with other mutations.
    cel: bool = False
    #: An unknown field: strict decoding refuses it before validation (400, not 422).
    unknown: bool = False


BASES: dict[str, dict[str, Any]] = {
    "Analysis": {"minSeverity": "warning"},
    "SLOReview": {
        "service": "checkout",
        "objective": 99.9,
        "sli": {"ratio": {"errorQuery": 'http_requests_total{code=~"5.."}', "totalQuery": "http_requests_total"}},
    },
    "IncidentReport": {"since": "30m"},
}

LONG = "x" * 3000
BAD_SELECTORS = [
    "app in (",
    "=web",
    "app=web,",
    "a b",
    "x=y=z",
    "key/=x",
    "-app=x",
    "!app=x",
    "app>a",
    "app>1.5",
    "app=" + "v" * 64,
    "a" * 64,
    "app in (a b)",
    "app notin",
    ",",
    "   ",
    "app=web;tier=db",
    "Tier/a=b",
    "x/y/z=1",
    "a=b,,c=d",
    "appin (a)",
    "app in (a) extra",
]
GOOD_SELECTORS = [
    "app=web",
    "app==web",
    "app!=web",
    "!canary",
    "tier",
    "app in (web,api)",
    "env notin (dev)",
    "example.com/team=sre,app=web",
    "app = web , tier notin ( a , b )",
    "replicas>2",
    "n<10",
    "app=",
    "a" * 63 + "=" + "b" * 63,
    "app in ()",
    "app in (a,,b)",
    "app in(a)",
    "a\tin\t(b)",
    " app ",
    "a,b",
]


def _mutations() -> dict[str, list[Mutation]]:
    m = Mutation
    analysis_cases = [
        m(("targetNamespace",), "Prod", "spec.targetNamespace"),
        m(("targetNamespace",), "-lead", "spec.targetNamespace"),
        m(("targetNamespace",), "trail-", "spec.targetNamespace"),
        m(("targetNamespace",), "under_score", "spec.targetNamespace"),
        m(("targetNamespace",), "a" * 64, "spec.targetNamespace"),
        m(("targetNamespace",), "", "spec.targetNamespace"),
        m(("targetNamespace",), "ns\n", "spec.targetNamespace"),
        m(("targetNamespace",), 7, "spec.targetNamespace"),
        m(("labelSelector",), "", "spec.labelSelector"),
        m(("labelSelector",), "a=" + "b" * 1100, "spec.labelSelector"),
        m(("labelSelector",), ["app=web"], "spec.labelSelector"),
        *[
            m(("labelSelector",), s, "spec.labelSelector", "labelSelector must be a label selector", cel=True)
            for s in BAD_SELECTORS
        ],
        m(("kinds",), ["Pods"], "spec.kinds[0]"),
        m(("kinds",), ["pod"], "spec.kinds[0]"),
        m(("kinds",), ["Pod", "Secret"], "spec.kinds[1]"),
        m(("kinds",), "Pod", "spec.kinds"),
        m(("kinds",), [1], "spec.kinds[0]"),
        m(("kinds",), ["Pod"] * 33, "spec.kinds"),
        m(("detectors", "include"), ["nope"], "spec.detectors.include[0]"),
        m(("detectors", "exclude"), ["pod", "Pod"], "spec.detectors.exclude[1]"),
        m(("detectors", "include"), ["pod"] * 65, "spec.detectors.include"),
        m(("detectors", "include"), "pod", "spec.detectors.include"),
        m(("detectors",), "pod", "spec.detectors"),
        m(
            ("detectors",),
            {"include": ["pod", "events"], "exclude": ["events"]},
            "spec.detectors",
            "a detector cannot be both included and excluded",
            cel=True,
        ),
        m(
            ("detectors",),
            {"include": ["metrics"], "exclude": ["metrics", "pod"]},
            "spec.detectors",
            "a detector cannot be both included and excluded",
            cel=True,
        ),
        m(("minSeverity",), "loud", "spec.minSeverity"),
        m(("minSeverity",), "CRITICAL", "spec.minSeverity"),
        m(("minSeverity",), "", "spec.minSeverity"),
        m(("minSeverity",), 1, "spec.minSeverity"),
        m(("prometheus", "url"), "ftp://prometheus:9090", "spec.prometheus.url"),
        m(("prometheus", "url"), "http://", "spec.prometheus.url"),
        m(("prometheus", "url"), "http://a b", "spec.prometheus.url"),
        m(("prometheus", "url"), "http://" + "p" * 600, "spec.prometheus.url"),
        m(("prometheus", "lookback"), "1y", "spec.prometheus.lookback"),
        m(("prometheus", "lookback"), "1h30m", "spec.prometheus.lookback"),
        m(("prometheus", "lookback"), "0h", "spec.prometheus.lookback"),
        m(("prometheus", "lookback"), "-1h", "spec.prometheus.lookback"),
        m(("prometheus", "lookback"), "9999999w", "spec.prometheus.lookback"),
        m(("prometheus", "enabled"), "yes", "spec.prometheus.enabled"),
        m(("prometheus", "enabled"), 1, "spec.prometheus.enabled"),
        m(("interval",), "1d", "spec.interval"),
        m(("interval",), "1.5h", "spec.interval"),
        m(("interval",), "-1m", "spec.interval"),
        m(("interval",), "", "spec.interval"),
        m(("interval",), "1h 30m", "spec.interval"),
        m(("interval",), "5 minutes", "spec.interval"),
        m(("interval",), 300, "spec.interval"),
        m(("interval",), "9999999h", "spec.interval"),
        m(("interval",), "99999999999999999999h", "spec.interval"),
        m(("interval",), "999999h999999h999999h", "spec.interval"),
        m(("interval",), "10s", "spec", "interval must be at least 1m", cel=True),
        m(("interval",), "59s", "spec", "interval must be at least 1m", cel=True),
        m(("interval",), "0m", "spec", "interval must be at least 1m", cel=True),
        m(("maxFindings",), 0, "spec.maxFindings"),
        m(("maxFindings",), -1, "spec.maxFindings"),
        m(("maxFindings",), 501, "spec.maxFindings"),
        m(("maxFindings",), 10**12, "spec.maxFindings"),
        m(("maxFindings",), 2**63 - 1, "spec.maxFindings"),
        m(("maxFindings",), 1e308, "spec.maxFindings"),
        m(("maxFindings",), 5.5, "spec.maxFindings"),
        m(("maxFindings",), "5", "spec.maxFindings"),
        m(("maxFindings",), True, "spec.maxFindings"),
        m(("maxFindings",), [5], "spec.maxFindings"),
        m(("llm", "enabled"), "true", "spec.llm.enabled"),
        m(("llm", "enabled"), 1, "spec.llm.enabled"),
        m(("llm", "anonymize"), "no", "spec.llm.anonymize"),
        m(("llm", "model"), "m" * 129, "spec.llm.model"),
        m(("llm", "model"), 3, "spec.llm.model"),
        m(("llm",), True, "spec.llm"),
        m(("bogus",), True, 'unknown field "spec.bogus"', unknown=True),
        m(("llm", "temperature"), 0.2, 'unknown field "spec.llm.temperature"', unknown=True),
        m(("detectors", "only"), ["pod"], 'unknown field "spec.detectors.only"', unknown=True),
        m(("maxfindings",), 5, 'unknown field "spec.maxfindings"', unknown=True),
    ]
    ratio = {"errorQuery": "errors_total", "totalQuery": "requests_total"}
    slo_cases = [
        m(("service",), DELETE, "spec.service"),
        m(("service",), "", "spec.service"),
        m(("service",), "   ", "spec.service"),
        m(("service",), "\t\n", "spec.service"),
        m(("service",), "s" * 254, "spec.service"),
        m(("service",), 5, "spec.service"),
        m(("objective",), DELETE, "spec.objective"),
        m(("objective",), 0, "spec.objective"),
        m(("objective",), 100, "spec.objective"),
        m(("objective",), -1, "spec.objective"),
        m(("objective",), 100.0001, "spec.objective"),
        m(("objective",), 1e308, "spec.objective"),
        m(("objective",), -0.0, "spec.objective"),
        m(("objective",), "99.9", "spec.objective"),
        m(("objective",), True, "spec.objective"),
        m(("window",), "30days", "spec.window"),
        m(("window",), "0d", "spec.window"),
        m(("window",), "1000d", "spec.window"),
        m(("window",), "12h", "spec.window"),
        m(("window",), "4W", "spec.window"),
        m(("window",), "", "spec.window"),
        m(("window",), 30, "spec.window"),
        m(("sli",), DELETE, "spec.sli"),
        m(("sli",), "ratio", "spec.sli"),
        m(("sli",), {}, "spec.sli", "set exactly one SLI type", cel=True),
        m(
            ("sli",),
            {"ratio": ratio, "raw": {"errorRatioQuery": "x[$window]"}},
            "spec.sli",
            "set exactly one SLI type",
            cel=True,
        ),
        m(
            ("sli",),
            {"ratio": ratio, "latency": {"metric": "h", "thresholdSeconds": 1}},
            "spec.sli",
            "set exactly one SLI type",
            cel=True,
        ),
        m(("sli", "ratio", "errorQuery"), "", "spec.sli.ratio.errorQuery"),
        m(("sli", "ratio", "errorQuery"), "  ", "spec.sli.ratio.errorQuery"),
        m(("sli", "ratio", "totalQuery"), DELETE, "spec.sli.ratio.totalQuery"),
        m(("sli", "ratio", "totalQuery"), "q" * 2049, "spec.sli.ratio.totalQuery"),
        # An object where a string goes: strict decoding names its keys as unknown fields under the field.
        m(
            ("sli", "ratio", "errorQuery"),
            {"expr": "x"},
            'unknown field "spec.sli.ratio.errorQuery.expr"',
            unknown=True,
        ),
        m(("sli",), {"latency": {"metric": "http-latency", "thresholdSeconds": 0.5}}, "spec.sli.latency.metric"),
        m(("sli",), {"latency": {"metric": "0abc", "thresholdSeconds": 0.5}}, "spec.sli.latency.metric"),
        m(("sli",), {"latency": {"metric": "h", "thresholdSeconds": 0}}, "spec.sli.latency.thresholdSeconds"),
        m(("sli",), {"latency": {"metric": "h", "thresholdSeconds": -1}}, "spec.sli.latency.thresholdSeconds"),
        m(("sli",), {"latency": {"metric": "h", "thresholdSeconds": 3601}}, "spec.sli.latency.thresholdSeconds"),
        m(("sli",), {"latency": {"metric": "h", "thresholdSeconds": "1"}}, "spec.sli.latency.thresholdSeconds"),
        m(("sli",), {"latency": {"metric": "h"}}, "spec.sli.latency.thresholdSeconds"),
        m(
            ("sli",),
            {"latency": {"metric": "h", "thresholdSeconds": 1, "selector": '{job="api"}'}},
            "spec.sli.latency.selector",
        ),
        m(
            ("sli",),
            {"raw": {"errorRatioQuery": "sum(rate(errors[5m]))"}},
            "spec.sli.raw",
            "errorRatioQuery must use $window",
            cel=True,
        ),
        m(("sli",), {"raw": {"errorRatioQuery": ""}}, "spec.sli.raw.errorRatioQuery"),
        m(("prometheus", "url"), "prometheus:9090", "spec.prometheus.url"),
        m(("prometheus", "url"), "https://" + "p" * 510, "spec.prometheus.url"),
        m(("interval",), "30s", "spec", "interval must be at least 1m", cel=True),
        m(("interval",), "1w", "spec.interval"),
        m(("interval",), "99999999999999h", "spec.interval"),
        m(("evaluationTime",), "yesterday", "spec.evaluationTime"),
        m(("evaluationTime",), "2026-01-01", "spec.evaluationTime"),
        m(("evaluationTime",), "2026-01-01T00:00:00", "spec.evaluationTime"),
        m(("evaluationTime",), "2026-01-01 00:00:00Z", "spec.evaluationTime"),
        m(("evaluationTime",), "2026-13-01T00:00:00Z", "spec.evaluationTime"),
        m(("evaluationTime",), "2026-02-30T00:00:00Z", "spec.evaluationTime"),
        m(("evaluationTime",), "2026-01-01T25:00:00Z", "spec.evaluationTime"),
        m(("evaluationTime",), "2026-01-01T00:00:00+24:00", "spec.evaluationTime"),
        m(("evaluationTime",), "2026-01-01t00:00:00z", "spec.evaluationTime"),
        m(("evaluationTime",), 1767225600, "spec.evaluationTime"),
        m(("llm", "model"), "m" * 200, "spec.llm.model"),
        m(("llm", "enabled"), "false", "spec.llm.enabled"),
        m(("sli", "ratio", "errorquery"), "x", 'unknown field "spec.sli.ratio.errorquery"', unknown=True),
        m(("target",), 99.9, 'unknown field "spec.target"', unknown=True),
    ]
    incident_cases = [
        m(("since",), DELETE, "spec", "give either since, or start and end, not both", cel=True),
        m(("start",), "2026-01-01T00:00:00Z", "spec", "give either since, or start and end, not both", cel=True),
        m(("since",), "0s", "spec", "since must be longer than 0s", cel=True),
        m(("since",), "0h0m", "spec", "since must be longer than 0s", cel=True),
        m(("since",), "1d", "spec.since"),
        m(("since",), "2 hours", "spec.since"),
        m(("since",), "-30m", "spec.since"),
        m(("since",), "99999999999999999999h", "spec.since"),
        m(("since",), 30, "spec.since"),
        m(("severity",), "SEV9", "spec.severity"),
        m(("severity",), "sev1", "spec.severity"),
        m(("severity",), 1, "spec.severity"),
        m(("targetNamespace",), "Payments", "spec.targetNamespace"),
        m(("targetNamespace",), "a" * 64, "spec.targetNamespace"),
        m(("labelSelector",), "", "spec.labelSelector"),
        *[
            m(("labelSelector",), s, "spec.labelSelector", "labelSelector must be a label selector", cel=True)
            for s in BAD_SELECTORS[:6]
        ],
        m(("alert",), {}, "spec.alert.name"),
        m(("alert",), {"name": ""}, "spec.alert.name"),
        m(("alert",), {"name": "a" * 254}, "spec.alert.name"),
        m(("alert",), {"name": "HighErrorRate", "startsAt": "yesterday"}, "spec.alert.startsAt"),
        m(("alert",), {"name": "HighErrorRate", "startsAt": "2026-13-01T00:00:00Z"}, "spec.alert.startsAt"),
        m(("alert",), {"name": "HighErrorRate", "startsAt": "2026-02-29T00:00:00Z"}, "spec.alert.startsAt"),
        m(("alert",), {"name": "HighErrorRate", "fingerprint": "f" * 65}, "spec.alert.fingerprint"),
        m(("alert",), "HighErrorRate", "spec.alert"),
        m(("prometheus", "queries"), [{"name": "Bad_Name", "query": "up"}], "spec.prometheus.queries[0].name"),
        m(("prometheus", "queries"), [{"name": "errors", "query": ""}], "spec.prometheus.queries[0].query"),
        m(("prometheus", "queries"), [{"name": "errors", "query": " "}], "spec.prometheus.queries[0].query"),
        m(("prometheus", "queries"), [{"name": "errors"}], "spec.prometheus.queries[0].query"),
        m(
            ("prometheus", "queries"),
            [{"name": "errors", "query": "up", "kind": "rate"}],
            "spec.prometheus.queries[0].kind",
        ),
        m(
            ("prometheus", "queries"),
            [{"name": "errors", "query": "up", "minChange": -1}],
            "spec.prometheus.queries[0].minChange",
        ),
        m(
            ("prometheus", "queries"),
            [{"name": "errors", "query": "up", "minChange": "0.1"}],
            "spec.prometheus.queries[0].minChange",
        ),
        m(("prometheus", "queries"), [{"name": f"q{i}", "query": "up"} for i in range(11)], "spec.prometheus.queries"),
        m(
            ("prometheus", "queries"),
            {"name": "errors", "query": "up"},
            'unknown field "spec.prometheus.queries.name"',
            unknown=True,
        ),
        m(("prometheus", "queries"), "errors", "spec.prometheus.queries"),
        m(("prometheus", "enabled"), "on", "spec.prometheus.enabled"),
        m(("llm", "anonymize"), 0, "spec.llm.anonymize"),
        m(("window",), "30m", 'unknown field "spec.window"', unknown=True),
        m(("alert", "severity"), "page", 'unknown field "spec.alert.severity"', unknown=True),
    ]
    return {"Analysis": analysis_cases, "SLOReview": slo_cases, "IncidentReport": incident_cases}


# Whole-window specs for IncidentReport, where one field alone does not make the case.
WINDOW_CASES = [
    ({"start": "2026-01-01T02:00:00Z", "end": "2026-01-01T01:00:00Z"}, "spec", "start must be before end"),
    ({"start": "2026-01-01T01:00:00Z", "end": "2026-01-01T01:00:00Z"}, "spec", "start must be before end"),
    # 01:00-02:00 is 03:00Z: after the end, though the wall-clock hour is earlier.
    ({"start": "2026-01-01T01:00:00-02:00", "end": "2026-01-01T02:00:00Z"}, "spec", "start must be before end"),
    ({"start": "2026-01-01T00:00:00Z"}, "spec", "start and end go together"),
    ({"end": "2026-01-01T00:00:00Z"}, "spec", "start and end go together"),
    ({"since": "1h", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z"}, "spec", "not both"),
    ({}, "spec", "give either since, or start and end"),
    ({"start": "2026-02-30T00:00:00Z", "end": "2026-03-01T00:00:00Z"}, "spec.start", ""),
    ({"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T24:00:00Z"}, "spec.end", ""),
    ({"start": "2026-01-01", "end": "2026-01-02"}, "spec.start", ""),
    ({"start": 0, "end": 1}, "spec.start", ""),
]


def _apply(spec: dict[str, Any], mutation: Mutation) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    node = out
    for key in mutation.path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    if mutation.value is DELETE:
        node.pop(mutation.path[-1], None)
    else:
        node[mutation.path[-1]] = copy.deepcopy(mutation.value)
    return out


def invalid_cases(seed: int = SEED) -> list[Case]:
    """Every single mutation, the window cases, then seeded combinations of schema-level mutations."""
    rng = random.Random(seed)
    cases: list[Case] = []
    for kind, mutations in _mutations().items():
        for mutation in mutations:
            cases.append(
                Case(
                    kind,
                    _apply(BASES[kind], mutation),
                    (mutation.field,),
                    mutation.says,
                    "/".join(mutation.path) + (" unknown" if mutation.unknown else ""),
                )
            )
    for spec, field, says in WINDOW_CASES:
        cases.append(Case("IncidentReport", spec, (field,), says, "window"))
    for kind, mutations in _mutations().items():
        plain = [m for m in mutations if not m.cel and not m.unknown]
        for _ in range(50):
            picked: list[Mutation] = []
            for m in rng.sample(plain, len(plain)):
                # distinct top-level fields, so one mutation cannot hide or undo another
                if all(m.path[0] != p.path[0] for p in picked):
                    picked.append(m)
                if len(picked) == rng.choice((2, 3)):
                    break
            spec = BASES[kind]
            for m in picked:
                spec = _apply(spec, m)
            cases.append(
                Case(
                    kind,
                    spec,
                    tuple(m.field for m in picked),
                    "",
                    "combined " + " + ".join("/".join(m.path) for m in picked),
                )
            )
    return cases


def _rfc3339(rng: random.Random, base: float | None = None) -> tuple[str, float]:
    seconds = base if base is not None else rng.uniform(1.6e9, 1.9e9)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(seconds)))
    fraction = rng.choice(["", ".5", ".123", ".123456789"])
    zone = rng.choice(["Z", "+00:00", "-00:00", "Z"])
    return stamp + fraction + zone, seconds


def valid_cases(seed: int = SEED, per_kind: int = 40) -> list[Case]:
    """Seeded specs every field of which is within bounds (including the edges)."""
    rng = random.Random(seed + 1)

    def maybe(p: float = 0.5) -> bool:
        return rng.random() < p

    def dns_label() -> str:
        return rng.choice(["a", "prod", "team-a-1", "0", "a" * 63, "x" + "-" * 61 + "y"])

    def interval() -> str:
        return rng.choice(["1m", "60s", "61s", "90s", "1h30m", "24h", "999999h", "1h0m0s", "2h15m30s"])

    cases: list[Case] = []
    for _ in range(per_kind):
        spec: dict[str, Any] = {}
        if maybe():
            spec["targetNamespace"] = dns_label()
        if maybe():
            spec["labelSelector"] = rng.choice(GOOD_SELECTORS)
        if maybe():
            spec["kinds"] = rng.sample([k.value for k in ResourceKind], rng.randint(0, len(ResourceKind)))
        if maybe():
            names = [d.value for d in DetectorName]
            rng.shuffle(names)
            cut = rng.randint(0, len(names))
            spec["detectors"] = {"include": names[:cut][: rng.randint(0, cut)], "exclude": names[cut:]}
        if maybe():
            spec["minSeverity"] = rng.choice(["critical", "warning", "info"])
        if maybe():
            spec["prometheus"] = {
                "enabled": maybe(),
                "lookback": rng.choice(["1s", "30m", "6h", "1d", "1w", "999999w"]),
            }
            if maybe():
                spec["prometheus"]["url"] = rng.choice(
                    ["http://prometheus:9090", "https://p.example/prom?x=1", "http://" + "p" * 505]
                )
        if maybe():
            spec["interval"] = interval()
        if maybe():
            spec["maxFindings"] = rng.choice([1, 2, 50, 499, 500, 7.0, None])
        if maybe():
            spec["llm"] = {
                "enabled": maybe(),
                "anonymize": maybe(),
                "model": rng.choice(["llama3.2:1b", "ü" * 128, "模型" * 64]),
            }
        cases.append(Case("Analysis", spec, why="valid"))

    for _ in range(per_kind):
        kind = rng.choice(["ratio", "latency", "raw"])
        sli: dict[str, Any] = {
            "ratio": {
                "ratio": {
                    "errorQuery": rng.choice(["e", 'sum(rate(http_requests_total{code=~"5.."}[$window]))', "q" * 2048]),
                    "totalQuery": "t",
                }
            },
            "latency": {
                "latency": {
                    "metric": rng.choice(["http_request_duration_seconds", "_:a1", "A" * 200]),
                    "thresholdSeconds": rng.choice([1e-9, 0.25, 1, 3600]),
                    "selector": rng.choice(["", 'job="api"', 'job="api",code!~"5.."']),
                }
            },
            "raw": {"raw": {"errorRatioQuery": rng.choice(["x[$window]", "1 - avg_over_time(up[$window])"])}},
        }[kind]
        spec = {
            "service": rng.choice(["checkout", "s", "s" * 253, "платежи", " leading space", "emoji 🚀"]),
            "objective": rng.choice([99.9, 50, 1e-9, 99.99999, 0.001]),
            "sli": sli,
        }
        if maybe():
            spec["window"] = rng.choice(["1d", "7d", "28d", "30d", "4w", "999d", "999w"])
        if maybe():
            spec["interval"] = interval()
        if maybe():
            spec["evaluationTime"] = _rfc3339(rng)[0]
        if maybe():
            spec["prometheus"] = {"url": "http://prometheus.monitoring:9090"}
        if maybe():
            spec["llm"] = {"enabled": maybe()}
        cases.append(Case("SLOReview", spec, why="valid"))

    for _ in range(per_kind):
        spec = {}
        if maybe():
            spec["since"] = rng.choice(["1s", "30m", "2h", "1h30m", "999999h"])
        else:
            start, at = _rfc3339(rng)
            spec["start"], spec["end"] = start, _rfc3339(rng, at + rng.choice([1, 60, 86400 * 30]))[0]
        if maybe():
            spec["severity"] = rng.choice(["SEV1", "SEV2", "SEV3", "SEV4"])
        if maybe():
            spec["targetNamespace"] = dns_label()
        if maybe():
            spec["labelSelector"] = rng.choice(GOOD_SELECTORS)
        if maybe():
            spec["alert"] = {"name": rng.choice(["HighErrorRate", "a" * 253, "⚠"])}
            if maybe():
                spec["alert"]["startsAt"] = _rfc3339(rng)[0]
                spec["alert"]["fingerprint"] = "f" * rng.choice([1, 16, 64])
        if maybe():
            spec["prometheus"] = {
                "enabled": maybe(),
                "queries": [
                    {
                        "name": f"q{i}",
                        "query": "sum(rate(errors[5m]))",
                        "kind": rng.choice(["errorRate", "latency", "other"]),
                        "minChange": rng.choice([0, 0.01, 5]),
                    }
                    for i in range(rng.randint(0, 10))
                ],
            }
        cases.append(Case("IncidentReport", spec, why="valid"))
    return cases


# --- talking to the API server ----------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    status: int
    message: str
    stored: dict[str, Any] | None  # the spec as the server would store it (pruned and defaulted)


def _dry_run_create(api: client.ApiClient, namespace: str, case: Case) -> Verdict:
    plural, _ = KINDS[case.kind]
    body = {
        "apiVersion": "infragenius.io/v1alpha1",
        "kind": case.kind,
        "metadata": {"name": f"fuzz-{uuid.uuid4().hex[:10]}"},
        "spec": case.spec,
    }
    try:
        created = kubeapi.request(
            api,
            "POST",
            f"{API}/namespaces/{namespace}/{plural}",
            # What `kubectl apply --dry-run=server` sends: strict field validation, nothing stored.
            query=[("dryRun", "All"), ("fieldValidation", "Strict")],
            headers={"Content-Type": "application/json"},
            body=body,
            timeout=(5, 30),
        )
    except client.ApiException as err:
        try:
            message = json.loads(err.body).get("message") or ""
        except ValueError:
            message = err.body or ""
        return Verdict(err.status, message, None)
    return Verdict(201, "", created.get("spec") or {})


def send_all(api: client.ApiClient, namespace: str, cases: list[Case]) -> list[Verdict]:
    """Dry-run every case, eight at a time (the order of the answers is the order of the cases)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda c: _dry_run_create(api, namespace, c), cases))


def model_accepts(kind: str, spec: dict[str, Any]) -> str | None:
    """None when the operator's model takes the spec, else its first complaint."""
    try:
        KINDS[kind][1].model_validate(spec)
    except ValidationError as err:
        first = err.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return None


_GO_NOISE = re.compile(r"goroutine \d+|panic:|\.go:\d+|runtime\.|0x[0-9a-f]{8,}")


def readable_problems(message: str) -> list[str]:
    problems = []
    if not message.strip():
        problems.append("blank")
    if _GO_NOISE.search(message):
        problems.append("Go internals")
    if any(ord(c) < 32 for c in message):
        problems.append("raw control characters")
    if len(message) > 8192:
        problems.append(f"{len(message)} characters")
    return problems


@pytest.fixture(scope="module")
def established(cluster: E2ECluster, crds: None) -> None:
    for plural, _ in KINDS.values():
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{plural}.infragenius.io", "--timeout=30s")


def test_fuzz_set_is_deterministic_and_large() -> None:
    first, again = invalid_cases(), invalid_cases()
    assert [(c.kind, c.spec) for c in first] == [(c.kind, c.spec) for c in again]
    assert [(c.kind, c.spec) for c in valid_cases()] == [(c.kind, c.spec) for c in valid_cases()]
    assert len(first) >= 300, len(first)
    by_kind = {kind: sum(c.kind == kind for c in first) for kind in KINDS}
    assert min(by_kind.values()) >= 80, by_kind


def test_api_server_refuses_every_invalid_spec_naming_the_field(
    cluster: E2ECluster, namespace: str, established: None
) -> None:
    cases = invalid_cases()
    started = time.perf_counter()
    verdicts = send_all(cluster.api, namespace, cases)
    elapsed = time.perf_counter() - started
    print(f"\n{len(cases)} invalid specs dry-run in {elapsed:.1f}s")
    failures = []
    for case, verdict in zip(cases, verdicts, strict=True):
        unknown = "unknown" in case.why.split()
        expected = 400 if unknown else 422
        named = [f for f in case.fields if f in verdict.message]
        problems = readable_problems(verdict.message)
        if verdict.status != expected:
            problems.append(f"status {verdict.status}, expected {expected}")
        if len(named) != len(case.fields):
            problems.append(f"does not name {set(case.fields) - set(named)}")
        if case.says and case.says not in verdict.message:
            problems.append(f"does not say {case.says!r}")
        if problems:
            failures.append(f"{case}\n    -> {verdict.status} {verdict.message[:400]!r}\n    problems: {problems}")
    assert not failures, f"{len(failures)} of {len(cases)} refused badly:\n" + "\n".join(failures[:40])
    # The nice-to-read part comes first: "<Kind>.infragenius.io "<name>" is invalid: spec...".
    sample = next(v.message for c, v in zip(cases, verdicts, strict=True) if c.why == "maxFindings")
    assert re.match(r'^Analysis\.infragenius\.io "fuzz-[0-9a-f]+" is invalid: \[?spec\.maxFindings', sample), sample


def test_api_server_accepts_valid_specs(cluster: E2ECluster, namespace: str, established: None) -> None:
    cases = valid_cases()
    verdicts = send_all(cluster.api, namespace, cases)
    refused = [
        f"{c}\n    -> {v.status} {v.message[:400]}" for c, v in zip(cases, verdicts, strict=True) if v.status != 201
    ]
    assert not refused, f"{len(refused)} of {len(cases)} valid specs refused:\n" + "\n".join(refused[:20])
    # Defaults come back filled in, so the comparison below checks what the operator will really read.
    analysis_stored = next(v.stored for c, v in zip(cases, verdicts, strict=True) if c.kind == "Analysis")
    assert analysis_stored is not None and analysis_stored["maxFindings"] >= 1


def test_models_agree_with_the_api_server(cluster: E2ECluster, namespace: str, established: None) -> None:
    """Where the server refuses, the models refuse; where it stores a spec, the models take the stored spec."""
    cases = invalid_cases() + valid_cases()
    verdicts = send_all(cluster.api, namespace, cases)
    mismatches = []
    for case, verdict in zip(cases, verdicts, strict=True):
        if verdict.status == 201:
            complaint = model_accepts(case.kind, verdict.stored or {})
            if complaint is not None:
                mismatches.append(f"server stores, model refuses ({complaint}): {case}")
        elif model_accepts(case.kind, case.spec) is None:
            mismatches.append(f"server refuses ({verdict.message[:200]}), model takes: {case}")
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:40])


def test_label_selector_check_agrees_with_the_api_servers_parser(cluster: E2ECluster, namespace: str) -> None:
    """The selector pattern in the CRD against the server's own parser (a LIST with labelSelector)."""
    core = client.CoreV1Api(cluster.api)
    disagreements = []
    for selector in GOOD_SELECTORS + BAD_SELECTORS:
        try:
            core.list_namespaced_pod(namespace, label_selector=selector, limit=1)
            server_ok = True
        except client.ApiException as err:
            assert err.status == 400, err
            server_ok = False
        model_ok = model_accepts("Analysis", {"labelSelector": selector}) is None
        if model_ok != server_ok and not (not model_ok and selector.strip() == ""):
            disagreements.append(
                (
                    selector,
                    f"server {'takes' if server_ok else 'refuses'}",
                    f"model {'takes' if model_ok else 'refuses'}",
                )
            )
    assert not disagreements, disagreements


# --- odd and oversized objects in the analysed namespace ------------------------------------------------

EVENTS = 10_000
ANNOTATION_LIMIT = 256 * 1024  # total bytes of all keys and values on one object
STATUS_BOUND = 256 * 1024
TEN_KB = ("ünïcödé 🚀 \u202eevil\u202c " * 500)[:10_000]
ODD_MESSAGES = [
    "control \x01\x02\x07 bell, \x1b[31mANSI red\x1b[0m, tab\tand DEL\x7f",
    "\u202eRTL override\u202c, \u200fright-to-left mark\u200e, عربى עברית",
    "emoji 🚀🔥💥, a family 👩\u200d👩\u200d👧\u200d👦 and a flag 🇺🇦",
    "zero\u200bwidth space, \ufeffBOM, combining e\u0301\u0301\u0301",
    "NUL \x00 inside, then text",
    TEN_KB,
    "",
]


def _huge_annotations(key_prefix: str = "example.com/blob") -> dict[str, str]:
    """Annotations a little under the API server's 256 KiB total, with multi-byte text in them."""
    head = "ünïcödé-🚀-"
    budget = ANNOTATION_LIMIT - 1024 - len(key_prefix) - len("example.com/odd") - len(head.encode())
    return {key_prefix: head + "a" * budget, "example.com/odd": "\u202e\x01"}


def _event(namespace: str, i: int, base: float, pods: list[str]) -> dict[str, Any]:
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + i))
    # Older events repeat a few objects; the newest 600 each name their own (deleted) pod, so the newest
    # 500 that the operator keeps make about 500 findings: the most the status can be asked to hold.
    involved = f"gone-{i}" if i >= EVENTS - 600 else pods[i % len(pods)] if i % 3 else f"ghost-{i % 97}"
    message = TEN_KB if i % 50 == 0 else ODD_MESSAGES[i % len(ODD_MESSAGES)] + f" #{i}"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"odd.{i:05d}", "namespace": namespace},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": involved, "namespace": namespace},
        "reason": ["FailedMount", "FailedSync", "NetworkNotReady", f"Odd{i % 40}"][i % 4],
        "message": message,
        "type": "Warning",
        "count": 2**31 - 1 if i % 1000 == 0 else 1 + i % 7,
        "firstTimestamp": at,
        "lastTimestamp": at,
        "source": {"component": "bad-input-test"},
    }


@dataclass(frozen=True)
class OddNamespace:
    name: str
    pods: list[str]
    newest_event: int  # index of the newest event (the highest)


@pytest.fixture(scope="module")
def odd_namespace(cluster: E2ECluster, crds: None) -> Iterator[OddNamespace]:
    core = client.CoreV1Api(cluster.api)
    name = f"odd-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    long_name = ("p" * 60 + ".") * 4 + "p" * 8  # 252 characters: a valid, very long pod name
    pods = ["odd-annotated", long_name[:253].rstrip(".")]
    objects: list[tuple[str, dict[str, Any]]] = []
    for pod in pods:
        objects.append(
            (
                "/api/v1/namespaces/{ns}/pods",
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": pod, "annotations": _huge_annotations(), "labels": {"app": "odd"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "image": "registry.example/odd:1",
                                "env": [{"name": "ODD", "value": ODD_MESSAGES[0] + ODD_MESSAGES[2]}],
                            }
                        ]
                    },
                },
            )
        )
    template = {
        "metadata": {"labels": {"app": "odd-deploy"}, "annotations": _huge_annotations()},
        "spec": {"containers": [{"name": "app", "image": "registry.example/odd:1"}]},
    }
    objects.append(
        (
            "/apis/apps/v1/namespaces/{ns}/deployments",
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "odd-deploy", "annotations": _huge_annotations()},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "odd-deploy"}}, "template": template},
            },
        )
    )
    objects.append(
        (
            "/api/v1/namespaces/{ns}/configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "odd-config", "annotations": _huge_annotations()},
                "data": {"big": "d" * (900 * 1024)},
            },
        )
    )
    objects.append(
        (
            "/api/v1/namespaces/{ns}/services",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "odd-service", "annotations": _huge_annotations()},
                "spec": {"selector": {"app": "odd"}, "ports": [{"port": 80}]},
            },
        )
    )
    for path, body in objects:
        kubeapi.request(
            cluster.api, "POST", path.format(ns=name), body=body, headers={"Content-Type": "application/json"}
        )

    base = time.time() - EVENTS - 60
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:  # the client's connection pool holds about ten
        list(
            pool.map(
                lambda i: kubeapi.request(
                    cluster.api,
                    "POST",
                    f"/api/v1/namespaces/{name}/events",
                    body=_event(name, i, base, pods),
                    headers={"Content-Type": "application/json"},
                ),
                range(EVENTS),
            )
        )
    print(f"\ncreated {EVENTS} events in {time.perf_counter() - started:.1f}s")
    try:
        # (remainingItemCount is not given with a field selector; the controllers add a few Normal events)
        listed = core.list_namespaced_event(name, limit=1)
        assert (listed.metadata.remaining_item_count or 0) + 1 >= EVENTS
        yield OddNamespace(name, pods, EVENTS - 1)
    finally:
        core.delete_namespace(name)


def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
    return fields


def test_operator_completes_an_analysis_of_odd_objects_within_bounds(
    cluster: E2ECluster, odd_namespace: OddNamespace, operator_kubeconfig: str, tmp_path: Any
) -> None:
    """The real operator as its own process (so its peak RSS is its own), watching only the odd namespace."""
    import os
    import signal
    import subprocess
    import sys

    from tests.e2e.analysis_support import ROOT

    ns = odd_namespace.name
    env = {
        **os.environ,
        "KUBECONFIG": operator_kubeconfig,
        "INFRAGENIUS_HEALTH_PORT": "0",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "operator"), os.environ.get("PYTHONPATH", "")]),
    }
    log_path = tmp_path / "operator.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", "--standalone", f"--namespace={ns}", "-m", "infragenius.handlers"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        # Idle first: started, watching, nothing to do yet.
        wait_for(
            lambda: "Initial authentication has finished" in log_path.read_text() or proc.poll() is not None,
            timeout=60,
            what="the operator to start",
        )
        time.sleep(3)
        assert proc.poll() is None, log_path.read_text()[-3000:]
        idle = _proc_status(proc.pid)
        started = time.perf_counter()
        kubeapi.request(
            cluster.api,
            "POST",
            f"{API}/namespaces/{ns}/analyses",
            body=analysis("odd", {"maxFindings": 500}),
            headers={"Content-Type": "application/json"},
        )
        done = wait_phase(cluster, ns, "odd", ("Completed", "Failed"), timeout=180)
        elapsed = time.perf_counter() - started
        # An IncidentReport over the same namespace: its timeline reads the same events.
        kubeapi.request(
            cluster.api,
            "POST",
            f"{API}/namespaces/{ns}/incidentreports",
            headers={"Content-Type": "application/json"},
            body={
                "apiVersion": "infragenius.io/v1alpha1",
                "kind": "IncidentReport",
                "metadata": {"name": "odd"},
                "spec": {"since": "4h"},
            },
        )
        report = wait_for(
            lambda: (
                (r := kubeapi.request(cluster.api, "GET", f"{API}/namespaces/{ns}/incidentreports/odd"))
                .get("status", {})
                .get("phase")
                in ("Completed", "Failed")
                and r
            ),
            timeout=180,
            what="the incident report",
        )
        peak = _proc_status(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log_text = log_path.read_text()
    status = done["status"]
    size = len(json.dumps(status, ensure_ascii=False).encode())
    print(
        f"\nanalysis of {EVENTS} events and objects with ~256 KiB annotations: {elapsed:.1f}s; "
        f"status {size / 1024:.1f} KiB, "
        f"{len(status['findings'])} of {status['totalFindings']} findings kept; "
        f"operator RSS idle {idle['VmRSS'] / 1024:.0f} MiB, "
        f"peak {peak['VmHWM'] / 1024:.0f} MiB (+{(peak['VmHWM'] - idle['VmRSS']) / 1024:.0f} MiB)"
    )
    assert status["phase"] == "Completed", (status.get("summary"), log_text[-3000:])
    assert status["missing"] == [], status["missing"]
    assert size < STATUS_BOUND, size
    assert "Traceback" not in log_text, log_text[-5000:]
    # Everything the status holds is bounded, whatever the events said.
    for f in status["findings"]:
        assert len(f["title"]) <= 256 and len(f["remediation"]) <= 1024, f
        assert all(len(e["value"]) <= 1024 and len(e["source"]) <= 256 for e in f["evidence"]), f
    assert len(status["summary"]) <= 512
    assert all(len(c["message"]) <= 1024 for c in status["conditions"])
    # More findings than fit: the most severe are kept, and the status says that some were left out.
    assert status["totalFindings"] >= 500 and status["truncated"] is True
    assert 50 < len(status["findings"]) < status["totalFindings"]
    ranks = {"critical": 0, "warning": 1, "info": 2}
    assert [ranks[f["severity"]] for f in status["findings"]] == sorted(
        ranks[f["severity"]] for f in status["findings"]
    )
    # The odd text arrives intact (truncated, never mangled): emoji, RTL marks and control characters.
    evidence = " ".join(e["value"] for f in status["findings"] if f["detector"] == "events" for e in f["evidence"])
    assert "🚀" in evidence and "\u202e" in evidence and "\x01" in evidence, evidence[:2000]
    incident = report["status"]
    incident_size = len(json.dumps(incident, ensure_ascii=False).encode())
    print(
        f"incident report: status {incident_size / 1024:.1f} KiB, {len(incident['timeline'])} of "
        f"{incident['totalTimelineEntries']} timeline entries kept"
    )
    assert incident["phase"] == "Completed", incident.get("summary")
    assert incident_size < STATUS_BOUND, incident_size
    assert incident["timelineTruncated"] is True and len(incident["timeline"]) <= 200
    assert all(len(e["summary"]) <= 512 and all(len(d) <= 1024 for d in e["details"]) for e in incident["timeline"])
    assert any("🚀" in e["summary"] for e in incident["timeline"])
    # Memory: generous bounds; the figures are printed above. (Before events were trimmed page by page, the
    # analysis alone added about 115 MiB here; now about 35 MiB.)
    assert peak["VmHWM"] < 500 * 1024, peak
    assert peak["VmHWM"] - idle["VmRSS"] < 200 * 1024, (idle, peak)


async def test_in_process_analysis_keeps_the_newest_events_within_the_cap(
    cluster: E2ECluster, odd_namespace: OddNamespace
) -> None:
    """runner.analyze as the operator runs it, under tracemalloc: the event cap holds and the peak is bounded."""
    from infragenius.analysis.runner import analyze
    from infragenius.gather.kube import KubeGatherer

    cap = 500
    gatherer = KubeGatherer(cluster.api, event_cap=cap)
    tracemalloc.start()
    try:
        started = time.perf_counter()
        outcome = await analyze(gatherer, AnalysisSpec.model_validate({"maxFindings": 500}), odd_namespace.name)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"\nin-process analysis: {elapsed:.1f}s, tracemalloc peak {peak / 2**20:.1f} MiB")
    events = outcome.snapshot.events
    assert len(events) == cap
    # The newest ones, newest first. (The control plane may add a few Warning events of its own, e.g. the
    # scheduler's: those are newer, so ours are then the next newest, still in order.)
    names = [e["metadata"]["name"] for e in events]
    ours = [n for n in names if n.startswith("odd.")]
    assert len(names) - len(ours) <= 20, names[:30]
    assert ours == [
        f"odd.{i:05d}" for i in range(odd_namespace.newest_event, odd_namespace.newest_event - len(ours), -1)
    ]
    report = outcome.snapshot.result("events")
    assert report is not None and report.status.value == "ok" and report.count == cap
    assert outcome.missing == []
    # The objects with huge annotations were read whole.
    pods = {p["metadata"]["name"]: p for p in outcome.snapshot.items("Pod")}
    assert set(odd_namespace.pods) <= set(pods)
    assert len(pods["odd-annotated"]["metadata"]["annotations"]["example.com/blob"].encode()) > 250 * 1024
    messages = {e["message"] for e in events}
    assert TEN_KB in messages and any(m.startswith("NUL \x00 inside") for m in messages), sorted(messages)[:5]
    # About 25 MiB measured; 104 MiB when all 10,000 events were held before the cap applied.
    assert peak < 80 * 2**20, peak


def test_unknown_fields_are_pruned_with_a_warning_unless_validation_is_strict(
    cluster: E2ECluster, namespace: str, established: None
) -> None:
    """The CRDs are structural without preserve-unknown-fields: the server prunes unknown fields. Strict field
    validation (kubectl's default) refuses them instead (400, see the fuzz test); the default for other clients
    is Warn: stored without them, and a Warning header names them."""
    body = analysis("pruned", {"minSeverity": "warning", "bogus": True, "llm": {"enabled": False, "temperature": 1}})
    for mode in ("Warn", "Ignore"):
        method, url, headers, data, post = cluster.api.param_serialize(
            method="POST",
            resource_path=f"{API}/namespaces/{namespace}/analyses",
            query_params=[("dryRun", "All"), ("fieldValidation", mode)],
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = cluster.api.call_api(method, url, header_params=headers, body=data, post_params=post)
        stored = json.loads(response.read())
        assert response.status == 201, stored
        assert stored["spec"] == {
            "minSeverity": "warning",
            "llm": {"enabled": False, "anonymize": True},
            "maxFindings": 50,
            "allNamespaces": False,
        }
        warning = (response.headers.get("Warning") or "").replace('\\"', '"')  # quoted as HTTP warn-text
        if mode == "Warn":
            assert 'unknown field "spec.bogus"' in warning and 'unknown field "spec.llm.temperature"' in warning, (
                warning
            )
        else:
            assert warning == "", warning
        # What the operator then reads is a valid spec.
        assert model_accepts("Analysis", stored["spec"]) is None
