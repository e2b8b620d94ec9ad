"""Conclusion 4, measured: how often the model over-infers on ambiguous prompts (including
「请判断这个方案是否合理。」), against the same requests with the context supplied."""

from pollama.testing.measure import clarification_probe


def test_llm_over_inference_rate(llm):
    p = clarification_probe(llm, 2, num_predict=64)
    for kind in ("ambiguous", "clear"):
        for label in ("asks", "assumes", "answers"):
            k, n = p.rate(label, kind)
            print(f"{kind:>9} {label:>7}: {k}/{n}")
    # The tutorial's observation, as a claim with an interval: a small model answers as if the
    # context existed in at least 40% of ambiguous requests.
    llm.check(p.measure("answers", at_least=0.4))
