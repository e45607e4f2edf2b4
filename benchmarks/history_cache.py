"""History write throughput and the explanation cache-hit path, against real Postgres, Redis and Ollama.

Method:
- History: RunRecords shaped like a real run (20 findings each) written through HistoryStore.write_run
  (one transaction per run: requests, analyses, results, findings), sequentially and 4 at a time,
  to a Postgres from Debian's package started for the run (fsync off, as in the tests).
- Cache hit: one real model call (tiny local model on a real Ollama) fills Redis for a 1,000-pod
  namespace's findings; then child processes, each with the operator code under test on PYTHONPATH,
  time the whole LLM stage on a hit (fingerprint or prompt build, cache lookup, unsealing, validation,
  restore, command check), interleaved per iteration with a bare GET of the same entry (the floor,
  same process, same moment). With --baseline REF the operator/ of REF (read with git archive) runs
  in alternate rounds against the same Redis entry: before and after, under the same machine load.
  Every child builds the same namespace (one clock, IG_BENCH_NOW), so all of them hit one entry.

Run: python benchmarks/history_cache.py [--baseline main] [--rounds 3] [--hits 300] [--skip-history]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import llm_stage
import redis.asyncio as redis
from llm_stage import synthetic_namespace

from infragenius.analysis.engine import run_detectors
from infragenius.cache.redis_cache import RedisExplanationCache
from infragenius.detectors.registry import select
from infragenius.history.store import HistoryStore, RunRecord
from infragenius.llm.explain import Explainer, LLMOptions
from infragenius.llm.ollama_llm import OllamaLLM
from infragenius.snapshot import Snapshot
from infragenius_devtools.devcluster.build import ensure_ollama
from infragenius_devtools.devcluster.services import LocalOllama, LocalPostgres, LocalRedis

ROOT = Path(__file__).resolve().parents[1]
# One clock for the parent and every child, so they all build the very same namespace (and prompt).
NOW_ISO = os.environ.get("IG_BENCH_NOW") or dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
llm_stage.NOW = dt.datetime.fromisoformat(NOW_ISO)
SIGNING_KEY = b"benchmark-signing-key"
OPTIONS = LLMOptions(model=LocalOllama.MODEL, num_ctx=4096, max_reply_tokens=512, timeout=300)


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


async def fill_cache(ollama_url: str, redis_url: str, snapshot: Snapshot, findings: list) -> float:
    """One real model call through the stage (a miss): its reply is the entry every hit then reads."""
    cache = RedisExplanationCache(redis_url, signing_key=SIGNING_KEY)
    explainer = Explainer(OllamaLLM(ollama_url), cache=cache)
    started = time.perf_counter()
    first = await explainer.explain(snapshot, findings, [], OPTIONS)
    miss = time.perf_counter() - started
    assert first.status is not None and not first.status.cached, first.message
    await cache.close()
    await explainer.llm.close()
    return miss


async def hit_driver(redis_url: str, hits: int) -> dict[str, Any]:
    """Run in a child process, with the operator code under test on PYTHONPATH (this tree's or a baseline's).

    Interleaved, per iteration: one cache hit through the whole stage (snapshot and findings as a periodic
    run passes them), then a bare GET of the same entry on a client of its own: the floor, measured in
    the same process and the same second as the path. ``cold``: hits through a new Explainer each time
    (nothing prepared yet: an operator that just started, or another replica), when the code has a memo.
    """
    snapshot = synthetic_namespace(pods=1000)
    findings = run_detectors(snapshot, select()).findings
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    [key] = [k async for k in client.scan_iter(match="infragenius:explain:*")]
    cache = RedisExplanationCache(redis_url, signing_key=SIGNING_KEY)
    explainer = Explainer(OllamaLLM("http://127.0.0.1:9"), cache=cache)  # never called: every call is a hit

    async def hit(through: Explainer) -> float:
        started = time.perf_counter()
        outcome = await through.explain(snapshot, findings, [], OPTIONS)
        cost = time.perf_counter() - started
        assert outcome.status is not None and outcome.status.cached, outcome.message
        return cost

    first = await hit(explainer)
    costs, gets, cold = [], [], []
    for _ in range(hits):
        costs.append(await hit(explainer))
        started = time.perf_counter()
        assert await client.get(key) is not None
        gets.append(time.perf_counter() - started)
    if hasattr(Explainer, "prepare"):
        for _ in range(max(hits // 10, 5)):
            cold.append(await hit(Explainer(explainer.llm, cache=cache)))
    await client.aclose()
    await cache.close()
    await explainer.llm.close()
    return {"first": first, "hits": costs, "gets": gets, "cold": cold}


def run_driver(operator_dir: Path, redis_url: str, hits: int, now: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(operator_dir), str(ROOT / "devtools")]),
        "IG_BENCH_NOW": now,
    }
    out = subprocess.run(
        [sys.executable, __file__, "--hit-driver", redis_url, str(hits)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def export_tree(ref: str) -> Path:
    """``operator/`` as of ``ref`` (read from git objects; no checkout), for the side-by-side baseline."""
    directory = Path(tempfile.mkdtemp(prefix="ig-bench-baseline-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "operator"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive.stdout, check=True)
    return directory / "operator"


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)] * 1000


def report(name: str, runs: list[dict[str, Any]]) -> None:
    hits = [c for r in runs for c in r["hits"]]
    gets = [c for r in runs for c in r["gets"]]
    cold = [c for r in runs for c in r["cold"]]
    print(
        f"  {name}: hit median {ms(hits, 0.5):.2f} ms, p95 {ms(hits, 0.95):.2f} ms | bare GET median "
        f"{ms(gets, 0.5):.3f} ms, p95 {ms(gets, 0.95):.3f} ms | ratio hit/GET median "
        f"{ms(hits, 0.5) / ms(gets, 0.5):.1f}x, p95 {ms(hits, 0.95) / ms(gets, 0.95):.1f}x "
        f"(n={len(hits)}; first hit of each process median {statistics.median(r['first'] for r in runs) * 1000:.1f} ms)"
    )
    if cold:
        print(
            f"  {name}, nothing prepared yet (new Explainer each hit): median {ms(cold, 0.5):.2f} ms, "
            f"p95 {ms(cold, 0.95):.2f} ms (n={len(cold)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="git ref whose operator/ is measured side by side (e.g. main)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hits", type=int, default=300, help="hits per round and variant")
    parser.add_argument("--skip-history", action="store_true")
    args = parser.parse_args()
    baseline: Path | None = None
    snapshot = synthetic_namespace(pods=1000)
    findings = run_detectors(snapshot, select()).findings
    as_dicts = [f.model_dump(mode="json", exclude_none=True) for f in findings[:20]]
    postgres = LocalPostgres().init().start()
    redis_server = LocalRedis().start()
    home = Path(tempfile.mkdtemp(prefix="ig-bench-ollama-"))
    ollama = LocalOllama(home, ensure_ollama()).start()
    try:
        if not args.skip_history:
            sequential, parallel = asyncio.run(history_throughput(postgres.url, as_dicts))
            print(
                f"history writes ({len(as_dicts)} findings per run): {sequential:.0f} runs/s sequential, "
                f"{parallel:.0f} runs/s with 4 writers"
            )
        miss = asyncio.run(fill_cache(ollama.url, redis_server.url, snapshot, findings))
        print(f"LLM stage, {len(findings)} findings: miss (real model call) {miss * 1000:.0f} ms")
        variants = {"this tree": ROOT / "operator"}
        if args.baseline:
            variants[f"baseline {args.baseline}"] = baseline = export_tree(args.baseline)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
        for _ in range(args.rounds):  # alternated, so both see the same machine load
            for name, directory in variants.items():
                runs[name].append(run_driver(directory, redis_server.url, args.hits, NOW_ISO))
        print(f"cache hit through the LLM stage, {args.rounds} rounds alternated (target: p95 <= 5 ms, <= 10x GET):")
        for name, measured in runs.items():
            report(name, measured)
    finally:
        ollama.stop()
        redis_server.stop()
        postgres.stop()
        shutil.rmtree(postgres.directory, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
        if baseline is not None:
            shutil.rmtree(baseline.parent, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--hit-driver"]:
        print(json.dumps(asyncio.run(hit_driver(sys.argv[2], int(sys.argv[3])))))
    else:
        main()
