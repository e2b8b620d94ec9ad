"""How the CLI prints things: aligned tables, sizes, relative times (as Ollama's ``format``)."""

from __future__ import annotations

import datetime as dt
import math


def table(headers: list[str], rows: list[list[str]], pad: int = 4) -> str:
    """Left-aligned columns separated by at least ``pad`` spaces, no borders (Go's tabwriter)."""
    cols = [headers, *rows]
    widths = [max(len(r[i]) for r in cols) for i in range(len(headers))]
    lines = []
    for r in cols:
        cells = [c.ljust(widths[i] + pad) if i < len(r) - 1 else c for i, c in enumerate(r)]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines)


def human_bytes(n: int) -> str:
    """Decimal units, one decimal below 10: ``2.0 GB``, ``42 GB``, ``950 MB``, ``512 B``.

    >>> human_bytes(98363021), human_bytes(4_700_000_000), human_bytes(42_000_000_000), human_bytes(512)
    ('98 MB', '4.7 GB', '42 GB', '512 B')
    """
    for unit, div in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= div:
            v = n / div
            return f"{v:.1f} {unit}" if v < 10 else f"{v:.0f} {unit}"
    return f"{n} B"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _span(seconds: float) -> str:
    s = abs(seconds)
    if s < 1:
        return "Less than a second"
    if s < 60:
        return _plural(int(s), "second")
    if s < 120:
        return "About a minute"
    if s < 3600:
        return _plural(int(s // 60), "minute")
    if s < 7200:
        return "About an hour"
    if s < 86400:
        return _plural(int(s // 3600), "hour")
    if s < 86400 * 14:
        return _plural(int(s // 86400), "day")
    if s < 86400 * 60:
        return _plural(int(s // (86400 * 7)), "week")
    if s < 86400 * 730:
        return _plural(int(s // (86400 * 30)), "month")
    return _plural(int(s // (86400 * 365)), "year")


def human_time(ts: dt.datetime, now: dt.datetime | None = None) -> str:
    """``2 weeks ago``, ``4 minutes from now``, ``Forever`` (> 20 years ahead)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    delta = (ts - now).total_seconds()
    if delta > 20 * 365 * 86400:
        return "Forever"
    span = _span(delta)
    if delta >= 0 and span != "Less than a second":
        return f"{span} from now"
    return f"{span} ago"


def parse_time(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return dt.datetime.now(dt.timezone.utc)


def processor(size: int, size_vram: int) -> str:
    if size <= 0:
        return "Unknown"
    if size_vram == 0:
        return "100% CPU"
    if size_vram >= size:
        return "100% GPU"
    if size_vram > size:
        return "Unknown"
    gpu = math.floor(size_vram / size * 100)
    return f"{100 - gpu}%/{gpu}% CPU/GPU"
