"""The Go text/template subset: each construct, trimming, functions, errors and limits."""

from __future__ import annotations

from typing import Any

import pytest

from pollama.errors import InvalidRequest
from pollama.templates.gotemplate import (
    Limits,
    TemplateError,
    TemplateExecutionError,
    parse,
    render,
)
from pollama.templates.govalues import GoStruct, JSONList, JSONMap, go_json, sprintf
from pollama.templates.ollama import OllamaTemplate, build_template_data


def r(src: str, data: Any = None) -> str:
    return render(src, {} if data is None else data)


# --------------------------------------------------------------------------- text and trimming -


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ("plain text", "plain text"),
        ("a  \n {{- 1 }}", "a1"),
        ("{{ 1 -}} \n\t b", "1b"),
        ("a \n{{- 1 -}}\n b", "a1b"),
        ("a {{-1}} b", "a -1 b"),  # "-1" is a number, not a trim marker
        ("a {{/* comment */}} b", "a  b"),
        ("a \n {{- /* comment */ -}} \n b", "ab"),
        ("{{ `raw {{ not an action }}` }}", "raw {{ not an action }}"),
        ("{{\n  1\n}}", "1"),  # newlines inside actions
    ],
)
def test_text_trim_and_comments(src: str, expected: str) -> None:
    assert r(src) == expected


# --------------------------------------------------------------------------- data access -------


def test_fields_dot_and_dollar() -> None:
    data = {"A": {"B": {"C": "deep"}}, "L": [1, 2]}
    assert r("{{ .A.B.C }}", data) == "deep"
    assert r("{{ with .A }}{{ .B.C }}{{ $.L }}{{ end }}", data) == "deep[1 2]"
    assert r("{{ . }}", {"k": 1}) == "map[k:1]"


def test_missing_keys_are_nil_and_print_no_value() -> None:
    assert r("[{{ .Nope }}][{{ .Nope.Deeper }}]") == "[<no value>][<no value>]"
    assert r("{{ if .Nope }}yes{{ else }}no{{ end }}") == "no"
    assert r("{{ print .Nope }}") == "<nil>"


def test_no_python_attribute_access() -> None:
    assert r("{{ .__class__ }}{{ .keys }}", {"x": 1}) == "<no value><no value>"
    with pytest.raises(TemplateExecutionError, match="can't evaluate field upper in type string"):
        r("{{ .S.upper }}", {"S": "abc"})
    with pytest.raises(TemplateExecutionError, match="can't evaluate field __len__"):
        r("{{ .L.__len__ }}", {"L": [1]})


def test_struct_fields_are_strict() -> None:
    s = GoStruct("T", {"Name": "n"})
    assert r("{{ .S.Name }}", {"S": s}) == "n"
    with pytest.raises(TemplateExecutionError, match="can't evaluate field Other in type T"):
        r("{{ .S.Other }}", {"S": s})


def test_chain_on_parenthesised_result() -> None:
    assert r("{{ (index .L 1).Name }}", {"L": [{}, {"Name": "second"}]}) == "second"


# --------------------------------------------------------------------------- variables ---------


def test_declare_assign_and_scope() -> None:
    src = ('{{ $x := "outer" }}{{ if true }}{{ $x = "changed" }}{{ $y := 1 }}{{ end }}{{ $x }}'
           "{{ range .L }}{{ $x = . }}{{ end }}-{{ $x }}")
    assert r(src, {"L": [1, 2, 3]}) == "changed-3"
    assert r("{{ $x := 5 }}") == ""  # declarations print nothing


def test_variable_out_of_scope_is_a_parse_error() -> None:
    with pytest.raises(TemplateError, match='undefined variable "\\$y"'):
        parse("{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}")


def test_dollar_inside_define_is_the_call_argument() -> None:
    assert r('{{ define "t" }}{{ $ }}{{ end }}{{ template "t" .A }}', {"A": "arg"}) == "arg"


# --------------------------------------------------------------------------- control -----------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "F"), (1, "T"), ("", "F"), ("x", "T"), ([], "F"), ([0], "T"), ({}, "F"),
     ({"a": 1}, "T"), (None, "F"), (False, "F"), (True, "T"), (0.0, "F"), (0.1, "T")],
)
def test_truthiness(value: Any, expected: str) -> None:
    assert r("{{ if .V }}T{{ else }}F{{ end }}", {"V": value}) == expected


def test_if_else_if_chain() -> None:
    src = '{{ if eq .N 1 }}one{{ else if eq .N 2 }}two{{ else }}many{{ end }}'
    assert [r(src, {"N": n}) for n in (1, 2, 3)] == ["one", "two", "many"]


def test_with_else_and_else_with() -> None:
    src = "{{ with .A }}a={{ . }}{{ else with .B }}b={{ . }}{{ else }}none{{ end }}"
    assert r(src, {"A": 1}) == "a=1"
    assert r(src, {"B": 2}) == "b=2"
    assert r(src, {}) == "none"


def test_range_forms() -> None:
    data = {"L": ["a", "b"], "M": {"z": 1, "a": 2}, "E": []}
    assert r("{{ range .L }}{{ . }}{{ end }}", data) == "ab"
    assert r("{{ range $i, $v := .L }}{{ $i }}{{ $v }}{{ end }}", data) == "0a1b"
    assert r("{{ range $v := .L }}{{ $v }}{{ end }}", data) == "ab"
    assert r("{{ range $k, $v := .M }}{{ $k }}={{ $v }} {{ end }}", data) == "a=2 z=1 "
    assert r("{{ range .E }}x{{ else }}empty{{ end }}", data) == "empty"
    assert r("{{ range .Missing }}x{{ else }}nil{{ end }}", data) == "nil"
    assert r("{{ range 3 }}{{ . }}{{ end }}") == "012"


def test_break_and_continue() -> None:
    src = ("{{ range .L }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if eq . 4 }}{{ break }}"
           "{{ end }}{{ . }}{{ end }}")
    assert r(src, {"L": [1, 2, 3, 4, 5]}) == "13"


def test_range_variables_reset_per_iteration() -> None:
    src = "{{ range .L }}{{ $seen := . }}{{ $seen }}{{ end }}"
    assert r(src, {"L": [1, 2]}) == "12"


def test_define_template_block() -> None:
    src = ('{{ define "item" }}<{{ . }}>{{ end }}'
           '{{ range .L }}{{ template "item" . }}{{ end }}'
           '{{ block "footer" .N }}[{{ . }}]{{ end }}')
    assert r(src, {"L": [1, 2], "N": 9}) == "<1><2>[9]"


# --------------------------------------------------------------------------- literals ----------


def test_literals() -> None:
    assert r('{{ "a\\tb\\u00e9\\n" }}') == "a\tbé\n"
    assert r("{{ `a\\tb` }}") == "a\\tb"
    assert r("{{ 'a' }} {{ 0x1F }} {{ 1_000 }} {{ 1.5 }} {{ 1e3 }} {{ -2 }}") == "97 31 1000 1.5 1000 -2"
    assert r("{{ true }} {{ false }}") == "true false"


# --------------------------------------------------------------------------- functions ---------


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ('{{ eq "a" "b" "a" }}', "true"),
        ("{{ eq 1 2 }}", "false"),
        ("{{ eq .Nope nil }}", "true"),
        ('{{ eq .Nope "x" }}', "false"),
        ("{{ ne 1 2 }}", "true"),
        ("{{ lt 1 2 }} {{ le 2 2 }} {{ gt 1 2 }} {{ ge 2 3 }}", "true true false false"),
        ('{{ lt "a" "b" }}', "true"),
        ("{{ and 1 0 2 }} {{ and 1 2 }} {{ or 0 \"\" }} {{ or 0 7 }}", "0 2  7"),
        ("{{ not 0 }} {{ not \"x\" }}", "true false"),
        ('{{ len "héllo" }} {{ len .L }} {{ len .M }}', "6 3 1"),
        ("{{ index .L 2 }} {{ index .M \"k\" }} {{ index .N 0 1 }}", "3 v y"),
        ('{{ index .M "missing" }}', "<no value>"),
        ("{{ slice .L 1 }} {{ slice .L 1 2 }} {{ slice \"hello\" 1 3 }}", "[2 3] [2] el"),
        ('{{ print "a" 1 2 "b" }}', "a1 2b"),
        ('{{ println "a" 1 }}', "a 1\n"),
        ('{{ printf "%s=%d %q %v %.2f %5s|%-3d|" "k" 7 "q" .L 3.14159 "r" 1 }}',
         'k=7 "q" [1 2 3] 3.14     r|1  |'),
        ('{{ printf "%d" "x" }} {{ printf "%d %d" 1 }}', "%!d(string=x) 1 %!d(MISSING)"),
        ('{{ html "<a href=\'x\'>&" }}', "&lt;a href=&#39;x&#39;&gt;&amp;"),
        ('{{ js "it\'s <b>" }}', "it\\'s \\u003Cb\\u003E"),
        ('{{ urlquery "a b&c" }}', "a+b%26c"),
        ('{{ "x" | printf "%s-%s" "y" }}', "y-x"),
        ("{{ .L | len }}", "3"),
        ("{{ json .M }} {{ json .L }} {{ json \"<&>\" }}", '{"k":"v"} [1,2,3] "\\u003c\\u0026\\u003e"'),
        ("{{ toTypeScriptType .P }} {{ toTypeScriptType 1 }}", "string | null any"),
    ],
)
def test_functions(src: str, expected: str) -> None:
    data = {"L": [1, 2, 3], "M": {"k": "v"}, "N": [["x", "y"]],
            "P": GoStruct("api.ToolProperty", {"Type": ["string", "null"], "AnyOf": []})}
    assert r(src, data) == expected


@pytest.mark.parametrize(
    ("src", "message"),
    [
        ("{{ eq 1 1.5 }}", "error calling eq: incompatible types for comparison"),
        ('{{ lt 1 "a" }}', "error calling lt: incompatible types for comparison"),
        ("{{ lt true false }}", "error calling lt: invalid type for comparison"),
        ("{{ index .L 9 }}", "error calling index: index out of range: 9"),
        ("{{ index .Nope 0 }}", "error calling index: index of untyped nil"),
        ("{{ slice .L 2 1 }}", "error calling slice: index out of range: 1"),
        ("{{ len 3 }}", "error calling len: len of type int"),
        ("{{ printf 1 }}", "error calling printf: wrong type for value; expected string; got int"),
        ("{{ not 1 2 }}", "error calling not: wrong number of args for not: want 1 got 2"),
        ('{{ template "nope" }}', 'no template "nope" associated with template ""'),
        ("{{ range .S }}{{ end }}", "range can't iterate over abc"),
        ("{{ 1 2 }}", "can't give argument to non-function 1"),
    ],
)
def test_execution_errors(src: str, message: str) -> None:
    with pytest.raises(TemplateExecutionError) as info:
        r(src, {"L": [1, 2, 3], "S": "abc"})
    assert message in info.value.message
    assert info.value.message.startswith("template: :1: executing")


# --------------------------------------------------------------------------- parse errors ------


@pytest.mark.parametrize(
    ("src", "message"),
    [
        ("{{ .Prompt ", "template error: template: :1: unclosed action"),
        ("{{ if .X }}", "template error: template: :1: unexpected EOF"),
        ("{{ end }}", "template error: template: :1: unexpected {{end}}"),
        ("a\n\n{{ else }}", "template error: template: :3: unexpected {{else}}"),
        ("{{ nope }}", 'template error: template: :1: function "nope" not defined'),
        ("{{ $x }}", 'template error: template: :1: undefined variable "$x"'),
        ("{{ if }}{{ end }}", "template error: template: :1: missing value for if"),
        ("{{ }}", "template error: template: :1: missing value for command"),
        ("{{ break }}", "template error: template: :1: {{break}} outside {{range}}"),
        ("{{/* open", "template error: template: :1: unclosed comment"),
        ("{{/* x */ 1 }}", "template error: template: :1: comment ends before closing delimiter"),
        ('{{ "open }}', "template error: template: :1: unterminated quoted string"),
        ("{{ (1 }}", "template error: template: :1: unclosed left paren"),
        ("{{ 1 | 2 }}", "template error: template: :1: non executable command in pipeline stage 2"),
        ("{{ nil }}", "template error: template: :1: nil is not a command"),
        ("{{ . # }}", "template error: template: :1: unexpected '#' in command"),
        ('{{ define "a" }}{{ define "b" }}{{ end }}{{ end }}',
         "template error: template: :1: unexpected <define> in command"),
    ],
)
def test_parse_errors_name_position(src: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        parse(src)
    assert info.value.message == message
    assert isinstance(info.value, InvalidRequest)  # create answers it with 400


def test_template_without_pipeline_is_rejected_by_ollama_rules() -> None:
    with pytest.raises(TemplateError, match="template error: undefined template specified"):
        OllamaTemplate.parse('{{ define "x" }}x{{ end }}{{ template "x" }}')


# --------------------------------------------------------------------------- limits ------------


def test_step_limit() -> None:
    with pytest.raises(TemplateExecutionError, match="evaluation steps"):
        render("{{ range 100000 }}x{{ end }}", {}, limits=Limits(max_steps=10_000))


def test_output_limit() -> None:
    with pytest.raises(TemplateExecutionError, match="output exceeds"):
        render("{{ range .L }}0123456789{{ end }}", {"L": list(range(200))},
               limits=Limits(max_output=1000))


def test_string_growth_is_bounded() -> None:
    src = '{{ $x := "ab" }}{{ range 64 }}{{ $x = printf "%s%s" $x $x }}{{ end }}'
    with pytest.raises(TemplateExecutionError, match="output exceeds"):
        render(src, {}, limits=Limits(max_output=1 << 20))


def test_recursive_templates_are_bounded() -> None:
    with pytest.raises(TemplateExecutionError, match="maximum template depth"):
        r('{{ define "r" }}{{ template "r" . }}{{ end }}{{ template "r" . }}')


def test_deep_nesting_is_a_parse_error_not_a_crash() -> None:
    with pytest.raises(TemplateError, match="nesting deeper"):
        parse("{{ if 1 }}" * 500 + "{{ end }}" * 500)
    with pytest.raises(TemplateError, match="nesting deeper"):
        parse("{{ " + "(" * 500 + "1" + ")" * 500 + " }}")


def test_template_parses_once_executes_many() -> None:
    t = parse("{{ .N }}")
    assert [t.execute({"N": n}) for n in (1, 2)] == ["1", "2"]


# --------------------------------------------------------------------------- Go formatting -----


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"), (0.1, "0.1"), (1e21, "1e+21"), (1e20, "100000000000000000000"),
        (1e-7, "1e-7"), (-0.5, "-0.5"), (10, "10"), (True, "true"), (None, "null"),
        ("\u2028\x01\"\\", '"\\u2028\\u0001\\"\\\\"'), ("é", '"é"'),
        ({"b": {"d": 1, "c": 2}, "a": []}, '{"a":[],"b":{"c":2,"d":1}}'),
    ],
)
def test_go_json(value: Any, expected: str) -> None:
    assert go_json(value) == expected


def test_json_printing_types() -> None:
    data = {"A": JSONMap({"z": 1, "a": "x"}), "T": JSONList([{"k": 1}]), "P": {"z": 1, "a": 2}}
    assert r("{{ .A }} {{ .T }} {{ .P }}", data) == '{"a":"x","z":1} [{"k":1}] map[a:2 z:1]'


def test_json_of_nan_prints_nothing() -> None:
    assert r("[{{ json .F }}]", {"F": float("nan")}) == "[]"


@pytest.mark.parametrize(
    ("fmt", "args", "expected"),
    [
        ("%v|%v|%v", [1e6, 123456.0, 1e-5], "1e+06|123456|1e-05"),
        ("%x %X %o %b", [255, 255, 8, 5], "ff FF 10 101"),
        ("%05.1f|%+d|%e", [3.14159, 5, 1234.5], "003.1|+5|1.234500e+03"),
        ("%t %c %U", [False, 65, 0x1F600], "false A U+1F600"),
        ("%s", [[1, "a"]], "[1 a]"),
        ("%d", [], "%!d(MISSING)"),
        ("%s", ["a", "b"], "a%!(EXTRA string=b)"),
        ("100%%", [], "100%"),
    ],
)
def test_sprintf(fmt: str, args: list[Any], expected: str) -> None:
    assert sprintf(fmt, args) == expected


# --------------------------------------------------------------------------- Ollama data -------


def test_build_template_data_shapes() -> None:
    data = build_template_data(
        [{"role": "system", "content": "s1"}, {"role": "system", "content": "s2"},
         {"role": "assistant", "content": "", "thinking": "hmm", "tool_calls": [
             {"id": "call_1", "function": {"index": 0, "name": "f",
                                           "arguments": {"b": 1, "a": "<"}}}]},
         {"role": "tool", "content": "r", "tool_name": "f", "tool_call_id": "call_1"}],
        tools=[{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"x": {"type": "integer"}}}}}],
        think="low",
    )
    assert data["System"] == "s1\n\ns2"
    assert [m["Role"] for m in data["Messages"]] == ["system", "assistant", "tool"]
    assert data["Messages"][0]["Content"] == "s1\n\ns2"
    call = data["Messages"][1]["ToolCalls"][0]
    assert (call["ID"], call["Function"]["Name"], call["Function"]["Index"]) == ("call_1", "f", 0)
    src = ("{{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Arguments }}"
           "{{ range $k, $v := .Function.Arguments }} {{ $k }}={{ $v }}{{ end }}{{ end }}"
           "{{ .ToolName }}{{ .ToolCallID }}{{ .Thinking }}{{ end }}"
           "|{{ range .Tools }}{{ range $n, $p := .Function.Parameters.Properties }}"
           "{{ $n }}:{{ $p.Type }}:{{ toTypeScriptType $p }}{{ end }}{{ end }}"
           "|{{ .Think }} {{ .ThinkLevel }} {{ .IsThinkSet }} [{{ .Response }}]")
    assert render(src, data) == (
        '{"a":"\\u003c","b":1} a=< b=1hmmfcall_1|x:integer:number|true low true []'
    )


@pytest.mark.parametrize(
    ("think", "expected"),
    [(None, "false  false"), (True, "true medium true"), (False, "false  true"),
     ("high", "true high true"), ("max", "true max true")],
)
def test_think_values(think: Any, expected: str) -> None:
    t = OllamaTemplate.parse("{{ .Think }} {{ .ThinkLevel }} {{ .IsThinkSet }}{{ .Messages }}")
    assert t.render([], think=think).startswith(expected)


def test_response_is_appended_only_when_needed() -> None:
    assert OllamaTemplate.parse("{{ .Prompt }}").render(
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]) == "qa"
    assert "response" in OllamaTemplate.parse("{{ .Prompt }}").vars
    assert "response" not in OllamaTemplate.parse("{{ .Messages }}").vars


def test_legacy_cut_keeps_text_before_response_inside_blocks() -> None:
    t = OllamaTemplate.parse("{{ if .Prompt }}U:{{ .Prompt }} {{ end }}A:{{ .Response }}<END>"
                             "{{ if .System }}never{{ end }}")
    msgs = [{"role": "user", "content": "1"}, {"role": "assistant", "content": "one"},
            {"role": "user", "content": "2"}]
    assert t.render(msgs) == "U:1 A:one<END>U:2 A:"


def test_think_tags_absent_when_thinking_not_in_messages_range() -> None:
    assert OllamaTemplate.parse("{{ .Thinking }}{{ .Messages }}").think_tags is None
    src = "{{ range .Messages }}<t>{{ .Thinking }}</t>{{ end }}"
    assert OllamaTemplate.parse(src).think_tags == ("<t>", "</t>")
