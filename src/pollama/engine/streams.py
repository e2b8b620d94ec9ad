"""The chunk streams of running generations: a deadline, an abort switch for shutdown, and what
the server should tell the client before the first byte.

:class:`ChunkStream` wraps the engine's async generator of native chunks. Each ``__anext__`` runs
under an :func:`asyncio.timeout` whose deadline is the request's (``POLLAMA_REQUEST_TIMEOUT``) or
none; :meth:`ChunkStream.abort` moves that deadline to *now*. Either way the cancellation lands
inside the generator chain — the runner's HTTP stream closes, llama.cpp stops the slot, the
scheduler frees it — and the caller gets a domain error (:class:`RequestTimeout`, or the abort's
error) to render: an HTTP status before the first chunk, an ``{"error": …}`` line after it.

:class:`StreamRegistry` knows every stream in flight, so a shutdown can wait for them and then
end the stragglers cleanly.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pollama.errors import PollamaError, RequestTimeout


@dataclass
class Truncation:
    """What context fitting removed from a prompt (reported to the client, never silent)."""

    dropped_messages: int = 0  # oldest non-system chat messages left out
    prompt_tokens: int = 0  # prompt length before token truncation (0: none happened)
    kept_tokens: int = 0  # prompt length after it


@dataclass
class Notes:
    """Facts about a generation that are known once its first chunk exists."""

    truncation: Truncation | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def truncated(self) -> Truncation:
        if self.truncation is None:
            self.truncation = Truncation()
        return self.truncation


class ChunkStream:
    """An async iterator of native chunks with a deadline, an abort switch and :class:`Notes`."""

    def __init__(self, chunks: AsyncIterator[dict[str, Any]], notes: Notes,
                 registry: StreamRegistry) -> None:
        self._chunks = chunks
        self.notes = notes
        self._registry = registry
        self._deadline = registry.deadline()
        self._timeout: asyncio.Timeout | None = None
        self._abort: PollamaError | None = None
        self._finished = False
        registry.add(self)

    def __aiter__(self) -> ChunkStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self._finished:
            raise StopAsyncIteration
        if self._abort is not None:
            await self._end()
            raise self._abort
        timeout = asyncio.timeout_at(self._deadline)
        self._timeout = timeout
        try:
            async with timeout:
                return await self._chunks.__anext__()
        except BaseException as exc:
            await self._end()
            if self._abort is not None and isinstance(exc, (TimeoutError, PollamaError)):
                raise self._abort from None
            if isinstance(exc, (TimeoutError, PollamaError)) and timeout.expired():
                raise RequestTimeout(self._registry.timeout) from None
            raise
        finally:
            self._timeout = None

    def abort(self, error: PollamaError) -> None:
        """End the stream with ``error`` at its next (or current) wait for a chunk."""
        if self._finished or self._abort is not None:
            return
        self._abort = error
        if self._timeout is not None and not self._timeout.expired():
            self._timeout.reschedule(asyncio.get_running_loop().time())

    async def aclose(self) -> None:
        await self._end()

    async def _end(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._registry.discard(self)
        close = getattr(self._chunks, "aclose", None)
        try:
            if close is not None:
                await close()
        except Exception:  # closing a generator that already failed; its error was reported
            pass


class StreamRegistry:
    """The generations in flight, for deadlines and a graceful shutdown."""

    def __init__(self, timeout: float = 0.0) -> None:
        self.timeout = timeout  # seconds; 0 = no deadline
        self._active: weakref.WeakSet[ChunkStream] = weakref.WeakSet()

    def deadline(self) -> float | None:
        if self.timeout <= 0:
            return None
        return asyncio.get_running_loop().time() + self.timeout

    def wrap(self, chunks: AsyncIterator[dict[str, Any]], notes: Notes | None = None) -> ChunkStream:
        return ChunkStream(chunks, notes or Notes(), self)

    def add(self, stream: ChunkStream) -> None:
        self._active.add(stream)

    def discard(self, stream: ChunkStream) -> None:
        self._active.discard(stream)

    def __len__(self) -> int:
        return len(self._active)

    async def wait_empty(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every stream to end; True if they did."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self._active and loop.time() < end:
            await asyncio.sleep(0.02)
        return not self._active

    def abort_all(self, error: PollamaError) -> int:
        streams = list(self._active)
        for s in streams:
            s.abort(error)
        return len(streams)
