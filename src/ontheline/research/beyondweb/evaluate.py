"""Evaluation: closed-book fact QA in chat format, a cloze probe in the web's phrasing, held-out web perplexity.

QA asks ``"User: <question>\\nAssistant: "`` and scores each value of the attribute by the
log-probability of its characters after the prompt; a fact is answered right when the true
value scores highest (no value of an attribute is a prefix of another, so whole values compare
fairly). The cloze probe asks the same facts in the web's own phrasing (``"Tikeba lives in "``),
which shows what the model knows apart from the format it is asked in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ontheline.research.beyondweb.facts import Fact, question_text
from ontheline.research.lm.tasks import STATEMENTS


def chat_prompt(entity: str, attribute: str) -> str:
    """The closed-book question about one fact, as a user asks it in a chat.

    Examples
    --------
    >>> chat_prompt("Tikeba", "city")
    'User: Where does Tikeba live?\\nAssistant: '
    """
    return f"User: {question_text(entity, attribute)}\nAssistant: "


def cloze_prompt(entity: str, attribute: str) -> str:
    """The fact's first web phrasing up to the value (a statement to complete).

    Examples
    --------
    >>> cloze_prompt("Tikeba", "city")
    'Tikeba lives in '
    """
    template = STATEMENTS.get(attribute, ("The {a} of {e} is {v}.",))[0]
    return template.split("{v}")[0].format(e=entity, a=attribute)


def choice_accuracy(
    model: Any,
    facts: Sequence[Fact],
    attributes: dict[str, Sequence[str]],
    *,
    prompt: str = "chat",
    prefixes: Sequence[str] | None = None,
    batch_size: int = 512,
) -> dict[str, Any]:
    """The share of ``facts`` whose true value has the highest log-probability among the attribute's values.

    Parameters
    ----------
    model : transformers causal LM
    facts : sequence of (entity, attribute, value)
    attributes : dict of attribute to its values
    prompt : {"chat", "cloze"}
        :func:`chat_prompt` or :func:`cloze_prompt`.
    prefixes : sequence of str, optional
        Text put before each fact's prompt, one per fact (e.g. an earlier chat turn, to ask in
        the middle of a conversation rather than at its start).
    batch_size : int
        Prompt-value rows per forward pass.

    Returns
    -------
    dict
        ``accuracy`` (float), ``correct`` (list of bool, one per fact), ``chance`` (the mean of
        1 / number of values).
    """
    import torch

    from ontheline.research.lm import CharTokenizer, completion_logprobs

    if prompt not in ("chat", "cloze"):
        raise ValueError(f"prompt must be 'chat' or 'cloze'; got {prompt!r}.")
    if not facts:
        raise ValueError("facts must hold at least one (entity, attribute, value) triple to ask about.")
    make = chat_prompt if prompt == "chat" else cloze_prompt
    if prefixes is not None and len(prefixes) != len(facts):
        raise ValueError(f"prefixes must hold one text per fact: expected {len(facts)}, got {len(prefixes)}.")
    before = list(prefixes) if prefixes is not None else [""] * len(facts)
    tok = CharTokenizer()
    rows: list[tuple[str, list[int]]] = []
    spans = []
    for (e, a, _), head in zip(facts, before):
        values = attributes[a]
        spans.append((len(rows), len(values)))
        rows += [(head + make(e, a), tok.encode(v)) for v in values]
    longest = 1 + max(len(tok.encode(p)) + len(ids) for p, ids in rows)
    positions = getattr(model.config, "n_positions", longest)
    if longest > positions:
        raise ValueError(f"The longest prompt and value take {longest} tokens, more than the model's {positions} "
                         "positions; use shorter prefixes or a model with more positions.")  # fmt: skip
    scores = np.empty(len(rows))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for lo in range(0, len(rows), batch_size):
                part = rows[lo : lo + batch_size]
                lp, mask = completion_logprobs(model, [p for p, _ in part], [ids for _, ids in part])
                scores[lo : lo + len(part)] = (lp * mask).sum(1).numpy()
    finally:
        model.train(was)
    correct = []
    for (start, k), (_, a, v) in zip(spans, facts):
        best = int(np.argmax(scores[start : start + k]))
        correct.append(attributes[a][best] == v)
    chance = float(np.mean([1.0 / len(attributes[a]) for _, a, _ in facts]))
    return {"accuracy": float(np.mean(correct)), "correct": correct, "chance": chance}


def earlier_turns(facts: Sequence[Fact]) -> list[str]:
    """For each fact, a chat turn about the next fact of the list (cyclically) that asks another question.

    Examples
    --------
    >>> earlier_turns([("Tikeba", "city", "seaport"), ("Moneste", "year", "1991")])
    ['User: When was Moneste born?\\nAssistant: 1991\\n', 'User: Where does Tikeba live?\\nAssistant: seaport\\n']
    """
    facts = list(facts)
    if len({f[:2] for f in facts}) < 2:
        raise ValueError(
            f"earlier_turns needs facts about at least 2 questions (a turn must ask another); got {facts!r}."
        )
    # the next fact that asks another question, so no conversation asks (or answers) the asked one
    n = len(facts)
    shifted = [next(facts[(i + k) % n] for k in range(1, n) if facts[(i + k) % n][:2] != f[:2])
               for i, f in enumerate(facts)]  # fmt: skip
    return [f"User: {question_text(e, a)}\nAssistant: {v}\n" for e, a, v in shifted]


def perplexity(model: Any, documents: Sequence[str], *, context: int | None = None) -> float:
    """``exp`` of the mean next-token loss (nats per character) on ``documents``, rows as training lays them out."""
    from ontheline.research.lm import mean_loss

    return math.exp(mean_loss(model, list(documents), context=context))


__all__ = ["chat_prompt", "choice_accuracy", "cloze_prompt", "earlier_turns", "perplexity"]
