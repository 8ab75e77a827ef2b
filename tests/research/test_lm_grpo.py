"""GRPO against hand-computed values: group advantages, the clipped loss and its gradient inside and
outside the clip, the k3 KL, the two averagings, and a few seeded steps that learn a trivial reward."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch extra, which make test installs")
pytest.importorskip("transformers", reason="the hf extra, which make test installs")

from ontheline.research.lm import (  # noqa: E402
    CharTokenizer,
    Completion,
    Example,
    answer_reward,
    clipped_loss,
    group_advantages,
    grpo,
    kl_k3,
    policy_loss,
    tiny_gpt,
)

TOK = CharTokenizer()
SEVEN = TOK.encode("7")[0]
PROMPTS = ["7*8+76+37=\n", "1+2=\n", "33-4*5=\n", "9*9=\n"]


def test_advantages_on_a_two_by_three_reward_table():
    rewards = [[1.0, 0.0, 0.0], [2.0, 4.0, 6.0]]
    # group 1: mean 1/3, sample std sqrt(((2/3)^2 + 2 (1/3)^2) / 2) = 1/sqrt(3); group 2: mean 4, std 2
    expected = [[2 / math.sqrt(3), -1 / math.sqrt(3), -1 / math.sqrt(3)], [-1.0, 0.0, 1.0]]
    np.testing.assert_allclose(group_advantages(rewards, eps=0.0), expected, rtol=1e-12)
    np.testing.assert_allclose(group_advantages(rewards), expected, rtol=1e-5)
    np.testing.assert_allclose(group_advantages(rewards, scale=False), [[2 / 3, -1 / 3, -1 / 3], [-2, 0, 2]])
    assert group_advantages([[1, 1, 1], [0, 0, 1]])[0].tolist() == [0.0, 0.0, 0.0]  # equal rewards teach nothing
    np.testing.assert_allclose(group_advantages(np.random.default_rng(0).random((5, 4))).mean(axis=1), 0, atol=1e-12)
    with pytest.raises(ValueError, match="group_size >= 2"):
        group_advantages([1.0, 2.0])


def _two_tokens(ratios, advantage, level="token"):
    """The loss and d loss / d logp of one 2-token completion whose ratios to the sampler are ``ratios``."""
    old = torch.log(torch.tensor([[0.4, 0.5]]))
    logp = (old + torch.log(torch.tensor([ratios]))).detach().requires_grad_()
    loss = clipped_loss(logp, old, torch.tensor([advantage]), torch.tensor([[True, True]]), clip=0.2, level=level)
    loss.backward()
    return loss.item(), logp.grad[0].tolist()


def test_the_clipped_loss_and_its_gradient_inside_the_clip():
    # -min(rho A, clip(rho) A) = -rho A inside [0.8, 1.2]; mean over 2 tokens; d/dlogp (-rho A / 2) = -rho A / 2
    loss, grad = _two_tokens([1.1, 0.9], 1.0)
    assert loss == pytest.approx(-(1.1 + 0.9) / 2)
    assert grad == pytest.approx([-0.55, -0.45])
    loss, grad = _two_tokens([1.1, 0.9], -2.0)
    assert loss == pytest.approx((1.1 * 2 + 0.9 * 2) / 2)
    assert grad == pytest.approx([1.1, 0.9])


def test_the_clipped_loss_and_its_gradient_outside_the_clip():
    # A > 0: rho = 1.5 is clipped to 1.2 (no gradient); rho = 0.5 is below 0.8, where min keeps rho A (gradient)
    loss, grad = _two_tokens([1.5, 0.5], 1.0)
    assert loss == pytest.approx(-(1.2 + 0.5) / 2)
    assert grad == pytest.approx([0.0, -0.25])
    # A < 0: the other way round; rho = 1.5 keeps its gradient, rho = 0.5 is clipped to 0.8
    loss, grad = _two_tokens([1.5, 0.5], -1.0)
    assert loss == pytest.approx((1.5 + 0.8) / 2)
    assert grad == pytest.approx([0.75, 0.0])


def test_token_and_sequence_averaging_weigh_completions_as_documented():
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[True, False, False], [True, True, True]])
    a = torch.tensor([2.0, -1.0])
    assert policy_loss(logp, logp, a, mask, level="token").item() == pytest.approx((-2 + 3 * 1) / 4)
    assert policy_loss(logp, logp, a, mask, level="sequence").item() == pytest.approx((-2 + 1) / 2)
    junk = torch.full((2, 3), 9.0)  # padding never counts
    assert policy_loss(torch.where(mask, logp, junk), logp, a, mask).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="level"):
        policy_loss(logp, logp, a, mask, level="batch")


def test_the_k3_kl_by_hand_and_zero_when_the_policy_is_the_reference():
    logp = torch.log(torch.tensor([[0.5, 0.25]])).requires_grad_()
    ref = torch.log(torch.tensor([[0.25, 0.5]]))
    kl = kl_k3(logp, ref)
    # exp(d) - d - 1, d = log(ref / policy): 0.5 + log 2 - 1 and 2 - log 2 - 1
    assert kl[0].tolist() == pytest.approx([0.5 + math.log(2) - 1, 1 - math.log(2)])
    same = kl_k3(logp, logp.detach())
    assert same.tolist() == [[0.0, 0.0]]
    same.sum().backward()
    assert logp.grad.tolist() == [[0.0, 0.0]]
    a, mask = torch.tensor([0.0]), torch.tensor([[True, True]])
    with_kl = policy_loss(logp, logp, a, mask, ref_logprobs=ref, beta=0.1)
    assert with_kl.item() == pytest.approx(0.1 * (0.5 + math.log(2) - 1 + 1 - math.log(2)) / 2)
    with pytest.raises(ValueError, match="ref_logprobs"):
        policy_loss(logp, logp, a, mask, beta=0.1)


def _p_seven(model):
    """The exact expected reward: the mean probability that the first sampled character is '7'."""
    with torch.no_grad():
        rows = [model(input_ids=torch.tensor([[TOK.bos_id, *TOK.encode(p)]])).logits[0, -1] for p in PROMPTS]
    return float(torch.stack(rows).softmax(-1)[:, SEVEN].mean())


def test_a_few_seeded_grpo_steps_learn_a_trivially_learnable_reward():
    def first_is_seven(prompt, completion):
        assert isinstance(completion, Completion) and len(completion.logprobs) == len(completion.token_ids) == 1
        return float(completion.text.startswith("7"))

    def run():
        model = tiny_gpt(TOK.vocab_size, n_layer=1, n_embd=32, n_positions=64, seed=0)
        before = _p_seven(model)
        result = grpo(model, PROMPTS, first_is_seven, group_size=8, prompts_per_step=4, steps=8, lr=3e-2,
                      max_new_tokens=1, stop=(), seed=0)  # fmt: skip
        return before, _p_seven(model), result

    before, after, result = run()
    assert after > 5 * before and after > 0.1  # about 0.009 -> 0.2
    assert np.mean(result.rewards[4:]) > np.mean(result.rewards[:4])
    assert result.steps == 8 and result.clipped == [0.0] * 8  # one update per batch: the ratio is exactly 1
    assert result.kls == [0.0] * 8 and result.sampled_tokens == 8 * 4 * 8
    again = run()
    assert again[1] == after and again[2].rewards == result.rewards  # seeded


def test_a_batch_whose_groups_all_tie_leaves_the_weights_alone():
    model = tiny_gpt(TOK.vocab_size, n_layer=1, n_embd=16, n_positions=32, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = grpo(model, PROMPTS, lambda p, c: 1.0, group_size=2, prompts_per_step=2, steps=2, max_new_tokens=3)
    assert result.rewards == [1.0, 1.0] and result.losses == [0.0, 0.0]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_several_updates_per_batch_clip_and_a_kl_to_the_start_is_measured():
    model = tiny_gpt(TOK.vocab_size, n_layer=1, n_embd=16, n_positions=32, seed=0)
    reward = lambda p, c: float(c.text[:1].isdigit())  # noqa: E731
    result = grpo(model, PROMPTS, reward, group_size=8, prompts_per_step=4, steps=3, lr=5e-2, beta=0.04,
                  updates_per_batch=4, level="sequence", max_new_tokens=2, stop=(), seed=1)  # fmt: skip
    assert any(c > 0 for c in result.clipped)  # later updates move the ratio past 1 +- 0.2
    assert result.kls[0] > 0 and all(k >= 0 for k in result.kls)


def test_the_answer_reward_checks_the_extracted_answer():
    ex = Example("2+3=\n", "2+3=5\nANS 5", "5")
    assert answer_reward(ex, Completion("2+3=5\nANS 5", (1,), (-0.1,), "5", "eos")) == 1.0
    assert answer_reward(ex, Completion("2+3=6\nANS 6", (1,), (-0.1,), "6", "eos")) == 0.0
    with pytest.raises(ValueError, match="needs Examples"):
        answer_reward("2+3=\n", Completion("", (1,), (-0.1,), None, None))
