"""The scheduler's rules, with scripted fake runners, a fake clock and a fake memory meter."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from pollama.errors import InsufficientMemory, RunnerError, ServerBusy, ServerShuttingDown
from pollama.runner.base import RunnerSpec
from pollama.runner.fake import FakeRunner, fake_factory
from pollama.sched.scheduler import FAR_FUTURE, Loaded, Scheduler

GIB = 1 << 30
T0 = 1_700_000_000.0


class FakeClock:
    """Wall time that moves only when a test says so; sleepers wake when it passes their deadline."""

    def __init__(self, start: float = T0) -> None:
        self.t = start
        self.sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        item = (self.t + seconds, fut)
        self.sleepers.append(item)
        try:
            await fut
        finally:
            self.sleepers.remove(item)

    async def advance(self, seconds: float) -> None:
        self.t += seconds
        for deadline, fut in list(self.sleepers):
            if deadline <= self.t and not fut.done():
                fut.set_result(None)
        await spin()


async def spin(n: int = 20) -> None:
    """Let every ready task run (a few loop turns)."""
    for _ in range(n):
        await asyncio.sleep(0)


class Memory:
    """``total`` minus what the live fake runners use: unloading really frees memory."""

    def __init__(self, total: int, factory: Any) -> None:
        self.total = total
        self.factory = factory

    def __call__(self) -> int:
        return self.total - sum(r.memory_bytes for r in self.factory.made)


def spec(name: str = "a", num_ctx: int = 2048, parallel: int = 1) -> RunnerSpec:
    return RunnerSpec(model_path=Path(f"/models/{name}"), num_ctx=num_ctx, num_parallel=parallel)


def info(name: str) -> dict[str, Any]:
    return {"name": f"{name}:latest", "model": f"{name}:latest"}


class Harness:
    """A scheduler plus helpers to hold slots open from background tasks."""

    def __init__(self, **kw: Any) -> None:
        self.factory = kw.pop("factory", None) or fake_factory(memory=kw.pop("runner_memory", GIB))
        self.clock = FakeClock()
        probe = kw.pop("memory_probe", None)
        if probe is None and "total_memory" in kw:
            probe = Memory(kw.pop("total_memory"), self.factory)
        self.sched = Scheduler(self.factory, clock=self.clock, memory_probe=probe or (lambda: 0), **kw)
        self.tasks: list[asyncio.Task[Any]] = []

    @property
    def made(self) -> list[FakeRunner]:
        return self.factory.made  # type: ignore[no-any-return]

    def hold(self, name: str = "a", keep_alive: float | None = None, estimate: int = 0,
             **spec_kw: Any) -> tuple[asyncio.Task[Loaded], asyncio.Event]:
        """Acquire in a task that keeps its slot until the returned event is set."""
        release = asyncio.Event()
        got: asyncio.Future[Loaded] = asyncio.get_running_loop().create_future()

        async def run() -> Loaded:
            async with self.sched.acquire(name, spec(name, **spec_kw), info(name), keep_alive, estimate) as e:
                got.set_result(e)
                await release.wait()
                return e

        task = asyncio.create_task(run())
        self.tasks.append(task)
        return task, release

    async def use(self, name: str = "a", keep_alive: float | None = None, estimate: int = 0, **spec_kw: Any) -> Loaded:
        async with self.sched.acquire(name, spec(name, **spec_kw), info(name), keep_alive, estimate) as e:
            return e

    def names(self) -> list[str]:
        return sorted(self.sched.loaded)


@pytest.fixture
async def h() -> AsyncIterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**kw: Any) -> Harness:
        made.append(Harness(**kw))
        return made[-1]

    yield make
    for x in made:
        for t in x.tasks:
            t.cancel()
        await asyncio.gather(*x.tasks, return_exceptions=True)
        await x.sched.shutdown()


# ---- admission and the queue ---------------------------------------------------------------


async def test_requests_share_a_runner_and_wait_for_slots(h: Callable[..., Harness]) -> None:
    x = h()
    t1, r1 = x.hold(parallel=2)
    t2, r2 = x.hold(parallel=2)
    await spin()
    assert len(x.made) == 1 and x.sched.loaded["a"].refs == 2 and x.sched.pending == 0
    t3, r3 = x.hold(parallel=2)
    await spin()
    assert not t3.done() and x.sched.pending == 1  # waiting for a slot counts as pending
    r1.set()
    await spin()
    assert t1.done() and x.sched.pending == 0 and x.sched.loaded["a"].refs == 2
    r2.set(), r3.set()
    await asyncio.gather(t2, t3)
    assert len(x.made) == 1 and x.sched.loaded["a"].refs == 0


async def test_queue_limit_refuses_at_once_and_admits_again_when_room_frees(h: Callable[..., Harness]) -> None:
    x = h(max_queue=2)
    holder, release = x.hold()
    await spin()
    (w1, r1), (w2, r2) = x.hold(), x.hold()
    await spin()
    assert x.sched.pending == 2
    with pytest.raises(ServerBusy) as exc:
        await x.use()
    assert exc.value.message == "server busy, please try again.  maximum pending requests exceeded"
    release.set()
    await spin()
    assert holder.done() and x.sched.pending == 1  # w1 took the slot: one place in the queue is free
    w3, r3 = x.hold()
    await spin()
    assert x.sched.pending == 2
    for r in (r1, r2, r3):
        r.set()
    await asyncio.gather(w1, w2, w3)
    assert x.sched.pending == 0 and x.sched.loaded["a"].refs == 0


async def test_a_full_queue_does_not_refuse_a_request_that_gets_a_slot_at_once(h: Callable[..., Harness]) -> None:
    x = h(max_queue=1)
    await x.use("b")
    ta, ra = x.hold("a")
    await spin()
    tw, rw = x.hold("a")  # waits for a's only slot: the queue is full now
    await spin()
    assert x.sched.pending == 1
    with pytest.raises(ServerBusy):
        await x.use("a")
    assert (await x.use("b")).key == "b"  # b is idle: it runs at once, queue or not
    ra.set(), rw.set()
    await asyncio.gather(ta, tw)


async def test_every_accepted_request_completes_exactly_once(h: Callable[..., Harness]) -> None:
    x = h(max_queue=6)
    done: list[int] = []
    refused: list[int] = []
    gate = asyncio.Event()

    async def request(i: int) -> None:
        try:
            async with x.sched.acquire("a", spec(parallel=2), info("a")):
                await gate.wait()
                done.append(i)
        except ServerBusy:
            refused.append(i)

    tasks = [asyncio.create_task(request(i)) for i in range(12)]
    await spin()
    assert x.sched.pending == 6 and len(refused) == 4  # 2 in slots, 6 queued, 4 refused
    gate.set()
    await asyncio.gather(*tasks)
    assert sorted(done + refused) == list(range(12)) and len(done) == 8 and len(set(done)) == 8
    assert x.sched.pending == 0 and x.sched.loaded["a"].refs == 0 and len(x.made) == 1


async def test_a_cancelled_waiter_leaves_the_queue_and_frees_nothing_twice(h: Callable[..., Harness]) -> None:
    x = h(max_queue=1)
    holder, release = x.hold()
    await spin()
    waiter, _ = x.hold()
    await spin()
    assert x.sched.pending == 1
    waiter.cancel()
    await spin()
    assert x.sched.pending == 0 and x.sched.loaded["a"].refs == 1
    t, r = x.hold()  # the queue has room again
    await spin()
    release.set()
    await spin()
    assert t.done() is False and x.sched.loaded["a"].refs == 1  # the new one holds the slot now
    r.set()
    await t
    assert x.sched.loaded["a"].refs == 0 and x.sched.loaded["a"].slots._value == 1


async def test_slot_waiters_are_served_in_arrival_order(h: Callable[..., Harness]) -> None:
    x = h()
    order: list[int] = []
    holder, release = x.hold()
    await spin()

    async def request(i: int) -> None:
        async with x.sched.acquire("a", spec(), info("a")):
            order.append(i)
            await asyncio.sleep(0)

    tasks = []
    for i in range(5):
        tasks.append(asyncio.create_task(request(i)))
        await spin(2)
    release.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]


async def test_random_load_with_cancellations_keeps_the_books_balanced(h: Callable[..., Harness]) -> None:
    x = h(max_queue=20)
    rng = random.Random(7)
    active = 0
    peak = 0
    completed: list[int] = []

    async def request(i: int) -> None:
        nonlocal active, peak
        async with x.sched.acquire("a", spec(parallel=3), info("a")):
            active += 1
            peak = max(peak, active)
            try:
                await asyncio.sleep(rng.random() / 500)
            finally:
                active -= 1
        completed.append(i)

    tasks = [asyncio.create_task(request(i)) for i in range(40)]
    await asyncio.sleep(0.001)
    for t in rng.sample(tasks, 10):
        t.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    busy = [r for r in results if isinstance(r, ServerBusy)]
    cancelled = [r for r in results if isinstance(r, asyncio.CancelledError)]
    assert len(completed) + len(busy) + len(cancelled) == 40 and len(set(completed)) == len(completed)
    assert peak <= 3 and x.sched.pending == 0
    entry = x.sched.loaded["a"]
    assert entry.refs == 0 and entry.slots._value == 3


# ---- loading, eviction and memory ----------------------------------------------------------


async def test_eviction_at_the_model_limit_takes_the_idle_one_with_the_shortest_keep_alive(
        h: Callable[..., Harness]) -> None:
    x = h(max_loaded=2)
    await x.use("long", keep_alive=600)
    await x.use("short", keep_alive=60)
    await x.use("new")
    assert x.names() == ["long", "new"]
    stopped = [r for r in x.made if not r.alive()]
    assert [r.spec.model_path.name for r in stopped] == ["short"]


async def test_eviction_prefers_an_idle_runner_over_a_busy_one_and_ties_go_to_the_smaller_path(
        h: Callable[..., Harness]) -> None:
    x = h(max_loaded=3)
    busy, release = x.hold("b-busy", keep_alive=1)
    await x.use("d", keep_alive=300)
    await x.use("c", keep_alive=300)
    await spin()
    await x.use("z")
    assert x.names() == ["b-busy", "d", "z"]  # "c" < "d" at equal keep-alive; the busy one stays
    release.set()
    await busy


async def test_at_the_limit_with_everything_busy_the_load_waits_and_new_requests_do_not_jump_ahead(
        h: Callable[..., Harness]) -> None:
    x = h(max_loaded=1)
    a1, release_a1 = x.hold("a")
    await spin()
    b, release_b = x.hold("b")
    await spin()
    assert x.names() == ["a"] and not b.done()
    a2, release_a2 = x.hold("a")  # arrives after b: must not keep "a" busy forever
    await spin()
    assert x.sched.loaded["a"].refs == 1 and x.sched.loaded["a"].draining
    release_a1.set()
    await spin()
    assert x.names() == ["b"] and [r.alive() for r in x.made] == [False, True]
    release_b.set()
    await b
    await spin()
    assert x.names() == ["a"]  # a2 loaded "a" again once b was done
    release_a2.set()
    await a2


async def test_a_model_that_does_not_fit_alone_fails_clearly(h: Callable[..., Harness]) -> None:
    x = h(total_memory=4 * GIB)
    with pytest.raises(InsufficientMemory) as exc:
        await x.use("huge", estimate=int(3.5 * GIB))
    assert exc.value.required == int(3.5 * GIB) and exc.value.available == 4 * GIB
    assert "3.5 GiB" in exc.value.message and "4.0 GiB" in exc.value.message
    assert x.names() == [] and x.made == []


async def test_a_model_that_fits_only_alone_evicts_idle_runners_first(h: Callable[..., Harness]) -> None:
    x = h(total_memory=10 * GIB, runner_memory=3 * GIB)
    await x.use("a", keep_alive=600, estimate=3 * GIB)
    await x.use("b", keep_alive=60, estimate=3 * GIB)
    assert x.names() == ["a", "b"]  # 6 GiB used, 4 free
    await x.use("c", estimate=int(3.5 * GIB))  # 3.5 > 0.8 × 4: evict b (shorter keep-alive) → 7 free
    assert x.names() == ["a", "c"]


async def test_memory_pressure_waits_for_a_busy_runner_instead_of_failing(h: Callable[..., Harness]) -> None:
    x = h(total_memory=5 * GIB, runner_memory=3 * GIB)
    t, release = x.hold("a", estimate=3 * GIB)
    await spin()
    b = asyncio.create_task(x.use("b", estimate=3 * GIB))
    await spin()
    assert not b.done() and x.names() == ["a"]
    release.set()
    await b
    assert x.names() == ["b"]


async def test_ps_lists_a_model_while_it_loads(h: Callable[..., Harness]) -> None:
    x = h(factory=fake_factory(load_delay=0.05))
    t = asyncio.create_task(x.use("a", keep_alive=60))
    await asyncio.sleep(0.01)
    [entry] = x.sched.running()
    assert entry.loading and x.sched.expires_at(entry) == T0 + 60
    await t
    assert not x.sched.running()[0].loading


async def test_concurrent_first_requests_load_the_model_once(h: Callable[..., Harness]) -> None:
    x = h(factory=fake_factory(load_delay=0.02))
    await asyncio.gather(*[x.use("a", parallel=4) for _ in range(4)])
    assert len(x.made) == 1


async def test_a_failed_load_leaves_nothing_behind_and_the_next_request_retries(h: Callable[..., Harness]) -> None:
    factory = fake_factory(fail_start="llama runner process has terminated: bad model")
    x = h(factory=factory)
    with pytest.raises(RunnerError):
        await x.use()
    assert x.names() == [] and x.sched.pending == 0
    with pytest.raises(RunnerError):
        await x.use()
    assert len(x.made) == 2


async def test_a_dead_runner_is_replaced_on_the_next_request(h: Callable[..., Harness]) -> None:
    x = h()
    first = await x.use()
    first.runner.kill()  # type: ignore[attr-defined]
    second = await x.use()
    assert second is not first and second.runner.alive() and len(x.made) == 2
    x.sched.mark_dead(second)
    await spin()
    assert x.names() == [] and not second.runner.alive()


# ---- keep_alive and expiry -----------------------------------------------------------------


async def test_idle_runner_expires_after_keep_alive(h: Callable[..., Harness]) -> None:
    x = h(default_keep_alive=300)
    entry = await x.use()
    assert x.sched.expires_at(entry) == T0 + 300
    await x.clock.advance(299)
    assert x.names() == ["a"]
    await x.clock.advance(2)
    await x.sched.settle()
    assert x.names() == [] and not x.made[0].alive()


async def test_expiry_does_not_unload_a_busy_runner_and_restarts_when_it_goes_idle(
        h: Callable[..., Harness]) -> None:
    x = h()
    entry = await x.use(keep_alive=10)
    await x.clock.advance(8)
    t, release = x.hold()  # busy again before expiry
    await spin()
    assert x.sched.expires_at(entry) == x.clock.now() + 10  # busy: now + keep_alive
    await x.clock.advance(30)
    assert x.names() == ["a"] and x.made[0].alive()
    release.set()
    await t
    released_at = x.clock.now()
    assert x.sched.expires_at(entry) == released_at + 10
    await x.clock.advance(9)
    assert x.names() == ["a"]
    await x.clock.advance(1)
    await x.sched.settle()
    assert x.names() == []


async def test_keep_alive_zero_unloads_right_after_the_request(h: Callable[..., Harness]) -> None:
    x = h()
    await x.use(keep_alive=0)
    await x.sched.settle()
    assert x.names() == [] and not x.made[0].alive()


async def test_negative_keep_alive_means_forever(h: Callable[..., Harness]) -> None:
    x = h()
    entry = await x.use(keep_alive=float("inf"))
    assert x.sched.expires_at(entry) == pytest.approx(T0 + FAR_FUTURE)
    assert 290 < FAR_FUTURE / (365.25 * 86400) < 293  # Ollama's ~292 years ("year 2318")
    await x.clock.advance(10 * 365 * 86400)
    assert x.names() == ["a"]


async def test_a_request_without_keep_alive_keeps_the_runners_and_one_with_it_replaces_it(
        h: Callable[..., Harness]) -> None:
    x = h(default_keep_alive=300)
    entry = await x.use(keep_alive=30)
    await x.use()
    assert entry.keep_alive == 30 and x.sched.expires_at(entry) == T0 + 30
    await x.use(keep_alive=120)
    assert entry.keep_alive == 120


async def test_unload_of_a_busy_model_waits_for_its_requests(h: Callable[..., Harness]) -> None:
    x = h()
    t, release = x.hold()
    await spin()
    assert await x.sched.unload("a") is True
    assert x.names() == ["a"] and x.sched.expires_at(x.sched.loaded["a"]) == x.clock.now()  # "Stopping..."
    release.set()
    await t
    await x.sched.settle()
    assert x.names() == [] and await x.sched.unload("a") is False


async def test_ps_order_is_most_remaining_time_first(h: Callable[..., Harness]) -> None:
    x = h()
    await x.use("a", keep_alive=60)
    await x.use("b", keep_alive=float("inf"))
    await x.use("c", keep_alive=600)
    assert [e.key for e in x.sched.running()] == ["b", "c", "a"]


# ---- reload decisions ----------------------------------------------------------------------


async def test_a_different_spec_reloads_after_in_flight_requests_finish(h: Callable[..., Harness]) -> None:
    x = h()
    t1, release1 = x.hold(num_ctx=2048, parallel=2)
    await spin()
    reload = asyncio.create_task(x.use(num_ctx=4096, parallel=2))
    await spin()
    assert not reload.done() and x.sched.loaded["a"].draining
    late, release_late = x.hold(num_ctx=2048, parallel=2)  # same spec as the old one, but draining
    await spin()
    assert x.sched.loaded["a"].refs == 1  # did not join the draining runner
    release1.set()
    entry = await reload
    assert entry.spec.num_ctx == 4096 and [r.alive() for r in x.made][:2] == [False, True]
    await spin()
    release_late.set()
    final = await late
    assert final.spec.num_ctx == 2048  # reloaded again for the late request
    assert len(x.made) == 3


async def test_equal_specs_share_the_runner(h: Callable[..., Harness]) -> None:
    x = h()
    a = await x.use(num_ctx=1024)
    b = await x.use(num_ctx=1024)
    assert a is b and len(x.made) == 1


# ---- shutdown ------------------------------------------------------------------------------


async def test_close_refuses_new_requests_but_admitted_ones_finish(h: Callable[..., Harness]) -> None:
    x = h()
    t, release = x.hold()
    await spin()
    x.sched.close()
    with pytest.raises(ServerShuttingDown):
        await x.use()
    release.set()
    await t
    await x.sched.settle()
    assert x.names() == []  # idle after close: unloaded
    await x.sched.shutdown()
    assert all(not r.alive() for r in x.made)


async def test_shutdown_stops_every_runner(h: Callable[..., Harness]) -> None:
    x = h()
    async with AsyncExitStack() as stack:
        for n in ("a", "b"):
            await stack.enter_async_context(x.sched.acquire(n, spec(n), info(n)))
    await x.sched.shutdown()
    assert x.names() == [] and len(x.made) == 2 and all(not r.alive() for r in x.made)
