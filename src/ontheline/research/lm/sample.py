"""Batched sampling with log-probabilities, stop strings and answers, ready for pass@k.

:func:`sample` draws ``n`` completions per prompt with ``model.generate`` (its KV cache,
temperature, top-k and top-p) and returns, for each, the text, the sampled token ids, each
token's log-probability under the model and the extracted answer. :func:`samples_table`
turns them into the rows ``{problem, sample, answer, correct, score}`` that
:func:`ontheline.research.passk.group_samples` reads. :func:`completion_logprobs` recomputes
the log-probabilities of given completions in one differentiable forward pass (for GRPO's
policy ratio, or to check :func:`sample`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ontheline._optional import extra
from ontheline.research.lm.tasks import Example, answer_of
from ontheline.research.lm.tokenizer import CharTokenizer, pad


@dataclass(frozen=True)
class Completion:
    """One sampled completion of a prompt.

    Attributes
    ----------
    text : str
        The completion, cut before the stop string (or ``<eos>``); no special tokens.
    token_ids : tuple of int
        The tokens sampled, up to and including the one that stopped it (``<eos>``, or the
        last token of the stop string): every action the model took.
    logprobs : tuple of float
        ``log p(token | prompt, earlier tokens)`` of each of ``token_ids`` under the model
        itself (temperature 1, before top-k / top-p), as a forward pass gives it.
    answer : str or None
        The extracted answer (:func:`ontheline.research.lm.answer_of` by default).
    stop : str or None
        What ended it: ``"eos"``, the stop string, or None when it reached ``max_new_tokens``.

    Examples
    --------
    >>> ids = tuple(CharTokenizer().encode("ANS 5", eos=True))
    >>> c = Completion("ANS 5", ids, (-0.5, -0.1, -0.1, -0.1, -1.0, -0.2), "5", "eos")
    >>> len(c.token_ids), round(c.logprob, 3), round(c.mean_logprob, 3)
    (6, -2.0, -0.333)
    """

    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    answer: str | None
    stop: str | None

    @property
    def logprob(self) -> float:
        """The log-probability of the whole completion (the sum over its tokens)."""
        return float(sum(self.logprobs))

    @property
    def mean_logprob(self) -> float:
        """The mean log-probability per token (the model's confidence; -inf when empty)."""
        return self.logprob / len(self.logprobs) if self.logprobs else float("-inf")


def sample(
    model: Any,
    prompts: Sequence[str] | Sequence[Example],
    *,
    n: int = 1,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    max_new_tokens: int = 64,
    stop: Sequence[str] = ("\n\n",),
    seed: int = 0,
    batch_size: int = 32,
    tokenizer: Any = None,
    answer: Callable[[str], str | None] = answer_of,
    use_cache: bool = True,
    threads: int = 1,
) -> list[list[Completion]]:
    """Sample ``n`` completions of each prompt; greedy decoding with ``greedy=True`` (or temperature 0).

    Parameters
    ----------
    model : transformers causal LM
    prompts : sequence of str or Example
        Each is encoded as ``<bos> prompt`` and left-padded in its batch.
    n : int
        Completions per prompt (``num_return_sequences``). Greedy decoding computes one and
        repeats it.
    temperature, top_k, top_p
        Sampling: the logits are divided by ``temperature``, then only the ``top_k`` most
        likely tokens and the smallest set of probability ``top_p`` are kept (None: no
        truncation).
    greedy : bool
        The most likely token at every step.
    max_new_tokens : int
        The longest completion, in tokens.
    stop : sequence of str
        A completion ends at ``<eos>`` or at the first of these strings (cut before it);
        ``()`` for ``<eos>`` alone.
    seed : int
        Seeds torch's RNG around the whole call (forked: the global RNG is left as it was).
        The samples are a function of the seed, the prompts and ``batch_size``.
    batch_size : int
        Prompts per ``generate`` call (each with its ``n`` completions).
    tokenizer : optional
        The lab's :class:`~ontheline.research.lm.CharTokenizer` by default; any object with
        ``encode``, ``decode``, ``pad_id``, ``bos_id`` and ``eos_id``.
    answer : callable
        Extracts the answer from a completion's text.
    use_cache : bool
        Reuse the attention keys and values of earlier tokens (``generate``'s KV cache).
    threads : int
        ``torch.set_num_threads`` for the call (restored after).

    Returns
    -------
    list of list of Completion
        ``out[i][j]`` is the ``j``-th completion of prompt ``i``.

    References
    ----------
    .. [1] A. Holtzman, J. Buys, L. Du, M. Forbes and Y. Choi, "The Curious Case of Neural Text
       Degeneration", ICLR 2020, arXiv:1904.09751 (top-p sampling).

    Examples
    --------
    >>> from ontheline.research.lm import CharTokenizer, tiny_gpt
    >>> model = tiny_gpt(CharTokenizer().vocab_size, n_layer=1, n_embd=16)
    >>> out = sample(model, ["2+3=\\n", "7*8=\\n"], n=3, max_new_tokens=5, seed=0)
    >>> len(out), len(out[0]), len(out[0][0].logprobs) <= 5
    (2, 3, True)
    >>> out == sample(model, ["2+3=\\n", "7*8=\\n"], n=3, max_new_tokens=5, seed=0)
    True
    """
    with extra("torch"):
        import torch

    tokenizer = tokenizer or CharTokenizer()
    texts = [p.prompt if isinstance(p, Example) else p for p in prompts]
    if isinstance(prompts, str) or not all(isinstance(t, str) for t in texts):
        raise ValueError("prompts must be a sequence of strings or Examples; for one prompt, pass [prompt].")
    if n < 1 or batch_size < 1 or max_new_tokens < 1:
        raise ValueError("n, batch_size and max_new_tokens must be at least 1.")
    if temperature < 0 or (top_p is not None and not 0 < top_p <= 1) or (top_k is not None and top_k < 1):
        raise ValueError("temperature must be >= 0, top_p in (0, 1] and top_k >= 1.")
    greedy = greedy or temperature == 0
    stops = [s for s in stop if s]
    stop_ids = [list(tokenizer.encode(s)) for s in stops]
    config = _generation_config(
        tokenizer, greedy=greedy, n=1 if greedy else n, temperature=temperature, top_k=top_k, top_p=top_p,
        max_new_tokens=max_new_tokens, use_cache=use_cache,
    )  # fmt: skip
    previous_threads, was_training = torch.get_num_threads(), model.training
    torch.set_num_threads(threads)
    out: list[list[Completion]] = []
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for lo in range(0, len(texts), batch_size):
                chunk = texts[lo : lo + batch_size]
                rows = [[tokenizer.bos_id, *tokenizer.encode(t)] for t in chunk]
                ids, mask = (torch.from_numpy(a).to(device) for a in pad(rows, tokenizer.pad_id, side="left"))
                criteria = _stopping_criteria(stop_ids, ids.shape[1])
                with torch.no_grad():
                    result = model.generate(
                        input_ids=ids, attention_mask=mask, generation_config=config, stopping_criteria=criteria
                    )
                generated = result.sequences[:, ids.shape[1] :]
                logprobs = torch.stack(result.logits, dim=1).float().log_softmax(-1)
                chosen = logprobs.gather(-1, generated[..., None])[..., 0]
                per_row = [
                    _completion(g, lp, tokenizer, stops, answer) for g, lp in zip(generated.tolist(), chosen.tolist())
                ]
                per_prompt = len(per_row) // len(chunk)
                for i in range(len(chunk)):
                    mine = per_row[i * per_prompt : (i + 1) * per_prompt]
                    out.append(mine * n if greedy else mine)
    finally:
        torch.set_num_threads(previous_threads)
        model.train(was_training)
    return out


def _generation_config(
    tokenizer: Any,
    *,
    greedy: bool,
    n: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    max_new_tokens: int,
    use_cache: bool,
) -> Any:
    with extra("hf"):
        from transformers import GenerationConfig

    settings: dict[str, Any] = {
        "max_new_tokens": max_new_tokens, "do_sample": not greedy, "num_return_sequences": n, "use_cache": use_cache,
        "eos_token_id": tokenizer.eos_id, "pad_token_id": tokenizer.pad_id, "bos_token_id": tokenizer.bos_id,
        "output_logits": True, "return_dict_in_generate": True,
    }  # fmt: skip
    if not greedy:  # set every sampling knob, so that no default (a model's own top_k = 50, say) applies
        settings |= {"temperature": float(temperature), "top_k": top_k or 0, "top_p": 1.0 if top_p is None else top_p}
    return GenerationConfig(**settings)


def _stopping_criteria(stop_ids: list[list[int]], prompt_length: int) -> Any:
    """Stop a row once its generated tokens end with a stop string's tokens (the text is cut later)."""
    with extra("hf"):
        from transformers import StoppingCriteria, StoppingCriteriaList
    import torch

    suffixes = [torch.tensor(s, dtype=torch.long) for s in stop_ids if s]

    class StopOnSuffix(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = torch.zeros(input_ids.shape[0], dtype=torch.bool)
            made = input_ids.shape[1] - prompt_length
            for s in suffixes:
                if made >= len(s):
                    done |= (input_ids[:, -len(s) :].cpu() == s).all(dim=1)
            return done.to(input_ids.device)

    return StoppingCriteriaList([StopOnSuffix()] if suffixes else [])


def _completion(
    generated: list[int], logprobs: list[float], tokenizer: Any, stops: list[str], answer: Callable[[str], str | None]
) -> Completion:
    piece = getattr(tokenizer, "piece", None) or (lambda t: tokenizer.decode([t]))
    text, end, reason = "", len(generated), None
    for i, token in enumerate(generated):
        if token == tokenizer.eos_id:
            end, reason = i + 1, "eos"
            break
        added = piece(token)
        text += added
        hits = [(found, s) for s in stops if (found := text.find(s, max(0, len(text) - len(added) - len(s) + 1))) >= 0]
        if hits:
            cut, reason = min(hits)
            text, end = text[:cut], i + 1
            break
    return Completion(text, tuple(generated[:end]), tuple(logprobs[:end]), answer(text), reason)


def completion_logprobs(
    model: Any,
    prompts: Sequence[str] | Sequence[Example],
    completions: Sequence[Sequence[int]] | Sequence[Completion],
    *,
    tokenizer: Any = None,
    temperature: float = 1.0,
) -> tuple[Any, Any]:
    """Each completion token's log-probability under ``model``, in one batched forward pass.

    The batch is laid out as :func:`sample` lays it out (``<bos> prompt`` left-padded, the
    completion after it, right-padded; positions counted from each row's first real token),
    so the values match the sampled ``Completion.logprobs``. Gradients flow (wrap the call in
    ``torch.no_grad()`` when none are needed): this is the policy's log-probability for
    GRPO's ratio and KL.

    Parameters
    ----------
    model : transformers causal LM
    prompts : sequence of str or Example
        One per completion (repeat a prompt for each of its completions).
    completions : sequence of token-id sequences, or of Completion
    tokenizer : optional
        The lab's :class:`~ontheline.research.lm.CharTokenizer` by default.
    temperature : float
        Divide the logits by this first: the log-probabilities of the tempered distribution
        that :func:`sample` drew from at this temperature (before top-k / top-p).

    Returns
    -------
    logprobs : torch.Tensor of shape (len(completions), longest completion)
        0 at padding.
    mask : torch.Tensor of bool, same shape
        True at real completion tokens.

    Examples
    --------
    >>> import torch
    >>> from ontheline.research.lm import CharTokenizer, tiny_gpt
    >>> model = tiny_gpt(CharTokenizer().vocab_size, n_layer=1, n_embd=16)
    >>> [[c]] = sample(model, ["2+3=\\n"], max_new_tokens=4, stop=(), seed=1)
    >>> with torch.no_grad():
    ...     lp, mask = completion_logprobs(model, ["2+3=\\n"], [c])
    >>> torch.allclose(lp[0], torch.tensor(c.logprobs), atol=1e-5), mask.tolist()
    (True, [[True, True, True, True]])
    """
    with extra("torch"):
        import torch

    tokenizer = tokenizer or CharTokenizer()
    texts = [p.prompt if isinstance(p, Example) else p for p in prompts]
    ids = [list(c.token_ids) if isinstance(c, Completion) else [int(t) for t in c] for c in completions]
    if len(texts) != len(ids):
        raise ValueError(f"Pass one prompt per completion; got {len(texts)} prompts and {len(ids)} completions.")
    if not ids or not all(ids):
        raise ValueError("Every completion needs at least one token.")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive; got {temperature!r}.")
    prompt_ids, prompt_mask = pad(
        [[tokenizer.bos_id, *tokenizer.encode(t)] for t in texts], tokenizer.pad_id, side="left"
    )
    tail_ids, tail_mask = pad(ids, tokenizer.pad_id, side="right")
    input_ids = torch.from_numpy(np.concatenate([prompt_ids, tail_ids], axis=1))
    mask = torch.from_numpy(np.concatenate([prompt_mask, tail_mask], axis=1))
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    device = next(model.parameters()).device
    input_ids, mask, positions = input_ids.to(device), mask.to(device), positions.to(device)
    logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions).logits
    start, width = prompt_ids.shape[1], tail_ids.shape[1]
    logits = logits[:, start - 1 : start - 1 + width].float()
    logprobs = (logits if temperature == 1.0 else logits / temperature).log_softmax(-1)
    targets = torch.from_numpy(tail_ids).to(device)
    chosen = logprobs.gather(-1, targets[..., None])[..., 0]
    real = torch.from_numpy(tail_mask).bool().to(device)
    return chosen.masked_fill(~real, 0.0), real


def samples_table(
    problems: Sequence[Example] | Sequence[str],
    completions: Sequence[Sequence[Completion]],
    *,
    answers: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per sample, ``{problem, sample, answer, correct, score, ...}``, for the pass@k metrics.

    ``problem`` is the problem's index, ``sample`` the completion's, ``answer`` the extracted
    answer (None without an ``ANS`` line: maj@k then counts it as one more wrong answer),
    ``correct`` whether it equals the reference (``Example.answer``, or ``answers``),
    ``score`` the mean log-probability per token (the model's confidence, which best@k
    ranks by); also ``prompt``, ``logprob`` (the total) and ``tokens``.

    Examples
    --------
    >>> from ontheline.research.passk import group_samples, maj_at_k, pass_at_k
    >>> problems = [Example("2+3=\\n", "2+3=5\\nANS 5", "5")]
    >>> done = [[Completion("ANS 5", (), (-0.5,), "5", "eos"), Completion("ANS 6", (), (-1.0,), "6", "eos")]]
    >>> rows = samples_table(problems, done)
    >>> [(r["answer"], r["correct"], r["score"]) for r in rows]
    [('5', True, -0.5), ('6', False, -1.0)]
    >>> s = group_samples(rows)
    >>> pass_at_k(s.n, s.c, 1).tolist(), maj_at_k(s.answers, s.correct, 2).tolist()
    ([0.5], [0.5])
    """
    if len(problems) != len(completions):
        raise ValueError(
            f"Pass one list of completions per problem; got {len(problems)} problems and {len(completions)}."
        )
    if answers is None:
        if not all(isinstance(p, Example) for p in problems):
            raise ValueError("Pass Examples (their answers are the references), or the reference answers as answers=.")
        answers = [p.answer for p in problems if isinstance(p, Example)]
    elif len(answers) != len(problems):
        raise ValueError(f"Pass one reference answer per problem; got {len(answers)} for {len(problems)} problems.")
    rows = []
    for i, (problem, done, reference) in enumerate(zip(problems, completions, answers)):
        prompt = problem.prompt if isinstance(problem, Example) else problem
        for j, c in enumerate(done):
            rows.append({
                "problem": i, "prompt": prompt, "sample": j, "answer": c.answer,
                "correct": c.answer is not None and c.answer == str(reference),
                "score": c.mean_logprob, "logprob": c.logprob, "tokens": len(c.token_ids),
            })  # fmt: skip
    return rows


__all__ = ["Completion", "completion_logprobs", "sample", "samples_table"]
