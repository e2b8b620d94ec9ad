"""The engine skips counting a prompt's tokens when its UTF-8 length proves it fits the context
(engine/inference.py ``surely_fits``). That is only sound if no tokenizer ever makes more than
``bytes + 3`` tokens: checked here on both bundled models' real tokenizers — SmolLM2's BPE and
Gemma 3's SentencePiece — with text built to make many tokens per byte (control characters,
special tokens, lone bytes, emoji, CJK, combining marks)."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from pollama.engine.inference import surely_fits
from pollama.store.bundled import BUNDLED, import_bundled
from pollama.store.manifest import MT_MODEL
from pollama.store.store import Store
from pollama.types.names import ModelName
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration

SAMPLES = [
    "", " ", "a", "\n", "\x00", "\x01\x02\x03", "  \t\t\n\n  ", "<|im_start|>", "<|im_start|><|im_end|>" * 20,
    "<start_of_turn><end_of_turn><bos><eos>" * 10, "中文提示词：请简短回答。" * 5, "🦙🦙🦙👩‍👩‍👧‍👦", "e\u0301" * 30,
    "ab" * 200, "0123456789" * 30, "a b c d e f g h", "\u200b" * 40, "\ufeff\ufffd" * 20,
]


def _random_texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    pools = [
        [chr(c) for c in range(0, 128)],
        ["中", "文", "ü", "é", "🦙", "\u0301", "\u200d", " ", "\n", "<", "|", ">"],
        ["<|im_start|>", "<|im_end|>", "<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", " ", "\n"],
    ]
    return ["".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 120))) for _ in range(n)]


@pytest.fixture(scope="module", params=["smollm2:135m", "gemma3:270m"])
def tokenize(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], int]]:
    """A real runner for the model; yields a function counting a text's tokens as the engine would."""
    store = Store(tmp_path_factory.mktemp("bound"))
    name = ModelName.parse(request.param)
    for _ in import_bundled(store, name, BUNDLED[request.param]):
        pass
    [layer] = [x for x in store.entry(name).manifest.layers if x.media_type == MT_MODEL]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pollama.runner", "--model", str(store.blob_path(layer.digest)),
                             "--port", str(port), "--ctx", "512", "--threads", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            for _ in range(300):
                try:
                    if c.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)

            def count(text: str) -> int:
                r = c.post("/tokenize", json={"content": text, "add_special": True, "parse_special": True})
                r.raise_for_status()
                return len(r.json()["tokens"])

            yield count
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("text", SAMPLES + _random_texts(7, 60))
def test_token_count_never_exceeds_utf8_length_plus_3(tokenize: Callable[[str], int], text: str) -> None:
    n = tokenize(text)
    assert n <= len(text.encode()) + 3
    # and so the shortcut never claims a fit that is not one
    for ctx in (n, n + 1, n + 2):
        if surely_fits(text, ctx):
            assert n < ctx
