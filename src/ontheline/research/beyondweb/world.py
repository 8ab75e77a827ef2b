"""The knowledge world and its web at the data wall: two quality tiers, a fixed count of unique tokens.

The world is the lab's :class:`~ontheline.research.lm.FactWorld` (entities x attributes, one
value each). Its "web" is documents that state some of the facts in the world's plain phrasings:

- **high-quality** (``"hq"``) documents are fact-dense and clean: 3 to 5 fact statements, no
  filler;
- **low-quality** (``"lq"``) documents are sparse and noisy: one statement among up to 5
  sentences of Markov "web" filler (:func:`~ontheline.research.lm.markov_chain`), and the
  statement gives a wrong value a quarter of the time (the web's misinformation).

:func:`web_corpus` builds the web to an exact token budget (the wall: the count of unique web
tokens every pretraining run shares), a share of it from each tier. A token is one character
of the lab's :class:`~ontheline.research.lm.CharTokenizer`, and every document also costs its
``<bos>`` and ``<eos>`` (as :func:`~ontheline.research.lm.train` lays documents out), so that
the tokens counted here are exactly the tokens a model trains on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ontheline.research.beyondweb.facts import Fact, parse_facts
from ontheline.research.lm.tasks import ATTRIBUTES, FactWorld, markov_chain


@dataclass(frozen=True)
class Tier:
    """The shape of a quality tier's documents.

    Attributes
    ----------
    facts : (int, int)
        Fact statements per document, an inclusive range.
    filler : int
        Up to this many sentences of Markov web filler per document.
    errors : float
        The probability that a statement gives a wrong value (drawn uniformly from the others).
    """

    facts: tuple[int, int]
    filler: int
    errors: float


#: The two quality tiers: fact-dense and clean, against sparse, noisy and sometimes wrong.
TIERS: dict[str, Tier] = {
    "hq": Tier(facts=(3, 5), filler=0, errors=0.0),
    "lq": Tier(facts=(1, 1), filler=5, errors=0.25),
}
#: The world's attributes: the lab's, with birth years in one decade (10 values, as many as the
#: cities and jobs), so that no attribute dominates the question set or its chance level.
WORLD_ATTRIBUTES: dict[str, tuple[str, ...]] = {**ATTRIBUTES, "year": tuple(str(y) for y in range(1990, 2000))}
#: Tokens a document costs beyond its characters: ``<bos>`` and ``<eos>``.
SPECIAL_TOKENS = 2
#: Where the document seeds of :func:`heldout_web` start (the training web's are small numbers).
HELDOUT_OFFSET = 1_000_000


def doc_tokens(document: str) -> int:
    """The tokens one document costs in training: one per character, plus ``<bos>`` and ``<eos>``.

    Examples
    --------
    >>> doc_tokens("Tikeba lives in seaport.")
    26
    """
    return len(document) + SPECIAL_TOKENS


def corpus_tokens(documents: Sequence[str]) -> int:
    """The tokens of a corpus: :func:`doc_tokens` summed.

    Examples
    --------
    >>> corpus_tokens(["ab", "cde"])
    9
    """
    return sum(doc_tokens(d) for d in documents)


def fill(stream: Iterator[str], tokens: int, *, name: str = "tokens") -> list[str]:
    """Documents from ``stream`` until they cost exactly ``tokens``, the last one cut short to fit.

    A document is taken whole while it fits with room to spare for another (at least
    ``<bos>``, one character and ``<eos>``) or fills the budget exactly. A document that would
    leave 1 or 2 tokens is shortened to leave 3, and one that does not fit is cut to the
    characters left (the last). So the result always costs exactly ``tokens`` (:func:`corpus_tokens`).

    Parameters
    ----------
    stream : iterator of str
        Non-empty documents; it must not run dry before the budget is met.
    tokens : int
        0, or at least 3 (one document of one character).
    name : str
        The argument's name in error messages.

    Raises
    ------
    ValueError
        If ``tokens`` is negative, 1 or 2, or the stream runs dry first.

    Examples
    --------
    >>> fill(iter(["abcd", "efgh", "ijkl"]), 12)
    ['abcd', 'efgh']
    >>> fill(iter(["abcd", "efgh", "ijkl"]), 13)
    ['abcd', 'ef', 'i']
    >>> corpus_tokens(fill(iter(["abcd"] * 9), 20))
    20
    """
    if not isinstance(tokens, (int, np.integer)) or tokens < 0 or 0 < tokens < SPECIAL_TOKENS + 1:
        raise ValueError(f"{name} must be 0 or an integer of at least {SPECIAL_TOKENS + 1}; got {tokens!r}.")
    out: list[str] = []
    left, empty = int(tokens), 0
    while left > 0:
        doc = next(stream, None)
        if doc is None:
            raise ValueError(f"The documents ran out with {left} of the {tokens} {name} still to fill.")
        if not doc:
            empty += 1
            if empty > 1000:  # e.g. continuations that could not avoid stating a fact
                raise ValueError(f"The documents came 1,000 empty in a row with {left} {name} still to fill.")
            continue
        empty = 0
        cost, smallest = doc_tokens(doc), SPECIAL_TOKENS + 1
        if cost == left or cost <= left - smallest:  # whole, with room for another document or none needed
            out.append(doc)
            left -= cost
        elif cost > left:  # the last document, cut to fit
            out.append(doc[: left - SPECIAL_TOKENS])
            left = 0
        elif len(doc) > smallest - (left - cost):  # it would leave 1 or 2 tokens: cut it to leave room for one more
            out.append(doc[: len(doc) - (smallest - (left - cost))])
            left = smallest
    return out


@dataclass(frozen=True)
class WebCorpus:
    """The web at the wall: documents, their tier and the facts each states.

    Attributes
    ----------
    documents : tuple of str
    tiers : tuple of str
        ``"hq"`` or ``"lq"``, one per document.
    facts : tuple of tuple of Fact
        The facts :func:`~ontheline.research.beyondweb.parse_facts` reads in each document.
    tokens : int
        :func:`corpus_tokens` of the documents: the unique web tokens.
    """

    documents: tuple[str, ...]
    tiers: tuple[str, ...]
    facts: tuple[tuple[Fact, ...], ...]
    tokens: int

    def fact_set(self, tier: str | None = None) -> set[Fact]:
        """Every fact the web (or one tier of it) states at least once, right or wrong."""
        return {f for t, fs in zip(self.tiers, self.facts) for f in fs if tier is None or t == tier}

    def statements(self, tier: str | None = None) -> int:
        """How many fact statements the web (or one tier) makes, counting each document's once."""
        return sum(len(fs) for t, fs in zip(self.tiers, self.facts) if tier is None or t == tier)

    def tier_tokens(self, tier: str) -> int:
        """The tokens of one tier's documents."""
        return corpus_tokens([d for d, t in zip(self.documents, self.tiers) if t == tier])


def make_world(n_entities: int, seed: int) -> FactWorld:
    """The knowledge world: ``n_entities`` entities with a color, city, birth year and job each.

    Examples
    --------
    >>> world = make_world(10, seed=0)
    >>> len(world.entities), sorted(world.attributes)
    (10, ['city', 'color', 'job', 'year'])
    """
    if not isinstance(n_entities, (int, np.integer)) or n_entities < 1:
        raise ValueError(f"n_entities must be a positive integer; got {n_entities!r}.")
    return FactWorld(int(n_entities), seed=seed, attributes=WORLD_ATTRIBUTES)


def _documents(world: FactWorld, n: int, seed: int, tier: Tier) -> list[str]:
    """``n`` documents of one tier: statements (a share ``errors`` of them wrong) and filler in a seeded order."""
    rng = np.random.default_rng(seed)
    chain = markov_chain("web")
    names = list(world.attributes)
    out = []
    for _ in range(n):
        sentences = []
        for _ in range(int(rng.integers(tier.facts[0], tier.facts[1] + 1))):
            e, a = world.entities[int(rng.integers(len(world.entities)))], names[int(rng.integers(len(names)))]
            value = world.values[e, a]
            if tier.errors and rng.random() < tier.errors:
                others = [v for v in world.attributes[a] if v != value]
                value = others[int(rng.integers(len(others)))]
            sentences.append(world.statement(e, a, value, template=int(rng.integers(3))))
        for _ in range(int(rng.integers(0, tier.filler + 1))):
            words = [w for w in chain.sample(int(rng.integers(5, 13)), rng) if w != "."]
            sentence = " ".join(words or ["the"]) + "."
            sentences.insert(int(rng.integers(len(sentences) + 1)), sentence[0].upper() + sentence[1:])
        out.append(" ".join(sentences))
    return out


def _tier_stream(world: FactWorld, tier: str, seed: int, chunk: int = 256) -> Iterator[str]:
    for block in range(1_000_000):
        yield from _documents(world, chunk, seed * 1_000_003 + block, TIERS[tier])


def web_documents(world: FactWorld, n: int, seed: int, tier: str) -> list[str]:
    """``n`` web documents of one quality tier (see :data:`TIERS`).

    Examples
    --------
    >>> docs = web_documents(make_world(20, seed=0), 3, seed=0, tier="hq")
    >>> len(docs), all(docs)
    (3, True)
    """
    _check_tier(tier)
    stream = _tier_stream(world, tier, seed)
    return [next(stream) for _ in range(n)]


def web_corpus(world: FactWorld, tokens: int, seed: int, *, hq_share: float = 0.5) -> WebCorpus:
    """The web at the wall: documents of both tiers costing exactly ``tokens``.

    Parameters
    ----------
    world : FactWorld
    tokens : int
        The unique web tokens (characters plus ``<bos>``/``<eos>`` per document): the wall.
    seed : int
        The documents are a function of ``(world, tokens, seed, hq_share)``.
    hq_share : float
        The share of the tokens from high-quality documents (rounded to a token); the rest is
        low-quality.

    Returns
    -------
    WebCorpus
        Documents in a seeded shuffled order, ``tokens`` exactly.

    Raises
    ------
    ValueError
        If ``tokens`` is too small for a document in each tier, or ``hq_share`` is outside [0, 1].

    Examples
    --------
    >>> web = web_corpus(make_world(30, seed=0), 2000, seed=0)
    >>> web.tokens, web.tier_tokens("hq"), corpus_tokens(web.documents)
    (2000, 1000, 2000)
    """
    if not 0.0 <= hq_share <= 1.0:
        raise ValueError(f"hq_share must be a share in [0, 1]; got {hq_share!r}.")
    if not isinstance(tokens, (int, np.integer)) or tokens < 2 * (SPECIAL_TOKENS + 1):
        raise ValueError(f"tokens must be an integer of at least {2 * (SPECIAL_TOKENS + 1)}; got {tokens!r}.")
    hq = int(round(hq_share * tokens))
    budgets = {"hq": hq, "lq": int(tokens) - hq}
    docs: list[str] = []
    tiers: list[str] = []
    for i, (tier, budget) in enumerate(budgets.items()):
        if budget == 0:
            continue
        part = fill(_tier_stream(world, tier, seed * 2 + i), budget, name=f"tokens of the {tier} tier")
        docs += part
        tiers += [tier] * len(part)
    order = np.random.default_rng([seed, 17]).permutation(len(docs))
    documents = tuple(docs[i] for i in order)
    return WebCorpus(
        documents=documents,
        tiers=tuple(tiers[i] for i in order),
        facts=tuple(tuple(parse_facts(d, world)) for d in documents),
        tokens=corpus_tokens(documents),
    )


def heldout_web(world: FactWorld, n: int, seed: int) -> list[str]:
    """``n`` web documents never trained on (half of each tier), for held-out web perplexity.

    Their document seeds are disjoint from :func:`web_corpus`'s (which uses ``seed * 2`` and
    ``seed * 2 + 1``; these ``HELDOUT_OFFSET`` above), so no held-out document is a training
    one but by coincidence of text, which the reproduction checks and reports.
    """
    half = n // 2
    hq = web_documents(world, half, seed=HELDOUT_OFFSET + seed * 2, tier="hq")
    lq = web_documents(world, n - half, seed=HELDOUT_OFFSET + seed * 2 + 1, tier="lq")
    return hq + lq


def _check_tier(tier: str) -> None:
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {sorted(TIERS)}; got {tier!r}.")


__all__ = ["HELDOUT_OFFSET", "SPECIAL_TOKENS", "TIERS", "WORLD_ATTRIBUTES", "Tier", "WebCorpus", "corpus_tokens", "doc_tokens", "fill", "heldout_web",
           "make_world", "web_corpus", "web_documents"]  # fmt: skip
