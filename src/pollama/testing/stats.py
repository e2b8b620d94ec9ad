"""Statistics for test verdicts: intervals, PASS/FAIL/INCONCLUSIVE decisions, sequential sampling.

A stochastic test never compares a point estimate with a bar. It computes an interval for the
quantity (a Wilson interval for a rate, a bootstrap or order-statistic interval for a percentile)
and decides:

* **PASS** when the whole interval lies on the good side of the threshold;
* **FAIL** when the whole interval lies on the bad side;
* **INCONCLUSIVE** otherwise. An inconclusive result is never reported as a pass.

Everything here is pure and uses only the standard library. Randomness (the bootstrap) comes
from an injectable :class:`random.Random`; the default is a fresh generator seeded with 0, so
the same data always gives the same verdict.

Percentiles use ``q`` on the 0–100 scale (``q=95`` is p95), like numpy.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Literal

__all__ = [
    "Direction",
    "Measurement",
    "SequentialRate",
    "Verdict",
    "bootstrap_ci",
    "decide",
    "distinct_count",
    "first_divergence",
    "pairwise_agreement",
    "percentile",
    "percentile_ci",
    "percentile_measurement",
    "percentile_verdict",
    "rate_measurement",
    "rate_verdict",
    "wilson_interval",
]

Direction = Literal["at_least", "at_most"]
"""Which side of the threshold is good: ``at_least`` (rates) or ``at_most`` (latencies)."""

Interval = tuple[float, float]


class Verdict(str, enum.Enum):
    """The three outcomes of a statistical check."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"

    def __str__(self) -> str:
        return self.value


# --------------------------------------------------------------------------- validation helpers


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")


def _check_direction(direction: str) -> None:
    if direction not in ("at_least", "at_most"):
        raise ValueError(f"direction must be 'at_least' or 'at_most', got {direction!r}")


def _z(confidence: float) -> float:
    """Two-sided standard-normal quantile for ``confidence`` (1.96 for 0.95)."""
    return NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)


# --------------------------------------------------------------------------- intervals


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion.

    Behaves well near 0 and 1, unlike the normal ("Wald") interval. With no observations the
    interval is ``(0.0, 1.0)``: nothing is known. The bounds are exactly 0 (no successes) and
    exactly 1 (all successes) at the extremes.

    >>> lo, hi = wilson_interval(5, 10)
    >>> round(lo, 4), round(hi, 4)
    (0.2366, 0.7634)
    """
    _check_confidence(confidence)
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return (0.0, 1.0)
    z = _z(confidence)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = (z / denom) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (lo, hi)


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 <= q <= 100) by linear interpolation between order statistics.

    This is numpy's default ("linear", Hyndman–Fan type 7): with the samples sorted as
    ``x[0] <= … <= x[n-1]``, the position is ``h = (n - 1) * q / 100`` and the result is
    ``x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])``.

    >>> percentile([1, 2, 3, 4], 50)
    2.5
    >>> percentile([10.0], 95)
    10.0
    """
    if not samples:
        raise ValueError("percentile of an empty sample")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in [0, 100], got {q!r}")
    xs = sorted(samples)
    h = (len(xs) - 1) * q / 100.0
    lo = math.floor(h)
    if lo >= len(xs) - 1:
        return float(xs[-1])
    return float(xs[lo] + (h - lo) * (xs[lo + 1] - xs[lo]))


def bootstrap_ci(
    samples: Sequence[float],
    statistic: Callable[[Sequence[float]], float],
    confidence: float = 0.95,
    n_resamples: int = 2000,
    rng: random.Random | None = None,
) -> Interval:
    """Percentile-bootstrap interval for ``statistic(samples)``.

    Draws ``n_resamples`` resamples with replacement, computes the statistic on each, and
    returns the ``(1 - confidence) / 2`` and ``1 - (1 - confidence) / 2`` percentiles of those
    values. ``rng`` defaults to ``random.Random(0)`` so results are reproducible.

    The percentile bootstrap is simple and distribution-free but under-covers for small samples
    and extreme statistics (for p99 it needs hundreds of samples); prefer
    :func:`percentile_ci` with ``method="order"`` for tail percentiles of small samples.
    """
    _check_confidence(confidence)
    if not samples:
        raise ValueError("bootstrap of an empty sample")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    gen = rng if rng is not None else random.Random(0)
    data = list(samples)
    n = len(data)
    stats = [statistic([data[gen.randrange(n)] for _ in range(n)]) for _ in range(n_resamples)]
    alpha = 1.0 - confidence
    return (percentile(stats, 100 * alpha / 2), percentile(stats, 100 * (1 - alpha / 2)))


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space for stability."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for i in range(k + 1):
        log_term = math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
        total += math.exp(log_term + i * log_p + (n - i) * log_q)
    return min(1.0, total)


def _order_statistic_ci(samples: Sequence[float], q: float, confidence: float) -> Interval:
    """Distribution-free interval for a quantile from order statistics.

    The number of samples below the true quantile is Binomial(n, q/100). The lower rank is the
    largest ``l`` with ``P(X < l) <= alpha/2`` and the upper rank the smallest ``u`` with
    ``P(X >= u) <= alpha/2``; when a rank falls outside the sample the bound is ``-inf``/``inf``
    (too few samples to bound that side, which makes a verdict honestly INCONCLUSIVE).
    """
    xs = sorted(samples)
    n = len(xs)
    p = q / 100.0
    half_alpha = (1.0 - confidence) / 2.0
    lo_rank = 0  # 1-based rank; 0 means "below the sample"
    for r in range(1, n + 1):
        if _binom_cdf(r - 1, n, p) <= half_alpha:
            lo_rank = r
        else:
            break
    hi_rank = n + 1  # n + 1 means "above the sample"
    for r in range(n, 0, -1):
        if 1.0 - _binom_cdf(r - 1, n, p) <= half_alpha:
            hi_rank = r
        else:
            break
    lo = float(xs[lo_rank - 1]) if lo_rank >= 1 else -math.inf
    hi = float(xs[hi_rank - 1]) if hi_rank <= n else math.inf
    return (lo, hi)


def percentile_ci(
    samples: Sequence[float],
    q: float,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    rng: random.Random | None = None,
    method: Literal["bootstrap", "order"] = "bootstrap",
) -> Interval:
    """Confidence interval for the ``q``-th percentile.

    ``method="bootstrap"`` (default) is the percentile bootstrap of :func:`percentile`.
    ``method="order"`` is the exact distribution-free order-statistic interval; it returns an
    infinite bound when the sample is too small to bound that side (for example the upper bound
    of p95 needs at least 59 samples at 95% confidence).
    """
    _check_confidence(confidence)
    if not samples:
        raise ValueError("percentile_ci of an empty sample")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in [0, 100], got {q!r}")
    if method == "order":
        return _order_statistic_ci(samples, q, confidence)
    if method != "bootstrap":
        raise ValueError(f"method must be 'bootstrap' or 'order', got {method!r}")
    return bootstrap_ci(samples, lambda s: percentile(s, q), confidence, n_resamples, rng)


# --------------------------------------------------------------------------- decisions


def decide(interval: Interval, threshold: float, direction: Direction = "at_least") -> Verdict:
    """PASS if the whole interval is on the good side of ``threshold``, FAIL if wholly on the bad
    side, else INCONCLUSIVE.

    For ``at_least`` the good side is ``>= threshold``; for ``at_most`` it is ``<= threshold``.

    >>> decide((0.91, 0.99), 0.9)
    <Verdict.PASS: 'PASS'>
    >>> decide((0.85, 0.95), 0.9)
    <Verdict.INCONCLUSIVE: 'INCONCLUSIVE'>
    >>> decide((1.2, 1.4), 1.0, "at_most")
    <Verdict.FAIL: 'FAIL'>
    """
    _check_direction(direction)
    lo, hi = interval
    if lo > hi:
        raise ValueError(f"interval lower bound {lo} exceeds upper bound {hi}")
    if direction == "at_least":
        if lo >= threshold:
            return Verdict.PASS
        if hi < threshold:
            return Verdict.FAIL
    else:
        if hi <= threshold:
            return Verdict.PASS
        if lo > threshold:
            return Verdict.FAIL
    return Verdict.INCONCLUSIVE


def rate_verdict(
    successes: int,
    n: int,
    threshold: float,
    direction: Direction = "at_least",
    confidence: float = 0.95,
) -> Verdict:
    """Decide whether a success rate is ``at_least`` (or ``at_most``) ``threshold``.

    Uses the Wilson interval. Note that ``at_least 1.0`` can never PASS with finite samples:
    no amount of evidence proves a 100% rate.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a rate in [0, 1], got {threshold!r}")
    return decide(wilson_interval(successes, n, confidence), threshold, direction)


def percentile_verdict(
    samples: Sequence[float],
    q: float,
    limit: float,
    direction: Direction = "at_most",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    rng: random.Random | None = None,
    method: Literal["bootstrap", "order"] = "bootstrap",
) -> Verdict:
    """Decide whether the ``q``-th percentile is ``at_most`` (default) or ``at_least`` ``limit``."""
    interval = percentile_ci(samples, q, confidence, n_resamples, rng, method)
    return decide(interval, limit, direction)


# --------------------------------------------------------------------------- measurement records


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3g}"


@dataclass(frozen=True)
class Measurement:
    """One measured quantity with its interval and verdict, ready to print or attach to a report.

    ``knob`` names what a user changes to loosen the check (an argument such as ``limit=`` and,
    when the check is driven from the command line, an option such as ``--llm-latency-p95``).
    """

    name: str
    estimate: float
    interval: Interval
    n: int
    verdict: Verdict
    threshold: float
    direction: Direction = "at_most"
    unit: str = ""
    knob: str = "the `limit=` argument"

    @property
    def value(self) -> float:
        """Alias of :attr:`estimate`."""
        return self.estimate

    def _relation(self) -> str:
        word = "limit" if self.direction == "at_most" else "required"
        if self.verdict is Verdict.PASS:
            op = "<=" if self.direction == "at_most" else ">="
        elif self.verdict is Verdict.FAIL:
            op = ">" if self.direction == "at_most" else "<"
        else:
            op = "straddles"
        return f"{op} {word} {_fmt(self.threshold)}{self._u()}"

    def _u(self) -> str:
        return f" {self.unit}" if self.unit else ""

    def hint(self) -> str:
        """How to make the check pass or decide: empty for PASS."""
        if self.verdict is Verdict.PASS:
            return ""
        verb = "raise" if self.direction == "at_most" else "lower"
        loosen = f"to loosen, {verb} {self.knob}"
        if self.verdict is Verdict.INCONCLUSIVE:
            return f"interval straddles the threshold; collect more samples (n={self.n}) or {loosen}"
        return loosen

    def describe(self) -> str:
        """One readable line, e.g.
        ``p95 latency 1.84 s [1.61, 2.1] (n=40) > limit 1.5 s: FAIL — to loosen, raise …``."""
        lo, hi = self.interval
        line = (
            f"{self.name} {_fmt(self.estimate)}{self._u()} [{_fmt(lo)}, {_fmt(hi)}] "
            f"(n={self.n}) {self._relation()}: {self.verdict.value}"
        )
        hint = self.hint()
        return f"{line} — {hint}" if hint else line

    def __str__(self) -> str:
        return self.describe()


def rate_measurement(
    name: str,
    successes: int,
    n: int,
    threshold: float,
    direction: Direction = "at_least",
    confidence: float = 0.95,
    knob: str = "the `threshold=` argument",
) -> Measurement:
    """A :class:`Measurement` of a success rate with its Wilson interval and verdict."""
    interval = wilson_interval(successes, n, confidence)
    return Measurement(
        name=name,
        estimate=successes / n if n else math.nan,
        interval=interval,
        n=n,
        verdict=rate_verdict(successes, n, threshold, direction, confidence),
        threshold=threshold,
        direction=direction,
        knob=knob,
    )


def percentile_measurement(
    name: str,
    samples: Sequence[float],
    q: float,
    limit: float,
    direction: Direction = "at_most",
    confidence: float = 0.95,
    unit: str = "",
    knob: str = "the `limit=` argument",
    n_resamples: int = 2000,
    rng: random.Random | None = None,
    method: Literal["bootstrap", "order"] = "bootstrap",
) -> Measurement:
    """A :class:`Measurement` of the ``q``-th percentile with its interval and verdict."""
    interval = percentile_ci(samples, q, confidence, n_resamples, rng, method)
    return Measurement(
        name=name,
        estimate=percentile(samples, q),
        interval=interval,
        n=len(samples),
        verdict=decide(interval, limit, direction),
        threshold=limit,
        direction=direction,
        unit=unit,
        knob=knob,
    )


# --------------------------------------------------------------------------- sequential sampling


def _look_schedule(min_n: int, max_n: int, growth: float) -> tuple[int, ...]:
    """Sample sizes at which a sequential test looks: ``min_n``, then ×``growth``, then ``max_n``."""
    looks = [min_n]
    while looks[-1] < max_n:
        looks.append(min(max_n, max(looks[-1] + 1, math.ceil(looks[-1] * growth))))
    return tuple(looks)


@dataclass
class SequentialRate:
    """Sequential test of a success rate: feed one observation at a time, stop once certain.

    **Method: repeated Wilson intervals on a geometric look schedule, Bonferroni-corrected.**
    The test only "looks" at the data at sample sizes ``min_n, ⌈min_n·g⌉, ⌈min_n·g²⌉, …, max_n``
    (``g = growth``). With ``K`` looks in the schedule, each look uses a Wilson interval at
    confidence ``1 - alpha / K`` (``alpha = 1 - confidence``). By the union bound, the chance that
    *any* look's interval misses the true rate is at most ``alpha`` whatever the dependence
    between looks, so a PASS or FAIL verdict has the same error guarantee as a fixed-n test at
    ``confidence``, however early it stops.

    Why this and not Wald's SPRT: the SPRT needs an indifference zone ``(p0, p1)`` chosen up
    front and produces a likelihood ratio rather than an interval to report; the Wilson
    construction needs only the threshold and reports an interval at every stop. The geometric
    schedule keeps ``K`` logarithmic in ``max_n`` (for 10→200 with growth 1.5, ``K = 9``, so each
    look runs at 99.4% instead of 99.97% with a look after every sample), which is what makes
    early stopping pay off.

    If ``max_n`` is reached and the interval still straddles the threshold, the verdict is
    INCONCLUSIVE.
    """

    threshold: float
    direction: Direction = "at_least"
    confidence: float = 0.95
    max_n: int = 200
    min_n: int = 10
    growth: float = 1.5
    successes: int = field(default=0, init=False)
    n: int = field(default=0, init=False)
    verdict: Verdict = field(default=Verdict.INCONCLUSIVE, init=False)
    done: bool = field(default=False, init=False)
    looks: tuple[int, ...] = field(default=(), init=False)
    interval: Interval = field(default=(0.0, 1.0), init=False)

    def __post_init__(self) -> None:
        _check_confidence(self.confidence)
        _check_direction(self.direction)
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be a rate in [0, 1], got {self.threshold!r}")
        if not 1 <= self.min_n <= self.max_n:
            raise ValueError(f"need 1 <= min_n <= max_n, got min_n={self.min_n}, max_n={self.max_n}")
        if self.growth <= 1.0:
            raise ValueError(f"growth must be > 1, got {self.growth!r}")
        self.looks = _look_schedule(self.min_n, self.max_n, self.growth)

    @property
    def per_look_confidence(self) -> float:
        """The Bonferroni-corrected confidence used at each look."""
        return 1.0 - (1.0 - self.confidence) / len(self.looks)

    def observe(self, success: bool) -> Verdict:
        """Record one observation; return the verdict so far (INCONCLUSIVE until decided)."""
        if self.done:
            raise RuntimeError(f"sequential test already finished with {self.verdict.value} at n={self.n}")
        self.n += 1
        self.successes += int(bool(success))
        if self.n in self.looks:
            self.interval = wilson_interval(self.successes, self.n, self.per_look_confidence)
            self.verdict = decide(self.interval, self.threshold, self.direction)
            self.done = self.verdict is not Verdict.INCONCLUSIVE or self.n >= self.max_n
        return self.verdict

    def run(self, trial: Callable[[], bool]) -> Verdict:
        """Call ``trial`` until the test is done; return the final verdict."""
        while not self.done:
            self.observe(trial())
        return self.verdict

    def measurement(self, name: str = "success rate", knob: str = "the `threshold=` argument") -> Measurement:
        """The current state as a :class:`Measurement` (interval at the last look)."""
        return Measurement(
            name=name,
            estimate=self.successes / self.n if self.n else math.nan,
            interval=self.interval,
            n=self.n,
            verdict=self.verdict,
            threshold=self.threshold,
            direction=self.direction,
            knob=knob,
        )


# --------------------------------------------------------------------------- determinism


def first_divergence(a: str, b: str, context: int = 20) -> tuple[int, str] | None:
    """Index of the first character where ``a`` and ``b`` differ, with a readable excerpt.

    Returns ``None`` when the strings are equal. When one is a prefix of the other the index is
    the shorter length. The excerpt shows up to ``context`` characters before the split and the
    two continuations:

    >>> first_divergence("the cat sat", "the cat ran")
    (8, 'the cat |sat vs the cat |ran')
    >>> first_divergence("same", "same") is None
    True
    """
    if a == b:
        return None
    i = 0
    limit = min(len(a), len(b))
    while i < limit and a[i] == b[i]:
        i += 1
    start = max(0, i - context)
    prefix = ("…" if start > 0 else "") + a[start:i]

    def tail(s: str) -> str:
        piece = s[i : i + context]
        if not piece:
            return "<end>"
        return piece + ("…" if len(s) > i + context else "")

    return i, f"{prefix}|{tail(a)} vs {prefix}|{tail(b)}"


def distinct_count(outputs: Sequence[str], key: Callable[[str], Hashable] | None = None) -> int:
    """Number of distinct outputs (optionally after mapping each through ``key``, e.g. a parser)."""
    return len({(key(o) if key else o) for o in outputs})


def pairwise_agreement(outputs: Sequence[str], key: Callable[[str], Hashable] | None = None) -> float:
    """Fraction of unordered pairs of outputs that are identical (after ``key`` if given).

    1.0 means all outputs agree; with fewer than two outputs it is 1.0 by convention. Computed
    from group sizes, so it is O(n).
    """
    n = len(outputs)
    if n < 2:
        return 1.0
    counts: dict[Hashable, int] = {}
    for o in outputs:
        k = key(o) if key else o
        counts[k] = counts.get(k, 0) + 1
    agreeing = sum(c * (c - 1) // 2 for c in counts.values())
    return agreeing / (n * (n - 1) // 2)
