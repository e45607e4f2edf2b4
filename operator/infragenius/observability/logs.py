"""Structured logs: every line of a run carries its resource (Kopf adds it) and its run id."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any, cast

import kopf

#: What Kopf passes handlers as ``logger``.
HandlerLogger = logging.Logger | logging.LoggerAdapter[Any]


class RunLogger(logging.LoggerAdapter[logging.Logger]):
    """Adds ``run_id`` to every record, on top of whatever the wrapped (Kopf) logger adds."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(kwargs.get("extra") or {}), **(self.extra or {})}
        return msg, kwargs


def with_run_id(logger: HandlerLogger, run_id: str) -> RunLogger:
    # A LoggerAdapter wraps Kopf's adapter as well as a plain logger; only its log() method is used.
    return RunLogger(cast(logging.Logger, logger), {"run_id": run_id})


def configure(log_format: str, verbose: bool = False) -> None:
    """``json``: one object per line with ``object`` (the resource), ``run_id`` and ``severity``."""
    if log_format == "json":
        kopf.configure(verbose=verbose, log_format=kopf.LogFormat.JSON, log_refkey="object")
    else:
        kopf.configure(verbose=verbose, log_format=kopf.LogFormat.FULL, log_prefix=True)
