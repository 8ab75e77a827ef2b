"""The finetuning mixture of the tiny-LM experiment: an exact share p of non-context-critical examples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ontheline.research.lm.tasks import Example, FactWorld


def ift_mixture(
    world: FactWorld,
    n: int,
    p: float,
    *,
    known: Sequence[str],
    unknown: Sequence[str],
    seed: int,
    augment: float = 0.0,
    distractors: int = 0,
) -> list[Example]:
    """``n`` context questions, exactly ``round(p * n)`` of them non-context-critical, in a seeded order.

    *Non-context-critical*: a ``known`` entity (one the model learnt in pretraining), the
    context states its true value, so memory alone answers it. *Context-critical*: an
    ``unknown`` entity, the answer is only in the context. ``augment`` adds
    ``round(augment * n)`` counterfactual examples on ``known`` entities (the context states
    another value, which is the answer): the augmentation mitigation.

    ``distractors`` adds that many sentences about other entities of the world (their true
    values) around the context's sentence, so that reading the context needs finding the
    right entity (see :func:`with_distractors`).

    Each example's ``info["kind"]`` is ``"non_critical"``, ``"critical"`` or ``"counterfactual"``.

    Raises
    ------
    ValueError
        If ``p`` is outside [0, 1], ``n`` < 1, ``augment`` < 0, or a pool is empty while
        examples are asked of it.

    Examples
    --------
    >>> world = FactWorld(20, seed=0)
    >>> mix = ift_mixture(world, 10, 0.8, known=world.entities[:10], unknown=world.entities[10:], seed=0)
    >>> sum(e.info["kind"] == "non_critical" for e in mix), len(mix)
    (8, 10)
    """
    if n < 1:
        raise ValueError(f"n must be at least 1; got {n}.")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a share in [0, 1]; got {p!r}.")
    if augment < 0:
        raise ValueError(f"augment must be at least 0; got {augment!r}.")
    n_known, n_aug = int(round(p * n)), int(round(augment * n))
    if (n_known or n_aug) and not known:
        raise ValueError("known must name at least one entity when p > 0 or augment > 0.")
    if n_known < n and not unknown:
        raise ValueError("unknown must name at least one entity when p < 1.")
    rng = np.random.default_rng(seed)
    names = list(world.attributes)
    kinds = ["non_critical"] * n_known + ["critical"] * (n - n_known) + ["counterfactual"] * n_aug
    out = []
    for kind in (kinds[i] for i in rng.permutation(len(kinds))):
        pool = unknown if kind == "critical" else known
        entity, attribute = pool[int(rng.integers(len(pool)))], names[int(rng.integers(len(names)))]
        ex = world.context_question(entity, attribute, counterfactual=kind == "counterfactual",
                                    seed=int(rng.integers(2**31)))  # fmt: skip
        ex = with_distractors(world, ex, distractors, seed=int(rng.integers(2**31)))
        out.append(Example(ex.prompt, ex.completion, ex.answer, {**ex.info, "kind": kind}))
    return out


def with_distractors(world: FactWorld, example: Example, k: int, *, seed: int) -> Example:
    """``example`` with ``k`` true statements about other entities (same attribute) placed around its context sentence.

    Examples
    --------
    >>> world = FactWorld(5, seed=0)
    >>> ex = world.context_question("Tikeba", "city", counterfactual=True, seed=0, template=0)
    >>> print(with_distractors(world, ex, 1, seed=0).prompt)
    Context: Tikeba lives in seaport. Vite has a house in redcliff.
    Q: Where does Tikeba live?
    <BLANKLINE>
    """
    if k <= 0:
        return example
    rng = np.random.default_rng(seed)
    entity, attribute = example.info["entity"], example.info["attribute"]
    others = [e for e in world.entities if e != entity]
    head, question = example.prompt.split("\n", 1)
    sentences = [head.removeprefix("Context: ")]
    for _ in range(k):
        other = others[int(rng.integers(len(others)))]
        sentences.insert(int(rng.integers(len(sentences) + 1)),
                         world.statement(other, attribute, template=int(rng.integers(3))))  # fmt: skip
    return Example(f"Context: {' '.join(sentences)}\n{question}", example.completion, example.answer, example.info)


__all__ = ["ift_mixture", "with_distractors"]
