"""The flakiness ledger (``--llm-ledger``): runs of a suite appended to a JSONL history, failures
attributed (infrastructure never counted against the model), tests classified with intervals,
drift flagged, quarantines that expire — run as a user would, in pytest subprocesses."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pollama.chaos import BackgroundServer
from pollama.testing.cassette import CassetteMiss
from pollama.testing.client import LLMHTTPError
from pollama.testing.ledger import Entry, Ledger, attribute, classify
from pollama.testing.measure import MeasurementFailed
from pollama.testing.server import ServerStartError
from tests.fake_ollama import FakeOllama
from tests.unit.test_toolkit_plugin import pytest_run

# test_flip fails on every other run (a counter file beside the suite): a flaky test.
SUITE = '''
import pathlib
import pytest

def test_steady(llm):
    assert llm.generate("hi", num_predict=2).text is not None

def test_flip(llm):
    counter = pathlib.Path("runs.txt")
    n = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(n + 1))
    llm.generate("hi", num_predict=2)
    assert n % 2 == 0, "the model said something else this time"

@pytest.mark.llm
def test_server_gone():
    import httpx
    httpx.get("http://127.0.0.1:9/api/version", timeout=1)

def test_not_an_llm_test():
    assert True
'''


@pytest.fixture
def fake_url() -> Iterator[str]:
    with BackgroundServer(FakeOllama().app()) as s:
        yield s.url


def test_runs_are_recorded_attributed_and_classified(tmp_path: Path, fake_url: str) -> None:
    ledger = tmp_path / "ledger.jsonl"
    args = ("--llm-url", fake_url, "--llm-model", "fake:1", "--llm-ledger", str(ledger))
    for _ in range(4):
        pytest_run(tmp_path, *args, suite=SUITE)
    last = pytest_run(tmp_path, *args, "--junitxml", "out.xml", suite=SUITE)
    rows = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert len(rows) == 15 and {r["test"].split("::")[1] for r in rows} == {"test_steady", "test_flip", "test_server_gone"}
    flip = [r for r in rows if r["test"].endswith("test_flip")]
    assert [r["outcome"] for r in flip] == ["passed", "failed", "passed", "failed", "passed"]
    assert all(r["cause"] == "model" for r in flip if r["outcome"] == "failed")
    assert all(r["digest"].startswith("sha256:") and r["model"] == "fake:1" for r in rows)
    gone = [r for r in rows if r["test"].endswith("test_server_gone")]
    assert all(r["outcome"] == "failed" and r["cause"] == "infrastructure" and "ConnectError" in r["error"] for r in gone)
    out = last.stdout
    assert f"LLM flakiness ledger ({ledger}: 15 runs recorded)" in out
    assert "flaky       test_suite.py::test_flip: 2/5 model failures (40% [" in out
    # An unreachable server is not the model's fault: no model failures, five infrastructure ones.
    assert "no-verdict  test_suite.py::test_server_gone: 0/0 model failures" in out
    assert "5 infrastructure failure(s) not counted" in out
    assert "stable-pass: 1 test(s)" in out
    junit = (tmp_path / "out.xml").read_text()
    assert 'name="llm:ledger" value="flaky       test_suite.py::test_flip: 2/5 model failures' in junit


def test_quarantine_keeps_recording_and_expires(tmp_path: Path, fake_url: str) -> None:
    ledger = tmp_path / "ledger.jsonl"
    tomorrow, yesterday = dt.date.today() + dt.timedelta(days=1), dt.date.today() - dt.timedelta(days=1)
    suite = f'''
import pytest

@pytest.mark.llm_quarantine(until="{tomorrow}", reason="known flaky, issue 12")
def test_held(llm):
    llm.generate("hi", num_predict=2)
    assert False, "wrong answer"

@pytest.mark.llm_quarantine(until="{yesterday}")
def test_expired(llm):
    llm.generate("hi", num_predict=2)
    assert False, "wrong answer"
'''
    r = pytest_run(tmp_path, "--llm-url", fake_url, "--llm-model", "fake:1", "--llm-ledger", str(ledger),
                   "-rxX", suite=suite)
    assert r.returncode == 1 and "1 failed, 1 xfailed" in r.stdout
    assert f"quarantined until {tomorrow}: known flaky, issue 12" in r.stdout
    assert f"the quarantine of this test expired on {yesterday}" in r.stdout
    rows = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert [(x["test"].split("::")[1], x["outcome"], x["cause"]) for x in rows] == [
        ("test_held", "failed", "model"), ("test_expired", "failed", "model")]  # both still recorded
    bad = pytest_run(tmp_path, "--llm-url", fake_url, suite=suite.replace(str(tomorrow), "soon"))
    assert bad.returncode == 4 and "INTERNALERROR" not in bad.stdout + bad.stderr
    assert ("test_suite.py::test_held: llm_quarantine(until=...) needs a date like 2027-01-31, not 'soon'"
            in bad.stdout + bad.stderr)


def test_a_ledger_that_cannot_be_read_or_written_is_said_plainly(tmp_path: Path, fake_url: str) -> None:
    suite = "import pytest\n\n@pytest.mark.llm\ndef test_x():\n    pass\n"
    (tmp_path / "adir").mkdir()
    unreadable = pytest_run(tmp_path, "--llm-ledger", "adir", suite=suite)
    assert unreadable.returncode == 4 and "--llm-ledger adir: cannot read it (Is a directory)" in unreadable.stderr
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "l.jsonl").write_text("")
    (tmp_path / "ro" / "l.jsonl").chmod(0o444)
    if os.access(tmp_path / "ro" / "l.jsonl", os.W_OK):  # root ignores file modes: use a path under a file
        target = "ro/l.jsonl/inside.jsonl"
    else:
        target = "ro/l.jsonl"
    r = pytest_run(tmp_path, "--llm-ledger", target, suite=suite)
    assert r.returncode == 0 and "1 passed" in r.stdout
    assert f"could not write {target}" in r.stdout and "this run's 1 result(s) were not recorded" in r.stdout


@pytest.mark.parametrize(("exc", "phase", "cause"), [
    (MeasurementFailed.__new__(MeasurementFailed), "call", "model"),
    (AssertionError("wrong"), "call", "model"),
    (LLMHTTPError(503, "server busy"), "call", "infrastructure"),
    (LLMHTTPError(404, "model 'x' not found"), "call", "infrastructure"),
    (LLMHTTPError(400, "invalid options"), "call", "harness"),
    (ConnectionRefusedError("refused"), "call", "infrastructure"),
    (TimeoutError("slow"), "call", "infrastructure"),
    (ServerStartError("no server"), "setup", "infrastructure"),
    (CassetteMiss("not recorded"), "call", "harness"),
    (KeyError("response"), "call", "harness"),
    (AssertionError("fixture broke"), "setup", "harness"),
])
def test_attribution(exc: BaseException, phase: str, cause: str) -> None:
    assert attribute(exc, phase) == cause


def test_a_wrapped_infrastructure_error_is_found_in_the_chain() -> None:
    try:
        try:
            raise ConnectionResetError("peer reset")
        except ConnectionResetError as inner:
            raise ValueError("could not parse the reply") from inner
    except ValueError as exc:
        assert attribute(exc) == "infrastructure"


def test_drift_at_the_same_digest_and_on_a_new_digest() -> None:
    rows = [Entry("t", "passed", digest="sha256:a") for _ in range(20)]
    rows += [Entry("t", "failed", "model", digest="sha256:a") for _ in range(10)]
    st = classify(rows)["t"]
    assert st.kind == "flaky" and st.failures == 10 and st.runs == 30
    assert st.drift == "failure rate moved from 0/20 to 10/10 in the latest 10 runs at the same digest"
    st = classify(rows + [Entry("t", "passed", digest="sha256:b")])["t"]
    assert st.kind == "stable-pass" and st.runs == 1  # the new digest starts a new history
    assert st.drift == "model digest changed (sha256:a → sha256:b)"
    steady = classify([Entry("u", "passed", digest="d") for _ in range(25)])["u"]
    assert steady.kind == "stable-pass" and not steady.drift and steady.high < 0.15


def test_a_damaged_ledger_is_read_around(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    ledger = Ledger(path)
    ledger.append([Entry("a", "passed"), Entry("a", "failed", "model")])
    with open(path, "a") as f:
        f.write('{"test": "a", "outcome": "maybe"}\nnot json\n{"truncated": \n' + "x" * 70_000 + "\n")
    ledger.append([Entry("a", "passed")])
    assert [e.outcome for e in ledger.load()] == ["passed", "failed", "passed"] and ledger.skipped == 4
