"""``pollama create`` and ``pollama show --modelfile`` against a server on loopback (fake runner)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pollama.cli.main import cli
from pollama.engine import Engine
from pollama.envconfig import Settings
from pollama.runner.fake import fake_factory
from pollama.server.app import create_app
from pollama.store.store import Store, sha256_file
from pollama.types.names import ModelName
from tests.factories import split_gguf, write_tiny_gguf
from tests.registry.servers import ServedApp

# The CLI is a short-lived process that leaves its keep-alive connection for the OS to close;
# invoked in-process here, that shows up as an unclosed-socket warning when it is collected.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    store = Store(tmp_path / "models")
    store.ensure()
    engine = Engine(Settings(models=store.root), store=store, runner_factory=fake_factory())
    with ServedApp(create_app(engine)) as app:
        yield app.netloc, store
    asyncio.run(engine.close())


def run(host: str, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, list(args), env={"OLLAMA_HOST": host}, catch_exceptions=False)
    gc.collect()  # collect the CLI's connection here, inside the test's warning filter
    return r.exit_code, r.output


def layers(store: Store, name: str) -> list[tuple[str, str]]:
    m, _ = store.read_manifest(ModelName.parse(name))
    return sorted((layer.media_type, layer.digest) for layer in m.layers)


def test_create_from_modelfile_then_recreate_from_show_modelfile(served: tuple[str, Store], tmp_path: Path) -> None:
    host, store = served
    work = tmp_path / "work"
    work.mkdir()
    write_tiny_gguf(work / "weights.gguf")
    (work / "Modelfile").write_text(
        "# a comment\nfrom ./weights.gguf\nTEMPLATE \"\"\"[INST] {{ .Prompt }} [/INST]\"\"\"\n"
        "parameter temperature 0.3\nPARAMETER stop [INST]\nSYSTEM \"\"\"Multi\nline \"quoted\" system\"\"\"\n"
        "MESSAGE user hello\nLICENSE MIT\n")
    code, out = run(host, "create", "mine", "-f", str(work / "Modelfile"))
    assert code == 0, out
    assert "success" in out
    code, text = run(host, "show", "mine", "--modelfile")
    assert code == 0 and "FROM " in text
    (tmp_path / "Modelfile.copy").write_text(text)
    code, out = run(host, "create", "copy", "-f", str(tmp_path / "Modelfile.copy"))
    assert code == 0, out
    assert layers(store, "copy") == layers(store, "mine")


def test_create_errors_are_clear(served: tuple[str, Store], tmp_path: Path) -> None:
    host, _ = served
    code, out = run(host, "create", "x", "-f", str(tmp_path / "missing"))
    assert code == 1 and "specified Modelfile wasn't found" in out
    bad = tmp_path / "Bad"
    bad.write_text("FROM tiny\nBOGUS thing\n")
    code, out = run(host, "create", "x", "-f", str(bad))
    assert code == 1 and "(line 2): command must be one of" in out
    dev = tmp_path / "Dev"
    dev.write_text("FROM /dev/zero\n")
    code, out = run(host, "create", "x", "-f", str(dev))
    assert code == 1 and "/dev/zero: not a regular file" in out
    notgguf = tmp_path / "NotGGUF"
    (tmp_path / "script.sh").write_text("echo hi\n")
    notgguf.write_text("FROM ./script.sh\n")
    code, out = run(host, "create", "x", "-f", str(notgguf))
    assert code == 1 and "supplied file was not in GGUF format" in out


def test_create_from_a_split_gguf_uploads_every_shard(served: tuple[str, Store], tmp_path: Path) -> None:
    host, store = served
    original = write_tiny_gguf(tmp_path / "whole.gguf", tensors=8)
    work = tmp_path / "work"
    work.mkdir()
    paths = split_gguf(original, work, "tiny-Q8_0", 3)
    # FROM the first shard stands for all three; FROM the folder of shards too.
    (work / "Modelfile").write_text("FROM ./tiny-Q8_0-00001-of-00003.gguf\n")
    code, out = run(host, "create", "split-a", "-f", str(work / "Modelfile"))
    assert code == 0 and "merging 3 GGUF shards" in out and "success" in out, out
    (tmp_path / "Modelfile.dir").write_text(f"FROM {work}\n")
    code, out = run(host, "create", "split-b", "-f", str(tmp_path / "Modelfile.dir"))
    assert code == 0, out
    digest = sha256_file(original)
    assert layers(store, "split-a") == layers(store, "split-b") == [("application/vnd.ollama.image.model", digest)]
    # A missing shard is named before anything is uploaded.
    paths[1].unlink()
    code, out = run(host, "create", "split-c", "-f", str(work / "Modelfile"))
    assert code == 1 and "split GGUF is incomplete, missing tiny-Q8_0-00002-of-00003.gguf" in out
