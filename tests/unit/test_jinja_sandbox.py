"""GGUF chat templates are untrusted input: they render in a sandbox, bounded."""

from __future__ import annotations

import pytest

from pollama.templates.jinja import TemplateError, render_jinja
from tests.factories import CHATML

MSGS = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]


def test_renders_hf_conventions() -> None:
    out = render_jinja(CHATML, MSGS)
    assert out == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    tmpl = "{{ bos_token }}{% for m in messages %}{{ m.content | tojson }}{% endfor %}{% if tools %}T{% endif %}"
    assert render_jinja(tmpl, MSGS, bos_token="<s>", tools=[{"type": "function"}]) == '<s>"S""U"T'


@pytest.mark.parametrize("hostile", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ messages.__class__.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{% set x = messages.append(1) %}",
    "{{ raise_exception('nope') }}",
    "{% for i in range(100000000) %}{% endfor %}",
])
def test_hostile_templates_fail_cleanly(hostile: str) -> None:
    with pytest.raises(TemplateError):
        render_jinja(hostile, MSGS)
    assert len(MSGS) == 2  # nothing mutated the caller's data


def test_output_is_bounded() -> None:
    bomb = "{% for i in range(99999) %}{{ 'x' * 99999 }}{% endfor %}"
    with pytest.raises(TemplateError, match="exceeds 16 MiB"):
        render_jinja(bomb, MSGS)


def test_syntax_errors_name_the_line() -> None:
    with pytest.raises(TemplateError, match=r"line 2"):
        render_jinja("ok\n{% if %}", MSGS)
