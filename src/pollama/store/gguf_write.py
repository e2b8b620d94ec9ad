"""Writing GGUF headers, for the tools that rewrite a model file (split merge, quantize).

A GGUF file is ``magic | version | tensor count | kv count | kv* | tensor-info* | padding |
data``; every tensor's data starts at a multiple of the file's alignment, and its offset in the
tensor table is relative to the start of the data section. The key/value records are passed in
already encoded (copied byte for byte from a source file, or made with :func:`kv_u32`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

GGUF_VERSION = 3
COPY_BLOCK = 1 << 20
_U32 = 4  # GGUF value type of a uint32


def pad(n: int, align: int) -> int:
    """``n`` rounded up to a multiple of ``align``.

    >>> pad(33, 32), pad(64, 32)
    (64, 64)
    """
    return (n + align - 1) // align * align


def gguf_string(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv_u32(key: str, value: int) -> bytes:
    """One encoded key/value record holding a uint32."""
    return gguf_string(key) + struct.pack("<II", _U32, value)


def header(kvs: Sequence[bytes], tensors: Sequence[tuple[str, tuple[int, ...], int, int]], align: int) -> bytes:
    """The header for ``tensors`` — ``(name, shape, ggml type, data bytes)`` in data order —
    padded so that the data section starts aligned; offsets are assigned in order, each tensor's
    data padded to ``align``."""
    parts = [b"GGUF", struct.pack("<IQQ", GGUF_VERSION, len(tensors), len(kvs)), *kvs]
    offset = 0
    for name, shape, ggml_type, nbytes in tensors:
        parts += [gguf_string(name), struct.pack(f"<I{len(shape)}QIQ", len(shape), *shape, ggml_type, offset)]
        offset += pad(nbytes, align)
    head = b"".join(parts)
    return head + b"\0" * (pad(len(head), align) - len(head))


def copy_data(f: BinaryIO, start: int, nbytes: int, align: int, write: Callable[[Any], object],
              progress: Callable[[int], None] | None = None) -> int:
    """Copy ``nbytes`` of tensor data from ``f`` at ``start``, then pad to ``align``, in 1 MiB
    blocks; return the bytes written. A file that ends early raises :class:`EOFError`.

    ``write`` receives views of one reused buffer: it must consume them before returning (a
    file's or a hash's ``write``/``update`` does), not keep them."""
    f.seek(start)
    view = memoryview(bytearray(min(COPY_BLOCK, max(nbytes, 1))))
    left = nbytes
    while left:
        got = f.readinto(view[:min(left, len(view))])  # type: ignore[attr-defined]
        if not got:
            raise EOFError(f"{left} bytes missing at offset {start + nbytes - left}")
        write(view[:got])
        left -= got
        if progress is not None:
            progress(got)
    extra = pad(nbytes, align) - nbytes
    if extra:
        write(b"\0" * extra)
    return nbytes + extra


__all__ = ["COPY_BLOCK", "GGUF_VERSION", "copy_data", "gguf_string", "header", "kv_u32", "pad"]
