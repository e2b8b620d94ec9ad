"""The scheduler: which models are loaded, for how long, and who may use them now.

* A runner is keyed by its model file. A request whose :class:`RunnerSpec` equals the loaded
  one's shares it; a different spec (num_ctx, num_thread, num_batch …) waits until the old runner
  is idle, unloads it and loads a new one (reference §10).
* Each runner has ``num_parallel`` slots. Requests beyond that wait for a slot; requests that wait
  (for a slot or a load) count against ``max_queue``, and one more gets :class:`ServerBusy`.
* Loads run one at a time. At ``max_loaded`` models, or when the new model does not fit in 80 % of
  available memory, idle runners are evicted (shortest keep-alive first); if none is idle the load
  waits for one to become idle. A model that cannot fit even alone fails with
  :class:`InsufficientMemory`.
* ``keep_alive``: the expiry timer starts when a runner goes idle; 0 unloads right after the
  request; ``inf`` keeps it until memory or the model limit forces it out.
* A runner that died is noticed on the next acquire (or by the request that saw it die) and is
  replaced by a fresh one.

Seams: the runner factory, the memory probe, the estimate function and the clock are constructor
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
from typing import Any

from pollama.errors import InsufficientMemory, ServerBusy
from pollama.runner.base import Runner, RunnerSpec
from pollama.sched.memory import available_memory

log = logging.getLogger("pollama.sched")

FAR_FUTURE = 10_000 * 365 * 86400.0  # seconds; rendered as a date ~300 years ahead


@dataclass
class Loaded:
    """A runner the scheduler holds, with its bookkeeping."""

    key: str
    spec: RunnerSpec
    runner: Runner
    info: dict[str, Any]  # name, model, digest, details — what /api/ps shows
    keep_alive: float
    slots: asyncio.Semaphore
    refs: int = 0
    expires_at: float = 0.0  # wall-clock seconds; inf = forever
    estimate: int = 0
    timer: asyncio.TimerHandle | None = None
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    unloading: bool = False


class Scheduler:
    def __init__(
        self,
        factory: Callable[[RunnerSpec], Runner],
        *,
        max_loaded: int = 3,
        max_queue: int = 512,
        default_keep_alive: float = 300.0,
        memory_probe: Callable[[], int] = available_memory,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.factory = factory
        self.max_loaded = max(1, max_loaded)
        self.max_queue = max_queue
        self.default_keep_alive = default_keep_alive
        self.memory_probe = memory_probe
        self.wall_clock = wall_clock
        self.loaded: dict[str, Loaded] = {}
        self.pending = 0
        self._load_lock = asyncio.Lock()
        self._changed = asyncio.Condition()
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
            entry.slots.release()
            await self._release(entry)

    async def load_only(self, key: str, spec: RunnerSpec, info: dict[str, Any], keep_alive: float | None, estimate: int = 0) -> Loaded:
        async with self.acquire(key, spec, info, keep_alive, estimate) as entry:
            return entry

    async def unload(self, key: str) -> bool:
        """Unload now if idle, else as soon as the requests in flight finish."""
        entry = self.loaded.get(key)
        if entry is None:
            return False
        entry.keep_alive = 0
        if entry.refs == 0:
            await self._unload(entry)
        return True

    def running(self) -> list[Loaded]:
        """Loaded runners, most remaining time first (the /api/ps order)."""
        return sorted(self.loaded.values(), key=lambda e: e.expires_at, reverse=True)

    def mark_dead(self, entry: Loaded) -> None:
        """A request saw the runner die: forget it so the next request starts a fresh one."""
        if self.loaded.get(entry.key) is entry:
            log.warning("runner for %s died; it will be restarted on the next request", entry.info.get("name"))
            self.loaded.pop(entry.key, None)
            asyncio.get_running_loop().create_task(self._stop_runner(entry))

    async def shutdown(self) -> None:
        self._closed = True
        for entry in list(self.loaded.values()):
            if entry.timer:
                entry.timer.cancel()
            await self._stop_runner(entry)
        self.loaded.clear()

    # ---- admission ---------------------------------------------------------------------

    async def _admit(self, key: str, spec: RunnerSpec, info: dict[str, Any], keep_alive: float | None, estimate: int) -> Loaded:
        if self.pending >= self.max_queue:
            raise ServerBusy()
        self.pending += 1
        try:
            while True:
                entry = self.loaded.get(key)
                if entry is not None and not entry.runner.alive():
                    self.mark_dead(entry)
                    entry = None
                if entry is None:
                    entry = await self._load(key, spec, info, keep_alive, estimate)
                elif entry.spec != spec:
                    await self._wait_idle_then_unload(entry)
                    continue
                if keep_alive is not None:
                    entry.keep_alive = keep_alive
                entry.refs += 1
                self._cancel_timer(entry)
                entry.idle.clear()
                try:
                    await entry.slots.acquire()
                except BaseException:
                    entry.refs -= 1
                    await self._maybe_idle(entry)
                    raise
                if self.loaded.get(key) is not entry:  # unloaded while we waited
                    entry.slots.release()
                    entry.refs -= 1
                    continue
                entry.expires_at = self._expiry(entry, busy=True)
                entry.info.update({k: v for k, v in info.items() if k in ("name", "model")} if entry.refs == 1 else {})
                return entry
        finally:
            self.pending -= 1

    async def _release(self, entry: Loaded) -> None:
        entry.refs -= 1
        await self._maybe_idle(entry)

    async def _maybe_idle(self, entry: Loaded) -> None:
        if entry.refs > 0:
            return
        entry.idle.set()
        async with self._changed:
            self._changed.notify_all()
        if self.loaded.get(entry.key) is not entry:
            return
        if entry.keep_alive <= 0:
            await self._unload(entry)
            return
        entry.expires_at = self._expiry(entry, busy=False)
        if math.isfinite(entry.keep_alive):
            loop = asyncio.get_running_loop()
            entry.timer = loop.call_later(entry.keep_alive, lambda: loop.create_task(self._expire(entry)))

    async def _expire(self, entry: Loaded) -> None:
        if entry.refs == 0 and self.loaded.get(entry.key) is entry:
            log.info("model %s expired after keep_alive", entry.info.get("name"))
            await self._unload(entry)

    def _expiry(self, entry: Loaded, busy: bool) -> float:
        if not math.isfinite(entry.keep_alive):
            return self.wall_clock() + FAR_FUTURE
        return self.wall_clock() + max(entry.keep_alive, 0.0)

    @staticmethod
    def _cancel_timer(entry: Loaded) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None

    # ---- loading and eviction ----------------------------------------------------------

    async def _load(self, key: str, spec: RunnerSpec, info: dict[str, Any], keep_alive: float | None, estimate: int) -> Loaded:
        async with self._load_lock:
            existing = self.loaded.get(key)
            if existing is not None and existing.runner.alive():
                return existing  # another request loaded it while we waited for the lock
            await self._make_room(estimate)
            runner = self.factory(spec)
            log.info("loading %s (ctx %d × %d slots)", info.get("name"), spec.num_ctx, spec.num_parallel)
            await runner.start()
            ka = self.default_keep_alive if keep_alive is None else keep_alive
            entry = Loaded(key=key, spec=spec, runner=runner, info=dict(info), keep_alive=ka,
                           slots=asyncio.Semaphore(spec.num_parallel), estimate=estimate)
            entry.expires_at = self._expiry(entry, busy=True)
            self.loaded[key] = entry
            return entry

    async def _make_room(self, estimate: int) -> None:
        while len(self.loaded) >= self.max_loaded:
            if not await self._evict_one():
                await self._wait_for_change()
        while estimate and self.loaded and not self._fits(estimate):
            if not await self._evict_one():
                await self._wait_for_change()
        if estimate and not self.loaded and not self._fits(estimate):
            raise InsufficientMemory(estimate, int(self.memory_probe()))

    def _fits(self, estimate: int) -> bool:
        avail = self.memory_probe()
        return avail <= 0 or estimate <= 0.8 * avail

    async def _evict_one(self) -> bool:
        idle = [e for e in self.loaded.values() if e.refs == 0]
        if not idle:
            return False
        victim = min(idle, key=lambda e: (e.keep_alive, str(e.spec.model_path)))
        log.info("evicting %s to make room", victim.info.get("name"))
        await self._unload(victim)
        return True

    async def _wait_for_change(self) -> None:
        async with self._changed:
            await self._changed.wait()

    async def _wait_idle_then_unload(self, entry: Loaded) -> None:
        while entry.refs > 0 and self.loaded.get(entry.key) is entry:
            await entry.idle.wait()
            await asyncio.sleep(0)
        if self.loaded.get(entry.key) is entry:
            log.info("reloading %s with new runner options", entry.info.get("name"))
            await self._unload(entry)

    async def _unload(self, entry: Loaded) -> None:
        self._cancel_timer(entry)
        if self.loaded.get(entry.key) is entry:
            del self.loaded[entry.key]
        await self._stop_runner(entry)
        async with self._changed:
            self._changed.notify_all()

    @staticmethod
    async def _stop_runner(entry: Loaded) -> None:
        if entry.unloading:
            return
        entry.unloading = True
        try:
            await entry.runner.stop()
        except Exception:  # a runner that fails to stop must not break the scheduler
            log.exception("error stopping runner")
