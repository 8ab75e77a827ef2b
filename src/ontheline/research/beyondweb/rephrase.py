"""Source rephrasing: deterministic, fact-preserving templates, and the ungrounded n-gram control.

Each strategy takes a document's facts (what :func:`~ontheline.research.beyondweb.parse_facts`
reads in it) and writes them again in another format; ``variant`` rotates the order of the
facts and the phrasings, so a document rephrased twice is not rephrased identically:

- ``"summary"``: a condensed knowledge list, a line per entity (``- Tikeba: city seaport; job pilot.``);
- ``"qa"``: question-answer pairs (``Q: Where does Tikeba live?`` / ``A: Tikeba lives in seaport.``);
- ``"chat"``: conversational turns (``User: Where does Tikeba live?`` / ``Assistant: seaport``),
  the style of deployment;
- ``"tutorial"``: an explanatory paragraph that walks through the facts.

Every one of them states exactly the source's facts (the tests check it with the parser, over
many documents). The control, ``"continuation"``, is what an ungrounded generator writes: text
sampled from a word trigram model fitted on the web documents (:class:`NgramModel`), continuing
the document. It looks like the web but asserts no fact: a sampled sentence in which the parser
finds a fact, right or wrong, is drawn again (:func:`continuation`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ontheline.research.beyondweb.facts import Fact, parse_facts, question_text
from ontheline.research.lm.tasks.facts import phrase

#: The fact-preserving strategies, in the order the diverse mixture lists them.
STRATEGIES = ("summary", "qa", "chat", "tutorial")
#: The ungrounded control.
CONTROL = "continuation"

_SUMMARY_HEADERS = ("Key facts:", "Summary:", "In short:")
_TUTORIAL_OPENERS = ("In this lesson we learn about {names}.", "Let us study {names}.",
                     "Here is a short tutorial on {names}.")  # fmt: skip
_TUTORIAL_STEPS = ("First, ", "Next, ", "Also, ", "Then, ", "Moreover, ", "Finally, ")
_TUTORIAL_CLOSERS = ("Remember these facts about {names}.", "That is what to know about {names}.",
                     "Now you know {names} better.")  # fmt: skip


def _rotated(facts: Sequence[Fact], variant: int) -> list[Fact]:
    facts = list(facts)
    if not facts:
        raise ValueError("facts must hold at least one (entity, attribute, value) triple to rephrase.")
    k = variant % len(facts)
    return facts[k:] + facts[:k]


def _entities(facts: Sequence[Fact]) -> list[str]:
    return list(dict.fromkeys(e for e, _, _ in facts))


def _names(entities: Sequence[str]) -> str:
    return entities[0] if len(entities) == 1 else ", ".join(entities[:-1]) + " and " + entities[-1]


def summary(facts: Sequence[Fact], variant: int = 0) -> str:
    """A knowledge list: a header, then a line per entity with its attributes and values.

    Examples
    --------
    >>> print(summary([("Tikeba", "city", "seaport"), ("Moneste", "year", "1981"), ("Tikeba", "job", "pilot")]))
    Key facts:
    - Tikeba: city seaport; job pilot.
    - Moneste: year 1981.
    """
    ordered = _rotated(facts, variant)
    lines = [_SUMMARY_HEADERS[variant % len(_SUMMARY_HEADERS)]]
    for entity in _entities(ordered):
        items = [f"{a} {v}" for e, a, v in ordered if e == entity]
        lines.append(f"- {entity}: {'; '.join(items)}.")
    return "\n".join(lines)


def qa_pairs(facts: Sequence[Fact], variant: int = 0) -> str:
    """Question-answer pairs, a question and a full-sentence answer per fact.

    Examples
    --------
    >>> print(qa_pairs([("Tikeba", "city", "seaport")]))
    Q: Where does Tikeba live?
    A: Tikeba lives in seaport.
    """
    ordered = _rotated(facts, variant)
    return "\n".join(f"Q: {question_text(e, a)}\nA: {phrase(e, a, v, variant + i)}"
                     for i, (e, a, v) in enumerate(ordered))  # fmt: skip


def conversation(facts: Sequence[Fact], variant: int = 0) -> str:
    """Conversational turns: the user asks about each fact, the assistant answers with the value.

    Examples
    --------
    >>> print(conversation([("Tikeba", "city", "seaport"), ("Tikeba", "year", "1990")]))
    User: Where does Tikeba live?
    Assistant: seaport
    User: When was Tikeba born?
    Assistant: 1990
    """
    ordered = _rotated(facts, variant)
    return "\n".join(f"User: {question_text(e, a)}\nAssistant: {v}" for e, a, v in ordered)


def tutorial(facts: Sequence[Fact], variant: int = 0) -> str:
    """An explanatory paragraph: an opening, the facts one step at a time, a closing.

    Examples
    --------
    >>> print(tutorial([("Tikeba", "city", "seaport"), ("Moneste", "year", "1981")]))
    In this lesson we learn about Tikeba and Moneste. First, Tikeba lives in seaport. Finally, Moneste came into the world in 1981. Remember these facts about Tikeba and Moneste.
    """
    ordered = _rotated(facts, variant)
    names = _names(_entities(ordered))
    sentences = [_TUTORIAL_OPENERS[variant % len(_TUTORIAL_OPENERS)].format(names=names)]
    for i, fact in enumerate(ordered):
        last = i == len(ordered) - 1 and i > 0
        step = _TUTORIAL_STEPS[0 if i == 0 else -1 if last else 1 + (i - 1) % (len(_TUTORIAL_STEPS) - 2)]
        said = phrase(*fact, variant + i)
        if said.startswith("The ") or said.startswith("By "):
            said = said[0].lower() + said[1:]
        sentences.append(step + said)
    sentences.append(_TUTORIAL_CLOSERS[variant % len(_TUTORIAL_CLOSERS)].format(names=names))
    return " ".join(sentences)


#: The fact-preserving rephrasers by strategy name: ``rephraser(facts, variant) -> str``.
REPHRASERS: dict[str, Callable[[Sequence[Fact], int], str]] = {
    "summary": summary, "qa": qa_pairs, "chat": conversation, "tutorial": tutorial,
}  # fmt: skip


def rephrase(facts: Sequence[Fact], strategy: str, variant: int = 0) -> str:
    """Rephrase a document's facts with one strategy of :data:`STRATEGIES`.

    Parameters
    ----------
    facts : sequence of (entity, attribute, value)
        The source document's facts, at least one.
    strategy : {"summary", "qa", "chat", "tutorial"}
    variant : int
        Rotates the order and the phrasings (the facts are the same for every variant).

    Raises
    ------
    ValueError
        If ``strategy`` is not one of :data:`STRATEGIES` (the control needs a fitted model:
        see :func:`continuation`), or ``facts`` is empty.

    Examples
    --------
    >>> rephrase([("Tikeba", "city", "seaport")], "chat")
    'User: Where does Tikeba live?\\nAssistant: seaport'
    """
    if strategy not in REPHRASERS:
        hint = " (the control, 'continuation', is made by continuation())" if strategy == CONTROL else ""
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}{hint}; got {strategy!r}.")
    return REPHRASERS[strategy](facts, variant)


class NgramModel:
    """A word n-gram model fitted on documents, with backoff to shorter contexts.

    Words are split on whitespace (a full stop stays on its word, so a word ending in ``.``
    ends a sentence). Each document starts from ``n - 1`` start markers; the counts run
    across sentence boundaries within a document, so the model continues a document.

    Parameters
    ----------
    documents : sequence of str
    n : int
        The order (3: a trigram model).

    Examples
    --------
    >>> model = NgramModel(["the cat sat. the dog ran."], n=2)
    >>> words = model.sample(["the"], 4, np.random.default_rng(0))
    >>> all(w in {"cat", "dog", "sat.", "ran.", "the"} for w in words)
    True
    """

    START = "<s>"

    def __init__(self, documents: Sequence[str], n: int = 3) -> None:
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer; got {n!r}.")
        if not documents or not any(d.split() for d in documents):
            raise ValueError("documents must hold at least one document with words to fit the n-gram model on.")
        self.n = n
        counts: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
        for doc in documents:
            words = [self.START] * (n - 1) + doc.split()
            for i in range(n - 1, len(words)):
                for k in range(n):  # contexts of length 0 .. n-1
                    counts[tuple(words[i - k : i])][words[i]] += 1
        self._table: dict[tuple[str, ...], tuple[list[str], np.ndarray]] = {}
        for context, counter in counts.items():
            words_, weights = zip(*sorted(counter.items()))
            cumulative = np.cumsum(np.asarray(weights, dtype=float))
            self._table[context] = (list(words_), cumulative / cumulative[-1])

    def next_word(self, context: Sequence[str], rng: np.random.Generator) -> str:
        """One word after ``context``, from the longest context seen in fitting."""
        context = tuple(context)[-(self.n - 1) :] if self.n > 1 else ()
        for k in range(len(context), -1, -1):
            found = self._table.get(context[len(context) - k :])
            if found is not None:
                words, cumulative = found
                return words[min(int(np.searchsorted(cumulative, rng.random(), side="right")), len(words) - 1)]
        raise AssertionError("the empty context is always fitted")  # pragma: no cover

    def sample(self, context: Sequence[str], n_words: int, rng: np.random.Generator) -> list[str]:
        """``n_words`` words after ``context``."""
        history = list(context)
        out = []
        for _ in range(n_words):
            word = self.next_word(history, rng)
            out.append(word)
            history.append(word)
        return out


def continuation(
    document: str, model: NgramModel, world: Any, *, seed: int, characters: int | None = None, tries: int = 20
) -> str:
    """The ungrounded control: sentences an n-gram model writes after ``document``, stating no fact.

    Sentences are sampled word by word after the document's last words until the text is at
    least ``characters`` long (the document's length by default). A sentence in which
    :func:`~ontheline.research.beyondweb.parse_facts` finds a fact (true or false) is drawn
    again from the same context, up to ``tries`` times, then dropped; so the continuation
    adds no fact, and asserts none wrongly either.

    Parameters
    ----------
    document : str
        The source (its text is not repeated in the result).
    model : NgramModel
        Fitted on the web documents.
    world : FactWorld
        For the parser.
    seed : int
    characters : int, optional
    tries : int

    Examples
    --------
    >>> from ontheline.research.lm import FactWorld
    >>> world = FactWorld(20, seed=0)
    >>> docs = world.documents(50, seed=0, facts=2)
    >>> text = continuation(docs[0], NgramModel(docs), world, seed=0)
    >>> len(text) >= len(docs[0]), parse_facts(text, world)
    (True, [])
    """
    target = len(document) if characters is None else characters
    if target < 1:
        raise ValueError(f"characters must be at least 1; got {characters!r}.")
    if isinstance(tries, bool) or not isinstance(tries, (int, np.integer)) or tries < 1:
        raise ValueError(f"tries must be an integer of at least 1 (draws per sentence); got {tries!r}.")
    rng = np.random.default_rng(seed)
    history = [NgramModel.START] * (model.n - 1) + document.split()
    sentences: list[str] = []
    length, attempts = 0, 0
    while length < target and attempts < 50 * tries + 100:
        for _ in range(tries):
            attempts += 1
            words: list[str] = []
            while len(words) < 40 and not (words and words[-1].endswith(".")):
                words.append(model.next_word(history + words, rng))
            if not words[-1].endswith("."):
                words[-1] += "."
            sentence = " ".join(words)
            sentence = sentence[0].upper() + sentence[1:]
            if not parse_facts(sentence, world) and not parse_facts(" ".join([*sentences, sentence]), world):
                sentences.append(sentence)
                history += words
                length += len(sentence) + (1 if len(sentences) > 1 else 0)
                break
        else:
            history = [NgramModel.START] * (model.n - 1)  # start afresh from a document start
    return " ".join(sentences)


__all__ = ["CONTROL", "REPHRASERS", "STRATEGIES", "NgramModel", "continuation", "conversation", "qa_pairs",
           "rephrase", "summary", "tutorial"]  # fmt: skip
