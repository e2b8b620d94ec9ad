# llm_tests/test_basic_call.py
'''
这个测试用例用于验证 LLM 的基础连通性，具体包括：
- LLM 是否能够被稳定调用；
- 请求—响应链路是否完整；
- 返回结果是否符合预期的数据结构。
'''

def test_llm_basic_response(ollama_client):
    result = ollama_client("请用一句话解释什么是操作系统。")

    assert "response" in result
    assert isinstance(result["response"], str)
    assert len(result["response"].strip()) > 0
