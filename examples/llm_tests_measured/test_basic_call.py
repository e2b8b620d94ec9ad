"""Conclusion 1, measured: the call works, as a rate with an interval (not one lucky call)."""

from pollama.testing.measure import sample_rate


def test_llm_answers_completely(llm):
    def one_call() -> bool:
        r = llm.generate("请用一句话解释什么是操作系统。", num_predict=48)
        return bool(r.text.strip()) and r.final.get("done") is True

    # Sequential: stops as soon as the Wilson interval is wholly above 80% (or below it).
    m = sample_rate(one_call, at_least=0.8, min_n=10, max_n=40, name="complete non-empty answers")
    print(m.describe())
    llm.check(m)
