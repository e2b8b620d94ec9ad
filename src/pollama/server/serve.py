"""``pollama serve``: build the engine and app, and run uvicorn on ``OLLAMA_HOST``."""

from __future__ import annotations

import errno
import logging
import socket
import sys

import uvicorn

from pollama.engine import Engine
from pollama.envconfig import Settings
from pollama.server.app import create_app


def configure_logging(debug: int) -> None:
    level = logging.DEBUG if debug >= 1 else logging.INFO
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.basicConfig(level=level, format="time=%(asctime)s level=%(levelname)s source=%(name)s msg=%(message)s",
                        stream=sys.stderr)


def bind_socket(settings: Settings) -> socket.socket:
    host = settings.host.host or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto says
    # TCP, and without it small streamed writes wait ~40 ms for delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, settings.host.port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise SystemExit(f"Error: listen tcp {host}:{settings.host.port}: bind: address already in use")
        raise SystemExit(f"Error: listen tcp {host}:{settings.host.port}: {e.strerror}")
    sock.listen(2048)
    return sock


def run_server(settings: Settings) -> None:
    configure_logging(settings.debug)
    log = logging.getLogger("pollama.server")
    sock = bind_socket(settings)
    engine = Engine(settings)
    engine.store.ensure()
    if not settings.noprune:
        engine.store.prune_startup()
    app = create_app(engine)
    log.info("Listening on %s (version %s)", f"{settings.host.host or '0.0.0.0'}:{settings.host.port}", app.version)
    config = uvicorn.Config(app, log_level="warning", access_log=settings.debug >= 1, timeout_graceful_shutdown=10,
                            lifespan="on")
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
