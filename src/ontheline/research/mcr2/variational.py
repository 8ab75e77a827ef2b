"""The variational form of MCR² (V-MCR²): a dictionary per class in place of its log-determinant.

V-MCR² (Baek, Wu, Chan, Ding, Ma, Haeffele; CVPR 2022) replaces each class log-det by scalar
logs of codes in a dictionary: for a concave ``f`` and PSD ``S``,
``sum_i f(lambda_i(S)) = min_U sum_i f((U^T S U)_ii)`` over orthonormal ``U``, so
``logdet(I + S) <= sum_l log(1 + (U^T S U)_ll)`` with equality in the eigenbasis. Each
class keeps ``atoms`` unit columns ``Gamma_j`` and non-negative codes ``A_j``, tied to its
scaled second moment ``alpha_j Z_j^T Z_j`` by a Frobenius penalty, updated by block ascent
(Rayleigh-Ritz atoms, exact codes) or the paper's projected gradient steps, and reset
("latched") from eigendecompositions now and then.
"""

from __future__ import annotations

from ontheline._optional import extra
from ontheline.research.mcr2.rates import ClassStatistics

with extra("torch"):
    import torch


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
    >>> from ontheline.research.mcr2 import rate_reduction
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
    "VariationalMCR2",
    "dictionary_penalty",
    "gradient_dictionary_step",
    "optimal_codes",
    "ritz_atoms",
    "variational_compression",
    "variational_objective",
]
