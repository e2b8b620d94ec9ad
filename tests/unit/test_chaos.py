"""Tests for pollama.chaos: each fault as seen by an httpx client through a real proxy in front of
a fake Ollama upstream (both served by uvicorn on loopback ports), script and rate modes, the
control endpoints, config parsing, and the Guard recovering through the proxy."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from pollama.chaos import (
    BackgroundServer,
    ChaosConfig,
    ChaosConfigError,
    ChaosProxy,
    Delay,
    DropFault,
    ErrorFault,
    LatencyFault,
    create_chaos_app,
    is_loopback,
    parse_duration,
    parse_fault_spec,
    parse_listen,
    run_proxy,
)
from pollama.guard import Backoff, CircuitBreaker, Guard, GuardFailed, ollama_text

TOKENS = ["The", " sky", " is", " blue", "."]

# One client for the whole module: creating an httpx client per request costs tens of ms.
HTTP = httpx.Client(timeout=10)


@pytest.fixture(scope="module", autouse=True)
def _close_client() -> Iterator[None]:
    yield
    HTTP.close()

# ---------------------------------------------------------------- a fake Ollama upstream


def _chunk(piece: str, done: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {"model": "fake:1b", "created_at": "2025-01-01T00:00:00.000000Z"}
    data.update(response=piece, done=done)
    if done:
        data.update(done_reason="stop", total_duration=1000, eval_count=len(TOKENS), eval_duration=900)
    return data


def fake_upstream() -> Starlette:
    """Streams TOKENS like /api/generate (NDJSON) and /v1/chat/completions (SSE); counts hits."""
    hits: list[str] = []

    async def generate(request: Request) -> Response:
        hits.append(request.url.path)
        body = await request.json()
        gap = float(body.get("x_gap", 0.0))
        if body.get("stream") is False:
            return JSONResponse({**_chunk("".join(TOKENS), done=True)})

        async def lines() -> AsyncIterator[bytes]:
            for i, piece in enumerate(TOKENS):
                if gap and i:
                    await asyncio.sleep(gap)
                yield (json.dumps(_chunk(piece)) + "\n").encode()
            yield (json.dumps(_chunk("", done=True)) + "\n").encode()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def chat_completions(request: Request) -> Response:
        hits.append(request.url.path)

        async def events() -> AsyncIterator[bytes]:
            for piece in TOKENS:
                data = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": piece}}]}
                yield f"data: {json.dumps(data)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def tags(request: Request) -> Response:
        hits.append(request.url.path)
        return JSONResponse({"models": []})

    async def root(request: Request) -> Response:
        hits.append(request.url.path)
        return PlainTextResponse("Ollama is running")

    app = Starlette(
        routes=[
            Route("/", root, methods=["GET", "HEAD"]),
            Route("/api/generate", generate, methods=["POST"]),
            Route("/api/tags", tags, methods=["GET"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        ]
    )
    app.state.hits = hits
    return app


@pytest.fixture(scope="module")
def upstream() -> Iterator[BackgroundServer]:
    with BackgroundServer(fake_upstream()) as server:
        yield server


@pytest.fixture
def hits(upstream: BackgroundServer) -> list[str]:
    recorded: list[str] = upstream.app.state.hits
    recorded.clear()
    return recorded


class RecordingSleep:
    """An async sleep that records delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


def generate(url: str, stream: bool = True, **extra: Any) -> httpx.Response:
    body = {"model": "fake:1b", "prompt": "hi", "stream": stream, **extra}
    return HTTP.post(f"{url}/api/generate", json=body, timeout=10)


def stream_lines(url: str) -> tuple[list[str], BaseException | None]:
    """The lines a streaming client receives, and the error that ended the stream, if any."""
    lines: list[str] = []
    try:
        with HTTP.stream("POST", f"{url}/api/generate", json={"model": "fake:1b", "prompt": "hi"}, timeout=10) as r:
            for line in r.iter_lines():
                lines.append(line)
    except httpx.HTTPError as exc:
        return lines, exc
    return lines, None


def expected_lines() -> list[str]:
    return [json.dumps(_chunk(p)) for p in TOKENS] + [json.dumps(_chunk("", done=True))]


# ---------------------------------------------------------------- pass-through


def test_passthrough_preserves_ndjson_and_counts(upstream: BackgroundServer, hits: list[str]) -> None:
    with ChaosProxy(upstream.url) as proxy:
        lines, error = stream_lines(proxy.url)
        assert error is None and lines == expected_lines()
        assert generate(proxy.url, stream=False).json()["response"] == "The sky is blue."
        assert HTTP.get(f"{proxy.url}/", timeout=5).text == "Ollama is running"
        stats = proxy.stats()
    assert stats["requests"] == 3 and stats["passed_through"] == 3
    assert sum(stats["faults"].values()) == 0
    assert hits == ["/api/generate", "/api/generate", "/"]


def test_streaming_is_relayed_chunk_by_chunk(upstream: BackgroundServer) -> None:
    with ChaosProxy(upstream.url) as proxy:
        arrivals: list[float] = []
        start = time.monotonic()
        body = {"model": "fake:1b", "prompt": "hi", "x_gap": 0.1}
        with HTTP.stream("POST", f"{proxy.url}/api/generate", json=body, timeout=10) as r:
            for _ in r.iter_lines():
                arrivals.append(time.monotonic() - start)
    assert len(arrivals) == 6
    assert arrivals[0] < 0.35 < arrivals[-1]  # the first line arrives long before the last


def test_sse_passthrough(upstream: BackgroundServer) -> None:
    with ChaosProxy(upstream.url) as proxy:
        body = {"model": "m", "messages": [], "stream": True}
        r = HTTP.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=5)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [e for e in r.text.split("\n\n") if e]
    assert len(events) == 6 and events[-1] == "data: [DONE]"


# ---------------------------------------------------------------- faults, one by one


def test_latency_fixed_is_real(upstream: BackgroundServer) -> None:
    with ChaosProxy(upstream.url, {"faults": [{"kind": "latency", "delay": "300ms"}]}) as proxy:
        start = time.monotonic()
        assert generate(proxy.url, stream=False).status_code == 200
        assert time.monotonic() - start >= 0.3
        assert proxy.stats()["faults"]["latency"] == 1


def test_latency_distribution_is_seeded(upstream: BackgroundServer) -> None:
    config = {"seed": 7, "faults": [{"kind": "latency", "delay": "normal:200ms,50ms"}]}
    runs = []
    for _ in range(2):
        sleep = RecordingSleep()
        with ChaosProxy(upstream.url, config, sleep=sleep) as proxy:
            for _ in range(5):
                generate(proxy.url, stream=False)
        runs.append(sleep.delays)
    assert runs[0] == runs[1] and len(runs[0]) == 5
    assert len(set(runs[0])) == 5 and all(0.0 <= d < 0.5 for d in runs[0])


@pytest.mark.parametrize("status", [500, 503, 429])
def test_error_status_with_ollama_body_never_reaches_upstream(
    upstream: BackgroundServer, hits: list[str], status: int
) -> None:
    with ChaosProxy(upstream.url, {"faults": [{"kind": "error", "status": status}]}) as proxy:
        r = generate(proxy.url)
    assert r.status_code == status
    assert set(r.json()) == {"error"} and isinstance(r.json()["error"], str)
    if status == 503:
        assert r.json()["error"] == "server busy, please try again.  maximum pending requests exceeded"
    assert hits == []


def test_error_uses_openai_shape_under_v1(upstream: BackgroundServer) -> None:
    with ChaosProxy(upstream.url, {"faults": [{"kind": "error", "status": 500, "message": "boom"}]}) as proxy:
        r = HTTP.post(f"{proxy.url}/v1/chat/completions", json={}, timeout=5)
    assert r.status_code == 500 and r.json()["error"]["message"] == "boom"


def test_error_mid_stream_is_a_last_line(upstream: BackgroundServer) -> None:
    config = {"faults": [{"kind": "error", "after_lines": 2, "message": "runner died"}]}
    with ChaosProxy(upstream.url, config) as proxy:
        lines, error = stream_lines(proxy.url)
    assert error is None
    assert lines[:2] == expected_lines()[:2]
    assert lines[2:] == [json.dumps({"error": "runner died"})]


def test_drop_after_lines(upstream: BackgroundServer) -> None:
    with ChaosProxy(upstream.url, {"faults": [{"kind": "drop", "after_lines": 2}]}) as proxy:
        lines, error = stream_lines(proxy.url)
        assert proxy.stats()["faults"]["drop"] == 1
    assert lines == expected_lines()[:2]
    assert isinstance(error, httpx.RemoteProtocolError)


def test_drop_after_bytes(upstream: BackgroundServer) -> None:
    received = bytearray()
    with ChaosProxy(upstream.url, {"faults": [{"kind": "drop", "after_bytes": 130}]}) as proxy:
        with pytest.raises(httpx.RemoteProtocolError):
            with HTTP.stream("POST", f"{proxy.url}/api/generate", json={"prompt": "hi"}, timeout=5) as r:
                for chunk in r.iter_raw():
                    received.extend(chunk)
    full = "".join(line + "\n" for line in expected_lines()).encode()
    assert bytes(received) == full[:130]


def test_truncate_cuts_a_line_in_half_then_closes(upstream: BackgroundServer) -> None:
    with ChaosProxy(upstream.url, {"faults": [{"kind": "truncate", "after_lines": 1}]}) as proxy:
        r = generate(proxy.url)
    assert r.status_code == 200
    first, partial = r.text.split("\n")
    assert first == expected_lines()[0]
    assert expected_lines()[1].startswith(partial) and 0 < len(partial) < len(expected_lines()[1])
    with pytest.raises(json.JSONDecodeError):
        json.loads(partial)


def test_truncate_non_streaming_json(upstream: BackgroundServer) -> None:
    with ChaosProxy(upstream.url, {"faults": [{"kind": "truncate"}]}) as proxy:
        r = generate(proxy.url, stream=False)
    with pytest.raises(json.JSONDecodeError):
        r.json()


def test_malformed_line_then_stream_continues(upstream: BackgroundServer) -> None:
    with ChaosProxy(upstream.url, {"faults": [{"kind": "malformed", "after_lines": 1}]}) as proxy:
        lines, error = stream_lines(proxy.url)
    assert error is None and len(lines) == 6
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[1])
    assert lines[0] == expected_lines()[0] and lines[2:] == expected_lines()[2:]


def test_slow_tokens_delay_every_chunk_after_the_first(upstream: BackgroundServer) -> None:
    sleep = RecordingSleep()
    with ChaosProxy(upstream.url, {"faults": [{"kind": "slow_tokens", "delay": "40ms"}]}, sleep=sleep) as proxy:
        lines, _ = stream_lines(proxy.url)
    assert len(lines) == 6 and sleep.delays == [0.04] * 5


def test_slow_tokens_in_real_time(upstream: BackgroundServer) -> None:
    with ChaosProxy(upstream.url, {"faults": [{"kind": "slow_tokens", "delay": "50ms"}]}) as proxy:
        start = time.monotonic()
        lines, _ = stream_lines(proxy.url)
    assert len(lines) == 6 and time.monotonic() - start >= 0.25


def test_stall_once(upstream: BackgroundServer) -> None:
    sleep = RecordingSleep()
    config = {"faults": [{"kind": "stall", "after_lines": 3, "delay": "2s"}]}
    with ChaosProxy(upstream.url, config, sleep=sleep) as proxy:
        lines, _ = stream_lines(proxy.url)
        assert proxy.stats()["faults"]["stall"] == 1
    assert lines == expected_lines() and sleep.delays == [2.0]


def test_fault_beyond_the_end_does_not_fire(upstream: BackgroundServer) -> None:
    with ChaosProxy(upstream.url, {"faults": [{"kind": "drop", "after_lines": 50}]}) as proxy:
        lines, error = stream_lines(proxy.url)
        assert proxy.stats()["faults"]["drop"] == 0
    assert error is None and lines == expected_lines()


# ---------------------------------------------------------------- rate and script modes


def statuses(url: str, n: int) -> list[int]:
    return [generate(url, stream=False).status_code for _ in range(n)]


def test_rate_mode_is_seeded_and_counted(upstream: BackgroundServer) -> None:
    config = {"seed": 42, "faults": [{"kind": "error", "status": 503, "rate": 0.5}]}
    with ChaosProxy(upstream.url, config) as proxy:
        first = statuses(proxy.url, 40)
        stats = proxy.stats()
        proxy.reset()
        second = statuses(proxy.url, 40)
        proxy.configure({**config, "seed": 43})
        third = statuses(proxy.url, 40)
    assert first == second != third
    assert stats["faults"]["error"] == first.count(503)
    assert 8 <= first.count(503) <= 32
    assert stats["passed_through"] == first.count(200)


def test_rate_zero_never_fires(upstream: BackgroundServer) -> None:
    with ChaosProxy(upstream.url, {"faults": [{"kind": "error", "rate": 0.0}]}) as proxy:
        assert statuses(proxy.url, 10) == [200] * 10


def test_script_mode_then_rates(upstream: BackgroundServer) -> None:
    config = {
        "script": [{"kind": "error", "status": 503}, [{"kind": "error", "status": 500}], None, "pass"],
        "faults": [{"kind": "error", "status": 429}],
    }
    with ChaosProxy(upstream.url, config) as proxy:
        assert statuses(proxy.url, 6) == [503, 500, 200, 200, 429, 429]


def test_script_loops(upstream: BackgroundServer) -> None:
    config = ChaosConfig.from_cli(script=["error:503", "pass"], loop_script=True)
    with ChaosProxy(upstream.url, config) as proxy:
        assert statuses(proxy.url, 5) == [503, 200, 503, 200, 503]


def test_paths_limit_which_requests_are_eligible(upstream: BackgroundServer) -> None:
    config = {"paths": ["/api/generate"], "script": [{"kind": "error"}]}
    with ChaosProxy(upstream.url, config) as proxy:
        assert HTTP.get(f"{proxy.url}/api/tags", timeout=5).status_code == 200
        assert generate(proxy.url).status_code == 500  # still the first *eligible* request
        stats = proxy.stats()
    assert stats["requests"] == 2 and stats["eligible"] == 1


# ---------------------------------------------------------------- control endpoints


def test_control_endpoints(upstream: BackgroundServer) -> None:
    with ChaosProxy(upstream.url) as proxy:
        generate(proxy.url, stream=False)
        stats = HTTP.get(f"{proxy.url}/_chaos/stats", timeout=5).json()
        assert stats["requests"] == 1 and stats["faults"]["error"] == 0

        new = {"seed": 1, "script": [{"kind": "error", "status": 503}]}
        r = HTTP.post(f"{proxy.url}/_chaos/config", json=new, timeout=5)
        assert r.status_code == 200 and r.json()["script"][0][0]["status"] == 503
        assert HTTP.get(f"{proxy.url}/_chaos/stats", timeout=5).json()["requests"] == 0  # reset
        assert generate(proxy.url).status_code == 503
        assert HTTP.get(f"{proxy.url}/_chaos/config", timeout=5).json()["seed"] == 1

        bad = HTTP.post(f"{proxy.url}/_chaos/config", json={"faults": [{"kind": "error", "rate": 2}]}, timeout=5)
        assert bad.status_code == 400 and "faults[0].rate" in bad.json()["error"]
        unknown = HTTP.post(f"{proxy.url}/_chaos/config", json={"faults": [{"kind": "explode"}]}, timeout=5)
        assert unknown.status_code == 400 and "unknown fault kind 'explode'" in unknown.json()["error"]
        junk = HTTP.post(f"{proxy.url}/_chaos/config", content=b"{nope", timeout=5)
        assert junk.status_code == 400

        assert HTTP.delete(f"{proxy.url}/_chaos/stats", timeout=5).json()["requests"] == 0
        assert generate(proxy.url).status_code == 503  # script position was reset too


def test_unreachable_upstream_is_a_502_with_ollama_body() -> None:
    with BackgroundServer(Starlette()) as dead:
        dead_url = dead.url
    with ChaosProxy(dead_url) as proxy:
        r = generate(proxy.url)
        assert proxy.stats()["upstream_errors"] == 1
    assert r.status_code == 502 and "upstream unreachable" in r.json()["error"]


async def test_app_in_process_with_mock_transport() -> None:
    """The ASGI app also runs without sockets: httpx ASGITransport in, MockTransport out."""

    def upstream_handler(request: httpx.Request) -> httpx.Response:
        body = httpx.ByteStream(b'{"response":"a"}\n{"response":"b"}\n')
        return httpx.Response(200, stream=body, headers={"content-type": "application/x-ndjson"})

    config = ChaosConfig(faults=[parse_fault_spec("malformed:0")])
    app = create_chaos_app("http://upstream.invalid", config, transport=httpx.MockTransport(upstream_handler))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy") as client:
        r = await client.post("/api/generate", json={})
    assert r.text == '{"respon\n{"response":"b"}\n'
    assert app.state.chaos.snapshot()["faults"]["malformed"] == 1


# ---------------------------------------------------------------- config and parsing


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("error:503@0.2", ErrorFault(status=503, rate=0.2)),
        ("error:500,lines=3", ErrorFault(status=500, after_lines=3)),
        ("error", ErrorFault()),
        ("drop:3", DropFault(after_lines=3)),
        ("drop:bytes=100@0.5", DropFault(after_bytes=100, rate=0.5)),
        ("latency:normal:200ms,50ms", LatencyFault(delay=Delay(dist="normal", a=0.2, b=0.05))),
        ("latency:1.5s", LatencyFault(delay=Delay(a=1.5))),
    ],
)
def test_parse_fault_spec(spec: str, expected: Any) -> None:
    assert parse_fault_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("boom:1", "unknown fault kind 'boom'"),
        ("error:503@1.5", "rate: Input should be less than or equal to 1"),
        ("error:503@x", "rate must be a number"),
        ("error:200", "status"),
        ("latency:", "needs a delay"),
        ("latency:gauss:1s", "unknown delay distribution 'gauss'"),
        ("latency:uniform:2s,1s", "low <= high"),
        ("stall:2", "LINES:DELAY"),
        ("drop:lines=1,bytes=2", "not both"),
    ],
)
def test_parse_fault_spec_errors_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(ChaosConfigError, match=message):
        parse_fault_spec(spec)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"faults": [{"kind": "boom"}]}, r"faults\[0\]\.kind: unknown fault kind 'boom'"),
        ({"faults": [{"kind": "error", "rate": -0.1}]}, r"faults\[0\]\.rate"),
        ({"script": [[{"kind": "latency", "delay": "normal:1s"}]]}, r"script\[0\]\[0\]\.delay: normal delay takes 2"),
        ({"faults": [{"rate": 0.5}]}, r"faults\[0\]: missing 'kind'"),
        ({"seeed": 1}, "seeed: Extra inputs"),
    ],
)
def test_config_errors_name_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ChaosConfigError, match=message):
        ChaosConfig.from_dict(data)


def test_config_from_files(tmp_path: Path) -> None:
    data = {"seed": 3, "faults": [{"kind": "error", "status": 503, "rate": 0.1}]}
    (tmp_path / "c.json").write_text(json.dumps(data))
    assert ChaosConfig.from_file(tmp_path / "c.json").faults[0].status == 503  # type: ignore[union-attr]
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(ChaosConfigError, match="top level"):
        ChaosConfig.from_file(tmp_path / "bad.json")
    import yaml  # noqa: F401  (a test dependency: the YAML config path must really be exercised)
    (tmp_path / "c.yaml").write_text("seed: 3\nscript:\n  - kind: error\n    status: 503\n  - pass\n")
    cfg = ChaosConfig.from_file(tmp_path / "c.yaml")
    assert len(cfg.script) == 2 and cfg.script[1] == []


def test_config_round_trips_through_json() -> None:
    faults = ["latency:uniform:1ms,2ms@0.3", "slow:exp:10ms", "stall:1:5s"]
    cfg = ChaosConfig.from_cli(faults, ["error:503+latency:1s", "pass"], seed=9)
    again = ChaosConfig.from_dict(json.loads(cfg.model_dump_json()))
    assert again == cfg


def test_delays_and_durations() -> None:
    rng = random.Random(0)
    assert parse_duration("500us") == pytest.approx(0.0005) and parse_duration("2m") == 120.0
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("soon")
    with pytest.raises(ValueError, match="negative"):
        parse_duration(-1)
    assert all(1.0 <= Delay.model_validate("uniform:1s,2s").sample(rng) <= 2.0 for _ in range(100))
    assert all(Delay.model_validate("normal:10ms,1s").sample(rng) >= 0.0 for _ in range(100))
    samples = [Delay.model_validate("exp:100ms").sample(rng) for _ in range(2000)]
    assert sum(samples) / len(samples) == pytest.approx(0.1, rel=0.15)
    assert str(Delay.model_validate("normal:1s,2s")) == "normal:1.0s,2.0s"


# ---------------------------------------------------------------- loopback only


def test_listen_parsing_and_loopback_policy() -> None:
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:8080") == ("::1", 8080)
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.com")
    with pytest.raises(ChaosConfigError, match="port"):
        parse_listen("127.0.0.1:http")


@pytest.mark.parametrize("listen", ["0.0.0.0:11435", "192.168.1.5:11435", "example.com:80"])
def test_run_proxy_refuses_non_loopback(listen: str) -> None:
    with pytest.raises(ChaosConfigError, match="non-loopback.*allow_non_loopback=True"):
        run_proxy("http://127.0.0.1:11434", listen)


def test_bad_upstream_url() -> None:
    with pytest.raises(ChaosConfigError, match="upstream"):
        create_chaos_app("127.0.0.1:11434")


# ---------------------------------------------------------------- the Guard through the proxy


class VirtualSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def generate_call(url: str) -> Any:
    def call(prompt: str) -> httpx.Response:
        body = {"model": "fake:1b", "prompt": prompt, "stream": False}
        return HTTP.post(f"{url}/api/generate", json=body, timeout=5)

    return call


def test_guard_retries_503s_through_the_proxy_and_succeeds(upstream: BackgroundServer) -> None:
    sleep = VirtualSleep()
    with ChaosProxy(upstream.url, ChaosConfig.from_cli(script=["error:503", "error:503", "pass"])) as proxy:
        guard = Guard(generate_call(proxy.url), extract=ollama_text, retries=3, sleep=sleep, rng=random.Random(1))
        result = guard.call("hi")
        assert proxy.stats()["faults"]["error"] == 2
    assert result.value == "The sky is blue." and result.source == "primary"
    assert result.attempts == 3 and len(sleep.delays) == 2
    retries = [e for e in result.events if e.kind == "retry"]
    assert all("HTTP 503" in (e.error or "") for e in retries)


def test_guard_retries_a_dropped_stream(upstream: BackgroundServer) -> None:
    def streamed(url: str) -> str:
        with HTTP.stream("POST", f"{url}/api/generate", json={"prompt": "hi"}, timeout=5) as r:
            return "".join(json.loads(line)["response"] for line in r.iter_lines())

    with ChaosProxy(upstream.url, ChaosConfig.from_cli(script=["drop:2", "pass"])) as proxy:
        guard = Guard(lambda: streamed(proxy.url), sleep=VirtualSleep())
        result = guard.call()
    assert result.value == "The sky is blue." and result.attempts == 2
    assert "RemoteProtocolError" in (next(e for e in result.events if e.kind == "retry").error or "")


def test_guard_breaker_opens_under_sustained_500s_and_falls_back(upstream: BackgroundServer) -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=3, window=30.0, cooldown=10.0, clock=lambda: now[0])
    with ChaosProxy(upstream.url, {"faults": [{"kind": "error", "status": 500}]}) as proxy:
        guard = Guard(
            generate_call(proxy.url),
            extract=ollama_text,
            retries=5,
            backoff=Backoff(base=0.01),
            breaker=breaker,
            fallbacks=[lambda prompt: "I can't answer right now."],
            clock=lambda: now[0],
            sleep=VirtualSleep(),
        )
        first = guard.call("hi")
        assert proxy.stats()["requests"] == 3 and breaker.state == "open"
        second = guard.call("hi")
        assert proxy.stats()["requests"] == 3  # open breaker: the proxy is not even contacted

        proxy.configure(ChaosConfig())  # the upstream recovers
        now[0] += 10.0
        third = guard.call("hi")
    assert first.source == second.source == "fallback[0]"
    assert first.value == "I can't answer right now."
    assert "breaker_open" in [e.kind for e in first.events]
    assert [e.kind for e in second.events][0] == "breaker_open"
    assert third.source == "primary" and third.value == "The sky is blue." and breaker.state == "closed"
    assert [e.kind for e in third.events][:1] == ["breaker_half_open"]


async def test_async_guard_against_truncated_json_falls_back(upstream: BackgroundServer) -> None:
    with ChaosProxy(upstream.url, {"faults": [{"kind": "truncate"}]}) as proxy:
        async with httpx.AsyncClient(base_url=proxy.url, timeout=5) as client:

            async def call(prompt: str) -> httpx.Response:
                return await client.post("/api/generate", json={"prompt": prompt, "stream": False})

            guard = Guard(call, extract=ollama_text, fallbacks=[lambda prompt: "fallback"])
            result = await guard.acall("hi")
            no_fallback = Guard(call, extract=ollama_text)
            with pytest.raises(GuardFailed):
                await no_fallback.acall("hi")
    assert result.source == "fallback[0]"
    assert "could not extract output" in (next(e for e in result.events if e.kind == "validation_failed").error or "")


def test_injected_drops_are_logged_as_info_not_error() -> None:
    import logging

    from pollama.chaos import chaos_log_config

    config = chaos_log_config()
    drop_filter = config["filters"]["pollama_chaos_drop"]["()"]()
    assert all("pollama_chaos_drop" in h["filters"] for h in config["handlers"].values())
    message = "ASGI callable returned without completing response."
    record = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, message, (), None)
    drop_filter.filter(record)
    assert record.levelno == logging.INFO and "injected fault" in record.getMessage()
    other = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "something else", (), None)
    assert drop_filter.filter(other) and other.levelno == logging.ERROR


def test_doctests() -> None:
    import doctest

    from pollama import chaos

    result = doctest.testmod(chaos)
    assert result.failed == 0 and result.attempted >= 4
