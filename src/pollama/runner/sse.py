"""The one hot stream: llama.cpp's Server-Sent Events, read with asyncio and httptools.

Every other call to the runner goes through httpx. The token stream does not: through httpx,
httpcore, h11 and anyio each streamed token cost about 0.3 ms of Python (measured with py-spy on
``pollama serve``), and on a small machine that CPU is taken from llama.cpp's own threads, so it
showed up directly as fewer tokens per second. Here a plain :class:`asyncio.Protocol` feeds the
bytes to httptools' C parser (the one uvicorn uses), cuts the body into ``data:`` lines as they
arrive and hands each payload to the one coroutine waiting for it.

The request says ``Connection: close``: one connection per generation, so closing it is how a
canceled generation tells llama.cpp to stop the slot.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import AsyncGenerator
from typing import Any

import httptools

# Pause reading when this many events wait unread (the consumer is the server's own loop, so
# this only bounds memory if a client reads far slower than the model writes).
_HIGH_WATER = 256
# The most body bytes kept without a line break (an error body, or a runner gone wrong).
_MAX_PENDING = 1 << 20


class RunnerHTTPError(Exception):
    """The runner answered with a status other than 200; ``body`` is what it said."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"runner error {status}")
        self.status = status
        self.body = body


class _SSEProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: Any = None  # asyncio's or uvloop's transport (not a subclass of either)
        self.status = 0
        self.pending = bytearray()  # body bytes not yet cut into lines
        self.events: deque[bytes] = deque()
        self.complete = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self.error = ConnectionError(f"malformed HTTP from the runner: {e}")
            if self.transport is not None:
                self.transport.abort()
        if len(self.events) > _HIGH_WATER and self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.complete and self.error is None:
            self.error = exc or ConnectionResetError("the runner closed the connection mid-response")
        self._wake()

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if len(self.pending) + len(body) > _MAX_PENDING:
            if self.status == 200:
                self.error = ConnectionError("the runner sent an event larger than 1 MiB")
                if self.transport is not None:
                    self.transport.abort()
            return  # an error body keeps its first MiB
        self.pending += body
        if self.status != 200:
            return  # an error body is read whole and reported at the end
        start = 0
        while (end := self.pending.find(b"\n", start)) >= 0:
            line = bytes(self.pending[start:end]).rstrip(b"\r")
            if line.startswith(b"data: "):
                self.events.append(line[6:])
            start = end + 1
        del self.pending[:start]

    def on_message_complete(self) -> None:
        self.complete = True

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def take(self) -> bytes:
        item = self.events.popleft()
        if self.paused and len(self.events) < _HIGH_WATER // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return item


async def post_sse(where: str | tuple[str, int], path: str, body: bytes) -> AsyncGenerator[bytes, None]:
    """POST ``body`` (JSON) to ``where`` — a Unix socket path or ``(host, port)`` — and yield
    the payload of each ``data:`` line of the response.

    Raises :class:`RunnerHTTPError` for a non-200 answer and :class:`OSError` (or
    ``ConnectionError``) when the connection fails or drops before the response is complete.
    Closing the iterator closes the connection at once.
    """
    loop = asyncio.get_running_loop()
    if isinstance(where, str):
        transport, proto = await loop.create_unix_connection(_SSEProtocol, where)
        host = "runner"
    else:
        transport, proto = await loop.create_connection(_SSEProtocol, *where)
        host = f"{where[0]}:{where[1]}"
        sock = transport.get_extra_info("socket")
        if sock is not None:  # a request is one write, but the stream's ACKs must not wait
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        transport.write(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("ascii")
            + body
        )
        while True:
            while proto.events:
                yield proto.take()
            if proto.error is not None:
                raise proto.error
            if proto.complete:
                if proto.status != 200:
                    raise RunnerHTTPError(proto.status, proto.pending.decode("utf-8", "replace"))
                return
            proto.waiter = loop.create_future()
            try:
                await proto.waiter
            finally:
                proto.waiter = None
    finally:
        transport.abort()
