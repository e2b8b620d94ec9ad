"""The scheduler: which models are loaded, for how long, and who may use them now.

* A runner is keyed by its model file. A request whose :class:`RunnerSpec` equals the loaded
  one's shares it; a different spec (num_ctx, num_thread, num_batch …) *drains* the old runner —
  no new request joins it — waits until its requests finish, unloads it and loads a new one
  (reference §10). Requests that differ only in sampling options have equal specs.
* Each runner has ``num_parallel`` slots; llama.cpp batches the slots' tokens together
  (continuous batching). Requests beyond that wait for a slot, first come first served.
* Every request that has to wait — for a slot, a load or a reload — counts against
  ``max_queue``; one more that would have to wait is refused at once with :class:`ServerBusy`
  (Ollama counts only the requests waiting for a load, so its slot waiters are unbounded;
  pollama bounds both). A request that gets a slot at once never counts.
* Loads run one at a time. At ``max_loaded`` models, or when the new model's estimate exceeds
  80 % of available memory, a runner is evicted: an idle one with the shortest keep-alive (then
  the smallest path); if none is idle, the busy one with the shortest keep-alive is drained and
  the load waits for it. A model that does not fit even alone fails with
  :class:`InsufficientMemory`, naming what it needs and what is available.
* ``keep_alive``: the expiry timer starts when a runner goes idle; 0 unloads right after the
  request; ``inf`` keeps it until memory or the model limit forces it out. A request that
  carries ``keep_alive`` sets the runner's duration; one without it keeps the runner's.
* A runner that died is noticed on the next acquire (or by the request that saw it die) and is
  replaced by a fresh one.
* :meth:`close` refuses new requests (:class:`ServerShuttingDown`); :meth:`shutdown` also stops
  every runner.

Nothing on the release path awaits: a request cancelled by its client (or a deadline) frees its
slot synchronously, and unloads it triggers run as tracked background tasks.

Seams: the runner factory, the memory probe and the clock (wall time and sleep) are constructor
arguments, so the logic is tested with fake runners and a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from pollama.errors import InsufficientMemory, ServerBusy, ServerShuttingDown
from pollama.runner.base import Runner, RunnerSpec
from pollama.sched.memory import available_memory

log = logging.getLogger("pollama.sched")

FAR_FUTURE = (2**63 - 1) / 1e9  # Go's max time.Duration: Ollama's "forever" is ~292 years ahead
FIT_FRACTION = 0.8


class Clock(Protocol):
    """Wall time (for ``expires_at``) and sleeping (for keep-alive timers)."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(eq=False)
class Loaded:
    """A runner the scheduler holds, with its bookkeeping."""

    key: str
    spec: RunnerSpec
    runner: Runner
    info: dict[str, Any]  # name, model, digest, details — what /api/ps shows
    keep_alive: float
    slots: asyncio.Semaphore
    estimate: int = 0
    refs: int = 0  # requests holding or waiting for a slot (and the loader during a load)
    loading: bool = True
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # set when loading ends
    draining: bool = False  # no new request may join; unload when idle
    idle_expires_at: float = 0.0  # wall-clock expiry once idle
    expiry: asyncio.Task[None] | None = None
    stop_task: asyncio.Task[None] | None = None


class Scheduler:
    def __init__(
        self,
        factory: Callable[[RunnerSpec], Runner],
        *,
        max_loaded: int = 3,
        max_queue: int = 512,
        default_keep_alive: float = 300.0,
        memory_probe: Callable[[], int] = available_memory,
        clock: Clock | None = None,
    ) -> None:
        self.factory = factory
        self.max_loaded = max(1, max_loaded)
        self.max_queue = max_queue if max_queue > 0 else 512  # 0 (or less): the default
        self.default_keep_alive = default_keep_alive
        self.memory_probe = memory_probe
        self.clock: Clock = clock or SystemClock()
        self.loaded: dict[str, Loaded] = {}
        self.pending = 0  # requests waiting for a slot, a load or a reload
        self._load_lock = asyncio.Lock()
        self._changed = asyncio.Event()  # replaced on every change; waiters hold the old one
        self._stopping: set[asyncio.Task[None]] = set()
        self._closed = False

    # ---- public ------------------------------------------------------------------------

    @asynccontextmanager
    async def acquire(
        self,
        key: str,
        spec: RunnerSpec,
        info: dict[str, Any],
        keep_alive: float | None = None,
        estimate: int = 0,
    ) -> AsyncIterator[Loaded]:
        """Hold a slot on a runner for ``spec`` for the duration of the ``async with``."""
        entry = await self._admit(key, spec, info, keep_alive, estimate)
        try:
            yield entry
        finally:
            self._release(entry)

    async def unload(self, key: str) -> bool:
        """Unload now if idle, else as soon as the requests in flight finish."""
        entry = self.loaded.get(key)
        if entry is None:
            return False
        entry.keep_alive = 0
        if entry.refs == 0:
            await self._unload(entry)
        return True

    def expires_at(self, entry: Loaded) -> float:
        """Ollama's ``expires_at``: idle → idle time + keep_alive; busy or loading → now + keep_alive."""
        if entry.refs == 0 and not entry.loading:
            return entry.idle_expires_at
        return self._expiry_from_now(entry.keep_alive)

    def running(self) -> list[Loaded]:
        """Loaded (and loading) runners, most remaining time first (the /api/ps order)."""
        return sorted(self.loaded.values(), key=self.expires_at, reverse=True)

    def mark_dead(self, entry: Loaded) -> None:
        """A request saw the runner die: forget it so the next request starts a fresh one."""
        if self.loaded.get(entry.key) is entry:
            log.warning("runner for %s died; it will be restarted on the next request", entry.info.get("name"))
            self._begin_unload(entry)

    def close(self) -> None:
        """Refuse new requests from now on; requests already admitted carry on."""
        self._closed = True

    async def shutdown(self) -> None:
        """Refuse new requests and stop every runner."""
        self._closed = True
        for entry in list(self.loaded.values()):
            self._begin_unload(entry)
        await self.settle()

    async def settle(self) -> None:
        """Wait until every unload started so far has finished."""
        while self._stopping:
            await asyncio.gather(*list(self._stopping), return_exceptions=True)

    # ---- admission ---------------------------------------------------------------------

    async def _admit(self, key: str, spec: RunnerSpec, info: dict[str, Any], keep_alive: float | None,
                     estimate: int) -> Loaded:
        if self._closed:
            raise ServerShuttingDown()
        if self.pending >= self.max_queue and not self._runs_at_once(key, spec):
            raise ServerBusy()
        self.pending += 1
        try:
            while True:
                entry = self.loaded.get(key)
                if entry is None:
                    entry = await self._load(key, spec, info, keep_alive, estimate)
                    if entry is None:
                        continue  # someone else loaded it meanwhile: look again
                elif entry.loading:
                    await entry.ready.wait()
                    continue
                elif not entry.runner.alive():
                    self.mark_dead(entry)
                    continue
                elif entry.draining or entry.spec != spec:
                    await self._retire(entry)
                    continue
                else:
                    self._join(entry, keep_alive)
                if await self._take_slot(entry):
                    return entry
        finally:
            self.pending -= 1

    def _runs_at_once(self, key: str, spec: RunnerSpec) -> bool:
        """True when the request would get a slot without waiting (it never enters the queue)."""
        e = self.loaded.get(key)
        return (e is not None and not e.loading and not e.draining and e.spec == spec
                and e.runner.alive() and not e.slots.locked())

    def _join(self, entry: Loaded, keep_alive: float | None) -> None:
        entry.refs += 1
        self._cancel_expiry(entry)
        if keep_alive is not None:
            entry.keep_alive = keep_alive

    async def _take_slot(self, entry: Loaded) -> bool:
        """Wait for a slot; False when the runner went away meanwhile (the caller looks again)."""
        try:
            await entry.slots.acquire()
        except BaseException:
            self._leave(entry)
            raise
        if self.loaded.get(entry.key) is entry and entry.runner.alive():
            return True
        entry.slots.release()
        self._leave(entry)
        return False

    def _release(self, entry: Loaded) -> None:
        entry.slots.release()
        self._leave(entry)

    def _leave(self, entry: Loaded) -> None:
        entry.refs -= 1
        if entry.refs > 0:
            return
        self._notify()
        if self.loaded.get(entry.key) is not entry:
            return
        if entry.keep_alive <= 0 or entry.draining or self._closed:
            self._begin_unload(entry)
            return
        entry.idle_expires_at = self._expiry_from_now(entry.keep_alive)
        if math.isfinite(entry.keep_alive):
            entry.expiry = asyncio.get_running_loop().create_task(self._expire_at(entry, entry.idle_expires_at))

    async def _expire_at(self, entry: Loaded, deadline: float) -> None:
        await self.clock.sleep(max(0.0, deadline - self.clock.now()))
        if entry.refs == 0 and self.loaded.get(entry.key) is entry:
            log.info("model %s expired after keep_alive %gs", entry.info.get("name"), entry.keep_alive)
            entry.expiry = None  # this task is ending; don't cancel it from _begin_unload
            self._begin_unload(entry)

    def _expiry_from_now(self, keep_alive: float) -> float:
        if not math.isfinite(keep_alive):
            return self.clock.now() + FAR_FUTURE
        return self.clock.now() + max(keep_alive, 0.0)

    @staticmethod
    def _cancel_expiry(entry: Loaded) -> None:
        if entry.expiry is not None:
            entry.expiry.cancel()
            entry.expiry = None

    # ---- loading and eviction ----------------------------------------------------------

    async def _load(self, key: str, spec: RunnerSpec, info: dict[str, Any], keep_alive: float | None,
                    estimate: int) -> Loaded | None:
        """Load a runner for ``key`` and return it joined (refs=1), or None if one appeared meanwhile."""
        async with self._load_lock:
            if key in self.loaded:
                return None
            await self._make_room(estimate)
            if key in self.loaded:
                return None
            ka = self.default_keep_alive if keep_alive is None else keep_alive
            entry = Loaded(key=key, spec=spec, runner=self.factory(spec), info=dict(info), keep_alive=ka,
                           slots=asyncio.Semaphore(spec.num_parallel), estimate=estimate, refs=1)
            self.loaded[key] = entry
            log.info("loading %s (ctx %d × %d slots)", info.get("name"), spec.num_ctx, spec.num_parallel)
            try:
                await entry.runner.start()
            except BaseException:
                entry.refs = 0
                self._begin_unload(entry)  # stops a half-started process too
                raise
            finally:
                entry.loading = False
                entry.ready.set()
            return entry

    async def _make_room(self, estimate: int) -> None:
        """Evict until one more model fits the count and memory limits (called under the load lock)."""
        while True:
            await self.settle()
            if len(self.loaded) < self.max_loaded and self._fits(estimate):
                return
            if not self.loaded:
                raise InsufficientMemory(estimate, self.memory_probe())
            victim = self._victim()
            if victim.refs == 0:
                log.info("evicting %s to make room", victim.info.get("name"))
                await self._unload(victim)
            else:
                log.info("waiting for %s to finish its requests before evicting it", victim.info.get("name"))
                victim.draining = True
                await self._wait_for_change()

    def _fits(self, estimate: int) -> bool:
        avail = self.memory_probe()
        return avail <= 0 or estimate <= FIT_FRACTION * avail

    def _victim(self) -> Loaded:
        """Idle runners first, then the shortest keep-alive, then the smallest path (Ollama's order)."""
        return min(self.loaded.values(), key=lambda e: (e.refs > 0, e.keep_alive, str(e.spec.model_path)))

    async def _retire(self, entry: Loaded) -> None:
        """Drain ``entry`` (no new joins), wait for its requests to finish, and unload it."""
        if not entry.draining:
            log.info("reloading %s with new runner options", entry.info.get("name"))
            entry.draining = True
        while self.loaded.get(entry.key) is entry and entry.refs > 0:
            await self._wait_for_change()
        if self.loaded.get(entry.key) is entry:
            await self._unload(entry)
        await self.settle()

    async def _wait_for_change(self) -> None:
        await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _unload(self, entry: Loaded) -> None:
        await asyncio.shield(self._begin_unload(entry))

    def _begin_unload(self, entry: Loaded) -> asyncio.Task[None]:
        """Forget ``entry`` now and stop its runner in a tracked background task."""
        self._cancel_expiry(entry)
        if self.loaded.get(entry.key) is entry:
            del self.loaded[entry.key]
        self._notify()
        if entry.stop_task is not None:
            return entry.stop_task
        task = asyncio.get_running_loop().create_task(self._stop_runner(entry))
        entry.stop_task = task
        self._stopping.add(task)
        task.add_done_callback(self._stopped)
        return task

    def _stopped(self, task: asyncio.Task[None]) -> None:
        self._stopping.discard(task)
        self._notify()

    @staticmethod
    async def _stop_runner(entry: Loaded) -> None:
        try:
            await entry.runner.stop()
        except Exception:  # a runner that fails to stop must not break the scheduler
            log.exception("error stopping runner")
