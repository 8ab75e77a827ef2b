"""The data of specialized pretraining: a general stream, a small repeated domain set, and the mixer.

The corpus follows the pilot (``others.md`` §10.5), written as characters so that the lab's
:class:`~ontheline.research.lm.CharTokenizer` reads it one token per character: a general
chain (an unlimited stream) and a domain chain over characters of
:data:`~ontheline.research.lm.ALPHABET` whose ranges partly overlap, so finetuning on the
domain can make the general model forget. Second-order chains over the pilot's ranges (64
and 56 characters, 12 and 4 successors per pair) were tried first (seed 0) and were not
learnable by the tiny GPT within the budget: after 1,600 steps the general loss sat at about log 64 and
the domain loss at about log 56, the uniform levels (the pilot's own table sits at those levels
too). The chains are therefore made sparse and learnable (the defaults of
:class:`~ontheline.research.spt.experiment.Config`): the general one first-order over
``ALPHABET[0:64]`` with 8 successors per character, the domain one second-order over
``ALPHABET[52:76]`` (12 characters shared with the general range) with 3 successors per pair,
so its structure is learnable but only partly visible in the small train split, and repeating
that split many times overfits. The lab's word chains (:func:`~ontheline.research.lm.markov_text`)
were not tried.

Rows are ``length`` characters, trained on every token (no ``<bos>``), the same length for
both sources, so a domain-token fraction is a domain-row fraction. :func:`mixed_batches`
decides how many rows of each step are domain rows by rounding the running target
``delta * rows so far`` (largest remainder), so after every step the count of domain tokens
trained on is within half a row of ``delta`` times all tokens; the domain rows walk through
seeded permutations of the train split, epoch after epoch.
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ontheline.research.lm.tokenizer import ALPHABET, CharTokenizer

#: The characters of the general chain (``ALPHABET[0:64]``) and the domain chain (``ALPHABET[52:76]``).
GENERAL_CHARS = ALPHABET[:64]
DOMAIN_CHARS = ALPHABET[52:76]


def _check_fraction(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a fraction in [0, 1]; got {value!r}. Pass e.g. 0.05 for 5%.")
    return float(value)


def _check_count(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


@dataclass(frozen=True)
class CharChain:
    """A sparse second-order Markov chain over characters, sampled many rows at a time.

    Each pair of previous characters ``(a, b)`` has ``branching`` successors with
    Dirichlet(``concentration``) weights (``branching = len(chars)``: a dense chain, the pilot's).

    Parameters
    ----------
    chars : str
        The characters (each once).
    seed : int
        The chain is a function of its seed.
    branching : int
    concentration : float

    Examples
    --------
    >>> chain = CharChain("abcd", seed=0, branching=2)
    >>> rows = chain.sample(3, 8, np.random.default_rng(0))
    >>> rows.shape, set("".join(chain.decode(rows))) <= set("abcd")
    ((3, 8), True)
    >>> bool(0 < chain.entropy_rate() < np.log(2) + 1e-9)
    True
    """

    chars: str
    seed: int
    branching: int = 6
    concentration: float = 0.5
    order: int = 2
    transition: np.ndarray = field(init=False, repr=False, compare=False)
    _cumulative: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        v = len(self.chars)
        if v < 2 or len(set(self.chars)) != v:
            raise ValueError(f"chars must hold at least two distinct characters; got {self.chars!r}.")
        if not 1 <= self.branching <= v:
            raise ValueError(f"branching must be between 1 and len(chars) = {v}; got {self.branching}.")
        if self.order not in (1, 2):
            raise ValueError(f"order must be 1 or 2; got {self.order!r}.")
        rng = np.random.default_rng(self.seed)
        p = np.zeros((v,) * (self.order + 1))
        for context in np.ndindex(*(v,) * self.order):
            nxt = rng.choice(v, size=self.branching, replace=False)
            p[(*context, nxt)] = rng.dirichlet(np.full(self.branching, self.concentration))
        if self.order == 1:  # the same sampler and entropy as a second-order chain that ignores its older symbol
            p = np.broadcast_to(p, (v, v, v)).copy()
        object.__setattr__(self, "transition", p)
        object.__setattr__(self, "_cumulative", np.cumsum(p, axis=2))

    def sample(self, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` rows of ``length`` symbols (indices into ``chars``), shape ``(n, length)``; the first two uniform."""
        v = len(self.chars)
        out = np.empty((n, length), dtype=np.int64)
        out[:, :2] = rng.integers(0, v, size=(n, min(2, length)))
        for t in range(2, length):
            c = self._cumulative[out[:, t - 2], out[:, t - 1]]
            out[:, t] = np.minimum((c < rng.random(n)[:, None]).sum(axis=1), v - 1)
        return out

    def decode(self, rows: np.ndarray) -> list[str]:
        """The rows as strings of the chain's characters."""
        chars = np.array(list(self.chars))
        return ["".join(chars[r]) for r in np.asarray(rows)]

    def entropy_rate(self) -> float:
        """The chain's entropy per symbol in nats under its stationary pair distribution (the loss floor)."""
        v = len(self.chars)
        p = self.transition  # (a, b) -> c; the pair chain moves (a, b) to (b, c)
        pi = np.full((v, v), 1.0 / (v * v))
        for _ in range(5000):
            nxt = np.einsum("ab,abc->bc", pi, p)
            if np.abs(nxt - pi).max() < 1e-13:
                break
            pi = nxt
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=2)
        return float((pi * h).sum())


@dataclass(frozen=True)
class Corpus:
    """The token rows of one SPT experiment (all ``(n_rows, length)`` int64 arrays of tokenizer ids).

    Attributes
    ----------
    domain_train : ndarray of shape (n_train, length)
        The small domain set that pretraining repeats and finetuning trains on.
    domain_val : ndarray of shape (n_val, length)
        Held-out domain rows for early stopping (the only selection).
    domain_test : ndarray of shape (n_test, length)
        Held-out domain rows, reported only.
    general_val : ndarray of shape (n_general, length)
        Held-out general rows (the general loss; forgetting).
    general : CharChain
        The general stream's chain (:meth:`general_rows` draws from it).
    domain : CharChain
    """

    domain_train: np.ndarray
    domain_val: np.ndarray
    domain_test: np.ndarray
    general_val: np.ndarray
    general: CharChain
    domain: CharChain

    @property
    def length(self) -> int:
        return int(self.domain_train.shape[1])

    @property
    def domain_tokens(self) -> int:
        """|D_dom|: the tokens of the domain train split."""
        return int(self.domain_train.size)

    def general_rows(self, n: int, seed: int | Sequence[int]) -> np.ndarray:
        """``n`` fresh general rows, shape ``(n, length)``, a function of ``seed``."""
        return _ids(self.general, self.general.sample(n, self.length, np.random.default_rng(seed)))


def _ids(chain: CharChain, rows: np.ndarray) -> np.ndarray:
    """Chain symbols -> tokenizer ids (the tokenizer's encoding of each character, one token each)."""
    table = np.array(CharTokenizer().encode(chain.chars), dtype=np.int64)
    return table[np.asarray(rows)]


def row_hash(row: Iterable[int]) -> str:
    """A stable hash of one token row (sha256 of its ids)."""
    return hashlib.sha256(np.asarray(list(row), dtype=np.int64).tobytes()).hexdigest()


def make_corpus(
    seed: int = 0,
    *,
    length: int = 32,
    n_train: int = 150,
    n_val: int = 200,
    n_test: int = 400,
    n_general: int = 400,
    domain_branching: int = 3,
    domain_concentration: float = 0.5,
    general_branching: int = 8,
    general_concentration: float = 0.5,
    general_order: int = 1,
    domain_order: int = 2,
    general_chars: str = GENERAL_CHARS,
    domain_chars: str = DOMAIN_CHARS,
    chain_seed: int = 0,
) -> Corpus:
    """The general chain, the domain chain and the domain's train, validation and test splits.

    The chains are a function of ``chain_seed`` (fixed across the experiment's seeds: one
    distribution); the rows are a function of ``seed``. The three domain splits are distinct
    rows (duplicates are redrawn), checked by hash.

    Parameters
    ----------
    seed : int
    length : int
        Tokens per row.
    n_train, n_val, n_test, n_general : int
        Rows of the domain train (|D_dom| = ``n_train * length`` tokens), validation and test
        splits, and of the held-out general rows.
    domain_branching, domain_concentration, general_branching, general_concentration
        The chains' sparsity (see :class:`CharChain`).
    general_order, domain_order : {1, 2}
    general_chars, domain_chars : str
        The characters of each chain.
    chain_seed : int

    Returns
    -------
    Corpus

    Examples
    --------
    >>> c = make_corpus(0, n_train=20, n_val=5, n_test=5, n_general=5)
    >>> c.domain_train.shape, c.domain_tokens
    ((20, 32), 640)
    >>> check_held_out(c.domain_train, c.domain_val, c.domain_test)
    """
    for name, value in (("length", length), ("n_train", n_train), ("n_val", n_val), ("n_test", n_test),
                        ("n_general", n_general)):  # fmt: skip
        _check_count(name, value, 3 if name == "length" else 1)
    general = CharChain(general_chars, chain_seed, general_branching, general_concentration, general_order)
    domain = CharChain(domain_chars, chain_seed + 1, domain_branching, domain_concentration, domain_order)
    rng = np.random.default_rng([seed, 1])
    rows: list[np.ndarray] = []
    seen: set[str] = set()
    need = n_train + n_val + n_test
    while len(rows) < need:
        for r in _ids(domain, domain.sample(need, length, rng)):
            h = row_hash(r)
            if h not in seen and len(rows) < need:
                seen.add(h)
                rows.append(r)
    block = np.stack(rows)
    train, val, test = np.split(block, [n_train, n_train + n_val])
    general_val = _ids(general, general.sample(n_general, length, np.random.default_rng([seed, 2])))
    check_held_out(train, val, test)
    return Corpus(train, val, test, general_val, general, domain)


def check_held_out(train: np.ndarray, *held_out: np.ndarray) -> None:
    """Raise if any held-out row equals a train row (or another held-out split's row), by hash.

    Parameters
    ----------
    train : ndarray of shape (n_train, length)
    *held_out : ndarray of shape (n, length)

    Raises
    ------
    ValueError
        Naming the split and the count of shared rows.
    """
    seen = {row_hash(r) for r in train}
    for i, split in enumerate(held_out):
        hashes = {row_hash(r) for r in split}
        shared = len(hashes & seen)
        if shared:
            raise ValueError(f"held-out split {i} shares {shared} rows with the train rows (or an earlier split); "
                             "draw held-out rows that are distinct from every training row.")  # fmt: skip
        seen |= hashes


def domain_rows_per_step(delta: float, batch_size: int, steps: int, start: int = 0) -> np.ndarray:
    """How many of each step's ``batch_size`` rows are domain rows, shape ``(steps,)``.

    Step ``s >= start`` takes ``round(delta * B * (s + 1 - start)) - round(delta * B * (s - start))``
    rows (rounding half up), so the running count never strays half a row from its target;
    steps before ``start`` (late insertion, SCPT) take none.

    Examples
    --------
    >>> domain_rows_per_step(0.05, 32, 6).tolist()
    [2, 1, 2, 1, 2, 2]
    >>> domain_rows_per_step(0.5, 4, 5, start=3).tolist()
    [0, 0, 0, 2, 2]
    """
    delta = _check_fraction("delta", delta)
    _check_count("batch_size", batch_size)
    _check_count("steps", steps, 0)
    _check_count("start", start, 0)
    k = np.maximum(np.arange(steps + 1) - start, 0)
    running = np.floor(delta * batch_size * k + 0.5).astype(np.int64)
    return np.diff(running)


def mixed_batches(corpus: Corpus, delta: float, batch_size: int, seed: int, *, start: int = 0) -> Any:
    """The pretraining batch function: each step ``delta`` domain rows (:func:`domain_rows_per_step`), the rest general.

    Domain row number ``p`` (counted over the run) is row ``perm_e[p % n]`` of the train split,
    ``perm_e`` the permutation ``default_rng([seed, 7, e])`` of epoch ``e = p // n``; general rows
    are fresh draws seeded by ``(seed, 3, step)``; rows are shuffled within the step. The batch is
    a function of ``(seed, step)`` alone (the lab's :func:`~ontheline.research.lm.train` resumes
    exactly with it).

    Parameters
    ----------
    corpus : Corpus
    delta : float
        The domain-token fraction in [0, 1].
    batch_size : int
    seed : int
    start : int
        Late insertion (SCPT): no domain rows before this step.

    Returns
    -------
    callable
        ``batch(step) -> {"input_ids", "labels"}``, torch int64 tensors of shape
        ``(batch_size, length)``; ``batch.domain_rows(step)`` gives the domain rows taken at
        that step (its ``(n, length)`` array), for accounting.
    """
    delta = _check_fraction("delta", delta)
    _check_count("batch_size", batch_size)
    _check_count("start", start, 0)
    n = len(corpus.domain_train)
    if n == 0 and delta > 0:
        raise ValueError(f"corpus has no domain train rows to mix at delta={delta}; build it with n_train >= 1.")

    def counts(step: int) -> tuple[int, int]:
        k = np.maximum(np.array([step, step + 1]) - start, 0)
        before, after = np.floor(delta * batch_size * k + 0.5).astype(int)
        return int(before), int(after)

    def domain_rows(step: int) -> np.ndarray:
        before, after = counts(step)
        picks = [int(np.random.default_rng([seed, 7, p // n]).permutation(n)[p % n]) for p in range(before, after)]
        return corpus.domain_train[picks]

    def batch(step: int) -> dict[str, Any]:
        import torch

        dom = domain_rows(step)
        gen = corpus.general_rows(batch_size - len(dom), [seed, 3, step])
        rows = np.concatenate([dom, gen])[np.random.default_rng([seed, 5, step]).permutation(batch_size)]
        ids = torch.from_numpy(np.ascontiguousarray(rows))
        return {"input_ids": ids, "labels": ids.clone()}

    batch.domain_rows = domain_rows  # type: ignore[attr-defined]
    return batch


def domain_batches(rows: np.ndarray, batch_size: int, seed: int) -> Any:
    """The finetuning batch function: the domain train rows alone, seeded permutations epoch after epoch.

    Returns ``batch(step) -> {"input_ids", "labels"}`` of shape ``(batch_size, length)``.
    """
    _check_count("batch_size", batch_size)
    n = len(rows)
    if n == 0:
        raise ValueError("rows is empty: finetuning needs at least one domain train row.")

    def batch(step: int) -> dict[str, Any]:
        import torch

        picks = [int(np.random.default_rng([seed, 11, p // n]).permutation(n)[p % n])
                 for p in range(step * batch_size, (step + 1) * batch_size)]  # fmt: skip
        ids = torch.from_numpy(np.ascontiguousarray(rows[picks]))
        return {"input_ids": ids, "labels": ids.clone()}

    return batch


def epochs(tokens: float, delta: float, domain_tokens: int) -> float:
    """The domain epochs of a pretraining run: E = T * delta / |D_dom|.

    Parameters
    ----------
    tokens : float
        T, the pretraining tokens.
    delta : float
        The domain-token fraction.
    domain_tokens : int
        |D_dom|, the tokens of the domain set.

    Examples
    --------
    >>> epochs(200e9, 0.05, 300e6)  # the paper's example: about 33 epochs
    33.333333333333336
    """
    if not tokens >= 0:
        raise ValueError(f"tokens must be >= 0; got {tokens!r}.")
    delta = _check_fraction("delta", delta)
    if not domain_tokens > 0:
        raise ValueError(f"domain_tokens must be > 0 (the size of the domain set); got {domain_tokens!r}.")
    return tokens * delta / domain_tokens


__all__ = ["DOMAIN_CHARS", "GENERAL_CHARS", "CharChain", "Corpus", "check_held_out", "domain_batches",
           "domain_rows_per_step", "epochs", "make_corpus", "mixed_batches", "row_hash"]  # fmt: skip
