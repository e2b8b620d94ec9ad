# llm_tests/test_latency.py
'''
这个测试用例用于验证 LLM 的响应延迟与阻塞行为，具体包括：
- LLM 的响应延迟是否在可接受范围内；
- LLM 是否会阻塞调用链路。
'''
import time

def test_llm_response_latency(ollama_client):
    start = time.time()

    ollama_client("请简要说明 TCP 和 UDP 的区别。")

    elapsed = time.time() - start

    # 不设过严阈值，只验证“不是瞬时返回”
    assert elapsed > 0.5
