# llm_tests/test_ambiguous_prompt.py
'''
这个测试用例用于验证 LLM 在面对模糊指令时的行为，具体包括：
- LLM 是否会主动进行推断与补全；
- LLM 是否会给出完整的叙述。
'''

def test_llm_over_inference_on_ambiguous_prompt(ollama_client):
    prompt = "请判断这个方案是否合理。"

    result = ollama_client(prompt)
    response_text = result["response"]

    # 不判断“对错”，只确认模型会生成完整叙述
    assert len(response_text) > 50
