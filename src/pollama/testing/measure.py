"""Measurements of an LLM as a system component, as library functions and as assertions.

Each function drives an :class:`~pollama.testing.client.LLM` and returns a profile object that
holds the raw results and turns them into :class:`~pollama.testing.stats.Measurement` s
(an estimate, a confidence interval, and a PASS / FAIL / INCONCLUSIVE verdict):

* :func:`latency_profile`: server-side timings (load, prompt-eval rate, generation rate, total)
  and client TTFT; p50/p90/p95/p99 with bootstrap intervals; the cold call reported apart.
* :func:`determinism_profile`: repeated samples under (a) seed + temperature 0, (b) seed +
  temperature T, (c) no seed, and (d) condition (a) sent concurrently; distinct outputs,
  pairwise agreement, first divergence (character and streamed-token index), whether the seed
  was honoured, and a diagnosis naming the likely source of variation.
* :func:`structured_output_profile`: schema-validity rate in three modes: prompt-only,
  ``format``-constrained (the server constrains sampling with a grammar), and retry-with-feedback
  (a :class:`~pollama.guard.Guard` re-ask that shows the model its validation error).
* :func:`clarification_probe`: paired ambiguous/clear prompts (Chinese and English, including
  the tutorial's 「请判断这个方案是否合理。」), each answer classified by :func:`classify_reply`
  and optionally by a judge model, with the judge's agreement (and Cohen's κ) reported.
* :func:`sample_rate`: sequential sampling of a yes/no property that stops as soon as the
  verdict is certain.

:func:`check` turns a measurement into an assertion: FAIL raises :class:`MeasurementFailed`,
INCONCLUSIVE raises :class:`MeasurementInconclusive` (by default; never a silent pass). Both are
``AssertionError`` s whose message says how to loosen the threshold.
"""

from __future__ import annotations

import logging
import math
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pollama.testing.client import LLM, LLMHTTPError, Result, Timings
from pollama.testing.stats import (
    Direction,
    Measurement,
    SequentialRate,
    Verdict,
    decide,
    distinct_count,
    first_divergence,
    pairwise_agreement,
    percentile,
    percentile_ci,
    rate_measurement,
    wilson_interval,
)

__all__ = [
    "CLARIFY_PAIRS",
    "ClarificationProbe",
    "Condition",
    "DeterminismProfile",
    "LatencyProfile",
    "MeasurementFailed",
    "MeasurementInconclusive",
    "PromptPair",
    "StructuredProfile",
    "check",
    "clarification_probe",
    "classify_reply",
    "cohen_kappa",
    "determinism_profile",
    "latency_profile",
    "latency_measurement",
    "sample_rate",
    "structured_output_profile",
]

InconclusivePolicy = Literal["fail", "xfail", "warn"]

# The retry mode's guard rejects invalid answers by design; its events are counted in the
# profile, so they are not also logged as warnings.
_GUARD_LOG = logging.getLogger("pollama.testing.measure.guard")
_GUARD_LOG.addHandler(logging.NullHandler())
_GUARD_LOG.propagate = False

# --------------------------------------------------------------------------- assertions


class MeasurementFailed(AssertionError):
    """A measurement's interval lies wholly on the bad side of its threshold."""

    def __init__(self, measurement: Measurement) -> None:
        super().__init__(measurement.describe())
        self.measurement = measurement


class MeasurementInconclusive(AssertionError):
    """A measurement's interval straddles its threshold: not enough evidence either way."""

    def __init__(self, measurement: Measurement) -> None:
        super().__init__(measurement.describe())
        self.measurement = measurement


def check(measurement: Measurement, inconclusive: InconclusivePolicy = "fail") -> Measurement:
    """Assert a measurement. PASS returns it; FAIL raises :class:`MeasurementFailed`;
    INCONCLUSIVE raises :class:`MeasurementInconclusive` (``"fail"``), calls ``pytest.xfail``
    (``"xfail"``) or emits a :class:`UserWarning` (``"warn"``)."""
    if measurement.verdict is Verdict.FAIL:
        raise MeasurementFailed(measurement)
    if measurement.verdict is Verdict.INCONCLUSIVE:
        if inconclusive == "xfail":
            import pytest

            pytest.xfail(f"INCONCLUSIVE: {measurement.describe()}")
        elif inconclusive == "warn":
            import warnings

            warnings.warn(f"INCONCLUSIVE: {measurement.describe()}", UserWarning, stacklevel=2)
        else:
            raise MeasurementInconclusive(measurement)
    return measurement


def _bound(at_most: float | None, at_least: float | None) -> tuple[float, Direction]:
    if (at_most is None) == (at_least is None):
        raise ValueError("give exactly one of at_most= or at_least=")
    return (at_most, "at_most") if at_most is not None else (at_least, "at_least")  # type: ignore[return-value]


# --------------------------------------------------------------------------- latency

LatencyMetric = Literal["ttft", "wall", "total", "load", "prompt_eval", "eval", "gen_rate", "prompt_rate", "overhead"]
METRIC_UNITS: dict[str, str] = {
    "ttft": "s", "wall": "s", "total": "s", "load": "s", "prompt_eval": "s", "eval": "s",
    "gen_rate": "tok/s", "prompt_rate": "tok/s", "overhead": "s",
}
PERCENTILES = (50, 90, 95, 99)


def metric_value(t: Timings, metric: str) -> float | None:
    if metric not in METRIC_UNITS:
        raise ValueError(f"unknown latency metric {metric!r} (expected one of: {', '.join(METRIC_UNITS)})")
    v = getattr(t, metric)
    return None if v is None else float(v)


def latency_measurement(
    name: str,
    samples: Sequence[float],
    q: float,
    threshold: float,
    direction: Direction,
    confidence: float = 0.95,
    unit: str = "",
    knob: str = "the `at_most=`/`at_least=` argument",
) -> Measurement:
    """A percentile :class:`Measurement` with a bootstrap interval.

    The bootstrap under-covers tail percentiles of small samples, so a PASS also needs the
    distribution-free order-statistic interval to be finite on the side that matters (for p95
    at 95% confidence that takes at least 72 samples); otherwise the verdict is INCONCLUSIVE
    and says how many samples are needed.
    """
    if not samples:
        return Measurement(name, math.nan, (-math.inf, math.inf), 0, Verdict.INCONCLUSIVE, threshold, direction, unit, knob)
    interval = percentile_ci(samples, q, confidence)
    verdict = decide(interval, threshold, direction)
    if verdict is Verdict.PASS:
        lo, hi = percentile_ci(samples, q, confidence, method="order")
        if (direction == "at_most" and math.isinf(hi)) or (direction == "at_least" and math.isinf(lo)):
            verdict = Verdict.INCONCLUSIVE
            knob = f"{knob}; p{q:g} needs at least {min_samples_for(q, confidence, direction)} samples to be bounded"
    return Measurement(name, percentile(samples, q), interval, len(samples), verdict, threshold, direction, unit, knob)


def min_samples_for(q: float, confidence: float = 0.95, direction: Direction = "at_most") -> int:
    """Smallest n for which the order-statistic interval of the q-th percentile is bounded on
    the side a ``direction`` check needs.

    >>> min_samples_for(95)
    72
    >>> min_samples_for(50)
    6
    """
    p = q / 100.0
    alpha = (1 - confidence) / 2
    for n in range(1, 100000):
        tail = p**n if direction == "at_most" else (1 - p) ** n
        if tail <= alpha:
            return n
    return 100000


@dataclass
class LatencyProfile:
    """Warm calls (the samples) and the cold first call, with percentile helpers."""

    warm: list[Result]
    cold: Result | None = None
    confidence: float = 0.95

    def samples(self, metric: str) -> list[float]:
        out = [metric_value(r.timings, metric) for r in self.warm]
        return [v for v in out if v is not None]

    def percentile(self, metric: str, q: float) -> tuple[float, tuple[float, float]]:
        xs = self.samples(metric)
        if not xs:
            return math.nan, (math.nan, math.nan)
        return percentile(xs, q), percentile_ci(xs, q, self.confidence)

    def summary(self) -> dict[str, dict[str, Any]]:
        """``{metric: {"n": n, "p50": [est, lo, hi], …, "mean": m}}`` for metrics with data."""
        out: dict[str, dict[str, Any]] = {}
        for metric in METRIC_UNITS:
            xs = self.samples(metric)
            if not xs:
                continue
            row: dict[str, Any] = {"n": len(xs), "unit": METRIC_UNITS[metric], "mean": statistics.fmean(xs)}
            for q in PERCENTILES:
                est, (lo, hi) = self.percentile(metric, q)
                row[f"p{q}"] = [est, lo, hi]
            out[metric] = row
        return out

    def cold_summary(self) -> dict[str, Any] | None:
        return None if self.cold is None else self.cold.timings.as_dict()

    def measure(self, metric: str, q: float = 95, *, at_most: float | None = None,
                at_least: float | None = None) -> Measurement:
        """The q-th percentile of ``metric`` over the warm calls, against a bound."""
        threshold, direction = _bound(at_most, at_least)
        arg = "at_most" if direction == "at_most" else "at_least"
        return latency_measurement(
            f"p{q:g} {metric}", self.samples(metric), q, threshold, direction, self.confidence,
            METRIC_UNITS.get(metric, ""), knob=f"`{arg}=` (now {threshold:g})",
        )


DEFAULT_LATENCY_PROMPTS = (
    "请用一句话解释什么是操作系统。",
    "请简要说明 TCP 和 UDP 的区别。",
    "Explain in one sentence what an operating system is.",
    "Briefly explain the difference between TCP and UDP.",
)


def latency_profile(
    llm: LLM,
    n: int = 20,
    *,
    prompts: Sequence[str] = DEFAULT_LATENCY_PROMPTS,
    num_predict: int = 32,
    stream: bool = True,
    cold: bool = True,
    options: Mapping[str, Any] | None = None,
    confidence: float = 0.95,
    progress: Callable[[], None] | None = None,
) -> LatencyProfile:
    """Measure ``n`` warm calls (streamed, so TTFT is measured), cycling through ``prompts``.

    With ``cold=True`` the model is first unloaded (``keep_alive: 0``) and the first call is kept
    apart as the cold start: its ``load`` time is the model load, and it is not among the warm
    samples whose percentiles are reported.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    opts = {"num_predict": num_predict, **(options or {})}
    cold_result: Result | None = None
    if cold:
        llm.unload()
        cold_result = llm.generate(prompts[0], stream=stream, options=opts)
        if progress:
            progress()
    warm = []
    for i in range(n):
        warm.append(llm.generate(prompts[i % len(prompts)], stream=stream, options=opts))
        if progress:
            progress()
    return LatencyProfile(warm, cold_result, confidence)


# --------------------------------------------------------------------------- determinism


@dataclass
class Condition:
    """Samples taken under one setting, and what they show."""

    name: str
    label: str
    results: list[Result]
    seed: int | None
    temperature: float
    concurrent: bool = False

    @property
    def outputs(self) -> list[str]:
        return [r.text for r in self.results]

    @property
    def distinct(self) -> int:
        return distinct_count(self.outputs)

    @property
    def agreement(self) -> float:
        return pairwise_agreement(self.outputs)

    def divergence(self) -> dict[str, Any] | None:
        """The earliest first divergence between the first sample and any other: character index,
        streamed-token index, and an excerpt."""
        base = self.results[0] if self.results else None
        best: dict[str, Any] | None = None
        for other in self.results[1:]:
            d = first_divergence(base.text, other.text) if base else None
            if d is not None and (best is None or d[0] < best["char"]):
                best = {"char": d[0], "token": base.token_index(d[0]) if base else None, "excerpt": d[1]}
        return best

    def measure_agreement(self, at_least: float = 1.0) -> Measurement:
        """Pairwise agreement against a bound. With ``at_least=1.0`` it PASSes only when every
        sample agrees (an exact statement about the samples taken, so its interval is the point)."""
        a = self.agreement
        pairs = len(self.results) * (len(self.results) - 1) // 2
        verdict = Verdict.PASS if a >= at_least else Verdict.FAIL
        if pairs == 0:
            verdict = Verdict.INCONCLUSIVE
        return Measurement(f"pairwise agreement ({self.label})", a, (a, a), len(self.results), verdict, at_least,
                           "at_least", knob="`at_least=` (agreement)")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "label": self.label, "seed": self.seed, "temperature": self.temperature,
            "concurrent": self.concurrent, "n": len(self.results), "distinct": self.distinct,
            "agreement": self.agreement, "divergence": self.divergence(), "outputs": self.outputs,
        }


@dataclass
class DeterminismProfile:
    conditions: dict[str, Condition]
    prompt: str

    @property
    def seed_honoured(self) -> bool | None:
        """True: same seed ⇒ same output while no seed ⇒ different outputs. False: the same seed
        gave different outputs although temperature 0 was stable. None: not decidable here
        (e.g. the prompt's output does not vary at all)."""
        a, b, c = (self.conditions.get(k) for k in ("seed_t0", "seed_t", "no_seed"))
        if b is None:
            return None
        if b.distinct > 1:
            return False if (a is None or a.distinct == 1) else None
        if c is not None and c.distinct > 1:
            return True
        return None

    def diagnosis(self) -> list[str]:
        """Plain-language findings naming the likely source of each variation."""
        c = self.conditions
        out: list[str] = []
        a = c.get("seed_t0")
        if a is not None:
            if a.distinct == 1:
                out.append(f"stable: {len(a.results)} sequential samples at temperature 0 with a seed are identical")
            else:
                rest = a.outputs[1:]
                if len(rest) > 1 and len(set(rest)) == 1 and rest[0] != a.outputs[0]:
                    out.append("only the first call differs at temperature 0 → prompt/KV cache effect")
                else:
                    out.append(f"diverges even at temperature 0 with a seed ({a.distinct} distinct of {len(a.results)}) "
                               "→ numerical nondeterminism in the runtime")
        d = c.get("concurrent")
        if d is not None and a is not None:
            if a.distinct == 1 and d.distinct > 1:
                out.append(f"stable sequentially, diverges under concurrency ({d.distinct} distinct of "
                           f"{len(d.results)}) → batch-dependent variation")
            elif d.distinct == 1:
                out.append("concurrent identical requests agree → no batch-dependent variation observed")
        honoured = self.seed_honoured
        b = c.get("seed_t")
        if honoured is True and b is not None:
            out.append(f"seed honoured: same seed at temperature {b.temperature:g} gives the same output; no seed varies")
        elif honoured is False and b is not None:
            out.append(f"seed NOT honoured: the same seed at temperature {b.temperature:g} gave {b.distinct} distinct outputs")
        nc = c.get("no_seed")
        if nc is not None:
            if nc.distinct > 1:
                out.append(f"sampling noise: without a seed {nc.distinct} distinct outputs of {len(nc.results)}")
            else:
                out.append("no variation without a seed: this prompt's output is insensitive to sampling")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "seed_honoured": self.seed_honoured, "diagnosis": self.diagnosis(),
                "conditions": {k: v.as_dict() for k, v in self.conditions.items()}}


CREATIVE_PROMPT = "Write a one-line poem about the sea."
DETERMINISM_SETTINGS = ("seed_t0", "seed_t", "no_seed", "concurrent")


def determinism_profile(
    llm: LLM,
    n: int = 5,
    *,
    prompt: str = CREATIVE_PROMPT,
    seed: int = 42,
    temperature: float = 0.8,
    num_predict: int = 24,
    settings: Sequence[str] = DETERMINISM_SETTINGS,
    options: Mapping[str, Any] | None = None,
    progress: Callable[[], None] | None = None,
) -> DeterminismProfile:
    """Sample ``prompt`` ``n`` times under each setting (streamed, so divergence has a token index).

    ``seed_t0``: seed + temperature 0; ``seed_t``: seed + ``temperature``; ``no_seed``:
    ``temperature`` without a seed; ``concurrent``: ``seed_t0`` sent as ``n`` simultaneous
    requests (to expose batch-dependent variation the server needs parallel slots, e.g.
    ``OLLAMA_NUM_PARALLEL>=2``).
    """
    unknown = set(settings) - set(DETERMINISM_SETTINGS)
    if unknown:
        raise ValueError(f"unknown determinism settings {sorted(unknown)} (expected: {', '.join(DETERMINISM_SETTINGS)})")
    if n < 2:
        raise ValueError(f"n must be >= 2 to compare samples, got {n}")
    base = {"num_predict": num_predict, **(options or {})}
    specs = {
        "seed_t0": ("seed + temperature 0", {"seed": seed, "temperature": 0.0}, False),
        "seed_t": (f"seed + temperature {temperature:g}", {"seed": seed, "temperature": temperature}, False),
        "no_seed": (f"no seed, temperature {temperature:g}", {"temperature": temperature}, False),
        "concurrent": ("seed + temperature 0, concurrent", {"seed": seed, "temperature": 0.0}, True),
    }
    conditions: dict[str, Condition] = {}
    for name in settings:
        label, opts, concurrent = specs[name]
        merged = {**base, **opts}

        def one(merged: dict[str, Any] = merged) -> Result:
            r = llm.stream(prompt, options=merged)
            if progress:
                progress()
            return r

        results = llm.concurrently([one] * n) if concurrent else [one() for _ in range(n)]
        seed_used = opts.get("seed")
        conditions[name] = Condition(name, label, results, None if seed_used is None else int(seed_used),
                                     float(opts["temperature"]), concurrent)
    return DeterminismProfile(conditions, prompt)


# --------------------------------------------------------------------------- structured output

TUTORIAL_JSON_PROMPT = "请给出一个 JSON，对象中包含 name 和 age 两个字段。"
PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
STRUCTURED_MODES = ("prompt", "format", "retry")


def validate_json(text: str, schema: Mapping[str, Any]) -> str | None:
    """``None`` if ``text`` is JSON (a Markdown fence is tolerated) valid against ``schema``, else
    the reason."""
    from pollama.guard import ValidationFailed, make_validator

    try:
        make_validator(dict(schema))(text)
    except ValidationFailed as exc:
        return exc.error
    return None


@dataclass
class ModeResult:
    mode: str
    valid: int = 0
    n: int = 0
    reasks: int = 0
    errors: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.valid / self.n if self.n else math.nan

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        return wilson_interval(self.valid, self.n, confidence)

    def measure(self, at_least: float = 0.9, confidence: float = 0.95) -> Measurement:
        return rate_measurement(f"schema validity ({self.mode})", self.valid, self.n, at_least, "at_least",
                                confidence, knob="`at_least=` (validity)")

    def as_dict(self) -> dict[str, Any]:
        lo, hi = self.interval()
        return {"mode": self.mode, "valid": self.valid, "n": self.n, "rate": self.rate, "interval": [lo, hi],
                "reasks": self.reasks, "errors": self.errors[:10], "outputs": self.outputs[:10],
                "median_wall": statistics.median(self.walls) if self.walls else None}


@dataclass
class StructuredProfile:
    modes: dict[str, ModeResult]
    prompt: str
    schema: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "schema": self.schema, "modes": {k: v.as_dict() for k, v in self.modes.items()}}


def structured_output_profile(
    llm: LLM,
    n: int = 8,
    *,
    prompt: str = TUTORIAL_JSON_PROMPT,
    schema: Mapping[str, Any] = PERSON_SCHEMA,
    modes: Sequence[str] = STRUCTURED_MODES,
    num_predict: int = 64,
    max_reasks: int = 2,
    options: Mapping[str, Any] | None = None,
    progress: Callable[[], None] | None = None,
) -> StructuredProfile:
    """Validity of JSON answers against ``schema`` in each mode (``n`` requests per mode).

    ``prompt``: the prompt alone. ``format``: the schema sent as ``format`` (the server
    constrains sampling with a grammar). ``retry``: prompt-only, but an invalid answer is
    re-asked up to ``max_reasks`` times with the validation error appended (a
    :class:`~pollama.guard.Guard`); valid means valid after re-asks, and re-asks are counted.
    """
    from pollama.guard import Guard, GuardFailed, append_to_prompt

    unknown = set(modes) - set(STRUCTURED_MODES)
    if unknown:
        raise ValueError(f"unknown structured-output modes {sorted(unknown)} (expected: {', '.join(STRUCTURED_MODES)})")
    opts = {"num_predict": num_predict, **(options or {})}
    out: dict[str, ModeResult] = {}
    for mode in modes:
        mr = ModeResult(mode)
        for _ in range(n):
            mr.n += 1
            if mode == "retry":
                def ask(prompt: str) -> Result:
                    r = llm.generate(prompt, options=opts)
                    mr.walls.append(r.timings.wall)
                    mr.outputs.append(r.text)
                    return r

                guard = Guard(ask, extract=lambda r: r.text, validate=dict(schema), reask=append_to_prompt("prompt"),
                              max_reasks=max_reasks, retries=0, name="structured-retry", logger=_GUARD_LOG)
                try:
                    g = guard.call(prompt=prompt)
                    mr.valid += 1
                    mr.reasks += sum(1 for e in g.events if e.kind == "reask")
                except GuardFailed as exc:
                    mr.reasks += sum(1 for e in exc.events if e.kind == "reask")
                    mr.errors.append(str(exc.last_error))
            else:
                r = llm.generate(prompt, options=opts, format=dict(schema) if mode == "format" else None)
                mr.walls.append(r.timings.wall)
                mr.outputs.append(r.text)
                err = validate_json(r.text, schema)
                if err is None:
                    mr.valid += 1
                else:
                    mr.errors.append(err)
            if progress:
                progress()
        out[mode] = mr
    return StructuredProfile(out, prompt, dict(schema))


# --------------------------------------------------------------------------- clarification

Label = Literal["asks", "assumes", "answers"]
LABELS: tuple[Label, ...] = ("asks", "assumes", "answers")
LABEL_TEXT = {"asks": "asks for clarification", "assumes": "states assumptions",
              "answers": "answers as if context existed"}


@dataclass(frozen=True)
class PromptPair:
    """An ambiguous request and the same request with the missing context supplied."""

    id: str
    lang: str
    ambiguous: str
    clear: str


CLARIFY_PAIRS: tuple[PromptPair, ...] = (
    PromptPair("plan-zh", "zh", "请判断这个方案是否合理。",
               "请判断这个方案是否合理：为了方便员工记忆，把公司所有服务器的密码统一设置为 123456。"),
    PromptPair("improve-zh", "zh", "帮我把它改得更好一些。",
               "帮我把这句话改得更通顺：“我昨天去了商店和买了苹果。”"),
    PromptPair("price-zh", "zh", "这个多少钱？", "一杯美式咖啡在北京的咖啡店通常多少钱？"),
    PromptPair("plan-en", "en", "Is this plan reasonable?",
               "Is this plan reasonable: we store all user passwords in plain text so support staff can read them."),
    PromptPair("bug-en", "en", "Fix the bug.",
               "Fix the bug: `def add(a, b): return a - b` should return the sum of a and b."),
    PromptPair("time-en", "en", "How long will it take?", "How long does it take to hard-boil an egg?"),
)

# The heuristic (documented in docs/toolkit.md). Patterns are matched case-insensitively.
ASK_PATTERNS = (
    # English: a request for the missing information
    r"\b(could|can|would|will) you (please )?(provide|share|clarify|specify|tell me|give me|describe|paste|"
    r"send|post|show me|explain (what|which))",
    r"\bplease (provide|share|clarify|specify|tell me|describe|paste|send|give)",
    r"\b(need|want|require|have) (a bit |some )?(more|additional|further) (details|context|information|info)\b",
    r"\b(more|additional|further) (details|context|information|info) (about|on|regarding|is needed|are needed)",
    r"\bwhat (plan|bug|code|item|product|task|exactly|specifically|do you mean|are you referring)\b",
    r"\bwhich (plan|one|bug|item|product|task)\b[^.?!]*\?",
    r"\bcan you be more specific\b",
    # Chinese
    r"请提供", r"请问", r"能否(提供|告诉|说明|分享|补充)", r"可以(提供|告诉|说明|分享|补充)", r"请(告诉|说明|补充|描述|分享|具体)",
    r"(具体|指的)是(什么|哪)", r"哪(个|一个|种)[^。？！]*[？?]", r"更多(的)?(信息|细节|背景|上下文|内容)", r"(您|你)(指的是|说的是|想要)[^。]*[？?]",
)
ASSUME_PATTERNS = (
    r"\bassum(e|es|ed|ing|ption)\b", r"\bI'?ll take it\b", r"\blet'?s say\b", r"\bsuppos(e|ing)\b",
    r"\bif you (mean|are referring|'re referring|meant)\b", r"\bwithout (more|further|additional|any) (context|details|information)\b",
    r"\bit depends\b", r"\bdepends on\b",
    r"假设", r"假定", r"如果(您|你)?(指的是|是指|说的是)", r"由于(没有|缺乏|缺少)", r"在没有[^。]*(信息|细节|背景)", r"取决于",
)
_ASK = [re.compile(p, re.IGNORECASE) for p in ASK_PATTERNS]
_ASSUME = [re.compile(p, re.IGNORECASE) for p in ASSUME_PATTERNS]
_QUESTION_TO_USER = re.compile(r"[^.!?。！？\n]*\b(you|your)\b[^.!?。！？\n]*\?|[^。！？.!?\n]*(您|你)[^。！？.!?\n]*[？?]", re.IGNORECASE)


def classify_reply(text: str) -> Label:
    """Classify an answer to a possibly ambiguous request (the documented heuristic).

    1. ``asks``: it requests the missing information: a request phrase (``could you provide``,
       ``please specify``, ``more details``, ``what plan``; 请提供, 请问, 能否告诉, 更多信息,
       具体是什么…) or a question addressed to the user (a sentence with *you*/您/你 ending in ?/？).
    2. ``assumes``: otherwise, it says it is filling the gap: *assuming*, *let's say*, *if you
       mean*, *without more context*, *it depends*; 假设, 假定, 如果您指的是, 由于没有, 取决于…
    3. ``answers``: otherwise: it answered as if the context existed (over-inference).

    >>> classify_reply("Could you share the plan you want me to review?")
    'asks'
    >>> classify_reply("请提供更多关于该方案的信息。")
    'asks'
    >>> classify_reply("Assuming you mean the migration plan, it looks fine.")
    'assumes'
    >>> classify_reply("这个方案非常合理，因为它考虑了成本和效率。")
    'answers'
    """
    if any(p.search(text) for p in _ASK) or _QUESTION_TO_USER.search(text):
        return "asks"
    if any(p.search(text) for p in _ASSUME):
        return "assumes"
    return "answers"


JUDGE_PROMPT = """You are grading how an assistant handled a request.

Request: {request}

Reply: {reply}

Classify the reply as exactly one of:
- "asks": it asks the user for the missing information or a clarification;
- "assumes": it answers but explicitly states an assumption about the missing information;
- "answers": it answers as if all needed context had been given.
Answer with JSON: {{"label": "asks" | "assumes" | "answers"}}"""
JUDGE_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"label": {"type": "string", "enum": list(LABELS)}},
                                "required": ["label"]}


def judge_reply(judge: LLM, request: str, reply: str) -> Label | None:
    """Ask a judge model (any served model) for a label, with a JSON-schema-constrained answer;
    ``None`` when it answered something unusable."""
    r = judge.generate(JUDGE_PROMPT.format(request=request, reply=reply[:1500]), format=JUDGE_SCHEMA,
                       options={"temperature": 0, "seed": 0, "num_predict": 24})
    try:
        label = r.json().get("label")
    except (ValueError, AttributeError):
        return None
    return label if label in LABELS else None


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's κ between two labelings (1 = perfect, 0 = chance); NaN when undefined.

    >>> cohen_kappa(["x", "y", "x"], ["x", "y", "x"])
    1.0
    """
    n = len(a)
    if n == 0 or n != len(b):
        return math.nan
    po = sum(x == y for x, y in zip(a, b)) / n
    cats = set(a) | set(b)
    pe = sum((list(a).count(c) / n) * (list(b).count(c) / n) for c in cats)
    return 1.0 if pe == 1.0 and po == 1.0 else (po - pe) / (1 - pe) if pe < 1 else math.nan


@dataclass
class Reply:
    pair: str
    kind: Literal["ambiguous", "clear"]
    prompt: str
    text: str
    label: Label
    judge: Label | None = None


@dataclass
class ClarificationProbe:
    replies: list[Reply]
    judge_model: str | None = None
    confidence: float = 0.95

    def _of(self, kind: str) -> list[Reply]:
        return [r for r in self.replies if r.kind == kind]

    def rate(self, label: Label, kind: Literal["ambiguous", "clear"] = "ambiguous") -> tuple[int, int]:
        rs = self._of(kind)
        return sum(r.label == label for r in rs), len(rs)

    def measure(self, label: Label, *, kind: Literal["ambiguous", "clear"] = "ambiguous",
                at_most: float | None = None, at_least: float | None = None) -> Measurement:
        """E.g. ``measure("answers", at_most=0.5)``: over-inference on ambiguous prompts at most 50%."""
        threshold, direction = _bound(at_most, at_least)
        k, n = self.rate(label, kind)
        arg = "at_most" if direction == "at_most" else "at_least"
        return rate_measurement(f"{LABEL_TEXT[label]} rate ({kind} prompts)", k, n, threshold, direction,
                                self.confidence, knob=f"`{arg}=` (now {threshold:g})")

    def length_ratio(self) -> float | None:
        """Median length of answers to ambiguous prompts over answers to clear ones."""
        amb = [len(r.text) for r in self._of("ambiguous")]
        clr = [len(r.text) for r in self._of("clear")]
        if not amb or not clr or statistics.median(clr) == 0:
            return None
        return statistics.median(amb) / statistics.median(clr)

    def judge_agreement(self) -> dict[str, Any] | None:
        judged = [r for r in self.replies if r.judge is not None]
        if self.judge_model is None:
            return None
        if not judged:
            return {"model": self.judge_model, "n": 0, "agreement": None, "kappa": None}
        k = sum(r.judge == r.label for r in judged)
        lo, hi = wilson_interval(k, len(judged), self.confidence)
        return {"model": self.judge_model, "n": len(judged), "agreement": k / len(judged), "interval": [lo, hi],
                "kappa": cohen_kappa([r.label for r in judged], [str(r.judge) for r in judged]),
                "unusable": sum(1 for r in self.replies if r.judge is None)}

    def as_dict(self) -> dict[str, Any]:
        rates: dict[str, Any] = {}
        for kind in ("ambiguous", "clear"):
            for label in LABELS:
                k, n = self.rate(label, kind)
                rates[f"{kind}.{label}"] = {"k": k, "n": n, "rate": k / n if n else None,
                                            "interval": list(wilson_interval(k, n, self.confidence))}
        return {"rates": rates, "length_ratio": self.length_ratio(), "judge": self.judge_agreement(),
                "replies": [r.__dict__ for r in self.replies]}


def clarification_probe(
    llm: LLM,
    n: int = 2,
    *,
    pairs: Sequence[PromptPair] = CLARIFY_PAIRS,
    num_predict: int = 96,
    judge: LLM | None = None,
    options: Mapping[str, Any] | None = None,
    progress: Callable[[], None] | None = None,
) -> ClarificationProbe:
    """Ask each ambiguous and clear prompt ``n`` times (chat API, default sampling) and classify
    every reply with :func:`classify_reply` (and ``judge``, when given)."""
    opts = {"num_predict": num_predict, **(options or {})}
    replies: list[Reply] = []
    for pair in pairs:
        for kind in ("ambiguous", "clear"):
            prompt = pair.ambiguous if kind == "ambiguous" else pair.clear
            for _ in range(n):
                text = llm.chat(prompt, options=opts).text
                verdict = judge_reply(judge, prompt, text) if judge is not None else None
                replies.append(Reply(pair.id, kind, prompt, text, classify_reply(text), verdict))
                if progress:
                    progress()
    return ClarificationProbe(replies, judge.model if judge is not None else None)


# --------------------------------------------------------------------------- sequential rates


def sample_rate(
    trial: Callable[[], bool],
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    confidence: float = 0.95,
    min_n: int = 10,
    max_n: int = 60,
    name: str = "success rate",
) -> Measurement:
    """Run ``trial`` until a sequential Wilson test (:class:`~pollama.testing.stats.SequentialRate`)
    is certain, or ``max_n`` trials; INCONCLUSIVE if still undecided. A trial that raises
    :class:`LLMHTTPError` counts as a failure of the property."""
    threshold, direction = _bound(at_most, at_least)
    seq = SequentialRate(threshold, direction, confidence, max_n=max_n, min_n=min_n)

    def safe() -> bool:
        try:
            return bool(trial())
        except LLMHTTPError:
            return False

    seq.run(safe)
    arg = "at_least" if direction == "at_least" else "at_most"
    return seq.measurement(name, knob=f"`{arg}=` (now {threshold:g}) or `max_n=` (now {max_n})")
