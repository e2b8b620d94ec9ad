"""Pull/push/create progress: a bar per layer (speed, ETA), a line per status."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.console import Console
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
