"""The confidence trajectory of a chain of thought: the probability of the final answer at K truncation points.

For a completion whose chain of thought (CoT) spans ``L`` tokens, the CoT is cut after
``round(k L / (K - 1))`` tokens, ``k = 0 ... K - 1``; a fixed suffix that forces an immediate
answer (:data:`ANSWER_SUFFIX`, ``"\\nANS "`` for the lab's tasks) is appended, and ``c_k`` is
the probability that the model then answers the reference:

- ``method="exact"``: ``p(reference | prompt + CoT[:k] + suffix)``, the product of the
  reference's token probabilities in one batched forward pass (for a one-token answer this is
  exactly the expectation of the Monte-Carlo estimate, with no variance);
- ``method="mc"``: the paper's probe, the share of ``samples`` sampled continuations (temperature
  1) whose first word is the reference.

The reference is the completion's own final answer by default (the paper's analysis, which asks
when the model settles on what it ends up saying) or a given answer (the gold answer, as in
training). :func:`cot_span` finds the CoT: between ``<think>`` and ``</think>``; without the
closing tag, up to ``<answer>``; failing that, up to the last line that starts with the answer
marker (``ANS``); failing that, the whole completion.

Any causal language model the lab loads works (:func:`ontheline.research.lm.load` reads any local
Hugging Face folder), with the lab's :class:`~ontheline.research.lm.CharTokenizer` or any
tokenizer with ``encode``, ``decode``, ``pad_id``, ``bos_id`` and ``eos_id``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ontheline._optional import extra
from ontheline.research.confidence.scores import classify, overconfidence, progressiveness
from ontheline.research.lm.sample import Completion, completion_logprobs, sample
from ontheline.research.lm.tasks import Example, answer_of
from ontheline.research.lm.tokenizer import CharTokenizer

#: The suffix that forces an immediate answer after a truncated chain of thought (the lab's answer line).
ANSWER_SUFFIX = "\nANS "
#: The probe methods: one batched forward pass, or the paper's Monte-Carlo samples.
METHODS = ("exact", "mc")


@dataclass(frozen=True)
class Trajectory:
    """The confidence trajectory of one completion and its scores.

    Attributes
    ----------
    confidence : ndarray of shape (points,)
        ``c_k``, the probability of ``reference`` after the first ``k / (points - 1)`` of the CoT.
    positions : tuple of int
        The CoT tokens kept at each point (0 ... the CoT's length).
    reference : str or None
        The answer whose probability is measured (None: the completion has no answer; ``c = 0``).
    progressiveness : float
        Spearman's rho of ``c`` against the point's index (NaN when ``c`` is constant).
    label : str
        "progressive" (rho >= tau) or "premature".
    overconfidence : float
        ``<c, w>``, ``w = linspace(0.5, -0.5, points)``: positive when confident early and not late.

    Examples
    --------
    >>> t = Trajectory(np.array([0.1, 0.1, 0.9]), (0, 2, 4), "4", 0.866, "progressive", -0.4)
    >>> t.points, t.fractions.tolist()
    (3, [0.0, 0.5, 1.0])
    """

    confidence: np.ndarray
    positions: tuple[int, ...]
    reference: str | None
    progressiveness: float
    label: str
    overconfidence: float

    @property
    def points(self) -> int:
        return len(self.positions)

    @property
    def fractions(self) -> np.ndarray:
        """The share of the CoT kept at each point, ``k / (points - 1)``."""
        return np.linspace(0.0, 1.0, self.points)


_MARKER_CACHE: dict[str, re.Pattern[str]] = {}


def cot_span(text: str, *, answer_marker: str = "ANS") -> tuple[int, int]:
    """Where the chain of thought is in a completion: ``(start, end)`` character offsets.

    In order: between ``<think>`` and ``</think>``; without the closing tag, from ``<think>`` (or
    the start) up to ``<answer>``; failing that, up to the newline before the last line that
    starts with ``answer_marker``; failing that, the whole completion.

    Examples
    --------
    >>> cot_span("<think>3 4</think><answer>4</answer>")
    (7, 10)
    >>> cot_span("<think>3 4 <answer>4</answer>")
    (7, 11)
    >>> text = "3 4 8\\nANS 8"
    >>> start, end = cot_span(text); text[start:end]
    '3 4 8'
    >>> cot_span("just words")
    (0, 10)
    """
    start = 0
    opened = text.find("<think>")
    if opened >= 0:
        start = opened + len("<think>")
        closed = text.find("</think>", start)
        if closed >= 0:
            return start, closed
    answer_tag = text.find("<answer>", start)
    if answer_tag >= 0:
        return start, answer_tag
    pattern = _MARKER_CACHE.get(answer_marker)
    if pattern is None:
        pattern = _MARKER_CACHE[answer_marker] = re.compile(r"(?:^|\n)" + re.escape(answer_marker) + r"\b")
    hits = [m for m in pattern.finditer(text) if m.start() >= start]
    if hits:
        return start, hits[-1].start()
    return start, len(text)


def _join(prompt: str, prefix: str, suffix: str) -> str:
    context = prompt + prefix
    if context.endswith("\n") and suffix.startswith("\n"):
        suffix = suffix[1:]  # no blank line between the prompt (or a finished line) and the answer
    return context + suffix


def _first_word(text: str) -> str | None:
    words = text.split()
    return words[0] if words else None


def _probe_contexts(
    prompt: str, text: str, tokenizer: Any, points: int, suffix: str, answer_marker: str
) -> tuple[list[str], tuple[int, ...]]:
    start, end = cot_span(text, answer_marker=answer_marker)
    head, cot = text[:start], text[start:end]
    ids = list(tokenizer.encode(cot)) if cot else []
    positions = tuple(int(round(k * len(ids) / (points - 1))) for k in range(points))
    contexts = [_join(prompt + head, tokenizer.decode(ids[:p]) if p else "", suffix) for p in positions]
    return contexts, positions


def confidence_trajectories(
    model: Any,
    prompts: Sequence[str | Example],
    completions: Sequence[str | Completion],
    *,
    tokenizer: Any = None,
    points: int = 6,
    references: Sequence[str | None] | None = None,
    method: str = "exact",
    samples: int = 10,
    suffix: str = ANSWER_SUFFIX,
    answer_marker: str = "ANS",
    max_new_tokens: int = 4,
    seed: int = 0,
    batch_size: int = 256,
    threads: int = 1,
) -> tuple[np.ndarray, list[tuple[int, ...]], list[str | None]]:
    """The confidence trajectories of many completions at once: ``(c, positions, references)``.

    :func:`confidence_trajectory` for one completion, with its scores; see it for the
    parameters. ``prompts`` holds one prompt per completion. Returns ``c`` of shape
    ``(len(completions), points)``, the CoT tokens kept at each point, and the references used.

    References
    ----------
    .. [1] J. Gai, Z. Zeng, C. Baek, Y. Wu, Z. Kolter, A. Risteski and A. Raghunathan, "Premature Confidence in
       Chain-of-Thought Reasoning" (progressive confidence shaping), arXiv 2026, arXiv:2605.24396.

    Examples
    --------
    >>> from ontheline.research.lm import CharTokenizer, tiny_gpt
    >>> model = tiny_gpt(CharTokenizer().vocab_size, n_layer=1, n_embd=16)
    >>> c, positions, refs = confidence_trajectories(
    ...     model, ["3 4 =\\n", "3 4 =\\n"], ["3 7\\nANS 7", "GUESS 4\\n. .\\nANS 4"], points=3)
    >>> c.shape, positions, refs
    ((2, 3), [(0, 2, 3), (0, 6, 11)], ['7', '4'])
    """
    with extra("torch"):
        import torch

    tokenizer = tokenizer or CharTokenizer()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    if not isinstance(points, (int, np.integer)) or points < 2:
        raise ValueError(f"points must be an integer of at least 2; got {points!r}.")
    if method == "mc" and samples < 1:
        raise ValueError(f"The Monte-Carlo probe needs samples >= 1; got {samples!r}.")
    texts = [c.text if isinstance(c, Completion) else c for c in completions]
    prompt_texts = [p.prompt if isinstance(p, Example) else p for p in prompts]
    if isinstance(completions, str) or not all(isinstance(t, str) for t in texts):
        raise ValueError("completions must be a sequence of strings or Completions; for one, pass [completion].")
    if len(prompt_texts) != len(texts):
        raise ValueError(
            f"Pass one prompt per completion; got {len(prompt_texts)} prompts and {len(texts)} completions."
        )
    if references is None:
        refs: list[str | None] = [answer_of(t) for t in texts]
    elif len(references) != len(texts):
        raise ValueError(f"Pass one reference per completion; got {len(references)} for {len(texts)} completions.")
    else:
        refs = [None if r is None else str(r) for r in references]
    contexts: list[str] = []
    targets: list[list[int]] = []
    owners: list[int] = []
    all_positions = []
    for i, (prompt, text, ref) in enumerate(zip(prompt_texts, texts, refs)):
        ctx, pos = _probe_contexts(prompt, text, tokenizer, points, suffix, answer_marker)
        all_positions.append(pos)
        if ref is None or not ref:
            continue
        contexts += ctx
        targets += [list(tokenizer.encode(ref))] * points
        owners.append(i)
    c = np.zeros((len(texts), points))
    if not owners:
        return c, all_positions, refs
    values = np.empty(len(contexts))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    was_training = model.training
    try:
        model.eval()
        if method == "exact":
            with torch.no_grad():
                for lo in range(0, len(contexts), batch_size):
                    logp, _ = completion_logprobs(
                        model, contexts[lo : lo + batch_size], targets[lo : lo + batch_size], tokenizer=tokenizer
                    )
                    values[lo : lo + batch_size] = logp.sum(dim=1).exp().double().numpy()
        else:
            drawn = sample(
                model, contexts, n=samples, temperature=1.0, max_new_tokens=max_new_tokens, stop=("\n",),
                seed=seed, batch_size=max(1, batch_size // samples), tokenizer=tokenizer, answer=_first_word,
                threads=threads,
            )  # fmt: skip
            want = [tokenizer.decode(t) for t in targets]
            values[:] = [np.mean([d.answer == w for d in group]) for group, w in zip(drawn, want)]
    finally:
        torch.set_num_threads(previous)
        model.train(was_training)
    c[owners] = values.reshape(len(owners), points)
    return c, all_positions, refs


def confidence_trajectory(
    model: Any,
    tokenizer: Any,
    example_or_prompt: Example | str,
    completion: Completion | str,
    *,
    points: int = 6,
    reference: str | None = None,
    method: str = "exact",
    samples: int = 10,
    suffix: str = ANSWER_SUFFIX,
    answer_marker: str = "ANS",
    tau: float = 0.4,
    resolution: float | None = None,
    max_new_tokens: int = 4,
    seed: int = 0,
    threads: int = 1,
) -> Trajectory:
    """The probability of the final answer at ``points`` truncation points of a chain of thought, and its scores.

    The CoT (:func:`cot_span`) is cut after ``round(k L / (points - 1))`` of its ``L`` tokens,
    ``k = 0 ... points - 1``; after each cut, ``suffix`` forces an immediate answer and ``c_k``
    is the probability that the answer is ``reference``. Then ``rho`` = Spearman(c, k)
    (:func:`~ontheline.research.confidence.progressiveness`), the label "progressive" when
    ``rho >= tau`` and "premature" otherwise (a constant ``c`` too), and the overconfidence score
    ``O = <c, w>``, ``w = linspace(0.5, -0.5, points)``
    (:func:`~ontheline.research.confidence.overconfidence`).

    Parameters
    ----------
    model : transformers causal LM
        The lab's GPT or any local Hugging Face causal LM (:func:`ontheline.research.lm.load`).
    tokenizer : tokenizer or None
        The lab's :class:`~ontheline.research.lm.CharTokenizer` when None.
    example_or_prompt : Example or str
        The prompt the completion answers.
    completion : Completion or str
        The completion: its CoT, then its answer line.
    points : int
        ``K``: 11 in the paper's analysis, 6 in training.
    reference : str, optional
        The answer to measure; the completion's own final answer (:func:`~ontheline.research.lm.answer_of`)
        by default. When there is none, ``c`` is all 0.
    method : {"exact", "mc"}
        One batched forward pass (the probability of the reference's tokens), or the paper's
        Monte-Carlo probe: the share of ``samples`` continuations at temperature 1 whose first word
        is the reference (each at most ``max_new_tokens`` tokens, ending at a newline).
    samples : int
        ``M`` for the Monte-Carlo probe (10 in the paper).
    suffix : str
        Appended after each cut (a leading newline is dropped after a newline).
    answer_marker : str
        The line that carries the answer, where the CoT ends when there are no tags.
    tau : float
        The progressiveness threshold of the label.
    resolution : float, optional
        Round ``c`` to multiples of this before ranking it (the progressiveness and the label):
        ``1 / samples`` gives the exact probe the Monte-Carlo probe's ties.
    seed : int
        The Monte-Carlo samples are a function of it.
    threads : int
        ``torch.set_num_threads`` for the call (restored after).

    Returns
    -------
    Trajectory

    References
    ----------
    .. [1] J. Gai, Z. Zeng, C. Baek, Y. Wu, Z. Kolter, A. Risteski and A. Raghunathan, "Premature Confidence in
       Chain-of-Thought Reasoning" (progressive confidence shaping), arXiv 2026, arXiv:2605.24396.

    Examples
    --------
    >>> from ontheline.research.lm import CharTokenizer, digit_sums, tiny_gpt, train
    >>> model = tiny_gpt(CharTokenizer().vocab_size, n_layer=1, n_embd=32)
    >>> _ = train(model, digit_sums(256, seed=0, digits=4), steps=30, batch_size=16, lr=3e-3)
    >>> ex = digit_sums(1, seed=1, digits=4)[0]
    >>> print(ex.prompt + ex.completion)
    4 5 7 9 =
    4 9 6 5
    ANS 5
    >>> t = confidence_trajectory(model, None, ex, ex.completion, points=4)
    >>> t.positions, t.reference, t.confidence.shape
    ((0, 2, 5, 7), '5', (4,))
    >>> mc = confidence_trajectory(model, None, ex, ex.completion, points=4, method="mc", samples=50)
    >>> bool(np.abs(mc.confidence - t.confidence).max() < 0.3)
    True
    """
    c, positions, refs = confidence_trajectories(
        model, [example_or_prompt], [completion], tokenizer=tokenizer, points=points,
        references=None if reference is None else [reference], method=method, samples=samples, suffix=suffix,
        answer_marker=answer_marker, max_new_tokens=max_new_tokens, seed=seed, threads=threads,
    )  # fmt: skip
    rho = float(progressiveness(c[0], resolution))
    return Trajectory(
        c[0], positions[0], refs[0], rho, str(classify(c[0], tau, resolution)), float(overconfidence(c[0]))
    )


__all__ = ["ANSWER_SUFFIX", "METHODS", "Trajectory", "confidence_trajectories", "confidence_trajectory", "cot_span"]
