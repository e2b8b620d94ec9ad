"""CORS and the Host-header guard (DNS-rebinding protection), as Ollama has them (§1)."""

from __future__ import annotations

import ipaddress
import re
import socket

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from pollama.envconfig import Settings

_DEFAULT_ORIGINS = [
    r"https?://localhost(:\d+)?", r"https?://127\.0\.0\.1(:\d+)?", r"https?://0\.0\.0\.0(:\d+)?",
    r"https?://\[::1\](:\d+)?", r"app://.*", r"file://.*", r"tauri://.*", r"vscode-webview://.*",
    r"vscode-file://.*",
]
_ALLOWED_HEADERS = [
    "Authorization", "Content-Type", "User-Agent", "Accept", "X-Requested-With", "OpenAI-Beta",
    "x-stainless-arch", "x-stainless-async", "x-stainless-custom-poll-interval",
    "x-stainless-helper-method", "x-stainless-lang", "x-stainless-os", "x-stainless-package-version",
    "x-stainless-poll-helper", "x-stainless-retry-count", "x-stainless-runtime",
    "x-stainless-runtime-version", "x-stainless-timeout",
]


def _origin_regex(extra: tuple[str, ...]) -> str:
    pats = list(_DEFAULT_ORIGINS)
    for o in extra:
        pats.append(".*" if o == "*" else re.escape(o).replace(r"\*", ".*"))
    return "^(" + "|".join(pats) + ")$"


def host_allowed(host_header: str) -> bool:
    """Ollama's rule for which Host headers a loopback-bound server accepts."""
    host = host_header.strip()
    if not host:
        return True
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    h = host.lower()
    if h in ("localhost", socket.gethostname().lower()) or h.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_unspecified or ip.is_link_local


class HostGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if not host_allowed(host):
                await send({"type": "http.response.start", "status": 403, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)


def install_middleware(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(
        CORSMiddleware,
        allow_origin_regex=_origin_regex(settings.origins),
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        allow_headers=_ALLOWED_HEADERS,
    )
    if settings.host.is_loopback:
        app.add_middleware(HostGuard)
