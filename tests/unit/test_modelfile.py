"""Modelfile parsing, errors with line numbers, regeneration and the create request (§9.1–§9.2)."""

from __future__ import annotations

import pytest

from pollama.errors import InvalidRequest, ModelfileError
from pollama.store.modelfile import MAX_LINE, MAX_SIZE, Modelfile, parse_modelfile

INVALID_COMMAND = (
    'command must be one of "from", "license", "template", "system", "adapter", "draft", '
    '"renderer", "parser", "parameter", "message", or "requires"'
)

FULL = '''# A full Modelfile
FROM llama3.2:3b
FROM ./mmproj.gguf
ADAPTER ./lora.gguf
DRAFT ./draft.gguf
TEMPLATE """{{- range .Messages }}<|{{ .Role }}|>
{{ .Content }}
{{ end }}<|assistant|>
"""
SYSTEM You are a "careful" assistant.
PARAMETER temperature 0.2
PARAMETER num_ctx 8192
PARAMETER use_mmap false
PARAMETER stop <|user|>
PARAMETER stop "<|assistant|>"
MESSAGE user Is the sky blue?
MESSAGE assistant "Yes.
It is."
LICENSE """MIT License
Copyright (c)"""
LICENSE Apache-2.0
REQUIRES 0.14.0
RENDERER qwen3-coder
PARSER qwen3-coder
'''


def test_every_instruction() -> None:
    mf = parse_modelfile(FULL)
    assert mf.from_ == ["llama3.2:3b", "./mmproj.gguf"]
    assert mf.adapters == ["./lora.gguf"]
    assert mf.draft == "./draft.gguf"
    assert mf.template == (
        "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}\n{{ end }}<|assistant|>\n"
    )
    assert mf.system == 'You are a "careful" assistant.'
    assert mf.parameters == {
        "temperature": 0.2, "num_ctx": 8192, "use_mmap": False,
        "stop": ["<|user|>", "<|assistant|>"],
    }
    assert mf.messages == [
        {"role": "user", "content": "Is the sky blue?"},
        {"role": "assistant", "content": "Yes.\nIt is."},
    ]
    assert mf.licenses == ["MIT License\nCopyright (c)", "Apache-2.0"]
    assert mf.requires == "0.14.0"
    assert mf.renderer == "qwen3-coder" and mf.parser == "qwen3-coder"
    assert mf.warnings == []


def test_minimal_has_absent_fields() -> None:
    assert parse_modelfile("FROM llama3") == Modelfile(from_=["llama3"])  # no trailing newline


def test_instruction_names_are_case_insensitive() -> None:
    mf = parse_modelfile("from a\nSyStEm hi\nParameter top_k 5\nmessage user x\n")
    assert (mf.from_, mf.system, mf.parameters, mf.messages) == (
        ["a"], "hi", {"top_k": 5}, [{"role": "user", "content": "x"}])


def test_parameter_names_and_roles_are_case_sensitive() -> None:
    with pytest.raises(ModelfileError, match="unknown parameter 'Temperature'"):
        parse_modelfile("FROM a\nPARAMETER Temperature 1\n")
    with pytest.raises(ModelfileError, match="message role must be one of"):
        parse_modelfile("FROM a\nMESSAGE User hi\n")


def test_comments_blank_lines_and_indentation() -> None:
    text = "\n# top\n   # indented comment\n\n\tFROM a   \n  SYSTEM   padded value  \n# end"
    mf = parse_modelfile(text)
    assert mf.from_ == ["a"] and mf.system == "padded value"


def test_hash_inside_a_value_is_not_a_comment() -> None:
    assert parse_modelfile("FROM a\nSYSTEM use # freely\n").system == "use # freely"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bare words here", "bare words here"),
        ('"double quoted"', "double quoted"),
        ('"  kept inside  "', "  kept inside  "),
        ('"spans\n  lines\n"', "spans\n  lines\n"),
        ('"""triple "with" quotes"""', 'triple "with" quotes'),
        ('"""\nmulti\n\nline\n"""', "\nmulti\n\nline\n"),
        ('""', ""),
        ('""""""', ""),
        ("say \"hi\" there", 'say "hi" there'),
        ("\tx\ty\t", "x\ty"),
    ],
)
def test_quoting_forms(value: str, expected: str) -> None:
    assert parse_modelfile(f"FROM a\nSYSTEM {value}\n").system == expected


def test_bom_and_crlf() -> None:
    mf = parse_modelfile('\ufeffFROM a\r\nSYSTEM "x\r\ny"\r\nPARAMETER top_k 3\r\n')
    assert mf.from_ == ["a"] and mf.system == "x\r\ny" and mf.parameters == {"top_k": 3}


def test_crlf_counts_one_line() -> None:
    with pytest.raises(ModelfileError, match=r"^\(line 3\): command must"):
        parse_modelfile("FROM a\r\nSYSTEM b\r\nBOGUS c\r\n")


def test_control_characters_are_dropped_like_ollama() -> None:
    assert parse_modelfile("FROM a\nSYSTEM x\x01y\x1bz\n").system == "xyz"


def test_stop_accumulates_in_order() -> None:
    mf = parse_modelfile("FROM a\nPARAMETER stop a\nPARAMETER top_k 1\nPARAMETER stop b\n")
    assert mf.parameters["stop"] == ["a", "b"]


def test_later_single_values_win() -> None:
    mf = parse_modelfile("FROM a\nSYSTEM one\nSYSTEM two\nPARAMETER top_k 1\nPARAMETER top_k 2\n")
    assert mf.system == "two" and mf.parameters == {"top_k": 2}


def test_deprecated_parameters_warn_and_are_skipped() -> None:
    mf = parse_modelfile("FROM a\nPARAMETER mirostat 2\nPARAMETER tfs_z 1.0\n"
                         "PARAMETER penalize_newline true\nPARAMETER top_k 9\n")
    assert mf.parameters == {"top_k": 9}
    assert mf.warnings == ["parameter mirostat is deprecated", "parameter tfs_z is deprecated",
                           "parameter penalize_newline is deprecated"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SYSTEM hi\n", "no FROM line"),
        ("# only a comment\n", "no FROM line"),
        ("", "no FROM line"),
        ("FROM a\nFOO bar\n", f"(line 2): {INVALID_COMMAND}"),
        ("FROM a\n\n\nsystem2 x\n", f"(line 4): {INVALID_COMMAND}"),
        ("FROM\n", f"(line 1): {INVALID_COMMAND}"),
        ("FROM a\nMESSAGE tool hi\n", '(line 2): message role must be one of "system", '
                                      '"user", or "assistant"'),
        ("FROM a\nREQUIRES latest\n", "(line 2): requires must be a valid semver (e.g. 0.14.0)"),
        ("FROM a\nREQUIRES 0.14.0.1\n", "(line 2): requires must be a valid semver (e.g. 0.14.0)"),
        ("FROM a\nPARAMETER nope 1\n", "(line 2): unknown parameter 'nope'"),
        ("FROM a\nPARAMETER num_ctx abc\n",
         "(line 2): invalid int value [abc] for parameter 'num_ctx' (expected integer)"),
        ("FROM a\nPARAMETER temperature hot\n",
         "(line 2): invalid float value [hot] for parameter 'temperature' (expected float32)"),
        ("FROM a\nPARAMETER use_mmap maybe\n",
         "(line 2): invalid bool value [maybe] for parameter 'use_mmap' (expected boolean)"),
        ('FROM a\nSYSTEM "unterminated\nstill going\n', "(line 2): unexpected EOF"),
        ('FROM a\n\nTEMPLATE """{{ .Prompt }}\n', "(line 3): unexpected EOF"),
        ('FROM a\nSYSTEM "closed" trailing\n', "(line 2): unexpected EOF"),
        ("FROM a\nPARAMETER num-ctx 1\n", "(line 2): unexpected EOF"),
        ("FROM a\nPARAMETER", "(line 2): unexpected EOF"),
        ("FROM a\nMESSAGE user", "(line 2): unexpected EOF"),
    ],
)
def test_errors_carry_ollama_messages_and_lines(text: str, message: str) -> None:
    with pytest.raises(ModelfileError) as info:
        parse_modelfile(text)
    assert info.value.message == message
    assert isinstance(info.value, InvalidRequest)


@pytest.mark.parametrize("version", ["0.14.0", "v0.14.0", "1", "0.14", "1.2.3-rc1", "1.2.3+b5"])
def test_requires_accepts_semver(version: str) -> None:
    assert parse_modelfile(f"FROM a\nREQUIRES {version}\n").requires == version.removeprefix("v")


def test_hostile_inputs_fail_cleanly() -> None:
    with pytest.raises(ModelfileError, match=r"\(line 2\): unexpected NUL character"):
        parse_modelfile("FROM a\nSYSTEM x\x00y\n")
    with pytest.raises(ModelfileError, match="larger than 10 MiB"):
        parse_modelfile("FROM a\n" + "#" * MAX_SIZE)
    with pytest.raises(ModelfileError, match=r"\(line 2\): line is longer than"):
        parse_modelfile("FROM a\nSYSTEM " + "x" * MAX_LINE + "\n")
    with pytest.raises(ModelfileError, match="unexpected EOF"):
        parse_modelfile('FROM a\nTEMPLATE """' + "{{ x }}\n" * 10000)


def test_large_multiline_value_parses_in_linear_time() -> None:
    body = "word " * 10 + "\n"
    mf = parse_modelfile('FROM a\nTEMPLATE """' + body * 50_000 + '"""\n')
    assert mf.template == body * 50_000


def test_round_trip_full() -> None:
    mf = parse_modelfile(FULL)
    assert parse_modelfile(mf.to_text()) == mf


@pytest.mark.parametrize(
    "value",
    ["plain", " leading", "trailing ", "two\nlines", 'has "quotes"', '"starts quoted"',
     'multi\n"quoted"\nlines', "", "\ttab", 'ends with "', "x\r\ny"],
)
def test_round_trip_values(value: str) -> None:
    mf = Modelfile(from_=["m"], system=value, template=value, licenses=[value],
                   messages=[{"role": "user", "content": value}])
    assert parse_modelfile(mf.to_text()) == mf


def test_to_text_quotes_only_when_needed() -> None:
    mf = Modelfile(from_=["m"], system="Be brief.", template="{{ .Prompt }}\n",
                   parameters={"stop": ["<|end|>", " pad"], "temperature": 0.5, "use_mmap": True},
                   messages=[{"role": "assistant", "content": 'say "x"\nok'}])
    assert mf.to_text() == (
        "FROM m\n"
        'TEMPLATE "{{ .Prompt }}\n"\n'
        "SYSTEM Be brief.\n"
        "PARAMETER stop <|end|>\n"
        'PARAMETER stop " pad"\n'
        "PARAMETER temperature 0.5\n"
        "PARAMETER use_mmap true\n"
        'MESSAGE assistant """say "x"\nok"""\n'
    )


def test_to_text_refuses_triple_quotes() -> None:
    with pytest.raises(ModelfileError):
        Modelfile(from_=["m"], system='a """ b').to_text()


def test_to_create_request() -> None:
    mf = parse_modelfile(FULL)
    req = mf.to_create_request(model_from="llama3.2:3b", adapters={"lora.gguf": "sha256:ab"})
    assert req == {
        "from": "llama3.2:3b",
        "adapters": {"lora.gguf": "sha256:ab"},
        "template": mf.template,
        "system": 'You are a "careful" assistant.',
        "renderer": "qwen3-coder",
        "parser": "qwen3-coder",
        "requires": "0.14.0",
        "parameters": {"temperature": 0.2, "num_ctx": 8192, "use_mmap": False,
                       "stop": ["<|user|>", "<|assistant|>"]},
        "messages": [{"role": "user", "content": "Is the sky blue?"},
                     {"role": "assistant", "content": "Yes.\nIt is."}],
        "license": ["MIT License\nCopyright (c)", "Apache-2.0"],
    }
    req["parameters"]["stop"].append("x")
    assert mf.parameters["stop"] == ["<|user|>", "<|assistant|>"]  # a copy


def test_to_create_request_minimal_and_empty_system() -> None:
    assert parse_modelfile("FROM a\n").to_create_request(files={"m.gguf": "sha256:00"}) == {
        "files": {"m.gguf": "sha256:00"}}
    # An empty SYSTEM is sent: it removes the base model's system prompt.
    assert parse_modelfile('FROM a\nSYSTEM ""\n').to_create_request() == {"system": ""}
