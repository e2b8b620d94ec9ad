"""The runner's token-stream reader (runner/sse.py) against a scripted HTTP peer on loopback:
events split at any byte, chunked encoding, error statuses, drops, oversized and malformed
replies, and closing the stream closing the connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from pollama.runner.sse import RunnerHTTPError, post_sse

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, int, list[bytes]]:
    requests: list[bytes] = []

    async def wrapped(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = await r.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        requests.append(head + await r.readexactly(length))
        try:
            await handler(r, w)
        finally:
            w.close()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], requests


def _chunked(payload: bytes) -> bytes:
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


async def _collect(port: int) -> list[dict]:
    return [json.loads(d) async for d in post_sse(("127.0.0.1", port), "/completion", b'{"prompt":"x"}')]


@pytest.mark.parametrize("step", [1, 3, 7, 1000])
async def test_events_split_at_any_byte_are_reassembled(step: int) -> None:
    events = [{"content": f"tok{i} ü 中", "stop": False} for i in range(5)] + [{"content": "", "stop": True}]
    body = b"".join(b"data: " + json.dumps(e, ensure_ascii=False).encode() + b"\n\n" for e in events)
    wire = _chunked(body[: len(body) // 2]) + _chunked(body[len(body) // 2:]) + b"0\r\n\r\n"

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(wire), step):
            w.write(wire[i:i + step])
            await w.drain()

    server, port, requests = await _serve(handler)
    async with server:
        got = await _collect(port)
    assert got == events
    assert requests[0].startswith(b"POST /completion HTTP/1.1\r\n") and requests[0].endswith(b'{"prompt":"x"}')


async def test_non_sse_lines_are_ignored_and_crlf_tolerated() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        body = b': comment\r\nevent: x\r\ndata: {"a": 1}\r\n\r\ndata: {"a": 2}\n\n'
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    server, port, _ = await _serve(handler)
    async with server:
        assert await _collect(port) == [{"a": 1}, {"a": 2}]


async def test_error_status_carries_the_body() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        body = json.dumps({"error": {"code": 400, "message": "the prompt is too long"}}).encode()
        w.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    server, port, _ = await _serve(handler)
    async with server:
        with pytest.raises(RunnerHTTPError) as e:
            await _collect(port)
    assert e.value.status == 400 and "the prompt is too long" in e.value.body


async def test_connection_dropped_mid_stream_is_an_error_not_a_short_answer() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(b'data: {"a": 1}\n\n'))
        await w.drain()
        w.transport.abort()

    server, port, _ = await _serve(handler)
    async with server:
        got = []
        with pytest.raises(OSError):
            async for d in post_sse(("127.0.0.1", port), "/completion", b"{}"):
                got.append(json.loads(d))
    assert got == [{"a": 1}]


async def test_nothing_listening_is_an_oserror() -> None:
    server, port, _ = await _serve(lambda r, w: asyncio.sleep(0))
    server.close()
    await server.wait_closed()
    with pytest.raises(OSError):
        await _collect(port)


async def test_malformed_http_and_oversized_events_are_errors() -> None:
    async def garbage(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"SMTP ready\r\n\r\n")

    async def endless_line(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(40):  # 40 × 64 KiB without a line break
            w.write(_chunked(b"data: " + b"x" * 65536))
            await w.drain()

    for handler in (garbage, endless_line):
        server, port, _ = await _serve(handler)
        async with server:
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(_collect(port), 10)


async def test_closing_the_stream_closes_the_connection() -> None:
    """How a canceled generation reaches llama.cpp: the runner sees its client go away."""
    peer_saw_eof = asyncio.Event()

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(10_000):
            w.write(_chunked(b'data: {"i": %d}\n\n' % i))
            try:
                await w.drain()
            except ConnectionError:
                break
            if r.at_eof() or w.transport.is_closing():
                break
            await asyncio.sleep(0.001)
        peer_saw_eof.set()

    server, port, _ = await _serve(handler)
    async with server:
        stream = post_sse(("127.0.0.1", port), "/completion", b"{}")
        async for d in stream:
            if json.loads(d)["i"] == 3:
                break
        await stream.aclose()
        await asyncio.wait_for(peer_saw_eof.wait(), 5)


async def test_a_unix_socket_peer_works_the_same(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """How pollama reaches its runners: a Unix socket in a private directory."""
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = await r.readuntil(b"\r\n\r\n")
        assert head.startswith(b"POST /completion HTTP/1.1\r\n")
        await r.readexactly(int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(b'data: {"a": 1}\n\n') + b"0\r\n\r\n")
        await w.drain()
        w.close()

    path = str(tmp_path / "runner.sock")
    server = await asyncio.start_unix_server(handler, path)
    async with server:
        got = [json.loads(d) async for d in post_sse(path, "/completion", b"{}")]
    assert got == [{"a": 1}]
