"""A minimal PNG decoder (8-bit RGB/RGBA/grey, non-interlaced) for checking screenshots."""

from __future__ import annotations

import struct
import zlib


def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """Return ``(width, height, channels, raw pixel rows without filter bytes)``."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, width = 8, b"", 0
    height = depth = ctype = interlace = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {ctype}, interlace {interlace}")
    raw = zlib.decompress(idat)
    stride = width * channels
    out = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += line
        prev = line
    return width, height, channels, bytes(out)


def non_white_fraction(data: bytes, region: tuple[int, int, int, int] | None = None) -> float:
    """Fraction of pixels (optionally in ``(x0, y0, x1, y1)``) that are not near-white."""
    w, h, ch, px = decode_png(data)
    x0, y0, x1, y1 = region or (0, 0, w, h)
    total = dark = 0
    for y in range(y0, min(y1, h)):
        row = px[y * w * ch:(y + 1) * w * ch]
        for x in range(x0, min(x1, w)):
            p = row[x * ch:x * ch + min(ch, 3)]
            total += 1
            if min(p) < 235:
                dark += 1
    return dark / total if total else 0.0
