#!/usr/bin/env python3
"""Schema-constrained vs unconstrained generation speed on the same prompt, same run, same runner.

Each round sends the prompt once with ``format`` = a JSON schema (one long string field, so the
constrained answer runs to ``num_predict`` like the free one) and once without, alternating order,
through pollama's ``/api/generate``. Decode rate is the server's own ``eval_count /
eval_duration``. Prints the medians and the ratio (target >= 0.8).

Usage: python bench/bench_structured.py [--rounds 8] [--tokens 96]
"""

from __future__ import annotations

import argparse
import os
import statistics

from _serve import MODEL, serve

SCHEMA = {"type": "object", "required": ["story"], "properties": {"story": {"type": "string"}}}
PROMPT = "Write a long story about a lighthouse keeper, as JSON with a 'story' field. Variant {}."


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=0, help="runner threads (0: all cores; 1 is faster on a busy machine)")
    args = ap.parse_args()
    with serve(args.threads) as (c, _, _):
        rates: dict[str, list[float]] = {"constrained": [], "free": []}
        for i in range(args.rounds + 1):
            order = ["constrained", "free"] if i % 2 == 0 else ["free", "constrained"]
            for kind in order:
                body = {"model": MODEL, "prompt": PROMPT.format(i), "stream": False,
                        "options": {"seed": i, "temperature": 0.7, "num_predict": args.tokens}}
                if kind == "constrained":
                    body["format"] = SCHEMA
                r = c.post("/api/generate", json=body).json()
                if i:  # round 0 warms the runner and the grammar compiler
                    rates[kind].append(r["eval_count"] / r["eval_duration"] * 1e9)
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(f"machine: {os.cpu_count()} CPUs, runner threads {args.threads or os.cpu_count()}, model {MODEL}, {args.tokens} tokens, {args.rounds} rounds")
        for k in ("constrained", "free"):
            print(f"{k:<12} {med[k]:8.1f} tokens/s (median)")
        print(f"ratio constrained/free: {med['constrained'] / med['free']:.3f}  (target >= 0.8)")


if __name__ == "__main__":
    main()
