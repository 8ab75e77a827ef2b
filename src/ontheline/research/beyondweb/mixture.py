"""Pretraining mixtures at one token budget: the web once or repeated, plus rephrased tokens, counted exactly.

Every run trains on ``budget`` tokens (3 times the unique web tokens in the reproduction). A
run is a :class:`RunSpec`: how many times the web is included, which synthetic strategies fill
the rest (equal shares, to the token), and which web documents seed them (both tiers, or only
the high- or low-quality ones). :func:`shares` is the accounting; :func:`synthetic` rephrases
seed documents to an exact token count; :func:`mixture` puts a run's corpus together.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ontheline.research.beyondweb.rephrase import CONTROL, STRATEGIES, NgramModel, continuation, rephrase
from ontheline.research.beyondweb.world import TIERS, WebCorpus, corpus_tokens, doc_tokens, fill


@dataclass(frozen=True)
class RunSpec:
    """One pretraining run's data: the web ``web_repeats`` times, then ``strategies`` in equal shares.

    Attributes
    ----------
    web_repeats : int
        Copies of the web in the mixture (1, or the budget's multiple for "repeat the web").
    strategies : tuple of str
        Synthetic parts, each a strategy of :data:`~ontheline.research.beyondweb.STRATEGIES` or
        the control ``"continuation"``; they share the tokens the web leaves, equally.
    seeds : {None, "hq", "lq"}
        The web documents the synthetic parts rephrase: all (None) or one quality tier.
    """

    web_repeats: int = 1
    strategies: tuple[str, ...] = ()
    seeds: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.web_repeats, int) or self.web_repeats < 1:
            raise ValueError(f"web_repeats must be a positive integer; got {self.web_repeats!r}.")
        unknown = [s for s in self.strategies if s not in (*STRATEGIES, CONTROL)]
        if unknown or len(set(self.strategies)) != len(self.strategies):
            raise ValueError(
                f"strategies must be distinct names from {[*STRATEGIES, CONTROL]}; got {list(self.strategies)}."
            )
        if self.seeds is not None and self.seeds not in TIERS:
            raise ValueError(f"seeds must be None, 'hq' or 'lq'; got {self.seeds!r}.")


#: The reproduction's runs, by the names ``ontheline repro beyondweb`` reports.
RUNS: dict[str, RunSpec] = {
    "repeat": RunSpec(web_repeats=3),
    "continuation": RunSpec(strategies=(CONTROL,)),
    "summary": RunSpec(strategies=("summary",)),
    "diverse": RunSpec(strategies=STRATEGIES),
    "diverse-lq": RunSpec(strategies=STRATEGIES, seeds="lq"),
    "diverse-hq": RunSpec(strategies=STRATEGIES, seeds="hq"),
    "no-chat": RunSpec(strategies=tuple(s for s in STRATEGIES if s != "chat")),
}


def shares(spec: RunSpec, budget: int, web_tokens: int) -> dict[str, int]:
    """The tokens of each part of a run: ``"web"`` and each strategy, summing to ``budget`` exactly.

    The web takes ``web_repeats * web_tokens``; the strategies split the rest equally, the
    first ones taking one token more when it does not divide.

    Raises
    ------
    ValueError
        If the web alone exceeds the budget, or the web leaves tokens but the run has no
        strategy to spend them on (or the other way round).

    Examples
    --------
    >>> shares(RUNS["diverse"], 3000, 1000)
    {'web': 1000, 'summary': 500, 'qa': 500, 'chat': 500, 'tutorial': 500}
    >>> shares(RUNS["no-chat"], 3001, 1000)
    {'web': 1000, 'summary': 667, 'qa': 667, 'tutorial': 667}
    >>> shares(RUNS["repeat"], 3000, 1000)
    {'web': 3000}
    """
    if not isinstance(budget, (int, np.integer)) or budget < 1:
        raise ValueError(f"budget must be a positive integer of tokens; got {budget!r}.")
    web = spec.web_repeats * int(web_tokens)
    rest = int(budget) - web
    if rest < 0:
        raise ValueError(f"budget ({budget}) is smaller than the web repeated {spec.web_repeats} times ({web}).")
    if bool(rest) != bool(spec.strategies):
        raise ValueError(f"budget leaves {rest} tokens after the web but the run has {len(spec.strategies)} "
                         "synthetic strategies; the two must be both zero or both positive.")  # fmt: skip
    out = {"web": web}
    k = len(spec.strategies)
    for i, strategy in enumerate(spec.strategies):
        out[strategy] = rest // k + (1 if i < rest % k else 0)
    return out


def _seed_indices(web: WebCorpus, tier: str | None, needs_facts: bool) -> list[int]:
    return [i for i, (t, fs) in enumerate(zip(web.tiers, web.facts))
            if (tier is None or t == tier) and (fs or not needs_facts)]  # fmt: skip


def synthetic(
    web: WebCorpus,
    world: Any,
    strategy: str,
    tokens: int,
    *,
    seed: int,
    tier: str | None = None,
    ngram: NgramModel | None = None,
) -> list[str]:
    """Synthetic documents of one strategy, rephrased from web documents, costing exactly ``tokens``.

    The seed documents (those of ``tier``, or all; for a rephrasing strategy only those that
    state a fact) are taken in a seeded order, pass after pass; pass ``p`` uses variant ``p``
    of the templates, so a document rephrased again is phrased differently. The last document
    is cut to fit (:func:`~ontheline.research.beyondweb.fill`).

    Parameters
    ----------
    web : WebCorpus
    world : FactWorld
    strategy : str
        One of :data:`~ontheline.research.beyondweb.STRATEGIES`, or ``"continuation"``.
    tokens : int
    seed : int
    tier : {None, "hq", "lq"}
    ngram : NgramModel, optional
        For ``"continuation"``: the model fitted on the web (fitted here when not given).

    Examples
    --------
    >>> from ontheline.research.beyondweb.world import make_world, web_corpus
    >>> world = make_world(30, seed=0)
    >>> web = web_corpus(world, 3000, seed=0)
    >>> corpus_tokens(synthetic(web, world, "qa", 1234, seed=0, tier="hq"))
    1234
    """
    if strategy not in (*STRATEGIES, CONTROL):
        raise ValueError(f"strategy must be one of {[*STRATEGIES, CONTROL]}; got {strategy!r}.")
    if tier is not None and tier not in TIERS:
        raise ValueError(f"tier must be None, 'hq' or 'lq'; got {tier!r}.")
    indices = _seed_indices(web, tier, needs_facts=strategy != CONTROL)
    if not indices:
        raise ValueError(f"The web has no document to seed {strategy!r} from (tier {tier!r}).")
    if strategy == CONTROL and ngram is None:
        ngram = NgramModel(web.documents)
    salt = zlib.crc32(strategy.encode())

    def stream() -> Iterator[str]:
        for variant in range(1_000_000):
            order = np.random.default_rng([seed, salt, variant]).permutation(indices)
            for i in order:
                if strategy == CONTROL:
                    assert ngram is not None
                    yield continuation(web.documents[i], ngram, world, seed=int(variant * len(web.documents) + i))
                else:
                    yield rephrase(web.facts[i], strategy, variant)

    return fill(stream(), tokens, name=f"tokens of {strategy!r}")


@dataclass(frozen=True)
class Mixture:
    """A run's pretraining corpus.

    Attributes
    ----------
    documents : list of str
        Every document of every part, in a seeded shuffled order (what is trained on, once).
    parts : dict of str to list of str
        The documents of each part (``"web"`` and each strategy), before shuffling.
    tokens : dict of str to int
        :func:`~ontheline.research.beyondweb.corpus_tokens` of each part.
    """

    documents: list[str]
    parts: dict[str, list[str]] = field(repr=False)
    tokens: dict[str, int]

    @property
    def total(self) -> int:
        """All the tokens of the mixture."""
        return sum(self.tokens.values())


def mixture(
    web: WebCorpus, world: Any, spec: RunSpec, budget: int, *, seed: int, ngram: NgramModel | None = None
) -> Mixture:
    """One run's corpus: the web ``spec.web_repeats`` times and each strategy's share, ``budget`` tokens exactly.

    Examples
    --------
    >>> from ontheline.research.beyondweb.world import make_world, web_corpus
    >>> world = make_world(30, seed=0)
    >>> web = web_corpus(world, 3000, seed=0)
    >>> m = mixture(web, world, RUNS["diverse"], 9000, seed=0)
    >>> m.tokens, m.total
    ({'web': 3000, 'summary': 1500, 'qa': 1500, 'chat': 1500, 'tutorial': 1500}, 9000)
    """
    wanted = shares(spec, budget, web.tokens)
    parts: dict[str, list[str]] = {"web": list(web.documents) * spec.web_repeats}
    for strategy in spec.strategies:
        parts[strategy] = synthetic(web, world, strategy, wanted[strategy], seed=seed, tier=spec.seeds, ngram=ngram)
    documents = [d for part in parts.values() for d in part]
    order = np.random.default_rng([seed, 29]).permutation(len(documents))
    return Mixture([documents[i] for i in order], parts, {k: corpus_tokens(v) for k, v in parts.items()})


def token_weighted_sample(documents: Sequence[str], n: int, seed: int) -> list[str]:
    """``n`` documents drawn without replacement with probability proportional to their tokens.

    What a model sees is tokens, not documents: a sample drawn this way reflects the
    mixture's token shares (a corpus of many short chat turns is not over-represented).

    Examples
    --------
    >>> len(token_weighted_sample(["a", "bb", "ccc"], 2, seed=0))
    2
    """
    if n < 1:
        raise ValueError(f"n must be at least 1; got {n!r}.")
    weights = np.array([doc_tokens(d) for d in documents], dtype=float)
    chosen = np.random.default_rng(seed).choice(len(documents), size=min(n, len(documents)), replace=False,
                                                p=weights / weights.sum())  # fmt: skip
    return [documents[i] for i in chosen]


__all__ = ["RUNS", "Mixture", "RunSpec", "mixture", "shares", "synthetic", "token_weighted_sample"]
