"""The ``pollama`` CLI against a real server: tables, one-shot runs, the REPL through a terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pollama.store.store import Store
from pollama.types.names import ModelName
from tests.factories import dequantized_gguf, split_gguf
from tests.integration.conftest import MODEL, SHORT, LiveServer, free_port

pytestmark = pytest.mark.integration


def cli(live: LiveServer | None, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OLLAMA_HOST": live.url if live else f"127.0.0.1:{free_port()}"}
    return subprocess.run([sys.executable, "-m", "pollama", *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=timeout)


def test_list_show_cp_rm(live: LiveServer) -> None:
    out = cli(live, "list").stdout.splitlines()
    assert re.match(r"^NAME\s{4,}ID\s{4,}SIZE\s{4,}MODIFIED$", out[0])
    row = next(line for line in out if line.startswith(MODEL))
    assert re.search(r"\s[0-9a-f]{12}\s{4,}98 MB\s{4,}", row)
    assert out[0].index("ID") == row.index(re.search(r"[0-9a-f]{12}", row).group())  # type: ignore[union-attr]
    show = cli(live, "show", MODEL).stdout
    assert "architecture" in show and "llama" in show and "134.52M" in show and "Capabilities" in show
    assert cli(live, "show", MODEL, "--parameters").stdout.startswith("stop")
    r = cli(live, "cp", MODEL, "alias:v1")
    assert r.returncode == 0 and r.stdout.strip() == f"copied '{MODEL}' to 'alias:v1'"
    r = cli(live, "rm", "alias:v1")
    assert r.returncode == 0 and r.stdout.strip() == "deleted 'alias:v1'"
    r = cli(live, "rm", "alias:v1")
    assert r.returncode == 1 and r.stderr.strip() == "Error: model 'alias:v1' not found"


def test_run_one_shot_and_piped_stdin_then_ps_and_stop(live: LiveServer) -> None:
    r = cli(live, "run", SHORT, "Say", "hello.", "--verbose")
    assert r.returncode == 0 and r.stdout.strip()
    assert "eval rate:" in r.stderr and "prompt eval count:" in r.stderr
    r = cli(live, "run", SHORT, stdin="What is the capital of France?\n")
    assert r.returncode == 0 and r.stdout.strip()
    ps = cli(live, "ps").stdout.splitlines()
    assert ps[0].split() == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    assert any(line.startswith(SHORT) and "100% CPU" in line and "4096" in line and "from now" in line for line in ps[1:])
    assert cli(live, "stop", SHORT).returncode == 0
    assert not any(line.startswith(SHORT) for line in cli(live, "ps").stdout.splitlines())
    r = cli(live, "stop", SHORT)
    assert r.returncode == 1 and f'couldn\'t find model "{SHORT}" to stop' in r.stderr


def test_unknown_model_and_no_server_errors(live: LiveServer) -> None:
    r = cli(live, "run", "ghost-model:1b", "hi")
    # Not bundled, so it is looked up on registry.ollama.ai: "file does not exist" with a network,
    # the connection error without one. Either way one clear line, exit status 1.
    assert r.returncode == 1 and r.stderr.splitlines()[-1].startswith("Error: pull model manifest: ")
    r = cli(None, "list")
    assert r.returncode == 1
    assert "could not connect to pollama server" in r.stderr and "run 'pollama serve' to start it" in r.stderr


def test_create_from_the_bundled_model_split_in_three(live: LiveServer, tmp_path: Path) -> None:
    """The real model, cut into three shards by llama.cpp's own GGUF writer: ``pollama create``
    uploads them, the server merges them into the very file that was split, and it generates."""
    store = Store(live.models)
    bundled = store.read_manifest(ModelName.parse(MODEL))[0].first("application/vnd.ollama.image.model")
    assert bundled is not None
    paths = split_gguf(store.blob_path(bundled.digest), tmp_path, "SmolLM2-135M-Instruct-Q4_1", 3)
    (tmp_path / "Modelfile").write_text(f"FROM ./{paths[0].name}\nPARAMETER num_predict 8\n")
    r = cli(live, "create", "smollm2-split:135m", "-f", str(tmp_path / "Modelfile"))
    assert r.returncode == 0 and "merging 3 GGUF shards" in r.stdout + r.stderr, r.stderr
    merged = store.read_manifest(ModelName.parse("smollm2-split:135m"))[0].first("application/vnd.ollama.image.model")
    assert merged is not None and merged.digest == bundled.digest  # byte for byte the file that was split
    r = cli(live, "run", "smollm2-split:135m", "Say hello.")
    assert r.returncode == 0 and r.stdout.strip()
    assert cli(live, "rm", "smollm2-split:135m").returncode == 0
    assert store.has_blob(bundled.digest)  # still the bundled model's


def test_create_quantizes_an_f16_model_with_llama_cpps_quantizers(live: LiveServer, tmp_path: Path) -> None:
    """The bundled model expanded to F16, then ``pollama create -q q8_0``: a smaller model that
    the real runner loads and that answers."""
    store = Store(live.models)
    bundled = store.read_manifest(ModelName.parse(MODEL))[0].first("application/vnd.ollama.image.model")
    assert bundled is not None
    f16 = dequantized_gguf(store.blob_path(bundled.digest), tmp_path / "SmolLM2-135M-F16.gguf")
    (tmp_path / "Modelfile").write_text("FROM ./SmolLM2-135M-F16.gguf\nPARAMETER num_predict 12\n")
    r = cli(live, "create", "smollm2-q8:135m", "-q", "q8_0", "-f", str(tmp_path / "Modelfile"), timeout=300)
    assert r.returncode == 0, r.stderr
    assert "quantizing F16 model to Q8_0" in r.stdout + r.stderr
    show = cli(live, "show", "smollm2-q8:135m").stdout
    assert re.search(r"quantization\s+Q8_0", show), show
    merged = store.read_manifest(ModelName.parse("smollm2-q8:135m"))[0].first("application/vnd.ollama.image.model")
    assert merged is not None and merged.size < 0.6 * f16.stat().st_size
    r = cli(live, "run", "smollm2-q8:135m", "List three colors.")
    assert r.returncode == 0 and len(r.stdout.split()) >= 3, r.stdout
    assert cli(live, "rm", "smollm2-q8:135m").returncode == 0


def test_help_is_complete() -> None:
    r = cli(None, "--help")
    for cmd in ("serve", "run", "pull", "list", "ps", "show", "cp", "rm", "stop"):
        assert re.search(rf"^\s+{cmd}\s", r.stdout, re.M), cmd
    r = cli(None, "serve", "--help")
    assert "Environment Variables:" in r.stdout and "OLLAMA_HOST" in r.stdout and "OLLAMA_MAX_QUEUE" in r.stdout


class Terminal:
    """Drive a program through a pseudo-terminal, as a person at a keyboard would."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child
            os.execve(sys.executable, [sys.executable, *args], env)
        self.buf = ""

    def read_until(self, pattern: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.buf)
            if m:
                out, self.buf = self.buf[: m.end()], self.buf[m.end():]
                return out
            r, _, _ = select.select([self.fd], [], [], 0.5)
            if r:
                try:
                    self.buf += os.read(self.fd, 4096).decode(errors="replace")
                except OSError:
                    break
        raise AssertionError(f"timed out waiting for {pattern!r}; screen: {self.buf[-2000:]!r}")

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)


def test_interactive_repl(live: LiveServer) -> None:
    env = {**os.environ, "OLLAMA_HOST": live.url, "TERM": "dumb"}
    t = Terminal(["-m", "pollama", "run", MODEL], env)
    t.read_until(r">>> ")
    t.send("/set parameter num_predict 8\r")
    assert "Set parameter 'num_predict' to '8'" in t.read_until(r">>> ")
    t.send("/set system You answer in one word.\r")
    assert "Set system message." in t.read_until(r">>> ")
    t.send("Name a fruit.\r")
    answer = t.read_until(r">>> ")
    assert len(answer.replace("Name a fruit.", "").strip()) > 0
    t.send('"""\r')
    t.send("first line\r")
    t.send('second line"""\r')
    t.read_until(r">>> ")
    t.send("/show info\r")
    assert "architecture" in t.read_until(r">>> ")
    t.send("/show parameters\r")
    assert "num_predict" in t.read_until(r">>> ")
    t.send("/clear\r")
    assert "Cleared session context" in t.read_until(r">>> ")
    t.send("/nonsense\r")
    assert "Unknown command '/nonsense'. Type /? for help" in t.read_until(r">>> ")
    t.send("/bye\r")
    assert t.wait() == 0
