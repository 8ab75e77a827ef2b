"""Maximal coding rate reduction (MCR²) and its variational form (V-MCR²).

Features are rows, ``Z`` of shape ``(m, d)`` with unit-norm rows; ``eps2`` is the squared
quantisation error epsilon^2.

- Coding rate ``R(Z) = 1/2 logdet(I + d/(m eps2) Z^T Z)``; compression
  ``R_c = sum_j m_j/(2m) logdet(I + d/(m_j eps2) Z_j^T Z_j)``; MCR² maximises ``R - R_c``
  (Yu et al., 2020). Exact, differentiable, log-determinants by Cholesky (batched over classes).
- V-MCR² (Baek, Wu, Chan, Ding, Ma, Haeffele; CVPR 2022) replaces each class log-det by scalar
  logs of codes in a dictionary: for a concave ``f`` and PSD ``S``,
  ``sum_i f(lambda_i(S)) = min_U sum_i f((U^T S U)_ii)`` over orthonormal ``U``, so
  ``logdet(I + S) <= sum_l log(1 + (U^T S U)_ll)`` with equality in the eigenbasis. Each
  class keeps ``atoms`` unit columns ``Gamma_j`` and non-negative codes ``A_j``, tied to its
  scaled second moment ``alpha_j Z_j^T Z_j`` by a Frobenius penalty, updated by block ascent
  (Rayleigh-Ritz atoms, exact codes) or the paper's projected gradient steps, and reset
  ("latched") from eigendecompositions now and then.
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


#: The dictionary updates of :class:`VariationalMCR2` (``method=``): Rayleigh-Ritz block ascent,
#: or projected gradient steps.
DICTIONARY_METHODS = ("ritz", "gradient")


class VariationalMCR2(torch.nn.Module):
    """The V-MCR² objective with its dictionary: atoms ``gamma`` ``(k, d, s)`` and codes ``codes`` ``(k, s)``.

    ``objective(Z, labels)`` = ``R(Z) - sum_j gamma_j/2 sum_l log(1 + A_jl)
    - mu/2 sum_j gamma_j ||alpha_j Z_j^T Z_j - Gamma_j diag(A_j) Gamma_j^T||_F^2``, with
    ``gamma_j = m_j / m``: one log-det (of ``d x d``) instead of ``k + 1``. The encoder ascends it
    through ``R`` and the penalty; the dictionary ascends it with the features held fixed
    (``update_dictionary``), and ``latch`` resets it from eigendecompositions. ``step`` does one
    training step's share: the class statistics once, the dictionary on them, the objective.

    Dictionary updates (``method``):

    - ``"ritz"`` (default): block-coordinate ascent. Atoms: the top Ritz vectors of each class's
      moment in ``span[Gamma_j, S_j Gamma_j]`` (orthonormal, so unit columns; the span holds the
      old atoms, so the objective never decreases); codes: their exact maximiser given the atoms
      (non-negative). It tracks the class eigenvectors between latches, so the encoder sees the
      gradient of the variational bound rather than a pull back to a stale dictionary.
    - ``"gradient"``: projected gradient ascent with inverse-Lipschitz step sizes, as in the
      paper. Atoms whose code reaches 0 get no gradient and never move, so new directions of the
      features wait for the next latch (see ``docs/mcr2.md`` for what that costs).

    Parameters
    ----------
    dim : int
        The feature dimension ``d``.
    n_classes : int
    atoms : int
        Atoms per class, ``s``, in [1, dim].
    eps2 : float, default 0.5
    mu : float, default 1.0
        The weight of the dictionary penalty.
    seed : int, default 0
        Seeds the initial atoms.

    References
    ----------
    .. [1] C. Baek, Z. Wu, K. H. R. Chan, T. Ding, Y. Ma and B. D. Haeffele, "Efficient Maximal Coding
       Rate Reduction by Variational Forms", CVPR 2022, arXiv:2204.00077.
    .. [2] Y. Yu, K. H. R. Chan, C. You, C. Song and Y. Ma, "Learning Diverse and Discriminative
       Representations via the Principle of Maximal Coding Rate Reduction", NeurIPS 2020, arXiv:2006.08558.

    Examples
    --------
    Latched with as many atoms as dimensions, the variational form is exact:

    >>> _ = torch.manual_seed(0)
    >>> z, labels = torch.nn.functional.normalize(torch.randn(12, 4, dtype=torch.float64), dim=1), torch.arange(12) % 3
    >>> vmcr2 = VariationalMCR2(dim=4, n_classes=3, atoms=4)
    >>> vmcr2.latch(z, labels)
    >>> round(vmcr2.objective(z, labels).item(), 4), round(rate_reduction(z, labels, 3).item(), 4)
    (0.2319, 0.2319)
    >>> objective = vmcr2.step(z, labels, method="ritz")  # dictionary update, then the encoder's objective
    >>> objective.shape, DICTIONARY_METHODS
    (torch.Size([]), ('ritz', 'gradient'))
    """

    gamma: torch.Tensor
    codes: torch.Tensor

    def __init__(self, dim: int, n_classes: int, atoms: int, *, eps2: float = 0.5, mu: float = 1.0, seed: int = 0):
        super().__init__()
        if not 1 <= atoms <= dim:
            raise ValueError(f"atoms must be in [1, dim={dim}]; got {atoms}.")
        if mu <= 0:
            raise ValueError(f"mu must be positive; got {mu}.")
        generator = torch.Generator().manual_seed(seed)
        gamma = torch.linalg.qr(torch.randn(n_classes, dim, atoms, generator=generator, dtype=torch.float64))[0]
        self.register_buffer("gamma", gamma)
        self.register_buffer("codes", torch.ones(n_classes, atoms, dtype=torch.float64))
        self.n_classes, self.eps2, self.mu = n_classes, eps2, mu

    def statistics(self, z: torch.Tensor, labels: torch.Tensor) -> ClassStatistics:
        if z.dtype != self.gamma.dtype:
            raise ValueError(
                f"z is {z.dtype} but the dictionary is {self.gamma.dtype}; convert one of them, e.g. "
                f"VariationalMCR2(...).to({z.dtype})."
            )
        return ClassStatistics.of(z, labels, self.n_classes, self.eps2)

    def compression(self, weights: torch.Tensor) -> torch.Tensor:
        """The variational compression term: scalar logs of the codes."""
        return variational_compression(self.codes, weights)

    def penalty(self, stats: ClassStatistics) -> torch.Tensor:
        return dictionary_penalty(stats, self.gamma, self.codes, self.mu)

    def objective(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return variational_objective(z, labels, self.gamma, self.codes, self.n_classes, self.eps2, self.mu)

    def step(
        self, z: torch.Tensor, labels: torch.Tensor, *, latch: bool = False, dictionary_steps: int = 1,
        method: str = "ritz",
    ) -> torch.Tensor:  # fmt: skip
        """One training step: latch (if asked) and update the dictionary on this batch's class statistics, then
        return the objective for the encoder to ascend. The statistics are computed once for both."""
        stats = self.statistics(z, labels)
        if latch:
            self._latch(stats.detach())
        self._update(stats.detach(), dictionary_steps, method)
        return stats.coding_rate(z) - self.compression(stats.weights) - self.penalty(stats)

    def latch(self, z: torch.Tensor, labels: torch.Tensor) -> None:
        """``Gamma_j`` <- the top eigenvectors of ``alpha_j Z_j^T Z_j``, ``A_j`` <- their eigenvalues."""
        self._latch(self.statistics(z.detach(), labels))

    def update_dictionary(self, z: torch.Tensor, labels: torch.Tensor, steps: int = 1, method: str = "ritz") -> None:
        """``steps`` ascent steps on the dictionary with the features held fixed (``method``: see the class)."""
        self._update(self.statistics(z.detach(), labels), steps, method)

    @torch.no_grad()
    def _latch(self, stats: ClassStatistics) -> None:
        values, vectors = stats.top_eigenpairs(self.codes.shape[1])
        self.gamma.copy_(vectors)
        self.codes.copy_(values)

    @torch.no_grad()
    def _update(self, stats: ClassStatistics, steps: int, method: str) -> None:
        if method not in DICTIONARY_METHODS:
            raise ValueError(f"method must be one of {DICTIONARY_METHODS}; got {method!r}.")
        gamma, codes = self.gamma, self.codes
        for _ in range(steps):
            if method == "ritz":
                gamma, rayleigh = ritz_atoms(stats, gamma)
                codes = optimal_codes(rayleigh, self.mu)
            else:
                gamma, codes = gradient_dictionary_step(stats, gamma, codes, self.mu)
        self.gamma.copy_(gamma)
        self.codes.copy_(codes)


def variational_compression(codes: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_j weights_j / 2 sum_l log(1 + A_jl)``.

    Examples
    --------
    >>> codes, weights = torch.tensor([[1.0, 0.0], [3.0, 0.0]]), torch.tensor([0.5, 0.5])
    >>> round(variational_compression(codes, weights).item(), 4)  # (ln 2 + ln 4) / 4
    0.5199
    """
    return (weights / 2 * torch.log1p(codes.clamp(min=0)).sum(1)).sum()


def dictionary_penalty(stats: ClassStatistics, gamma: torch.Tensor, codes: torch.Tensor, mu: float) -> torch.Tensor:
    """``mu/2 sum_j w_j ||S_j - Gamma_j diag(A_j) Gamma_j^T||_F^2``, expanded so that no ``d x d`` matrix is formed:

    ``||S||^2 - 2 sum_l A_l gamma_l^T S gamma_l + sum_{l,l'} A_l A_l' (gamma_l^T gamma_l')^2``.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> z, labels = torch.nn.functional.normalize(torch.randn(12, 4, dtype=torch.float64), dim=1), torch.arange(12) % 3
    >>> stats = ClassStatistics.of(z, labels, 3, eps2=0.5)
    >>> values, vectors = stats.top_eigenpairs(4)  # the full eigendecomposition: nothing left to penalise
    >>> abs(dictionary_penalty(stats, vectors, values, mu=1.0).item()) < 1e-10
    True
    """
    overlap = (gamma.mT @ gamma).pow(2)
    dictionary = (overlap * codes[:, :, None] * codes[:, None, :]).sum((1, 2))
    per_class = stats.squared_norms() - 2 * (codes * stats.rayleigh(gamma)).sum(1) + dictionary
    return mu / 2 * (stats.weights * per_class).sum()


def variational_objective(
    z: torch.Tensor, labels: torch.Tensor, gamma: torch.Tensor, codes: torch.Tensor, n_classes: int, eps2: float,
    mu: float,
) -> torch.Tensor:  # fmt: skip
    """The V-MCR² objective (to maximise): one log-det, scalar logs, and the dictionary penalty.

    Parameters
    ----------
    z : tensor of shape (m, d)
    labels : tensor of shape (m,)
    gamma : tensor of shape (k, d, s)
        Each class's atoms (unit columns).
    codes : tensor of shape (k, s)
        Each class's non-negative codes.
    n_classes : int
    eps2, mu : float

    Returns
    -------
    tensor
        A differentiable scalar.

    References
    ----------
    .. [1] C. Baek, Z. Wu, K. H. R. Chan, T. Ding, Y. Ma and B. D. Haeffele, "Efficient Maximal Coding
       Rate Reduction by Variational Forms", CVPR 2022, arXiv:2204.00077.
    .. [2] Y. Yu, K. H. R. Chan, C. You, C. Song and Y. Ma, "Learning Diverse and Discriminative
       Representations via the Principle of Maximal Coding Rate Reduction", NeurIPS 2020, arXiv:2006.08558.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> z, labels = torch.nn.functional.normalize(torch.randn(12, 4, dtype=torch.float64), dim=1), torch.arange(12) % 3
    >>> values, vectors = ClassStatistics.of(z, labels, 3, eps2=0.5).top_eigenpairs(4)
    >>> round(variational_objective(z, labels, vectors, values, 3, eps2=0.5, mu=1.0).item(), 4)  # = Delta R here
    0.2319
    """
    stats = ClassStatistics.of(z, labels, n_classes, eps2)
    compression = variational_compression(codes, stats.weights)
    return stats.coding_rate(z) - compression - dictionary_penalty(stats, gamma, codes, mu)


def ritz_atoms(stats: ClassStatistics, gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each class's top ``s`` Ritz pairs of ``S_j`` in ``span[Gamma_j, S_j Gamma_j]``, descending.

    One step of block subspace iteration with Rayleigh-Ritz: orthonormal atoms and their
    Rayleigh quotients. The span contains the old atoms, so for codes sorted in decreasing
    order ``sum_l A_l gamma_l^T S gamma_l`` cannot decrease; repeated steps converge to the top
    eigenvectors, where latching puts the atoms.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> z, labels = torch.nn.functional.normalize(torch.randn(12, 4, dtype=torch.float64), dim=1), torch.arange(12) % 3
    >>> stats = ClassStatistics.of(z, labels, 3, eps2=0.5)
    >>> atoms, quotients = ritz_atoms(stats, VariationalMCR2(dim=4, n_classes=3, atoms=2).gamma)
    >>> atoms.shape, bool(torch.allclose(atoms.mT @ atoms, torch.eye(2, dtype=z.dtype)))  # orthonormal
    (torch.Size([3, 4, 2]), True)
    >>> bool((quotients[:, 0] >= quotients[:, 1]).all())  # descending
    True
    """
    s = gamma.shape[-1]
    basis = torch.linalg.qr(torch.cat([gamma, stats.apply(gamma)], dim=-1))[0]
    projected = stats.blocks @ basis
    values, vectors = torch.linalg.eigh(stats.alpha[:, None, None] * (projected.mT @ projected))  # ascending
    return basis @ vectors[..., -s:].flip(-1), values[..., -s:].flip(-1)


def optimal_codes(rayleigh: torch.Tensor, mu: float) -> torch.Tensor:
    """The code maximising ``-1/2 log(1 + A) - mu/2 (r - A)^2`` over ``A >= 0``, for each Rayleigh quotient ``r``.

    With orthonormal atoms the penalty splits into ``mu/2 sum_l (r_l - A_l)^2`` plus terms free of
    the codes, so each code is a scalar problem. Its stationary points solve
    ``A^2 + (1 - r) A + 1/(2 mu) - r = 0``; the larger root is the only interior maximum, so the
    answer is that root or the boundary 0, whichever scores higher.

    Examples
    --------
    >>> optimal_codes(torch.tensor([0.0, 0.5, 10.0], dtype=torch.float64), mu=100.0).round(decimals=3).tolist()
    [0.0, 0.497, 10.0]
    """

    def score(a: torch.Tensor) -> torch.Tensor:
        return -0.5 * torch.log1p(a) - mu / 2 * (rayleigh - a) ** 2

    root = ((rayleigh - 1 + ((1 + rayleigh) ** 2 - 2 / mu).clamp(min=0).sqrt()) / 2).clamp(min=0)
    return torch.where(score(root) >= score(torch.zeros_like(root)), root, torch.zeros_like(root))


def gradient_dictionary_step(
    stats: ClassStatistics, gamma: torch.Tensor, codes: torch.Tensor, mu: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One projected gradient ascent step on the atoms (back to unit columns) and codes (clipped at 0).

    Step sizes are the inverse Lipschitz bounds of each block's gradient: ``1 / (mu w_j)`` for
    class j's codes and ``1 / (mu w_j max_l A_jl^2)`` for its atoms (``w_j = m_j / m``).

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> z, labels = torch.nn.functional.normalize(torch.randn(12, 4, dtype=torch.float64), dim=1), torch.arange(12) % 3
    >>> vmcr2 = VariationalMCR2(dim=4, n_classes=3, atoms=2)
    >>> stats = ClassStatistics.of(z, labels, 3, eps2=0.5)
    >>> atoms, codes = gradient_dictionary_step(stats, vmcr2.gamma, vmcr2.codes, mu=1.0)
    >>> atoms.shape, bool(torch.allclose(atoms.norm(dim=1), torch.ones(3, 2, dtype=z.dtype))), bool((codes >= 0).all())
    (torch.Size([3, 4, 2]), True, True)
    """
    weights = stats.weights.clamp(min=1e-12)
    with torch.enable_grad():
        gamma, codes = gamma.detach().requires_grad_(True), codes.detach().requires_grad_(True)
        objective = -variational_compression(codes, weights) - dictionary_penalty(stats, gamma, codes, mu)
        grad_gamma, grad_codes = torch.autograd.grad(objective, [gamma, codes])
    lipschitz = mu * weights
    new_codes = (codes + grad_codes / lipschitz[:, None]).clamp(min=0)
    new_gamma = gamma + grad_gamma / (lipschitz * codes.pow(2).amax(1).clamp(min=1e-6))[:, None, None]
    return new_gamma.detach() / new_gamma.norm(dim=1, keepdim=True).clamp(min=1e-12), new_codes.detach()


__all__ = [
    "DICTIONARY_METHODS",
    "ClassStatistics",
    "VariationalMCR2",
    "class_blocks",
    "class_moments",
    "coding_rate",
    "compression_rate",
    "dictionary_penalty",
    "gradient_dictionary_step",
    "logdet_pd",
    "mcr2_loss",
    "optimal_codes",
    "rate_of_moments",
    "rate_reduction",
    "ritz_atoms",
    "smaller_moment",
    "variational_compression",
    "variational_objective",
]
