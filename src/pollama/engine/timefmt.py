"""Timestamps as Ollama writes them."""

from __future__ import annotations

import datetime as dt
import time


def rfc3339_utc_now() -> str:
    """``created_at``: RFC 3339 in UTC with nanoseconds, e.g. ``2023-08-04T19:22:45.499127123Z``."""
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    return dt.datetime.fromtimestamp(secs, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def local_iso(ts: float) -> str:
    """``modified_at``/``expires_at``: local time with offset, e.g. ``2025-05-10T08:06:48.639712-07:00``."""
    if ts > 253402300799:  # beyond year 9999: Python cannot format it, clamp
        ts = 253402300799
    return dt.datetime.fromtimestamp(ts).astimezone().isoformat()
