"""The engine: every operation the API offers, composed from store, scheduler and runner."""

from __future__ import annotations

from contextlib import aclosing

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from pollama.engine.embed import EmbedMixin
from pollama.engine.inference import InferenceMixin
from pollama.engine.streams import StreamRegistry
from pollama.engine.timefmt import local_iso
from pollama.envconfig import Settings
from pollama.errors import InvalidModelName, InvalidRequest, ModelNotFound, RegistryError, ServerShuttingDown
from pollama.runner.base import Runner, RunnerSpec
from pollama.sched.scheduler import Scheduler
from pollama.store.bundled import find_bundled, import_bundled
from pollama.store.model import Model, load_model
from pollama.store.store import Store
from pollama.types.duration import FOREVER
from pollama.types.names import ModelName

log = logging.getLogger("pollama.engine")


def default_runner_factory(settings: Settings) -> Callable[[RunnerSpec], Runner]:
    from pollama.runner.llamacpp import LlamaCppRunner

    def make(spec: RunnerSpec) -> Runner:
        return LlamaCppRunner(spec, load_timeout=settings.load_timeout, verbose=settings.debug >= 2)

    return make


class Engine(InferenceMixin, EmbedMixin):
    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        scheduler: Scheduler | None = None,
        runner_factory: Callable[[RunnerSpec], Runner] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or Store(settings.models)
        self.scheduler = scheduler or Scheduler(
            runner_factory or default_runner_factory(settings),
            max_loaded=settings.loaded_model_limit,
            max_queue=settings.max_queue,
            default_keep_alive=settings.keep_alive,
        )
        self.streams = StreamRegistry(settings.request_timeout)
        self.runner_verbose = settings.debug >= 2

    async def drain(self, grace: float) -> None:
        """Begin a graceful shutdown: refuse new requests, give the ones in flight ``grace``
        seconds to finish, then end the rest with an error (a last ``{"error"}`` line)."""
        self.scheduler.close()
        if not await self.streams.wait_empty(grace):
            n = self.streams.abort_all(ServerShuttingDown())
            log.warning("shutting down: ended %d request(s) still running after %gs", n, grace)

    async def close(self) -> None:
        await self.scheduler.shutdown()

    # ---- names and models --------------------------------------------------------------

    @staticmethod
    def parse_name(name: str) -> ModelName:
        return ModelName.parse(name)

    def resolve(self, name: str, not_found: str | None = None) -> Model:
        parsed = ModelName.parse(name)
        return load_model(self.store, parsed, not_found or f"model '{name}' not found")

    # ---- listing -----------------------------------------------------------------------

    def list_models(self) -> dict[str, Any]:
        models = []
        for e in self.store.list():
            try:
                m = load_model(self.store, e.name)
                details = m.details()
            except Exception:  # an unreadable model is listed with what the manifest says
                details = {"parent_model": "", "format": "gguf", "family": "", "families": None,
                           "parameter_size": "", "quantization_level": ""}
            models.append({
                "name": e.name.display, "model": e.name.display, "modified_at": local_iso(e.modified),
                "size": e.manifest.total_size, "digest": e.digest, "details": details,
            })
        return {"models": models}

    def ps(self) -> dict[str, Any]:
        out = []
        for entry in self.scheduler.running():
            info = entry.info
            size = entry.runner.memory_bytes or entry.estimate
            out.append({
                "name": info.get("name"), "model": info.get("model"), "size": size,
                "digest": info.get("digest"), "details": info.get("details"),
                "expires_at": local_iso(self.scheduler.expires_at(entry)), "size_vram": 0,
                "context_length": entry.spec.num_ctx,
            })
        return {"models": out}

    def show(self, name: str, verbose: bool = False, system: str | None = None) -> dict[str, Any]:
        from pollama.engine.show import show_model

        if not name:
            raise InvalidRequest("model is required")
        try:
            parsed = ModelName.parse(name)
        except InvalidModelName:
            raise InvalidRequest("invalid model name") from None
        try:
            model = load_model(self.store, parsed)
        except ModelNotFound:
            raise ModelNotFound(parsed.display) from None
        return show_model(self.store, model, verbose=verbose, system=system)

    # ---- copy / delete -----------------------------------------------------------------

    def copy(self, source: str, destination: str) -> None:
        try:
            src = ModelName.parse(source)
        except InvalidModelName:
            raise InvalidRequest(f'source "{source}" is invalid') from None
        try:
            dst = ModelName.parse(destination)
        except InvalidModelName:
            raise InvalidRequest(f'destination "{destination}" is invalid') from None
        if not self.store.has_model(src):
            raise ModelNotFound(source, f'model "{source}" not found')
        self.store.copy(src, dst)

    async def delete(self, name: str) -> None:
        if not name:
            raise InvalidRequest("model is required")
        try:
            parsed = ModelName.parse(name)
        except InvalidModelName:
            raise InvalidRequest(f'name "{name}" is invalid') from None
        if not self.store.has_model(parsed):
            raise ModelNotFound(name)
        model = load_model(self.store, parsed)
        # Unload the runner if no other stored name points at the same weights.
        if model.model_path is not None:
            others = [e for e in self.store.list() if e.name != model.name and
                      any(layer.digest == str(model.model_path.name).replace("-", ":", 1) for layer in e.manifest.layers)]
            if not others:
                await self.scheduler.unload(str(model.model_path))
        self.store.delete(parsed, prune=not self.settings.noprune)

    # ---- pull --------------------------------------------------------------------------

    async def pull(self, name: str, insecure: bool = False) -> AsyncGenerator[dict[str, Any], None]:
        """Validate eagerly, then stream pull progress."""
        if not name:
            raise InvalidRequest("model is required")
        try:
            parsed = ModelName.parse(name)
        except InvalidModelName:
            raise InvalidRequest("invalid model name") from None
        bundled = find_bundled(parsed)
        if bundled is not None:
            return _iterate_sync(lambda: import_bundled(self.store, parsed, bundled))
        return self._pull_registry(parsed, insecure)

    async def _pull_registry(self, name: ModelName, insecure: bool) -> AsyncGenerator[dict[str, Any], None]:
        try:
            from pollama.store.registry import pull_model  # the registry client
        except ImportError:
            yield {"status": "pulling manifest"}
            raise RegistryError("pull model manifest: file does not exist")
        async with aclosing(pull_model(self.store, name, insecure=insecure, prune=not self.settings.noprune,
                                       hf_endpoint=self.settings.hf_endpoint,
                                       hf_token=self.settings.hf_token)) as progress:
            async for p in progress:
                yield p

    # ---- create and blobs ----------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        from pollama.engine.create import check_blob_digest

        return self.store.has_blob(check_blob_digest(digest))

    async def upload_blob(self, digest: str, chunks: AsyncIterator[bytes], declared: int | None) -> bool:
        """Store an uploaded blob; True when it was created, False when it already existed."""
        from pollama.engine.create import upload_blob

        return await upload_blob(self.store, digest, chunks, declared)

    async def create(self, req: Any) -> AsyncIterator[dict[str, Any]]:
        """Validate eagerly (400s before the stream starts), then stream create statuses."""
        from pollama.engine.create import create_model, validate

        name = validate(req, self.store)
        return create_model(self.store, req, name, prune=not self.settings.noprune, pull=self.pull)

    # ---- push --------------------------------------------------------------------------

    async def push(self, name: str, insecure: bool = False) -> AsyncIterator[dict[str, Any]]:
        """Validate eagerly, then stream push progress (reference §2.13)."""
        from pollama.store.registry import push_model

        if not name:
            raise InvalidRequest("model is required")
        try:
            parsed = ModelName.parse(name)
        except InvalidModelName:
            raise InvalidRequest("invalid model name") from None
        return push_model(self.store, self.store.resolve(parsed), insecure=insecure)


async def _iterate_sync(make: Callable[[], Any]) -> AsyncGenerator[dict[str, Any], None]:
    """Run a blocking generator in a worker thread, yielding its items on the event loop."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def work() -> None:
        try:
            for item in make():
                loop.call_soon_threadsafe(queue.put_nowait, ("item", item))
        except BaseException as e:  # forwarded to the consumer
            loop.call_soon_threadsafe(queue.put_nowait, ("error", e))
        else:
            loop.call_soon_threadsafe(queue.put_nowait, ("end", None))

    fut = loop.run_in_executor(None, work)
    while True:
        kind, value = await queue.get()
        if kind == "item":
            yield value
        elif kind == "error":
            await fut
            if isinstance(value, FileNotFoundError):
                raise RegistryError(str(value))
            raise value
        else:
            await fut
            return


__all__ = ["Engine", "FOREVER"]
