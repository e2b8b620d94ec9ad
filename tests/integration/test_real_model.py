"""The bundled model through a real runner process and a real server on a loopback port."""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import MODEL, LiveServer, runner_pids

pytestmark = pytest.mark.integration

SEEDED = {"seed": 1234, "temperature": 0.9, "num_predict": 24}


def generate(http: httpx.Client, prompt: str, **kw: Any) -> dict[str, Any]:
    r = http.post("/api/generate", json={"model": MODEL, "prompt": prompt, "stream": False, **kw})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_streaming_generate(http: httpx.Client) -> None:
    with http.stream("POST", "/api/generate", json={"model": MODEL, "prompt": "Name three colors.",
                                                     "options": {"num_predict": 20}}) as r:
        assert r.headers["content-type"] == "application/x-ndjson"
        chunks = [json.loads(line) for line in r.iter_lines() if line]
    final = chunks[-1]
    assert final["done"] is True and all(not c["done"] for c in chunks[:-1])
    text = "".join(c["response"] for c in chunks)
    assert text.strip() and final["eval_count"] <= 20
    assert 1 < len(chunks) <= final["eval_count"] + 1
    assert final["prompt_eval_count"] > 5 and final["eval_duration"] > 0 and final["total_duration"] > final["eval_duration"]
    assert len(final["context"]) >= final["prompt_eval_count"]


def test_non_streaming_generate_and_exact_num_predict(http: httpx.Client) -> None:
    body = generate(http, "Write a long story about a dragon.", options={"num_predict": 5})
    assert body["eval_count"] == 5 and body["done_reason"] == "length" and body["response"]


def test_chat_streaming_and_not(http: httpx.Client) -> None:
    msgs = [{"role": "user", "content": "Say hello."}]
    r = http.post("/api/chat", json={"model": MODEL, "messages": msgs, "options": {"num_predict": 16}})
    chunks = [json.loads(x) for x in r.text.splitlines()]
    assert chunks[-1]["done"] and "".join(c["message"]["content"] for c in chunks).strip()
    r = http.post("/api/chat", json={"model": MODEL, "messages": msgs, "stream": False, "options": {"num_predict": 16}})
    body = r.json()
    assert body["message"]["role"] == "assistant" and body["message"]["content"].strip()
    assert body["done_reason"] in ("stop", "length") and body["eval_count"] <= 16


def test_same_seed_reproduces_and_temperature_zero_is_deterministic(http: httpx.Client) -> None:
    a = generate(http, "Invent a name for a cat.", options=SEEDED)["response"]
    b = generate(http, "Invent a name for a cat.", options=SEEDED)["response"]
    assert a == b
    z1 = generate(http, "Invent a name for a dog.", options={"temperature": 0, "num_predict": 24})["response"]
    z2 = generate(http, "Invent a name for a dog.", options={"temperature": 0, "num_predict": 24})["response"]
    assert z1 == z2


def test_stop_sequence_stops_generation(http: httpx.Client) -> None:
    base = {"temperature": 0, "num_predict": 40}
    prompt = "Count from one to ten, separated by commas."
    full = generate(http, prompt, options=base)["response"]
    # A 3-character stop string that first occurs in the middle of the deterministic answer.
    pos = next(p for p in range(len(full) // 3, len(full) - 3)
               if full.find(full[p:p + 3]) == p and full[p:p + 3].strip())
    stop = full[pos:pos + 3]
    cut = generate(http, prompt, options={**base, "stop": [stop]})
    assert cut["response"] == full[:pos], (full, stop)
    assert cut["done_reason"] == "stop" and cut["eval_count"] < 40


def test_generation_ends_at_the_context_limit(http: httpx.Client) -> None:
    body = generate(http, "Write an endless list of numbers.", options={"num_ctx": 128, "num_predict": -1, "temperature": 0})
    assert body["done_reason"] == "length"
    assert body["prompt_eval_count"] + body["eval_count"] <= 128


def test_copy_delete_and_keep_alive_zero(http: httpx.Client) -> None:
    assert http.post("/api/copy", json={"source": MODEL, "destination": "copied:v1"}).status_code == 200
    names = [m["name"] for m in http.get("/api/tags").json()["models"]]
    assert "copied:v1" in names and MODEL in names
    body = http.post("/api/generate", json={"model": "copied:v1", "prompt": "hi", "stream": False,
                                             "options": {"num_predict": 2}}).json()
    assert body["done"] is True
    assert http.request("DELETE", "/api/delete", json={"model": "copied:v1"}).status_code == 200
    assert "copied:v1" not in [m["name"] for m in http.get("/api/tags").json()["models"]]
    # keep_alive 0 with an empty prompt unloads now; ps is empty afterwards
    generate(http, "hi", options={"num_predict": 2})
    assert http.get("/api/ps").json()["models"]
    r = http.post("/api/generate", json={"model": MODEL, "keep_alive": 0}).json()
    assert r["done_reason"] == "unload"
    assert http.get("/api/ps").json()["models"] == []


def test_the_runner_listens_on_a_private_unix_socket_that_goes_with_it(live: LiveServer, http: httpx.Client) -> None:
    """Only the server's user can reach a runner (no loopback port any local process could use),
    and unloading removes the socket's directory."""
    generate(http, "hi", options={"num_predict": 2})
    [pid] = runner_pids(live.models)
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"--port" not in args
    sock = Path(args[args.index(b"--socket") + 1].decode())
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700 and sock.parent.stat().st_uid == os.getuid()
    listening = Path("/proc/net/tcp").read_text() + Path("/proc/net/tcp6").read_text()
    inodes = {link.readlink().name for link in Path(f"/proc/{pid}/fd").iterdir() if link.readlink().name.startswith("socket:")}
    listeners = {line.split()[9] for line in listening.splitlines()[1:] if line.split()[3] == "0A"}  # 0A: LISTEN
    assert not {i[len("socket:["):-1] for i in inodes} & listeners, "the runner listens on a TCP port"
    assert http.post("/api/generate", json={"model": MODEL, "keep_alive": 0}).json()["done_reason"] == "unload"
    assert not sock.parent.exists()


def test_runner_killed_mid_stream_then_recovers(live: LiveServer, http: httpx.Client) -> None:
    generate(http, "warm up", options={"num_predict": 2})
    [pid] = runner_pids(live.models)
    lines: list[dict[str, Any]] = []
    with http.stream("POST", "/api/generate", json={"model": MODEL, "prompt": "Tell me a very long story.",
                                                     "options": {"num_predict": 400}}) as r:
        for line in r.iter_lines():
            lines.append(json.loads(line))
            if len(lines) == 3:
                os.kill(pid, signal.SIGKILL)
    assert "error" in lines[-1] and "runner" in lines[-1]["error"]
    assert all("error" not in x for x in lines[:3])
    body = generate(http, "Are you back?", options={"num_predict": 4})
    assert body["done"] is True and body["eval_count"] >= 1
    assert runner_pids(live.models) and runner_pids(live.models) != [pid]


def test_parallel_requests_share_one_runner(http: httpx.Client, live: LiveServer) -> None:
    results: list[dict[str, Any]] = []

    def worker(i: int) -> None:
        with live.client() as c:
            results.append(c.post("/api/generate", json={"model": MODEL, "prompt": f"Number {i}:", "stream": False,
                                                          "options": {"num_predict": 8}}).json())

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 3 and all(r.get("done") for r in results)
    assert len(runner_pids(live.models)) == 1
