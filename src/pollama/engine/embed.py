"""embed and the legacy embeddings: inputs → one batched runner call → vectors (reference §2.4, §2.5).

* ``/api/embed``: a string or a list of strings; every vector L2-normalised; ``dimensions`` cuts
  the vector and re-normalises; ``truncate`` (default true) cuts an input to the context, false
  refuses it; ``prompt_eval_count`` is the number of input tokens.
* ``/api/embeddings``: one ``prompt``; the vector is **not** normalised.

Inputs are tokenized here (concurrently) so truncation is exact and counts are known; the whole
batch then goes to the runner as token ids in **one** request. The runner pools by mean over the
tokens. An input must fit one physical batch of the runner (``num_batch``, at most 512), so the
usable context for an input is ``min(num_ctx, num_batch)`` tokens.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from pollama.api.types import EmbeddingsRequest, EmbedRequest
from pollama.errors import InvalidRequest, RunnerError
from pollama.store.model import Model

MAX_UBATCH = 512  # the runner's physical batch (runner/__main__.py: n_ubatch = min(n_batch, 512))


def _inputs(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidRequest("invalid input type")


def normalize(vector: list[float]) -> list[float]:
    """L2-normalise (a zero vector stays zero); NaN or Inf is an error, as in Ollama.

    >>> normalize([3.0, 4.0])
    [0.6, 0.8]
    """
    if any(not math.isfinite(v) for v in vector):
        raise RunnerError("embedding contains NaN or Inf values")
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm > 0 else list(vector)


class EmbedMixin:
    """Methods of :class:`pollama.engine.Engine` that produce embeddings."""

    # provided by Engine and InferenceMixin
    scheduler: Any
    resolve: Callable[..., Model]
    prepare: Callable[..., Any]
    _acquire: Callable[..., Any]

    def _embed_model(self, name: str) -> Model:
        if not name.strip():
            raise InvalidRequest("model is required")
        return self.resolve(name, f'model "{name}" not found, try pulling it first')

    async def _load_only(self, p: Any) -> None:
        if p.keep_alive == 0:
            await self.scheduler.unload(str(p.spec.model_path))
        else:
            async with self._acquire(p):
                pass

    async def embed(self, req: EmbedRequest) -> dict[str, Any]:
        started = time.perf_counter()
        model = self._embed_model(req.model)
        inputs = _inputs(req.input)
        if req.dimensions is not None and req.dimensions < 0:
            raise InvalidRequest("dimensions must be a non-negative integer")
        p = self.prepare(model, req.options, req.keep_alive)
        if not inputs:
            await self._load_only(p)
            return {"model": req.model, "embeddings": []}
        async with self._acquire(p) as entry:
            load_ns = int((time.perf_counter() - started) * 1e9)
            limit = min(p.spec.num_ctx, p.spec.num_batch, MAX_UBATCH)
            token_lists = await asyncio.gather(*(entry.runner.tokenize(text) for text in inputs))
            batch: list[list[int]] = []
            for tokens in token_lists:
                if len(tokens) > limit:
                    if req.truncate is False:
                        raise InvalidRequest("the input length exceeds the context length")
                    tokens = tokens[:limit]
                batch.append(tokens)
            vectors = await entry.runner.embed(batch, normalize=True)
        dims = req.dimensions or 0
        out = []
        for v in vectors:
            v = normalize(v)
            if 0 < dims < len(v):
                v = normalize(v[:dims])
            out.append(v)
        return {
            "model": req.model,
            "embeddings": out,
            "total_duration": int((time.perf_counter() - started) * 1e9),
            "load_duration": load_ns,
            "prompt_eval_count": sum(len(t) for t in batch),
        }

    async def embeddings(self, req: EmbeddingsRequest) -> dict[str, Any]:
        """The legacy single-prompt endpoint: an unnormalised vector."""
        model = self._embed_model(req.model)
        p = self.prepare(model, req.options, req.keep_alive)
        if not req.prompt:
            await self._load_only(p)
            return {"embedding": []}
        async with self._acquire(p) as entry:
            limit = min(p.spec.num_ctx, p.spec.num_batch, MAX_UBATCH)
            tokens = (await entry.runner.tokenize(req.prompt))[:limit]
            vectors = await entry.runner.embed([tokens], normalize=False)
        vector = vectors[0]
        if any(not math.isfinite(v) for v in vector):
            raise RunnerError("embedding contains NaN or Inf values")
        return {"embedding": vector}
