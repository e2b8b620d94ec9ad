"""The toolkit's measurements against a scripted Ollama-compatible server (fast, no model)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from pollama.chaos import BackgroundServer
from pollama.guard import is_transient
from pollama.testing.cassette import Cassette, CassetteError, CassetteMiss, RecordingTransport, ReplayTransport
from pollama.testing.client import LLM, LLMHTTPError, LiveTransport
from pollama.testing.measure import (
    MeasurementFailed,
    MeasurementInconclusive,
    check,
    clarification_probe,
    classify_reply,
    cohen_kappa,
    determinism_profile,
    latency_profile,
    sample_rate,
    structured_output_profile,
)
from pollama.testing.stats import Verdict
from tests.fake_ollama import FakeOllama


@pytest.fixture
def fake() -> FakeOllama:
    return FakeOllama()


@pytest.fixture
def server(fake: FakeOllama) -> Iterator[BackgroundServer]:
    with BackgroundServer(fake.app()) as s:
        yield s


@pytest.fixture
def llm(server: BackgroundServer) -> Iterator[LLM]:
    with LLM(server.url, "fake:1") as c:
        yield c


# --------------------------------------------------------------------------- client


def test_stream_result_has_pieces_ttft_and_server_timings(llm: LLM, fake: FakeOllama) -> None:
    fake.token_delay = 0.01
    r = llm.stream("hello", seed=1, temperature=0, num_predict=5)
    assert r.text == " ".join(r.text.split(" ")) and len(r.pieces) == 6  # 5 words + final empty chunk
    t = r.timings
    assert t.ttft is not None and 0.01 <= t.ttft < t.wall
    assert t.eval_count == 5 and t.gen_rate is not None and t.gen_rate > 0
    assert t.total is not None and t.overhead is not None and t.overhead >= -0.001
    assert fake.requests[-1]["options"] == {"seed": 1, "temperature": 0, "num_predict": 5}
    assert r.token_index(0) == 0 and r.token_index(len(r.pieces[0])) == 1


def test_non_streaming_has_no_ttft_and_chat_text(llm: LLM) -> None:
    r = llm.generate("hi", num_predict=3)
    assert r.timings.ttft is None and len(r.text.split()) == 3
    c = llm.chat("Is this plan reasonable?")
    assert "reasonable" in c.text and c.prompt == "Is this plan reasonable?"


def test_error_status_is_an_llm_http_error_classified_by_the_guard(llm: LLM, fake: FakeOllama) -> None:
    fake.fail_status = 503
    with pytest.raises(LLMHTTPError) as e:
        llm.generate("x")
    assert e.value.status_code == 503 and "injected" in str(e.value) and is_transient(e.value)
    fake.fail_status = 404
    with pytest.raises(LLMHTTPError) as e:
        llm.generate("x")
    assert not is_transient(e.value)


def test_unreachable_server_raises_transport_error() -> None:
    import httpx

    with LLM("http://127.0.0.1:9", "m", timeout=2) as llm, pytest.raises(httpx.TransportError):
        llm.generate("x")


# --------------------------------------------------------------------------- latency


def test_latency_profile_separates_cold_start_and_reports_percentiles(llm: LLM, fake: FakeOllama) -> None:
    fake.token_delay = 0.002
    p = latency_profile(llm, 8, num_predict=4)
    assert p.cold is not None and p.cold.timings.load == pytest.approx(0.05, abs=0.01)
    assert all((r.timings.load or 0) < 0.01 for r in p.warm) and len(p.warm) == 8
    s = p.summary()
    est, lo, hi = s["ttft"]["p50"]
    assert lo <= est <= hi and s["ttft"]["n"] == 8 and s["gen_rate"]["unit"] == "tok/s"
    assert p.measure("ttft", 50, at_most=5.0).verdict is Verdict.PASS
    m = p.measure("ttft", 50, at_most=1e-6)
    assert m.verdict is Verdict.FAIL and "to loosen, raise `at_most=`" in m.describe()
    tail = p.measure("ttft", 95, at_most=5.0)  # 8 samples cannot bound a p95
    assert tail.verdict is Verdict.INCONCLUSIVE and "at least 72 samples" in tail.describe()
    with pytest.raises(ValueError, match="unknown latency metric"):
        p.samples("speed")
    with pytest.raises(ValueError, match="exactly one"):
        p.measure("ttft", 50)


# --------------------------------------------------------------------------- determinism


def test_determinism_clean_server(llm: LLM) -> None:
    p = determinism_profile(llm, 4, num_predict=6)
    c = p.conditions
    assert c["seed_t0"].distinct == 1 and c["seed_t0"].agreement == 1.0 and c["seed_t0"].divergence() is None
    assert c["seed_t"].distinct == 1 and c["no_seed"].distinct > 1 and c["concurrent"].distinct == 1
    assert p.seed_honoured is True
    d = c["no_seed"].divergence()
    assert d is not None and d["token"] is not None and "|" in d["excerpt"]
    assert c["seed_t0"].measure_agreement().verdict is Verdict.PASS
    assert any("seed honoured" in line for line in p.diagnosis())


def test_determinism_attributes_an_ignored_seed(llm: LLM, fake: FakeOllama) -> None:
    fake.seed_ignored = True
    p = determinism_profile(llm, 4, num_predict=6, settings=("seed_t0", "seed_t", "no_seed"))
    assert p.seed_honoured is False
    assert any(line.startswith("seed NOT honoured") for line in p.diagnosis())


def test_determinism_attributes_batch_variance(llm: LLM, fake: FakeOllama) -> None:
    fake.batch_variance = True
    p = determinism_profile(llm, 4, num_predict=6, settings=("seed_t0", "concurrent"))
    assert p.conditions["seed_t0"].distinct == 1 and p.conditions["concurrent"].distinct > 1
    assert any("batch-dependent variation" in line for line in p.diagnosis())
    assert p.conditions["concurrent"].measure_agreement().verdict is Verdict.FAIL


def test_determinism_attributes_a_first_call_cache_effect(llm: LLM, fake: FakeOllama) -> None:
    fake.first_call_differs = True
    p = determinism_profile(llm, 4, num_predict=6, settings=("seed_t0",))
    assert any("only the first call differs" in line for line in p.diagnosis())


def test_determinism_rejects_bad_arguments(llm: LLM) -> None:
    with pytest.raises(ValueError, match="unknown determinism settings"):
        determinism_profile(llm, 3, settings=("warm",))
    with pytest.raises(ValueError, match="n must be >= 2"):
        determinism_profile(llm, 1)


# --------------------------------------------------------------------------- structured output


def test_structured_output_three_modes(llm: LLM) -> None:
    p = structured_output_profile(llm, 5, prompt="Give me JSON with name and age.")
    m = p.modes
    assert (m["prompt"].valid, m["format"].valid, m["retry"].valid) == (0, 5, 5)
    assert m["retry"].reasks == 5 and "not valid JSON" in m["prompt"].errors[0]
    assert m["format"].measure(0.5).verdict is Verdict.PASS
    assert m["prompt"].measure(0.5).verdict is Verdict.FAIL
    d = p.as_dict()["modes"]["format"]
    assert 0.5 < d["interval"][0] < 0.6 and d["interval"][1] == 1.0


# --------------------------------------------------------------------------- clarification


LABELLED = [
    ("Could you share the plan you want me to review?", "asks"),
    ("What plan are you referring to? Please give me some details.", "asks"),
    ("I need more details about the task before I can answer.", "asks"),
    ("Which one do you mean, the first or the second?", "asks"),
    ("Can you be more specific about the bug?", "asks"),
    ("请提供更多关于该方案的信息，我才能判断。", "asks"),
    ("请问您指的是哪个方案？", "asks"),
    ("您能告诉我具体是什么方案吗？", "asks"),
    ("Assuming you mean the database migration, it looks reasonable.", "assumes"),
    ("Without more context, I'll say the plan seems fine in general.", "assumes"),
    ("It depends on your budget and timeline.", "assumes"),
    ("If you mean the marketing plan, then yes.", "assumes"),
    ("假设您说的是迁移方案，那么它是合理的。", "assumes"),
    ("由于没有提供具体内容，我只能给出一般性的建议。", "assumes"),
    ("这取决于您的预算。", "assumes"),
    ("This plan is very reasonable because it balances cost and speed.", "answers"),
    ("The bug is fixed by adding a null check on line 3.", "answers"),
    ("It will take about two weeks.", "answers"),
    ("这个方案非常合理，因为它考虑了成本和效率。", "answers"),
    ("这个价格大约是 30 元。", "answers"),
    ("Here is the improved version of your text: it is clearer now.", "answers"),
    ("The plan is unreasonable: passwords must never be shared.", "answers"),
]


def test_heuristic_agrees_with_hand_labels() -> None:
    got = [classify_reply(text) for text, _ in LABELLED]
    want = [label for _, label in LABELLED]
    wrong = [(t, g, w) for (t, w), g in zip(LABELLED, got) if g != w]
    assert len(wrong) <= 1, wrong
    assert cohen_kappa(got, want) >= 0.9


def test_over_inference_rates_move_with_the_persona(llm: LLM, fake: FakeOllama) -> None:
    guessing = clarification_probe(llm, 1)
    assert guessing.rate("answers") == (6, 6)
    m = guessing.measure("answers", at_most=0.5)
    assert m.verdict is Verdict.FAIL and "over" not in m.name and "answers as if context existed" in m.name
    fake.persona = "clarifying"
    clarifying = clarification_probe(llm, 1, judge=llm.with_model("judge:1"))
    assert clarifying.rate("asks") == (6, 6)
    assert clarifying.measure("asks", at_least=0.5).verdict is Verdict.PASS
    j = clarifying.judge_agreement()
    assert j is not None and j["model"] == "judge:1" and j["n"] == 12 and j["agreement"] == 1.0
    assert clarifying.length_ratio() == pytest.approx(1.0)


# --------------------------------------------------------------------------- verdicts


def test_check_fails_and_inconclusive_is_never_a_silent_pass(llm: LLM) -> None:
    p = latency_profile(llm, 6, num_predict=2, cold=False)
    with pytest.raises(MeasurementFailed, match="to loosen, raise `at_most=`"):
        check(p.measure("wall", 50, at_most=1e-9))
    inconclusive = p.measure("wall", 99, at_most=100.0)
    with pytest.raises(MeasurementInconclusive, match="collect more samples"):
        check(inconclusive)
    with pytest.warns(UserWarning, match="INCONCLUSIVE"):
        check(inconclusive, "warn")
    assert check(p.measure("wall", 50, at_most=100.0)).verdict is Verdict.PASS


def test_sequential_sampling_stops_early_and_reports_inconclusive() -> None:
    calls = []

    def always() -> bool:
        calls.append(1)
        return True

    m = sample_rate(always, at_least=0.5, max_n=60)
    assert m.verdict is Verdict.PASS and m.n == len(calls) < 60
    flaky = iter([True, False] * 50)
    m2 = sample_rate(lambda: next(flaky), at_least=0.5, max_n=12)
    assert m2.verdict is Verdict.INCONCLUSIVE and m2.n == 12 and "max_n=" in m2.describe()

    def broken() -> bool:
        raise LLMHTTPError(500, "boom")

    assert sample_rate(broken, at_least=0.5, min_n=5, max_n=10).verdict is Verdict.FAIL


# --------------------------------------------------------------------------- record / replay


def test_record_then_replay_reproduces_samples_and_timings(server: BackgroundServer, tmp_path, fake: FakeOllama) -> None:  # type: ignore[no-untyped-def]
    fake.token_delay = 0.003
    path = tmp_path / "c.jsonl"
    cas = Cassette(path, meta={"model": "fake:1"})
    live = LiveTransport(server.url)
    rec = LLM(server.url, "fake:1", transport=RecordingTransport(live, cas))
    recorded = [rec.stream("poem", temperature=1.0, num_predict=4) for _ in range(3)]
    rec.chat("Is this plan reasonable?")
    cas.save()
    live.close()
    assert len(Cassette.load(path)) == 4
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["pollama_cassette"] == 1 and len(lines) == 5

    replay = LLM("http://127.0.0.1:9", "fake:1", transport=ReplayTransport(Cassette.load(path)))
    again = [replay.stream("poem", temperature=1.0, num_predict=4) for _ in range(4)]
    assert [r.text for r in again[:3]] == [r.text for r in recorded] and again[3].text == recorded[0].text
    assert [r.timings.ttft for r in again[:3]] == [pytest.approx(r.timings.ttft, abs=1e-5) for r in recorded]
    assert again[0].timings.total == recorded[0].timings.total
    with pytest.raises(CassetteMiss, match=r"prompt=.poem.*num_predict\": 5"):
        replay.stream("poem", temperature=1.0, num_predict=5)


def test_replay_realtime_sleeps_the_recorded_duration(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.jsonl"
    body = {"model": "m", "stream": False, "prompt": "p"}
    path.write_text(json.dumps({"pollama_cassette": 1}) + "\n" + json.dumps({
        "key": __import__("pollama.testing.cassette", fromlist=["x"]).request_key("/api/generate", body),
        "path": "/api/generate", "request": body, "status": 200,
        "chunks": [{"response": "x", "done": True, "total_duration": 2_000_000_000}], "offsets": [2.0], "end": 2.0}) + "\n")
    slept: list[float] = []
    llm = LLM("replay://", "m", transport=ReplayTransport(Cassette.load(path), realtime=True, sleep=slept.append))
    r = llm.generate("p")
    assert slept == [2.0] and r.timings.wall == 2.0 and r.timings.total == 2.0


def test_bad_cassettes_are_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CassetteError, match="does not exist; record one first"):
        Cassette.load(tmp_path / "none.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"pollama_cassette": 1}\n{not json\n')
    with pytest.raises(CassetteError, match="bad.jsonl:2: not valid JSON"):
        Cassette.load(bad)
    bad.write_text('{"pollama_cassette": 1}\n{"x": 1}\n')
    with pytest.raises(CassetteError, match="not a cassette sample"):
        Cassette.load(bad)
    bad.write_text('{"pollama_cassette": 99}\n')
    with pytest.raises(CassetteError, match="version 99"):
        Cassette.load(bad)
