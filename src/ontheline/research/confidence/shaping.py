"""Progressive confidence shaping (PCS): the overconfidence penalty as a GRPO reward or advantage term.

Per sampled completion ``i`` of a group, the penalty is ``P_i = eta <c_i, w>``, where ``c_i`` is
its confidence trajectory measured against the gold answer (``K = 6`` points in the paper's
training) and ``w = linspace(0.5, -0.5, K)`` (:func:`~ontheline.research.confidence.pcs_weights`,
which sum to 0, so a constant trajectory costs nothing). Two ways to apply it, as in the
paper's code:

- ``mode="reward"`` (its Countdown runs): subtract ``P_i`` from the reward before GRPO's group
  normalisation, ``A_i = norm(r_i - P_i)``; :func:`pcs_reward` makes this a reward for the lab's
  :func:`~ontheline.research.lm.grpo`;
- ``mode="advantage"`` (its math runs): subtract it after, ``A_i = norm(r_i) - P_i``.

Measured against the gold answer, the last point's weight (-0.5) also gives partial credit to
a chain that makes the gold answer probable without writing it. ``eta = 0`` is plain GRPO,
exactly: no probe runs and the reward is the outcome reward itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ontheline.research.confidence.scores import overconfidence
from ontheline.research.confidence.trajectory import ANSWER_SUFFIX, confidence_trajectories
from ontheline.research.lm.grpo import Reward, answer_reward
from ontheline.research.lm.grpo_loss import group_advantages
from ontheline.research.lm.sample import Completion
from ontheline.research.lm.tasks import Example

#: Where :func:`pcs_advantages` subtracts the penalty: from the rewards (before normalisation) or from the advantages.
MODES = ("reward", "advantage")


def pcs_penalty(confidence: Any, eta: float = 1.0) -> Any:
    """The PCS penalty ``P = eta <c, w>`` of one trajectory or of each of several.

    Parameters
    ----------
    confidence : array-like of shape (points,) or (completions, points)
        Confidence trajectories against the gold answer.
    eta : float
        The penalty's weight (``>= 0``; the paper runs 0, the baseline, and 1).

    Returns
    -------
    float, or ndarray of shape (completions,)

    References
    ----------
    .. [1] J. Gai, Z. Zeng, C. Baek, Y. Wu, Z. Kolter, A. Risteski and A. Raghunathan, "Premature Confidence in
       Chain-of-Thought Reasoning" (progressive confidence shaping), arXiv 2026, arXiv:2605.24396.

    Examples
    --------
    >>> round(pcs_penalty([1, 1, 1, 1, 1, 0.8]), 3), round(pcs_penalty([0, 0, 0, 0.2, 0.6, 1], eta=0.5), 3)
    (0.1, -0.35)
    >>> pcs_penalty([0.3] * 6)
    0.0
    """
    if not eta >= 0:
        raise ValueError(f"eta must be >= 0; got {eta!r}.")
    score = overconfidence(confidence)
    return eta * score + 0.0


def pcs_advantages(
    rewards: Any, confidence: Any, eta: float = 1.0, *, mode: str = "reward", scale: bool = True, eps: float = 1e-6
) -> np.ndarray:
    """GRPO's group advantages with the PCS penalty, subtracted from the rewards or from the advantages.

    Parameters
    ----------
    rewards : array-like of shape (prompts, group_size)
        The outcome rewards of each prompt's ``G`` completions.
    confidence : array-like of shape (prompts, group_size, points)
        Each completion's confidence trajectory against the gold answer.
    eta : float
        The penalty's weight; 0 gives :func:`~ontheline.research.lm.group_advantages` exactly.
    mode : {"reward", "advantage"}
        ``"reward"``: ``norm(r - P)`` (each group's advantages still have mean 0);
        ``"advantage"``: ``norm(r) - P``.
    scale, eps
        As in :func:`~ontheline.research.lm.group_advantages`.

    Returns
    -------
    ndarray of shape (prompts, group_size)

    References
    ----------
    .. [1] J. Gai, Z. Zeng, C. Baek, Y. Wu, Z. Kolter, A. Risteski and A. Raghunathan, "Premature Confidence in
       Chain-of-Thought Reasoning" (progressive confidence shaping), arXiv 2026, arXiv:2605.24396.

    Examples
    --------
    Two right answers, one known from the start and one reached step by step:

    >>> c = [[[1, 1, 1, 1, 1, 1.0], [0, 0, 0, 0.2, 0.6, 1], [0, 0, 0, 0, 0, 0]]]
    >>> pcs_advantages([[1, 1, 0]], c, eta=1.0).round(3).tolist()
    [[0.117, 0.936, -1.053]]
    >>> pcs_advantages([[1, 1, 0]], c, eta=0.0).tolist() == group_advantages([[1, 1, 0]]).tolist()
    True
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
    r = np.asarray(rewards, dtype=np.float64)
    c = np.asarray(confidence, dtype=np.float64)
    if c.ndim != 3 or c.shape[:2] != r.shape:
        raise ValueError(
            f"confidence must have shape (prompts, group_size, points) = {(*r.shape, 'points')}; got {c.shape}."
        )
    if eta == 0:
        return group_advantages(r, eps=eps, scale=scale)
    penalty = pcs_penalty(c.reshape(-1, c.shape[-1]), eta).reshape(r.shape)
    if mode == "reward":
        return group_advantages(r - penalty, eps=eps, scale=scale)
    return group_advantages(r, eps=eps, scale=scale) - penalty


def pcs_reward(
    model: Any,
    eta: float = 1.0,
    *,
    base: Reward = answer_reward,
    points: int = 6,
    method: str = "exact",
    samples: int = 10,
    tokenizer: Any = None,
    suffix: str = ANSWER_SUFFIX,
    answer_marker: str = "ANS",
    threads: int = 1,
) -> Reward:
    """A GRPO reward with the PCS penalty: ``base(example, completion) - eta <c, w>`` (the paper's reward mode).

    ``c`` is the completion's confidence trajectory under ``model`` (the policy being trained,
    probed as it is at each step) against the example's gold answer (a plain prompt string has
    none: its completion's own answer is used). With ``eta = 0`` the reward is ``base`` itself
    and no probe runs, so :func:`~ontheline.research.lm.grpo` does exactly what it does with
    ``base``.

    Parameters
    ----------
    model : transformers causal LM
        The policy (trained in place by ``grpo``).
    eta : float
        The penalty's weight, ``>= 0``.
    base : callable
        The outcome reward, :func:`~ontheline.research.lm.answer_reward` by default.
    points, method, samples, tokenizer, suffix, answer_marker, threads
        The probe, as in :func:`~ontheline.research.confidence.confidence_trajectory` (the paper
        trains with 6 points and 10 Monte-Carlo samples; the exact probe is their expectation).

    Returns
    -------
    callable
        ``reward(example, completion) -> float``.

    References
    ----------
    .. [1] J. Gai, Z. Zeng, C. Baek, Y. Wu, Z. Kolter, A. Risteski and A. Raghunathan, "Premature Confidence in
       Chain-of-Thought Reasoning" (progressive confidence shaping), arXiv 2026, arXiv:2605.24396.

    Examples
    --------
    >>> from ontheline.research.lm import CharTokenizer, digit_sums, grpo, tiny_gpt
    >>> model = tiny_gpt(CharTokenizer().vocab_size, n_layer=1, n_embd=16)
    >>> problems = digit_sums(8, seed=0, digits=3)
    >>> result = grpo(model, problems, pcs_reward(model, eta=1.0), group_size=4, prompts_per_step=2, steps=2,
    ...               max_new_tokens=12)
    >>> result.steps
    2
    >>> done = Completion("GUESS 4\\n. .\\nANS 4", (), (), "4", "eos")
    >>> pcs_reward(model, eta=0.0)(problems[0], done) == answer_reward(problems[0], done)
    True
    """
    if not eta >= 0:
        raise ValueError(f"eta must be >= 0; got {eta!r}.")

    def reward(example: Any, completion: Completion) -> float:
        outcome = float(base(example, completion))
        if eta == 0:
            return outcome
        ref = example.answer if isinstance(example, Example) else None
        c, _, _ = confidence_trajectories(
            model, [example], [completion], tokenizer=tokenizer, points=points,
            references=None if ref is None else [ref], method=method, samples=samples, suffix=suffix,
            answer_marker=answer_marker, threads=threads,
        )  # fmt: skip
        return outcome - float(pcs_penalty(c[0], eta))

    return reward


__all__ = ["MODES", "pcs_advantages", "pcs_penalty", "pcs_reward"]
