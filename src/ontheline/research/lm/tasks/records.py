"""The task records and their held-out splits: :class:`Example`, :func:`answer_of`, :func:`split`, :func:`check_disjoint`.

Every task of the lab returns :class:`Example` records (or plain strings, for the text
corpora); :func:`split` cuts them into parts that share no prompt and :func:`check_disjoint`
checks that by hashing. The argument checks the generators share live here too.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

import numpy as np

T = TypeVar("T")

_ANS = re.compile(r"^ANS[ \t]+(\S[^\n]*)", re.M)


@dataclass(frozen=True)
class Example:
    """One task instance: the ``prompt``, the reference ``completion`` and the ``answer`` it must reach.

    ``info`` holds task-specific facts about the example (not compared, not hashed): for
    instance ``{"corrupted_lines": "1"}`` for arithmetic, ``{"trace": "premature"}`` for digit
    sums, ``{"world": "red", "context": "blue"}`` for a counterfactual question.

    Examples
    --------
    >>> ex = Example("2+3=\\n", "2+3=5\\nANS 5", "5")
    >>> ex.text
    '2+3=\\n2+3=5\\nANS 5'
    >>> answer_of(ex.completion) == ex.answer
    True
    """

    prompt: str
    completion: str
    answer: str
    info: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def text(self) -> str:
        """``prompt + completion``: the training sequence (before ``<bos>`` and ``<eos>``)."""
        return self.prompt + self.completion


def answer_of(text: str) -> str | None:
    """The final answer in a completion: what follows the first ``ANS `` at the start of a line.

    Returns None when the completion has no such line (or an empty one); surrounding spaces
    are stripped. Every task here ends its completions with ``ANS <answer>``.

    Examples
    --------
    >>> answer_of("7*8=56\\n56+12=68\\nANS 68")
    '68'
    >>> answer_of("ANS  blue \\nANS red")   # the first answer counts
    'blue'
    >>> answer_of("7*8=56\\n56+12=6"), answer_of("the ANS 5"), answer_of("ANS \\n")
    (None, None, None)
    """
    match = _ANS.search(text)
    if match is None:
        return None
    return match.group(1).strip() or None


def _key_of(item: Any) -> Hashable:
    return item.prompt if isinstance(item, Example) else item


@overload
def split(
    items: Sequence[T], fractions: Sequence[float], seed: int, *, key: Callable[[T], Hashable] | None = None
) -> list[list[T]]: ...
@overload
def split(
    items: Sequence[T], fractions: Mapping[str, float], seed: int, *, key: Callable[[T], Hashable] | None = None
) -> dict[str, list[T]]: ...
def split(
    items: Sequence[T],
    fractions: Sequence[float] | Mapping[str, float],
    seed: int,
    *,
    key: Callable[[T], Hashable] | None = None,
) -> list[list[T]] | dict[str, list[T]]:
    """Split examples (or documents) into parts that share no prompt.

    The distinct keys (an :class:`Example`'s prompt, a string itself, or ``key(item)``) are
    sorted, shuffled with ``default_rng(seed)`` and cut by ``fractions``; every item goes to
    the part its key went to. Repeated prompts therefore stay in one part, and the parts are
    disjoint by construction (:func:`check_disjoint` verifies it by hashing). Within a part
    the items keep their order.

    Parameters
    ----------
    items : sequence of Example or str (or anything ``key`` maps to a hashable)
    fractions : sequence or mapping of float, or of int
        Shares of the distinct keys (floats summing to 1), or counts of distinct keys (ints
        summing to at most their number; the rest is left out). A mapping gives a dict of
        parts by name.
    seed : int
    key : callable, optional
        What must not be shared, e.g. ``lambda ex: ex.info["entity"]`` to hold out entities.

    Returns
    -------
    list of lists (or dict of lists)

    Examples
    --------
    >>> from ontheline.research.lm import arithmetic
    >>> pool = arithmetic(100, seed=0)
    >>> parts = split(pool, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    >>> {name: len(part) for name, part in parts.items()}
    {'train': 80, 'val': 10, 'test': 10}
    >>> check_disjoint(*parts.values())
    >>> [len(p) for p in split(pool, [50, 20], seed=0)]
    [50, 20]
    """
    names: list[str] | None = None
    shares: list[float]
    if isinstance(fractions, Mapping):
        names = list(fractions)
        shares = [fractions[k] for k in names]
    else:
        shares = list(fractions)
    get = key or _key_of
    keys = [get(x) for x in items]
    unique = sorted(set(keys), key=_digest)
    order = np.random.default_rng(seed).permutation(len(unique))
    m = len(unique)
    if not shares or any(not isinstance(s, (int, float, np.number)) or s < 0 for s in shares):
        raise ValueError(f"fractions must be non-negative numbers; got {shares!r}.")
    if all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shares):
        if sum(shares) > m:
            raise ValueError(f"The counts {shares} ask for {sum(shares)} distinct prompts; there are {m}.")
        bounds = np.cumsum([0, *shares])
    else:
        if not math.isclose(sum(shares), 1.0, abs_tol=1e-9):
            raise ValueError(f"fractions must sum to 1 (or be integer counts); got {shares} (sum {sum(shares)}).")
        bounds = np.concatenate([[0], np.round(np.cumsum(shares) * m).astype(int)])
        bounds[-1] = m
    part_of = {}
    for p in range(len(shares)):
        for i in order[bounds[p] : bounds[p + 1]]:
            part_of[unique[i]] = p
    parts: list[list[T]] = [[] for _ in shares]
    for x, k in zip(items, keys):
        if k in part_of:
            parts[part_of[k]].append(x)
    return dict(zip(names, parts)) if names is not None else parts


def check_disjoint(*parts: Sequence[Any], key: Callable[[Any], Hashable] | None = None) -> None:
    """Raise ValueError if two parts share a prompt (or a document, or ``key``), found by hashing.

    Each key is hashed with SHA-256 of its ``repr``, which is stable across Python versions
    and runs (unlike :func:`hash`).

    Examples
    --------
    >>> from ontheline.research.lm import arithmetic
    >>> a, b = arithmetic(3, seed=0), arithmetic(3, seed=1)
    >>> check_disjoint(a, b)
    >>> check_disjoint(a, a[:1])
    Traceback (most recent call last):
    ...
    ValueError: Parts 0 and 1 share 1 prompt, e.g. '31-2-3+2=\\n'; split them with split().
    """
    get = key or _key_of
    seen: dict[str, tuple[int, Hashable]] = {}
    for p, part in enumerate(parts):
        digests = {}
        for x in part:
            k = get(x)
            digests[_digest(k)] = k
        for d, k in digests.items():
            if d in seen and seen[d][0] != p:
                q = seen[d][0]
                shared = sum(1 for other in digests if other in seen and seen[other][0] == q)
                noun = "prompt" if shared == 1 else "prompts"
                raise ValueError(f"Parts {q} and {p} share {shared} {noun}, e.g. {k!r:.80}; split them with split().")
        for d, k in digests.items():
            seen.setdefault(d, (p, k))


def _digest(key: Hashable) -> str:
    return hashlib.sha256(repr(key).encode("utf-8", "backslashreplace")).hexdigest()


def _range(value: int | tuple[int, int], name: str, *, minimum: int) -> tuple[int, int]:
    lo, hi = (value, value) if isinstance(value, (int, np.integer)) else value
    if not minimum <= lo <= hi:
        raise ValueError(
            f"{name} must be an integer >= {minimum} or a range (lo, hi) with {minimum} <= lo <= hi; got {value!r}."
        )
    return int(lo), int(hi)


def _check_n(n: int) -> None:
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer; got {n!r}.")


__all__ = ["Example", "answer_of", "check_disjoint", "split"]
