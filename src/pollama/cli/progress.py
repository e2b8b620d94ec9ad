"""Pull/push/create progress: a bar per layer (speed, ETA), a line per status — or, when the
output is not a terminal (a pipe, a CI log), plain lines in the order things happen."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


def show_progress(events: Iterator[dict[str, Any]], console: Console | None = None) -> None:
    console = console or Console(stderr=True)
    if not console.is_terminal:
        _plain(events, console)
        return
    bars: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        DownloadColumn(binary_units=False), TransferSpeedColumn(), TimeRemainingColumn(),
        console=console, transient=False,
    ) as progress:
        last_status = None
        for ev in events:
            status = str(ev.get("status", ""))
            digest = ev.get("digest")
            if digest and ev.get("total"):
                total = int(ev["total"])
                done = int(ev.get("completed") or 0)
                if digest not in bars:
                    bars[digest] = progress.add_task(f"{status}:", total=total)
                progress.update(bars[digest], completed=done, total=total)
                continue
            if status and status != last_status:
                progress.console.print(status, highlight=False)
                last_status = status


def _plain(events: Iterator[dict[str, Any]], console: Console) -> None:
    """One line per status, and per layer one when it starts, at each quarter and when it is
    done: a log stays short and in order (a live bar would only print itself at the end)."""
    last_status = None
    quarter: dict[str, int] = {}
    for ev in events:
        status = str(ev.get("status", ""))
        digest = ev.get("digest")
        if digest and ev.get("total"):
            total = int(ev["total"])
            done = min(int(ev.get("completed") or 0), total)
            q = 4 * done // total
            if quarter.get(digest, -1) < q:
                quarter[digest] = q
                console.print(f"{status}: {25 * q:3d}% of {decimal(total)}", highlight=False, soft_wrap=True)
            continue
        if status and status != last_status:
            console.print(status, highlight=False, soft_wrap=True)  # a log line is never folded
            last_status = status
