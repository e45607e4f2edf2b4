"""Burn attribution over 10,000 label combinations: how many queries, how long, against a real Prometheus.

Method:
- Backfill (promtool) an error counter with ``--routes`` x ``--codes`` x ``--pods`` label combinations
  (10,000 by default) and one request counter, one sample every 5 minutes for 3 hours. The errors are
  skewed on purpose: route ``/r0`` with code ``503`` carries ``--hot-share`` (80%) of them, spread over
  its pods; the rest share the remainder evenly.
- For each label set ([route], [route, code], [route, code, pod]) run :func:`infragenius.slo.review.attribute`
  (what a review runs) ``--runs`` times over 1h, and count the queries Prometheus served for it from its own
  ``prometheus_http_requests_total{handler="/api/v1/query"}``.
- Floor: the same number of bare ``sum(increase(errors[1h]))`` queries (the total alone, no grouping), timed
  the same way, interleaved with the attribution runs.
- Checks the answer: the hot group is first with its designed share (± 1%).

Run: ``.venv/bin/python benchmarks/slo_attribution.py [--routes 100 --codes 10 --pods 10] [--runs 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from infragenius.gather.prometheus import PrometheusTarget
from infragenius.models.slo import RatioSLI, SLISpec
from infragenius.slo.queries import attribution_query
from infragenius.slo.review import attribute
from infragenius_devtools.prometheus import LocalPrometheus
from infragenius_devtools.support import free_port

END = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
STEP = 300  # seconds
SAMPLES = 37  # 3 hours
ERRORS = "bench_errors_total"
REQUESTS = "bench_requests_total"
RESULTS = Path(__file__).parent / "results"


class AttributionData(LocalPrometheus):
    def __init__(self, home: Path, port: int, routes: int, codes: int, pods: int, hot_share: float) -> None:
        super().__init__(home, port)
        self.routes, self.codes, self.pods, self.hot_share = routes, codes, pods, hot_share

    def per_step(self, route: int, code: int) -> float:
        """Errors per step of one (route, code, pod) series: the hot group's pods share hot_share of 1000."""
        others = self.routes * self.codes - 1
        if (route, code) == (0, 0):
            return 1000 * self.hot_share / self.pods
        return 1000 * (1 - self.hot_share) / others / self.pods

    def expected_top_share(self, labels: list[str]) -> float:
        """The hot group's share: /r0 alone also has the other codes' errors; by pod it is split pod-wise."""
        if labels == ["route"]:
            return (self.per_step(0, 0) + sum(self.per_step(0, c) for c in range(1, self.codes))) * self.pods / 1000
        return self.per_step(0, 0) * (1 if "pod" in labels else self.pods) / 1000

    def write_openmetrics(self, path: Path) -> Path:
        end = int(END.timestamp())
        with path.open("w") as out:
            for route in range(self.routes):
                for code in range(self.codes):
                    step = self.per_step(route, code)
                    for pod in range(self.pods):
                        labels = f'route="/r{route}",code="{503 if code == 0 else 520 + code}",pod="p{pod}"'
                        for i in range(SAMPLES):
                            ts = end - (SAMPLES - 1 - i) * STEP
                            out.write(f"{ERRORS}{{{labels}}} {step * i:.6f} {ts}\n")
            for i in range(SAMPLES):
                out.write(f"{REQUESTS} {100_000 * i} {end - (SAMPLES - 1 - i) * STEP}\n")
            out.write("# EOF\n")
        return path


def served_queries(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for line in text.splitlines():
        query_ok = 'handler="/api/v1/query"' in line and 'code="200"' in line
        if line.startswith("prometheus_http_requests_total{") and query_ok:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--routes", type=int, default=100)
    parser.add_argument("--codes", type=int, default=10)
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--hot-share", type=float, default=0.8)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    combos = args.routes * args.codes * args.pods
    sli = SLISpec(ratio=RatioSLI(error_query=ERRORS, total_query=REQUESTS))
    with tempfile.TemporaryDirectory(prefix="ig-attribution-") as home:
        prom = AttributionData(Path(home), free_port(), args.routes, args.codes, args.pods, args.hot_share)
        started = time.perf_counter()
        prom.start()
        print(f"{combos} label combinations backfilled and served in {time.perf_counter() - started:.1f}s")
        target = PrometheusTarget(prom.url)
        floor_query = f"sum(increase({ERRORS}[1h]))"
        figures: dict[str, dict[str, float]] = {}
        try:
            async with httpx.AsyncClient(base_url=prom.url, timeout=30) as client:
                for labels in (["route"], ["route", "code"], ["route", "code", "pod"]):
                    before = served_queries(prom.url)
                    times, floors = [], []
                    status = None
                    for _ in range(args.runs):
                        t0 = time.perf_counter()
                        status = await attribute(target, sli, labels, "1h", at=END, timeout=30)
                        times.append(time.perf_counter() - t0)
                        t0 = time.perf_counter()
                        answer = await client.get(
                            "/api/v1/query", params={"query": floor_query, "time": END.timestamp()}
                        )
                        answer.raise_for_status()
                        floors.append(time.perf_counter() - t0)
                    queries = (served_queries(prom.url) - before - args.runs) / args.runs  # minus the floor's
                    assert status is not None and status.available, status
                    share = status.top[0].share
                    expected = prom.expected_top_share(labels)
                    key = ",".join(labels)
                    figures[key] = {
                        "groups": {"route": args.routes, "route,code": args.routes * args.codes}.get(key, combos),
                        "queries_per_attribution": queries,
                        "p50_ms": statistics.median(times) * 1000,
                        "p95_ms": percentile(times, 0.95) * 1000,
                        "floor_p50_ms": statistics.median(floors) * 1000,
                        "ratio_p50": statistics.median(times) / statistics.median(floors),
                        "top_share": share,
                        "expected_top_share": expected,
                        "query_chars": len(attribution_query(sli, labels, "1h")),
                    }
                    ok = abs(share - expected) <= 0.01
                    print(
                        f"by {key:<16} groups {figures[key]['groups']:>6}: {queries:.0f} query/attribution, "
                        f"p50 {figures[key]['p50_ms']:.1f} ms, p95 {figures[key]['p95_ms']:.1f} ms; floor (bare sum) "
                        f"p50 {figures[key]['floor_p50_ms']:.1f} ms, ratio {figures[key]['ratio_p50']:.1f}x; "
                        f"top {status.top[0].labels} share {share:.4f} "
                        f"(expected {expected:.4f}: {'ok' if ok else 'WRONG'})"
                    )
        finally:
            prom.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "slo_attribution.json").write_text(json.dumps({"combinations": combos, "by": figures}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
