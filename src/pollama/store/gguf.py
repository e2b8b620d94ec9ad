"""A bounded GGUF metadata reader.

Reads the header, the key/value metadata and the tensor table of a GGUF file without touching
the tensor data, and without trusting the file: every count and length is checked against limits
before anything is allocated, so a hostile or truncated file gives :class:`GGUFError`, never a
crash or a huge allocation. (The ``gguf`` package memory-maps and trusts the file, so it is used
to *write* test fixtures, not to read untrusted ones.)

Layout (little-endian)::

    magic "GGUF" | version u32 (2 or 3) | tensor_count u64 | kv_count u64
    kv*:     key:string | type u32 | value
    tensor*: name:string | n_dims u32 | dims u64[n_dims] | type u32 | offset u64
    string:  len u64 | utf-8 bytes
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any, BinaryIO

from pollama.errors import GGUFError

MAX_KV = 1 << 16
MAX_TENSORS = 1 << 20
MAX_STRING = 16 << 20  # 16 MiB: chat templates are large, but not this large
MAX_ARRAY = 1 << 24  # vocabularies reach ~260k entries; 16M is far beyond any real model
MAX_DIMS = 8
MAX_METADATA_BYTES = 512 << 20

_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4),
    6: ("<f", 4), 7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8),
}
_STRING, _ARRAY = 8, 9

# ggml_type → name, and block sizes (elements per block, bytes per block) for size arithmetic.
GGML_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
    17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
    23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16",
    34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
}

# llama_ftype (general.file_type) → the quantization label Ollama shows.
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4",
}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type: str

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class GGUFInfo:
    """What pollama needs from a GGUF: its metadata and tensor table."""

    version: int
    metadata: dict[str, Any] = field(default_factory=dict)
    tensors: list[TensorInfo] = field(default_factory=list)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def arch_key(self, suffix: str) -> Any:
        return self.metadata.get(f"{self.architecture}.{suffix}")

    @property
    def context_length(self) -> int:
        return int(self.arch_key("context_length") or 0)

    @property
    def embedding_length(self) -> int:
        return int(self.arch_key("embedding_length") or 0)

    @property
    def parameter_count(self) -> int:
        explicit = self.metadata.get("general.parameter_count")
        if isinstance(explicit, int) and explicit > 0:
            return explicit
        return sum(t.n_elements for t in self.tensors)

    @property
    def file_type(self) -> str:
        ft = self.metadata.get("general.file_type")
        return FILE_TYPES.get(int(ft), "unknown") if isinstance(ft, int) else "unknown"

    @property
    def chat_template(self) -> str | None:
        t = self.metadata.get("tokenizer.chat_template")
        return t if isinstance(t, str) else None

    @property
    def kind(self) -> str:
        """``model``, ``adapter`` or ``mmproj`` (``general.type``)."""
        return str(self.metadata.get("general.type", "model"))


@dataclass(frozen=True)
class TensorEntry:
    """A tensor-table row as stored: ``offset`` is relative to the (aligned) data section."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int


@dataclass
class GGUFLayout:
    """Where things are in a GGUF file, for tools that rewrite one (merging split shards):
    each key's ``[start, end)`` byte span, the tensor table, and where the table ends."""

    kv_spans: list[tuple[str, int, int]] = field(default_factory=list)
    entries: list[TensorEntry] = field(default_factory=list)
    header_end: int = 0


_BLOCK = 1 << 20
_U64 = struct.Struct("<Q")


class _Reader:
    """Reads with two bounds: the metadata limit, and what is left of the file, both checked
    before anything is allocated (a lying length never becomes a large ``read``)."""

    def __init__(self, f: BinaryIO, limit: int) -> None:
        self.f = f
        self.read_total = 0
        self.limit = limit
        try:
            self.remaining = os.fstat(f.fileno()).st_size - f.tell()
        except (OSError, AttributeError, ValueError):  # not a real file: a BytesIO in tests
            pos = f.tell()
            self.remaining = f.seek(0, 2) - pos
            f.seek(pos)

    def take(self, n: int) -> bytes:
        if n < 0 or self.read_total + n > self.limit:
            raise GGUFError("invalid GGUF file: metadata exceeds size limit")
        if n > self.remaining:
            raise GGUFError(f"invalid GGUF file: unexpected end of file ({n} bytes needed, {self.remaining} left)")
        data = self.f.read(n)
        if len(data) != n:
            raise GGUFError("invalid GGUF file: unexpected end of file")
        self.read_total += n
        self.remaining -= n
        return data

    def scalar(self, fmt: str, size: int) -> Any:
        return struct.unpack(fmt, self.take(size))[0]

    def u32(self) -> int:
        return int(self.scalar("<I", 4))

    def u64(self) -> int:
        return int(self.scalar("<Q", 8))

    def string(self) -> str:
        n = self.u64()
        if n > MAX_STRING:
            raise GGUFError(f"invalid GGUF file: string of {n} bytes exceeds limit of {MAX_STRING}")
        return self.take(n).decode("utf-8", errors="replace")

    def strings(self, n: int, keep: bool = True) -> list[str]:
        """``n`` length-prefixed strings, parsed from blocks of up to 1 MiB (a vocabulary holds
        tens of thousands: one bounded read per string made a model's first load ~0.3 s slower);
        with ``keep=False`` they are only walked over (and checked), not decoded."""
        out: list[str] = []
        buf, pos = b"", 0

        def need(k: int) -> None:
            nonlocal buf, pos
            if len(buf) - pos >= k:
                return
            room = min(self.remaining, self.limit - self.read_total)
            missing = k - (len(buf) - pos)
            buf = buf[pos:] + self.take(min(room, max(missing, _BLOCK)) if room >= missing else missing)
            pos = 0

        unpack = _U64.unpack_from
        append = out.append
        try:
            for _ in range(n):  # the hot loop of a model's metadata: checks inlined, no calls
                if len(buf) - pos < 8:
                    need(8)
                (length,) = unpack(buf, pos)
                pos += 8
                if length > MAX_STRING:
                    raise GGUFError(f"invalid GGUF file: string of {length} bytes exceeds limit of {MAX_STRING}")
                end = pos + length
                if end > len(buf):
                    need(length)
                    end = pos + length
                if keep:
                    append(buf[pos:end].decode("utf-8", "replace"))
                pos = end
        finally:
            self.give_back(len(buf) - pos)
        return out

    def give_back(self, n: int) -> None:
        """Un-read the last ``n`` bytes taken (read ahead but not used)."""
        if n:
            self.f.seek(-n, os.SEEK_CUR)
            self.read_total -= n
            self.remaining += n

    def skip(self, n: int) -> None:
        """Pass over ``n`` bytes with the same bounds as :meth:`take`, without reading them."""
        if n < 0 or self.read_total + n > self.limit:
            raise GGUFError("invalid GGUF file: metadata exceeds size limit")
        if n > self.remaining:
            raise GGUFError(f"invalid GGUF file: unexpected end of file ({n} bytes needed, {self.remaining} left)")
        self.f.seek(n, os.SEEK_CUR)
        self.read_total += n
        self.remaining -= n

    def value(self, vtype: int, depth: int = 0, keep: bool = True) -> Any:
        """A value of type ``vtype``; with ``keep=False`` it is checked and passed over (None)."""
        if vtype in _SCALARS:
            return self.scalar(*_SCALARS[vtype])
        if vtype == _STRING:
            if keep:
                return self.string()
            n = self.u64()
            if n > MAX_STRING:
                raise GGUFError(f"invalid GGUF file: string of {n} bytes exceeds limit of {MAX_STRING}")
            return self.skip(n)
        if vtype == _ARRAY:
            if depth > 2:
                raise GGUFError("invalid GGUF file: arrays nested too deeply")
            etype, n = self.u32(), self.u64()
            if n > MAX_ARRAY:
                raise GGUFError(f"invalid GGUF file: array of {n} elements exceeds limit of {MAX_ARRAY}")
            if etype in _SCALARS:
                fmt, size = _SCALARS[etype]
                if not keep:
                    return self.skip(size * n)
                raw = self.take(size * n)
                return list(struct.unpack(f"<{n}{fmt[1]}", raw))
            if etype == _STRING:
                out = self.strings(n, keep)
                return out if keep else None
            items = [self.value(etype, depth + 1, keep) for _ in range(n)]
            return items if keep else None
        raise GGUFError(f"invalid GGUF file: unknown value type {vtype}")


def read_gguf(path: str | Path, *, with_tensors: bool = True) -> GGUFInfo:
    """Read a GGUF file's metadata (and tensor table); raise :class:`GGUFError` if it is not one."""
    try:
        with open(path, "rb") as f:
            return parse_gguf(f, with_tensors=with_tensors)
    except OSError as e:
        raise GGUFError(f"could not read GGUF file: {e.strerror or e}") from e


def is_gguf(path: str | Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


def parse_gguf(f: BinaryIO, *, with_tensors: bool = True, layout: GGUFLayout | None = None,
               keep: Callable[[str], bool] | None = None) -> GGUFInfo:
    """Parse from ``f``'s position; ``layout``, when given, is filled with byte positions; with
    ``keep``, only the keys it accepts get their values decoded (the rest are checked and passed
    over: a tool that rewrites a file needs a handful of keys, not the vocabulary)."""
    r = _Reader(f, MAX_METADATA_BYTES)
    if r.take(4) != b"GGUF":
        raise GGUFError("supplied file was not in GGUF format")
    version = r.u32()
    if version not in (2, 3):
        raise GGUFError(f"unsupported GGUF version {version}")
    n_tensors, n_kv = r.u64(), r.u64()
    if n_kv > MAX_KV or n_tensors > MAX_TENSORS:
        raise GGUFError(f"invalid GGUF file: {n_kv} keys / {n_tensors} tensors exceeds limits")
    info = GGUFInfo(version=version)
    for _ in range(n_kv):
        start = f.tell() if layout is not None else 0
        key = r.string()
        if keep is None or keep(key):
            info.metadata[key] = r.value(r.u32())
        else:
            r.value(r.u32(), keep=False)
        if layout is not None:
            layout.kv_spans.append((key, start, f.tell()))
    if not with_tensors:
        return info
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.u32()
        if n_dims > MAX_DIMS:
            raise GGUFError(f"invalid GGUF file: tensor {name!r} has {n_dims} dimensions")
        shape = tuple(r.u64() for _ in range(n_dims))
        ttype = r.u32()
        offset = r.u64()
        info.tensors.append(TensorInfo(name=name, shape=shape, type=GGML_TYPES.get(ttype, str(ttype))))
        if layout is not None:
            layout.entries.append(TensorEntry(name, shape, ttype, offset))
    if layout is not None:
        layout.header_end = f.tell()
    return info


def human_number(n: int) -> str:
    """Ollama's ``HumanNumber`` for parameter sizes.

    >>> human_number(134_515_008), human_number(3_212_749_824), human_number(8_000_000_000)
    ('134.52M', '3.2B', '8B')
    """
    for unit, div in (("B", 1e9), ("M", 1e6)):
        if n >= div:
            v = n / div
            if v == int(v):
                return f"{int(v)}{unit}"
            return f"{v:.1f}{unit}" if unit == "B" else f"{v:.2f}{unit}"
    if n >= 1e3:
        return f"{n // 1000}K"
    return str(n)
