"""Conclusion 3, measured: where the variation comes from, and what constraining buys."""

from pollama.testing.measure import determinism_profile, structured_output_profile


def test_llm_determinism_profile(llm):
    p = determinism_profile(llm, 5, num_predict=24)
    for line in p.diagnosis():
        print("•", line)
    llm.check(p.conditions["seed_t0"].measure_agreement(1.0))  # seed + temperature 0: identical
    assert p.conditions["no_seed"].distinct > 1                 # no seed: outputs vary


def test_structured_output_needs_constraining(llm):
    # 12 per mode: even 12/12 valid has a 95% Wilson interval of [0.76, 1], so fewer samples
    # could not show a rate above 0.7 however reliable the constraint is.
    p = structured_output_profile(llm, 12, num_predict=64)    # the tutorial's JSON prompt
    for mode, r in p.modes.items():
        lo, hi = r.interval()
        print(f"{mode:>7}: {r.valid}/{r.n} valid [{lo:.0%}, {hi:.0%}], {r.reasks} re-asks")
    llm.check(p.modes["format"].measure(at_least=0.7))        # grammar-constrained: reliable
