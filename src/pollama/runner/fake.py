"""A scripted runner for fast tests of the layers above the engine.

Tokens are Unicode code points (``tokenize("hi") == [104, 105]``), so counts are predictable.
What it "generates" comes from a ``responder(prompt_text, request) -> str``; it streams that text
one character per token, honouring ``n_predict`` and stop strings, and reports timings from an
injectable per-token delay. It records every request so tests can assert on what was sent.
With ``prompt_cache=True`` it imitates llama.cpp's slot cache: the prefix a prompt shares with the
previous request's prompt and output is reported as ``cache_n`` and not counted in ``prompt_n``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

from pollama.errors import RunnerError
from pollama.runner.base import CompletionChunk, CompletionRequest, RunnerSpec

_pids = itertools.count(100000)

Responder = Callable[[str, CompletionRequest], str]


FOX = "The quick brown fox jumps over the lazy dog."


def prompt_text(req: CompletionRequest) -> str:
    """The prompt a request carried, as text (the fake's tokens are code points)."""
    return req.prompt if isinstance(req.prompt, str) else "".join(chr(t) for t in req.prompt)


def echo_responder(prompt: str, req: CompletionRequest) -> str:
    """The default script: the same sentence whatever the prompt."""
    return FOX


class FakeRunner:
    def __init__(
        self,
        spec: RunnerSpec,
        responder: Responder = echo_responder,
        token_delay: float = 0.0,
        load_delay: float = 0.0,
        memory: int = 100 << 20,
        fail_start: str | None = None,
        crash_after: int | None = None,
        prompt_cache: bool = False,
    ) -> None:
        self.spec = spec
        self.responder = responder
        self.token_delay = token_delay
        self.load_delay = load_delay
        self._memory = memory
        self.fail_start = fail_start
        self._pid: int | None = None
        self._alive = False
        self.requests: list[CompletionRequest] = []
        self.embed_batches: list[list[Any]] = []
        self.active = 0
        self.max_active = 0
        self.crash_after = crash_after  # die after streaming this many tokens
        self.prompt_cache = prompt_cache
        self._cached: list[int] = []

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def memory_bytes(self) -> int:
        return self._memory if self._alive else 0

    def alive(self) -> bool:
        return self._alive

    async def start(self) -> None:
        if self.load_delay:
            await asyncio.sleep(self.load_delay)
        if self.fail_start:
            raise RunnerError(self.fail_start)
        self._pid = next(_pids)
        self._alive = True

    async def stop(self) -> None:
        self._alive = False

    def kill(self) -> None:
        """Simulate the process dying."""
        self._alive = False

    def _check(self) -> None:
        if not self._alive:
            raise RunnerError("llama runner process no longer running: -9")

    async def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        self._check()
        return [ord(c) for c in text]

    async def detokenize(self, tokens: list[int]) -> str:
        self._check()
        return "".join(chr(t) for t in tokens)

    async def embed(self, inputs: list[str] | list[list[int]], normalize: bool = True) -> list[list[float]]:
        """A deterministic 3-vector per input: (length, checksum mod 97, 1); records each batch."""
        self._check()
        self.embed_batches.append(list(inputs))
        out = []
        for item in inputs:
            codes = [ord(c) for c in item] if isinstance(item, str) else list(item)
            v = [float(len(codes)), float(sum(codes) % 97), 1.0]
            if normalize:
                n = sum(x * x for x in v) ** 0.5
                v = [x / n for x in v]
            out.append(v)
        return out

    async def completion(self, req: CompletionRequest) -> AsyncIterator[CompletionChunk]:
        self._check()
        self.requests.append(req)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            ids = [ord(ch) for ch in req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
            prompt = "".join(chr(t) for t in ids)
            text = self.responder(prompt, req)
            limit = req.n_predict if req.n_predict >= 0 else len(text)
            if limit > self.spec.num_ctx - len(ids):  # like llama.cpp without context shift
                limit = max(0, self.spec.num_ctx - len(ids))
            out, stop_type = "", "eos"
            for i, ch in enumerate(text):
                if i >= limit:
                    stop_type = "limit"
                    break
                candidate = out + ch
                hit = next((s for s in req.stop if s and s in candidate), None)
                if hit:
                    stop_type = "word"
                    break
                if self.crash_after is not None and i >= self.crash_after:
                    self._alive = False
                    raise RunnerError("llama runner process no longer running: -9")
                if self.token_delay:
                    await asyncio.sleep(self.token_delay)
                out = candidate
                yield CompletionChunk(content=ch, tokens=[ord(ch)])
            else:
                if len(text) >= limit and limit < len(text):
                    stop_type = "limit"
            n = len(out)
            cache_n = 0
            if self.prompt_cache:
                while (cache_n < min(len(self._cached), len(ids) - 1)
                       and self._cached[cache_n] == ids[cache_n]):
                    cache_n += 1
                self._cached = ids + [ord(ch) for ch in out]
            yield CompletionChunk(
                done=True, stop_type=stop_type, prompt_n=len(ids) - cache_n, prompt_ms=1.0,
                cache_n=cache_n, predicted_n=n, predicted_ms=max(1.0, n * self.token_delay * 1000),
            )
        finally:
            self.active -= 1


def fake_factory(**kwargs: Any) -> Callable[[RunnerSpec], FakeRunner]:
    """A runner factory for the scheduler that builds FakeRunners and remembers them."""
    made: list[FakeRunner] = []

    def factory(spec: RunnerSpec) -> FakeRunner:
        r = FakeRunner(spec, **kwargs)
        made.append(r)
        return r

    factory.made = made  # type: ignore[attr-defined]
    return factory
