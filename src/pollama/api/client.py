"""A small synchronous client for the native API, used by the CLI (honours ``OLLAMA_HOST``)."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator
from typing import Any

import httpx

from pollama.envconfig import Settings


class APIError(Exception):
    """The server answered with an error (``{"error": ...}`` or a non-2xx status)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ServerUnreachable(Exception):
    pass


class Client:
    def __init__(self, settings: Settings, timeout: float | None = None) -> None:
        self.base_url = settings.host.url
        self.http = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(timeout, connect=5.0))

    def close(self) -> None:
        self.http.close()

    def heartbeat(self) -> None:
        try:
            self.http.head("/", timeout=5.0)
        except httpx.TransportError as e:
            raise ServerUnreachable(str(e)) from e

    def _check(self, r: httpx.Response) -> None:
        if r.status_code >= 400:
            try:
                msg = r.json().get("error") or r.text
            except ValueError:
                msg = r.text or r.reason_phrase
            raise APIError(str(msg), r.status_code)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            r = self.http.request(method, path, json=body)
        except httpx.TransportError as e:
            raise ServerUnreachable(str(e)) from e
        self._check(r)
        return r.json() if r.content else None

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST and yield each NDJSON line; a line with ``error`` raises :class:`APIError`."""
        try:
            with self.http.stream("POST", path, json=body) as r:
                if r.status_code >= 400:
                    r.read()
                    self._check(r)
                for line in r.iter_lines():
                    if not line.strip():
                        continue
                    obj = json.loads(line)
                    if "error" in obj:
                        raise APIError(str(obj["error"]), r.status_code)
                    yield obj
        except httpx.TransportError as e:
            raise ServerUnreachable(str(e)) from e

    # convenience wrappers
    def version(self) -> str:
        return str(self.request("GET", "/api/version")["version"])

    def list(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/api/tags")["models"])

    def ps(self) -> builtins.list[dict[str, Any]]:
        return list(self.request("GET", "/api/ps")["models"])

    def show(self, model: str, verbose: bool = False) -> dict[str, Any]:
        return dict(self.request("POST", "/api/show", {"model": model, "verbose": verbose}))

    def copy(self, source: str, destination: str) -> None:
        self.request("POST", "/api/copy", {"source": source, "destination": destination})

    def delete(self, model: str) -> None:
        self.request("DELETE", "/api/delete", {"model": model})
