"""Confidence trajectories, their scores and progressive confidence shaping (others.md 2.5)."""

import numpy as np
import pytest

from ontheline.research.confidence import (
    classify,
    cot_span,
    overconfidence,
    pcs_advantages,
    pcs_penalty,
    pcs_weights,
    progressiveness,
)

RISING = [0, 0, 0, 0.2, 0.6, 1.0]
EARLY = [1, 1, 1, 1, 1, 0.8]


def _spearman_by_enumeration(c):
    """The slow reference: average ranks by counting, then Pearson's r of ranks and positions."""
    c = list(c)
    ranks = [sum(v < x for v in c) + (sum(v == x for v in c) + 1) / 2 for x in c]
    pos = list(range(1, len(c) + 1))
    mr, mp = np.mean(ranks), np.mean(pos)
    num = sum((r - mr) * (p - mp) for r, p in zip(ranks, pos))
    den = np.sqrt(sum((r - mr) ** 2 for r in ranks) * sum((p - mp) ** 2 for p in pos))
    return num / den if den > 0 else float("nan")


def test_a_constant_trajectory_has_no_spearman_is_premature_and_costs_nothing():
    for value in (0.0, 0.3, 1.0):
        c = [value] * 6
        assert np.isnan(progressiveness(c))
        assert classify(c) == "premature"
        assert overconfidence(c) == 0.0 and pcs_penalty(c, eta=1.0) == 0.0


def test_known_trajectories_get_the_expected_scores():
    assert progressiveness(RISING) > 0.9 and classify(RISING) == "progressive" and overconfidence(RISING) < 0
    assert progressiveness(EARLY) < 0 and classify(EARLY) == "premature" and overconfidence(EARLY) > 0
    assert overconfidence(RISING) == pytest.approx(-0.7) and overconfidence(EARLY) == pytest.approx(0.1)


def test_the_penalty_weights_are_the_papers_and_sum_to_zero():
    np.testing.assert_allclose(pcs_weights(6), [0.5, 0.3, 0.1, -0.1, -0.3, -0.5], atol=1e-15)
    for k in range(2, 13):
        w = pcs_weights(k)
        assert np.all(w + w[::-1] == 0.0) and w[0] == 0.5 and w[-1] == -0.5  # exactly antisymmetric
        assert abs(w.sum()) < 1e-15
    rng = np.random.default_rng(0)
    c = rng.random((20, 6))
    np.testing.assert_allclose(overconfidence(c), c @ np.linspace(0.5, -0.5, 6), atol=1e-12)
    np.testing.assert_allclose(overconfidence(c + 0.25), overconfidence(c), atol=1e-12)  # shift-invariant


def test_progressiveness_matches_a_slow_reference_with_ties():
    rng = np.random.default_rng(1)
    rows = [rng.integers(0, 4, size=7) / 4 for _ in range(30)] + [np.array(RISING), np.array(EARLY)]
    got = progressiveness(np.array(rows[:30]))
    for value, row in zip(got, rows[:30]):
        ref = _spearman_by_enumeration(row)
        assert (np.isnan(value) and np.isnan(ref)) or value == pytest.approx(ref)
    assert progressiveness(RISING) == pytest.approx(_spearman_by_enumeration(RISING))


def test_resolution_ties_the_drift_of_a_nearly_flat_trajectory():
    drift = [0.97, 0.98, 0.99, 0.995, 0.999, 1.0]
    assert classify(drift) == "progressive" and classify(drift, resolution=0.1) == "premature"
    assert classify(RISING, resolution=0.1) == "progressive"
    with pytest.raises(ValueError, match="resolution must be positive"):
        progressiveness(drift, resolution=0.0)


def test_bad_trajectories_and_thresholds_are_refused():
    with pytest.raises(ValueError, match="at least 2 points"):
        overconfidence([0.5])
    with pytest.raises(ValueError, match="finite"):
        progressiveness([0.1, float("nan"), 0.3])
    with pytest.raises(ValueError, match="tau must be in"):
        classify(RISING, tau=2.0)
    with pytest.raises(ValueError, match="eta must be >= 0"):
        pcs_penalty(RISING, eta=-1.0)


def test_the_cot_is_found_in_the_fallback_order():
    assert cot_span("<think>a b</think> then <answer>3</answer>") == (7, 10)  # the tags
    assert cot_span("<think>a b <answer>3</answer>") == (7, 11)  # no closing tag: up to <answer>
    assert cot_span("a b <answer>3</answer>") == (0, 4)
    text = "1 2 3\nANS 3"
    assert cot_span(text) == (0, 5)  # no tags: up to the answer line
    assert cot_span("GUESS 4\nANS 5\nANS 4") == (0, 13)  # the last answer line
    assert cot_span("no answer here") == (0, 14)  # the whole completion
    assert cot_span("ANSWER 4") == (0, 8)  # the marker is a whole word


def test_group_advantages_with_the_penalty_have_mean_zero_and_eta_zero_is_plain_grpo():
    from ontheline.research.lm import group_advantages

    rng = np.random.default_rng(2)
    rewards = rng.integers(0, 2, size=(5, 8)).astype(float)
    c = rng.random((5, 8, 6))
    shaped = pcs_advantages(rewards, c, eta=1.0)
    np.testing.assert_allclose(shaped.mean(axis=1), 0.0, atol=1e-12)
    assert np.array_equal(pcs_advantages(rewards, c, eta=0.0), group_advantages(rewards))
    assert np.array_equal(pcs_advantages(rewards, c, eta=0.0, mode="advantage"), group_advantages(rewards))
    after = pcs_advantages(rewards, c, eta=1.0, mode="advantage")
    np.testing.assert_allclose(after, group_advantages(rewards) - overconfidence(c.reshape(-1, 6)).reshape(5, 8))
    # between two right answers, the progressive one gets the larger advantage
    pair = pcs_advantages([[1.0, 1.0, 0.0]], [[EARLY, RISING, [0] * 6]], eta=1.0)
    assert pair[0, 1] > pair[0, 0]
    with pytest.raises(ValueError, match="mode must be one of"):
        pcs_advantages(rewards, c, mode="token")
    with pytest.raises(ValueError, match="confidence must have shape"):
        pcs_advantages(rewards, c[:, :, 0])


@pytest.fixture
def lab():
    torch = pytest.importorskip("torch", reason="the torch extra, which make test installs")
    pytest.importorskip("transformers", reason="the hf extra, which make test installs")
    from ontheline.research.lm import CharTokenizer, digit_sums, tiny_gpt, train

    torch.manual_seed(0)
    model = tiny_gpt(CharTokenizer().vocab_size, n_layer=1, n_embd=32)
    train(model, digit_sums(128, seed=0, digits=4, trace=0.5, shortcut=True), steps=20, batch_size=16, lr=3e-3)
    return model


def test_the_exact_probe_is_the_probability_of_the_answer_token_at_each_cut(lab):
    import torch

    from ontheline.research.confidence import confidence_trajectory
    from ontheline.research.lm import CharTokenizer, Example

    tok = CharTokenizer()
    ex = Example("3 1 4 1 =\n", "3 4 8 9\nANS 9", "9")
    t = confidence_trajectory(lab, tok, ex, ex.completion, points=5)
    assert t.positions == (0, 2, 4, 5, 7) and t.reference == "9"
    contexts = ["3 1 4 1 =\nANS ", "3 1 4 1 =\n3 \nANS ", "3 1 4 1 =\n3 4 \nANS ", "3 1 4 1 =\n3 4 8\nANS ",
                "3 1 4 1 =\n3 4 8 9\nANS "]  # fmt: skip
    with torch.no_grad():
        for k, context in enumerate(contexts):
            ids = torch.tensor([[tok.bos_id, *tok.encode(context)]])
            p = lab(input_ids=ids).logits[0, -1].float().softmax(-1)[tok.encode("9")[0]].item()
            assert t.confidence[k] == pytest.approx(p, abs=1e-5)
    assert t.label == classify(t.confidence) and t.overconfidence == pytest.approx(overconfidence(t.confidence))
    gold = confidence_trajectory(lab, tok, ex, "GUESS 3\n. . . .\nANS 3", points=5, reference="9")
    assert gold.reference == "9"
    none = confidence_trajectory(lab, tok, ex, "no answer", points=3)
    assert none.reference is None and none.confidence.tolist() == [0.0, 0.0, 0.0]


def test_the_monte_carlo_probe_agrees_with_the_exact_one(lab):
    from ontheline.research.confidence import confidence_trajectory
    from ontheline.research.lm import Example

    ex = Example("3 1 4 1 =\n", "3 4 8 9\nANS 9", "9")
    exact = confidence_trajectory(lab, None, ex, ex.completion, points=4)
    mc = confidence_trajectory(lab, None, ex, ex.completion, points=4, method="mc", samples=400, seed=1)
    assert np.abs(mc.confidence - exact.confidence).max() < 0.1  # 400 samples: sd <= 0.025
    assert mc.confidence.tolist() == confidence_trajectory(lab, None, ex, ex.completion, points=4, method="mc",
                                                           samples=400, seed=1).confidence.tolist()  # fmt: skip
    with pytest.raises(ValueError, match="method must be one of"):
        confidence_trajectory(lab, None, ex, ex.completion, method="beam")


def test_eta_zero_reproduces_plain_grpo_bit_for_bit_and_eta_one_does_not(lab):
    import copy

    import torch

    from ontheline.research.confidence import pcs_reward
    from ontheline.research.lm import answer_reward, digit_sums, grpo

    problems = digit_sums(16, seed=3, digits=4)
    kw = dict(group_size=4, prompts_per_step=4, steps=3, max_new_tokens=24, lr=1e-3, seed=5)
    plain, zero, shaped = copy.deepcopy(lab), copy.deepcopy(lab), copy.deepcopy(lab)
    a = grpo(plain, problems, answer_reward, **kw)
    b = grpo(zero, problems, pcs_reward(zero, eta=0.0), **kw)
    grpo(shaped, problems, pcs_reward(shaped, eta=1.0), **kw)
    assert a.rewards == b.rewards and a.losses == b.losses
    assert all(torch.equal(v, zero.state_dict()[k]) for k, v in plain.state_dict().items())
    assert any(not torch.equal(v, shaped.state_dict()[k]) for k, v in plain.state_dict().items())


def test_the_shaped_reward_is_the_outcome_minus_eta_times_the_gold_overconfidence(lab):
    from ontheline.research.confidence import confidence_trajectory, pcs_reward
    from ontheline.research.lm import Completion, Example

    ex = Example("3 1 4 1 =\n", "3 4 8 9\nANS 9", "9")
    done = Completion("GUESS 1\n. . . .\nANS 9", (), (), "9", "eos")
    o = confidence_trajectory(lab, None, ex, done, points=6, reference="9").overconfidence
    assert pcs_reward(lab, eta=0.5)(ex, done) == pytest.approx(1.0 - 0.5 * o)
    assert pcs_reward(lab, eta=0.0)(ex, done) == 1.0


def test_the_probe_works_on_any_local_hugging_face_causal_lm(tmp_path):
    torch = pytest.importorskip("torch", reason="the torch extra, which make test installs")
    transformers = pytest.importorskip("transformers", reason="the hf extra, which make test installs")
    from ontheline.research.confidence import confidence_trajectories, confidence_trajectory
    from ontheline.research.lm import CharTokenizer, Example, load

    tok = CharTokenizer()
    config = transformers.LlamaConfig(
        vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=tok.pad_id, bos_token_id=tok.bos_id,
        eos_token_id=tok.eos_id,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path / "llama")
    model = load(tmp_path / "llama")
    assert type(model).__name__ == "LlamaForCausalLM"
    ex = Example("2 5 =\n", "2 7\nANS 7", "7")
    t = confidence_trajectory(model, tok, ex, ex.completion, points=4)
    assert t.confidence.shape == (4,) and np.all((t.confidence > 0) & (t.confidence < 1))
    with torch.no_grad():
        ids = torch.tensor([[tok.bos_id, *tok.encode("2 5 =\n2 7\nANS ")]])
        last = model(input_ids=ids).logits[0, -1].float().softmax(-1)[tok.encode("7")[0]].item()
    assert t.confidence[-1] == pytest.approx(last, abs=1e-5)
    # batched, with left padding across prompts of different lengths: the same numbers
    other = Example("9 9 9 9 =\n", "9 8 7 6\nANS 6", "6")
    c, _, _ = confidence_trajectories(model, [ex, other], [ex.completion, other.completion], tokenizer=tok, points=4)
    np.testing.assert_allclose(c[0], t.confidence, atol=1e-5)
    mc = confidence_trajectory(model, tok, ex, ex.completion, points=4, method="mc", samples=8)
    assert np.all((mc.confidence >= 0) & (mc.confidence <= 1))
