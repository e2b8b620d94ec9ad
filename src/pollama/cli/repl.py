"""``pollama run``: one-shot generation and the interactive chat REPL (Ollama's commands)."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass, field
from typing import Any

import click

from pollama.api.client import APIError, Client

HELP = """Available Commands:
  /set            Set session variables
  /show           Show model information
  /load <model>   Load a session or model
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command
  /? shortcuts    Help for keyboard shortcuts

Use \"\"\" to begin a multi-line message.
"""

SET_HELP = """Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set format json       Enable JSON mode
  /set noformat          Disable formatting
  /set verbose           Show LLM stats
  /set quiet             Disable LLM stats
  /set think / nothink   Enable or disable thinking
"""

SHOW_HELP = """Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template
"""

PARAM_HELP = """Available Parameters:
  /set parameter seed <int>             Random number seed
  /set parameter num_predict <int>      Max number of tokens to predict
  /set parameter top_k <int>            Pick from top k num of tokens
  /set parameter top_p <float>          Pick token based on sum of probabilities
  /set parameter min_p <float>          Pick token based on top token probability * min_p
  /set parameter num_ctx <int>          Set the context size
  /set parameter temperature <float>    Set creativity level
  /set parameter repeat_penalty <float> How strongly to penalize repetitions
  /set parameter repeat_last_n <int>    Set how far back to look for repetitions
  /set parameter num_gpu <int>          The number of layers to send to the GPU
  /set parameter stop <string> <string> ...   Set the stop parameters
"""

INT_PARAMS = {"seed", "num_predict", "top_k", "num_ctx", "repeat_last_n", "num_gpu", "num_keep", "num_thread"}
FLOAT_PARAMS = {"top_p", "min_p", "temperature", "repeat_penalty", "presence_penalty", "frequency_penalty", "typical_p"}


@dataclass
class Session:
    client: Client
    model: str
    keep_alive: str | None = None
    verbose: bool = False
    format: str | None = None
    think: bool | str | None = None
    hide_thinking: bool = False
    system: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def base(self) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model}
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        if self.format:
            body["format"] = self.format
        if self.think is not None:
            body["think"] = self.think
        if self.options:
            body["options"] = self.options
        return body


def _print_stream(session: Session, events: Any, key: str) -> str:
    out: list[str] = []
    thinking = False
    final: dict[str, Any] = {}
    for ev in events:
        piece = ev.get("response", "") if key == "response" else ev.get("message", {}).get("content", "")
        think = ev.get("thinking", "") if key == "response" else ev.get("message", {}).get("thinking", "")
        if think and not session.hide_thinking:
            if not thinking:
                click.echo("Thinking...")
                thinking = True
            click.echo(think, nl=False)
        if piece:
            if thinking:
                click.echo("\n...done thinking.\n")
                thinking = False
            click.echo(piece, nl=False)
            out.append(piece)
        if ev.get("done"):
            final = ev
    click.echo("\n")
    if session.verbose:
        _print_stats(final)
    return "".join(out)


def _print_stats(f: dict[str, Any]) -> None:
    def dur(ns: int) -> str:
        return f"{ns / 1e9:.6f}s" if ns >= 1e9 else f"{ns / 1e6:.6f}ms"

    lines = [f"total duration:       {dur(f.get('total_duration', 0))}",
             f"load duration:        {dur(f.get('load_duration', 0))}",
             f"prompt eval count:    {f.get('prompt_eval_count', 0)} token(s)",
             f"prompt eval duration: {dur(f.get('prompt_eval_duration', 0))}"]
    if f.get("prompt_eval_duration"):
        lines.append(f"prompt eval rate:     {f.get('prompt_eval_count', 0) / f['prompt_eval_duration'] * 1e9:.2f} tokens/s")
    lines += [f"eval count:           {f.get('eval_count', 0)} token(s)", f"eval duration:        {dur(f.get('eval_duration', 0))}"]
    if f.get("eval_duration"):
        lines.append(f"eval rate:            {f.get('eval_count', 0) / f['eval_duration'] * 1e9:.2f} tokens/s")
    click.echo("\n".join(lines), err=True)


def one_shot(session: Session, prompt: str) -> None:
    body = session.base() | {"prompt": prompt}
    _print_stream(session, session.client.stream("/api/generate", body), "response")


def chat_turn(session: Session, text: str) -> None:
    session.messages.append({"role": "user", "content": text})
    msgs = ([{"role": "system", "content": session.system}] if session.system else []) + session.messages
    body = session.base() | {"messages": msgs}
    try:
        reply = _print_stream(session, session.client.stream("/api/chat", body), "message")
    except KeyboardInterrupt:
        click.echo("")
        session.messages.pop()
        return
    except APIError:
        session.messages.pop()
        raise
    session.messages.append({"role": "assistant", "content": reply})


def _read_multiline(first: str) -> str:
    rest = first[3:]
    if rest.endswith('"""') and len(rest) >= 3:
        return rest[:-3]
    lines = [rest]
    while True:
        try:
            line = input("... ")
        except EOFError:
            break
        if line.endswith('"""'):
            lines.append(line[:-3])
            break
        lines.append(line)
    return "\n".join(lines).strip("\n")


def handle_command(session: Session, line: str) -> bool:
    """Run a ``/command``; return False when the session should end."""
    parts = line.split(maxsplit=2)
    cmd = parts[0].lower()
    if cmd in ("/bye", "/exit"):
        return False
    if cmd in ("/?", "/help"):
        topic = parts[1] if len(parts) > 1 else ""
        click.echo({"set": SET_HELP, "show": SHOW_HELP, "shortcuts": "Ctrl + d  Exit\nCtrl + c  Stop generating / clear line\n"}.get(topic, HELP))
    elif cmd == "/clear":
        session.messages.clear()
        click.echo("Cleared session context")
    elif cmd == "/set":
        _set(session, parts[1:] if len(parts) > 1 else [], line)
    elif cmd == "/show":
        _show(session, parts[1] if len(parts) > 1 else "")
    elif cmd == "/load" and len(parts) > 1:
        try:
            session.client.show(parts[1])
        except APIError:
            click.echo(f"Couldn't find model '{parts[1]}'")
            return True
        session.model = parts[1]
        session.messages.clear()
        click.echo(f"Loading model '{parts[1]}'")
    else:
        click.echo(f"Unknown command '{parts[0]}'. Type /? for help")
    return True


def _set(session: Session, args: list[str], line: str) -> None:
    if not args:
        click.echo(SET_HELP)
        return
    what = args[0].lower()
    if what == "parameter":
        rest = shlex.split(line.split(None, 2)[2]) if len(line.split(None, 2)) > 2 else []
        if len(rest) < 2:
            click.echo(PARAM_HELP)
            return
        name, values = rest[0], rest[1:]
        try:
            if name == "stop":
                value: Any = values
            elif name in INT_PARAMS:
                value = int(values[0])
            elif name in FLOAT_PARAMS:
                value = float(values[0])
            else:
                click.echo(f"Couldn't set parameter: unknown parameter '{name}'")
                return
        except ValueError:
            click.echo(f"Couldn't set parameter: invalid value '{values[0]}' for {name}")
            return
        session.options[name] = value
        click.echo(f"Set parameter '{name}' to '{', '.join(values)}'")
    elif what == "system":
        text = line.split(None, 2)[2] if len(line.split(None, 2)) > 2 else ""
        if text.startswith('"""'):
            text = _read_multiline(text)
        session.system = text
        click.echo("Set system message.")
    elif what == "format" and len(args) > 1 and args[1].split()[0] == "json":
        session.format = "json"
        click.echo("Set format to 'json' mode.")
    elif what == "noformat":
        session.format = None
        click.echo("Disabled format.")
    elif what == "verbose":
        session.verbose = True
        click.echo("Set 'verbose' mode.")
    elif what == "quiet":
        session.verbose = False
        click.echo("Set 'quiet' mode.")
    elif what == "think":
        session.think = args[1] if len(args) > 1 else True
        click.echo("Set 'think' mode.")
    elif what == "nothink":
        session.think = False
        click.echo("Set 'nothink' mode.")
    else:
        click.echo(f"Unknown command '/set {what}'. Type /? for help")


def _show(session: Session, what: str) -> None:
    try:
        info = session.client.show(session.model)
    except APIError as e:
        click.echo(f"error: {e.message}")
        return
    if what == "info":
        from pollama.cli.showfmt import render_show

        click.echo(render_show(info))
    elif what in ("license", "modelfile", "parameters", "template"):
        text = info.get(what) or ""
        if what == "parameters":
            text = text + ("\n" if text else "") + "\n".join(f"{k:<30} {json.dumps(v)}" for k, v in session.options.items())
        click.echo(text or f"No {what} was specified for this model.")
    elif what == "system":
        click.echo(session.system or info.get("system") or "No system message was specified for this model.")
    else:
        click.echo(SHOW_HELP)


def repl(session: Session) -> None:
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    # Preload the model so the first answer does not pay for the load.
    for _ in session.client.stream("/api/generate", {"model": session.model, **({"keep_alive": session.keep_alive} if session.keep_alive else {})}):
        pass
    while True:
        try:
            line = input(">>> ")
        except EOFError:
            click.echo("")
            return
        except KeyboardInterrupt:
            click.echo("\nUse Ctrl + d or /bye to exit.")
            continue
        if not line.strip():
            continue
        if line.startswith('"""'):
            line = _read_multiline(line)
        elif line.startswith("/"):
            if not handle_command(session, line):
                return
            continue
        try:
            chat_turn(session, line)
        except APIError as e:
            click.echo(f"Error: {e.message}", err=True)


__all__ = ["Session", "one_shot", "repl", "chat_turn", "handle_command", "sys"]
