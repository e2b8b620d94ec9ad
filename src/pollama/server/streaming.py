"""Responses that notice the client leaving.

A client that goes away cancels its generation at once, whether it is waiting in the queue,
waiting for a non-streamed answer, or reading a stream: the cancellation runs down the engine's
generator into the runner's stream, which closes, and llama.cpp stops that slot. Used by the
native routes and the compatibility (``/v1``) routes alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from pollama.errors import RequestCanceled

log = logging.getLogger("pollama.server")


async def aclose_quietly(it: Any) -> None:
    """Close an async iterator if it can be closed."""
    close = getattr(it, "aclose", None)
    if close is not None:
        await close()


async def unless_gone(request: Request | None, work: Awaitable[Any], chunks: Any) -> Any:
    """Await ``work`` unless the client disconnects first; then cancel it and raise RequestCanceled."""
    if request is None:
        return await work
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request.receive))
    try:
        await asyncio.wait((task, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await aclose_quietly(chunks)
            log.info("client went away before the response started; request canceled")
            raise RequestCanceled()
    return task.result()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class DisconnectAwareStream(StreamingResponse):
    """A streaming response that watches for the client leaving on every ASGI server (not only
    those with spec < 2.4), cancels the body when it does, and always closes the body iterator,
    so the generation behind it stops and frees its slot however the response ends."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.ensure_future(self.stream_response(send))
        gone = asyncio.ensure_future(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait((streaming, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not streaming.done():
                log.info("client went away mid-stream; generation canceled")
            streaming.cancel()
            gone.cancel()
            results = await asyncio.shield(asyncio.gather(streaming, gone, return_exceptions=True))
            await asyncio.shield(aclose_quietly(self.body_iterator))
        exc = results[0]
        if isinstance(exc, Exception) and not isinstance(exc, OSError):  # OSError: the client left
            raise exc
