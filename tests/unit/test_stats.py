"""Tests for pollama.testing.stats: intervals, verdicts, sequential sampling, determinism helpers."""

from __future__ import annotations

import doctest
import math
import random

import pytest

from pollama.testing import stats
from pollama.testing.stats import (
    Measurement,
    SequentialRate,
    Verdict,
    bootstrap_ci,
    decide,
    distinct_count,
    first_divergence,
    pairwise_agreement,
    percentile,
    percentile_ci,
    percentile_measurement,
    percentile_verdict,
    rate_measurement,
    rate_verdict,
    wilson_interval,
)


def test_doctests() -> None:
    result = doctest.testmod(stats)
    assert result.failed == 0 and result.attempted > 0


# ---------------------------------------------------------------- Wilson


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [
        # Published 95% Wilson intervals (e.g. Newcombe 1998; Brown, Cai & DasGupta 2001 tables).
        (0, 10, (0.0, 0.2775)),
        (10, 10, (0.7225, 1.0)),
        (5, 10, (0.2366, 0.7634)),
        (81, 263, (0.2553, 0.3662)),  # Newcombe (1998), example (a)
    ],
)
def test_wilson_known_values(successes: int, n: int, expected: tuple[float, float]) -> None:
    lo, hi = wilson_interval(successes, n)
    assert lo == pytest.approx(expected[0], abs=1e-4)
    assert hi == pytest.approx(expected[1], abs=1e-4)


def test_wilson_extremes_are_exact_and_empty_is_uninformative() -> None:
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_higher_confidence_is_wider() -> None:
    lo95, hi95 = wilson_interval(7, 20, 0.95)
    lo99, hi99 = wilson_interval(7, 20, 0.99)
    assert lo99 < lo95 and hi99 > hi95


@pytest.mark.parametrize(("s", "n", "conf"), [(-1, 10, 0.95), (11, 10, 0.95), (5, 10, 1.0), (5, 10, 0.0)])
def test_wilson_rejects_bad_input(s: int, n: int, conf: float) -> None:
    with pytest.raises(ValueError):
        wilson_interval(s, n, conf)


def test_wilson_coverage_is_near_nominal() -> None:
    """Simulation: the 95% interval covers the true rate about 95% of the time."""
    rng = random.Random(1234)
    trials, n = 2000, 50
    for true_p in (0.3, 0.9):
        covered = 0
        for _ in range(trials):
            k = sum(rng.random() < true_p for _ in range(n))
            lo, hi = wilson_interval(k, n)
            covered += lo <= true_p <= hi
        assert 0.92 <= covered / trials <= 0.98, (true_p, covered / trials)


# ---------------------------------------------------------------- percentiles and bootstrap


def test_percentile_linear_interpolation_matches_numpy_default() -> None:
    xs = [15, 20, 35, 40, 50]
    assert percentile(xs, 0) == 15
    assert percentile(xs, 100) == 50
    assert percentile(xs, 40) == 29.0  # h = 1.6 → 20 + 0.6 * 15
    assert percentile(xs, 50) == 35
    assert percentile([3, 1, 2], 50) == 2  # order of input does not matter


@pytest.mark.parametrize("q", [-1, 101])
def test_percentile_rejects_bad_q(q: float) -> None:
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], q)


def test_percentile_rejects_empty() -> None:
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)


def test_bootstrap_is_reproducible_with_a_seed() -> None:
    gen = random.Random(7)
    data = [gen.gauss(1.0, 0.2) for _ in range(40)]
    a = bootstrap_ci(data, lambda s: sum(s) / len(s), rng=random.Random(42), n_resamples=500)
    b = bootstrap_ci(data, lambda s: sum(s) / len(s), rng=random.Random(42), n_resamples=500)
    c = bootstrap_ci(data, lambda s: sum(s) / len(s), rng=random.Random(43), n_resamples=500)
    assert a == b
    assert a != c
    # Default rng is seeded too: same data, same interval.
    assert bootstrap_ci(data, max, n_resamples=200) == bootstrap_ci(data, max, n_resamples=200)


def test_bootstrap_mean_interval_contains_sample_mean() -> None:
    rng = random.Random(3)
    data = [rng.gauss(10.0, 1.0) for _ in range(100)]
    lo, hi = bootstrap_ci(data, lambda s: sum(s) / len(s), n_resamples=1000)
    mean = sum(data) / len(data)
    assert lo < mean < hi
    assert hi - lo == pytest.approx(2 * 1.96 * 1.0 / 10, rel=0.35)


def test_percentile_ci_order_method_needs_enough_samples() -> None:
    small = [float(i) for i in range(20)]
    lo, hi = percentile_ci(small, 95, method="order")
    assert math.isinf(hi)  # 20 samples cannot bound p95 from above
    big = [float(i) for i in range(200)]
    lo, hi = percentile_ci(big, 95, method="order")
    assert lo < percentile(big, 95) < hi < math.inf


def test_percentile_ci_order_covers_true_quantile() -> None:
    """Order-statistic interval for the median of Uniform(0,1) covers 0.5 at least ~95% of the time."""
    rng = random.Random(99)
    trials = 800
    covered = sum(
        (lambda ci: ci[0] <= 0.5 <= ci[1])(percentile_ci([rng.random() for _ in range(30)], 50, method="order"))
        for _ in range(trials)
    )
    assert covered / trials >= 0.93


def test_percentile_ci_rejects_unknown_method() -> None:
    with pytest.raises(ValueError, match="method"):
        percentile_ci([1.0, 2.0], 50, method="magic")  # type: ignore[arg-type]


# ---------------------------------------------------------------- verdicts


@pytest.mark.parametrize(
    ("interval", "threshold", "direction", "expected"),
    [
        ((0.91, 0.99), 0.9, "at_least", Verdict.PASS),
        ((0.90, 0.99), 0.9, "at_least", Verdict.PASS),  # touching the bar from the good side
        ((0.70, 0.89), 0.9, "at_least", Verdict.FAIL),
        ((0.85, 0.95), 0.9, "at_least", Verdict.INCONCLUSIVE),
        ((1.0, 1.4), 1.5, "at_most", Verdict.PASS),
        ((1.0, 1.5), 1.5, "at_most", Verdict.PASS),
        ((1.6, 2.1), 1.5, "at_most", Verdict.FAIL),
        ((1.4, 1.6), 1.5, "at_most", Verdict.INCONCLUSIVE),
        ((-math.inf, math.inf), 1.5, "at_most", Verdict.INCONCLUSIVE),
    ],
)
def test_decide(interval: tuple[float, float], threshold: float, direction: str, expected: Verdict) -> None:
    assert decide(interval, threshold, direction) is expected  # type: ignore[arg-type]


def test_decide_rejects_bad_direction_and_interval() -> None:
    with pytest.raises(ValueError, match="direction"):
        decide((0.1, 0.2), 0.5, "above")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exceeds"):
        decide((0.3, 0.2), 0.5)


def test_rate_verdict_edges() -> None:
    assert rate_verdict(100, 100, 0.9) is Verdict.PASS
    assert rate_verdict(9, 10, 0.9) is Verdict.INCONCLUSIVE  # 90% observed is not proof of ≥ 90%
    assert rate_verdict(10, 10, 1.0) is Verdict.INCONCLUSIVE  # 100% can never be proven
    assert rate_verdict(0, 0, 0.5) is Verdict.INCONCLUSIVE  # no data, no pass
    assert rate_verdict(2, 50, 0.5) is Verdict.FAIL
    assert rate_verdict(0, 100, 0.05, direction="at_most") is Verdict.PASS
    with pytest.raises(ValueError, match="threshold"):
        rate_verdict(1, 2, 1.5)


def test_percentile_verdict() -> None:
    rng = random.Random(5)
    fast = [rng.uniform(0.1, 0.5) for _ in range(100)]
    slow = [rng.uniform(2.0, 3.0) for _ in range(100)]
    assert percentile_verdict(fast, 95, 1.0) is Verdict.PASS
    assert percentile_verdict(slow, 95, 1.0) is Verdict.FAIL
    assert percentile_verdict([0.9, 1.1, 1.0, 0.95, 1.05], 50, 1.0) is Verdict.INCONCLUSIVE
    assert percentile_verdict(fast[:10], 95, 1.0, method="order") is Verdict.INCONCLUSIVE


# ---------------------------------------------------------------- Measurement


def test_measurement_describe_fail_says_how_to_loosen() -> None:
    m = Measurement(
        name="p95 latency",
        estimate=1.84,
        interval=(1.61, 2.10),
        n=40,
        verdict=Verdict.FAIL,
        threshold=1.5,
        direction="at_most",
        unit="s",
        knob="--llm-latency-p95 or the `limit=` argument",
    )
    text = m.describe()
    assert text.startswith("p95 latency 1.84 s [1.61, 2.1] (n=40) > limit 1.5 s: FAIL")
    assert "raise --llm-latency-p95 or the `limit=` argument" in text
    assert m.value == 1.84


def test_measurement_describe_pass_and_inconclusive() -> None:
    ok = rate_measurement("json validity", 98, 100, 0.9)
    assert ok.describe() == "json validity 0.98 [0.93, 0.994] (n=100) >= required 0.9: PASS"
    unsure = rate_measurement("json validity", 9, 10, 0.9)
    text = str(unsure)
    assert "straddles required 0.9: INCONCLUSIVE" in text
    assert "collect more samples (n=10)" in text and "lower the `threshold=` argument" in text


def test_percentile_measurement() -> None:
    samples = [1.0 + i / 100 for i in range(100)]
    m = percentile_measurement("p95 ttft", samples, 95, 2.5, unit="s", n_resamples=300)
    assert m.verdict is Verdict.PASS
    assert m.estimate == pytest.approx(percentile(samples, 95))
    assert m.n == 100 and m.unit == "s"


# ---------------------------------------------------------------- sequential


def test_sequential_look_schedule_and_correction() -> None:
    seq = SequentialRate(threshold=0.9, min_n=10, max_n=200, growth=1.5)
    assert seq.looks == (10, 15, 23, 35, 53, 80, 120, 180, 200)
    assert seq.per_look_confidence == pytest.approx(1 - 0.05 / 9)


def test_sequential_stops_early_on_clear_pass() -> None:
    seq = SequentialRate(threshold=0.5, max_n=200)
    verdict = seq.run(lambda: True)
    assert verdict is Verdict.PASS
    assert seq.n == 10  # decided at the first look
    with pytest.raises(RuntimeError, match="already finished"):
        seq.observe(True)


def test_sequential_stops_early_on_clear_fail() -> None:
    seq = SequentialRate(threshold=0.9, max_n=200)
    assert seq.run(lambda: False) is Verdict.FAIL
    assert seq.n == 10


def test_sequential_reaches_max_n_inconclusive_when_straddling() -> None:
    outcomes = iter([True, False] * 200)  # exactly 50% against a 50% bar
    seq = SequentialRate(threshold=0.5, max_n=60, min_n=10)
    assert seq.run(lambda: next(outcomes)) is Verdict.INCONCLUSIVE
    assert seq.n == 60 and seq.done


def test_sequential_returns_inconclusive_between_looks() -> None:
    seq = SequentialRate(threshold=0.5, min_n=10)
    for _ in range(9):
        assert seq.observe(True) is Verdict.INCONCLUSIVE
    assert not seq.done
    assert seq.measurement().verdict is Verdict.INCONCLUSIVE


def test_sequential_error_rate_is_controlled() -> None:
    """True rate exactly at the bar: a PASS is a false pass. It must happen at most ~alpha/2."""
    rng = random.Random(2024)
    false_pass = 0
    runs = 300
    for _ in range(runs):
        seq = SequentialRate(threshold=0.8, max_n=120)
        if seq.run(lambda: rng.random() < 0.8) is Verdict.PASS:
            false_pass += 1
    assert false_pass / runs <= 0.05


def test_sequential_saves_samples_when_the_answer_is_clear() -> None:
    rng = random.Random(11)
    used = []
    for _ in range(50):
        seq = SequentialRate(threshold=0.7, max_n=200)
        seq.run(lambda: rng.random() < 0.97)
        assert seq.verdict is Verdict.PASS
        used.append(seq.n)
    assert sum(used) / len(used) < 0.5 * 200


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": 0.5, "min_n": 0}, "min_n"),
        ({"threshold": 0.5, "min_n": 50, "max_n": 10}, "min_n"),
        ({"threshold": 0.5, "growth": 1.0}, "growth"),
        ({"threshold": 0.5, "confidence": 1.0}, "confidence"),
    ],
)
def test_sequential_rejects_bad_config(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SequentialRate(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- determinism helpers


def test_first_divergence() -> None:
    assert first_divergence("abc", "abc") is None
    idx, ctx = first_divergence("The answer is 42.", "The answer is 41.")  # type: ignore[misc]
    assert idx == 15
    assert ctx == "The answer is 4|2. vs The answer is 4|1."
    idx, ctx = first_divergence("prefix", "prefix and more")  # type: ignore[misc]
    assert idx == 6 and "|<end> vs prefix| and more" in ctx
    long_a = "x" * 50 + "A" + "y" * 50
    long_b = "x" * 50 + "B" + "y" * 50
    idx, ctx = first_divergence(long_a, long_b, context=5)  # type: ignore[misc]
    assert idx == 50 and ctx == "…xxxxx|Ayyyy… vs …xxxxx|Byyyy…"


def test_agreement_and_distinct() -> None:
    assert pairwise_agreement(["a", "a", "a"]) == 1.0
    assert pairwise_agreement(["a", "b", "c"]) == 0.0
    assert pairwise_agreement(["a", "a", "b", "b"]) == pytest.approx(2 / 6)
    assert pairwise_agreement(["only"]) == 1.0
    assert distinct_count(["a", "a", "b"]) == 2
    assert distinct_count([" A", "a "], key=lambda s: s.strip().lower()) == 1
    assert pairwise_agreement([" A", "a "], key=lambda s: s.strip().lower()) == 1.0
