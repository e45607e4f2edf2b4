"""Structured logs: every line of a run carries its resource (Kopf adds it) and its run id."""

from __future__ import annotations

import logging
from typing import Any, MutableMapping

import kopf


class RunLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Adds ``run_id`` to every record, on top of whatever the wrapped (Kopf) logger adds."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(kwargs.get("extra") or {}), **(self.extra or {})}
        return msg, kwargs


def with_run_id(logger: logging.Logger | logging.LoggerAdapter, run_id: str) -> RunLogger:  # type: ignore[type-arg]
    return RunLogger(logger, {"run_id": run_id})  # type: ignore[arg-type]


def configure(log_format: str, verbose: bool = False) -> None:
    """``json``: one object per line with ``object`` (the resource), ``run_id`` and ``severity``."""
    if log_format == "json":
        kopf.configure(verbose=verbose, log_format=kopf.LogFormat.JSON, log_refkey="object")
    else:
        kopf.configure(verbose=verbose, log_format=kopf.LogFormat.FULL, log_prefix=True)
