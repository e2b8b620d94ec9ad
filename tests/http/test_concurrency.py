"""Concurrency at the HTTP layer, with the scripted fake runner: clients that go away, deadlines,
the queue limit, a graceful drain, truncation and prompt-cache reporting, /api/ps."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from pollama.engine import Engine
from pollama.envconfig import Settings
from pollama.runner.fake import FakeRunner, fake_factory, prompt_text
from pollama.server.app import create_app
from pollama.store.store import Store
from tests.factories import add_model, write_tiny_gguf

BUSY = "server busy, please try again.  maximum pending requests exceeded"
LONG = {"num_predict": -1}


@asynccontextmanager
async def serving(store: Store, settings: Settings, **fake: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Engine, Any]]:
    factory = fake_factory(**fake)
    engine = Engine(settings, store=store, runner_factory=factory)
    app = create_app(engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:11434") as c:
        try:
            yield c, engine, factory
        finally:
            await engine.close()


class RawCall:
    """One request straight through the ASGI app, with a client that can hang up."""

    def __init__(self, app: Any, path: str, body: dict[str, Any], spec_version: str = "2.3") -> None:
        self.body = json.dumps(body).encode()
        self.sent_body = False
        self.hang_up = asyncio.Event()
        self.status: int | None = None
        self.chunks: list[bytes] = []
        self.got_chunk = asyncio.Event()
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": spec_version}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": b"", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 11434),
            "headers": [(b"host", b"127.0.0.1:11434"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(self.body)).encode())],
        }
        self.task = asyncio.create_task(app(scope, self.receive, self.send))

    async def receive(self) -> dict[str, Any]:
        if not self.sent_body:
            self.sent_body = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.hang_up.is_set():
            return  # what uvicorn does once the client has gone
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message.get("body"):
            self.chunks.append(message["body"])
            self.got_chunk.set()

    async def wait_chunks(self, n: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.chunks) < n:
                self.got_chunk.clear()
                await self.got_chunk.wait()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in b"".join(self.chunks).splitlines()]


async def eventually(cond: Any, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


def gen(prompt: str = "hello", **kw: Any) -> dict[str, Any]:
    return {"model": "tiny", "prompt": prompt, **kw}


# ---- clients that go away ------------------------------------------------------------------


async def test_disconnect_mid_stream_stops_generation_and_frees_the_slot(tiny_store: Store) -> None:
    settings = Settings(models=tiny_store.root, num_parallel=1)
    async with serving(tiny_store, settings, token_delay=0.05) as (c, engine, factory):
        call = RawCall(create_app(engine), "/api/generate", gen())
        await call.wait_chunks(3)
        runner: FakeRunner = factory.made[0]
        assert runner.active == 1
        call.hang_up.set()
        await eventually(lambda: runner.active == 0, timeout=0.5)  # well before the 2.2 s it had left
        await asyncio.wait_for(call.task, 1)
        entry = engine.scheduler.loaded[str(runner.spec.model_path)]
        assert entry.refs == 0 and entry.slots._value == 1 and len(engine.streams) == 0
        assert len(call.chunks) < 10
        r = await c.post("/api/generate", json=gen(stream=False, options={"num_predict": 3}))
        assert r.status_code == 200 and r.json()["eval_count"] == 3


CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])  # 2.4: the server does not report send errors
@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", {**CHAT, "stream": True}),
    ("/v1/chat/completions", {**CHAT, "stream": False}),
    ("/v1/completions", {"model": "tiny", "prompt": "hi", "stream": True}),
    ("/v1/responses", {"model": "tiny", "input": "hi", "stream": True}),
    ("/v1/messages", {**CHAT, "max_tokens": 200, "stream": True}),
    ("/api/chat", {**CHAT, "stream": True}),
])
async def test_a_client_that_leaves_a_compat_route_stops_generation(
        tiny_store: Store, path: str, body: dict[str, Any], spec_version: str) -> None:
    settings = Settings(models=tiny_store.root, num_parallel=1)
    async with serving(tiny_store, settings, token_delay=0.05) as (c, engine, factory):
        call = RawCall(create_app(engine), path, body, spec_version)
        await eventually(lambda: bool(factory.made) and factory.made[0].active == 1)
        await asyncio.sleep(0.15)
        call.hang_up.set()
        await eventually(lambda: factory.made[0].active == 0, timeout=0.5)  # it had ~2 s of tokens left
        await asyncio.wait_for(call.task, 1)
        assert engine.scheduler.loaded[str(factory.made[0].spec.model_path)].refs == 0
        assert len(engine.streams) == 0


async def test_a_client_that_leaves_while_queued_never_reaches_the_runner(tiny_store: Store) -> None:
    settings = Settings(models=tiny_store.root, num_parallel=1)
    async with serving(tiny_store, settings, token_delay=0.05) as (c, engine, factory):
        app = create_app(engine)
        first = RawCall(app, "/api/generate", gen("first"))
        await first.wait_chunks(1)
        queued = RawCall(app, "/api/generate", gen("second"))
        await eventually(lambda: engine.scheduler.pending == 1)
        queued.hang_up.set()
        await asyncio.wait_for(queued.task, 1)
        assert engine.scheduler.pending == 0 and queued.status is None  # nothing was sent: it had gone
        first.hang_up.set()
        await asyncio.wait_for(first.task, 1)
        prompts = [prompt_text(r) for r in factory.made[0].requests]
        assert len(prompts) == 1 and "first" in prompts[0]


async def test_a_non_streaming_client_that_leaves_stops_generation(tiny_store: Store) -> None:
    settings = Settings(models=tiny_store.root)
    async with serving(tiny_store, settings, token_delay=0.05) as (c, engine, factory):
        call = RawCall(create_app(engine), "/api/chat",
                       {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": False})
        await eventually(lambda: bool(factory.made) and factory.made[0].active == 1)
        await asyncio.sleep(0.15)
        call.hang_up.set()
        await eventually(lambda: factory.made[0].active == 0, timeout=0.5)
        await asyncio.wait_for(call.task, 1)
        assert engine.scheduler.loaded[str(factory.made[0].spec.model_path)].refs == 0


# ---- the queue limit -----------------------------------------------------------------------


async def test_a_full_queue_answers_503_and_the_accepted_requests_all_complete(tiny_store: Store) -> None:
    settings = Settings(models=tiny_store.root, num_parallel=2, max_queue=2)
    async with serving(tiny_store, settings, token_delay=0.01) as (c, engine, factory):
        await c.post("/api/generate", json=gen(""))  # load first, so nothing waits on a load
        results = await asyncio.gather(*[
            c.post("/api/generate", json=gen(f"request {i}", stream=False, options={"num_predict": 8}))
            for i in range(7)
        ])
        ok = [r for r in results if r.status_code == 200]
        busy = [r for r in results if r.status_code == 503]
        assert len(ok) == 4 and len(busy) == 3  # 2 running + 2 queued; the rest refused at once
        assert all(r.json() == {"error": BUSY} for r in busy)
        assert all(r.json()["done"] and r.json()["eval_count"] == 8 for r in ok)
        assert len(factory.made[0].requests) == 4 and factory.made[0].max_active == 2


# ---- deadline ------------------------------------------------------------------------------


async def test_request_timeout_ends_a_stream_with_an_error_line_and_frees_the_slot(tiny_store: Store) -> None:
    settings = Settings(models=tiny_store.root, request_timeout=0.3)
    async with serving(tiny_store, settings, token_delay=0.05) as (c, engine, factory):
        r = await c.post("/api/generate", json=gen())
        lines = [json.loads(x) for x in r.text.splitlines()]
        assert r.status_code == 200 and lines[-1] == {"error": "request timed out after 0.3s (POLLAMA_REQUEST_TIMEOUT)"}
        assert 2 <= len(lines) < 15 and not any(x.get("done") for x in lines)
        assert factory.made[0].active == 0 and len(engine.streams) == 0
        r = await c.post("/api/generate", json=gen(stream=False, options={"num_predict": 2}))
        assert r.status_code == 200


async def test_request_timeout_before_the_first_token_is_504(tiny_store: Store) -> None:
    settings = Settings(models=tiny_store.root, request_timeout=0.1)
    async with serving(tiny_store, settings, load_delay=0.5) as (c, engine, factory):
        r = await c.post("/api/generate", json=gen())
        assert r.status_code == 504 and r.json() == {"error": "request timed out after 0.1s (POLLAMA_REQUEST_TIMEOUT)"}
        assert engine.scheduler.pending == 0


# ---- graceful drain ------------------------------------------------------------------------


async def test_drain_refuses_new_requests_and_ends_running_streams_with_an_error_line(tiny_store: Store) -> None:
    settings = Settings(models=tiny_store.root)
    async with serving(tiny_store, settings, token_delay=0.05) as (c, engine, factory):
        call = RawCall(create_app(engine), "/api/generate", gen())
        await call.wait_chunks(2)
        drain = asyncio.create_task(engine.drain(0.1))
        await asyncio.sleep(0)
        r = await c.post("/api/generate", json=gen())
        assert r.status_code == 503 and r.json() == {"error": "server is shutting down"}
        await drain
        await asyncio.wait_for(call.task, 1)
        assert call.lines()[-1] == {"error": "server is shutting down"}
        assert factory.made[0].active == 0


async def test_drain_lets_requests_that_finish_in_time_finish(tiny_store: Store) -> None:
    settings = Settings(models=tiny_store.root)
    async with serving(tiny_store, settings, token_delay=0.01) as (c, engine, factory):
        call = RawCall(create_app(engine), "/api/generate", gen(options={"num_predict": 10}))
        await call.wait_chunks(1)
        await engine.drain(5)
        await asyncio.wait_for(call.task, 1)
        assert call.lines()[-1]["done"] is True and call.lines()[-1]["eval_count"] == 10


# ---- no silent truncation ------------------------------------------------------------------


def long_chat(n: int = 4) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": "You are terse."}]
    for i in range(n):
        msgs.append({"role": "user", "content": f"question {i} " + "x" * 60})
        msgs.append({"role": "assistant", "content": f"answer {i} " + "y" * 60})
    msgs.append({"role": "user", "content": "last question"})
    return msgs


async def test_dropped_messages_are_reported_in_a_header_and_the_final_chunk(client: httpx.AsyncClient, factory: Any) -> None:
    body = {"model": "tiny", "messages": long_chat(), "options": {"num_ctx": 300, "num_predict": 4}}
    r = await client.post("/api/chat", json=body)
    final = [json.loads(x) for x in r.text.splitlines()][-1]
    dropped = final["truncated"]["dropped_messages"]
    assert r.headers["X-Pollama-Truncated"] == f"dropped_messages={dropped}" and dropped >= 2
    prompt = prompt_text(factory.made[0].requests[-1])
    assert "You are terse." in prompt and "last question" in prompt and "question 0" not in prompt
    r = await client.post("/api/chat", json={**body, "stream": False})
    assert r.headers["X-Pollama-Truncated"] == f"dropped_messages={dropped}" and r.json()["truncated"] == final["truncated"]


async def test_truncated_prompt_tokens_are_reported(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/generate", json=gen("z" * 500, raw=True, stream=False, options={"num_ctx": 128, "num_predict": 1}))
    assert r.status_code == 200
    assert r.json()["truncated"] == {"prompt_tokens": 500, "kept_tokens": 127}
    assert r.headers["X-Pollama-Truncated"] == "prompt_tokens=500, kept_tokens=127"


async def test_a_prompt_that_fits_has_no_truncation_marks(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/generate", json=gen(stream=False))
    assert "X-Pollama-Truncated" not in r.headers and "truncated" not in r.json()


async def test_truncate_false_is_a_400_with_token_counts(client: httpx.AsyncClient) -> None:
    body = {"model": "tiny", "messages": long_chat(), "truncate": False, "options": {"num_ctx": 300}}
    r = await client.post("/api/chat", json=body)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err.startswith("the prompt is longer than the context length") and "context: 300 tokens)" in err
    assert int(err.split("(prompt: ")[1].split(" ")[0]) > 300


# ---- prompt cache --------------------------------------------------------------------------


async def test_prompt_cache_reuse_is_visible_on_the_next_turn(tiny_store: Store) -> None:
    settings = Settings(models=tiny_store.root)
    async with serving(tiny_store, settings, prompt_cache=True) as (c, engine, factory):
        msgs = [{"role": "system", "content": "A long shared system prompt. " * 10},
                {"role": "user", "content": "first"}]
        one = (await c.post("/api/chat", json={"model": "tiny", "messages": msgs, "stream": False})).json()
        assert "prompt_cache_count" not in one
        msgs += [one["message"], {"role": "user", "content": "second"}]
        two = (await c.post("/api/chat", json={"model": "tiny", "messages": msgs, "stream": False})).json()
        total = len(factory.made[0].requests[-1].prompt)
        assert two["prompt_cache_count"] > one["prompt_eval_count"] - 5
        assert two["prompt_eval_count"] + two["prompt_cache_count"] == total
        assert two["prompt_eval_count"] < total / 3


# ---- /api/ps -------------------------------------------------------------------------------


async def test_ps_lists_loaded_models_most_remaining_time_first(tiny_store: Store, tmp_path: Path) -> None:
    add_model(tiny_store, "other", write_tiny_gguf(tmp_path / "other.gguf", ctx=1024))
    settings = Settings(models=tiny_store.root)
    async with serving(tiny_store, settings) as (c, engine, factory):
        assert (await c.get("/api/ps")).json() == {"models": []}
        await c.post("/api/generate", json=gen(stream=False, keep_alive="1m", options={"num_ctx": 512}))
        await c.post("/api/generate", json={"model": "other", "prompt": "x", "stream": False, "keep_alive": "1h"})
        models = (await c.get("/api/ps")).json()["models"]
        assert [m["name"] for m in models] == ["other:latest", "tiny:latest"]
        now = dt.datetime.now().astimezone()
        for m, ahead, ctx in zip(models, (3600, 60), (1024, 512)):
            assert set(m) == {"name", "model", "size", "digest", "details", "expires_at", "size_vram", "context_length"}
            expires = dt.datetime.fromisoformat(m["expires_at"])
            assert abs((expires - now).total_seconds() - ahead) < 5
            assert m["size"] > 0 and m["size_vram"] == 0 and m["context_length"] == ctx
        await c.post("/api/generate", json=gen(keep_alive=-1))
        tiny = (await c.get("/api/ps")).json()["models"][0]
        assert tiny["name"] == "tiny:latest" and dt.datetime.fromisoformat(tiny["expires_at"]).year > 2300
