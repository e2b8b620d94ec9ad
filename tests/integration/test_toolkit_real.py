"""The toolkit against the real bundled model, directly and through the chaos proxy (lean:
tiny ``num_predict`` everywhere; about a minute of model time on a busy two-core CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from pollama.chaos import ChaosConfig, ChaosProxy
from pollama.guard import Backoff, CircuitBreaker, Guard
from pollama.testing.client import LLM
from pollama.testing.measure import determinism_profile, structured_output_profile
from pollama.testing.stats import percentile, percentile_ci
from tests.integration.conftest import MODEL, LiveServer

pytestmark = pytest.mark.integration

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def llm(live: LiveServer) -> Iterator[LLM]:
    with LLM(live.url, MODEL) as c:
        yield c


def test_seed_at_temperature_zero_agrees_and_no_seed_varies(llm: LLM) -> None:
    fixed = determinism_profile(llm, 3, num_predict=4, settings=("seed_t0",)).conditions["seed_t0"]
    assert fixed.agreement == 1.0 and fixed.distinct == 1
    assert fixed.measure_agreement(1.0).verdict.value == "PASS"
    free = determinism_profile(llm, 10, prompt="Invent a name for a new colour.", temperature=1.0, num_predict=3,
                               settings=("no_seed",)).conditions["no_seed"]
    assert free.distinct > 1, free.outputs
    d = free.divergence()
    assert d is not None and d["token"] is not None  # streamed pieces give a token index


def test_format_schema_is_enforced_by_the_server(llm: LLM) -> None:
    p = structured_output_profile(llm, 1, modes=("format",), num_predict=32)
    assert p.modes["format"].valid == 1, p.modes["format"].outputs


def test_percentiles_of_injected_latency_fall_in_their_intervals(live: LiveServer) -> None:
    """The proxy adds latency ~ Uniform(100 ms, 900 ms) (seeded). Client wall time minus the
    server's own total_duration isolates it; its p50 and p90 intervals must contain the true
    quantiles (500 ms, 820 ms) plus the no-fault overhead measured in the same run (wide enough
    that a busy machine's jitter of some tens of milliseconds does not decide the outcome)."""
    body = {"prompt": "Hi", "stream": False, "options": {"num_predict": 1, "temperature": 0, "seed": 1}}
    with ChaosProxy(live.url, ChaosConfig()) as proxy, LLM(proxy.url, MODEL) as llm:
        base = [llm.request("/api/generate", {"model": MODEL, **body}).timings.overhead or 0.0 for _ in range(3)]
        proxy.configure(ChaosConfig.from_cli(["latency:uniform:100ms,900ms"], seed=7))
        over = [llm.request("/api/generate", {"model": MODEL, **body}).timings.overhead or 0.0 for _ in range(20)]
        assert proxy.stats()["faults"]["latency"] == 20
    shift = percentile(base, 50)
    for q, truth in ((50, 0.500), (90, 0.820)):
        lo, hi = percentile_ci(over, q, 0.99)
        assert lo <= truth + shift <= hi, (q, lo, truth + shift, hi, sorted(over))


def test_guard_retries_transient_faults_opens_breaker_and_falls_back(live: LiveServer) -> None:
    opts = {"num_predict": 2, "temperature": 0, "seed": 1}
    with LLM(live.url, MODEL) as direct, ChaosProxy(live.url, ChaosConfig.from_cli(
            script=["error:503", "drop:lines=1", "pass"], seed=1)) as proxy, LLM(proxy.url, MODEL) as chaotic:
        quick = Backoff(base=0.01, max_delay=0.02)
        guard = Guard(lambda: chaotic.stream("Say hi", options=opts), retries=3, backoff=quick)
        r = guard.call()
        assert r.source == "primary" and r.attempts == 3 and r.value.text
        assert [e.kind for e in r.events].count("retry") == 2

        proxy.configure(ChaosConfig.from_cli(script=["error:400"]))
        fb = Guard(lambda: chaotic.stream("Say hi", options=opts), retries=3, backoff=quick,
                   fallbacks=[lambda: direct.generate("Say hi", options=opts)])
        r = fb.call()
        assert r.source == "fallback[0]" and r.attempts == 2 and r.value.text  # the 400 was not retried
        assert proxy.stats()["requests"] == 1

        proxy.configure(ChaosConfig.from_cli(["error:500"]))
        breaker = CircuitBreaker(failure_threshold=2, cooldown=60)
        guarded = Guard(lambda: chaotic.generate("Say hi", options=opts), retries=1, backoff=quick, breaker=breaker,
                        fallbacks=[lambda: direct.generate("Say hi", options=opts)])
        first = guarded.call()
        assert breaker.state == "open" and first.source == "fallback[0]"
        before = proxy.stats()["requests"]
        second = guarded.call()
        assert second.source == "fallback[0]" and "breaker_open" in [e.kind for e in second.events]
        assert proxy.stats()["requests"] == before  # the open breaker kept the call off the upstream


SUITE = '''
from pollama.testing.measure import determinism_profile

def test_tutorial(ollama_client):
    print("ANSWER", repr(ollama_client("请用一句话解释什么是操作系统。", num_predict=6)["response"]))

def test_profile(llm):
    p = determinism_profile(llm, 2, num_predict=4, settings=("seed_t0", "no_seed"))
    llm.check(p.conditions["seed_t0"].measure_agreement(1.0))
    print("OUTPUTS", p.conditions["no_seed"].outputs, round(p.conditions["seed_t0"].results[0].timings.ttft, 3))
'''


def test_plugin_starts_its_own_server_records_and_replays_offline(tmp_path: Path) -> None:
    (tmp_path / "test_suite.py").write_text(textwrap.dedent(SUITE))
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("POLLAMA_TEST_URL", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-p", "pollama.testing.plugin"]
    cassette = tmp_path / "real.jsonl"
    rec = subprocess.run([*cmd, "--llm-record", str(cassette)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    rep = subprocess.run([*cmd, "--llm-replay", str(cassette), "--llm-url", "http://127.0.0.1:9"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0, rep.stdout + rep.stderr

    def tagged(out: str) -> list[str]:
        return [line[line.index(t):] for line in out.splitlines() for t in ("ANSWER", "OUTPUTS") if t in line]

    assert len(tagged(rec.stdout)) == 2 and tagged(rep.stdout) == tagged(rec.stdout)
