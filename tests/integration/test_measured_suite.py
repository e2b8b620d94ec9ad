"""The tutorial's suite rewritten with the toolkit (``examples/llm_tests_measured``), run as a user
would run it — ``pytest examples/llm_tests_measured --llm-url URL --llm-model MODEL`` — against a
live ``pollama serve``: every claim in it must hold, with its interval, on the bundled model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import MODEL, LiveServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "examples" / "llm_tests_measured"


def test_measured_suite_passes_with_its_intervals(live: LiveServer) -> None:
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(SUITE),
                          "--llm-url", live.url, "--llm-model", MODEL],
                         cwd=SUITE, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "5 passed" in run.stdout
    # The plugin's summary lists each measurement with its interval and verdict.
    summary = run.stdout[run.stdout.index("LLM measurements"):]
    assert summary.count("PASS ") >= 6 and "INCONCLUSIVE" not in summary and "FAIL " not in summary
