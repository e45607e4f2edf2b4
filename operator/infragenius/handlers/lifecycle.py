"""Start-up and clean-up: settings and clients are created once and shared through ``memo``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from kubernetes import client, config

from infragenius.cache.redis_cache import RedisExplanationCache
from infragenius.history.recorder import HistoryRecorder
from infragenius.history.store import TRANSIENT_ERRORS, HistoryStore
from infragenius.llm.base import LLMError
from infragenius.llm.explain import Explainer
from infragenius.llm.guard import CircuitBreaker, Limiter
from infragenius.llm.ollama_llm import OllamaLLM
from infragenius.observability import metrics
from infragenius.observability.server import HealthServer, HealthState
from infragenius.runs.lifecycle import Runtime
from infragenius.settings import Settings
from infragenius.stack import apply as stack

# Not "infragenius.io": Kopf ignores annotations under its own prefix, and users set infragenius.io/rerun.
PREFIX = "kopf.infragenius.io"


def _api_client(settings: Settings) -> client.ApiClient:
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(config_file=settings.kubeconfig, client_configuration=configuration)
    # One pooled connection per parallel LIST, plus status writes.
    configuration.connection_pool_maxsize = settings.list_concurrency * settings.max_concurrent_analyses + 4
    return client.ApiClient(configuration)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # Kopf's parsers read KUBECONFIG when called; the client library's default froze it at import time.
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    # Progress and diff-base live in our own annotations, so status stays ours alone.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # we post our own events; Kopf's INFO logs would flood them
    settings.watching.server_timeout = 300
    ours = Settings()
    # Peering is switched on by `infragenius operator` (or kopf run --peering); these tune it.
    settings.peering.lifetime = ours.peering_lifetime_seconds
    settings.peering.stealth = True  # keep-alives every minute would bury the useful lines
    metrics.STARTED.set_to_current_time()
    memo.health = HealthState()
    memo.health_server = HealthServer(memo.health)
    # A port in use is a configuration error: fail the start-up rather than run without probes.
    port = await memo.health_server.start("0.0.0.0", ours.health_port)
    logger.info("health and metrics on :%d (/healthz, /readyz, /metrics)", port)
    api = _api_client(ours)
    if ours.manages_stack:
        report = await stack.ensure(api, ours)
        _log_stack(report, logger)
        memo.stack_task = asyncio.create_task(_keep_stack(api, ours, logger), name="infragenius-stack")
    urls = await asyncio.to_thread(stack.endpoints, ours, api)
    cache = RedisExplanationCache(urls.redis, ttl_seconds=ours.cache_ttl_seconds) if urls.redis else None
    memo.runtime = Runtime(
        settings=ours,
        api=api,
        slots=asyncio.Semaphore(ours.max_concurrent_analyses),
        explainer=await _explainer(ours, urls.ollama, cache, logger),
        history=await _history(ours, urls.postgres, logger),
    )
    memo.health.mark_ready()
    logger.info(
        "InfraGenius started (stack: %s; prometheus: %s; ollama: %s; history: %s; cache: %s)",
        "managed" if ours.manages_stack else "external",
        ours.prometheus_url or "not configured",
        urls.ollama or "not configured",
        "on" if urls.postgres else "off",
        "on" if cache else "off",
    )


def _log_stack(report: stack.EnsureReport, logger: logging.Logger) -> None:
    if report.errors:
        logger.warning("stack: could not apply %s", "; ".join(report.errors))
    logger.info(
        "stack: applied %d object(s)%s", len(report.applied), ", created the Postgres secret" if report.secret_created else ""
    )


async def _keep_stack(api: client.ApiClient, settings: Settings, logger: logging.Logger) -> None:
    """Repair drift and recreate deleted objects, for as long as the operator runs."""
    while True:
        await asyncio.sleep(settings.stack_resync_seconds)
        try:
            report = await stack.ensure(api, settings)
        except Exception:  # the loop must outlive any single failure
            logger.exception("stack: resync failed")
            continue
        if report.errors:
            logger.warning("stack: could not apply %s", "; ".join(report.errors))


async def _explainer(
    settings: Settings, url: str | None, cache: RedisExplanationCache | None, logger: logging.Logger
) -> Explainer | None:
    if not url:
        return None
    llm = OllamaLLM(url)
    try:
        await llm.ensure_model(settings.llm_model, pull=settings.llm_pull)
    except LLMError as err:  # the model server may come later; analyses report it per run
        logger.warning("LLM explanations will be unavailable for now: %s", err)
    return Explainer(
        llm,
        breaker=CircuitBreaker(settings.llm_breaker_threshold, settings.llm_breaker_cooldown_seconds),
        limiter=Limiter(settings.llm_concurrency, settings.llm_namespace_concurrency),
        cache=cache,
    )


async def _history(settings: Settings, url: str | None, logger: logging.Logger) -> HistoryRecorder | None:
    if not url:
        return None
    store = HistoryStore(url)
    await store.open(wait=False)  # Postgres may be down now; the recorder buffers until it is back
    recorder = HistoryRecorder(store, capacity=settings.history_buffer)
    try:
        applied = await asyncio.wait_for(store.migrate(), timeout=10)
        recorder.migrated = True
        logger.info("history: migrations applied now: %s", applied or "none")
    except (asyncio.TimeoutError, *TRANSIENT_ERRORS) as err:
        recorder.available = False
        logger.warning("history: Postgres unavailable at start-up (%s); runs will be buffered", err)
    recorder.start()
    return recorder


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    task = getattr(memo, "stack_task", None)
    if task is not None:
        task.cancel()
    server = getattr(memo, "health_server", None)
    if server is not None:
        await server.stop()
    runtime = getattr(memo, "runtime", None)
    if runtime is None:
        return
    if runtime.history is not None:
        await runtime.history.close()
    if runtime.explainer is not None:
        await runtime.explainer.llm.close()
        if runtime.explainer.cache is not None:
            await runtime.explainer.cache.close()
    runtime.api.close()
