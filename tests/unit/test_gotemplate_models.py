"""Real model templates (Ollama library families) rendered for fixed conversations.

Every expected string was derived by hand from reading the template text: trim markers remove
the whitespace next to them, ``$last`` picks the final message, and so on. The templates live in
``tests/unit/data/templates``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from pollama.templates.ollama import (
    OllamaTemplate,
    render_generate,
    render_messages,
    think_tags,
    tool_call_tag,
    uses_suffix,
    uses_tools,
)

DATA = Path(__file__).parent / "data" / "templates"


def tmpl(family: str) -> OllamaTemplate:
    return OllamaTemplate.parse((DATA / f"{family}.gotmpl").read_text(encoding="utf-8"))


BASIC: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Why is the sky blue?"},
]

TOOLS: list[dict[str, Any]] = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string", "description": "City name"}},
        },
    },
}]

TOOL_CONV: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "",
     "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "content": "22C", "tool_name": "get_weather"},
]

FUNCTION_JSON = (
    '{"name":"get_weather","description":"Get the weather","parameters":{"type":"object",'
    '"required":["city"],"properties":{"city":{"type":"string","description":"City name"}}}}'
)
TOOL_JSON = '{"type":"function","function":' + FUNCTION_JSON + "}"


# --------------------------------------------------------------------------- llama 3.2 ---------

LLAMA_TOOL_SYSTEM = (
    "<|start_header_id|>system<|end_header_id|>\n\n"
    "Cutting Knowledge Date: December 2023\n\n"
    "When you receive a tool call response, use the output to format an answer to the orginal "
    "user question.\n\n"
    "You are a helpful assistant with tool calling capabilities.<|eot_id|>"
)


def test_llama32_basic() -> None:
    assert tmpl("llama3.2").render(BASIC) == (
        "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhy is the sky blue?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_llama32_tools_offered_on_last_user_message() -> None:
    got = tmpl("llama3.2").render([TOOL_CONV[0]], tools=TOOLS)
    assert got == (
        LLAMA_TOOL_SYSTEM
        + "<|start_header_id|>user<|end_header_id|>\n\n"
        "Given the following functions, please respond with a JSON for a function call with its "
        "proper arguments that best answers the given prompt.\n\n"
        'Respond in the format {"name": function name, "parameters": dictionary of argument '
        "name and its value}. Do not use variables.\n\n"
        + TOOL_JSON + "\n\n"
        "Weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_llama32_tool_call_and_result() -> None:
    assert tmpl("llama3.2").render(TOOL_CONV, tools=TOOLS) == (
        LLAMA_TOOL_SYSTEM
        + "<|start_header_id|>user<|end_header_id|>\n\nWeather in Paris?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
        '{"name": "get_weather", "parameters": {"city":"Paris"}}<|eot_id|>'
        "<|start_header_id|>ipython<|end_header_id|>\n\n22C<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_llama32_capabilities() -> None:
    t = tmpl("llama3.2")
    assert t.uses_tools and not t.uses_suffix
    assert t.tool_call_tag == "{"  # the block's first text is '{"name"…', cut before "{"
    assert t.think_tags is None


# --------------------------------------------------------------------------- legacy ------------


def test_llama2_legacy_mode_turns_and_open_final_turn() -> None:
    t = tmpl("llama2-chat")
    assert "messages" not in t.vars
    assert t.render(BASIC) == (
        "[INST] <<SYS>>You are terse.<</SYS>>\n\nHi [/INST]\nHello!"
        "[INST] <<SYS>><</SYS>>\n\nWhy is the sky blue? [/INST]\n"
    )


def test_phi3_legacy_mode() -> None:
    assert tmpl("phi3").render(BASIC) == (
        "<|system|>\nYou are terse.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>"
        "<|user|>\nWhy is the sky blue?<|end|>\n<|assistant|>\n"
    )


def test_phi3_legacy_final_assistant_is_continued() -> None:
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hel"}]
    assert tmpl("phi3").render(msgs) == "<|user|>\nHi<|end|>\n<|assistant|>\nHel"


def test_legacy_generate_with_system() -> None:
    got = render_generate(tmpl("phi3"), "2+2?", system="Math only.")
    assert got == "<|system|>\nMath only.<|end|>\n<|user|>\n2+2?<|end|>\n<|assistant|>\n"


# --------------------------------------------------------------------------- qwen 2.5 ----------


def test_qwen25_tools_call_and_response() -> None:
    got = tmpl("qwen2.5").render([BASIC[0], *TOOL_CONV], tools=TOOLS)
    assert got == (
        "<|im_start|>system\nYou are terse.\n\n# Tools\n\n"
        "You may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        '{"type": "function", "function": ' + FUNCTION_JSON + "}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        "<|im_start|>assistant\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city":"Paris"}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\n22C\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_qwen25_basic_without_tools() -> None:
    assert tmpl("qwen2.5").render(BASIC) == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nWhy is the sky blue?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_qwen25_tags() -> None:
    assert tool_call_tag(tmpl("qwen2.5")) == "<tool_call>"
    assert uses_tools(tmpl("qwen2.5"))


# --------------------------------------------------------------------------- mistral -----------


def test_mistral_tools_only_before_last_user_message() -> None:
    msgs = [BASIC[0], *TOOL_CONV, {"role": "assistant", "content": "It is 22C."},
            {"role": "user", "content": "Thanks!"}]
    assert tmpl("mistral").render(msgs, tools=TOOLS) == (
        "[INST] Weather in Paris?[/INST]"
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city":"Paris"}}]</s>'
        '[TOOL_RESULTS] {"content": 22C} [/TOOL_RESULTS]'
        " It is 22C.</s>"
        "[AVAILABLE_TOOLS] [" + TOOL_JSON + "][/AVAILABLE_TOOLS]"
        "[INST] You are terse.\n\nThanks![/INST] "
    )


def test_mistral_basic_and_tag() -> None:
    t = tmpl("mistral")
    assert t.render(BASIC) == (
        "[INST] Hi[/INST] Hello!</s>[INST] You are terse.\n\nWhy is the sky blue?[/INST] "
    )
    assert t.tool_call_tag == "[TOOL_CALLS] ["


# --------------------------------------------------------------------------- gemma 3 -----------


def test_gemma3_system_as_user_turn() -> None:
    assert tmpl("gemma3").render(BASIC) == (
        "<start_of_turn>user\nYou are terse.<end_of_turn>\n"
        "<start_of_turn>user\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nWhy is the sky blue?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_gemma3_has_no_tools() -> None:
    assert not uses_tools(tmpl("gemma3"))


# --------------------------------------------------------------------------- chatml family ------


def test_chatml_basic() -> None:
    assert tmpl("chatml").render(BASIC) == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nWhy is the sky blue?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_chatml_merges_consecutive_roles_but_not_tools() -> None:
    msgs = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
            {"role": "tool", "content": "t1"}, {"role": "tool", "content": "t2"}]
    assert tmpl("chatml").render(msgs) == (
        "<|im_start|>user\na\n\nb<|im_end|>\n"
        "<|im_start|>tool\nt1<|im_end|>\n<|im_start|>tool\nt2<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_model_system_prompt_prepended_unless_request_has_one() -> None:
    user = [{"role": "user", "content": "Hi"}]
    assert render_messages(tmpl("chatml"), user, system="Be kind.") == (
        "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert render_messages(tmpl("chatml"), BASIC, system="Be kind.").startswith(
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\n")


def test_smollm2_default_system_only_without_one() -> None:
    t = tmpl("smollm2")
    assert t.render([{"role": "user", "content": "Hi"}]) == (
        "<|im_start|>system\n"
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert t.render(BASIC[:2]) == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_zephyr_basic() -> None:
    assert tmpl("zephyr").render(BASIC) == (
        "<|system|>\nYou are terse.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n"
        "<|user|>\nWhy is the sky blue?</s>\n<|assistant|>\n"
    )


def test_granite_basic() -> None:
    assert tmpl("granite").render(BASIC) == (
        "System:\nYou are terse.\n\nQuestion:\nHi\n\nAnswer:\nHello!\n\n"
        "Question:\nWhy is the sky blue?\n\nAnswer:\n"
    )


# --------------------------------------------------------------------------- deepseek r1 -------


def test_deepseek_r1_think_unset() -> None:
    assert tmpl("deepseek-r1").render(BASIC) == (
        "You are terse.<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜>"
        "<｜User｜>Why is the sky blue?<｜Assistant｜>"
    )


def test_deepseek_r1_think_false_closes_empty_think_block() -> None:
    assert tmpl("deepseek-r1").render(BASIC, think=False) == (
        "You are terse.<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜>"
        "<｜User｜>Why is the sky blue?<｜Assistant｜><think>\n\n</think>\n\n"
    )


def test_deepseek_r1_prefilled_thinking() -> None:
    msgs = [{"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hel", "thinking": "greet"}]
    assert tmpl("deepseek-r1").render(msgs, think=True) == (
        "<｜User｜>Hi<｜Assistant｜><think>\ngreet\n</think>Hel"
    )


def test_deepseek_r1_think_tags() -> None:
    assert think_tags(tmpl("deepseek-r1")) == ("<think>", "</think>")


# --------------------------------------------------------------------------- command-r ---------


def test_command_r_basic() -> None:
    assert tmpl("command-r").render(BASIC) == (
        "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>You are terse.<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hi<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>Hello!<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Why is the sky blue?<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"
    )


def test_command_r_tools_ranges_properties_and_calls() -> None:
    assert tmpl("command-r").render(TOOL_CONV, tools=TOOLS) == (
        "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>## Available Tools\n"
        "Here is a list of tools that you have available to you:\n\n"
        "```python\ndef get_weather(city: string, ) -> List[Dict]:\n"
        "    '''Get the weather'''\n    pass\n```<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Weather in Paris?<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>\nAction: ```json\n[\n    {\n"
        '        "tool_name": "get_weather",\n        "parameters": {"city":"Paris"}\n    }\n'
        "]```<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|><results>\nconsole_output: 22C\n</results>"
        "<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"
    )
    assert tool_call_tag(tmpl("command-r")) == "Action: ```json\n["


# --------------------------------------------------------------------------- fill in the middle -


def test_fill_in_the_middle() -> None:
    t = tmpl("qwen2.5-coder")
    assert uses_suffix(t)
    assert render_generate(t, "def add(a, b):\n", suffix="\n    return c") == (
        "<|fim_prefix|>def add(a, b):\n<|fim_suffix|>\n    return c<|fim_middle|>"
    )
    assert render_generate(t, "hello") == (
        "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    )


# --------------------------------------------------------------------------- misc --------------


def test_current_date_uses_injected_clock() -> None:
    t = OllamaTemplate.parse("Today Date: {{ currentDate }} (was {{ yesterdayDate }})"
                             "{{ range .Messages }} {{ .Content }}{{ end }}")
    got = t.render([{"role": "user", "content": "hi"}], today=lambda: dt.date(2024, 3, 1))
    assert got == "Today Date: 2024-03-01 (was 2024-02-29) hi"


@pytest.mark.parametrize("family", sorted(p.stem for p in DATA.glob("*.gotmpl")))
def test_every_family_renders_single_user_message(family: str) -> None:
    out = tmpl(family).render([{"role": "user", "content": "Hello, how are you?"}])
    assert "Hello, how are you?" in out
