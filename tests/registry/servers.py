"""Loopback servers for registry tests: Starlette apps in a uvicorn thread, and a TCP proxy that
can throttle and counts the bytes it forwards each way."""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ServedApp:
    """Run an ASGI app on ``host`` (any 127.x address) in a background thread."""

    def __init__(self, app: Any, host: str = "127.0.0.1") -> None:
        self.app = app
        self.host = host
        self.port = free_port(host)
        self.netloc = f"{host}:{self.port}"
        self.url = f"http://{self.netloc}"
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port, log_level="error",
                                                    lifespan="off", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServedApp:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class CountingProxy:
    """Forward ``127.0.0.1:<port>`` to a target; count bytes each way (``sent``: server→client,
    ``received``: client→server); optionally throttle what the server sends."""

    def __init__(self, target_port: int, rate: float | None = None) -> None:
        self.target_port = target_port
        self.rate = rate  # bytes per second, None = as fast as possible
        self.sent = 0
        self.received = 0
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(32)
        self.port = int(self.listener.getsockname()[1])
        self.host = f"127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        _pipe(src, dst, self._sent if count else self._received, 16384 if self.rate else 262144)

    def _received(self, n: int) -> None:
        with self._lock:
            self.received += n

    def _sent(self, n: int) -> None:
        with self._lock:
            self.sent += n
        if self.rate:
            time.sleep(n / self.rate)

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


class ForwardProxy:
    """A minimal HTTP forward proxy on loopback: absolute-form requests and ``CONNECT``.

    Records each request line and its ``Proxy-Authorization``; with ``credentials`` set, answers
    407 to requests without them. After the first request of a connection it pipes bytes.
    """

    def __init__(self, credentials: str | None = None) -> None:
        self.credentials = credentials
        self.seen: list[tuple[str, str, str, str]] = []  # (method, target, proxy-authorization, range)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(32)
        self.port = int(self.listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk:
                client.close()
                return
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = [h for h in lines[1:] if not h.lower().startswith("proxy-authorization:")]
        auth = next((h.split(":", 1)[1].strip() for h in lines[1:] if h.lower().startswith("proxy-authorization:")), "")
        rng = next((h.split(":", 1)[1].strip() for h in lines[1:] if h.lower().startswith("range:")), "")
        self.seen.append((method, target, auth, rng))
        if self.credentials is not None and auth != self.credentials:
            client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            client.close()
            return
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            first = rest
        else:
            u = urllib.parse.urlsplit(target)
            upstream = socket.create_connection((u.hostname or "", u.port or 80))
            path = (u.path or "/") + (f"?{u.query}" if u.query else "")
            first = f"{method} {path} {version}\r\n".encode() + "\r\n".join(headers).encode() + b"\r\n\r\n" + rest
        upstream.sendall(first)
        threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
        _pipe(upstream, client)

    def close(self) -> None:
        self.listener.close()


def _pipe(src: socket.socket, dst: socket.socket, on_data: Callable[[int], None] | None = None,
          size: int = 262144) -> None:
    """Copy ``src`` to ``dst`` until either side closes; then close both."""
    try:
        while data := src.recv(size):
            dst.sendall(data)
            if on_data is not None:
                on_data(len(data))
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
