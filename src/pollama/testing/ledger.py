"""The flakiness ledger: every run of an LLM test appended to a local JSONL history, failures
attributed to a cause, and each test classified from its history with an interval.

``pytest --llm-ledger PATH`` (the plugin) appends one line per LLM test (a test marked ``llm`` or
using the ``llm``/``ollama_client`` fixtures)::

    {"test": "tests/test_x.py::test_y", "outcome": "failed", "cause": "model",
     "model": "smollm2:135m", "digest": "…", "run": "…", "at": "2026-12-04T07:00:00Z",
     "duration": 1.23, "error": "MeasurementFailed: …"}

**Attribution.** A failure is charged to

* ``infrastructure`` — the server was unreachable, timed out, answered 5xx/429, or the model was
  not there (404), or the throwaway server did not start: not the model's fault, and *never
  counted as a model failure*;
* ``harness`` — the test itself broke: a recording is missing (``CassetteMiss``), or an
  exception other than an assertion (``TypeError``, ``KeyError`` …) escaped the test;
* ``model`` — an assertion about what the model did (``assert``, a FAIL or INCONCLUSIVE
  measurement).

**Classification** (per test, over the runs at the current model digest, infrastructure
failures left out): ``stable-pass`` (no model failure), ``stable-fail`` (every run failed),
``flaky``, or ``no-verdict`` (every run failed for infrastructure reasons), with the failure rate
and its Wilson interval. **Drift**: the pass rate of the latest
runs differs from the earlier ones at the same digest (their intervals do not overlap), or the
model digest changed since the last run.

**Quarantine** is explicit and expires: ``@pytest.mark.llm_quarantine(until="2027-01-31",
reason="…")`` keeps the test running and recorded, but until that date a failure is reported as
``xfail`` and does not fail the run; from the next day it fails again, and says its quarantine
expired.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pollama.testing.stats import wilson_interval as wilson

Cause = Literal["model", "infrastructure", "harness"]
MAX_LINES = 200_000  # history read back at most (the newest lines)
MAX_LINE = 64 << 10
RECENT = 10  # runs in the "latest" window of the drift check


@dataclass
class Entry:
    test: str
    outcome: str  # "passed" | "failed"
    cause: Cause | None = None
    model: str = ""
    digest: str = ""
    run: str = ""
    at: str = ""
    duration: float = 0.0
    error: str = ""

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v not in (None, "")}, ensure_ascii=False)


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen and len(out) < 8:
        seen.add(id(cur))
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def attribute(exc: BaseException, phase: str = "call") -> Cause:
    """Which cause a failure is charged to (see the module docstring)."""
    from pollama.guard import is_transient, status_code_of

    chain = _chain(exc)
    names = {cls.__name__ for e in chain for cls in type(e).__mro__}
    if names & {"CassetteMiss", "CassetteError"}:
        return "harness"
    for e in chain:
        code = status_code_of(e)
        if is_transient(e) or code == 404 or type(e).__name__ == "ServerStartError":
            return "infrastructure"
    if phase == "setup" and "Failed" in names:  # a fixture's pytest.fail: the server did not start
        return "infrastructure"
    if isinstance(exc, AssertionError) or "Failed" in names:
        return "model" if phase == "call" else "harness"
    return "harness"


@dataclass
class Status:
    test: str
    runs: int  # model-relevant runs at the digest (infrastructure failures excluded)
    failures: int
    infrastructure: int
    low: float
    high: float
    kind: str  # stable-pass | stable-fail | flaky | no-verdict
    drift: str = ""

    def describe(self) -> str:
        rate = self.failures / self.runs if self.runs else 0.0
        text = (f"{self.kind:<11} {self.test}: {self.failures}/{self.runs} model failures "
                f"({rate:.0%} [{self.low:.0%}, {self.high:.0%}])")
        if self.infrastructure:
            text += f", {self.infrastructure} infrastructure failure(s) not counted"
        return text + (f"; DRIFT: {self.drift}" if self.drift else "")


def classify(entries: Sequence[Entry], confidence: float = 0.95) -> dict[str, Status]:
    """Each test's status from its history, at the digest of its latest run."""
    by_test: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        by_test[e.test].append(e)
    out = {}
    for test, rows in by_test.items():
        digest = rows[-1].digest
        same = [e for e in rows if e.digest == digest]
        counted = [e for e in same if e.cause != "infrastructure"]
        k = sum(1 for e in counted if e.outcome == "failed")
        n = len(counted)
        low, high = wilson(k, n, confidence) if n else (0.0, 1.0)
        kind = "no-verdict" if n == 0 else "stable-pass" if k == 0 else "stable-fail" if k == n else "flaky"
        drift = ""
        earlier_digests = {e.digest for e in rows[:-1]}
        if rows[:-1] and digest not in earlier_digests:
            prev = rows[-2].digest or "unknown"
            drift = f"model digest changed ({prev[:19]} → {digest[:19] or 'unknown'})"
        elif n >= 2 * RECENT:
            old, new = counted[:-RECENT], counted[-RECENT:]
            lo_old, hi_old = wilson(sum(e.outcome == "failed" for e in old), len(old), confidence)
            lo_new, hi_new = wilson(sum(e.outcome == "failed" for e in new), len(new), confidence)
            if hi_new < lo_old or lo_new > hi_old:
                drift = (f"failure rate moved from {sum(e.outcome == 'failed' for e in old)}/{len(old)} to "
                         f"{sum(e.outcome == 'failed' for e in new)}/{len(new)} in the latest {RECENT} runs "
                         "at the same digest")
        infra = sum(1 for e in same if e.cause == "infrastructure")
        out[test] = Status(test, n, k, infra, low, high, kind, drift)
    return out


class Ledger:
    """A JSONL history file: appended to, read back tolerant of damage."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.skipped = 0  # unreadable lines met by the last load()

    def append(self, entries: Iterable[Entry]) -> None:
        lines = "".join(e.to_json() + "\n" for e in entries)
        if lines:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(lines)

    def load(self) -> list[Entry]:
        self.skipped = 0
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8", errors="replace") as f:
            lines = deque(f, maxlen=MAX_LINES)  # the newest lines; memory bounded whatever the file
        out = []
        for line in lines:
            if not line.strip():
                continue
            try:
                if len(line) > MAX_LINE:
                    raise ValueError("line too long")
                d: Any = json.loads(line)
                e = Entry(**{k: d[k] for k in Entry.__dataclass_fields__ if k in d})
                if not isinstance(e.test, str) or e.outcome not in ("passed", "failed"):
                    raise ValueError("not an entry")
                out.append(e)
            except (ValueError, TypeError, KeyError):
                self.skipped += 1
        return out


def quarantine_until(value: Any) -> dt.date:
    """The ``until`` of an ``llm_quarantine`` marker, as a date (ISO ``YYYY-MM-DD``).

    >>> quarantine_until("2027-01-31")
    datetime.date(2027, 1, 31)
    """
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"llm_quarantine(until=...) needs a date like 2027-01-31, not {value!r}") from None


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["Entry", "Ledger", "Status", "attribute", "classify", "now_iso", "quarantine_until"]
