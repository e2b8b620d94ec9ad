"""Shared by the benches: a temporary store with the bundled model and a real ``pollama serve``."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from pollama.store.bundled import BUNDLED, import_bundled  # noqa: E402
from pollama.store.store import Store  # noqa: E402
from pollama.types.names import ModelName  # noqa: E402
from tests.integration.conftest import free_port, runner_pids  # noqa: E402

MODEL = "smollm2:135m"


def runner_socket(models: Path) -> str:
    """The Unix socket the (one) runner serving ``models`` listens on."""
    [pid] = runner_pids(models)
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return args[args.index(b"--socket") + 1].decode()


@contextmanager
def serve(threads: int | None = 0) -> Iterator[tuple[httpx.Client, Path, int]]:
    """Yield a client for a fresh server, its models directory and the server's pid
    (``threads``: per runner, 0 = all cores, None = pollama's own default)."""
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        for _ in import_bundled(Store(models), ModelName.parse(MODEL), BUNDLED[MODEL]):
            pass
        port = free_port()
        env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(models),
               "PYTHONPATH": str(ROOT / "src")}
        if threads is not None:
            env["OLLAMA_NUM_THREADS"] = str(threads)
        server = subprocess.Popen([sys.executable, "-m", "pollama", "serve"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    httpx.get(base, timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            with httpx.Client(base_url=base, timeout=600) as c:
                yield c, models, server.pid
        finally:
            server.terminate()
            server.wait(20)
