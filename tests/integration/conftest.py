"""Real parts: the bundled model, a real ``pollama serve`` process on a loopback port, real runners."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pollama.store.bundled import BUNDLED, import_bundled
from pollama.store.store import Store
from pollama.testing.server import ServerStartError, free_port, terminate, wait_until_up
from pollama.types.names import ModelName
from tests.factories import add_model

MODEL = "smollm2:135m"
SHORT = "smollm2-short:135m"


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def runner_pids(models_dir: Path) -> list[int]:
    """PIDs of runner processes serving a blob from ``models_dir``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"pollama.runner" in cmd and any(str(models_dir).encode() in c for c in cmd):
            out.append(int(d.name))
    return out


@dataclass
class LiveServer:
    url: str
    port: int
    models: Path
    proc: subprocess.Popen[bytes]
    log: Path
    log_file: Any = None

    def client(self, timeout: float = 300) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(models: Path, port: int, log: Path, **env: str) -> LiveServer:
    environ = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(models),
               "PYTHONUNBUFFERED": "1", **env}
    f = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "pollama", "serve"], env=environ, stdout=f, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, 90, proc)
    except ServerStartError as exc:
        terminate(proc)
        f.close()
        raise RuntimeError(f"{exc}: {log.read_text()}") from None
    return LiveServer(url, port, models, proc, log, f)


def stop_server(server: LiveServer) -> None:
    terminate(server.proc)
    if server.log_file is not None:
        server.log_file.close()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the bundled model (imported offline from its Python package)."""
    root = tmp_path_factory.mktemp("models")
    store = Store(root)
    for _ in import_bundled(store, ModelName.parse(MODEL), BUNDLED[MODEL]):
        pass
    # A variant with short answers (as `FROM smollm2:135m` + `PARAMETER num_predict 24` would make),
    # for tests that go through interfaces with no per-request options, such as `pollama run`.
    add_model(store, SHORT, store.blob_path(store.entry(ModelName.parse(MODEL)).manifest.layers[0].digest),
              params={**BUNDLED[MODEL].params, "num_predict": 24})
    return root


@pytest.fixture(scope="session")
def live(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("logs") / "serve.log"
    server = start_server(models_dir, free_port(), log, OLLAMA_NUM_PARALLEL="2")
    yield server
    stop_server(server)
    time.sleep(0.5)
    assert runner_pids(models_dir) == [], "runner processes outlived the server"


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with live.client() as c:
        yield c
