"""``pollama probe`` and ``pollama chaos``: the behaviour-testing toolkit on the command line.

Registered into the main CLI by :func:`register` (``pollama.cli.main`` imports this module).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _default_url() -> str:
    from pollama import envconfig

    return envconfig.load().host.url


@click.command(context_settings=CONTEXT)
@click.argument("model")
@click.option("--url", default=None, help="Ollama-compatible server (default: $OLLAMA_HOST, http://127.0.0.1:11434)")
@click.option("-o", "--out", "out_dir", default=".", show_default=True, type=click.Path(file_okay=False),
              help="directory for the HTML, JSON and JUnit XML reports")
@click.option("--samples", type=click.IntRange(1, 1000), default=None,
              help="scale: warm latency calls (others scale with it); default 10")
@click.option("--judge", default=None, help="a served model that also labels the clarification replies")
@click.option("--seed", default=42, show_default=True, type=int, help="seed of the determinism profile")
@click.option("--ttft-p50", default=2.0, show_default=True, type=float, help="bound on p50 time to first token (s)")
@click.option("--gen-rate-p50", default=5.0, show_default=True, type=float, help="bound on p50 generation rate (tok/s)")
@click.option("--works-at-least", default=0.75, show_default=True, type=click.FloatRange(0, 1))
@click.option("--validity-at-least", default=0.5, show_default=True, type=click.FloatRange(0, 1))
@click.option("--over-inference-at-most", default=0.5, show_default=True, type=click.FloatRange(0, 1))
@click.option("--strict", is_flag=True, help="exit 1 unless every check PASSes")
@click.option("--timeout", default=300.0, show_default=True, type=float, help="seconds per request")
def probe(model: str, url: str | None, out_dir: str, samples: int | None, judge: str | None, seed: int,
          ttft_p50: float, gen_rate_p50: float, works_at_least: float, validity_at_least: float,
          over_inference_at_most: float, strict: bool, timeout: float) -> None:
    """Measure MODEL's behaviour as a system component and write a report.

    Runs the tutorial's four observations as measurements with intervals (the call works,
    latency, output variation and structured output, over-inference on ambiguous prompts)
    against any Ollama-compatible server (pollama or Ollama), shows a summary table, and writes
    probe-MODEL.html (self-contained, with plots), .json and .junit.xml.
    """
    from rich.console import Console

    from pollama.testing.client import LLM
    from pollama.testing.probe import ProbeSettings
    from pollama.testing.report import write_reports

    settings = ProbeSettings(seed=seed, judge=judge, ttft_p50_at_most=ttft_p50, gen_rate_p50_at_least=gen_rate_p50,
                             works_at_least=works_at_least, validity_at_least=validity_at_least,
                             over_inference_at_most=over_inference_at_most)
    if samples is not None:
        k = samples / settings.latency_n
        settings.latency_n = samples
        settings.basic_n = max(1, round(settings.basic_n * k))
        settings.determinism_n = max(2, round(settings.determinism_n * k))
        settings.structured_n = max(1, round(settings.structured_n * k))
        settings.clarify_n = max(1, round(settings.clarify_n * k))
    base = (url or _default_url()).rstrip("/")
    if "://" not in base:
        base = "http://" + base
    err = Console(stderr=True)
    with LLM(base, model, timeout=timeout) as llm:
        try:
            llm.transport.get("/api/version")  # type: ignore[attr-defined]
        except Exception as exc:
            raise click.ClickException(f"could not reach an Ollama-compatible server at {base}: {exc}") from None
        run = _run(llm, settings, err, base)
    paths = write_reports(run, out_dir)
    _summary(Console(), run)
    click.echo(f"report: {paths['html']}\n        {paths['json']}\n        {paths['junit']}")
    if strict and any(c.measurement.verdict.value != "PASS" for c in run.checks):
        sys.exit(1)


def _run(llm: Any, settings: Any, err: Any, base: str) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pollama.testing.client import LLMHTTPError
    from pollama.testing.probe import run_probe

    try:
        with Progress(TextColumn("[bold]{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err, transient=False) as bar:
            task = bar.add_task("starting", total=settings.steps())
            run = run_probe(llm, settings, progress=lambda stage: bar.update(task, advance=1, description=stage))
            bar.update(task, completed=settings.steps(), description="done")
            return run
    except LLMHTTPError as exc:
        raise click.ClickException(f"the server refused a probe request: {exc}") from None
    except Exception as exc:
        names = {c.__name__ for c in type(exc).__mro__}
        if names & {"TransportError", "TimeoutException"}:
            raise click.ClickException(f"lost the server at {base}: {type(exc).__name__}: {exc}") from None
        raise


def _summary(console: Any, run: Any) -> None:
    from rich.table import Table

    colors = {"PASS": "green", "FAIL": "red", "INCONCLUSIVE": "yellow"}
    t = Table(title=f"pollama probe · {run.model} · {run.duration:.0f} s", title_justify="left")
    for col in ("observation", "check", "estimate", "95% interval", "n", "bound", "verdict"):
        t.add_column(col)
    for c in run.checks:
        d = c.as_dict()
        unit = f" {d['unit']}" if d["unit"] else ""
        lo, hi = d["interval"]
        t.add_row(d["group"], d["name"], f"{_g(d['estimate'])}{unit}", f"[{_g(lo)}, {_g(hi)}]", str(d["n"]),
                  f"{'≤' if d['direction'] == 'at_most' else '≥'} {_g(d['threshold'])}",
                  f"[{colors[d['verdict']]}]{d['verdict']}[/]")
    console.print(t)
    if run.determinism is not None:
        for line in run.determinism.diagnosis():
            console.print(f"  • {line}")


def _g(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, str):
        return "∞" if x == "inf" else "−∞"
    return f"{x:.3g}"


@click.command(context_settings=CONTEXT)
@click.option("--upstream", required=True, help="the Ollama-compatible server to forward to")
@click.option("--listen", default="127.0.0.1:11435", show_default=True, help="loopback address to listen on")
@click.argument("faults", nargs=-1)
@click.option("--script", "script", multiple=True, help="faults of the next request, joined by '+', or 'pass' (repeatable)")
@click.option("--loop", "loop_script", is_flag=True, help="repeat the script")
@click.option("--seed", type=int, default=None, help="seed for rate-based faults and delay distributions")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="a JSON (or YAML) chaos config instead of FAULTS")
@click.option("--path", "paths", multiple=True, help="only requests whose path starts with this are eligible")
@click.option("--allow-remote", is_flag=True, help="allow listening on a non-loopback address")
def chaos(upstream: str, listen: str, faults: tuple[str, ...], script: tuple[str, ...], loop_script: bool,
          seed: int | None, config_file: str | None, paths: tuple[str, ...], allow_remote: bool) -> None:
    """A fault-injection proxy in front of an Ollama-compatible server.

    \b
    FAULTS are KIND[:ARGS][@RATE], e.g.
      latency:normal:200ms,50ms   error:503@0.2   drop:lines=3   truncate:2
      malformed:1   slow_tokens:50ms   stall:2:5s
    Point your application at --listen to test its retries, deadlines and fallbacks.
    """
    from pollama.chaos import ChaosConfig, ChaosConfigError, run_proxy

    try:
        if config_file:
            if faults or script:
                raise ChaosConfigError("give either --config or FAULTS/--script, not both")
            config = ChaosConfig.from_file(Path(config_file))
        else:
            config = ChaosConfig.from_cli(faults, script, seed, loop_script, list(paths) if paths else None)
        click.echo(f"pollama chaos: {listen} → {upstream}", err=True)
        run_proxy(upstream, listen, config, allow_non_loopback=allow_remote)
    except ChaosConfigError as exc:
        raise click.UsageError(str(exc)) from None


def register(cli: click.Group) -> None:
    """Add ``probe`` and ``chaos`` to the ``pollama`` command group."""
    cli.add_command(probe)
    cli.add_command(chaos)
