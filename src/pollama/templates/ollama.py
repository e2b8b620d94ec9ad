"""Ollama's prompt semantics on top of the Go template interpreter (reference §9.3, §3.2, §3.3).

* Parsing appends ``{{ .Response }}`` when a template uses neither ``.Messages`` nor
  ``.Response``; a ``{{ template }}`` without a pipeline is rejected, as Ollama does.
* **Messages mode** (the template mentions ``.Messages``): one execution with ``.System`` (all
  system messages joined by a blank line), ``.Messages`` (consecutive same-role messages merged,
  tool messages never), ``.Tools``, ``.Response`` = ``""``, ``.Think``, ``.ThinkLevel`` and
  ``.IsThinkSet``.
* **Legacy mode** (only ``.System``/``.Prompt``/``.Response``): one execution per
  user/assistant turn, concatenated; the final turn drops everything after ``{{ .Response }}``.
* **Fill-in-the-middle**: with a prompt and a suffix, one execution with ``.Prompt``/``.Suffix``.

>>> t = OllamaTemplate.parse("{{ if .System }}[{{ .System }}] {{ end }}Q: {{ .Prompt }} A:")
>>> t.render([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
...           {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}])
'[Be brief.] Q: Hi A:HelloQ: Bye A:'
>>> chatml = "{{ range .Messages }}<|im_start|>{{ .Role }}\\n{{ .Content }}<|im_end|>\\n{{ end }}"
>>> OllamaTemplate.parse(chatml).render([{"role": "user", "content": "a"},
...                                      {"role": "user", "content": "b"}])
'<|im_start|>user\\na\\n\\nb<|im_end|>\\n'
>>> tool_call_tag('{{ if .ToolCalls }}<tool_call>{"name": ...{{ end }}{{ .Messages }}')
'<tool_call>'
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pollama.templates.gotemplate import (
    DEFAULT_LIMITS,
    Action,
    Arg,
    Branch,
    Call,
    Chain,
    Clock,
    Command,
    Field,
    Limits,
    Node,
    Pipe,
    Template,
    TemplateError,
    Text,
    Variable,
)
from pollama.templates.govalues import GoStruct, JSONList, JSONMap, OrderedJSONMap

__all__ = [
    "DEFAULT_TEMPLATE",
    "OllamaTemplate",
    "ThinkValue",
    "build_template_data",
    "render_generate",
    "render_messages",
    "think_tags",
    "tool_call_tag",
    "uses_suffix",
    "uses_tools",
]

DEFAULT_TEMPLATE = "{{ .Prompt }}"
ThinkValue = bool | str | None
"""The request's ``think``: absent, a bool, or a level ("low", "medium", "high", "max")."""

_RESPONSE = Action(Pipe(0, (), False, (Command((Field(("Response",)),)),)))


# ================================================================================ identifiers ===


def _pipe_idents(pipe: Pipe | None, out: list[str]) -> None:
    if pipe is None:
        return
    for cmd in pipe.cmds:
        for arg in cmd.args:
            _arg_idents(arg, out)


def _arg_idents(arg: Arg, out: list[str]) -> None:
    if isinstance(arg, Field):
        out.extend(arg.names)
    elif isinstance(arg, Variable):
        out.append(arg.name)
        out.extend(arg.names)
    elif isinstance(arg, Pipe):
        _pipe_idents(arg, out)
    # Go's walk skips chains ``(x).Field`` too


def _node_idents(nodes: Sequence[Node], out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, Action):
            _pipe_idents(node.pipe, out)
        elif isinstance(node, Branch):
            _pipe_idents(node.pipe, out)
            _node_idents(node.body, out)
            _node_idents(node.else_ or (), out)
        elif isinstance(node, Call):
            if node.pipe is None:
                raise TemplateError("undefined template specified")
            _pipe_idents(node.pipe, out)


def template_vars(template: Template) -> tuple[str, ...]:
    """Every field and variable name the template mentions, lower-cased and sorted (Go ``Vars``).

    >>> template_vars(Template.parse("{{ $.System }}{{ range .Messages }}{{ .Role }}{{ end }}"))
    ('$', 'messages', 'role', 'system')
    """
    names: list[str] = []
    for body in (template.root, *template.defines.values()):
        _node_idents(body, names)
    return tuple(sorted({n.lower() for n in names}))


# ================================================================================ the template ==


class OllamaTemplate:
    """A model's Go template, parsed once, rendered with Ollama's data and mode rules."""

    def __init__(self, template: Template, vars_: tuple[str, ...]) -> None:
        self.template = template
        self.vars = vars_

    @classmethod
    def parse(cls, source: str) -> OllamaTemplate:
        """Parse and validate like Ollama's ``template.Parse``; raise :class:`TemplateError`."""
        template = Template.parse(source)
        vars_ = template_vars(template)
        if "messages" not in vars_ and "response" not in vars_:
            template = template.with_root((*template.root, _RESPONSE))
            vars_ = template_vars(template)
        return cls(template, vars_)

    @property
    def source(self) -> str:
        """The template text as written (without the appended ``{{ .Response }}``)."""
        return self.template.source

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        think: ThinkValue = None,
        prompt: str = "",
        suffix: str = "",
        today: Clock | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> str:
        """Ollama's ``Template.Execute``: fill-in-the-middle, messages mode or legacy mode."""
        flags = _think_fields(think)
        if prompt and suffix:
            data = {"Prompt": prompt, "Suffix": suffix, "Response": "", **flags}
            return self.template.execute(data, limits=limits, today=today)
        if "messages" in self.vars:
            data = build_template_data(messages, tools=tools, think=think)
            return self.template.execute(data, limits=limits, today=today)
        return self._render_legacy(messages, flags, today, limits)

    def _render_legacy(self, messages: Sequence[Mapping[str, Any]], flags: dict[str, Any],
                       today: Clock | None, limits: Limits) -> str:
        out: list[str] = []
        turn = {"System": "", "Prompt": "", "Response": ""}

        def flush() -> None:
            out.append(self.template.execute({**turn, **flags}, limits=limits, today=today))
            turn.update(System="", Prompt="", Response="")

        for msg in _collate(messages)[1]:
            role, content = msg["Role"], msg["Content"]
            if role == "system":
                if turn["Prompt"] or turn["Response"]:
                    flush()
                turn["System"] = content
            elif role == "user":
                if turn["Response"]:
                    flush()
                turn["Prompt"] = content
            elif role == "assistant":
                turn["Response"] = content
        last = self.template.with_root(_cut_after_response(self.template.root))
        out.append(last.execute({**turn, **flags}, limits=limits, today=today))
        return "".join(out)

    # -- capabilities
    @property
    def uses_tools(self) -> bool:
        """The template mentions ``.Tools`` (the model gets the ``tools`` capability)."""
        return "tools" in self.vars

    @property
    def uses_suffix(self) -> bool:
        """The template mentions ``.Suffix`` (the model gets the ``insert`` capability)."""
        return "suffix" in self.vars

    @property
    def think_tags(self) -> tuple[str, str] | None:
        """The tags around ``.Thinking`` inside ``range .Messages``, or None (§3.3)."""
        opening, closing = _infer_think_tags(self.template.root)
        return (opening, closing) if opening and closing else None

    @property
    def tool_call_tag(self) -> str:
        """The text that opens a tool call in the model's output, ``{`` when none (§3.2)."""
        return _tool_call_tag(self.template.root)


# ================================================================================ data ==========


def _think_fields(think: ThinkValue) -> dict[str, Any]:
    if isinstance(think, str):
        enabled = think in ("high", "medium", "low", "max")
        level = think
    else:
        enabled = bool(think)
        level = "medium" if think else ""
    return {"Think": enabled, "ThinkLevel": level, "IsThinkSet": think is not None}


def _arguments(raw: Any) -> JSONMap:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = {}
    return JSONMap(raw) if isinstance(raw, Mapping) else JSONMap()


def _tool_call(call: Mapping[str, Any]) -> GoStruct:
    fn = call.get("function") or {}
    function = GoStruct("templateToolCallFunction", {
        "Index": int(fn.get("index") or 0),
        "Name": str(fn.get("name") or ""),
        "Arguments": _arguments(fn.get("arguments")),
    }, stringer=False)
    return GoStruct("templateToolCall", {"ID": str(call.get("id") or ""), "Function": function})


def _message(msg: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "Role": str(msg.get("role") or ""),
        "Content": str(msg.get("content") or ""),
        "Thinking": str(msg.get("thinking") or ""),
        "Images": list(msg.get("images") or []),
        "ToolCalls": [_tool_call(c) for c in msg.get("tool_calls") or []],
        "ToolName": str(msg.get("tool_name") or ""),
        "ToolCallID": str(msg.get("tool_call_id") or ""),
    }


def _collate(messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """System text and messages with consecutive same-role (non-tool) contents merged."""
    system: list[str] = []
    merged: list[dict[str, Any]] = []
    for raw in messages:
        msg = _message(raw)
        if msg["Role"] == "system":
            system.append(msg["Content"])
        if merged and merged[-1]["Role"] == msg["Role"] and msg["Role"] != "tool":
            merged[-1]["Content"] += "\n\n" + msg["Content"]
        else:
            merged.append(msg)
    return "\n\n".join(system), merged


_MESSAGE_FIELDS = ("Role", "Content", "Thinking", "Images", "ToolCalls", "ToolName", "ToolCallID")

_PROPERTY_JSON = (("anyOf", "AnyOf", True), ("type", "Type", True), ("items", "Items", True),
                  ("description", "Description", True), ("enum", "Enum", True),
                  ("properties", "Properties", True), ("required", "Required", True))


def tool_property(prop: Mapping[str, Any]) -> GoStruct:
    """An ``api.ToolProperty`` (Go field names, JSON with omitempty) from its JSON object."""
    kind = prop.get("type")
    if isinstance(kind, list) and len(kind) == 1:
        kind = kind[0]
    nested = prop.get("properties")
    return GoStruct("api.ToolProperty", {
        "AnyOf": [tool_property(p) for p in prop.get("anyOf") or [] if isinstance(p, Mapping)],
        "Type": kind if kind is not None else "",
        "Items": prop.get("items"),
        "Description": str(prop.get("description") or ""),
        "Enum": list(prop.get("enum") or []),
        "Properties": _properties(nested, OrderedJSONMap) if isinstance(nested, Mapping) else None,
        "Required": list(prop.get("required") or []),
    }, json=_PROPERTY_JSON)


def _properties(props: Mapping[str, Any], kind: type[JSONMap] = JSONMap) -> JSONMap:
    return kind({k: tool_property(v if isinstance(v, Mapping) else {}) for k, v in props.items()})


def tool_struct(tool: Mapping[str, Any]) -> GoStruct:
    """Ollama's ``templateTool`` for one request tool (``{type, function: {…}}``)."""
    fn = tool.get("function") or {}
    params = fn.get("parameters") or {}
    props = params.get("properties")
    parameters = GoStruct("templateToolFunctionParameters", {
        "Type": str(params.get("type") or ""),
        "Defs": params.get("$defs"),
        "Items": params.get("items"),
        "Required": list(params.get("required") or []),
        "Properties": _properties(props) if isinstance(props, Mapping) else JSONMap(),
    }, json=(("type", "Type", False), ("$defs", "Defs", True), ("items", "Items", True),
             ("required", "Required", True), ("properties", "Properties", False)))
    # Library templates print {{ .Function }} expecting JSON (api.ToolFunction.String()).
    function = GoStruct("templateToolFunction", {
        "Name": str(fn.get("name") or ""),
        "Description": str(fn.get("description") or ""),
        "Parameters": parameters,
    }, json=(("name", "Name", False), ("description", "Description", False),
             ("parameters", "Parameters", False)), stringer=True)
    return GoStruct("templateTool", {
        "Type": str(tool.get("type") or ""), "Items": tool.get("items"), "Function": function,
    }, json=(("type", "Type", False), ("items", "Items", True), ("function", "Function", False)),
        stringer=True)


def build_template_data(
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    think: ThinkValue = None,
) -> dict[str, Any]:
    """The messages-mode data map: System, Messages, Tools, Response, Think, ThinkLevel, IsThinkSet.

    ``messages`` and ``tools`` are in Ollama's wire shape (``role``, ``content``, ``tool_calls``…).

    >>> d = build_template_data([{"role": "system", "content": "a"}, {"role": "user",
    ...     "content": "b"}, {"role": "system", "content": "c"}], think="high")
    >>> d["System"], [m["Role"] for m in d["Messages"]], d["Think"], d["ThinkLevel"], d["Tools"]
    ('a\\n\\nc', ['system', 'user', 'system'], True, 'high', None)
    """
    system, merged = _collate(messages)
    return {
        "System": system,
        "Messages": [GoStruct("templateMessage", {k: m[k] for k in _MESSAGE_FIELDS})
                     for m in merged],
        "Tools": None if tools is None else JSONList(tool_struct(t) for t in tools),
        "Response": "",
        **_think_fields(think),
    }


# ================================================================================ legacy cut ====


class _Cutter:
    """Ollama's ``deleteNode``: keep everything up to the first printed ``.Response``."""

    def __init__(self) -> None:
        self.cut = False

    def nodes(self, nodes: Sequence[Node]) -> tuple[Node, ...]:
        out: list[Node] = []
        for node in nodes:
            kept = self.node(node)
            if kept is not None:
                out.append(kept)
        return tuple(out)

    def node(self, node: Node) -> Node | None:
        if self.cut:
            return None
        if isinstance(node, Branch):  # the condition is not searched, only the bodies
            body = self.nodes(node.body)
            else_ = None if node.else_ is None or self.cut else self.nodes(node.else_)
            return Branch(node.kind, node.pipe, body, else_)
        if isinstance(node, Action):
            pipe = self.pipe(node.pipe)
            return None if pipe is None else Action(pipe)
        return node

    def pipe(self, pipe: Pipe) -> Pipe | None:
        cmds: list[Command] = []
        for cmd in pipe.cmds:
            args = [a for a in (self.arg(a) for a in cmd.args) if a is not None]
            if not args:
                return None
            cmds.append(Command(tuple(args)))
        return Pipe(pipe.line, pipe.decl, pipe.is_assign, tuple(cmds)) if cmds else None

    def arg(self, arg: Arg) -> Arg | None:
        if self.cut:
            return None
        if isinstance(arg, Field) and "Response" in arg.names:
            self.cut = True
        elif isinstance(arg, Pipe):
            return self.pipe(arg)
        return arg


def _cut_after_response(root: Sequence[Node]) -> tuple[Node, ...]:
    return _Cutter().nodes(root)


# ================================================================================ tag discovery =


def _mentions_tool_calls(pipe: Pipe) -> bool:
    return any(isinstance(a, Field) and "ToolCalls" in a.names for c in pipe.cmds for a in c.args)


def _find_tool_calls_if(nodes: Sequence[Node]) -> Branch | None:
    for node in nodes:
        if not isinstance(node, Branch):
            continue
        if node.kind == "if" and _mentions_tool_calls(node.pipe):
            return node
        for body in (node.body, node.else_ or ()):
            found = _find_tool_calls_if(body)
            if found is not None:
                return found
    return None


def _first_text(nodes: Sequence[Node]) -> Text | None:
    """The first non-blank text, stopping at actions and after the first nested block."""
    for node in nodes:
        if isinstance(node, Text):
            if node.text.strip():
                return node
        elif isinstance(node, Branch):
            return _first_text(node.body) or _first_text(node.else_ or ())
        elif isinstance(node, Action):
            return None
    return None


def _tool_call_tag(root: Sequence[Node]) -> str:
    branch = _find_tool_calls_if(root)
    text = None if branch is None else _first_text(branch.body)
    if text is None:
        return "{"
    tag = text.text.replace("\r\n", "\n").split("{", 1)[0].strip()
    return tag or "{"


class _ThinkTags:
    """Ollama's ``thinking.InferTags`` walk over the node tree, keeping an ancestor stack."""

    def __init__(self) -> None:
        self.ancestors: list[Any] = []
        self.opening = ""
        self.closing = ""

    def visit_list(self, nodes: tuple[Node, ...]) -> None:
        self.ancestors.append(nodes)
        for node in nodes:
            self.visit(node)
        self.ancestors.pop()

    def visit(self, node: Node) -> None:
        self.ancestors.append(node)
        if isinstance(node, Branch):
            self.visit_pipe(node.pipe)
            self.visit_list(node.body)
            if node.else_ is not None:
                self.visit_list(node.else_)
        elif isinstance(node, Action):
            self.visit_pipe(node.pipe)
        elif isinstance(node, Call) and node.pipe is not None:
            self.visit_pipe(node.pipe)
        self.ancestors.pop()

    def visit_pipe(self, pipe: Pipe) -> None:
        for cmd in pipe.cmds:
            for arg in cmd.args:
                if isinstance(arg, Pipe):
                    self.visit_pipe(arg)
                elif isinstance(arg, Field) and arg.names[0] == "Thinking":
                    self.found()

    def found(self) -> None:
        ranges = [a for a in self.ancestors if isinstance(a, Branch) and a.kind == "range"]
        if not ranges or not _ranges_over_messages(ranges[-1]):
            return
        lists = [a for a in self.ancestors if isinstance(a, tuple)]
        nodes = lists[-1]
        if isinstance(nodes[0], Text):
            self.opening = nodes[0].text.strip()
        if isinstance(nodes[-1], Text):
            self.closing = nodes[-1].text.strip()


def _ranges_over_messages(branch: Branch) -> bool:
    def visit(pipe: Pipe) -> bool:
        for cmd in pipe.cmds:
            for arg in cmd.args:
                if isinstance(arg, Field) and arg.names[0] == "Messages":
                    return True
                if isinstance(arg, Pipe) and visit(arg):
                    return True
        return False

    return visit(branch.pipe)


def _infer_think_tags(root: tuple[Node, ...]) -> tuple[str, str]:
    walker = _ThinkTags()
    walker.visit_list(root)
    return walker.opening, walker.closing


# ================================================================================ functions =====


def _as_template(template: str | OllamaTemplate) -> OllamaTemplate:
    return template if isinstance(template, OllamaTemplate) else OllamaTemplate.parse(template)


def render_messages(
    template: str | OllamaTemplate,
    messages: Sequence[Mapping[str, Any]],
    *,
    system: str = "",
    tools: Sequence[Mapping[str, Any]] | None = None,
    think: ThinkValue = None,
    today: Clock | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> str:
    """Render a chat prompt; ``system`` (the model's SYSTEM) is prepended unless one leads."""
    msgs = list(messages)
    if system and (not msgs or msgs[0].get("role") != "system"):
        msgs.insert(0, {"role": "system", "content": system})
    return _as_template(template).render(msgs, tools=tools, think=think, today=today,
                                         limits=limits)


def render_generate(
    template: str | OllamaTemplate,
    prompt: str,
    *,
    system: str = "",
    suffix: str = "",
    think: ThinkValue = None,
    today: Clock | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> str:
    """Render a ``/api/generate`` prompt: fill-in-the-middle when ``suffix`` is given."""
    tmpl = _as_template(template)
    if suffix:
        return tmpl.render([], prompt=prompt, suffix=suffix, think=think, today=today,
                           limits=limits)
    msgs = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": prompt})
    return tmpl.render(msgs, think=think, today=today, limits=limits)


def uses_tools(template: str | OllamaTemplate) -> bool:
    """Whether the template mentions ``.Tools``."""
    return _as_template(template).uses_tools


def uses_suffix(template: str | OllamaTemplate) -> bool:
    """Whether the template mentions ``.Suffix``."""
    return _as_template(template).uses_suffix


def think_tags(template: str | OllamaTemplate) -> tuple[str, str] | None:
    """The thinking tags inferred from the template, e.g. ``("<think>", "</think>")``."""
    return _as_template(template).think_tags


def tool_call_tag(template: str | OllamaTemplate) -> str:
    """The tool-call tag inferred from the template's ``{{ if .ToolCalls }}`` block, else ``{``."""
    return _as_template(template).tool_call_tag
