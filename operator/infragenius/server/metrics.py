"""The server's Prometheus metrics, in their own registry (the operator's are for runs, not calls)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

CALLS = Counter(
    "infragenius_server_calls",
    "Calls to the server, by face, operation and outcome.",
    ["face", "operation", "outcome"],
    registry=REGISTRY,
)
CALL_SECONDS = Histogram(
    "infragenius_server_call_duration_seconds",
    "Time to answer a call, by face and operation.",
    ["face", "operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120),
    registry=REGISTRY,
)
RATE_LIMIT_FALLBACK = Gauge(
    "infragenius_server_rate_limit_local",
    "1 while Redis is unreachable and each replica limits callers on its own (in memory).",
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "infragenius_server_rate_limited", "Calls refused by the rate limit, by backend.", ["backend"], registry=REGISTRY
)
AUDIT_DROPPED = Counter(
    "infragenius_server_audit_dropped", "Audit rows dropped because the queue was full.", registry=REGISTRY
)
AUDIT_WRITTEN = Counter("infragenius_server_audit_written", "Audit rows written to Postgres.", registry=REGISTRY)
AUDIT_QUEUED = Gauge("infragenius_server_audit_queued", "Audit rows waiting to be written.", registry=REGISTRY)
CACHE_OBJECTS = Gauge(
    "infragenius_server_cache_objects", "Objects in the watch-backed cache, by kind.", ["kind"], registry=REGISTRY
)
