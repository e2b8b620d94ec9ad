"""pytest plugin (``pytest11`` entry point ``pollama``): test an LLM as a system component.

Fixtures
    ``llm_server`` (session)  the server under test: a throwaway ``pollama serve`` on a free
                              loopback port with a temporary store and the bundled model, or
                              the server named by ``--llm-url`` / ``$POLLAMA_TEST_URL`` (real
                              Ollama works), or nothing at all under ``--llm-replay``.
    ``llm_model`` (session)   ``--llm-model`` / ``$POLLAMA_TEST_MODEL`` (default smollm2:135m).
    ``llm_url`` (session)     the server's base URL.
    ``llm``                   a :class:`PytestLLM`: generate/chat/stream with typed results and
                              timings, plus ``llm.check(measurement)``.
    ``ollama_client``         the tutorial's shape: ``call(prompt, stream=False) -> dict``.

Options: ``--llm-url``, ``--llm-model``, ``--llm-record PATH``, ``--llm-replay PATH``,
``--llm-replay-realtime``, ``--llm-inconclusive {fail,xfail,warn}`` (default ``fail``: strict),
``--llm-confidence`` (default 0.95), ``--llm-ledger PATH`` (the flakiness ledger,
:mod:`pollama.testing.ledger`). Markers: ``llm``, ``llm_quarantine(until=, reason=)``.

Nothing starts unless a test requests one of these fixtures, and importing the plugin imports
only the standard library and pytest (it is loaded in every pytest run).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from datetime import date

    from pollama.testing.cassette import Cassette
    from pollama.testing.client import LLM, Transport
    from pollama.testing.server import LLMServer
    from pollama.testing.stats import Measurement

DEFAULT_MODEL = "smollm2:135m"
_SUMMARY_KEY = pytest.StashKey[list[tuple[str, str, str]]]()
_LEDGER_KEY = pytest.StashKey["_LedgerRun"]()
_ENTRY_KEY = pytest.StashKey[dict[str, Any]]()
_QUARANTINE_KEY = pytest.StashKey["date"]()
LLM_FIXTURES = frozenset({"llm", "ollama_client", "llm_server", "llm_url", "llm_model"})


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llm", "LLM behaviour testing (pollama)")
    group.addoption("--llm-url", default=None,
                    help="Ollama-compatible server to test (default $POLLAMA_TEST_URL; without either, "
                         "a throwaway pollama serve with the bundled model is started)")
    group.addoption("--llm-model", default=None, help=f"model to test (default $POLLAMA_TEST_MODEL or {DEFAULT_MODEL})")
    group.addoption("--llm-record", default=None, metavar="PATH",
                    help="record every LLM exchange (several samples per request, chunks and timings) to a cassette")
    group.addoption("--llm-replay", default=None, metavar="PATH",
                    help="serve LLM exchanges from a cassette, offline; a request not in it fails naming it")
    group.addoption("--llm-replay-realtime", action="store_true", default=False,
                    help="on replay, also wait out the recorded durations in real time")
    group.addoption("--llm-inconclusive", default="fail", choices=("fail", "xfail", "warn"),
                    help="what an INCONCLUSIVE measurement does (default: fail)")
    group.addoption("--llm-confidence", default=0.95, type=float,
                    help="confidence level of intervals and verdicts (default 0.95)")
    group.addoption("--llm-ledger", default=None, metavar="PATH",
                    help="append every LLM test's outcome, with its attributed cause, to this JSONL history "
                         "and classify each test as stable-pass, stable-fail or flaky (with drift alarms)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "llm: the test talks to an LLM through the pollama.testing fixtures")
    config.addinivalue_line("markers", "llm_quarantine(until, reason=''): keep running and recording this "
                                       "test, but report its failures as xfail until the date (YYYY-MM-DD)")
    config.stash[_SUMMARY_KEY] = []
    ledger = config.getoption("--llm-ledger", None)
    if ledger:
        try:
            config.stash[_LEDGER_KEY] = _LedgerRun(Path(ledger))
        except OSError as exc:
            raise pytest.UsageError(f"--llm-ledger {ledger}: cannot read it ({exc.strerror or exc})") from None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A malformed ``llm_quarantine`` is a usage error named at collection, not a crash later."""
    from pollama.testing.ledger import quarantine_until

    for item in items:
        mark = item.get_closest_marker("llm_quarantine")
        if mark is not None:
            try:
                item.stash[_QUARANTINE_KEY] = quarantine_until(mark.kwargs.get("until", mark.args[0] if mark.args else ""))
            except ValueError as exc:
                raise pytest.UsageError(f"{item.nodeid}: {exc}") from None
    if config.getoption("--llm-record", None) and config.getoption("--llm-replay", None):
        raise pytest.UsageError("--llm-record and --llm-replay cannot be used together")
    conf = config.getoption("--llm-confidence", 0.95)
    if not 0.0 < conf < 1.0:
        raise pytest.UsageError(f"--llm-confidence must be strictly between 0 and 1, got {conf}")


def _opt(config: pytest.Config, name: str, env: str) -> str | None:
    value = config.getoption(name, default=None)
    return str(value) if value else os.environ.get(env) or None


@pytest.fixture(scope="session")
def llm_server(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    """The server under test (see the module docstring for how it is chosen)."""
    from pollama.testing.server import LLMServer, ServerStartError, start_pollama, wait_until_up

    model = _opt(pytestconfig, "--llm-model", "POLLAMA_TEST_MODEL") or DEFAULT_MODEL
    if pytestconfig.getoption("--llm-replay", None):
        yield LLMServer("replay://" + str(pytestconfig.getoption("--llm-replay")), model, kind="replay")
        return
    url = _opt(pytestconfig, "--llm-url", "POLLAMA_TEST_URL")
    if url:
        url = url.rstrip("/")
        if "://" not in url:
            url = "http://" + url
        try:
            wait_until_up(url, timeout=3)
        except ServerStartError as exc:
            pytest.fail(f"{exc}; start the server or fix --llm-url / $POLLAMA_TEST_URL", pytrace=False)
        yield LLMServer(url, model, kind="external")
        return
    try:
        server = start_pollama(model, tmp_path_factory.mktemp("pollama-llm-server"))
    except ServerStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def llm_model(llm_server: LLMServer) -> str:
    """The model under test."""
    return llm_server.model


@pytest.fixture(scope="session")
def llm_url(llm_server: LLMServer) -> str:
    return llm_server.url


@pytest.fixture(scope="session")
def _llm_transport(pytestconfig: pytest.Config, llm_server: LLMServer) -> Iterator[Transport]:
    from pollama.testing.cassette import Cassette, CassetteError, RecordingTransport, ReplayTransport
    from pollama.testing.client import LiveTransport

    replay = pytestconfig.getoption("--llm-replay", None)
    if replay:
        try:
            cassette = Cassette.load(replay)
        except CassetteError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield ReplayTransport(cassette, realtime=bool(pytestconfig.getoption("--llm-replay-realtime")))
        return
    live = LiveTransport(llm_server.url)
    record = pytestconfig.getoption("--llm-record", None)
    if not record:
        yield live
        live.close()
        return
    rec: Cassette = Cassette(Path(record), meta={"url": llm_server.url, "model": llm_server.model})
    try:
        yield RecordingTransport(live, rec)
    finally:
        rec.save()
        live.close()


def _make_llm(url: str, model: str, transport: Transport, config: pytest.Config, node: pytest.Item) -> LLM:
    from pollama.testing.client import LLM
    from pollama.testing.measure import check

    class _PytestLLM(LLM):
        """An :class:`~pollama.testing.client.LLM` that knows the test it serves."""

        confidence: float = float(config.getoption("--llm-confidence", 0.95))

        def check(self, measurement: Measurement) -> Measurement:
            """Assert ``measurement`` (INCONCLUSIVE follows ``--llm-inconclusive``) and record it in
            the terminal summary and in the JUnit XML as a property."""
            line = measurement.describe()
            node.user_properties.append((f"llm:{measurement.name}", line))
            config.stash[_SUMMARY_KEY].append((node.nodeid, measurement.verdict.value, line))
            return check(measurement, config.getoption("--llm-inconclusive", "fail"))

    return _PytestLLM(url, model, transport=transport)


@pytest.fixture
def llm(llm_server: LLMServer, llm_model: str, _llm_transport: Transport, request: pytest.FixtureRequest) -> LLM:
    """A measuring client for the model under test (typed results, server timings, TTFT)."""
    made = _make_llm(llm_server.url, llm_model, _llm_transport, request.config, request.node)  # type: ignore[arg-type,unused-ignore]
    run = request.config.stash.get(_LEDGER_KEY, None)
    if run is not None and run.digest is None:
        run.model, run.digest = llm_model, str(made.info().get("digest") or "")  # once a session
    return made


@pytest.fixture
def ollama_client(llm: LLM) -> Callable[..., dict[str, Any]]:
    """The tutorial's shape: ``call(prompt, stream=False) -> dict`` against ``/api/generate``
    (goes through record/replay like ``llm``)."""
    from pollama.testing.client import tutorial_call

    return tutorial_call(llm)


class _LedgerRun:
    """This session's ledger: the history read at the start, the entries of this run."""

    def __init__(self, path: Path) -> None:
        from pollama.testing.ledger import Ledger, now_iso

        self.ledger = Ledger(path)
        self.history = self.ledger.load()
        self.entries: list[Any] = []
        self.run = f"{now_iso()}-{os.getpid()}"
        self.model = ""
        self.digest: str | None = None


def _is_llm_test(item: pytest.Item) -> bool:
    return item.get_closest_marker("llm") is not None or bool(LLM_FIXTURES & set(getattr(item, "fixturenames", ())))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    mark = item.get_closest_marker("llm_quarantine")
    if mark is not None and report.when == "call" and report.failed and _QUARANTINE_KEY in item.stash:
        import datetime as dt

        until = item.stash[_QUARANTINE_KEY]
        reason = str(mark.kwargs.get("reason", ""))
        item.stash.setdefault(_ENTRY_KEY, {})["quarantined"] = True
        if dt.date.today() <= until:
            report.outcome = "skipped"
            report.wasxfail = f"quarantined until {until}" + (f": {reason}" if reason else "")
            report.user_properties.append(("llm:quarantine", f"until {until}"))
        else:
            report.sections.append(("llm quarantine", f"the quarantine of this test expired on {until}"))
            report.user_properties.append(("llm:quarantine", f"expired {until}"))
    run = item.config.stash.get(_LEDGER_KEY, None)
    if run is None or not _is_llm_test(item):
        return report
    state = item.stash.setdefault(_ENTRY_KEY, {})
    state["duration"] = state.get("duration", 0.0) + report.duration
    failed = report.failed or bool(state.get("quarantined") and report.when == "call" and call.excinfo)
    if failed and "cause" not in state and call.excinfo is not None:
        from pollama.testing.ledger import attribute

        exc = call.excinfo.value
        state["cause"] = attribute(exc, report.when)
        state["error"] = f"{type(exc).__name__}: {exc}"[:500]
    if report.when == "call" and report.passed and not failed:
        state["passed"] = True
    if report.when == "teardown":
        _record(item, run, state, report)
    return report


def _record(item: pytest.Item, run: _LedgerRun, state: dict[str, Any], report: pytest.TestReport) -> None:
    from pollama.testing.ledger import Entry, classify, now_iso

    if "cause" not in state and not state.get("passed"):
        return  # skipped, or an xfail the test asked for: nothing decided
    entry = Entry(item.nodeid, "failed" if "cause" in state else "passed", state.get("cause"), run.model,
                  run.digest or "", run.run, now_iso(), round(state.get("duration", 0.0), 3), state.get("error", ""))
    run.entries.append(entry)
    status = classify([e for e in run.history if e.test == item.nodeid] + [entry])[item.nodeid]
    report.user_properties.append(("llm:ledger", status.describe()))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rows = config.stash.get(_SUMMARY_KEY, [])
    if rows:
        terminalreporter.section("LLM measurements (pollama)")
        for nodeid, verdict, line in rows:
            terminalreporter.write_line(f"{verdict:<12} {nodeid}: {line}")
    run = config.stash.get(_LEDGER_KEY, None)
    if run is None:
        return
    from pollama.testing.ledger import classify

    try:
        run.ledger.append(run.entries)
    except OSError as exc:
        terminalreporter.section("LLM flakiness ledger")
        terminalreporter.write_line(f"could not write {run.ledger.path} ({exc.strerror or exc}): "
                                    f"this run's {len(run.entries)} result(s) were not recorded")
        return
    history = run.ledger.load()
    statuses = classify(history, float(config.getoption("--llm-confidence", 0.95)))
    ran = [statuses[t] for t in dict.fromkeys(e.test for e in run.entries) if t in statuses]
    terminalreporter.section(f"LLM flakiness ledger ({run.ledger.path}: {len(history)} runs recorded)")
    for st in ran:
        if st.kind != "stable-pass" or st.drift or st.infrastructure:
            terminalreporter.write_line(st.describe())
    stable = sum(1 for st in ran if st.kind == "stable-pass" and not st.drift and not st.infrastructure)
    if stable:
        terminalreporter.write_line(f"stable-pass: {stable} test(s) with no model failure in their history")
    if run.ledger.skipped:
        terminalreporter.write_line(f"({run.ledger.skipped} unreadable ledger line(s) skipped)")
