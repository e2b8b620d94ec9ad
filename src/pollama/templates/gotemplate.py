"""An interpreter for the subset of Go ``text/template`` that Ollama model templates use.

Templates come from downloaded models, so execution is sandboxed: data is reached only through
mapping keys and list indexes (never Python attributes), and output size, step count and
``template`` call depth are bounded.

Grammar (Go's, minus methods, ``call`` and custom delimiters)::

    template  := (text | action)*
    action    := "{{" ["- "] body [" -"] "}}"       -- "- " / " -" trim adjacent whitespace
    body      := "/*" comment "*/"
               | pipeline
               | "if" pipeline | "else if" pipeline | "else with" pipeline | "else" | "end"
               | "range" pipeline | "with" pipeline | "break" | "continue"
               | "define" string | "block" string pipeline | "template" string [pipeline]
    pipeline  := [decl (":=" | "=")] command ("|" command)*
    decl      := $var | $var "," $var                 -- two variables only in range
    command   := operand operand*
    operand   := term (".Field")*
    term      := "." | ".Field" | "$" | "$var" | ident | "(" pipeline ")"
               | string | `raw string` | 'c' | number | true | false | nil

Data is plain Python: ``dict`` is a Go map (missing key → nil, printed ``<no value>`` like Go
with ``missingkey=zero``), ``list`` a slice; see :mod:`pollama.templates.govalues` for the Go
struct and JSON-printing wrappers.

>>> render("{{- range $i, $m := .Messages }}{{ if $i }}, {{ end }}{{ $m.Role }}{{ end }}",
...        {"Messages": [{"Role": "user"}, {"Role": "assistant"}]})
'user, assistant'
>>> render('{{ if eq .N 1 2 }}one or two{{ else }}{{ printf "%03d" .N }}{{ end }}', {"N": 7})
'007'
>>> render("a  {{- /* gone */ -}}  b {{ .Missing }} {{ json .X }}", {"X": ["<"]})
'ab <no value> ["\\\\u003c"]'
>>> parse("{{ if .X }}")
Traceback (most recent call last):
...
pollama.templates.gotemplate.TemplateError: template error: template: :1: unexpected EOF
"""

from __future__ import annotations

import datetime as _dt
import re
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Union

from pollama.errors import InvalidRequest, PollamaError
from pollama.templates.govalues import (
    GoStruct,
    UnsupportedValue,
    go_json,
    go_type_name,
    is_true,
    sprint,
    sprint_value,
    sprintf,
    sprintln,
)

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "Template",
    "TemplateError",
    "TemplateExecutionError",
    "parse",
    "render",
]


class TemplateError(InvalidRequest):
    """A template that does not parse. The message is Ollama's create error, with the line."""

    def __init__(self, detail: str, line: int = 0) -> None:
        where = f"template: :{line}: " if line else ""
        super().__init__(f"template error: {where}{detail}")
        self.detail = detail
        self.line = line


class TemplateExecutionError(PollamaError):
    """A template failed while executing, or went past a limit (Ollama answers these with 500)."""

    def __init__(self, detail: str, line: int = 0, name: str = "") -> None:
        super().__init__(f'template: :{line}: executing "{name}": {detail}')
        self.detail = detail
        self.line = line


@dataclass(frozen=True)
class Limits:
    """Bounds on one execution: output characters, evaluation steps, nested template calls."""

    max_output: int = 16 * 1024 * 1024
    max_steps: int = 2_000_000
    max_call_depth: int = 64


DEFAULT_LIMITS = Limits()
_MAX_NESTING = 100  # control structures and parentheses in the source
_MAX_SOURCE = 4 * 1024 * 1024


# ================================================================================ lexer =========

_SPACE = " \t\r\n"
_KEYWORDS = frozenset(
    {"block", "break", "continue", "define", "else", "end", "if", "range", "template", "with"}
)
_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\n]+)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\\n]|\\.)+')
  | (?P<declare>:=)
  | (?P<punct>[=|(),])
  | (?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+
        |(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9]+)?))
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
  | (?P<dot>\.)
  | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Tok:
    kind: str  # string raw char declare punct number field dot var ident keyword bool nil
    text: str
    line: int
    spaced: bool  # whitespace came before it (a ".Field" right after ")" chains instead)


@dataclass(frozen=True)
class _Piece:
    """A span of the source: literal text, or one action's tokens."""

    line: int
    text: str | None = None
    tokens: tuple[_Tok, ...] = ()


def _is_trim_open(src: str, i: int) -> bool:
    return src.startswith("-", i) and i + 1 < len(src) and src[i + 1] in _SPACE


def _close_at(src: str, i: int) -> tuple[int, bool] | None:
    """If a closing delimiter starts at ``i`` (optionally `` -}}``), its end and trim flag."""
    if src.startswith("}}", i):
        return i + 2, False
    j = i
    while j < len(src) and src[j] in _SPACE:
        j += 1
    if j > i and src.startswith("-}}", j):
        return j + 3, True
    return None


class _Lexer:
    """Splits the source into text pieces and action token lists, applying trim markers."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.pieces: list[_Piece] = []
        self.trim_next = False

    def line_at(self, pos: int) -> int:
        return self.src.count("\n", 0, pos) + 1

    def fail(self, msg: str, pos: int) -> NoReturn:
        raise TemplateError(msg, self.line_at(pos))

    def run(self) -> list[_Piece]:
        pos = 0
        while True:
            start = self.src.find("{{", pos)
            text = self.src[pos:] if start < 0 else self.src[pos:start]
            if self.trim_next:
                text = text.lstrip(_SPACE)
            if start >= 0 and _is_trim_open(self.src, start + 2):
                text = text.rstrip(_SPACE)
            if text:
                self.pieces.append(_Piece(self.line_at(pos), text=text))
            if start < 0:
                return self.pieces
            pos = self.action(start)

    def action(self, start: int) -> int:
        i = start + 2
        if _is_trim_open(self.src, i):
            i += 2
        if self.src.startswith("/*", i):
            return self.comment(start, i)
        tokens: list[_Tok] = []
        spaced = False
        while True:
            if i >= len(self.src):
                self.fail("unclosed action", start)
            close = _close_at(self.src, i)
            if close is not None:
                end, self.trim_next = close
                self.pieces.append(_Piece(self.line_at(start), tokens=tuple(tokens)))
                return end
            m = _TOKEN.match(self.src, i)
            if m is None:
                self.bad_char(i)
            kind = m.lastgroup or ""
            if kind == "space":
                spaced = True
            else:
                tokens.append(self.token(kind, m.group(), i, spaced))
                spaced = False
            i = m.end()

    def bad_char(self, i: int) -> NoReturn:
        ch = self.src[i]
        if ch == '"':
            self.fail("unterminated quoted string", i)
        if ch == "`":
            self.fail("unterminated raw quoted string", i)
        if ch == "'":
            self.fail("unterminated character constant", i)
        self.fail(f"unexpected {ch!r} in command", i)

    def token(self, kind: str, text: str, pos: int, spaced: bool) -> _Tok:
        if kind == "ident":
            if text in _KEYWORDS:
                kind = "keyword"
            elif text in ("true", "false"):
                kind = "bool"
            elif text == "nil":
                kind = "nil"
        return _Tok(kind, text, self.line_at(pos), spaced)

    def comment(self, start: int, i: int) -> int:
        end = self.src.find("*/", i + 2)
        if end < 0:
            self.fail("unclosed comment", start)
        close = _close_at(self.src, end + 2)
        if close is None:
            self.fail("comment ends before closing delimiter", start)
        pos, self.trim_next = close
        return pos


# ================================================================================ AST ===========

_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", re.S)
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   "\\": "\\", "'": "'", '"': '"'}


def _unescape(body: str, quote: str, line: int) -> str:
    def repl(m: re.Match[str]) -> str:
        code = m.group(1)
        if code[0] in "xuU" and len(code) > 1:
            return chr(min(int(code[1:], 16), 0x10FFFF))
        if code[0] in "01234567" and len(code) == 3:
            return chr(int(code, 8))
        if code in _SIMPLE_ESCAPES and (code not in "'\"" or code == quote):
            return _SIMPLE_ESCAPES[code]
        raise TemplateError(f"invalid syntax: bad escape \\{code}", line)

    return _ESCAPE.sub(repl, body)


def _number(text: str, line: int) -> int | float:
    clean = text.replace("_", "")
    try:
        if clean.lstrip("+-")[:2].lower() in ("0x", "0b", "0o"):
            return int(clean, 0)
        if any(c in clean for c in ".eE"):
            return float(clean)
        return int(clean, 10) if not re.fullmatch(r"[+-]?0[0-7]+", clean) else int(clean, 8)
    except ValueError:
        raise TemplateError(f"bad number syntax: {text!r}", line) from None


@dataclass(frozen=True)
class Field:
    """``.A.B``: a chain of keys looked up on dot."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Variable:
    """``$x.A.B``: a variable, then keys."""

    name: str
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dot:
    """``.``: the current data."""


@dataclass(frozen=True)
class Const:
    """A literal: string, number, bool or nil (``None``)."""

    value: Any


@dataclass(frozen=True)
class Ident:
    """A function name."""

    name: str


@dataclass(frozen=True)
class Chain:
    """``(pipeline).A.B``: keys looked up on a parenthesised result."""

    node: Pipe
    names: tuple[str, ...]


Arg = Union[Field, Variable, Dot, Const, Ident, Chain, "Pipe"]


@dataclass(frozen=True)
class Command:
    """One stage of a pipeline: an operand followed by arguments."""

    args: tuple[Arg, ...]


@dataclass(frozen=True)
class Pipe:
    """``[$a[, $b] :=|=] cmd | cmd …``."""

    line: int
    decl: tuple[str, ...]
    is_assign: bool
    cmds: tuple[Command, ...]


@dataclass(frozen=True)
class Text:
    """Literal output."""

    text: str


@dataclass(frozen=True)
class Action:
    """``{{ pipeline }}``: evaluate, and print unless it declares or assigns a variable."""

    pipe: Pipe


@dataclass(frozen=True)
class Branch:
    """``if``, ``with`` or ``range``: a pipeline, a body and an optional else list."""

    kind: str
    pipe: Pipe
    body: tuple[Node, ...]
    else_: tuple[Node, ...] | None


@dataclass(frozen=True)
class Call:
    """``{{ template "name" pipeline }}``."""

    line: int
    name: str
    pipe: Pipe | None


@dataclass(frozen=True)
class Jump:
    """``{{ break }}`` or ``{{ continue }}``."""

    kind: str
    line: int


Node = Union[Text, Action, Branch, Call, Jump]


# ================================================================================ parser ========

_BUILTINS = frozenset(
    {"and", "or", "not", "len", "index", "slice", "print", "printf", "println", "html", "js",
     "urlquery", "eq", "ne", "lt", "le", "gt", "ge", "json", "currentDate", "yesterdayDate",
     "toTypeScriptType"}
)


class _Parser:
    """Builds the node tree from lexer pieces; tracks variables, nesting and defined templates."""

    def __init__(self, pieces: list[_Piece]) -> None:
        self.pieces = pieces
        self.i = 0
        self.toks: tuple[_Tok, ...] = ()
        self.t = 0
        self.line = 1
        self.vars: list[str] = ["$"]
        self.depth = 0
        self.range_depth = 0
        self.defines: dict[str, tuple[Node, ...]] = {}

    # -- token helpers
    def fail(self, msg: str) -> NoReturn:
        raise TemplateError(msg, self.line)

    def peek(self) -> _Tok | None:
        return self.toks[self.t] if self.t < len(self.toks) else None

    def next(self) -> _Tok | None:
        tok = self.peek()
        if tok is not None:
            self.t += 1
            self.line = tok.line
        return tok

    def expect_end(self, context: str) -> None:
        tok = self.peek()
        if tok is not None:
            self.fail(f"unexpected {tok.text!r} in {context}")

    def nest(self) -> None:
        self.depth += 1
        if self.depth > _MAX_NESTING:
            self.fail(f"nesting deeper than {_MAX_NESTING} levels")

    # -- lists
    def parse_top(self) -> tuple[Node, ...]:
        nodes: list[Node] = []
        while self.i < len(self.pieces):
            piece = self.pieces[self.i]
            self.i += 1
            self.line = piece.line
            if piece.text is not None:
                nodes.append(Text(piece.text))
                continue
            self.toks, self.t = piece.tokens, 0
            first = self.peek()
            if first is not None and first.kind == "keyword" and first.text == "define":
                self.next()
                self.parse_define()
                continue
            node = self.parse_action()
            if isinstance(node, str):
                self.fail(f"unexpected {{{{{node}}}}}")
            if node is not None:
                nodes.append(node)
        return tuple(nodes)

    def parse_list(self) -> tuple[tuple[Node, ...], str]:
        """Nodes up to ``{{end}}`` or ``{{else}}``; returns them and which keyword stopped."""
        nodes: list[Node] = []
        while self.i < len(self.pieces):
            piece = self.pieces[self.i]
            self.i += 1
            self.line = piece.line
            if piece.text is not None:
                nodes.append(Text(piece.text))
                continue
            self.toks, self.t = piece.tokens, 0
            node = self.parse_action()
            if isinstance(node, str):
                return tuple(nodes), node
            if node is not None:
                nodes.append(node)
        self.fail("unexpected EOF")

    # -- actions
    def parse_action(self) -> Node | str | None:
        """One action; ``"end"``/``"else"`` are returned as strings for the caller to handle."""
        tok = self.peek()
        if tok is None:
            self.fail("missing value for command")
        if tok.kind != "keyword":
            return Action(self.parse_pipe("command", decl_ok=True))
        self.next()
        word = tok.text
        if word in ("if", "with", "range"):
            return self.parse_branch(word)
        if word == "end":
            self.expect_end("end")
            return "end"
        if word == "else":
            return "else"
        if word in ("break", "continue"):
            if self.range_depth == 0:
                self.fail(f"{{{{{word}}}}} outside {{{{range}}}}")
            self.expect_end(word)
            return Jump(word, tok.line)
        if word == "template":
            return self.parse_template_call()
        if word == "block":
            return self.parse_block()
        self.fail(f"unexpected <{word}> in command")

    def parse_branch(self, kind: str) -> Branch:
        self.nest()
        mark = len(self.vars)
        pipe = self.parse_pipe(kind, decl_ok=True, range_decl=kind == "range")
        self.range_depth += kind == "range"
        body, stop = self.parse_list()
        self.range_depth -= kind == "range"
        else_: tuple[Node, ...] | None = None
        if stop == "else":
            else_ = self.parse_else(kind)
        del self.vars[mark:]
        self.depth -= 1
        return Branch(kind, pipe, body, else_)

    def parse_else(self, kind: str) -> tuple[Node, ...]:
        tok = self.peek()
        if tok is not None and tok.kind == "keyword" and tok.text in ("if", "with"):
            if kind == "range" or (tok.text == "with") != (kind == "with"):
                self.fail(f"unexpected {{{{else {tok.text}}}}} in {kind}")
            self.next()
            return (self.parse_branch(tok.text),)  # shares the outer {{end}}
        self.expect_end("else")
        nodes, stop = self.parse_list()
        if stop != "end":
            self.fail(f"expected end; found {{{{{stop}}}}}")
        return nodes

    def parse_template_name(self, context: str) -> str:
        tok = self.next()
        if tok is None or tok.kind not in ("string", "raw"):
            self.fail(f"unexpected name in {context} clause")
        return self.string_value(tok)

    def parse_template_call(self) -> Call:
        line = self.line
        name = self.parse_template_name("template")
        pipe = None if self.peek() is None else self.parse_pipe("template", decl_ok=False)
        return Call(line, name, pipe)

    def parse_block(self) -> Call:
        line = self.line
        name = self.parse_template_name("block")
        pipe = self.parse_pipe("block", decl_ok=False)
        self.define_body(name)
        return Call(line, name, pipe)

    def parse_define(self) -> None:
        name = self.parse_template_name("define")
        self.expect_end("define")
        self.define_body(name)

    def define_body(self, name: str) -> None:
        saved_vars, saved_range = self.vars, self.range_depth
        self.vars, self.range_depth = ["$"], 0
        self.nest()
        body, stop = self.parse_list()
        if stop != "end":
            self.fail(f"unexpected {{{{{stop}}}}}")
        self.depth -= 1
        self.vars, self.range_depth = saved_vars, saved_range
        previous = self.defines.get(name, ())
        if not all(map(_is_blank, previous)) and not all(map(_is_blank, body)):
            self.fail(f"template: multiple definition of template \"{name}\"")
        self.defines[name] = body

    # -- pipelines
    def parse_decl(self, range_decl: bool) -> tuple[tuple[str, ...], bool]:
        start = self.t
        names: list[str] = []
        while True:
            tok = self.peek()
            if tok is None or tok.kind != "var" or "." in tok.text:
                break
            self.next()
            names.append(tok.text)
            nxt = self.peek()
            if nxt is not None and nxt.kind == "declare" or nxt is not None and nxt.text == "=":
                self.next()
                return self.bind(names, nxt.kind != "declare", range_decl)
            if nxt is not None and nxt.text == "," and range_decl and len(names) == 1:
                self.next()
                continue
            break
        self.t = start
        return (), False

    def bind(self, names: list[str], assign: bool, range_decl: bool) -> tuple[tuple[str, ...], bool]:
        if len(names) > 1 and not range_decl:
            self.fail("too many declarations")
        for name in names:
            if assign and name not in self.vars:
                self.fail(f"undefined variable \"{name}\"")
            if not assign:
                self.vars.append(name)
        return tuple(names), assign

    def parse_pipe(self, context: str, decl_ok: bool, range_decl: bool = False,
                   closer: str | None = None) -> Pipe:
        line = self.line
        decl, assign = self.parse_decl(range_decl) if decl_ok else ((), False)
        tok = self.peek()
        if tok is None or tok.kind == "punct" and tok.text == closer:
            self.fail(f"missing value for {context}")
        cmds: list[Command] = []
        while True:
            cmds.append(self.parse_command(closer))
            tok = self.peek()
            if tok is None or tok.text == closer and tok.kind == "punct":
                break
            self.next()  # the "|"
        for n, cmd in enumerate(cmds[1:], start=2):
            if isinstance(cmd.args[0], (Const, Dot)):
                self.fail(f"non executable command in pipeline stage {n}")
        return Pipe(line, decl, assign, tuple(cmds))

    def parse_command(self, closer: str | None) -> Command:
        args: list[Arg] = []
        while True:
            tok = self.peek()
            if tok is None or tok.kind == "punct" and tok.text in ("|", closer):
                break
            if tok.kind == "keyword":
                self.fail(f"unexpected <{tok.text}> in operand")
            args.append(self.parse_operand())
        if not args:
            self.fail("missing value for command")
        if isinstance(args[0], Const) and args[0].value is None:
            self.fail("nil is not a command")
        return Command(tuple(args))

    def parse_operand(self) -> Arg:
        term = self.parse_term()
        tok = self.peek()
        if tok is not None and tok.kind == "field" and not tok.spaced:
            self.next()
            names = tuple(tok.text[1:].split("."))
            if isinstance(term, Pipe):
                return Chain(term, names)
            self.fail(f"unexpected . after term {tok.text!r}")
        return term

    def parse_term(self) -> Arg:
        tok = self.next()
        assert tok is not None
        kind = tok.kind
        if kind == "field":
            return Field(tuple(tok.text[1:].split(".")))
        if kind == "var":
            name, *names = tok.text.split(".")
            if name not in self.vars:
                self.fail(f"undefined variable \"{name}\"")
            return Variable(name, tuple(names))
        if kind == "dot":
            return Dot()
        if kind == "ident":
            if tok.text not in _BUILTINS:
                self.fail(f"function \"{tok.text}\" not defined")
            return Ident(tok.text)
        if kind == "punct" and tok.text == "(":
            return self.parse_paren()
        return Const(self.literal(tok))

    def parse_paren(self) -> Pipe:
        self.nest()
        pipe = self.parse_pipe("parenthesized pipeline", decl_ok=True, closer=")")
        tok = self.next()
        if tok is None or tok.text != ")":
            self.fail("unclosed left paren")
        self.depth -= 1
        return pipe

    def literal(self, tok: _Tok) -> Any:
        if tok.kind in ("string", "raw"):
            return self.string_value(tok)
        if tok.kind == "char":
            text = _unescape(tok.text[1:-1], "'", tok.line)
            if len(text) != 1:
                self.fail(f"malformed character constant: {tok.text}")
            return ord(text)
        if tok.kind == "number":
            return _number(tok.text, tok.line)
        if tok.kind == "bool":
            return tok.text == "true"
        if tok.kind == "nil":
            return None
        self.fail(f"unexpected {tok.text!r} in operand")

    def string_value(self, tok: _Tok) -> str:
        if tok.kind == "raw":
            return tok.text[1:-1]
        return _unescape(tok.text[1:-1], '"', tok.line)


def _is_blank(node: Node) -> bool:
    return isinstance(node, Text) and not node.text.strip()


# ================================================================================ evaluator =====


class _Missing:
    """No value yet: the first command of a pipeline has nothing piped into it."""


_MISSING = _Missing()


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _CallError(Exception):
    """Raised by built-in functions; wrapped as ``error calling NAME: …``."""


Clock = Callable[[], _dt.date]


@dataclass
class _State:
    templates: Mapping[str, tuple[Node, ...]]
    limits: Limits
    today: Clock
    name: str = ""
    out: list[str] = field(default_factory=list)
    size: int = 0
    steps: int = 0
    depth: int = 0
    line: int = 0
    vars: list[tuple[str, Any]] = field(default_factory=list)

    def fail(self, msg: str) -> NoReturn:
        raise TemplateExecutionError(msg, self.line, self.name)

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.max_steps:
            self.fail(f"exceeded the limit of {self.limits.max_steps} evaluation steps")

    def check_size(self, text: str) -> str:
        if len(text) > self.limits.max_output:
            self.fail(f"output exceeds the limit of {self.limits.max_output} characters")
        return text

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > self.limits.max_output:
            self.fail(f"output exceeds the limit of {self.limits.max_output} characters")
        self.out.append(text)

    # -- variables
    def lookup(self, name: str) -> Any:
        for var, value in reversed(self.vars):
            if var == name:
                return value
        self.fail(f"undefined variable: {name}")

    def assign(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        self.fail(f"undefined variable: {name}")

    def pop(self, mark: int) -> None:
        del self.vars[mark:]


def _walk(s: _State, nodes: Sequence[Node], dot: Any) -> None:
    for node in nodes:
        s.step()
        if isinstance(node, Text):
            s.write(node.text)
        elif isinstance(node, Action):
            value = _eval_pipe(s, node.pipe, dot)
            if not node.pipe.decl:
                s.write(_print_action(value))
        elif isinstance(node, Branch):
            if node.kind == "range":
                _walk_range(s, node, dot)
            else:
                _walk_if_with(s, node, dot)
        elif isinstance(node, Call):
            _walk_call(s, node, dot)
        else:
            raise _Break() if node.kind == "break" else _Continue()


def _print_action(value: Any) -> str:
    if value is None or value is _MISSING:
        return "<no value>"
    return sprint_value(value)


def _walk_if_with(s: _State, node: Branch, dot: Any) -> None:
    mark = len(s.vars)
    value = _eval_pipe(s, node.pipe, dot)
    if is_true(value):
        _walk(s, node.body, value if node.kind == "with" else dot)
    elif node.else_ is not None:
        _walk(s, node.else_, dot)
    s.pop(mark)


def _range_items(s: _State, value: Any) -> Iterator[tuple[Any, Any]]:
    if value is None:
        return iter(())
    if isinstance(value, GoStruct) or isinstance(value, (str, float)):
        s.fail(f"range can't iterate over {sprint_value(value)}")
    if isinstance(value, Mapping):
        return ((k, value[k]) for k in sorted(value, key=str))
    if isinstance(value, (list, tuple)):
        return enumerate(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return ((i, i) for i in range(value))
    s.fail(f"range can't iterate over {sprint_value(value)}")


def _walk_range(s: _State, node: Branch, dot: Any) -> None:
    mark = len(s.vars)
    value = _eval_pipe(s, node.pipe, dot)
    decl = node.pipe.decl
    if isinstance(value, int) and not isinstance(value, bool) and len(decl) > 1:
        s.fail(f"can't use {value} to iterate over more than one variable")
    ran = False
    for index, elem in _range_items(s, value):
        ran = True
        s.step()
        if decl:
            _set_range_vars(s, node.pipe, index, elem)
        inner = len(s.vars)
        try:
            _walk(s, node.body, elem)
        except _Break:
            s.pop(inner)
            break
        except _Continue:
            pass
        s.pop(inner)
    if not ran and node.else_ is not None:
        _walk(s, node.else_, dot)
    s.pop(mark)


def _set_range_vars(s: _State, pipe: Pipe, index: Any, elem: Any) -> None:
    if pipe.is_assign:
        s.assign(pipe.decl[0], index if len(pipe.decl) > 1 else elem)
        if len(pipe.decl) > 1:
            s.assign(pipe.decl[1], elem)
        return
    top = len(s.vars) - 1
    if len(pipe.decl) > 1:
        s.vars[top - 1] = (pipe.decl[0], index)
    s.vars[top] = (pipe.decl[-1], elem)


def _walk_call(s: _State, node: Call, dot: Any) -> None:
    s.line = node.line
    body = s.templates.get(node.name)
    if body is None:
        s.fail(f"template: no template \"{node.name}\" associated with template \"{s.name}\"")
    new_dot = None if node.pipe is None else _eval_pipe(s, node.pipe, dot)
    if s.depth >= s.limits.max_call_depth:
        s.fail(f"exceeded maximum template depth ({s.limits.max_call_depth})")
    saved_vars, saved_name = s.vars, s.name
    s.vars, s.name = [("$", new_dot)], node.name
    s.depth += 1
    try:
        _walk(s, body, new_dot)
    finally:
        s.depth -= 1
        s.vars, s.name = saved_vars, saved_name


def _eval_pipe(s: _State, pipe: Pipe, dot: Any) -> Any:
    s.line = pipe.line
    value: Any = _MISSING
    for cmd in pipe.cmds:
        value = _eval_command(s, cmd, dot, value)
    for name in pipe.decl:
        if pipe.is_assign:
            s.assign(name, value)
        else:
            s.vars.append((name, value))
    return None if value is _MISSING else value


def _no_args(s: _State, cmd: Command, final: Any, what: str) -> None:
    if len(cmd.args) > 1 or final is not _MISSING:
        s.fail(f"can't give argument to non-function {what}")


def _eval_command(s: _State, cmd: Command, dot: Any, final: Any) -> Any:
    s.step()
    first = cmd.args[0]
    if isinstance(first, Ident):
        return _call(s, first.name, cmd.args[1:], dot, final)
    _no_args(s, cmd, final, _describe(first))
    return _eval_arg(s, first, dot)


def _describe(arg: Arg) -> str:
    if isinstance(arg, Field):
        return "." + ".".join(arg.names)
    if isinstance(arg, Variable):
        return ".".join((arg.name, *arg.names))
    if isinstance(arg, Const):
        return sprint_value(arg.value)
    return "(pipeline)" if isinstance(arg, (Pipe, Chain)) else "."


def _eval_arg(s: _State, arg: Arg, dot: Any) -> Any:
    if isinstance(arg, Field):
        return _fields(s, dot, arg.names)
    if isinstance(arg, Variable):
        return _fields(s, s.lookup(arg.name), arg.names)
    if isinstance(arg, Dot):
        return dot
    if isinstance(arg, Const):
        return arg.value
    if isinstance(arg, Pipe):
        return _eval_pipe(s, arg, dot)
    if isinstance(arg, Chain):
        return _fields(s, _eval_pipe(s, arg.node, dot), arg.names)
    return _call(s, arg.name, (), dot, _MISSING)


def _fields(s: _State, value: Any, names: Sequence[str]) -> Any:
    for name in names:
        value = _field(s, value, name)
    return value


def _field(s: _State, receiver: Any, name: str) -> Any:
    if receiver is None:
        return None  # missingkey=zero: a field of nothing is nothing
    if isinstance(receiver, GoStruct):
        if name not in receiver:
            s.fail(f"can't evaluate field {name} in type {receiver.type_name}")
        return receiver[name]
    if isinstance(receiver, Mapping):
        return receiver.get(name)
    s.fail(f"can't evaluate field {name} in type {go_type_name(receiver)}")


# ================================================================================ functions =====


def _call(s: _State, name: str, args: Sequence[Arg], dot: Any, final: Any) -> Any:
    if name in ("and", "or"):
        return _and_or(s, name, args, dot, final)
    values = [_eval_arg(s, a, dot) for a in args]
    if final is not _MISSING:
        values.append(final)
    try:
        result = _FUNCS[name](s, values)
    except _CallError as exc:
        s.fail(f"error calling {name}: {exc}")
    s.step()
    return s.check_size(result) if isinstance(result, str) else result


def _and_or(s: _State, name: str, args: Sequence[Arg], dot: Any, final: Any) -> Any:
    count = len(args) + (final is not _MISSING)
    if count == 0:
        s.fail(f"wrong number of args for {name}: want at least 1 got 0")
    value: Any = None
    for i in range(count):
        value = final if i == len(args) else _eval_arg(s, args[i], dot)
        if is_true(value) == (name == "or"):
            return value
    return value


def _want(values: Sequence[Any], n: int, name: str) -> None:
    if len(values) != n:
        raise _CallError(f"wrong number of args for {name}: want {n} got {len(values)}")


def _kind(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "other"


def _eq(values: Sequence[Any]) -> bool:
    if len(values) < 2:
        raise _CallError("missing argument for comparison")
    first, k1 = values[0], _kind(values[0])
    for other in values[1:]:
        k2 = _kind(other)
        if k1 != k2:
            if k1 != "nil" and k2 != "nil":
                raise _CallError("incompatible types for comparison")
            continue
        if k1 == "other":
            raise _CallError(f"non-comparable type {sprint_value(first)}: {go_type_name(first)}")
        if first == other:
            return True
    return False


def _lt(values: Sequence[Any]) -> bool:
    if len(values) != 2:
        raise _CallError(f"wrong number of args: want 2 got {len(values)}")
    a, b = values
    ka, kb = _kind(a), _kind(b)
    if ka not in ("int", "float", "string") or kb not in ("int", "float", "string"):
        raise _CallError("invalid type for comparison")
    if ka != kb:
        raise _CallError("incompatible types for comparison")
    return bool(a < b)


def _ne(values: Sequence[Any]) -> bool:
    _want(values, 2, "ne")
    return not _eq(values)


def _le(values: Sequence[Any]) -> bool:
    return _lt(values) or _eq(values)


def _length(values: Sequence[Any]) -> int:
    _want(values, 1, "len")
    item = values[0]
    if item is None:
        raise _CallError("len of nil pointer")
    if isinstance(item, str):
        return len(item.encode("utf-8", "surrogatepass"))
    if isinstance(item, (list, tuple, dict, bytes)) or (
        isinstance(item, Mapping) and not isinstance(item, GoStruct)
    ):
        return len(item)
    raise _CallError(f"len of type {go_type_name(item)}")


def _int_arg(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _CallError(f"cannot index slice/array with type {go_type_name(value)}")


def _index(values: Sequence[Any]) -> Any:
    if not values:
        raise _CallError("wrong number of args for index: want at least 1 got 0")
    item = values[0]
    for key in values[1:]:
        if item is None:
            raise _CallError("index of untyped nil")
        if isinstance(item, (list, tuple, str)):
            seq = item.encode("utf-8", "surrogatepass") if isinstance(item, str) else item
            i = _int_arg(key)
            if not 0 <= i < len(seq):
                raise _CallError(f"index out of range: {i}")
            item = seq[i]
        elif isinstance(item, Mapping) and not isinstance(item, GoStruct):
            if not isinstance(key, str):
                raise _CallError(f"value has type {go_type_name(key)}; should be string")
            item = item.get(key)
        else:
            raise _CallError(f"can't index item of type {go_type_name(item)}")
    return item


def _slice(values: Sequence[Any]) -> Any:
    if not values:
        raise _CallError("wrong number of args for slice: want at least 1 got 0")
    item, idx = values[0], [_int_arg(v) for v in values[1:]]
    if item is None:
        raise _CallError("slice of untyped nil")
    if len(idx) > 3:
        raise _CallError(f"too many slice indexes: {len(idx)}")
    if isinstance(item, str):
        if len(idx) == 3:
            raise _CallError("cannot 3-index slice a string")
        data = item.encode("utf-8", "surrogatepass")
        lo, hi = _slice_bounds(idx, len(data))
        return data[lo:hi].decode("utf-8", "replace")
    if isinstance(item, (list, tuple)):
        lo, hi = _slice_bounds(idx[:2], len(item))
        if len(idx) == 3 and not hi <= idx[2] <= len(item):
            raise _CallError(f"index out of range: {idx[2]}")
        return list(item[lo:hi])
    raise _CallError(f"can't slice item of type {go_type_name(item)}")


def _slice_bounds(idx: Sequence[int], size: int) -> tuple[int, int]:
    lo = idx[0] if idx else 0
    hi = idx[1] if len(idx) > 1 else size
    if not 0 <= lo <= size:
        raise _CallError(f"index out of range: {lo}")
    if not lo <= hi <= size:
        raise _CallError(f"index out of range: {hi}")
    return lo, hi


def _eval_args_text(values: Sequence[Any]) -> str:
    if len(values) == 1 and isinstance(values[0], str):
        return values[0]
    return sprint(values)


_HTML = {"&": "&amp;", "'": "&#39;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "\0": "\ufffd"}
_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
       "=": "\\u003D"}


def _html(values: Sequence[Any]) -> str:
    return "".join(_HTML.get(c, c) for c in _eval_args_text(values))


def _js_char(c: str) -> str:
    if c in _JS:
        return _JS[c]
    if c < " " or not c.isprintable():
        return f"\\u{ord(c):04X}"
    return c


def _js(values: Sequence[Any]) -> str:
    return "".join(_js_char(c) for c in _eval_args_text(values))


def _urlquery(values: Sequence[Any]) -> str:
    return urllib.parse.quote_plus(_eval_args_text(values), safe="")


def _printf(values: Sequence[Any]) -> str:
    if not values or not isinstance(values[0], str):
        got = go_type_name(values[0]) if values else "nothing"
        raise _CallError(f"wrong type for value; expected string; got {got}")
    return sprintf(values[0], values[1:])


def _json(values: Sequence[Any]) -> str:
    _want(values, 1, "json")
    try:
        return go_json(values[0])
    except UnsupportedValue:
        return ""  # Ollama ignores the marshal error and prints nothing


def _date_args(values: Sequence[Any]) -> None:
    for value in values:
        if not isinstance(value, str):
            raise _CallError(f"wrong type for value; expected string; got {go_type_name(value)}")


def _current_date(s: _State, values: Sequence[Any]) -> str:
    _date_args(values)  # the format argument is accepted and ignored, as in Ollama
    return s.today().isoformat()


def _yesterday_date(s: _State, values: Sequence[Any]) -> str:
    _date_args(values)
    return (s.today() - _dt.timedelta(days=1)).isoformat()


_TS_TYPES = {"string": "string", "number": "number", "integer": "number", "boolean": "boolean",
             "array": "any[]", "object": "Record<string, any>", "null": "null"}


def to_typescript_type(prop: Any) -> str:
    """Ollama's ``ToolProperty.ToTypeScriptType``; anything that is not a property is ``any``.

    >>> to_typescript_type({"type": ["string", "null"]}), to_typescript_type({"type": "integer"})
    ('string | null', 'number')
    """
    if not isinstance(prop, Mapping):
        return "any"
    any_of = prop.get("AnyOf", prop.get("anyOf"))
    if any_of:
        return " | ".join(to_typescript_type(p) for p in any_of)
    types = prop.get("Type", prop.get("type"))
    if isinstance(types, str):
        types = [types] if types else []
    if not types:
        return "any"
    return " | ".join(_TS_TYPES.get(t, "any") if isinstance(t, str) else "any" for t in types)


def _ts(values: Sequence[Any]) -> str:
    _want(values, 1, "toTypeScriptType")
    return to_typescript_type(values[0])


def _not(values: Sequence[Any]) -> bool:
    _want(values, 1, "not")
    return not is_true(values[0])


def _pure(fn: Callable[[Sequence[Any]], Any]) -> Callable[[_State, Sequence[Any]], Any]:
    return lambda _s, values: fn(values)


_FUNCS: dict[str, Callable[[_State, Sequence[Any]], Any]] = {
    "eq": _pure(_eq),
    "ne": _pure(_ne),
    "lt": _pure(_lt),
    "le": _pure(_le),
    "gt": _pure(lambda v: not _le(v)),
    "ge": _pure(lambda v: not _lt(v)),
    "not": _pure(_not),
    "len": _pure(_length),
    "index": _pure(_index),
    "slice": _pure(_slice),
    "print": _pure(sprint),
    "println": _pure(sprintln),
    "printf": _pure(_printf),
    "html": _pure(_html),
    "js": _pure(_js),
    "urlquery": _pure(_urlquery),
    "json": _pure(_json),
    "toTypeScriptType": _pure(_ts),
    "currentDate": _current_date,
    "yesterdayDate": _yesterday_date,
}


# ================================================================================ public API ====


class Template:
    """A parsed template: parse once, :meth:`execute` many times.

    ``root`` is the main node list and ``defines`` the named templates (``define``/``block``).
    """

    def __init__(self, source: str, root: tuple[Node, ...],
                 defines: Mapping[str, tuple[Node, ...]]) -> None:
        self.source = source
        self.root = root
        self.defines = dict(defines)

    @classmethod
    def parse(cls, source: str) -> Template:
        """Parse ``source``; raise :class:`TemplateError` naming the line on bad syntax."""
        if len(source) > _MAX_SOURCE:
            raise TemplateError(f"template is larger than {_MAX_SOURCE} characters")
        pieces = _Lexer(source).run()
        parser = _Parser(pieces)
        root = parser.parse_top()
        return cls(source, root, parser.defines)

    def with_root(self, root: tuple[Node, ...]) -> Template:
        """The same template (and defines) with a different main node list."""
        return Template(self.source, root, self.defines)

    def execute(self, data: Any, *, limits: Limits = DEFAULT_LIMITS,
                today: Clock | None = None) -> str:
        """Run the template with ``data`` as dot and ``$``; return the output text.

        ``today`` supplies the date for ``currentDate``/``yesterdayDate`` (default: the local date).
        Raises :class:`TemplateExecutionError` on a runtime error or when a limit is passed.
        """
        templates = dict(self.defines)
        templates[""] = self.root
        state = _State(templates, limits, today or _dt.date.today)
        state.vars.append(("$", data))
        try:
            _walk(state, self.root, data)
        except (_Break, _Continue):  # pragma: no cover - the parser rejects these
            state.fail("break or continue outside range")
        except RecursionError:
            state.fail("template nesting too deep")
        return "".join(state.out)

    def __str__(self) -> str:
        return self.source


def parse(source: str) -> Template:
    """Parse a template (see :meth:`Template.parse`)."""
    return Template.parse(source)


def render(source: str, data: Any, *, limits: Limits = DEFAULT_LIMITS,
           today: Clock | None = None) -> str:
    """Parse and execute in one call."""
    return Template.parse(source).execute(data, limits=limits, today=today)
