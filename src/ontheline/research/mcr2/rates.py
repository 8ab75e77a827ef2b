"""Maximal coding rate reduction (MCR²): coding rates, the exact objective, and the class statistics.

Features are rows, ``Z`` of shape ``(m, d)`` with unit-norm rows; ``eps2`` is the squared
quantisation error epsilon^2.

- Coding rate ``R(Z) = 1/2 logdet(I + d/(m eps2) Z^T Z)``; compression
  ``R_c = sum_j m_j/(2m) logdet(I + d/(m_j eps2) Z_j^T Z_j)``; MCR² maximises ``R - R_c``
  (Yu et al., 2020). Exact, differentiable, log-determinants by Cholesky (batched over classes).
- V-MCR², the variational form, is in :mod:`ontheline.research.mcr2.variational`.
- ReduNet, built in closed form from these statistics, is in :mod:`ontheline.research.mcr2.redunet`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ontheline._optional import extra

with extra("torch"):
    import torch


def logdet_pd(matrix: torch.Tensor) -> torch.Tensor:
    """``log det`` of symmetric positive-definite matrices (batched), via Cholesky: stable and differentiable.

    Examples
    --------
    >>> round(logdet_pd(torch.diag(torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64))).item(), 4)  # log 8
    2.0794
    """
    return 2 * torch.log(torch.diagonal(torch.linalg.cholesky(matrix), dim1=-2, dim2=-1)).sum(-1)


def coding_rate(z: torch.Tensor, eps2: float = 0.5) -> torch.Tensor:
    """``R(Z) = 1/2 logdet(I + d/(m eps2) Z^T Z)`` for rows ``Z`` ``(m, d)``.

    References
    ----------
    .. [1] Y. Yu, K. H. R. Chan, C. You, C. Song and Y. Ma, "Learning Diverse and Discriminative
       Representations via the Principle of Maximal Coding Rate Reduction", NeurIPS 2020, arXiv:2006.08558.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> z, labels = torch.nn.functional.normalize(torch.randn(12, 4, dtype=torch.float64), dim=1), torch.arange(12) % 3
    >>> round(coding_rate(z).item(), 4)
    2.1477
    >>> round((0.5 * torch.logdet(torch.eye(4, dtype=z.dtype) + 4 / (12 * 0.5) * z.T @ z)).item(), 4)  # the formula
    2.1477
    """
    m, d = z.shape
    return rate_of_moments(smaller_moment(z), torch.tensor(float(m), dtype=z.dtype), eps2, d)


def rate_of_moments(moments: torch.Tensor, counts: torch.Tensor, eps2: float, dim: int | None = None) -> torch.Tensor:
    """``1/2 logdet(I + d/(m eps2) M)`` for second moments ``M`` ``(..., n, n)`` of ``counts`` ``(...)`` rows each.

    ``M`` is ``Z^T Z`` (``n = d``) or, by Sylvester's identity, the Gram matrix ``Z Z^T`` (``n = m``,
    zero-padded rows allowed); ``dim`` is the feature dimension ``d`` (default ``n``).

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> z, labels = torch.nn.functional.normalize(torch.randn(12, 4, dtype=torch.float64), dim=1), torch.arange(12) % 3
    >>> m = torch.tensor(12.0, dtype=z.dtype)
    >>> bool(torch.allclose(rate_of_moments(z.T @ z, m, 0.5), rate_of_moments(z @ z.T, m, 0.5, dim=4)))  # Sylvester
    True
    """
    n = moments.shape[-1]
    alpha = (dim or n) / (counts.clamp(min=1) * eps2)
    return 0.5 * logdet_pd(torch.eye(n, dtype=moments.dtype, device=moments.device) + alpha[..., None, None] * moments)


def smaller_moment(rows: torch.Tensor) -> torch.Tensor:
    """``Z^T Z`` or ``Z Z^T`` for rows ``(..., m, d)``, whichever is smaller: ``logdet(I + a .)`` is the same for both.

    Examples
    --------
    >>> smaller_moment(torch.ones(12, 4)).shape, smaller_moment(torch.ones(2, 4)).shape
    (torch.Size([4, 4]), torch.Size([2, 2]))
    """
    return rows @ rows.mT if rows.shape[-2] < rows.shape[-1] else rows.mT @ rows


def class_blocks(z: torch.Tensor, labels: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows grouped by class into a zero-padded ``(k, max m_j, d)`` block, and the counts ``(k,)``.

    Examples
    --------
    >>> blocks, counts = class_blocks(torch.ones(5, 4), torch.tensor([0, 1, 0, 0, 2]), 3)
    >>> blocks.shape, counts.tolist(), blocks[1].sum(dim=1).tolist()  # class 1: one row, then zero padding
    (torch.Size([3, 3, 4]), [3.0, 1.0, 1.0], [4.0, 0.0, 0.0])
    """
    counts = torch.bincount(labels, minlength=n_classes)
    order = torch.argsort(labels, stable=True)
    grouped = labels[order]
    rank_in_class = torch.arange(len(labels), device=labels.device) - (torch.cumsum(counts, 0) - counts)[grouped]
    blocks = z.new_zeros(n_classes, int(counts.max()), z.shape[1]).index_put((grouped, rank_in_class), z[order])
    return blocks, counts.to(z.dtype)


def class_moments(z: torch.Tensor, labels: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each class's second moment ``Z_j^T Z_j`` ``(k, d, d)`` and count ``(k,)``: one batched product over the
    class blocks (an outer product per sample is several times slower).

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> z, labels = torch.nn.functional.normalize(torch.randn(12, 4, dtype=torch.float64), dim=1), torch.arange(12) % 3
    >>> moments, counts = class_moments(z, labels, 3)
    >>> moments.shape, counts.tolist(), bool(torch.allclose(moments.sum(dim=0), z.T @ z))
    (torch.Size([3, 4, 4]), [4.0, 4.0, 4.0], True)
    """
    blocks, counts = class_blocks(z, labels, n_classes)
    return blocks.mT @ blocks, counts


def compression_rate(z: torch.Tensor, labels: torch.Tensor, n_classes: int, eps2: float = 0.5) -> torch.Tensor:
    """``R_c = sum_j m_j/(2m) logdet(I + d/(m_j eps2) Z_j^T Z_j)`` (classes without samples add 0).

    Each log-det is taken on the smaller of ``d x d`` and ``max m_j x max m_j``: ``O(min(d, m_j)^3)``.

    References
    ----------
    .. [1] Y. Yu, K. H. R. Chan, C. You, C. Song and Y. Ma, "Learning Diverse and Discriminative
       Representations via the Principle of Maximal Coding Rate Reduction", NeurIPS 2020, arXiv:2006.08558.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> z, labels = torch.nn.functional.normalize(torch.randn(12, 4, dtype=torch.float64), dim=1), torch.arange(12) % 3
    >>> round(compression_rate(z, labels, 3).item(), 4)
    1.9158
    """
    return ClassStatistics.of(z, labels, n_classes, eps2).compression_rate()


def rate_reduction(z: torch.Tensor, labels: torch.Tensor, n_classes: int, eps2: float = 0.5) -> torch.Tensor:
    """``Delta R = R(Z) - R_c(Z)``: what MCR² maximises (``Z^T Z`` from the class moments when they are formed).

    Parameters
    ----------
    z : tensor of shape (m, d)
        Features, one unit-norm row per sample.
    labels : tensor of shape (m,)
        Class indices.
    n_classes : int
    eps2 : float, default 0.5
        The squared quantisation error.

    Returns
    -------
    tensor
        A differentiable scalar.

    References
    ----------
    .. [1] Y. Yu, K. H. R. Chan, C. You, C. Song and Y. Ma, "Learning Diverse and Discriminative
       Representations via the Principle of Maximal Coding Rate Reduction", NeurIPS 2020, arXiv:2006.08558.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> z, labels = torch.nn.functional.normalize(torch.randn(12, 4, dtype=torch.float64), dim=1), torch.arange(12) % 3
    >>> round(rate_reduction(z, labels, 3).item(), 4)  # R - R_c = 2.1477 - 1.9158
    0.2319
    >>> rate_reduction(z, torch.zeros(12, dtype=torch.long), 1).item()  # one class: nothing to reduce
    0.0
    """
    stats = ClassStatistics.of(z, labels, n_classes, eps2)
    return stats.coding_rate(z) - stats.compression_rate()


def textbook_rate_reduction(z: torch.Tensor, labels: torch.Tensor, n_classes: int, eps2: float = 0.5) -> torch.Tensor:
    """``Delta R = R(Z) - R_c(Z)`` as the MCR² paper writes it: a ``d x d`` log-det per class, one class at a time.

    ``logdet(I + alpha_j Z_j^T Z_j)`` for each class in a Python loop (``torch.logdet``), with no
    Gram-matrix (Sylvester) shortcut and no batching: ``O(k d^3)`` however small the classes.
    The reference that V-MCR² is timed against in ``ontheline repro vmcr2``; :func:`rate_reduction`
    gives the same number faster.

    References
    ----------
    .. [1] Y. Yu, K. H. R. Chan, C. You, C. Song and Y. Ma, "Learning Diverse and Discriminative
       Representations via the Principle of Maximal Coding Rate Reduction", NeurIPS 2020, arXiv:2006.08558.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> z, labels = torch.nn.functional.normalize(torch.randn(12, 4, dtype=torch.float64), dim=1), torch.arange(12) % 3
    >>> round(textbook_rate_reduction(z, labels, 3).item(), 4), round(rate_reduction(z, labels, 3).item(), 4)
    (0.2319, 0.2319)
    """
    m, d = z.shape
    eye = torch.eye(d, dtype=z.dtype, device=z.device)
    compression = z.new_zeros(())
    for j in range(n_classes):
        zj = z[labels == j]
        if len(zj):
            compression = compression + len(zj) / (2 * m) * torch.logdet(eye + d / (len(zj) * eps2) * zj.T @ zj)
    return 0.5 * torch.logdet(eye + d / (m * eps2) * z.T @ z) - compression


def mcr2_loss(z: torch.Tensor, labels: torch.Tensor, n_classes: int, eps2: float = 0.5) -> torch.Tensor:
    """``-Delta R``, to minimise.

    References
    ----------
    .. [1] Y. Yu, K. H. R. Chan, C. You, C. Song and Y. Ma, "Learning Diverse and Discriminative
       Representations via the Principle of Maximal Coding Rate Reduction", NeurIPS 2020, arXiv:2006.08558.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> z, labels = torch.nn.functional.normalize(torch.randn(12, 4, dtype=torch.float64), dim=1), torch.arange(12) % 3
    >>> features = z.clone().requires_grad_()
    >>> loss = mcr2_loss(features, labels, 3)
    >>> loss.backward()
    >>> round(loss.item(), 4), features.grad.shape
    (-0.2319, torch.Size([12, 4]))
    """
    return -rate_reduction(z, labels, n_classes, eps2)


@dataclass(frozen=True)
class ClassStatistics:
    """A batch's rows grouped by class, ``blocks`` ``(k, max m_j, d)`` (zero-padded), with ``counts`` ``(k,)``.

    What MCR² and V-MCR² need of the scaled class moments ``S_j = alpha_j Z_j^T Z_j`` (``alpha_j =
    d / (m_j eps2)``). ``moments`` (``Z_j^T Z_j``) is formed only when the classes have at least
    ``d`` rows; smaller classes are worked on through their rows (``O(m_j d)`` per vector instead
    of ``O(d^2)``), so no ``d x d`` matrix per class is formed.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> z = torch.nn.functional.normalize(torch.randn(12, 8, dtype=torch.float64), dim=1)
    >>> stats = ClassStatistics.of(z, torch.arange(12) % 3, 3, eps2=0.5)
    >>> stats.moments is None, stats.counts.tolist()  # 4 rows per class, 8 dimensions: no 8 x 8 moments
    (True, [4.0, 4.0, 4.0])
    >>> bool(torch.allclose(stats.compression_rate(), compression_rate(z, torch.arange(12) % 3, 3)))
    True
    """

    blocks: torch.Tensor
    counts: torch.Tensor
    eps2: float
    moments: torch.Tensor | None = None

    @classmethod
    def of(cls, z: torch.Tensor, labels: torch.Tensor, n_classes: int, eps2: float) -> ClassStatistics:
        blocks, counts = class_blocks(z, labels, n_classes)
        large = blocks.shape[1] >= blocks.shape[2]
        return cls(blocks, counts, eps2, blocks.mT @ blocks if large else None)

    @property
    def alpha(self) -> torch.Tensor:
        return self.blocks.shape[-1] / (self.counts.clamp(min=1) * self.eps2)

    @property
    def weights(self) -> torch.Tensor:
        """``m_j / m``."""
        return self.counts / self.counts.sum()

    def detach(self) -> ClassStatistics:
        moments = None if self.moments is None else self.moments.detach()
        return ClassStatistics(self.blocks.detach(), self.counts, self.eps2, moments)

    def scaled_moments(self) -> torch.Tensor:
        """``S_j`` ``(k, d, d)``."""
        moments = self.blocks.mT @ self.blocks if self.moments is None else self.moments
        return self.alpha[:, None, None] * moments

    def apply(self, vectors: torch.Tensor) -> torch.Tensor:
        """``S_j V_j`` for ``V`` ``(k, d, s)``."""
        product = self.blocks.mT @ (self.blocks @ vectors) if self.moments is None else self.moments @ vectors
        return self.alpha[:, None, None] * product

    def rayleigh(self, vectors: torch.Tensor) -> torch.Tensor:
        """``v^T S_j v`` for each column ``v`` of ``V_j``: ``(k, s)``."""
        if self.moments is None:
            return self.alpha[:, None] * (self.blocks @ vectors).pow(2).sum(1)
        return self.alpha[:, None] * (vectors * (self.moments @ vectors)).sum(1)

    def smaller_moments(self) -> torch.Tensor:
        """``Z_j^T Z_j`` or, for classes smaller than ``d``, the Gram matrix ``Z_j Z_j^T``: the same non-zero spectrum."""
        return self.blocks @ self.blocks.mT if self.moments is None else self.moments

    def squared_norms(self) -> torch.Tensor:
        """``||S_j||_F^2`` ``(k,)``: ``Z_j^T Z_j`` and the Gram matrix ``Z_j Z_j^T`` have the same Frobenius norm."""
        return self.alpha**2 * self.smaller_moments().pow(2).sum((1, 2))

    def compression_rate(self) -> torch.Tensor:
        """``R_c = sum_j m_j/(2m) logdet(I + alpha_j Z_j^T Z_j)``, each log-det on the smaller matrix (Sylvester)."""
        rates = rate_of_moments(self.smaller_moments(), self.counts, self.eps2, self.blocks.shape[-1])
        return (self.weights * rates).sum()

    def top_eigenpairs(self, s: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each ``S_j``'s top ``s`` eigenvalues ``(k, s)``, descending, and orthonormal eigenvectors ``(k, d, s)``.

        With classes smaller than ``d``, from the Gram matrices: if ``Z_j Z_j^T u = lambda u`` then
        ``Z_j^T u / sqrt(lambda)`` is a unit eigenvector of ``Z_j^T Z_j``; a QR completes the
        directions beyond a class's rank (eigenvalue 0) to an orthonormal set.
        """
        if self.moments is not None or s > self.blocks.shape[1]:
            values, vectors = torch.linalg.eigh(self.scaled_moments())  # ascending
            return values[:, -s:].flip(-1).clamp(min=0), vectors[:, :, -s:].flip(-1)
        values, u = torch.linalg.eigh(self.smaller_moments())
        values, u = values[:, -s:].flip(-1).clamp(min=0), u[:, :, -s:].flip(-1)
        scale = values.sqrt().clamp(min=torch.finfo(values.dtype).eps)
        vectors = torch.linalg.qr(self.blocks.mT @ u / scale[:, None, :])[0]
        return self.alpha[:, None] * values, vectors

    def coding_rate(self, z: torch.Tensor) -> torch.Tensor:
        """``R(Z)``, from the sum of the class moments when they are formed (it is ``Z^T Z``)."""
        if self.moments is None:
            return coding_rate(z, self.eps2)
        return rate_of_moments(self.moments.sum(0), self.counts.sum(), self.eps2)


__all__ = [
    "ClassStatistics",
    "class_blocks",
    "class_moments",
    "coding_rate",
    "compression_rate",
    "logdet_pd",
    "mcr2_loss",
    "rate_of_moments",
    "rate_reduction",
    "smaller_moment",
    "textbook_rate_reduction",
]
