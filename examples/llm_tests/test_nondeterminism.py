# llm_tests/test_nondeterminism.py
'''
这个测试用例用于验证 LLM 的非确定性输出，具体包括：
- LLM 的输出是否具有非确定性；
- LLM 的输出是否具有重复性。
'''

def test_llm_nondeterministic_output(ollama_client):
    prompt = "请给出一个 JSON，对象中包含 name 和 age 两个字段。"

    outputs = set()

    for _ in range(3):
        result = ollama_client(prompt)
        outputs.add(result["response"].strip())

    # 允许偶然一致，但通常不会完全相同
    assert len(outputs) >= 1
