"""The Ollama implementation of the LLM Protocol, through the official async client."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import ollama

from infragenius.llm.base import Completion, ModelTimeout, ModelUnavailable


class OllamaLLM:
    def __init__(self, host: str, *, connect_timeout: float = 2.0) -> None:
        self.host = host
        # The per-call timeout is enforced with asyncio; httpx only bounds connecting.
        self._client = ollama.AsyncClient(host=host, timeout=httpx.Timeout(None, connect=connect_timeout))

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
    ) -> Completion:
        try:
            reply = await asyncio.wait_for(
                self._client.chat(
                    model=model,
                    messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                    format=schema,
                    stream=False,
                    options={"num_ctx": num_ctx, "num_predict": max_tokens, "temperature": 0, "seed": 7},
                ),
                timeout,
            )
        except TimeoutError as err:
            raise ModelTimeout(f"no reply from {model} within {timeout:g}s") from err
        except ollama.ResponseError as err:
            raise ModelUnavailable(
                f"{model}: {err.error} (HTTP {err.status_code})", server_down=err.status_code >= 500
            ) from err
        except (httpx.HTTPError, ConnectionError, OSError) as err:
            raise ModelUnavailable(f"cannot reach Ollama at {self.host}: {type(err).__name__}: {err}") from err
        duration = reply.get("total_duration")
        return Completion(
            content=reply.message.content or "",
            prompt_tokens=reply.get("prompt_eval_count"),
            completion_tokens=reply.get("eval_count"),
            model_seconds=duration / 1e9 if duration else None,
            done_reason=reply.get("done_reason"),
        )

    async def ensure_model(self, model: str, *, pull: bool) -> None:
        """Check the model is present; pull it when allowed (POST /api/pull)."""
        try:
            listed = await self._client.list()
        except (httpx.HTTPError, ConnectionError, OSError, ollama.ResponseError) as err:
            raise ModelUnavailable(f"cannot reach Ollama at {self.host}: {err}") from err
        names = {m.model for m in listed.models} | {(m.model or "").removesuffix(":latest") for m in listed.models}
        if model in names or f"{model}:latest" in names:
            return
        if not pull:
            raise ModelUnavailable(f"model {model} is not present on {self.host} and pulling is disabled")
        try:
            await self._client.pull(model)
        except (httpx.HTTPError, ollama.ResponseError, ConnectionError, OSError) as err:
            raise ModelUnavailable(f"could not pull {model}: {err}") from err

    async def close(self) -> None:
        await self._client.close()
