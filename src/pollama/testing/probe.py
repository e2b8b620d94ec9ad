"""``pollama probe``: the standard behaviour suite, measured, against any Ollama-compatible server.

It runs the tutorial's four observations as measurements:

1. **the call works**: rate of complete, non-empty answers (over the basic calls and every
   latency call);
2. **it takes time**: latency profile (server timings, TTFT, p50–p99 with intervals, cold start);
3. **outputs vary**: determinism profile (seed/temperature settings, concurrency, diagnosis) and
   the structured-output contract (validity in three modes);
4. **ambiguous prompts get over-inferred**: the clarification probe.

Each check is a :class:`~pollama.testing.stats.Measurement` with a verdict. The result
(:class:`ProbeRun`) renders to JSON, JUnit XML and a self-contained HTML report
(:mod:`pollama.testing.report`). The default sizes are chosen to finish in a few minutes on a
two-core CPU with the bundled 135M model; raise them for tighter intervals.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pollama.testing.client import LLM, Result
from pollama.testing.measure import (
    ClarificationProbe,
    DeterminismProfile,
    LatencyProfile,
    StructuredProfile,
    clarification_probe,
    determinism_profile,
    latency_profile,
    structured_output_profile,
)
from pollama.testing.stats import Measurement, Verdict, rate_measurement

__all__ = ["Check", "ProbeRun", "ProbeSettings", "run_probe"]

BASIC_PROMPT = "请用一句话解释什么是操作系统。"


@dataclass
class ProbeSettings:
    """Sample sizes, generation caps and thresholds of a probe run (the CLI's options)."""

    basic_n: int = 3
    latency_n: int = 10
    latency_num_predict: int = 16
    determinism_n: int = 4
    determinism_num_predict: int = 12
    structured_n: int = 4
    structured_num_predict: int = 40
    clarify_n: int = 1
    clarify_num_predict: int = 32
    structured_max_reasks: int = 1
    seed: int = 42
    temperature: float = 0.8
    confidence: float = 0.95
    judge: str | None = None
    # thresholds (the CLI exposes each as an option)
    works_at_least: float = 0.75
    ttft_p50_at_most: float = 2.0
    gen_rate_p50_at_least: float = 5.0
    validity_at_least: float = 0.5
    over_inference_at_most: float = 0.5

    def steps(self) -> int:
        """The number of model calls the run makes (re-asks aside), for a progress bar."""
        return (self.basic_n + self.latency_n + 1 + 4 * self.determinism_n + 3 * self.structured_n
                + 12 * self.clarify_n * (2 if self.judge else 1))


@dataclass(frozen=True)
class Check:
    """One named check of the run, in one of the four observation groups."""

    group: str
    measurement: Measurement

    def as_dict(self) -> dict[str, Any]:
        m = self.measurement
        return {"group": self.group, "name": m.name, "estimate": _num(m.estimate), "interval": [_num(x) for x in m.interval],
                "n": m.n, "verdict": m.verdict.value, "threshold": m.threshold, "direction": m.direction,
                "unit": m.unit, "describe": m.describe()}


def _num(x: float) -> float | str | None:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


@dataclass
class ProbeRun:
    """Everything a probe measured."""

    url: str
    model: str
    settings: ProbeSettings
    started: str
    duration: float = 0.0
    fingerprint: dict[str, Any] = field(default_factory=dict)
    basic: list[Result] = field(default_factory=list)
    latency: LatencyProfile | None = None
    determinism: DeterminismProfile | None = None
    structured: StructuredProfile | None = None
    clarification: ClarificationProbe | None = None
    checks: list[Check] = field(default_factory=list)

    def verdict_counts(self) -> dict[str, int]:
        out = {v.value: 0 for v in Verdict}
        for c in self.checks:
            out[c.measurement.verdict.value] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        lat = self.latency
        return {
            "tool": "pollama probe", "url": self.url, "model": self.model, "started": self.started,
            "duration_s": self.duration, "settings": asdict(self.settings), "fingerprint": self.fingerprint,
            "verdicts": self.verdict_counts(),
            "checks": [c.as_dict() for c in self.checks],
            "basic": [{"text": r.text, "done_reason": r.done_reason, "timings": r.timings.as_dict()} for r in self.basic],
            "latency": None if lat is None else {
                "summary": lat.summary(), "cold": lat.cold_summary(),
                "samples": [r.timings.as_dict() for r in lat.warm],
            },
            "determinism": None if self.determinism is None else self.determinism.as_dict(),
            "structured": None if self.structured is None else self.structured.as_dict(),
            "clarification": None if self.clarification is None else self.clarification.as_dict(),
        }


def _works(r: Result) -> bool:
    return bool(r.text.strip()) and bool(r.final.get("done", True))


def build_checks(run: ProbeRun) -> list[Check]:
    """Turn the profiles of a run into its checks (pure: the HTML/JUnit tests build runs by hand)."""
    s = run.settings
    checks: list[Check] = []
    calls = list(run.basic) + (run.latency.warm if run.latency else [])
    if run.latency and run.latency.cold:
        calls.append(run.latency.cold)
    if calls:
        ok = sum(_works(r) for r in calls)
        checks.append(Check("1. the call works", rate_measurement(
            "complete non-empty answers", ok, len(calls), s.works_at_least, "at_least", s.confidence,
            knob="--works-at-least")))
        checks.append(Check("1. the call works", _cap_honoured(calls, s.latency_num_predict)))
    if run.latency:
        for metric, q, kw in (("ttft", 50, {"at_most": s.ttft_p50_at_most}),
                              ("gen_rate", 50, {"at_least": s.gen_rate_p50_at_least})):
            m = run.latency.measure(metric, q, **kw)
            opt = "--ttft-p50" if metric == "ttft" else "--gen-rate-p50"
            checks.append(Check("2. it takes time", _with_knob(m, opt)))
    if run.determinism:
        a = run.determinism.conditions.get("seed_t0")
        if a:
            checks.append(Check("3. outputs vary", _with_knob(a.measure_agreement(1.0), "n/a (exact)")))
        d = run.determinism.conditions.get("concurrent")
        if d:
            checks.append(Check("3. outputs vary", _with_knob(d.measure_agreement(1.0), "n/a (exact)")))
        honoured = run.determinism.seed_honoured
        val = {True: 1.0, False: 0.0, None: math.nan}[honoured]
        verdict = {True: Verdict.PASS, False: Verdict.FAIL, None: Verdict.INCONCLUSIVE}[honoured]
        checks.append(Check("3. outputs vary", Measurement("seed honoured", val, (val, val), len(
            run.determinism.conditions.get("seed_t", a).results if a else []), verdict, 1.0, "at_least",
            knob="more samples or a more open-ended prompt")))
    if run.structured:
        for mode, mr in run.structured.modes.items():
            checks.append(Check("3. outputs vary", _with_knob(mr.measure(s.validity_at_least, s.confidence),
                                                              "--validity-at-least")))
    if run.clarification:
        m = run.clarification.measure("answers", at_most=s.over_inference_at_most)
        checks.append(Check("4. ambiguity is over-inferred", _with_knob(m, "--over-inference-at-most")))
    return checks


def _cap_honoured(calls: list[Result], cap: int) -> Measurement:
    """A canary: every call asked for at most ``cap`` tokens; did the server stop there? An exact
    property (one overrun is a FAIL); INCONCLUSIVE when the server reports no ``eval_count``."""
    counts = [r.final.get("eval_count") for r in calls]
    known = [c for c in counts if isinstance(c, int)]
    if not known:
        return Measurement("num_predict honoured", math.nan, (math.nan, math.nan), 0, Verdict.INCONCLUSIVE, 1.0,
                           "at_least", knob="a server that reports eval_count")
    val = sum(c <= cap for c in known) / len(known)
    return Measurement("num_predict honoured", val, (val, val), len(known), Verdict.PASS if val == 1.0 else Verdict.FAIL,
                       1.0, "at_least", knob=f"n/a (exact: eval_count <= {cap})")


def _with_knob(m: Measurement, knob: str) -> Measurement:
    return Measurement(m.name, m.estimate, m.interval, m.n, m.verdict, m.threshold, m.direction, m.unit, knob)


def run_probe(
    llm: LLM,
    settings: ProbeSettings | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ProbeRun:
    """Run the standard suite; ``progress(stage)`` is called after every model call."""
    s = settings or ProbeSettings()
    start = clock()
    run = ProbeRun(llm.url, llm.model, s, dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    run.fingerprint = llm.info()

    def tick(stage: str) -> Callable[[], None]:
        return (lambda: progress(stage)) if progress else (lambda: None)

    run.latency = latency_profile(llm, s.latency_n, num_predict=s.latency_num_predict, confidence=s.confidence,
                                  progress=tick("latency"))
    for _ in range(s.basic_n):
        run.basic.append(llm.generate(BASIC_PROMPT, options={"num_predict": s.latency_num_predict}))
        tick("basic call")()
    run.determinism = determinism_profile(llm, s.determinism_n, seed=s.seed, temperature=s.temperature,
                                          num_predict=s.determinism_num_predict, progress=tick("determinism"))
    run.structured = structured_output_profile(llm, s.structured_n, num_predict=s.structured_num_predict,
                                               max_reasks=s.structured_max_reasks, progress=tick("structured output"))
    judge = llm.with_model(s.judge) if s.judge else None
    run.clarification = clarification_probe(llm, s.clarify_n, num_predict=s.clarify_num_predict, judge=judge,
                                            progress=tick("clarification"))
    run.checks = build_checks(run)
    run.duration = clock() - start
    return run
