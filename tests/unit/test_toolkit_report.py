"""The probe end to end against the scripted server: CLI, reports, and the HTML rendered by
headless Chromium (Debian's ``chromium``; ``scripts/ensure-chromium.sh`` installs it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pollama.chaos import BackgroundServer
from pollama.cli.main import cli
from tests.fake_ollama import FakeOllama
from tests.pngcheck import non_white_fraction

PLOTS = ("latency-hist", "latency-cdf", "tokens-per-s", "determinism", "determinism-distinct", "validity", "clarification")


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    out = tmp_path_factory.mktemp("probe")
    fake = FakeOllama(token_delay=0.001)
    with BackgroundServer(fake.app()) as server:
        result = CliRunner().invoke(cli, ["probe", "fake:1", "--url", server.url, "--samples", "10", "-o", str(out)])
    assert result.exit_code == 0, result.output
    yield out, result.output


def test_probe_prints_a_summary_table_and_writes_three_reports(reports: tuple[Path, str]) -> None:
    out, output = reports
    assert "pollama probe · fake:1" in output and "seed honoured" in output and "report:" in output
    assert {p.name for p in out.iterdir()} == {"probe-fake-1.html", "probe-fake-1.json", "probe-fake-1.junit.xml"}
    d = json.loads((out / "probe-fake-1.json").read_text())
    assert d["model"] == "fake:1" and d["fingerprint"]["server_version"] == "0.0.0-fake"
    checks = {c["name"]: c for c in d["checks"]}
    assert checks["seed honoured"]["verdict"] == "PASS" and checks["num_predict honoured"]["verdict"] == "PASS"
    assert checks["schema validity (format)"]["verdict"] == "PASS"
    assert checks["schema validity (prompt)"]["verdict"] == "FAIL"
    assert checks["answers as if context existed rate (ambiguous prompts)"]["verdict"] == "FAIL"
    assert d["latency"]["cold"]["load"] > 0.04 and len(d["latency"]["samples"]) == 10
    suite = ET.parse(out / "probe-fake-1.junit.xml").getroot()
    cases = suite.findall("testcase")
    assert len(cases) == len(d["checks"]) and int(suite.get("tests", "0")) == len(cases)
    failed = [c for c in cases if c.find("failure") is not None]
    assert int(suite.get("failures", "0")) == len(failed) >= 2
    assert all(c.find("properties/property[@name='interval']") is not None for c in cases)


def test_html_is_self_contained_with_every_plot(reports: tuple[Path, str]) -> None:
    html = (reports[0] / "probe-fake-1.html").read_text()
    for name in PLOTS:
        assert f'data-plot="{name}"' in html, name
    assert not re.search(r'(src|href)=["\']?(https?:)?//', html) and "<script" not in html


def test_strict_exits_nonzero_when_a_check_does_not_pass(tmp_path: Path) -> None:
    with BackgroundServer(FakeOllama().app()) as server:
        r = CliRunner().invoke(cli, ["probe", "fake:1", "--url", server.url, "--samples", "2", "-o", str(tmp_path), "--strict"])
    assert r.exit_code == 1 and (tmp_path / "probe-fake-1.html").exists()


def test_probe_against_nothing_says_so(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["probe", "m", "--url", "http://127.0.0.1:9", "-o", str(tmp_path)])
    assert r.exit_code == 1 and "could not reach an Ollama-compatible server at http://127.0.0.1:9" in r.output


def test_chaos_command_validates_before_listening() -> None:
    r = CliRunner().invoke(cli, ["chaos", "--upstream", "http://127.0.0.1:9", "teleport:1"])
    assert r.exit_code == 2 and "unknown fault kind 'teleport'" in r.output
    r = CliRunner().invoke(cli, ["chaos", "--upstream", "http://127.0.0.1:9", "--listen", "0.0.0.0:0", "error:503"])
    assert r.exit_code == 2 and "refusing to listen on non-loopback address" in r.output
    assert "--upstream" in CliRunner().invoke(cli, ["chaos", "--help"]).output


def _chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("Chromium is missing: run scripts/ensure-chromium.sh (make test does)")
    return path


@pytest.mark.slow
def test_report_renders_in_headless_chromium(reports: tuple[Path, str], tmp_path: Path) -> None:
    html = reports[0] / "probe-fake-1.html"
    base = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for name in PLOTS:
        m = re.search(rf'<svg[^>]*data-plot="{name}".*?</svg>', dom.stdout, re.S)
        assert m, f"plot {name} missing from the rendered DOM"
        assert re.search(r'<(rect class="bar"|polyline class="cdf")', m.group(0)), f"plot {name} has no marks"
    shot = tmp_path / "shot.png"
    run = subprocess.run([*base, "--window-size=1280,2000", f"--screenshot={shot}", html.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    data = shot.read_bytes()
    assert non_white_fraction(data) > 0.05  # not blank
    # the plot area (below the summary) carries blue bars, not just text
    assert non_white_fraction(data, (0, 900, 1280, 2000)) > 0.05


def test_the_num_predict_canary_catches_a_server_that_overruns_the_cap(tmp_path: Path) -> None:
    with BackgroundServer(FakeOllama(num_predict_ignored=True).app()) as server:
        r = CliRunner().invoke(cli, ["probe", "fake:1", "--url", server.url, "--samples", "2", "-o", str(tmp_path)])
    checks = {c["name"]: c for c in json.loads((tmp_path / "probe-fake-1.json").read_text())["checks"]}
    assert r.exit_code == 0 and checks["num_predict honoured"]["verdict"] == "FAIL"
    assert checks["num_predict honoured"]["estimate"] == 0.0 and checks["num_predict honoured"]["n"] >= 2
