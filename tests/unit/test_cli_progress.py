"""`pollama pull` progress when the output is not a terminal: lines in the order things happen."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from pollama.cli.progress import show_progress


def pull_events() -> list[dict[str, Any]]:
    big, small = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    ev: list[dict[str, Any]] = [{"status": "pulling manifest"}]
    ev += [{"status": "pulling aaaaaaaaaaaa", "digest": big, "total": 1000, "completed": c} for c in (0, 100, 300, 600, 999, 1000)]
    ev += [{"status": "pulling bbbbbbbbbbbb", "digest": small, "total": 54, "completed": c} for c in (0, 54)]
    ev += [{"status": s} for s in ("verifying sha256 digest", "writing manifest", "success")]
    return ev


def test_piped_output_is_plain_lines_in_order() -> None:
    out = io.StringIO()
    show_progress(iter(pull_events()), Console(file=out, force_terminal=False, width=120))
    lines = out.getvalue().splitlines()
    assert lines == [
        "pulling manifest",
        "pulling aaaaaaaaaaaa:   0% of 1.0 kB",
        "pulling aaaaaaaaaaaa:  25% of 1.0 kB",
        "pulling aaaaaaaaaaaa:  50% of 1.0 kB",
        "pulling aaaaaaaaaaaa:  75% of 1.0 kB",
        "pulling aaaaaaaaaaaa: 100% of 1.0 kB",
        "pulling bbbbbbbbbbbb:   0% of 54 bytes",
        "pulling bbbbbbbbbbbb: 100% of 54 bytes",
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    assert "\x1b" not in out.getvalue() and "━" not in out.getvalue()  # no escape codes, no bars


def test_a_terminal_gets_bars() -> None:
    out = io.StringIO()
    show_progress(iter(pull_events()), Console(file=out, force_terminal=True, width=120))
    assert "━" in out.getvalue() and "success" in out.getvalue()


def test_long_statuses_stay_on_one_line_in_a_log() -> None:
    digest = "sha256:" + "c" * 64
    out = io.StringIO()
    show_progress(iter([{"status": f"creating new layer {digest}"}, {"status": "success"}]),
                  Console(file=out, force_terminal=False, width=80))
    assert out.getvalue().splitlines() == [f"creating new layer {digest}", "success"]  # greppable, not folded
