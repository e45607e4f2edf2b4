"""History write throughput and the explanation cache-hit path, against real Postgres, Redis and Ollama.

Method:
- History: RunRecords shaped like a real run (20 findings each) written through HistoryStore.write_run
  (one transaction per run: requests, analyses, results, findings), sequentially and 4 at a time,
  to a Postgres from Debian's package started for the run (fsync off, as in the tests).
- Cache hit: the whole LLM stage (prompt build, anonymization, cache lookup, validation, restore)
  for a 100-finding namespace, after one real model call (tiny local model on a real Ollama)
  filled Redis; median and p95 over 200 hits.

Run: python benchmarks/history_cache.py
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from llm_stage import synthetic_namespace

from infragenius.analysis.engine import run_detectors
from infragenius.cache.redis_cache import RedisExplanationCache
from infragenius.detectors.registry import select
from infragenius.history.store import HistoryStore, RunRecord
from infragenius.llm.explain import Explainer, LLMOptions
from infragenius.llm.ollama_llm import OllamaLLM
from infragenius_devtools.devcluster.build import ensure_ollama
from infragenius_devtools.devcluster.services import LocalOllama, LocalPostgres, LocalRedis


def record(i: int, findings: list[dict]) -> RunRecord:
    now = dt.datetime.now(dt.UTC)
    return RunRecord(
        kind="Analysis",
        namespace="bench",
        name=f"a-{i % 50}",
        resource_uid=f"uid-{i % 50}",
        generation=1,
        run_id=f"run-{i}",
        trigger="interval",
        requested_at=now,
        target_namespace="shop",
        phase="Completed",
        started_at=now,
        completed_at=now,
        duration_seconds=1.2,
        gather_seconds=1.0,
        detect_seconds=0.1,
        counts={"critical": 5, "warning": 15, "info": 0},
        summary="5 critical, 15 warnings",
        findings=findings,
    )


async def history_throughput(url: str, findings: list[dict], runs: int = 500) -> tuple[float, float]:
    store = HistoryStore(url, max_size=4)
    await store.open()
    await store.migrate()
    started = time.perf_counter()
    for i in range(runs):
        await store.write_run(record(i, findings))
    sequential = runs / (time.perf_counter() - started)
    started = time.perf_counter()
    queue = list(range(runs, 2 * runs))

    async def worker() -> None:
        while queue:
            await store.write_run(record(queue.pop(), findings))

    await asyncio.gather(*(worker() for _ in range(4)))
    parallel = runs / (time.perf_counter() - started)
    assert await store.count_runs("bench") == 2 * runs
    await store.close()
    return sequential, parallel


async def cache_hits(ollama_url: str, redis_url: str, snapshot, findings, hits: int = 200) -> tuple[list[float], float]:
    cache = RedisExplanationCache(redis_url, signing_key=b"benchmark-signing-key")
    explainer = Explainer(OllamaLLM(ollama_url), cache=cache)
    options = LLMOptions(model=LocalOllama.MODEL, num_ctx=4096, max_reply_tokens=512, timeout=300)
    started = time.perf_counter()
    first = await explainer.explain(snapshot, findings, [], options)
    miss = time.perf_counter() - started
    assert first.status is not None and not first.status.cached, first.message
    costs = []
    for _ in range(hits):
        started = time.perf_counter()
        outcome = await explainer.explain(snapshot, findings, [], options)
        costs.append(time.perf_counter() - started)
        assert outcome.status is not None and outcome.status.cached
    await cache.close()
    await explainer.llm.close()
    return costs, miss


def main() -> None:
    snapshot = synthetic_namespace(pods=1000)
    findings = run_detectors(snapshot, select()).findings
    as_dicts = [f.model_dump(mode="json", exclude_none=True) for f in findings[:20]]
    postgres = LocalPostgres().init().start()
    redis = LocalRedis().start()
    home = Path(tempfile.mkdtemp(prefix="ig-bench-ollama-"))
    ollama = LocalOllama(home, ensure_ollama()).start()
    try:
        sequential, parallel = asyncio.run(history_throughput(postgres.url, as_dicts))
        print(
            f"history writes ({len(as_dicts)} findings per run): {sequential:.0f} runs/s sequential, "
            f"{parallel:.0f} runs/s with 4 writers"
        )
        costs, miss = asyncio.run(cache_hits(ollama.url, redis.url, snapshot, findings))
        costs.sort()
        print(
            f"LLM stage, {len(findings)} findings: miss (real model call) {miss * 1000:.0f} ms; cache hit median "
            f"{statistics.median(costs) * 1000:.2f} ms, p95 {costs[int(len(costs) * 0.95)] * 1000:.2f} ms "
            f"(target < 10 ms)"
        )
    finally:
        ollama.stop()
        redis.stop()
        postgres.stop()
        shutil.rmtree(postgres.directory, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
