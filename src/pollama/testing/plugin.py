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
``--llm-confidence`` (default 0.95). Marker: ``llm``.

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
    from pollama.testing.cassette import Cassette
    from pollama.testing.client import LLM, Transport
    from pollama.testing.server import LLMServer
    from pollama.testing.stats import Measurement

DEFAULT_MODEL = "smollm2:135m"
_SUMMARY_KEY = pytest.StashKey[list[tuple[str, str, str]]]()


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "llm: the test talks to an LLM through the pollama.testing fixtures")
    config.stash[_SUMMARY_KEY] = []
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
    return _make_llm(llm_server.url, llm_model, _llm_transport, request.config, request.node)  # type: ignore[arg-type,unused-ignore]


@pytest.fixture
def ollama_client(llm: LLM) -> Callable[..., dict[str, Any]]:
    """The tutorial's shape: ``call(prompt, stream=False) -> dict`` against ``/api/generate``
    (goes through record/replay like ``llm``)."""
    from pollama.testing.client import tutorial_call

    return tutorial_call(llm)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rows = config.stash.get(_SUMMARY_KEY, [])
    if not rows:
        return
    terminalreporter.section("LLM measurements (pollama)")
    for nodeid, verdict, line in rows:
        terminalreporter.write_line(f"{verdict:<12} {nodeid}: {line}")
