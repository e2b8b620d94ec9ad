"""The tutorial's own pytest suite, unchanged, against ``pollama serve`` on 127.0.0.1:11434.

The tutorial hardcodes ``http://localhost:11434`` and the model ``llama3.2:3b``; here that name
is an alias of the bundled SmolLM2 made with ``pollama cp``, as a user would do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import port_in_use, start_server, stop_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "examples" / "llm_tests"


def test_tutorial_suite_passes_unchanged(models_dir: Path, tmp_path: Path) -> None:
    if port_in_use(11434):
        pytest.fail("port 11434 is already in use (is Ollama or another pollama running?); "
                    "the tutorial's suite hardcodes localhost:11434, so stop that server and rerun")
    server = start_server(models_dir, 11434, tmp_path / "serve.log")
    try:
        env = {**os.environ, "OLLAMA_HOST": "127.0.0.1:11434"}
        cp = subprocess.run([sys.executable, "-m", "pollama", "cp", "smollm2:135m", "llama3.2:3b"],
                            env=env, capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0 and cp.stdout.strip() == "copied 'smollm2:135m' to 'llama3.2:3b'", cp.stderr
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(SUITE)],
                             cwd=SUITE, env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "4 passed" in run.stdout
    finally:
        stop_server(server)
