"""Sampling: log-probabilities equal a forward pass, seeds decide the samples, stop strings cut,
greedy is the argmax, and the table feeds pass@k, maj@k and best@k directly."""

import pytest

torch = pytest.importorskip("torch", reason="the torch extra, which make test installs")
pytest.importorskip("transformers", reason="the hf extra, which make test installs")

from ontheline.research.lm import (  # noqa: E402
    CharTokenizer,
    Completion,
    Example,
    arithmetic,
    completion_logprobs,
    sample,
    samples_table,
    tiny_gpt,
    train,
)
from ontheline.research.passk import best_at_k, group_samples, maj_at_k, pass_at_k  # noqa: E402

TOK = CharTokenizer()
PROMPTS = ["7*8+12-5=\n", "1=\n", "33+4=\n"]  # different lengths: left padding matters


@pytest.fixture(scope="module")
def model():
    m = tiny_gpt(TOK.vocab_size, n_layer=2, n_embd=32, n_positions=64, seed=0)
    train(m, arithmetic(200, seed=0), steps=30, lr=3e-3, warmup=3, batch_size=16)
    return m


@pytest.fixture(scope="module")
def parrot():
    """A model that has memorised one completion with a blank line in it."""
    m = tiny_gpt(TOK.vocab_size, n_layer=1, n_embd=32, n_positions=32, seed=0)
    train(m, [Example("ab=\n", "12\n\n34", "12")] * 8, steps=60, lr=1e-2, batch_size=8, schedule="constant")
    return m


def _forward_logprobs(model, prompt, tokens):
    """log p(token | prefix) of each completion token, from one unpadded forward pass."""
    ids = torch.tensor([[TOK.bos_id, *TOK.encode(prompt), *tokens]])
    with torch.no_grad():
        logp = model(input_ids=ids).logits[0].log_softmax(-1)
    start = 1 + len(TOK.encode(prompt))
    return logp[start - 1 : -1].gather(-1, ids[0, start:, None])[:, 0]


def test_sampled_log_probabilities_equal_a_forward_pass_at_every_sampled_token(model):
    out = sample(model, PROMPTS, n=4, temperature=0.8, top_k=20, top_p=0.95, max_new_tokens=24, seed=3)
    assert [len(cs) for cs in out] == [4, 4, 4]
    for prompt, completions in zip(PROMPTS, out):
        for c in completions:
            assert len(c.token_ids) == len(c.logprobs) >= 1
            expected = _forward_logprobs(model, prompt, c.token_ids)
            torch.testing.assert_close(torch.tensor(c.logprobs), expected, rtol=0, atol=2e-5)
    flat = [c for cs in out for c in cs]
    batched, mask = completion_logprobs(model, [p for p in PROMPTS for _ in range(4)], flat)
    assert batched.requires_grad  # the policy's log-probabilities, for GRPO
    for i, c in enumerate(flat):
        assert mask[i].sum() == len(c.token_ids)
        torch.testing.assert_close(batched[i, : len(c.logprobs)].detach(), torch.tensor(c.logprobs), rtol=0, atol=2e-5)


def test_the_seed_decides_the_samples(model):
    a = sample(model, PROMPTS, n=3, max_new_tokens=16, seed=0)
    assert a == sample(model, PROMPTS, n=3, max_new_tokens=16, seed=0)
    assert a != sample(model, PROMPTS, n=3, max_new_tokens=16, seed=1)
    before = torch.get_rng_state()
    sample(model, PROMPTS[:1], max_new_tokens=4, seed=5)
    assert torch.equal(torch.get_rng_state(), before)


def test_greedy_decoding_takes_the_most_likely_token_every_time(model):
    [[first, second]] = sample(model, PROMPTS[:1], n=2, greedy=True, max_new_tokens=20)
    assert first == second
    ids = torch.tensor([[TOK.bos_id, *TOK.encode(PROMPTS[0]), *first.token_ids]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    start = 1 + len(TOK.encode(PROMPTS[0]))
    assert logits[start - 1 : -1].argmax(-1).tolist() == list(first.token_ids)
    assert sample(model, PROMPTS[:1], temperature=0, max_new_tokens=20) == [[first]]
    assert sample(model, PROMPTS[:1], top_k=1, max_new_tokens=20, seed=4)[0][0].token_ids == first.token_ids


def test_a_completion_stops_at_the_stop_string_or_at_eos(parrot):
    [[cut]] = sample(parrot, ["ab=\n"], greedy=True, max_new_tokens=10)
    assert (cut.text, cut.stop, cut.answer) == ("12", "\n\n", None)
    assert TOK.decode(cut.token_ids) == "12\n\n"  # the stop's tokens were sampled, so they are kept
    [[whole]] = sample(parrot, ["ab=\n"], greedy=True, max_new_tokens=10, stop=())
    assert (whole.text, whole.stop) == ("12\n\n34", "eos") and whole.token_ids[-1] == TOK.eos_id
    [[early]] = sample(parrot, ["ab=\n"], greedy=True, max_new_tokens=10, stop=("2\n", "1"))
    assert (early.text, early.stop, len(early.token_ids)) == ("", "1", 1)
    [[short]] = sample(parrot, ["ab=\n"], greedy=True, max_new_tokens=3, stop=())
    assert (short.text, short.stop) == ("12\n", None)


def test_the_samples_table_feeds_pass_at_k_maj_at_k_and_best_at_k(model):
    problems = arithmetic(4, seed=7)
    out = sample(model, problems, n=6, max_new_tokens=40, seed=0)
    rows = samples_table(problems, out)
    assert len(rows) == 24 and {"problem", "sample", "answer", "correct", "score"} <= set(rows[0])
    for row in rows:
        c = out[row["problem"]][row["sample"]]
        assert row["answer"] == c.answer
        assert row["correct"] == (c.answer == problems[row["problem"]].answer)
    s = group_samples(rows)
    assert s.n.tolist() == [6] * 4 and s.c.tolist() == [
        sum(r["correct"] for r in rows if r["problem"] == p) for p in range(4)
    ]
    assert (
        pass_at_k(s.n, s.c, 4).shape
        == maj_at_k(s.answers, s.correct, 4).shape
        == best_at_k(s.scores, s.correct, 4).shape
    )


def test_hand_written_completions_are_scored_against_the_reference():
    problems = [Example("2+3=\n", "2+3=5\nANS 5", "5"), "7*8=\n"]
    done = [[Completion("ANS 5", (1,), (-0.1,), "5", "eos")], [Completion("7*8=54", (1,), (-2.0,), None, None)]]
    rows = samples_table(problems, done, answers=["5", "56"])
    assert [(r["problem"], r["correct"]) for r in rows] == [(0, True), (1, False)]
    with pytest.raises(ValueError, match="Pass Examples"):
        samples_table(problems, done)
