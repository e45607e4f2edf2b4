"""The LLM contract: one structured completion; failures are typed so status can say why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from infragenius.models.api import Reason


class LLMError(Exception):
    """Base for failures the explanation stage turns into an ``Explained=False`` condition."""

    reason = Reason.model_unavailable


class ModelUnavailable(LLMError):
    reason = Reason.model_unavailable

    def __init__(self, message: str, *, server_down: bool = True) -> None:
        super().__init__(message)
        #: False when the server answered but cannot serve this request (e.g. the model is missing):
        #: that says nothing about the server's health, so the circuit breaker ignores it.
        self.server_down = server_down


class ModelTimeout(LLMError):
    reason = Reason.model_timeout


class InvalidModelOutput(LLMError):
    reason = Reason.invalid_model_output


@dataclass(frozen=True)
class Completion:
    content: str
    prompt_tokens: int | None
    completion_tokens: int | None
    model_seconds: float | None
    done_reason: str | None


class LLM(Protocol):
    """A chat model that answers in JSON constrained by ``schema``."""

    async def complete(
        self,
        *,
        model: str,
        system: str,
        user: str,
        schema: dict[str, Any],
        num_ctx: int,
        max_tokens: int,
        timeout: float,
    ) -> Completion: ...

    async def ensure_model(self, model: str, *, pull: bool) -> None: ...

    async def close(self) -> None: ...
