"""A scripted Ollama-compatible server for fast tests of the toolkit's measurement logic.

It speaks the native ``/api/generate`` and ``/api/chat`` (streaming and not) with Ollama's timing
fields, and can inject each kind of variation the determinism profiler must attribute:
sampling noise (no seed), a seed that is ignored, batch-dependent divergence (only while another
request is in flight), and a first call that differs (a cache effect). Chat replies follow a
persona (``guessing`` over-infers, ``clarifying`` asks). ``format`` requests get valid JSON;
prompt-only JSON requests get invalid JSON until the prompt carries re-ask feedback.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

WORDS = "sea wave salt wind moon tide shell foam blue deep light song dawn sand".split()


@dataclass
class FakeOllama:
    token_delay: float = 0.0
    seed_ignored: bool = False
    num_predict_ignored: bool = False  # generate past the requested cap (a misbehaving server)
    batch_variance: bool = False
    first_call_differs: bool = False
    persona: str = "guessing"
    fail_status: int | None = None
    overlap: float = 0.02  # each request waits this long so simultaneous requests overlap
    calls: int = 0
    active: int = 0
    cold: bool = True
    requests: list[dict[str, Any]] = field(default_factory=list)
    _noise: itertools.count = field(default_factory=lambda: itertools.count(1000))

    def text_for(self, body: dict[str, Any], concurrent: bool, slot: int = 1) -> str:
        opts = body.get("options") or {}
        prompt = body.get("prompt") or (body.get("messages") or [{}])[-1].get("content", "")
        if "messages" in body and "JSON" not in prompt and "label" not in prompt:
            if self.persona == "clarifying":
                return "Could you share the plan you want me to review? 请提供更多信息。"
            return "This plan is very reasonable because it balances cost and speed well."
        if "label" in prompt:  # a judge request
            return json.dumps({"label": "asks" if "Could you" in prompt else "answers"})
        if body.get("format"):
            return json.dumps({"name": "Ann", "age": 30})
        if "JSON" in prompt:
            return '{"name": "Ann", "age": 30}' if "rejected" in prompt else 'Sure! {"name": "Ann"}'
        temp = float(opts.get("temperature", 0.8))
        seed = opts.get("seed")
        if temp == 0:
            words = [WORDS[(len(prompt) + i) % len(WORDS)] for i in range(int(opts.get("num_predict", 8)))]
            if self.first_call_differs and self.calls == 1:
                words[-1] = "first"
        else:
            rng = random.Random(seed if seed is not None and not self.seed_ignored else next(self._noise))
            words = [rng.choice(WORDS) for _ in range(int(opts.get("num_predict", 8)))]
        if self.num_predict_ignored:
            words += ["more"] * 5
        if self.batch_variance and concurrent:
            words[-1] = f"slot{slot}"  # the numerics depend on the request's place in the batch
        return " ".join(words)

    def app(self) -> Starlette:
        async def version(_: Request) -> Response:
            return JSONResponse({"version": "0.0.0-fake"})

        async def tags(_: Request) -> Response:
            return JSONResponse({"models": [{"name": "fake:1", "model": "fake:1", "digest": "sha256:" + "0" * 64}]})

        async def handle(request: Request) -> Response:
            body = await request.json()
            self.requests.append(body)
            if self.fail_status:
                return JSONResponse({"error": "injected"}, status_code=self.fail_status)
            if body.get("keep_alive") == 0 and "prompt" not in body and "messages" not in body:
                self.cold = True
                return JSONResponse({"model": body["model"], "response": "", "done": True, "done_reason": "unload"})
            self.calls += 1
            self.active += 1
            slot = self.active
            start = time.perf_counter()
            load = 0.0
            if self.cold:
                load, self.cold = 0.05, False
                await asyncio.sleep(load)
            await asyncio.sleep(self.overlap)
            concurrent = self.active > 1
            text = self.text_for(body, concurrent, slot)
            pieces = [w + " " for w in text.split(" ")]
            pieces[-1] = pieces[-1].rstrip()
            key = "message" if request.url.path == "/api/chat" else "response"

            def chunk(piece: str) -> dict[str, Any]:
                c: dict[str, Any] = {"model": body["model"], "done": False}
                c[key] = {"role": "assistant", "content": piece} if key == "message" else piece
                return c

            def final(elapsed: float) -> dict[str, Any]:
                c = chunk("")
                c.update(done=True, done_reason="stop", total_duration=int(elapsed * 1e9), load_duration=int(load * 1e9),
                         prompt_eval_count=7, prompt_eval_duration=int(0.001 * 1e9), eval_count=len(pieces),
                         eval_duration=max(1, int((elapsed - load) * 1e9)))
                return c

            if body.get("stream", True):
                async def gen() -> Any:
                    try:
                        for p in pieces:
                            await asyncio.sleep(self.token_delay)
                            yield json.dumps(chunk(p)) + "\n"
                        yield json.dumps(final(time.perf_counter() - start)) + "\n"
                    finally:
                        self.active -= 1

                return StreamingResponse(gen(), media_type="application/x-ndjson")
            await asyncio.sleep(self.token_delay * len(pieces))
            self.active -= 1
            doc = final(time.perf_counter() - start)
            doc[key] = {"role": "assistant", "content": text} if key == "message" else text
            return JSONResponse(doc)

        return Starlette(routes=[
            Route("/api/version", version), Route("/api/tags", tags),
            Route("/api/generate", handle, methods=["POST"]), Route("/api/chat", handle, methods=["POST"]),
        ])
