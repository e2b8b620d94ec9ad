"""Scheduling and concurrency with real runners: two models, eviction, keep-alive expiry, parallel
slots, the queue limit, a client that hangs up, reloads, the prompt cache and SIGTERM.

Three small servers with different knobs; every generation is short. Timing assertions compare
against rates measured in the same test, because the machine is shared and slow.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pollama.store.bundled import BUNDLED, import_bundled
from pollama.store.store import Store
from pollama.types.names import ModelName
from tests.integration.conftest import MODEL, LiveServer, free_port, runner_pids, start_server, stop_server

pytestmark = pytest.mark.integration

GEMMA = "gemma3:270m"
BUSY = "server busy, please try again.  maximum pending requests exceeded"
COUNT = "Count from one to one hundred, one number per line."


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models2")
    store = Store(root)
    for name in (MODEL, GEMMA):
        for _ in import_bundled(store, ModelName.parse(name), BUNDLED[name]):
            pass
    return root


def serve(models: Path, tmp: pytest.TempPathFactory, **env: str) -> LiveServer:
    return start_server(models, free_port(), tmp.mktemp("log") / "serve.log", OLLAMA_NUM_THREADS="1", **env)


@pytest.fixture(scope="module")
def wide(two_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Four slots per model, a queue of two, two models at most."""
    server = serve(two_models, tmp_path_factory, OLLAMA_NUM_PARALLEL="4", OLLAMA_MAX_QUEUE="2",
                   OLLAMA_MAX_LOADED_MODELS="2")
    yield server
    stop_and_check(server)


@pytest.fixture(scope="module")
def narrow(two_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One slot, one model at most, a 1 s shutdown grace."""
    server = serve(two_models, tmp_path_factory, OLLAMA_NUM_PARALLEL="1", OLLAMA_MAX_LOADED_MODELS="1",
                   POLLAMA_SHUTDOWN_TIMEOUT="1s")
    yield server
    stop_and_check(server)


def runners(server: LiveServer) -> list[int]:
    """PIDs of this server's runner processes (the module's servers share a models directory)."""
    out = []
    for pid in runner_pids(server.models):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == server.proc.pid:
            out.append(pid)
    return out


def stop_and_check(server: LiveServer) -> None:
    pids = runners(server)
    stop_server(server)
    assert wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in pids), 5), "runners outlived the server"


def wait_for(cond: Any, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


def ps(server: LiveServer) -> list[dict[str, Any]]:
    return list(httpx.get(server.url + "/api/ps", timeout=30).json()["models"])


def post(server: LiveServer, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=300)


def gen(model: str = MODEL, prompt: str = COUNT, n: int = 8, **kw: Any) -> dict[str, Any]:
    opts = {"num_predict": n, "temperature": 0, **kw.pop("options", {})}
    return {"model": model, "prompt": prompt, "stream": False, "options": opts, **kw}


class Stream(threading.Thread):
    """A streaming request in a thread, recording when each chunk arrives."""

    def __init__(self, server: LiveServer, body: dict[str, Any], stop_after: int | None = None) -> None:
        super().__init__(daemon=True)
        self.server, self.body, self.stop_after = server, {**body, "stream": True}, stop_after
        self.times: list[float] = []
        self.lines: list[dict[str, Any]] = []
        self.status = 0
        self.started = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=300) as c, c.stream("POST", self.server.url + "/api/generate", json=self.body) as r:
            self.status = r.status_code
            for line in r.iter_lines():
                if not line:
                    continue
                self.times.append(time.monotonic())
                self.lines.append(json.loads(line))
                self.started.set()
                if self.stop_after is not None and len(self.lines) >= self.stop_after:
                    return  # leaving the with-blocks closes the connection: the client hangs up
        self.started.set()


def test_four_streams_are_served_together(wide: LiveServer) -> None:
    post(wide, "/api/generate", gen(n=1))  # loaded before the clock starts
    streams = [Stream(wide, gen(prompt=f"{COUNT} Start at {i}.", n=12)) for i in range(4)]
    for s in streams:
        s.start()
    for s in streams:
        s.join(300)
    assert all(s.status == 200 and s.lines[-1]["done"] for s in streams)
    first_done = min(s.times[-1] for s in streams)
    assert all(s.times[0] < first_done for s in streams)  # tokens from all four before any finished
    assert all(sum(1 for t in s.times if t < first_done) >= 3 for s in streams)


def test_queue_overflow_is_503_and_every_accepted_request_completes(wide: LiveServer) -> None:
    post(wide, "/api/generate", gen(n=1))
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        r = post(wide, "/api/generate", gen(prompt=f"{COUNT} ({i})", n=12))
        with lock:
            results.append(r)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    ok = [r.json() for r in results if r.status_code == 200]
    busy = [r for r in results if r.status_code == 503]
    assert len(ok) + len(busy) == 9 and len(ok) >= 6 and busy  # 4 slots + 2 queued; the rest refused
    assert all(r.json() == {"error": BUSY} for r in busy)
    assert all(b["done"] and 0 < b["eval_count"] <= 12 and b["response"] for b in ok)


def test_two_models_loaded_at_once_listed_by_remaining_time(wide: LiveServer) -> None:
    post(wide, "/api/generate", gen(MODEL, n=1, keep_alive="5m"))
    post(wide, "/api/generate", gen(GEMMA, n=1, keep_alive="10m"))
    models = ps(wide)
    assert [m["name"] for m in models] == [f"{GEMMA}", f"{MODEL}"]
    now = dt.datetime.now().astimezone()
    for m, ahead in zip(models, (600, 300)):
        assert m["size"] > 50_000_000 and m["size_vram"] == 0 and m["context_length"] == 4096
        assert abs((dt.datetime.fromisoformat(m["expires_at"]) - now).total_seconds() - ahead) < 30
    assert len(runners(wide)) == 2


def test_reload_on_num_ctx_change_but_not_on_sampling_options(wide: LiveServer) -> None:
    [m] = [m for m in ps(wide) if m["name"] == MODEL]
    before = set(runners(wide))
    assert m["context_length"] == 4096
    post(wide, "/api/generate", gen(MODEL, n=1, options={"num_ctx": 2048}))
    [m] = [m for m in ps(wide) if m["name"] == MODEL]
    reloaded = set(runners(wide))
    assert m["context_length"] == 2048 and len(reloaded) == len(before) and reloaded != before
    post(wide, "/api/generate", gen(MODEL, n=1, options={"num_ctx": 2048, "temperature": 0.7, "top_k": 5, "seed": 3}))
    assert set(runners(wide)) == reloaded  # sampling options share the runner


def test_prompt_cache_is_reused_on_the_next_turn(wide: LiveServer) -> None:
    system = "You are a helpful assistant who answers questions about geography. " * 12
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": "Name a river."}]
    body = {"model": MODEL, "stream": False, "options": {"num_predict": 4, "temperature": 0, "num_ctx": 2048}}
    one = post(wide, "/api/chat", {**body, "messages": msgs}).json()
    msgs += [one["message"], {"role": "user", "content": "Name a mountain."}]
    two = post(wide, "/api/chat", {**body, "messages": msgs}).json()
    assert two["prompt_cache_count"] >= one["prompt_eval_count"] - 8  # the whole first turn, more or less
    assert two["prompt_eval_count"] < 40 < one["prompt_eval_count"]


def test_keep_alive_expiry_unloads_the_runner(wide: LiveServer) -> None:
    post(wide, "/api/generate", gen(GEMMA, n=1, keep_alive="2s"))
    [m] = [m for m in ps(wide) if m["name"] == GEMMA]
    left = (dt.datetime.fromisoformat(m["expires_at"]) - dt.datetime.now().astimezone()).total_seconds()
    assert 0 < left <= 2.5
    assert wait_for(lambda: all(m["name"] != GEMMA for m in ps(wide)), 10)


def test_a_client_that_hangs_up_frees_its_slot_for_the_next(narrow: LiveServer) -> None:
    body = gen(MODEL, n=400, options={"num_ctx": 2048})
    post(narrow, "/api/generate", {**body, "options": {**body["options"], "num_predict": 1}})
    abandoned = Stream(narrow, body, stop_after=6)
    abandoned.start()
    assert abandoned.started.wait(120)
    waiting = Stream(narrow, {**body, "options": {**body["options"], "num_predict": 3}})
    waiting.start()
    abandoned.join(120)
    hung_up = time.monotonic()
    rate = (len(abandoned.times) - 1) / max(abandoned.times[-1] - abandoned.times[0], 1e-3)  # tokens/s
    would_finish = hung_up + (400 - len(abandoned.times)) / rate
    waiting.join(300)
    assert waiting.status == 200 and waiting.lines[-1]["done"]
    # It started long before the abandoned generation would have finished (one slot only).
    assert waiting.times[0] - hung_up < 0.25 * (would_finish - hung_up), (waiting.times[0] - hung_up, would_finish - hung_up)


def test_eviction_at_the_model_limit(narrow: LiveServer) -> None:
    post(narrow, "/api/generate", gen(MODEL, n=1, options={"num_ctx": 2048}))  # loaded by the test before
    [small] = runners(narrow)
    post(narrow, "/api/generate", gen(GEMMA, n=1))
    assert [m["name"] for m in ps(narrow)] == [GEMMA]
    assert wait_for(lambda: small not in runners(narrow), 5)
    assert len(runners(narrow)) == 1


def test_sigterm_ends_streams_with_an_error_line_and_leaves_no_runner(narrow: LiveServer) -> None:
    """Runs last on ``narrow`` (its shutdown timeout is 1 s) and stops it."""
    long = Stream(narrow, gen(GEMMA, n=2000))
    long.start()
    assert long.started.wait(120)
    pids = runners(narrow)
    t0 = time.monotonic()
    narrow.proc.send_signal(signal.SIGTERM)
    long.join(30)
    narrow.proc.wait(30)
    took = time.monotonic() - t0
    assert long.lines[-1] == {"error": "server is shutting down"}
    # uvicorn re-raises the signal once it has shut down cleanly, so the status is "killed by SIGTERM".
    assert narrow.proc.returncode in (0, -signal.SIGTERM) and took < 10, (narrow.proc.returncode, took)
    assert "Traceback" not in narrow.log_text()
    assert pids and not any(os.path.exists(f"/proc/{p}") for p in pids)
    with pytest.raises(httpx.TransportError):
        httpx.get(narrow.url, timeout=2)
