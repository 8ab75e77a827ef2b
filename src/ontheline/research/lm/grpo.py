"""Group Relative Policy Optimization (GRPO) for the lab's language models: the formulas and a small loop.

For each prompt ``q`` the policy samples a group of ``G`` completions ``o_1 ... o_G`` and a
pluggable function scores each, ``r_i = reward(example, completion)``. Then:

- **Advantages** are normalised within the group, ``A_i = (r_i - mean(r)) / (std(r) + eps)``
  (:func:`group_advantages`; ``std`` with ``ddof=1``, as TRL computes it; a group whose
  rewards are all equal gets advantages 0 and teaches nothing).
- **The policy loss** is PPO's clipped surrogate with the sequence's advantage at each of its
  tokens, ``-min(rho_t A_i, clip(rho_t, 1 - epsilon, 1 + epsilon) A_i)``, where
  ``rho_t = pi_theta(o_t | q, o_<t) / pi_old(o_t | q, o_<t)`` and ``pi_old`` is the policy
  that sampled the group (:func:`clipped_loss`).
- **A KL penalty** to a frozen reference policy (optional, ``beta > 0``) uses the k3 estimator
  of DeepSeekMath's GRPO, per token: ``KL_t = pi_ref / pi_theta - log(pi_ref / pi_theta) - 1``,
  unbiased for ``KL(pi_theta || pi_ref)`` on samples from ``pi_theta``, always ``>= 0``, and 0
  (with a zero gradient) where the two agree (:func:`kl_k3`).
- **Averaging** (:func:`policy_loss`): ``level="token"`` (the default) averages
  ``pg_t + beta * KL_t`` over every completion token of the batch (DAPO's token-level loss:
  a long completion weighs by its length, and short wrong answers are not favoured);
  ``level="sequence"`` averages over each completion's tokens, then over completions, as in
  DeepSeekMath's formula ``-1/G sum_i 1/|o_i| sum_t (...)``.

:func:`grpo` runs the loop: seeded prompt batches, ``G`` samples each with
:func:`~ontheline.research.lm.sample` (its KV cache), rewards, advantages, and
``updates_per_batch`` AdamW steps on the batch. The log-probabilities in the ratio and the KL are
those of the tempered policy (logits / ``temperature``), the distribution the samples were drawn
from, computed by one batched forward pass (:func:`~ontheline.research.lm.completion_logprobs`);
``pi_old`` is that pass's value before the first update, so the first update's ratio is exactly
1 and the clip acts from the second on. TRL's ``GRPOTrainer`` does the same thing at scale; on
these tiny CPU models this loop is the one used (``docs/lm-lab.md`` has the measurements).

A reward is any ``reward(example, completion) -> float``: the completion's ``text``,
``token_ids``, ``logprobs`` (under the model at temperature 1) and ``answer`` are all there, so a
confidence term (progressive confidence shaping) is a reward of its own or a sum of rewards.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ontheline._optional import extra
from ontheline._progress import Progress
from ontheline.research.lm.grpo_loss import LEVELS, group_advantages, kl_k3, policy_loss
from ontheline.research.lm.sample import Completion, completion_logprobs, sample
from ontheline.research.lm.tasks import Example

#: A reward: ``reward(example, completion) -> float`` for one sampled completion of an example (or prompt string).
Reward = Callable[[Any, Completion], float]


def answer_reward(example: Example | str, completion: Completion) -> float:
    """1.0 when the completion's extracted answer equals the example's answer, else 0.0 (the outcome reward).

    Examples
    --------
    >>> ex = Example("2+3=\\n", "2+3=5\\nANS 5", "5")
    >>> answer_reward(ex, Completion("ANS 5", (), (), "5", "eos")), answer_reward(ex, Completion("ANS", (), (), None, None))
    (1.0, 0.0)
    """
    if not isinstance(example, Example):
        raise ValueError(
            "answer_reward needs Examples (their answers are the references); pass another reward for strings."
        )
    return float(completion.answer is not None and completion.answer == example.answer)


@dataclass(frozen=True)
class GRPOResult:
    """What :func:`grpo` did, one value per step.

    Attributes
    ----------
    rewards : list of float
        The mean reward of each step's sampled completions (before that step's update).
    losses : list of float
        The mean loss over each step's updates.
    kls : list of float
        The mean per-token k3 KL to the reference (0 without one).
    clipped : list of float
        The share of tokens whose ratio was outside ``1 +- clip`` (over the step's updates).
    sampled_tokens : int
        Completion tokens sampled in all.
    seconds : float
        Wall time of the loop.

    Examples
    --------
    >>> GRPOResult([0.25, 0.5], [0.1, 0.0], [0.0, 0.0], [0.0, 0.0], 320, 2.0).steps_per_second
    1.0
    """

    rewards: list[float]
    losses: list[float]
    kls: list[float]
    clipped: list[float]
    sampled_tokens: int
    seconds: float

    @property
    def steps(self) -> int:
        return len(self.rewards)

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else float("nan")


def grpo(
    model: Any,
    examples: Sequence[Example] | Sequence[str],
    reward: Reward = answer_reward,
    *,
    group_size: int = 8,
    prompts_per_step: int = 8,
    steps: int = 50,
    lr: float = 1e-4,
    beta: float = 0.0,
    clip: float = 0.2,
    level: str = "token",
    updates_per_batch: int = 1,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    max_new_tokens: int = 64,
    stop: Sequence[str] = ("\n\n",),
    reference: Any = None,
    scale_rewards: bool = True,
    weight_decay: float = 0.0,
    grad_clip: float | None = 1.0,
    seed: int = 0,
    tokenizer: Any = None,
    threads: int = 1,
    progress: Progress | None = None,
) -> GRPOResult:
    """Train ``model`` in place with GRPO on ``examples`` (prompts), scored by ``reward``.

    Each step draws ``prompts_per_step`` examples (``default_rng([seed, step])``), samples
    ``group_size`` completions of each, scores them, normalises the rewards within each group
    (:func:`group_advantages`) and takes ``updates_per_batch`` AdamW steps on
    :func:`policy_loss`. The model stays in eval mode (no dropout), so the ratio compares the
    same function before and after an update.

    Parameters
    ----------
    model : transformers causal LM
    examples : sequence of Example or str
        The prompts (an Example's ``prompt``); the reward sees the element itself.
    reward : callable
        ``reward(example, completion) -> float``; :func:`answer_reward` by default.
    group_size : int
        ``G``, completions per prompt (at least 2).
    prompts_per_step : int
        Prompts per step (drawn without replacement when there are enough).
    steps : int
        Sampling rounds.
    lr : float
        AdamW's learning rate (constant).
    beta : float
        Weight of the k3 KL to ``reference`` (0: no reference is kept or run).
    clip : float
        PPO's ``epsilon``.
    level : {"token", "sequence"}
        How the loss averages (:func:`policy_loss`).
    updates_per_batch : int
        Optimizer steps per sampled batch (``mu``); the clip matters from the second.
    temperature, top_k, top_p, max_new_tokens, stop
        Sampling, as in :func:`~ontheline.research.lm.sample`.
    reference : transformers causal LM, optional
        The frozen reference policy; a copy of ``model`` as it is at the start when
        ``beta > 0`` and none is given.
    scale_rewards : bool
        Divide by the group's std (False: Dr. GRPO's ``r - mean``).
    weight_decay : float
        AdamW's decoupled weight decay (0 by default).
    grad_clip : float or None
        Clip the global gradient norm to this.
    seed : int
        The prompts and the samples of each step are a function of ``(seed, step)``.
    tokenizer : optional
        The lab's :class:`~ontheline.research.lm.CharTokenizer` by default.
    threads : int
        ``torch.set_num_threads`` for the run (restored at the end).
    progress : callable, optional
        Called as ``progress("grpo: reward 0.500", done, steps)`` after every step.

    Returns
    -------
    GRPOResult

    References
    ----------
    .. [1] Z. Shao, P. Wang, Q. Zhu et al., "DeepSeekMath: Pushing the Limits of Mathematical Reasoning
       in Open Language Models", arXiv 2024, arXiv:2402.03300 (GRPO).

    Examples
    --------
    >>> from ontheline.research.lm import CharTokenizer, tiny_gpt
    >>> model = tiny_gpt(CharTokenizer().vocab_size, n_layer=1, n_embd=16)
    >>> sevens = lambda prompt, c: float(c.text.startswith("7"))
    >>> result = grpo(model, ["1+1=\\n"], sevens, group_size=4, prompts_per_step=2, steps=2, max_new_tokens=2)
    >>> result.steps, len(result.losses)
    (2, 2)
    """
    with extra("torch"):
        import torch

    if group_size < 2 or prompts_per_step < 1 or updates_per_batch < 1 or steps < 0:
        raise ValueError(
            "group_size must be at least 2, prompts_per_step and updates_per_batch at least 1, steps >= 0."
        )
    if not examples or isinstance(examples, str):
        raise ValueError("examples must be a non-empty sequence of Examples or prompt strings.")
    if not temperature > 0:
        raise ValueError(f"GRPO samples from the policy: temperature must be positive; got {temperature!r}.")
    if level not in LEVELS or not 0 < clip < 1 or beta < 0:
        raise ValueError(
            f"level must be one of {LEVELS}, clip in (0, 1) and beta >= 0; got {level!r}, {clip!r}, {beta!r}."
        )
    if beta > 0 and reference is None:
        reference = copy.deepcopy(model)
    if reference is not None:
        reference.eval().requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.99), foreach=True)
    rewards: list[float] = []
    losses: list[float] = []
    kls: list[float] = []
    clipped: list[float] = []
    tokens = 0
    previous_threads, was_training = torch.get_num_threads(), model.training
    began = time.perf_counter()
    torch.set_num_threads(threads)
    try:
        model.eval()
        for step in range(steps):
            rng = np.random.default_rng([seed, step])
            many = len(examples) >= prompts_per_step
            chosen: list[Any] = [
                examples[int(i)] for i in rng.choice(len(examples), size=prompts_per_step, replace=not many)
            ]
            drawn = sample(
                model, chosen, n=group_size, temperature=temperature, top_k=top_k, top_p=top_p,
                max_new_tokens=max_new_tokens, stop=stop, seed=int(rng.integers(2**31)), batch_size=len(chosen),
                tokenizer=tokenizer, threads=threads,
            )  # fmt: skip
            table = np.array([[float(reward(ex, c)) for c in group] for ex, group in zip(chosen, drawn)])
            advantages = torch.as_tensor(group_advantages(table, scale=scale_rewards), dtype=torch.float32).ravel()
            flat = [c for group in drawn for c in group]
            prompts = [ex for ex in chosen for _ in range(group_size)]
            tokens += sum(len(c.token_ids) for c in flat)
            ref = None
            if beta > 0:
                with torch.no_grad():
                    ref, _ = completion_logprobs(reference, prompts, flat, tokenizer=tokenizer, temperature=temperature)
            old = None
            step_losses, step_kls, step_clipped = [], [], []
            for _ in range(updates_per_batch):
                logp, mask = completion_logprobs(model, prompts, flat, tokenizer=tokenizer, temperature=temperature)
                if old is None:
                    old = logp.detach()
                loss = policy_loss(logp, old, advantages, mask, ref_logprobs=ref, beta=beta, clip=clip, level=level)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, grad_clip)
                optimizer.step()
                with torch.no_grad():
                    ratio = torch.exp(logp - old)[mask]
                    step_clipped.append(float(((ratio < 1 - clip) | (ratio > 1 + clip)).float().mean()))
                    step_kls.append(float(kl_k3(logp, ref)[mask].mean()) if ref is not None else 0.0)
                step_losses.append(loss.item())
            rewards.append(float(table.mean()))
            losses.append(float(np.mean(step_losses)))
            kls.append(float(np.mean(step_kls)))
            clipped.append(float(np.mean(step_clipped)))
            if progress is not None:
                progress(f"grpo: reward {rewards[-1]:.3f}", step + 1, steps)
    finally:
        torch.set_num_threads(previous_threads)
        model.train(was_training)
    return GRPOResult(rewards, losses, kls, clipped, tokens, time.perf_counter() - began)


__all__ = ["GRPOResult", "Reward", "answer_reward", "grpo"]
