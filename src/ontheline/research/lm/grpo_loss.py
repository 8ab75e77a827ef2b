"""GRPO's formulas: group-normalised advantages, the clipped policy loss, the k3 KL, and how they are averaged.

:func:`ontheline.research.lm.grpo` puts them together; they are kept apart here so that each
can be checked against hand-computed values (``tests/research/test_lm_grpo.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ontheline._optional import extra

#: How :func:`policy_loss` averages the per-token terms: over all tokens, or per completion then over completions.
LEVELS = ("token", "sequence")


def group_advantages(rewards: Any, *, eps: float = 1e-6, scale: bool = True) -> np.ndarray:
    """GRPO's group-normalised advantages: ``(r - mean) / (std + eps)`` within each row (one row per prompt).

    Parameters
    ----------
    rewards : array-like of shape (prompts, group_size)
        Row ``p`` holds the rewards of prompt ``p``'s ``G`` completions (``G >= 2``).
    eps : float
        Keeps a group with equal rewards finite (its advantages are 0).
    scale : bool
        Divide by the group's standard deviation (sample std, ``ddof=1``); ``False`` keeps
        ``r - mean`` only (Dr. GRPO's unscaled advantages).

    Returns
    -------
    ndarray of float64, the shape of ``rewards``

    References
    ----------
    .. [1] Z. Shao, P. Wang, Q. Zhu et al., "DeepSeekMath: Pushing the Limits of Mathematical Reasoning
       in Open Language Models", arXiv 2024, arXiv:2402.03300 (GRPO).
    .. [2] Z. Liu, C. Chen, W. Li et al., "Understanding R1-Zero-Like Training: A Critical Perspective",
       arXiv 2025, arXiv:2503.20783 (Dr. GRPO: no std scaling, no length normalisation).

    Examples
    --------
    >>> group_advantages([[1, 0, 0], [2, 4, 6]]).round(4).tolist()
    [[1.1547, -0.5773, -0.5773], [-1.0, 0.0, 1.0]]
    >>> group_advantages([[3, 3]]).tolist()
    [[0.0, 0.0]]
    """
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] < 2:
        raise ValueError(f"rewards must be a table of shape (prompts, group_size) with group_size >= 2; got {r.shape}.")
    if not np.all(np.isfinite(r)):
        raise ValueError("Every reward must be a finite number.")
    centred = r - r.mean(axis=1, keepdims=True)
    if not scale:
        return centred + 0.0
    return centred / (r.std(axis=1, ddof=1, keepdims=True) + eps) + 0.0


def kl_k3(logprobs: Any, ref_logprobs: Any) -> Any:
    """The k3 estimate of ``KL(pi_theta || pi_ref)`` per token: ``exp(d) - d - 1`` with ``d = log pi_ref - log pi_theta``.

    On tokens sampled from ``pi_theta`` its mean is unbiased for the KL; every value is
    ``>= 0``, and 0 (with a zero gradient) where the two log-probabilities agree.

    Parameters
    ----------
    logprobs, ref_logprobs : torch.Tensor
        The sampled tokens' log-probabilities under the policy and the reference (same shape).

    Returns
    -------
    torch.Tensor, the same shape

    References
    ----------
    .. [1] J. Schulman, "Approximating KL Divergence", blog post, 2020 (the k3 estimator).
    .. [2] Z. Shao, P. Wang, Q. Zhu et al., "DeepSeekMath: Pushing the Limits of Mathematical Reasoning
       in Open Language Models", arXiv 2024, arXiv:2402.03300 (GRPO's KL term).

    Examples
    --------
    >>> import torch
    >>> policy, reference = torch.tensor([0.5, 0.2]).log(), torch.tensor([0.25, 0.2]).log()
    >>> [round(v, 4) for v in kl_k3(policy, reference).tolist()]   # 0.5 + log 2 - 1, and 0
    [0.1931, 0.0]
    """
    d = ref_logprobs - logprobs
    return d.exp() - d - 1.0


def clipped_loss(
    logprobs: Any, old_logprobs: Any, advantages: Any, mask: Any, *, clip: float = 0.2, level: str = "token"
) -> Any:
    """PPO's clipped surrogate, ``-min(rho A, clip(rho, 1 - clip, 1 + clip) A)``, averaged as ``level`` says.

    :func:`policy_loss` with ``beta=0``; see it for the parameters.

    Examples
    --------
    >>> import torch
    >>> logp = torch.log(torch.tensor([[0.5, 0.3]])).requires_grad_()
    >>> old = torch.log(torch.tensor([[0.4, 0.3]]))          # ratios 1.25 (clipped at 1.2) and 1.0
    >>> loss = clipped_loss(logp, old, torch.tensor([1.0]), torch.tensor([[True, True]]))
    >>> round(loss.item(), 4)                                 # -(1.2 + 1.0) / 2
    -1.1
    >>> loss.backward(); logp.grad.tolist()                   # no gradient through the clipped token
    [[0.0, -0.5]]
    """
    return policy_loss(logprobs, old_logprobs, advantages, mask, clip=clip, level=level)


def policy_loss(
    logprobs: Any,
    old_logprobs: Any,
    advantages: Any,
    mask: Any,
    *,
    ref_logprobs: Any = None,
    beta: float = 0.0,
    clip: float = 0.2,
    level: str = "token",
) -> Any:
    """GRPO's loss on a batch of completions: the clipped surrogate plus ``beta`` times the k3 KL, averaged.

    Parameters
    ----------
    logprobs : torch.Tensor of shape (completions, tokens)
        Each sampled token's log-probability under the policy being trained (with gradients).
    old_logprobs : torch.Tensor, same shape
        Under the policy that sampled them (no gradient flows through it).
    advantages : torch.Tensor of shape (completions,)
        One per completion (:func:`group_advantages`), given to each of its tokens.
    mask : torch.Tensor of bool, same shape as ``logprobs``
        True at real tokens (padding is left out of every average).
    ref_logprobs : torch.Tensor, optional
        Under the frozen reference policy; needed when ``beta > 0``.
    beta : float
        The weight of the k3 KL term (:func:`kl_k3`).
    clip : float
        ``epsilon``: the ratio is clipped to ``[1 - clip, 1 + clip]``.
    level : {"token", "sequence"}
        ``"token"``: the mean over every real token of the batch (DAPO's token-level average).
        ``"sequence"``: each completion's mean over its tokens, then the mean over completions
        (DeepSeekMath's ``1/G sum_i 1/|o_i| sum_t``).

    Returns
    -------
    torch.Tensor
        A scalar, to minimise.

    References
    ----------
    .. [1] J. Schulman, F. Wolski, P. Dhariwal, A. Radford and O. Klimov, "Proximal Policy Optimization
       Algorithms", arXiv 2017, arXiv:1707.06347 (the clipped surrogate).
    .. [2] Z. Shao, P. Wang, Q. Zhu et al., "DeepSeekMath: Pushing the Limits of Mathematical Reasoning
       in Open Language Models", arXiv 2024, arXiv:2402.03300 (GRPO).
    .. [3] Q. Yu, Z. Zhang, R. Zhu et al., "DAPO: An Open-Source LLM Reinforcement Learning System at
       Scale", arXiv 2025, arXiv:2503.14476 (the token-level average).

    Examples
    --------
    A completion of 1 token and one of 3, advantages +1 and -1, the policy still the sampler's:

    >>> import torch
    >>> logp = torch.zeros(2, 3)
    >>> mask = torch.tensor([[True, False, False], [True, True, True]])
    >>> a = torch.tensor([1.0, -1.0])
    >>> policy_loss(logp, logp, a, mask, level="token").item()      # (-1 + 3) / 4
    0.5
    >>> policy_loss(logp, logp, a, mask, level="sequence").item()   # (-1 + 1) / 2
    0.0
    """
    with extra("torch"):
        import torch

    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}; got {level!r}.")
    if not 0 < clip < 1:
        raise ValueError(f"clip must be in (0, 1); got {clip!r}.")
    if beta < 0 or (beta > 0 and ref_logprobs is None):
        raise ValueError("beta must be >= 0, and a positive beta needs ref_logprobs.")
    mask = mask.to(logprobs.dtype)
    a = torch.as_tensor(advantages, dtype=logprobs.dtype, device=logprobs.device)[:, None]
    ratio = torch.exp(logprobs - old_logprobs.detach())
    per_token = -torch.minimum(ratio * a, ratio.clamp(1.0 - clip, 1.0 + clip) * a)
    if beta > 0:
        per_token = per_token + beta * kl_k3(logprobs, ref_logprobs.detach())
    if level == "token":
        return (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    lengths = mask.sum(dim=1).clamp(min=1.0)
    return ((per_token * mask).sum(dim=1) / lengths).mean()


__all__ = ["LEVELS", "clipped_loss", "group_advantages", "kl_k3", "policy_loss"]
