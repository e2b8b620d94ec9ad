r'''The Modelfile: parsing, regeneration, and the ``/api/create`` request it becomes (§9.1–§9.2).

Grammar (Ollama's ``parser.ParseFile``, one character at a time)::

    modelfile   := (blank | comment | instruction)*
    comment     := "#" … end of line
    instruction := NAME value                           -- NAME is case-insensitive
                 | "PARAMETER" key value                -- key: letters, digits, "_" (case kept)
                 | "MESSAGE" role value                 -- role: system | user | assistant
    NAME        := from | license | template | system | adapter | draft | renderer
                 | parser | requires
    value       := bare | '"' … '"' | '"""' … '"""'

A bare value runs to the end of the line; a quoted one ends at the first line end where the
text so far, trimmed, is a complete quote (so ``"..."`` may span lines and ``"""`` may hold
``"``). Whitespace around values is trimmed, a leading UTF-8 BOM is ignored, and characters that
are not printable (control codes) are dropped, as Ollama does; NUL bytes are rejected.

>>> mf = parse_modelfile(
...     '# comment\n'
...     'FROM llama3.2\n'
...     'parameter temperature 0.7\n'
...     'PARAMETER stop <|eot_id|>\n'
...     'PARAMETER stop "<|end|>"\n'
...     'SYSTEM """You are "terse"."""\n'
...     'MESSAGE user Hi there\n')
>>> mf.from_, mf.parameters, mf.system, mf.messages  # doctest: +NORMALIZE_WHITESPACE
(['llama3.2'], {'temperature': 0.7, 'stop': ['<|eot_id|>', '<|end|>']}, 'You are "terse".',
 [{'role': 'user', 'content': 'Hi there'}])
>>> print(mf.to_text(), end="")
FROM llama3.2
SYSTEM You are "terse".
PARAMETER temperature 0.7
PARAMETER stop <|eot_id|>
PARAMETER stop <|end|>
MESSAGE user Hi there
>>> parse_modelfile("FROM x\nPARAMETER num_ctx lots")
Traceback (most recent call last):
...
pollama.errors.ModelfileError: (line 2): invalid int value [lots] for parameter 'num_ctx' (expected integer)
'''

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pollama.errors import InvalidOption, ModelfileError
from pollama.types.options import OPTIONS, is_legacy_option, parse_option_text

__all__ = ["MAX_LINE", "MAX_SIZE", "Modelfile", "parse_modelfile"]

MAX_SIZE = 10 * 1024 * 1024
"""The largest Modelfile accepted, in characters."""

MAX_LINE = 1024 * 1024
"""The longest line accepted, in characters."""

_COMMANDS = ("from", "license", "template", "system", "adapter", "draft", "renderer", "parser",
             "parameter", "message", "requires")
_INVALID_COMMAND = (
    'command must be one of "from", "license", "template", "system", "adapter", "draft", '
    '"renderer", "parser", "parameter", "message", or "requires"'
)
_INVALID_ROLE = 'message role must be one of "system", "user", or "assistant"'
_ROLES = ("system", "user", "assistant")
_SEMVER = re.compile(
    r"v(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)?)?"
)
_WS = " \t\r\n"


def _error(line: int, msg: str) -> ModelfileError:
    return ModelfileError(f"(line {line}): {msg}" if line else msg)


# ================================================================================ data ==========


@dataclass
class Modelfile:
    """A parsed Modelfile. ``None`` means the instruction was absent (``system=""`` clears it)."""

    from_: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    adapters: list[str] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    requires: str | None = None
    renderer: str | None = None
    parser: str | None = None
    draft: str | None = None
    warnings: list[str] = field(default_factory=list, compare=False)

    def to_text(self) -> str:
        """Regenerate Modelfile text that parses back to an equal :class:`Modelfile`.

        Values are quoted only when needed (line breaks, surrounding whitespace, a leading
        quote, empty); triple quotes are used when the value contains ``"``. A value that holds
        three quotes in a row cannot be written and raises :class:`ModelfileError`.
        """
        lines = [f"FROM {_quote(ref)}" for ref in self.from_]
        lines += [f"ADAPTER {_quote(a)}" for a in self.adapters]
        for name in ("draft", "template", "system"):
            value = getattr(self, name)
            if value is not None:
                lines.append(f"{name.upper()} {_quote(value)}")
        for key, value in self.parameters.items():
            for item in value if isinstance(value, list) else [value]:
                lines.append(f"PARAMETER {key} {_quote(_param_text(item))}")
        lines += [f"MESSAGE {m['role']} {_quote(m['content'])}" for m in self.messages]
        lines += [f"LICENSE {_quote(text)}" for text in self.licenses]
        for name in ("requires", "renderer", "parser"):
            value = getattr(self, name)
            if value is not None:
                lines.append(f"{name.upper()} {_quote(value)}")
        return "".join(line + "\n" for line in lines)

    def to_create_request(
        self,
        *,
        model_from: str | None = None,
        files: dict[str, str] | None = None,
        adapters: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The ``/api/create`` body for this Modelfile.

        FROM and ADAPTER name local paths or models, which only the caller can resolve (hash
        and upload files); it passes the results as ``model_from`` (a model name), ``files``
        and ``adapters`` (``{relative name: "sha256:…"}``).
        """
        req: dict[str, Any] = {}
        if model_from is not None:
            req["from"] = model_from
        if files:
            req["files"] = dict(files)
        if adapters:
            req["adapters"] = dict(adapters)
        for name in ("template", "system", "renderer", "parser", "requires"):
            value = getattr(self, name)
            if value is not None:
                req[name] = value
        if self.parameters:
            req["parameters"] = {k: list(v) if isinstance(v, list) else v
                                 for k, v in self.parameters.items()}
        if self.messages:
            req["messages"] = [dict(m) for m in self.messages]
        if self.licenses:
            req["license"] = list(self.licenses)
        return req


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if not isinstance(value, float) else repr(value)


def _quote(value: str) -> str:
    if '"""' in value:
        raise ModelfileError(f'cannot write a value containing """ to a Modelfile: {value[:40]!r}')
    needs = (not value or "\n" in value or "\r" in value or value[0] in _WS
             or value[-1] in _WS or value.startswith('"'))
    if not needs:
        return value
    return f'"""{value}"""' if '"' in value else f'"{value}"'


# ================================================================================ lexer =========


class _Value:
    """The text of a value being read, with O(1) checks of whether it is a complete quote."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.lead: int | None = None  # offset of the first non-space character
        self.head = ""  # up to 3 characters from there
        self.end = 0  # offset just past the last non-space character
        self.tail = ""  # up to 3 characters ending there
        self.gap = ""  # whitespace since then (last 3)

    def add(self, text: str) -> None:
        body = text.rstrip(_WS)
        if body:
            if self.lead is None:
                stripped = body.lstrip(_WS)
                self.lead = self.length + len(body) - len(stripped)
                self.head = stripped[:3]
            elif len(self.head) < 3:
                self.head = (self.head + self.gap + body)[:3]
            self.tail = (self.tail + self.gap + body)[-3:]
            self.end = self.length + len(body)
            self.gap = text[len(body):][-3:]
        else:
            self.gap = (self.gap + text)[-3:]
        self.parts.append(text)
        self.length += len(text)

    def complete(self) -> bool:
        """Go's ``unquote(strings.TrimSpace(b))`` succeeds: bare, or a closed quote."""
        size = 0 if self.lead is None else self.end - self.lead
        if self.head.startswith('"""'):
            return size >= 6 and self.tail == '"""'
        if self.head.startswith('"'):
            return size >= 2 and self.tail.endswith('"')
        return True

    def text(self) -> str:
        s = "".join(self.parts).strip()
        if s.startswith('"""'):
            return s[3:-3]
        if s.startswith('"'):
            return s[1:-1]
        return s


@dataclass
class _Command:
    name: str
    args: str
    line: int
    role: str = ""


class _Reader:
    """Ollama's Modelfile state machine over characters (states: nil name value param message
    comment)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.line = 1
        self.commands: list[_Command] = []
        self.name = ""
        self.role = ""
        self.word: list[str] = []
        self.value = _Value()
        self.value_line = 1

    def run(self) -> list[_Command]:
        i, n, state = 0, len(self.text), "nil"
        while i < n:
            ch = self.text[i]
            if ch == "\n" or ch == "\r" and not self.text.startswith("\n", i + 1):
                self.line += 1  # CRLF counts once (Ollama counts it twice)
            if state == "nil":
                state = self.on_nil(ch)
            elif state == "comment":
                j = _next_line_end(self.text, i)
                if j > i:
                    i = j
                    continue
                state = "nil"
            elif state == "value":
                i, state = self.on_value(i)
                continue
            else:
                state = self.on_word(state, ch)
            i += 1
        return self.finish(state)

    def on_nil(self, ch: str) -> str:
        if ch == "#":
            return "comment"
        if ch in _WS:
            return "nil"
        self.word = [ch] if ch.isprintable() else []
        return "name"

    def on_word(self, state: str, ch: str) -> str:
        """Reading an instruction name, a parameter key or a message role."""
        if ch.isascii() and (ch.isalpha() or state == "param" and (ch.isdigit() or ch == "_")):
            self.word.append(ch)
            return state
        if ch not in " \t":
            line = self.line - (ch in "\r\n")  # report the line that ended, not the next
            raise _error(line, _INVALID_COMMAND if state == "name" else "unexpected EOF")
        word = "".join(self.word)
        self.word = []
        if state == "name":
            return self.start_instruction(word)
        if state == "param":
            self.name = word
        elif word not in _ROLES:
            raise _error(self.line, _INVALID_ROLE)
        else:
            self.role = word
        return self.start_value()

    def start_instruction(self, word: str) -> str:
        lower = word.lower()
        if lower not in _COMMANDS:
            raise _error(self.line, _INVALID_COMMAND)
        if lower == "parameter":
            return "param"
        self.name = "model" if lower == "from" else lower
        return "message" if lower == "message" else self.start_value()

    def start_value(self) -> str:
        self.value = _Value()
        self.value_line = self.line
        return "value"

    def on_value(self, i: int) -> tuple[int, str]:
        m = _VALUE_RUN.match(self.text, i)
        if m is not None:  # the rest of the line: spaces never end a value, line ends may
            run = m.group()
            if not run.isprintable():
                run = "".join(c for c in run if c.isprintable() or c in " \t")
            self.value.add(run)
            return m.end(), "value"
        if not self.value.complete():
            self.value.add(self.text[i])
            return i + 1, "value"
        self.commit()
        return i + 1, "nil"

    def commit(self) -> None:
        self.commands.append(_Command(self.name, self.value.text(), self.value_line, self.role))
        self.role = ""

    def finish(self, state: str) -> list[_Command]:
        if state == "value":
            if not self.value.complete():
                raise _error(self.value_line, "unexpected EOF")
            self.commit()
        elif state not in ("nil", "comment"):
            raise _error(self.line, "unexpected EOF")
        return self.commands


_VALUE_RUN = re.compile(r"[^\r\n]+")


def _next_line_end(text: str, i: int) -> int:
    """Index of the next CR or LF at or after ``i`` (or the end)."""
    ends = [p for p in (text.find("\n", i), text.find("\r", i)) if p >= 0]
    return min(ends) if ends else len(text)


# ================================================================================ parse =========


def _check_bounds(text: str) -> str:
    """Reject oversized input, over-long lines and binary data before parsing."""
    if len(text) > MAX_SIZE:
        raise ModelfileError(f"Modelfile is larger than {MAX_SIZE // (1024 * 1024)} MiB")
    long_line = re.search(r"[^\r\n]{%d}" % (MAX_LINE + 1), text)
    if long_line is not None:
        line = text.count("\n", 0, long_line.start()) + 1
        raise _error(line, f"line is longer than {MAX_LINE} characters")
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise _error(line, "unexpected NUL character (is this a binary file?)")
    return text[1:] if text.startswith("\ufeff") else text


def _apply_parameter(mf: Modelfile, cmd: _Command) -> None:
    if is_legacy_option(cmd.name):
        mf.warnings.append(f"parameter {cmd.name} is deprecated")
        return
    if cmd.name not in OPTIONS:
        raise _error(cmd.line, f"unknown parameter '{cmd.name}'")
    try:
        value = parse_option_text(cmd.name, cmd.args)
    except InvalidOption as exc:
        raise _error(cmd.line, exc.message) from None
    if isinstance(value, list):
        mf.parameters.setdefault(cmd.name, []).extend(value)
    else:
        mf.parameters[cmd.name] = value


def _apply(mf: Modelfile, cmd: _Command) -> None:
    name, args = cmd.name, cmd.args
    if name == "model":
        mf.from_.append(args)
    elif name == "adapter":
        mf.adapters.append(args)
    elif name == "license":
        mf.licenses.append(args)
    elif name == "message":
        mf.messages.append({"role": cmd.role, "content": args})
    elif name == "requires":
        version = args if args.startswith("v") else "v" + args
        if not _SEMVER.fullmatch(version):
            raise _error(cmd.line, "requires must be a valid semver (e.g. 0.14.0)")
        mf.requires = version[1:]
    elif name in ("template", "system", "renderer", "parser", "draft"):
        setattr(mf, name, args)
    else:
        _apply_parameter(mf, cmd)


def parse_modelfile(text: str) -> Modelfile:
    """Parse Modelfile text; raise :class:`ModelfileError` with Ollama's message and the line."""
    commands = _Reader(_check_bounds(text)).run()
    mf = Modelfile()
    for cmd in commands:
        _apply(mf, cmd)
    if not mf.from_:
        raise ModelfileError("no FROM line")
    return mf
