"""Durations: ``keep_alive`` values and Go duration strings (reference §3.4).

A JSON number is seconds (negative = forever); a string is a Go duration such as ``"5m"``,
``"1h30m"`` or ``"-1m"``. A bare number in a string is invalid, except ``"0"``.

>>> parse_go_duration("1h30m")
5400.0
>>> parse_go_duration("1.5s")
1.5
>>> parse_go_duration("-1m")
-60.0
>>> parse_keep_alive(10)
10.0
>>> parse_keep_alive("3600")
Traceback (most recent call last):
...
pollama.errors.InvalidRequest: time: missing unit in duration "3600"
>>> format_go_duration(300)
'5m0s'
"""

from __future__ import annotations

import math
import re
from typing import Any

from pollama.errors import InvalidRequest

FOREVER = math.inf

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Parse a Go ``time.ParseDuration`` string into seconds."""
    s = text.strip()
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise InvalidRequest(f'time: invalid duration "{text}"')
    pos, total = 0, 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m:
            if re.fullmatch(r"[\d.]+", s[pos:]):
                raise InvalidRequest(f'time: missing unit in duration "{text}"')
            raise InvalidRequest(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def parse_keep_alive(value: Any) -> float | None:
    """A request's ``keep_alive``: seconds, ``math.inf`` for forever, ``None`` when unset."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidRequest("keep_alive must be a number of seconds or a duration string")
    if isinstance(value, (int, float)):
        if math.isnan(value):
            raise InvalidRequest("keep_alive must be a number of seconds or a duration string")
        return FOREVER if value < 0 else float(value)
    if isinstance(value, str):
        seconds = parse_go_duration(value)
        return FOREVER if seconds < 0 else seconds
    raise InvalidRequest("keep_alive must be a number of seconds or a duration string")


def parse_env_duration(text: str) -> float:
    """``OLLAMA_KEEP_ALIVE``-style: an integer number of seconds or a Go duration."""
    t = text.strip().strip("\"'")
    try:
        seconds = float(int(t))
    except ValueError:
        seconds = parse_go_duration(t)
    return FOREVER if seconds < 0 else seconds


def format_go_duration(seconds: float) -> str:
    """Render seconds as Go prints a ``time.Duration`` (``-1`` for forever)."""
    if math.isinf(seconds) or seconds < 0:
        return "-1"
    if seconds == 0:
        return "0s"
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    out = ""
    if h:
        out += f"{int(h)}h"
    if h or m:
        out += f"{int(m)}m"
    out += f"{s:g}s"
    return out
