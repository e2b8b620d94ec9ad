"""The pytest plugin, run as a user would (a pytest subprocess) against the scripted server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from pollama.chaos import BackgroundServer
from tests.fake_ollama import FakeOllama

SRC = Path(__file__).resolve().parents[2] / "src"

SUITE = '''
from pollama.testing.measure import determinism_profile

def test_tutorial_shape(ollama_client):
    result = ollama_client("请用一句话解释什么是操作系统。")
    assert isinstance(result["response"], str) and result["response"].strip()
    print("ANSWER", result["response"])

def test_measured(llm):
    p = determinism_profile(llm, 3, num_predict=4, settings=("seed_t0", "no_seed"))
    llm.check(p.conditions["seed_t0"].measure_agreement(1.0))
    r = llm.stream("hi", seed=1, temperature=0, num_predict=3)
    assert r.timings.ttft is not None
    print("OUTPUTS", p.conditions["no_seed"].outputs)
'''


def pytest_run(tmp_path: Path, *args: str, suite: str = SUITE) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_suite.py").write_text(textwrap.dedent(suite))
    # Only this plugin (explicitly, as the entry point would), so the subprocess starts fast.
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("POLLAMA_TEST_URL", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           "-p", "pollama.testing.plugin", *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def fake_url() -> Iterator[str]:
    with BackgroundServer(FakeOllama().app()) as s:
        yield s.url


def _lines(out: str, tag: str) -> list[str]:
    return [line for line in out.splitlines() if tag in line]


def test_record_then_replay_offline(tmp_path: Path, fake_url: str) -> None:
    cassette = tmp_path / "llm.jsonl"
    rec = pytest_run(tmp_path, "--llm-url", fake_url, "--llm-model", "fake:1", "--llm-record", str(cassette),
                     "--junitxml", "rec.xml")
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "LLM measurements (pollama)" in rec.stdout and "PASS" in rec.stdout
    assert 'name="llm:pairwise agreement (seed + temperature 0)"' in (tmp_path / "rec.xml").read_text()
    # replay: the server is gone (port 9 refuses), outputs and verdicts are the same
    rep = pytest_run(tmp_path, "--llm-url", "http://127.0.0.1:9", "--llm-model", "fake:1", "--llm-replay", str(cassette))
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert _lines(rep.stdout, "OUTPUTS") == _lines(rec.stdout, "OUTPUTS")
    assert _lines(rep.stdout, "ANSWER") == _lines(rec.stdout, "ANSWER")


def test_replay_miss_fails_naming_the_request(tmp_path: Path, fake_url: str) -> None:
    cassette = tmp_path / "llm.jsonl"
    assert pytest_run(tmp_path, "--llm-url", fake_url, "--llm-model", "fake:1", "--llm-record", str(cassette)).returncode == 0
    other = "def test_other(llm):\n    llm.generate('a prompt never recorded')\n"
    rep = pytest_run(tmp_path, "--llm-model", "fake:1", "--llm-replay", str(cassette), suite=other)
    assert rep.returncode == 1
    assert "CassetteMiss: request not in cassette" in rep.stdout and "prompt='a prompt never recorded'" in rep.stdout


def test_failure_and_inconclusive_policies(tmp_path: Path, fake_url: str) -> None:
    suite = '''
from pollama.testing.measure import latency_profile

def test_fast(llm):
    p = latency_profile(llm, 4, num_predict=2, cold=False)
    llm.check(p.measure("wall", 50, at_most=1e-9))

def test_tail(llm):
    p = latency_profile(llm, 4, num_predict=2, cold=False)
    llm.check(p.measure("wall", 99, at_most=100.0))
'''
    strict = pytest_run(tmp_path, "--llm-url", fake_url, "--llm-model", "fake:1", suite=suite)
    assert strict.returncode == 1 and "2 failed" in strict.stdout
    assert "MeasurementFailed: p50 wall" in strict.stdout and "to loosen, raise `at_most=` (now 1e-09)" in strict.stdout
    assert "MeasurementInconclusive: p99 wall" in strict.stdout and "collect more samples" in strict.stdout
    lenient = pytest_run(tmp_path, "--llm-url", fake_url, "--llm-model", "fake:1", "--llm-inconclusive", "xfail", suite=suite)
    assert "1 failed, 1 xfailed" in lenient.stdout


def test_bad_options_and_unreachable_server(tmp_path: Path) -> None:
    both = pytest_run(tmp_path, "--llm-record", "a", "--llm-replay", "b", suite="def test_x():\n    pass\n")
    assert both.returncode == 4 and "cannot be used together" in both.stderr
    conf = pytest_run(tmp_path, "--llm-confidence", "1.5", suite="def test_x():\n    pass\n")
    assert conf.returncode == 4 and "--llm-confidence" in conf.stderr
    down = pytest_run(tmp_path, "--llm-url", "http://127.0.0.1:9", suite="def test_x(llm):\n    pass\n")
    assert down.returncode == 1 and "no Ollama-compatible server answered at http://127.0.0.1:9" in down.stdout
    missing = pytest_run(tmp_path, "--llm-replay", "nope.jsonl", suite="def test_x(llm):\n    pass\n")
    assert "cassette nope.jsonl does not exist" in missing.stdout
    notbundled = pytest_run(tmp_path, "--llm-model", "llama3.2:3b", suite="def test_x(llm):\n    pass\n")
    assert "is not bundled with pollama" in notbundled.stdout and "--llm-url" in notbundled.stdout


def test_plugin_import_is_light_and_starts_nothing(tmp_path: Path) -> None:
    code = ("import sys, pollama.testing.plugin; "
            "print(sorted(m for m in ('httpx', 'pollama.testing.client', 'pollama.store', 'uvicorn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(SRC)},
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
    plain = pytest_run(tmp_path, suite="def test_x():\n    assert True\n")
    assert plain.returncode == 0 and "1 passed" in plain.stdout and "LLM measurements" not in plain.stdout
