"""Start-up and clean-up of the operator process: settings are read and clients created once, here.

The Kopf handlers in ``handlers/lifecycle.py`` call these and keep the results in ``memo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import aiohttp
from kubernetes import client, config
from pydantic import ValidationError

from infragenius.cache.redis_cache import RedisExplanationCache
from infragenius.history.outbox import Outbox
from infragenius.history.recorder import HistoryRecorder
from infragenius.history.store import TRANSIENT_ERRORS, HistoryStore
from infragenius.llm.base import LLMError
from infragenius.llm.explain import Explainer
from infragenius.llm.guard import CircuitBreaker, Limiter
from infragenius.llm.ollama_llm import OllamaLLM
from infragenius.models.analysis import NotifySpec
from infragenius.observability.logs import HandlerLogger
from infragenius.runs.lifecycle import Runtime
from infragenius.runs.notifications import Dispatcher
from infragenius.settings import Settings
from infragenius.stack import apply as stack

# Postgres not there yet, or too slow to answer: the recorder buffers until it is.
STARTUP_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *TRANSIENT_ERRORS)


@dataclass
class Started:
    """What start-up made: the runtime every handler uses, and the stack's repair loop (if any)."""

    runtime: Runtime
    stack_task: asyncio.Task[None] | None = None
    notify_task: asyncio.Task[None] | None = None
    notify_http: aiohttp.ClientSession | None = None


def api_client(settings: Settings) -> client.ApiClient:
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(config_file=settings.kubeconfig, client_configuration=configuration)
    # One pooled connection per parallel LIST, plus status writes.
    configuration.connection_pool_maxsize = settings.list_concurrency * settings.max_concurrent_analyses + 4
    return client.ApiClient(configuration)


def check_default_sinks(settings: Settings) -> None:
    """INFRAGENIUS_NOTIFY_DEFAULT_SINKS must be valid sinks: refuse to start rather than drop messages later."""
    try:
        NotifySpec.model_validate({"sinks": settings.notify_default_sinks})
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"INFRAGENIUS_NOTIFY_DEFAULT_SINKS: {where}: {first['msg']}") from None


async def start(settings: Settings, logger: HandlerLogger) -> Started:
    """Deploy the stack (when managed), then connect to what it and the settings provide."""
    check_default_sinks(settings)
    api = api_client(settings)
    # The API client blocks, so its requests run in worker threads: as many as pooled connections, or status
    # writes and LIST pages queue for the default executor's few threads (cpu_count + 4) however idle the API.
    workers = api.configuration.connection_pool_maxsize
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(workers, thread_name_prefix="infragenius"))
    stack_task = None
    if settings.manages_stack:
        _log_stack(await stack.ensure(api, settings), logger)
        stack_task = asyncio.create_task(_keep_stack(api, settings, logger), name="infragenius-stack")
    urls = await asyncio.to_thread(stack.endpoints, settings, api)
    cache = None
    if urls.redis:
        cache = RedisExplanationCache(
            urls.redis, signing_key=_signing_key(urls.cache_signing_key, logger), ttl_seconds=settings.cache_ttl_seconds
        )
    runtime = Runtime(
        settings=settings,
        api=api,
        slots=asyncio.Semaphore(settings.max_concurrent_analyses),
        explainer=await _explainer(settings, urls.ollama, cache, logger),
        history=await _history(settings, urls.postgres, logger),
    )
    logger.info(
        "InfraGenius started (stack: %s; prometheus: %s; ollama: %s; history: %s; cache: %s)",
        "managed" if settings.manages_stack else "external",
        settings.prometheus_url or "not configured",
        urls.ollama or "not configured",
        "on" if urls.postgres else "off",
        "on" if cache else "off",
    )
    started = Started(runtime, stack_task)
    if runtime.history is not None:  # the outbox lives in Postgres: no history, no notifications
        connector = aiohttp.TCPConnector(limit=settings.notify_concurrency)
        started.notify_http = aiohttp.ClientSession(connector=connector)
        dispatcher = Dispatcher(Outbox(runtime.history.store.pool), api, settings, started.notify_http)
        started.notify_task = asyncio.create_task(dispatcher.run(), name="infragenius-notifications")
    return started


async def stop(started: Started) -> None:
    if started.stack_task is not None:
        started.stack_task.cancel()
    if started.notify_task is not None:
        started.notify_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await started.notify_task
    if started.notify_http is not None:
        await started.notify_http.close()
    runtime = started.runtime
    if runtime.history is not None:
        await runtime.history.close()
    if runtime.explainer is not None:
        await runtime.explainer.llm.close()
        if runtime.explainer.cache is not None:
            await runtime.explainer.cache.close()
    runtime.api.close()


def _signing_key(configured: str | None, logger: HandlerLogger) -> bytes:
    if configured:
        return configured.encode()
    logger.warning(
        "explanation cache: no signing key configured (INFRAGENIUS_CACHE_SIGNING_KEY); using one for this "
        "process only, so replicas and restarts do not share cached explanations"
    )
    return secrets.token_bytes(32)


def _log_stack(report: stack.EnsureReport, logger: HandlerLogger) -> None:
    if report.errors:
        logger.warning("stack: could not apply %s", "; ".join(report.errors))
    created = ", created the Postgres secret" if report.secret_created else ""
    logger.info("stack: applied %d object(s)%s", len(report.applied), created)


async def _keep_stack(api: client.ApiClient, settings: Settings, logger: HandlerLogger) -> None:
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
    settings: Settings, url: str | None, cache: RedisExplanationCache | None, logger: HandlerLogger
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


async def _history(settings: Settings, url: str | None, logger: HandlerLogger) -> HistoryRecorder | None:
    if not url:
        return None
    cap = settings.history_reconnect_max_seconds
    store = HistoryStore(url, reconnect_max_seconds=cap)
    await store.open(wait=False)  # Postgres may be down now; the recorder buffers until it is back
    recorder = HistoryRecorder(store, capacity=settings.history_buffer, max_backoff=cap)
    try:
        applied = await asyncio.wait_for(store.migrate(), timeout=10)
        recorder.migrated = True
        logger.info("history: migrations applied now: %s", applied or "none")
    except STARTUP_ERRORS as err:
        recorder.available = False
        logger.warning("history: Postgres unavailable at start-up (%s); runs will be buffered", err)
    recorder.start()
    return recorder
