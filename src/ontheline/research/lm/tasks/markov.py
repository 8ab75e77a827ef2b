"""Markov "web" and "domain" text: two word chains with learnable, sparse structure (for specialized pretraining)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ontheline.research.lm.tasks.records import _check_n, _range

#: The "web" chain's words: 180 common English words and the full stop (which ends a sentence); none is a domain word.
WEB_WORDS = tuple(
    """the an this that these some every no one two many few all most other same new old good bad
    big small long short high low first last great little right wrong young early late green
    man woman child people friend teacher doctor city house school road river tree garden market
    book letter story song name word day night year week morning water food bread light fire
    time place world home car door window table room street family group idea
    is was has had makes made takes took sees saw gives gave finds found tells told
    asks asked works worked calls called tries tried sends sent feels felt brings brought
    keeps kept begins began shows showed hears heard plays played runs ran moves moved
    lives lived believes held writes wrote reads carries walks walked opens opened
    and but or so because when while if then after before near under over with without
    from into through about between against during of to in on at by for
    very often never always also still just only again soon here there today now
    .""".split()  # noqa: SIM905 - a paragraph of words reads better than a list of 181 strings
)

#: The "domain" chain's words: ABC-style music tokens (notes C-B in two octaves, plain, long ``2``
#: and short ``/2``, and the bar lines ``|``, ``||``, ``:|``), far from the web vocabulary.
DOMAIN_WORDS = tuple([note + length for note in "CDEFGABcdefgab" for length in ("", "2", "/2")] + ["|", "||", ":|"])

_CHAIN_SEEDS = {"web": 0, "domain": 1}


class MarkovChain:
    """A first-order Markov chain over words, each word with a few likely successors.

    Row ``i`` of the transition matrix puts Dirichlet(``concentration``) weights on
    ``branching`` successors chosen at random (and nothing elsewhere): text with learnable,
    sparse structure. The chain itself is a function of ``seed``; documents drawn from it
    take their own seed.

    Parameters
    ----------
    words : sequence of str
    seed : int
    branching : int
        Successors per word.
    concentration : float
        Dirichlet concentration of the successor weights (small: peaked).

    Attributes
    ----------
    words : tuple of str
    transition : ndarray of shape (len(words), len(words))
        Row-stochastic.
    start : ndarray of shape (len(words),)
        The distribution of a document's first word (uniform).

    Examples
    --------
    >>> chain = MarkovChain(["a", "b", "c"], seed=0, branching=2)
    >>> np.allclose(chain.transition.sum(axis=1), 1), int((chain.transition > 0).sum())
    (True, 6)
    >>> chain.sample(6, np.random.default_rng(0))
    ['b', 'b', 'a', 'c', 'b', 'b']
    """

    def __init__(self, words: Sequence[str], seed: int, *, branching: int = 6, concentration: float = 0.5) -> None:
        self.words = tuple(words)
        size = len(self.words)
        repeated = sorted({w for w in self.words if self.words.count(w) > 1})
        if size < 2 or repeated:
            raise ValueError(f"A Markov chain needs at least two words, each once; repeated: {repeated[:5]}.")
        if not 1 <= branching <= size:
            raise ValueError(f"branching must be between 1 and the number of words ({size}); got {branching}.")
        rng = np.random.default_rng(seed)
        self.transition = np.zeros((size, size))
        for i in range(size):
            successors = rng.choice(size, size=branching, replace=False)
            self.transition[i, successors] = rng.dirichlet(np.full(branching, concentration))
        self.start = np.full(size, 1.0 / size)
        self._cumulative = np.cumsum(self.transition, axis=1)

    def sample(self, length: int, rng: np.random.Generator) -> list[str]:
        """``length`` words from the chain, drawn with ``rng``."""
        state = int(rng.choice(len(self.words), p=self.start))
        out = [self.words[state]]
        for u in rng.random(max(length - 1, 0)):
            state = min(int(np.searchsorted(self._cumulative[state], u, side="right")), len(self.words) - 1)
            out.append(self.words[state])
        return out

    def entropy_rate(self) -> float:
        """The chain's entropy per word in nats under its stationary distribution (a loss floor).

        Examples
        --------
        >>> round(MarkovChain(["a", "b"], seed=0, branching=1).entropy_rate(), 6)
        0.0
        """
        values, vectors = np.linalg.eig(self.transition.T)
        stationary = np.abs(np.real(vectors[:, np.argmin(np.abs(values - 1))]))
        stationary /= stationary.sum()
        p = self.transition
        with np.errstate(divide="ignore", invalid="ignore"):
            rows = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
        return float(stationary @ rows) + 0.0


def markov_chain(kind: str, chain_seed: int | None = None) -> MarkovChain:
    """The chain behind :func:`markov_text`: ``"web"`` (over :data:`WEB_WORDS`) or ``"domain"`` (over :data:`DOMAIN_WORDS`).

    ``chain_seed`` defaults to 0 for web and 1 for domain, so the two distributions are fixed
    and distinct; pass another to get another distribution of the same kind.

    Examples
    --------
    >>> len(markov_chain("web").words), len(markov_chain("domain").words)
    (181, 45)
    """
    if kind not in _CHAIN_SEEDS:
        raise ValueError(f"kind must be 'web' or 'domain'; got {kind!r}.")
    seed = _CHAIN_SEEDS[kind] if chain_seed is None else chain_seed
    if kind == "web":
        return MarkovChain(WEB_WORDS, seed, branching=8, concentration=0.5)
    return MarkovChain(DOMAIN_WORDS, seed, branching=4, concentration=0.5)


def markov_text(
    kind: str, n: int, seed: int, *, words: int | tuple[int, int] = (20, 60), chain_seed: int | None = None
) -> list[str]:
    """``n`` documents of Markov "web" or "domain" text (see :func:`markov_chain`).

    Parameters
    ----------
    kind : {"web", "domain"}
        Web text is English-like words with full stops; domain text is ABC-style music
        tokens. The two chains share no words.
    n, seed : int
        The documents are a function of ``seed`` (and the chain's seed).
    words : int or (int, int)
        Words per document, or an inclusive range.
    chain_seed : int, optional
        Another chain of the same kind (defaults: web 0, domain 1).

    Returns
    -------
    list of str

    References
    ----------
    .. [1] C. Baek, G. Monti, D. Schwab et al. and P. Maini, "The Finetuner's Fallacy" (specialized
       pretraining), arXiv 2026, arXiv:2603.16177.

    Examples
    --------
    >>> markov_text("web", 1, seed=0, words=12)
    ['showed brought that green opens day long when over just calls an']
    >>> markov_text("domain", 1, seed=0, words=12)
    ['e2 E2 c C | c C | c C | F']
    """
    chain = markov_chain(kind, chain_seed)
    lo, hi = _range(words, "words", minimum=1)
    _check_n(n)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        text = " ".join(chain.sample(int(rng.integers(lo, hi + 1)), rng))
        out.append(text.replace(" .", "."))
    return out


__all__ = ["DOMAIN_WORDS", "WEB_WORDS", "MarkovChain", "markov_chain", "markov_text"]
