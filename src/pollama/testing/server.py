"""Start a throwaway ``pollama serve`` for a test session (the ``llm_server`` fixture).

The server runs as a subprocess on a free loopback port with a temporary model store into which
the bundled model is imported offline (:func:`pollama.store.bundled.import_bundled`), so a test
session needs no network and never touches the user's own store or port 11434.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["LLMServer", "ServerStartError", "free_port", "start_pollama", "terminate", "wait_until_up"]


class ServerStartError(RuntimeError):
    """The server could not be started or reached; the message says why and what to do."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def terminate(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM ``proc`` (a server stops its runners on it), then SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class LLMServer:
    """A server under test: its base URL, and the process when this session started it."""

    url: str
    model: str
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    kind: str = "external"  # "pollama" (started here), "external" (--llm-url) or "replay"
    _log_file: IO[bytes] | None = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def wait_until_up(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerStartError(f"pollama serve exited with status {proc.returncode}")
        try:
            if httpx.get(url + "/api/version", timeout=2).status_code == 200:
                return
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.1)
    raise ServerStartError(f"no Ollama-compatible server answered at {url} within {timeout:g} s ({last})")


def start_pollama(model: str, workdir: Path, *, timeout: float = 60.0, env: dict[str, str] | None = None) -> LLMServer:
    """Import ``model`` (a bundled one) into ``workdir/models`` and start ``pollama serve`` on a
    free loopback port. ``OLLAMA_NUM_PARALLEL`` defaults to 2 so concurrency can be measured."""
    from pollama.store.bundled import ALIASES, BUNDLED, import_bundled
    from pollama.store.store import Store
    from pollama.types.names import ModelName

    canonical = ALIASES.get(model, model)
    if canonical not in BUNDLED:
        raise ServerStartError(
            f"model {model!r} is not bundled with pollama (bundled: {', '.join(BUNDLED)}); "
            "serve it yourself and pass --llm-url URL (or set POLLAMA_TEST_URL)"
        )
    models = workdir / "models"
    store = Store(models)
    try:
        for _ in import_bundled(store, ModelName.parse(canonical), BUNDLED[canonical]):
            pass
    except Exception as exc:
        raise ServerStartError(f"could not import the bundled model {canonical!r}: {exc}") from exc
    port = free_port()
    environ: dict[str, Any] = {**os.environ, **(env or {})}
    environ.setdefault("OLLAMA_NUM_PARALLEL", "2")
    environ.update({"OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(models), "PYTHONUNBUFFERED": "1"})
    log = workdir / "serve.log"
    f = log.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "pollama", "serve"], env=environ, stdout=f, stderr=subprocess.STDOUT)
    server = LLMServer(f"http://127.0.0.1:{port}", canonical, proc, log, "pollama", f)
    try:
        wait_until_up(server.url, timeout, proc)
    except ServerStartError as exc:
        server.stop()
        raise ServerStartError(f"{exc}; server log:\n{server.log_text()[-2000:]}") from None
    return server
