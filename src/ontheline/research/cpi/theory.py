"""A one-layer attention model of context-parametric inversion, trained by full-batch gradient descent.

The input is two tokens, a context token (an answer, one-hot) and the query's subject token
(one-hot, times ``kappa``), each with a type feature of size ``tau``. The query (the subject)
attends over both with bilinear scores ``key @ W_KQ @ query``; the output logits are the
attention-weighted values ``W_V`` plus a parametric pathway ``W_F @ subject`` (a linear
"MLP" on the query). Pretraining fits the facts of the known subjects closed-book (no context
token; by default into ``W_V``, so the facts sit in the subject token's value), then a few copy
steps on a separate pool of subjects give the model some context use. Instruction finetuning
(by default of ``W_KQ`` and ``W_F``, so the parametric pathway can memorise the finetuning set)
is full-batch gradient descent on a fixed mixture: a share ``p`` of non-context-critical
examples (known subjects, the context repeats the fact) and ``1 - p`` context-critical ones
(new subjects, the answer only in the context), optionally with counterfactual examples
(known subjects, a different value in the context). Reliance is tracked on held-out known
subjects with counterfactual contexts: the attention weight on the context token (the
context pathway's weight) and the share answered with the context's value.

This is our reconstruction of the construction of Section 5 of the paper from its abstract
and summaries (its full text could not be read here); see ``docs/context-parametric-inversion.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ontheline._optional import extra
from ontheline._threads import torch_threads


@dataclass(frozen=True)
class TheoryConfig:
    """The sizes and the optimiser of :func:`train_theory` (the defaults are the recorded run's).

    ``pretrain`` names the weights the closed-book fact stage trains (``"v"``: the facts sit in
    the subject token's value); ``train`` the weights finetuning updates (``"kq"`` attention,
    ``"v"`` values, ``"f"`` the parametric pathway, which then memorises the finetuning set).

    Examples
    --------
    >>> TheoryConfig().train, TheoryConfig(train=("kq",)).train
    (('kq', 'f'), ('kq',))
    """

    answers: int = 20
    known: int = 200
    new: int = 100
    evaluated: int = 100
    examples: int = 400
    pretrain_steps: int = 200
    copy_steps: int = 30
    steps: int = 400
    every: int = 20
    lr: float = 1.0
    tau: float = 1.0
    kappa: float = 1.0
    train: tuple[str, ...] = field(default=("kq", "f"))
    pretrain: tuple[str, ...] = field(default=("v",))

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def train_theory(
    p: float, *, augment: float = 0.0, config: TheoryConfig | None = None, seed: int = 0
) -> dict[str, Any]:
    """Finetune the one-layer model on a mixture with a share ``p`` of non-context-critical examples.

    Parameters
    ----------
    p : float in [0, 1]
        The share of non-context-critical examples in the finetuning set.
    augment : float >= 0
        Counterfactual examples added, as a share of ``config.examples``.
    config : TheoryConfig, optional
        Sizes and optimiser; ``config.train`` names the weights finetuning updates (``"kq"``,
        ``"v"``, ``"f"``; ``("kq",)`` trains the attention alone).
    seed : int
        The facts, the mixture and the evaluation contexts.

    Returns
    -------
    dict
        ``steps``; per checkpoint ``reliance`` (share of conflicts answered from the context),
        ``attention`` (mean attention on the context token over the conflicts),
        ``nonconflict_accuracy`` (held-out known subjects with agreeing contexts) and
        ``loss``; and ``config``.

    Examples
    --------
    >>> r = train_theory(0.5, config=TheoryConfig(known=40, new=20, evaluated=20, examples=40, pretrain_steps=20,
    ...                                           steps=20, every=10))
    >>> r["steps"], len(r["reliance"]) == len(r["attention"]) == 3
    ([0, 10, 20], True)

    References
    ----------
    .. [1] S. Goyal, C. Baek, J. Z. Kolter and A. Raghunathan, "Context-Parametric Inversion: Why Instruction
       Finetuning May Not Actually Improve Context Reliance", ICLR 2025, arXiv:2410.10796.
    """
    with extra("torch"):
        import torch
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a share in [0, 1]; got {p!r}.")
    if augment < 0:
        raise ValueError(f"augment must be at least 0; got {augment!r}.")
    c = config or TheoryConfig()
    unknown = set(c.train) - {"kq", "v", "f"}
    if unknown or not c.train:
        raise ValueError(f"config.train must name some of 'kq', 'v', 'f'; got {c.train!r}.")
    with torch_threads(1):
        return _train(torch, p, augment, c, seed)


def _train(torch: Any, p: float, augment: float, c: TheoryConfig, seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    K, S = c.answers, c.known + c.new
    d = 2 + K + S
    F = torch.nn.functional

    def answer_tokens(a: Any) -> Any:
        x = torch.zeros(len(a), d)
        x[:, 0] = c.tau
        x[torch.arange(len(a)), 2 + a] = 1.0
        return x

    def subject_tokens(s: Any) -> Any:
        x = torch.zeros(len(s), d)
        x[:, 1] = c.tau
        x[torch.arange(len(s)), 2 + K + s] = c.kappa
        return x

    facts = torch.randint(0, K, (S,), generator=g)
    w = {name: torch.zeros(shape, requires_grad=True) for name, shape in (("kq", (d, d)), ("v", (K, d)), ("f", (K, d)))}

    def forward(context: Any, subject: Any) -> tuple[Any, Any]:
        q = subject_tokens(subject)
        parametric = q @ w["f"].T
        if context is None:
            return q @ w["v"].T + parametric, None
        k = answer_tokens(context)
        scores = torch.stack([(k @ w["kq"] * q).sum(1), (q @ w["kq"] * q).sum(1)], 1)
        attention = scores.softmax(1)
        return attention[:, :1] * (k @ w["v"].T) + attention[:, 1:] * (q @ w["v"].T) + parametric, attention[:, 0]

    def descend(params: list[Any], steps: int, context: Any, subject: Any, target: Any) -> None:
        opt = torch.optim.SGD(params, lr=c.lr)
        for _ in range(steps):
            loss = F.cross_entropy(forward(context, subject)[0], target)
            opt.zero_grad()
            loss.backward()
            opt.step()

    known = torch.arange(c.known)
    evaluated, ift_known = known[: c.evaluated], known[c.evaluated :]
    new = torch.arange(c.known, S)
    descend([w[name] for name in c.pretrain], c.pretrain_steps, None, known, facts[known])  # closed-book facts
    if c.copy_steps:  # a little context use before finetuning, on subjects finetuning never sees
        pool, new = new[: len(new) // 2], new[len(new) // 2 :]
        descend(list(w.values()), c.copy_steps, facts[pool], pool, facts[pool])
    n_ncc = int(round(p * c.examples))
    subjects = torch.cat([ift_known[torch.randint(0, len(ift_known), (n_ncc,), generator=g)],
                          new[torch.randint(0, len(new), (c.examples - n_ncc,), generator=g)]])  # fmt: skip
    contexts = facts[subjects].clone()
    n_aug = int(round(augment * c.examples))
    if n_aug:
        extra_s = ift_known[torch.randint(0, len(ift_known), (n_aug,), generator=g)]
        extra_c = (facts[extra_s] + torch.randint(1, K, (n_aug,), generator=g)) % K
        subjects, contexts = torch.cat([subjects, extra_s]), torch.cat([contexts, extra_c])
    conflict = (facts[evaluated] + torch.randint(1, K, (len(evaluated),), generator=g)) % K
    out: dict[str, list[Any]] = {"steps": [], "reliance": [], "attention": [], "nonconflict_accuracy": [], "loss": []}
    opt = torch.optim.SGD([w[name] for name in c.train], lr=c.lr)
    for step in range(c.steps + 1):
        loss = F.cross_entropy(forward(contexts, subjects)[0], contexts)
        if step % c.every == 0 or step == c.steps:
            with torch.no_grad():
                logits, attention = forward(conflict, evaluated)
                agree = forward(facts[evaluated], evaluated)[0]
            out["steps"].append(step)
            out["reliance"].append(float((logits.argmax(1) == conflict).float().mean()))
            out["attention"].append(float(attention.mean()))
            out["nonconflict_accuracy"].append(float((agree.argmax(1) == facts[evaluated]).float().mean()))
            out["loss"].append(float(loss.detach()))
        if step < c.steps:
            opt.zero_grad()
            loss.backward()
            opt.step()
    return {**out, "p": p, "augment": augment, "config": c.to_dict(), "seed": seed}


__all__ = ["TheoryConfig", "train_theory"]
