"""Tests for pollama.guard, on a virtual clock: retries, backoff, deadlines, budget, validation,
re-asks, the circuit breaker, fallbacks, events; sync and async."""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pydantic
import pytest
import requests

from pollama.guard import (
    Backoff,
    BreakerOpen,
    Call,
    CircuitBreaker,
    Guard,
    GuardEvent,
    GuardFailed,
    GuardTimeout,
    OpenTelemetryHook,
    PrometheusHook,
    UpstreamStatusError,
    ValidationFailed,
    append_chat_message,
    append_to_prompt,
    is_transient,
    make_validator,
    ollama_text,
    status_code_of,
)

# ---------------------------------------------------------------- test doubles


class FakeClock:
    """A virtual clock whose sleeps advance time instantly and are recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


class ResponseError(Exception):
    """Shaped like ``ollama.ResponseError``."""

    def __init__(self, error: str, status_code: int = -1) -> None:
        super().__init__(error)
        self.error = error
        self.status_code = status_code


class APIStatusError(Exception):
    """Shaped like ``openai.APIStatusError``."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class APIConnectionError(Exception):
    """Shaped like ``openai.APIConnectionError`` (no status code)."""


def httpx_status_error(code: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://127.0.0.1:11434/api/generate")
    response = httpx.Response(code, request=request, json={"error": "boom"})
    return httpx.HTTPStatusError(f"status {code}", request=request, response=response)


def requests_http_error(code: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = code
    return requests.HTTPError(f"status {code}", response=response)


class Script:
    """A callable that plays a script of outcomes: exceptions are raised, other values returned.

    ``cost`` seconds are added to the clock per call, to model slow calls on the virtual clock.
    """

    def __init__(self, clock: FakeClock, *outcomes: Any, cost: float = 0.0) -> None:
        self.clock = clock
        self.outcomes = list(outcomes)
        self.cost = cost
        self.calls: list[Call] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(Call(args, kwargs))
        self.clock.now += self.cost
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class AsyncScript(Script):
    async def __call__(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        await asyncio.sleep(0)
        return Script.__call__(self, *args, **kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_guard(clock: FakeClock, primary: Callable[..., Any], **kwargs: Any) -> Guard:
    kwargs.setdefault("rng", random.Random(0))
    kwargs.setdefault("hard_deadline", False)
    return Guard(primary, clock=clock, sleep=clock.sleep, asleep=clock.asleep, **kwargs)


def kinds(events: Any) -> list[str]:
    return [e.kind for e in events]


# ---------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ResponseError("server busy", 503), True),
        (ResponseError("internal", 500), True),
        (ResponseError("too many", 429), True),
        (ResponseError("model 'x' not found", 404), False),
        (ResponseError("bad request", 400), False),
        (ResponseError("error in stream", -1), False),
        (APIStatusError("overloaded", 529), True),
        (APIStatusError("unauthorized", 401), False),
        (APIConnectionError("connection refused"), True),
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("slow"), True),
        (httpx.RemoteProtocolError("peer closed connection"), True),
        (httpx.UnsupportedProtocol("ftp"), False),
        (httpx_status_error(502), True),
        (httpx_status_error(422), False),
        (requests.ConnectionError("refused"), True),
        (requests.Timeout("slow"), True),
        (requests_http_error(503), True),
        (requests_http_error(403), False),
        (ConnectionResetError("reset"), True),
        (TimeoutError(), True),
        (GuardTimeout(1.0), True),
        (UpstreamStatusError(503), True),
        (UpstreamStatusError(418), False),
        (ValueError("bad json"), False),
        (KeyError("x"), False),
    ],
)
def test_is_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_status_code_of() -> None:
    assert status_code_of(httpx_status_error(503)) == 503
    assert status_code_of(ResponseError("x", -1)) is None
    assert status_code_of(ValueError()) is None


# ---------------------------------------------------------------- retries and backoff


def test_retries_transient_until_success(clock: FakeClock) -> None:
    primary = Script(clock, ResponseError("busy", 503), httpx.ConnectError("refused"), "ok")
    result = make_guard(clock, primary, retries=3).call("hi")
    assert result.value == "ok" and result.source == "primary"
    assert result.attempts == 3 and len(clock.sleeps) == 2
    assert kinds(result.events) == ["attempt", "retry", "attempt", "retry", "attempt", "success"]


@pytest.mark.parametrize("code", [400, 401, 403, 404, 422])
def test_never_retries_other_4xx(clock: FakeClock, code: int) -> None:
    primary = Script(clock, ResponseError("nope", code), "ok")
    with pytest.raises(GuardFailed) as info:
        make_guard(clock, primary, retries=5).call()
    assert len(primary.calls) == 1 and clock.sleeps == []
    assert isinstance(info.value.last_error, ResponseError)
    assert info.value.__cause__ is info.value.last_error
    assert kinds(info.value.events) == ["attempt", "error"]
    assert "not retryable" in (info.value.events[-1].error or "")


@pytest.mark.parametrize("code", [429, 500, 502, 503, 504])
def test_retries_5xx_and_429(clock: FakeClock, code: int) -> None:
    primary = Script(clock, ResponseError("x", code), "ok")
    assert make_guard(clock, primary).call().attempts == 2


def test_retries_exhausted(clock: FakeClock) -> None:
    primary = Script(clock, ResponseError("busy", 503))
    with pytest.raises(GuardFailed, match="all paths failed after 3 attempts"):
        make_guard(clock, primary, retries=2).call()
    assert len(primary.calls) == 3


def test_backoff_grows_and_is_jittered_within_bounds(clock: FakeClock) -> None:
    backoff = Backoff(base=1.0, factor=2.0, max_delay=10.0)
    assert [backoff.cap(k) for k in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    delays_by_retry: dict[int, list[float]] = {k: [] for k in range(1, 7)}
    for seed in range(200):
        c = FakeClock()
        primary = Script(c, ResponseError("busy", 503))
        guard = make_guard(c, primary, retries=6, backoff=backoff, rng=random.Random(seed))
        with pytest.raises(GuardFailed):
            guard.call()
        assert len(c.sleeps) == 6
        for k, d in enumerate(c.sleeps, start=1):
            assert 0.0 <= d <= backoff.cap(k)
            delays_by_retry[k].append(d)
    means = [sum(v) / len(v) for v in delays_by_retry.values()]
    # Full jitter: the mean is half the cap, so it grows with the cap.
    for k, mean in enumerate(means, start=1):
        assert mean == pytest.approx(backoff.cap(k) / 2, rel=0.2)
    assert len(set(delays_by_retry[3])) == 200  # jittered, not constant


def test_retry_events_carry_the_delay(clock: FakeClock) -> None:
    primary = Script(clock, ResponseError("busy", 503), "ok")
    result = make_guard(clock, primary).call()
    retry = next(e for e in result.events if e.kind == "retry")
    assert retry.delay == clock.sleeps[0]
    assert retry.error == "ResponseError: busy"


def test_backoff_rejects_bad_config() -> None:
    with pytest.raises(ValueError, match="factor"):
        Backoff(factor=0.5)
    with pytest.raises(ValueError, match="base"):
        Backoff(base=-1)


# ---------------------------------------------------------------- deadline and budget


def test_deadline_enforced_on_virtual_clock(clock: FakeClock) -> None:
    primary = Script(clock, "too late", "in time", cost=0.0)
    costs = iter([5.0, 0.5])

    def slow_then_fast() -> str:
        clock.now += next(costs)
        return primary()

    result = make_guard(clock, slow_then_fast, deadline=2.0).call()
    assert result.value == "in time"
    assert kinds(result.events)[:3] == ["attempt", "timeout", "retry"]
    assert "deadline of 2.000s" in (result.events[1].error or "")


def test_hard_deadline_stops_waiting_for_a_stuck_sync_call() -> None:
    release = threading.Event()

    def stuck() -> str:
        release.wait(5)
        return "late"

    guard = Guard(stuck, deadline=0.05, retries=0, default="fallback value")
    started = time.monotonic()
    result = guard.call()
    release.set()
    assert time.monotonic() - started < 1.0
    assert result.value == "fallback value" and result.source == "default"
    assert "timeout" in kinds(result.events)


def test_budget_bounds_the_primary_across_retries(clock: FakeClock) -> None:
    primary = Script(clock, ResponseError("busy", 503), cost=1.0)
    guard = make_guard(clock, primary, retries=100, budget=3.5, backoff=Backoff(base=0.0), default="d")
    result = guard.call()
    assert result.source == "default"
    assert len(primary.calls) == 4  # at t=0,1,2,3; at t=4 the budget is gone
    assert "budget_exhausted" in kinds(result.events)


class MaxRandom(random.Random):
    """Jitter that always picks the cap."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_budget_stops_a_backoff_that_would_overrun(clock: FakeClock) -> None:
    primary = Script(clock, ResponseError("busy", 503))
    backoff = Backoff(base=5.0, max_delay=5.0)
    guard = make_guard(clock, primary, retries=5, budget=1.0, backoff=backoff, rng=MaxRandom())
    with pytest.raises(GuardFailed) as info:
        guard.call()
    assert clock.sleeps == [] and len(primary.calls) == 1
    last = info.value.events[-1]
    assert last.kind == "budget_exhausted" and last.delay == 5.0


def test_pass_timeout_gives_the_remaining_limit(clock: FakeClock) -> None:
    primary = Script(clock, ResponseError("busy", 503), ResponseError("busy", 503), "ok", cost=1.0)
    guard = make_guard(clock, primary, deadline=2.5, budget=4.0, backoff=Backoff(base=0.0), pass_timeout="timeout")
    assert guard.call(prompt="p").value == "ok"
    limits = [c.kwargs["timeout"] for c in primary.calls]
    assert limits == [2.5, 2.5, 2.0]  # min(deadline, budget - elapsed)
    assert all(c.kwargs["prompt"] == "p" for c in primary.calls)


def test_guard_rejects_bad_config(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="deadline"):
        Guard(lambda: 1, deadline=0)
    with pytest.raises(ValueError, match="retries"):
        Guard(lambda: 1, retries=-1)
    with pytest.raises(TypeError, match="validate="):
        Guard(lambda: 1, validate=42)


# ---------------------------------------------------------------- validation and re-ask

SCHEMA = {
    "type": "object",
    "required": ["answer", "confidence"],
    "properties": {"answer": {"type": "string"}, "confidence": {"type": "number", "maximum": 1}},
}


def test_schema_validation_with_reask_feeds_the_error_back(clock: FakeClock) -> None:
    import jsonschema  # noqa: F401  (a runtime dependency)
    primary = Script(clock, '{"answer": "Paris"}', '```json\n{"answer": "Paris", "confidence": 0.9}\n```')
    guard = make_guard(clock, primary, validate=SCHEMA, reask=append_to_prompt("prompt"), max_reasks=2)
    result = guard.call(model="m", prompt="Capital of France? Answer in JSON.")
    assert result.value == {"answer": "Paris", "confidence": 0.9}
    assert kinds(result.events) == ["attempt", "validation_failed", "reask", "attempt", "success"]
    second_prompt = primary.calls[1].kwargs["prompt"]
    assert second_prompt.startswith("Capital of France? Answer in JSON.\n\n")
    assert "'confidence' is a required property" in second_prompt
    assert primary.calls[1].kwargs["model"] == "m"


def test_schema_validation_reports_paths_and_bad_json(clock: FakeClock) -> None:
    import jsonschema  # noqa: F401  (a runtime dependency)
    check = make_validator(SCHEMA)
    with pytest.raises(ValidationFailed, match="confidence: 3 is greater than the maximum of 1"):
        check({"answer": "x", "confidence": 3})
    with pytest.raises(ValidationFailed, match="not valid JSON"):
        check("{answer: x")
    with pytest.raises(ValueError, match="invalid JSON Schema"):
        make_validator({"type": "not-a-type"})


class Answer(pydantic.BaseModel):
    answer: str
    confidence: float = pydantic.Field(ge=0, le=1)


def test_pydantic_validation_and_chat_reask(clock: FakeClock) -> None:
    primary = Script(
        clock,
        {"message": {"role": "assistant", "content": '{"answer": "x", "confidence": 7}'}},
        {"message": {"role": "assistant", "content": '{"answer": "x", "confidence": 0.7}'}},
    )
    guard = make_guard(clock, primary, validate=Answer, extract=ollama_text, reask=append_chat_message())
    messages = [{"role": "user", "content": "q"}]
    result = guard.call(model="m", messages=messages)
    assert isinstance(result.value, Answer) and result.value.confidence == 0.7
    assert result.raw["message"]["content"].endswith("0.7}")
    resent = primary.calls[1].kwargs["messages"]
    assert resent[0] == {"role": "user", "content": "q"} and len(resent) == 2
    assert "confidence: Input should be less than or equal to 1" in resent[1]["content"]
    assert messages == [{"role": "user", "content": "q"}]  # the caller's list is untouched


def test_predicate_validation_and_positional_reask(clock: FakeClock) -> None:
    def short(text: str) -> bool:
        if "?" in text:
            raise ValueError("must not ask questions")
        return len(text) < 10

    primary = Script(clock, "What do you mean?", "a very long answer indeed", "short")
    guard = make_guard(clock, primary, validate=short, reask=append_to_prompt(0), max_reasks=2)
    result = guard.call("prompt")
    assert result.value == "short" and result.attempts == 3
    errors = [e.error for e in result.events if e.kind == "validation_failed"]
    assert errors == ["must not ask questions", "short rejected the output"]
    resent = primary.calls[2].args[0]
    assert resent.count("Your previous reply was rejected") == 2
    assert "(your reply was: 'a very long answer indeed')" in resent


def test_reasks_exhausted_then_fallback(clock: FakeClock) -> None:
    primary = Script(clock, "not json")
    fallback = Script(clock, '{"answer": "fb", "confidence": 0.1}')
    guard = make_guard(clock, primary, validate=Answer, reask=append_to_prompt(), max_reasks=1, fallbacks=[fallback])
    result = guard.call(prompt="q")
    assert len(primary.calls) == 2 and result.source == "fallback[0]"
    assert result.value.answer == "fb"
    assert fallback.calls[0].kwargs == {"prompt": "q"}  # fallbacks get the original arguments


def test_extract_failure_is_a_validation_failure(clock: FakeClock) -> None:
    primary = Script(clock, {"unexpected": 1})
    result = make_guard(clock, primary, extract=ollama_text, default="d").call()
    assert result.source == "default"
    assert "could not extract output" in (next(e for e in result.events if e.kind == "validation_failed").error or "")


# ---------------------------------------------------------------- circuit breaker


def test_breaker_opens_after_n_failures_in_window_then_half_open_probe_closes(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, window=10.0, cooldown=5.0, clock=clock)
    outcomes: list[Any] = [ResponseError("boom", 500)] * 3
    primary = Script(clock, *outcomes, "recovered")
    guard = make_guard(clock, primary, retries=5, breaker=breaker, backoff=Backoff(base=0.0), default="cached")

    first = guard.call()
    assert breaker.state == "open" and len(primary.calls) == 3
    assert first.source == "default"
    assert kinds(first.events).count("breaker_open") == 1  # opened; retries stop at once

    second = guard.call()  # still cooling down: the primary is not called
    assert len(primary.calls) == 3 and second.source == "default"
    assert kinds(second.events)[0] == "breaker_open"

    clock.now += 5.0
    third = guard.call()  # half-open: one probe, which succeeds
    assert third.value == "recovered" and breaker.state == "closed"
    assert kinds(third.events) == ["breaker_half_open", "attempt", "breaker_closed", "success"]


def test_breaker_failed_probe_reopens(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, window=10.0, cooldown=5.0, clock=clock)
    primary = Script(clock, ResponseError("boom", 500))
    guard = make_guard(clock, primary, retries=0, breaker=breaker, default="d")
    guard.call()
    assert breaker.state == "open"
    clock.now += 5.0
    result = guard.call()
    assert kinds(result.events)[:3] == ["breaker_half_open", "attempt", "breaker_open"]
    assert breaker.state == "open" and len(primary.calls) == 2


def test_breaker_half_open_admits_only_one_probe(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, window=10.0, cooldown=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1.0
    assert breaker.acquire() == (True, "half_open")
    assert breaker.acquire() == (False, None)
    breaker.release()
    assert breaker.acquire() == (True, None)
    assert breaker.record_success() == "closed"


def test_breaker_window_forgets_old_failures(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, window=10.0, cooldown=5.0, clock=clock)
    for _ in range(5):
        assert breaker.record_failure() is None
        clock.now += 6.0  # never three failures within 10 s
    assert breaker.state == "closed"


def test_breaker_counts_only_transient_failures(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=2, window=10.0, cooldown=5.0, clock=clock)
    guard = make_guard(clock, Script(clock, ResponseError("nope", 404)), breaker=breaker, default="d")
    for _ in range(5):
        guard.call()
    assert breaker.state == "closed"


def test_breaker_is_shared_across_guards(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=2, window=10.0, cooldown=5.0, clock=clock)
    a = make_guard(clock, Script(clock, httpx.ConnectError("down")), retries=0, breaker=breaker, default="a")
    b_primary = Script(clock, "b ok")
    b = make_guard(clock, b_primary, breaker=breaker, default="b")
    a.call()
    a.call()
    assert breaker.state == "open"
    assert b.call().source == "default" and b_primary.calls == []


def test_breaker_rejects_bad_config() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError, match="window"):
        CircuitBreaker(window=0)


# ---------------------------------------------------------------- fallbacks


def test_fallback_chain_order_and_labels(clock: FakeClock) -> None:
    order: list[str] = []

    def step(name: str, outcome: Any) -> Callable[..., Any]:
        def fn(prompt: str) -> Any:
            order.append(name)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome

        return fn

    guard = make_guard(
        clock,
        step("primary", ResponseError("model not found", 404)),
        fallbacks=[step("small model", httpx.ConnectError("down")), step("other", "???"), step("rules", "42")],
        validate=lambda s: s.isdigit(),
    )
    result = guard.call("q")
    assert order == ["primary", "small model", "other", "rules"]
    assert result.source == "fallback[2]" and result.fallback_index == 2 and result.used_fallback
    assert result.value == "42" and result.attempts == 4
    fallbacks = [e for e in result.events if e.kind == "fallback"]
    assert [e.path for e in fallbacks] == ["fallback[0]", "fallback[1]", "fallback[2]"]
    assert fallbacks[0].error == "ResponseError: model not found"


def test_default_and_guard_failed(clock: FakeClock) -> None:
    failing = Script(clock, ResponseError("x", 500))
    result = make_guard(clock, failing, retries=0, fallbacks=[failing], default=None).call()
    assert result.value is None and result.source == "default"
    assert result.events[-1].kind == "fallback" and result.events[-1].path == "default"
    with pytest.raises(GuardFailed) as info:
        make_guard(clock, failing, retries=0, fallbacks=[failing]).call()
    assert isinstance(info.value.last_error, ResponseError)
    assert kinds(info.value.events).count("attempt") == 2


def test_nested_guard_as_fallback(clock: FakeClock) -> None:
    inner_primary = Script(clock, ResponseError("busy", 503), "inner ok")
    inner = make_guard(clock, inner_primary, name="inner")
    outer = make_guard(clock, Script(clock, ResponseError("gone", 404)), fallbacks=[inner], name="outer")
    result = outer.call()
    assert result.value == "inner ok" and result.source == "fallback[0]"


def test_check_status_turns_error_responses_into_failures(clock: FakeClock) -> None:
    request = httpx.Request("POST", "http://127.0.0.1/api/generate")
    busy = httpx.Response(503, request=request, json={"error": "server busy"})
    ok = httpx.Response(200, request=request, json={"response": "hello", "done": True})
    result = make_guard(clock, Script(clock, busy, ok), extract=ollama_text).call()
    assert result.value == "hello" and result.attempts == 2
    assert "UpstreamStatusError: HTTP 503" in (result.events[1].error or "")


def test_sync_call_refuses_async_callables(clock: FakeClock) -> None:
    async def coro() -> str:
        return "x"

    with pytest.raises(TypeError, match="use acall"):
        make_guard(clock, coro).call()


# ---------------------------------------------------------------- async


async def test_async_retries_validation_and_fallback(clock: FakeClock) -> None:
    primary = AsyncScript(clock, ResponseError("busy", 503), "not a number", "still not")
    fallback = AsyncScript(clock, "7")
    guard = make_guard(
        clock, primary, validate=str.isdigit, reask=append_to_prompt(), fallbacks=[fallback], default="0"
    )
    result = await guard.acall(prompt="n?")
    assert result.value == "7" and result.source == "fallback[0]"
    assert kinds(result.events) == [
        "attempt", "retry", "attempt", "validation_failed", "reask", "attempt", "validation_failed",
        "fallback", "attempt", "success",
    ]  # fmt: skip
    assert len(clock.sleeps) == 1


async def test_async_deadline_cancels_the_awaitable() -> None:
    cancelled = asyncio.Event()

    async def stuck() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "late"

    guard = Guard(stuck, deadline=0.05, retries=1, backoff=Backoff(base=0.0), default="d")
    started = time.monotonic()
    result = await guard.acall()
    assert time.monotonic() - started < 1.0
    assert cancelled.is_set() and result.source == "default"
    assert kinds(result.events).count("timeout") == 2


async def test_async_breaker_and_sync_callables(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=2, window=10.0, cooldown=1.0, clock=clock)
    primary = Script(clock, ResponseError("down", 500), ResponseError("down", 500), "up")
    guard = make_guard(clock, primary, breaker=breaker, backoff=Backoff(base=0.0), default="d")
    assert (await guard.acall()).source == "default"
    assert breaker.state == "open"
    clock.now += 1.0
    assert (await guard.acall()).value == "up"
    assert breaker.state == "closed"


async def test_async_nested_guard_fallback(clock: FakeClock) -> None:
    inner = make_guard(clock, AsyncScript(clock, "inner"))
    outer = make_guard(clock, AsyncScript(clock, ResponseError("gone", 404)), fallbacks=[inner])
    assert (await outer.acall()).value == "inner"


async def test_async_guard_failed(clock: FakeClock) -> None:
    with pytest.raises(GuardFailed):
        await make_guard(clock, AsyncScript(clock, ValueError("bug"))).acall()


# ---------------------------------------------------------------- events, hooks, adapters


def test_events_go_to_logging_and_hooks(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[GuardEvent] = []

    def broken_hook(event: GuardEvent) -> None:
        raise RuntimeError("metrics backend down")

    guard = make_guard(
        clock, Script(clock, ResponseError("busy", 503), "ok"), hooks=[seen.append, broken_hook], name="qa-bot"
    )
    with caplog.at_level(logging.DEBUG, logger="pollama.guard"):
        result = guard.call()
    assert result.value == "ok"  # a failing hook does not break the call
    assert seen == list(result.events)
    retry_logs = [r for r in caplog.records if "retry" in r.getMessage() and r.levelno == logging.WARNING]
    assert retry_logs and retry_logs[0].getMessage().startswith("qa-bot[primary] retry attempt=1")
    assert any("event hook" in r.getMessage() for r in caplog.records)


def test_prometheus_hook_with_a_stub_module(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    created: dict[str, Any] = {}

    class Metric:
        def __init__(self, name: str, doc: str, labels: list[str], **kwargs: Any) -> None:
            self.kwargs = kwargs
            self.values: dict[tuple[str, ...], list[float]] = {}
            created[name] = self
            self.labelnames = labels

        def labels(self, **kw: str) -> Metric:
            self._key = tuple(kw[n] for n in self.labelnames)
            return self

        def inc(self) -> None:
            self.values.setdefault(self._key, []).append(1)

        def observe(self, v: float) -> None:
            self.values.setdefault(self._key, []).append(v)

    stub = types.ModuleType("prometheus_client")
    stub.Counter = Metric  # type: ignore[attr-defined]
    stub.Histogram = Metric  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "prometheus_client", stub)
    hook = PrometheusHook(registry="REG")
    clock.now = 0.0
    make_guard(clock, Script(clock, ResponseError("busy", 503), "ok", cost=0.25), hooks=[hook], name="g").call()
    events = created["pollama_guard_events"]
    assert events.kwargs == {"registry": "REG"}
    assert len(events.values[("g", "retry", "primary")]) == 1
    assert len(events.values[("g", "attempt", "primary")]) == 2
    assert created["pollama_guard_success_seconds"].values[("g", "primary")] == [pytest.approx(0.5, abs=0.3)]


def test_prometheus_hook_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match="prometheus_client"):
        PrometheusHook()


def test_opentelemetry_hook(clock: FakeClock) -> None:
    recorded: list[tuple[str, dict[str, Any]]] = []

    class Span:
        def add_event(self, name: str, attributes: dict[str, Any]) -> None:
            recorded.append((name, attributes))

    span = Span()
    hook = OpenTelemetryHook(get_span=lambda: span)
    make_guard(clock, Script(clock, ResponseError("busy", 503), "ok"), hooks=[hook]).call()
    assert [name for name, _ in recorded] == ["guard.attempt", "guard.retry", "guard.attempt", "guard.success"]
    assert recorded[1][1]["guard.error"] == "ResponseError: busy"


def test_opentelemetry_hook_default_span_is_a_noop_without_sdk(clock: FakeClock) -> None:
    import opentelemetry.trace  # noqa: F401  (a test dependency)
    hook = OpenTelemetryHook()
    assert make_guard(clock, Script(clock, "ok"), hooks=[hook]).call().value == "ok"


# ---------------------------------------------------------------- helpers


def test_ollama_text_shapes() -> None:
    assert ollama_text("plain") == "plain"
    assert ollama_text({"response": "gen"}) == "gen"
    assert ollama_text({"message": {"role": "assistant", "content": "chat"}}) == "chat"
    assert ollama_text({"choices": [{"message": {"content": "oai"}}]}) == "oai"
    assert ollama_text(types.SimpleNamespace(response="obj")) == "obj"
    assert ollama_text(types.SimpleNamespace(message=types.SimpleNamespace(content="objchat"))) == "objchat"
    request = httpx.Request("POST", "http://127.0.0.1/api/generate")
    ndjson = '{"response":"Hel","done":false}\n{"response":"lo","done":false}\n{"response":"","done":true}\n'
    assert ollama_text(httpx.Response(200, request=request, text=ndjson)) == "Hello"
    with pytest.raises(ValueError, match="error inside stream"):
        ollama_text(httpx.Response(200, request=request, text='{"response":"a"}\n{"error":"runner died"}\n'))


def test_call_helpers() -> None:
    call = Call(("a", "b"), {"k": 1})
    assert call.with_value(1, "B").args == ("a", "B") and call.args == ("a", "b")
    assert call.with_value("k", 2).kwargs == {"k": 2} and call.kwargs == {"k": 1}
    assert isinstance(BreakerOpen("x"), Exception)


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    before = threading.active_count()
    yield
    deadline = time.monotonic() + 2
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
