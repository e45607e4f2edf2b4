"""Start-up and clean-up: settings and clients are created once and shared through ``memo``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from kubernetes import client, config

from infragenius.analysis.service import Runtime
from infragenius.llm.base import LLMError
from infragenius.llm.explain import Explainer
from infragenius.llm.guard import CircuitBreaker, Limiter
from infragenius.llm.ollama_llm import OllamaLLM
from infragenius.settings import Settings

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
    memo.runtime = Runtime(
        settings=ours,
        api=_api_client(ours),
        slots=asyncio.Semaphore(ours.max_concurrent_analyses),
        explainer=await _explainer(ours, logger),
    )
    logger.info(
        "InfraGenius started (prometheus: %s, ollama: %s)",
        ours.prometheus_url or "not configured",
        ours.ollama_url or "not configured",
    )


async def _explainer(settings: Settings, logger: logging.Logger) -> Explainer | None:
    if not settings.ollama_url:
        return None
    llm = OllamaLLM(settings.ollama_url)
    try:
        await llm.ensure_model(settings.llm_model, pull=settings.llm_pull)
    except LLMError as err:  # the model server may come later; analyses report it per run
        logger.warning("LLM explanations will be unavailable for now: %s", err)
    return Explainer(
        llm,
        breaker=CircuitBreaker(settings.llm_breaker_threshold, settings.llm_breaker_cooldown_seconds),
        limiter=Limiter(settings.llm_concurrency, settings.llm_namespace_concurrency),
    )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    runtime = getattr(memo, "runtime", None)
    if runtime is not None:
        runtime.api.close()
        if runtime.explainer is not None:
            await runtime.explainer.llm.close()


@kopf.on.probe(id="runtime")
async def runtime_ready(memo: kopf.Memo, **_: Any) -> bool:
    return getattr(memo, "runtime", None) is not None
