#!/usr/bin/env python3
"""Concurrent streaming clients: pollama vs a raw llama.cpp server, in the same run.

* **Baseline**: an xllamacpp (llama.cpp) HTTP server started by this script with the same model
  file, threads, slots and per-slot context as pollama's runner — it is started through
  ``python -m pollama.runner``, which is nothing but ``xllamacpp.Server`` with those parameters,
  so the two differ only by pollama's server in front.
* **Load**: for 1, 4 and 8 concurrent clients, rounds in which every client streams one request
  of ``--tokens`` tokens (unique prompt each, identical prompts on both paths, temperature 0, the
  same sampling parameters); rounds alternate between the two targets. Aggregate tokens/s =
  generated tokens / wall time of the round, summed over rounds. Prints the ratio per level
  (target ≥ 0.95) and TTFT p50/p95 at 8 clients.
* **Prompt cache**: through pollama, a chat whose first turn carries a ~1,000-token system
  prompt, then a second turn; prints second-turn TTFT / first-turn TTFT (target ≤ 0.25).
* **Memory**: peak RSS of the pollama server process (runners excluded) while under load
  (target < 150 MB).

Usage: python bench/bench_concurrency.py [--rounds 3] [--tokens 64] [--threads 2] [--ctx 2048]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from pollama.store.bundled import BUNDLED, import_bundled  # noqa: E402
from pollama.store.model import load_model  # noqa: E402
from pollama.store.store import Store  # noqa: E402
from pollama.types.names import ModelName  # noqa: E402
from tests.integration.conftest import free_port, runner_pids  # noqa: E402

MODEL = "smollm2:135m"
SLOTS = 8
CHATML = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
STOP = ["<|im_start|>", "<|im_end|>"]
WORDS = ("apple river stone cloud maple ember falcon quartz harbor violet meadow cobalt lantern "
         "glacier orchid canyon willow beacon thistle copper").split()
# What pollama sends for these options (engine.inference._sampling) — the baseline gets the same.
SAMPLING = {"temperature": 0.0, "top_k": 40, "top_p": 0.9, "min_p": 0.0, "typical_p": 1.0, "repeat_penalty": 1.1,
            "repeat_last_n": 64, "presence_penalty": 0.0, "frequency_penalty": 0.0, "seed": 1}


@dataclass
class Result:
    ttft: float
    tokens: int


@dataclass
class Level:
    tokens: int = 0
    wall: float = 0.0
    ttfts: list[float] = field(default_factory=list)
    rounds: list[float] = field(default_factory=list)  # tokens/s of each round

    @property
    def rate(self) -> float:
        return self.tokens / self.wall if self.wall else 0.0


async def via_pollama(c: httpx.AsyncClient, prompt: str, n: int) -> Result:
    body = {"model": MODEL, "prompt": prompt, "raw": True, "keep_alive": -1,
            "options": {"temperature": 0, "seed": 1, "num_predict": n}}
    t0 = time.perf_counter()
    ttft, count = 0.0, 0
    async with c.stream("POST", "/api/generate", json=body) as r:
        async for line in r.aiter_lines():
            obj = json.loads(line)
            if obj.get("done"):
                count = int(obj.get("eval_count", 0))
            elif obj.get("response") and not ttft:
                ttft = time.perf_counter() - t0
            if "error" in obj:
                raise RuntimeError(obj["error"])
    return Result(ttft, count)


async def via_raw(c: httpx.AsyncClient, prompt: str, n: int) -> Result:
    body = {"prompt": prompt, "n_predict": n, "stream": True, "cache_prompt": True, "stop": STOP, "n_keep": 4,
            "return_tokens": True, **SAMPLING}
    t0 = time.perf_counter()
    ttft, count = 0.0, 0
    async with c.stream("POST", "/completion", json=body) as r:
        async for line in r.aiter_lines():
            if not line.startswith("data: "):
                continue
            obj = json.loads(line[6:])
            if obj.get("stop"):
                count = int(obj["timings"]["predicted_n"])
            elif obj.get("content") and not ttft:
                ttft = time.perf_counter() - t0
    return Result(ttft, count)


async def round_(target: str, client: httpx.AsyncClient, prompts: list[str], n: int, level: Level) -> None:
    fn = via_pollama if target == "pollama" else via_raw
    t0 = time.perf_counter()
    results = await asyncio.gather(*[fn(client, p, n) for p in prompts])
    wall = time.perf_counter() - t0
    level.wall += wall
    level.tokens += sum(r.tokens for r in results)
    level.rounds.append(sum(r.tokens for r in results) / wall)
    level.ttfts += [r.ttft for r in results]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


class RSSWatch(threading.Thread):
    """Peak VmRSS of one process, sampled every 100 ms while ``on`` is set."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.on, self.stop = pid, 0, threading.Event(), threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if self.on.is_set():
                self.peak = max(self.peak, rss(self.pid))
            time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def wait_up(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not come up")


def long_prefix(seed: int, words: int = 850) -> str:
    """About 1,000 tokens of varied text (SmolLM2's tokenizer: ~1.3 tokens per word here)."""
    out = []
    for i in range(words):
        out.append(WORDS[(i * 7 + seed * 3 + i // 5) % len(WORDS)])
        if i % 12 == 11:
            out[-1] += "."
    return "Background notes for this conversation: " + " ".join(out)


async def prompt_cache(c: httpx.AsyncClient, trials: int) -> list[tuple[float, float, int, int]]:
    rows = []
    for t in range(trials):
        msgs = [{"role": "system", "content": long_prefix(t)}, {"role": "user", "content": "Summarise the notes."}]
        body = {"model": MODEL, "options": {"num_predict": 8, "temperature": 0}, "keep_alive": -1}
        ttft1, final1, reply = await chat_ttft(c, {**body, "messages": msgs})
        msgs += [{"role": "assistant", "content": reply}, {"role": "user", "content": "And in one word?"}]
        ttft2, final2, _ = await chat_ttft(c, {**body, "messages": msgs})
        rows.append((ttft1, ttft2, int(final1.get("prompt_eval_count", 0)), int(final2.get("prompt_cache_count", 0))))
    return rows


async def chat_ttft(c: httpx.AsyncClient, body: dict[str, Any]) -> tuple[float, dict[str, Any], str]:
    t0 = time.perf_counter()
    ttft, text, final = 0.0, "", {}
    async with c.stream("POST", "/api/chat", json=body) as r:
        async for line in r.aiter_lines():
            obj = json.loads(line)
            if not ttft:
                ttft = time.perf_counter() - t0
            text += obj.get("message", {}).get("content", "")
            if obj.get("done"):
                final = obj
    return ttft, final, text


async def run(args: argparse.Namespace, pollama_url: str, raw_url: str, watch: RSSWatch) -> None:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=pollama_url, timeout=600, limits=limits) as pc, \
            httpx.AsyncClient(base_url=raw_url, timeout=600, limits=limits) as rc:
        clients = {"pollama": pc, "raw": rc}
        for target, c in clients.items():  # warm both: allocators, graphs, the page cache
            await round_(target, c, [CHATML.format("warm up")] * 2, 8, Level())
        levels: dict[int, dict[str, Level]] = {}
        server_cpu = 0.0
        for conc in args.levels:
            levels[conc] = {"pollama": Level(), "raw": Level()}
            for i in range(args.rounds):
                prompts = [CHATML.format(f"{WORDS[(i * 5 + k) % len(WORDS)]} {conc}-{i}-{k}. "
                                         "Write a long story about a lighthouse keeper.") for k in range(conc)]
                order = ["pollama", "raw"] if i % 2 == 0 else ["raw", "pollama"]
                for target in order:
                    watch.on.set() if target == "pollama" else watch.on.clear()
                    before = cpu_seconds(watch.pid)
                    await round_(target, clients[target], prompts, args.tokens, levels[conc][target])
                    if target == "pollama":
                        server_cpu += cpu_seconds(watch.pid) - before
            watch.on.clear()
            p, r = levels[conc]["pollama"], levels[conc]["raw"]
            print(f"{conc} client(s): pollama {p.rate:7.1f} tok/s ({p.tokens} tokens)   "
                  f"raw llama.cpp {r.rate:7.1f} tok/s ({r.tokens} tokens)   ratio {p.rate / r.rate:.3f}", flush=True)
        cache_rows = await prompt_cache(pc, args.cache_trials)

    print()
    print(f"machine: {os.cpu_count()} CPUs, model {MODEL}, {SLOTS} slots × ctx {args.ctx}, threads {args.threads}, "
          f"{args.tokens} tokens/request, {args.rounds} rounds per level and target")
    print(f"{'clients':>7} {'pollama tok/s':>14} {'raw tok/s':>10} {'ratio':>6} {'paired median':>14}  (target >= 0.95)")
    for conc, lv in levels.items():
        p, r = lv["pollama"], lv["raw"]
        paired = statistics.median(a / b for a, b in zip(p.rounds, r.rounds))  # rounds run back to back
        print(f"{conc:>7} {p.rate:>14.1f} {r.rate:>10.1f} {p.rate / r.rate:>6.3f} {paired:>14.3f}")
    top = max(levels)
    for target in ("pollama", "raw"):
        t = levels[top][target].ttfts
        print(f"TTFT at {top} clients, {target:<7}: p50 {pct(t, .5) * 1000:7.0f} ms   p95 {pct(t, .95) * 1000:7.0f} ms")
    ratios = [t2 / t1 for t1, t2, _, _ in cache_rows]
    for t1, t2, n1, cached in cache_rows:
        print(f"prompt cache: turn 1 TTFT {t1 * 1000:6.0f} ms ({n1} prompt tokens)   turn 2 TTFT {t2 * 1000:6.0f} ms "
              f"({cached} tokens from cache)")
    print(f"second-turn TTFT / first-turn TTFT (median): {statistics.median(ratios):.3f}  (target <= 0.25)")
    print(f"pollama server peak RSS under load (runners excluded): {watch.peak / 2**20:.0f} MB  (target < 150 MB)")
    generated = sum(lv["pollama"].tokens for lv in levels.values())
    print(f"pollama server CPU per generated token (request handling included): "
          f"{server_cpu / max(generated, 1) * 1000:.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--ctx", type=int, default=2048, help="context per slot")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--cache-trials", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        store = Store(models)
        for _ in import_bundled(store, ModelName.parse(MODEL), BUNDLED[MODEL]):
            pass
        blob = load_model(store, ModelName.parse(MODEL)).model_path
        port, raw_port = free_port(), free_port()
        env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(models),
               "PYTHONPATH": str(ROOT / "src"), "OLLAMA_NUM_PARALLEL": str(SLOTS),
               "OLLAMA_NUM_THREADS": str(args.threads), "OLLAMA_CONTEXT_LENGTH": str(args.ctx),
               "OLLAMA_KEEP_ALIVE": "-1"}
        server = subprocess.Popen([sys.executable, "-m", "pollama", "serve"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        raw = subprocess.Popen([sys.executable, "-m", "pollama.runner", "--model", str(blob), "--port", str(raw_port),
                                "--ctx", str(args.ctx), "--parallel", str(SLOTS), "--threads", str(args.threads),
                                "--batch", "512"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        watch = RSSWatch(server.pid)
        watch.start()
        try:
            wait_up(f"http://127.0.0.1:{port}", server, "pollama serve")
            wait_up(f"http://127.0.0.1:{raw_port}/health", raw, "raw llama.cpp server")
            httpx.post(f"http://127.0.0.1:{port}/api/generate", json={"model": MODEL, "keep_alive": -1}, timeout=300)
            [runner] = [p for p in runner_pids(models) if p != raw.pid]
            print(f"pollama server pid {server.pid} (runner {runner}); raw llama.cpp server pid {raw.pid}", flush=True)
            asyncio.run(run(args, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{raw_port}", watch))
        finally:
            watch.stop.set()
            server.terminate()
            raw.terminate()
            server.wait(30)
            raw.wait(30)


if __name__ == "__main__":
    main()
