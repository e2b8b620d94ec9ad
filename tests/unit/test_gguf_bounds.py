"""The GGUF reader against hostile files: every absurd length is a clear error, never a crash or
a large allocation."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import pytest

from pollama.errors import GGUFError
from pollama.store.gguf import read_gguf
from pollama.store.gguf_split import read_shard
from tests.factories import write_tiny_gguf


def header(n_tensors: int = 0, n_kv: int = 1, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


def gstr(s: bytes, length: int | None = None) -> bytes:
    return struct.pack("<Q", len(s) if length is None else length) + s


CASES = {
    "string length 2^63": header() + gstr(b"k", 1 << 63),
    "string length past end": header() + gstr(b"general.name") + struct.pack("<I", 8) + gstr(b"abc", 10_000_000),
    "key/value count 2^40": header(n_kv=1 << 40),
    "tensor count 2^40": header(n_tensors=1 << 40, n_kv=0),
    "u64 array of 2^24 elements in a tiny file": header() + gstr(b"a") + struct.pack("<IIQ", 9, 10, 1 << 24),
    "array of 2^62 elements": header() + gstr(b"a") + struct.pack("<IIQ", 9, 4, 1 << 62),
    "array of 2^20 strings each claiming 1 MB": header() + gstr(b"a") + struct.pack("<IIQ", 9, 8, 1 << 20) + gstr(b"x", 1 << 20),
    "nested arrays": header() + gstr(b"a") + struct.pack("<IIQ", 9, 9, 1) + struct.pack("<IQ", 9, 1)
    + struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 4, 0),
    "unknown value type": header() + gstr(b"a") + struct.pack("<I", 77),
    "tensor with 1000 dimensions": header(n_tensors=1, n_kv=0) + gstr(b"t") + struct.pack("<I", 1000),
    "truncated header": b"GGUF\x03\x00",
    "bad version": header(version=99),
    "not gguf": b"\x7fELF" + b"\x00" * 60,
}


@pytest.mark.parametrize("skipping", [False, True], ids=["decoding", "skipping"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_gguf_gives_a_clear_error_without_a_big_allocation(tmp_path: Path, case: str, skipping: bool) -> None:
    path = tmp_path / "evil.gguf"
    path.write_bytes(CASES[case])
    tracemalloc.start()
    try:
        with pytest.raises(GGUFError) as err:
            if skipping:  # the split merge / quantize reader, which passes over values it does not need
                read_shard(path)
            else:
                read_gguf(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20, f"{case}: peak allocation {peak} bytes"
    msg = err.value.message.removeprefix("evil.gguf: ")
    assert msg.startswith(("invalid GGUF file", "unsupported GGUF version", "supplied file was not in GGUF format"))


def test_every_truncation_of_a_real_file_is_an_error(tmp_path: Path) -> None:
    data = write_tiny_gguf(tmp_path / "ok.gguf").read_bytes()
    info = read_gguf(tmp_path / "ok.gguf")
    assert info.architecture == "llama"
    cut = tmp_path / "cut.gguf"
    metadata_end = 400  # the metadata and tensor table of the tiny file end well before this
    for n in range(0, metadata_end, 7):
        cut.write_bytes(data[:n])
        with pytest.raises(GGUFError):
            read_gguf(cut)


def test_a_string_array_crossing_read_blocks_parses_exactly(tmp_path: Path) -> None:
    """Vocabularies are read in 1 MiB blocks: strings that straddle a block boundary, multi-byte
    UTF-8 split across it, and the key after the array must all come out exactly."""
    words = [("tök" * (i % 300) + f"#{i}").encode() for i in range(6000)]  # ~2.7 MB of strings
    body = (header(n_kv=2) + gstr(b"tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, len(words))
            + b"".join(gstr(w) for w in words) + gstr(b"after") + struct.pack("<II", 4, 1234567))
    path = tmp_path / "vocab.gguf"
    path.write_bytes(body)
    md = read_gguf(path).metadata
    assert md["tokenizer.ggml.tokens"] == [w.decode() for w in words]
    assert md["after"] == 1234567
    with pytest.raises(GGUFError, match="unexpected end of file"):  # cut inside the array
        path.write_bytes(body[: len(body) // 2])
        read_gguf(path)
