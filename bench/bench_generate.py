#!/usr/bin/env python3
"""Single-stream generation: pollama's /api/generate vs the same request sent straight to the
runner's llama.cpp endpoint, in the same run, against the same runner process.

The runner listens on a Unix socket (that is how pollama talks to it), so the baseline client
reaches it there too; the client reaches pollama over loopback TCP, as every client does.

For each round, one request goes through pollama (streaming NDJSON) and one straight to the
runner's ``/completion`` (streaming SSE), alternating which goes first. Each request has a unique
prompt prefix so neither benefits from the other's prompt cache. Reported per path: median
client-side decode rate (tokens after the first / time from first to last token) and median
time to first token. Prints the tokens/s ratio (the median of the per-round ratios: the two
requests of a round run back to back, so the machine's drift cancels out) and the TTFT
difference, and the pollama server's own CPU time per streamed token (runner excluded) — on a
small machine every millisecond of it is taken from llama.cpp's threads.

Usage: python bench/bench_generate.py [--rounds 12] [--tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import httpx

from _serve import MODEL, runner_socket, serve

CHATML = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
STOP = ["<|im_start|>", "<|im_end|>"]
WORDS = "apple river stone cloud maple ember falcon quartz harbor violet meadow cobalt".split()


def via_pollama(c: httpx.Client, prompt: str, n: int) -> tuple[float, float, int]:
    body = {"model": MODEL, "prompt": prompt, "raw": True, "options": {"temperature": 0, "num_predict": n, "seed": 1}}
    t0 = time.perf_counter()
    first = last = 0.0
    count = 0
    with c.stream("POST", "/api/generate", json=body) as r:
        for line in r.iter_lines():
            obj = json.loads(line)
            if obj.get("done"):
                count = obj["eval_count"]
                break
            if obj.get("response"):
                last = time.perf_counter()
                first = first or last
    return first - t0, last - first, count


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def via_runner(c: httpx.Client, tokens: list[int], n: int) -> tuple[float, float, int]:
    body = {"prompt": tokens, "n_predict": n, "stream": True, "cache_prompt": True, "temperature": 0, "seed": 1,
            "top_k": 40, "top_p": 0.9, "min_p": 0.0, "typical_p": 1.0, "repeat_penalty": 1.1, "repeat_last_n": 64,
            "stop": STOP, "n_keep": 4, "return_tokens": True}
    t0 = time.perf_counter()
    first = last = 0.0
    count = 0
    with c.stream("POST", "/completion", json=body) as r:
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            obj = json.loads(line[6:])
            if obj.get("stop"):
                count = obj["timings"]["predicted_n"]
                break
            if obj.get("content"):
                last = time.perf_counter()
                first = first or last
    return first - t0, last - first, count


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--tokens", type=int, default=128)
    args = ap.parse_args()
    with serve(None) as (pc, models, server_pid):
        pc.post("/api/generate", json={"model": MODEL, "prompt": "warm up", "stream": False, "options": {"num_predict": 8}})
        rc = httpx.Client(base_url="http://runner", timeout=300,
                          transport=httpx.HTTPTransport(uds=runner_socket(models)))
        results: dict[str, list[tuple[float, float, int]]] = {"pollama": [], "runner": []}
        server_cpu = 0.0
        for i in range(args.rounds):
            prompts = [CHATML.format(f"{WORDS[i % len(WORDS)]} {i}{k}. Write a long story about a lighthouse keeper.")
                       for k in ("a", "b")]
            order = ["pollama", "runner"] if i % 2 == 0 else ["runner", "pollama"]
            for path, prompt in zip(order, prompts):
                if path == "pollama":
                    before = cpu_seconds(server_pid)
                    results[path].append(via_pollama(pc, prompt, args.tokens))
                    if i:
                        server_cpu += cpu_seconds(server_pid) - before
                else:
                    toks = rc.post("/tokenize", json={"content": prompt, "add_special": True, "parse_special": True}).json()["tokens"]
                    results[path].append(via_runner(rc, toks, args.tokens))
        summary = {}
        for path, rows in results.items():
            rows = rows[1:]  # the first round of each warms caches and allocators
            rates = [(n - 1) / d for _, d, n in rows if d > 0 and n > 1]
            summary[path] = (statistics.median(rates), statistics.median(t for t, _, _ in rows) * 1000)
        pairs = [(p[2] - 1) / p[1] / ((r[2] - 1) / r[1])
                 for p, r in zip(results["pollama"][1:], results["runner"][1:]) if p[1] > 0 and r[1] > 0]
        ratio = statistics.median(pairs)
        streamed = sum(n for _, _, n in results["pollama"][1:])
        ttft_diff = summary["pollama"][1] - summary["runner"][1]
        print(f"machine: {os.cpu_count()} CPUs, model {MODEL}, {args.tokens} tokens, {args.rounds} rounds")
        print(f"{'path':<10} {'tokens/s (median)':>18} {'TTFT ms (median)':>18}")
        for path, (rate, ttft) in summary.items():
            print(f"{path:<10} {rate:>18.1f} {ttft:>18.1f}")
        print(f"ratio pollama/runner tokens/s: {ratio:.3f}  (median of per-round ratios; "
              f"ratio of medians {summary['pollama'][0] / summary['runner'][0]:.3f}; target >= 0.95)")
        print(f"TTFT overhead: {ttft_diff:+.1f} ms  (target <= 10 ms)")
        print(f"pollama server CPU: {server_cpu / max(1, streamed) * 1000:.2f} ms per streamed token (runner excluded)")


if __name__ == "__main__":
    main()
