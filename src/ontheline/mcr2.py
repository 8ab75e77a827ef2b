"""Maximal coding rate reduction (MCR²), its variational form (V-MCR²), and ReduNet built in closed form.

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
  scaled second moment ``alpha_j Z_j^T Z_j`` by a Frobenius penalty, updated by projected
  gradient ascent and reset ("latched") from eigendecompositions now and then.
- ReduNet (Chan, Yu, You, Qi, Wright, Ma; 2022): each layer is a gradient-ascent step on
  ``R - R_c`` whose operators ``E`` and ``C_j`` are computed from the data, no backprop.
  Built here with a per-class scalar normalisation, every layer depends on the data only
  through each class's second moment and count, so a network built incrementally from stored
  class statistics (Wu, Baek, You, Ma; CVPR 2021) equals the one built jointly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


def logdet_pd(matrix: torch.Tensor) -> torch.Tensor:
    """``log det`` of symmetric positive-definite matrices (batched), via Cholesky: stable and differentiable."""
    return 2 * torch.log(torch.diagonal(torch.linalg.cholesky(matrix), dim1=-2, dim2=-1)).sum(-1)


def coding_rate(z: torch.Tensor, eps2: float = 0.5) -> torch.Tensor:
    """``R(Z) = 1/2 logdet(I + d/(m eps2) Z^T Z)`` for rows ``Z`` ``(m, d)``."""
    m, d = z.shape
    eye = torch.eye(d, dtype=z.dtype)
    return 0.5 * logdet_pd(eye + (d / (m * eps2)) * z.T @ z)


def class_moments(z: torch.Tensor, labels: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each class's second moment ``Z_j^T Z_j`` ``(k, d, d)`` and count ``(k,)``."""
    d = z.shape[1]
    outer = (z[:, :, None] * z[:, None, :]).reshape(len(z), d * d)
    moments = torch.zeros(n_classes, d * d, dtype=z.dtype).index_add(0, labels, outer).reshape(n_classes, d, d)
    counts = torch.bincount(labels, minlength=n_classes).to(z.dtype)
    return moments, counts


def compression_rate(z: torch.Tensor, labels: torch.Tensor, n_classes: int, eps2: float = 0.5) -> torch.Tensor:
    """``R_c = sum_j m_j/(2m) logdet(I + d/(m_j eps2) Z_j^T Z_j)`` (classes without samples add 0)."""
    m, d = z.shape
    moments, counts = class_moments(z, labels, n_classes)
    alpha = d / (counts.clamp(min=1) * eps2)
    eye = torch.eye(d, dtype=z.dtype)
    return (counts / (2 * m) * logdet_pd(eye + alpha[:, None, None] * moments)).sum()


def rate_reduction(z: torch.Tensor, labels: torch.Tensor, n_classes: int, eps2: float = 0.5) -> torch.Tensor:
    """``Delta R = R(Z) - R_c(Z)``: what MCR² maximises."""
    return coding_rate(z, eps2) - compression_rate(z, labels, n_classes, eps2)


def mcr2_loss(z: torch.Tensor, labels: torch.Tensor, n_classes: int, eps2: float = 0.5) -> torch.Tensor:
    """``-Delta R``, to minimise."""
    return -rate_reduction(z, labels, n_classes, eps2)


class VariationalMCR2(torch.nn.Module):
    """The V-MCR² objective with its dictionary ``gamma`` ``(k, d, s)`` and codes ``codes`` ``(k, s)``.

    ``objective(Z, labels)`` = ``R(Z) - sum_j gamma_j/2 sum_l log(1 + A_jl)
    - mu/2 sum_j gamma_j ||alpha_j Z_j^T Z_j - Gamma_j diag(A_j) Gamma_j^T||_F^2``, with
    ``gamma_j = m_j / m``: one log-det (of ``d x d``) instead of ``k + 1``. The encoder ascends it
    through ``R`` and the penalty; ``update_dictionary`` takes one projected ascent step on the
    dictionary (unit columns, non-negative codes); ``latch`` resets both from eigendecompositions.
    """

    def __init__(self, dim: int, n_classes: int, atoms: int, *, eps2: float = 0.5, mu: float = 1.0, seed: int = 0):
        super().__init__()
        if not 1 <= atoms <= dim:
            raise ValueError(f"atoms must be in [1, dim={dim}]; got {atoms}.")
        generator = torch.Generator().manual_seed(seed)
        gamma = torch.randn(n_classes, dim, atoms, generator=generator, dtype=torch.float64)
        self.gamma = torch.nn.Parameter(gamma / gamma.norm(dim=1, keepdim=True))
        self.codes = torch.nn.Parameter(torch.ones(n_classes, atoms, dtype=torch.float64))
        self.n_classes, self.eps2, self.mu = n_classes, eps2, mu

    def scaled_moments(self, z: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return scaled_moments(z, labels, self.n_classes, self.eps2)

    def compression(self, weights: torch.Tensor) -> torch.Tensor:
        """The variational compression term: scalar logs of the codes."""
        return variational_compression(self.codes, weights)

    def penalty(self, scaled: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return dictionary_penalty(scaled, weights, self.gamma, self.codes, self.mu)

    def objective(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return variational_objective(z, labels, self.gamma, self.codes, self.n_classes, self.eps2, self.mu)

    @torch.no_grad()
    def latch(self, z: torch.Tensor, labels: torch.Tensor) -> None:
        """``Gamma_j`` <- the top eigenvectors of ``alpha_j Z_j^T Z_j``, ``A_j`` <- their eigenvalues."""
        scaled, _ = self.scaled_moments(z.detach(), labels)
        values, vectors = torch.linalg.eigh(scaled)  # ascending
        s = self.codes.shape[1]
        self.gamma.copy_(vectors[:, :, -s:].flip(-1))
        self.codes.copy_(values[:, -s:].flip(-1).clamp(min=0))

    def update_dictionary(self, z: torch.Tensor, labels: torch.Tensor, steps: int = 1) -> None:
        """Projected gradient ascent on the dictionary and codes (features held fixed).

        Step sizes are the inverse Lipschitz bounds of each block's gradient: ``1 / (mu w_j)`` for
        class j's codes and ``1 / (mu w_j max_l A_jl^2)`` for its atoms (``w_j = m_j / m``).
        """
        scaled, weights = self.scaled_moments(z.detach(), labels)
        weights = weights.clamp(min=1e-12)
        for _ in range(steps):
            gamma, codes = self.gamma.detach().requires_grad_(True), self.codes.detach().requires_grad_(True)
            penalty = dictionary_penalty(scaled, weights, gamma, codes, self.mu)
            objective = -variational_compression(codes, weights) - penalty
            grad_gamma, grad_codes = torch.autograd.grad(objective, [gamma, codes])
            with torch.no_grad():
                lipschitz = self.mu * weights
                new_codes = (codes + grad_codes / lipschitz[:, None]).clamp(min=0)
                step = 1 / (lipschitz * codes.pow(2).amax(1).clamp(min=1e-6))
                new_gamma = gamma + grad_gamma * step[:, None, None]
                self.gamma.copy_(new_gamma / new_gamma.norm(dim=1, keepdim=True).clamp(min=1e-12))
                self.codes.copy_(new_codes)


def scaled_moments(
    z: torch.Tensor, labels: torch.Tensor, n_classes: int, eps2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``alpha_j Z_j^T Z_j`` per class (``alpha_j = d / (m_j eps2)``), and the class weights ``m_j / m``."""
    moments, counts = class_moments(z, labels, n_classes)
    alpha = z.shape[1] / (counts.clamp(min=1) * eps2)
    return alpha[:, None, None] * moments, counts / z.shape[0]


def variational_compression(codes: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_j weights_j / 2 sum_l log(1 + A_jl)``."""
    return (weights / 2 * torch.log1p(codes.clamp(min=0)).sum(1)).sum()


def dictionary_penalty(
    scaled: torch.Tensor, weights: torch.Tensor, gamma: torch.Tensor, codes: torch.Tensor, mu: float
) -> torch.Tensor:
    """``mu/2 sum_j weights_j ||scaled_j - Gamma_j diag(A_j) Gamma_j^T||_F^2``."""
    approx = torch.einsum("kds,ks,kes->kde", gamma, codes, gamma)
    return mu / 2 * (weights * (scaled - approx).pow(2).sum((1, 2))).sum()


def variational_objective(
    z: torch.Tensor, labels: torch.Tensor, gamma: torch.Tensor, codes: torch.Tensor, n_classes: int, eps2: float,
    mu: float,
) -> torch.Tensor:  # fmt: skip
    """The V-MCR² objective (to maximise): one log-det, scalar logs, and the dictionary penalty."""
    scaled, weights = scaled_moments(z, labels, n_classes, eps2)
    return (
        coding_rate(z, eps2)
        - variational_compression(codes, weights)
        - dictionary_penalty(scaled, weights, gamma, codes, mu)
    )


# --- ReduNet ---------------------------------------------------------------------------------


@dataclass
class ReduLayer:
    """One layer's operators: ``E`` ``(d, d)``, ``C`` ``(k, d, d)`` and class weights ``gamma`` ``(k,)``."""

    E: torch.Tensor
    C: torch.Tensor
    gamma: torch.Tensor


@dataclass
class ReduNet:
    """A ReduNet built in closed form from class statistics.

    ``moments`` ``(k, d, d)`` and ``counts`` ``(k,)`` are the first layer's class second moments
    and sizes: all the network needs, so adding classes needs no old data (``add_classes``).
    """

    n_layers: int = 20
    eta: float = 0.5
    eps2: float = 0.1
    lam: float = 500.0
    moments: torch.Tensor | None = None
    counts: torch.Tensor | None = None
    layers: list[ReduLayer] = field(default_factory=list)
    final_moments: torch.Tensor | None = None

    def fit(self, z: torch.Tensor, labels: torch.Tensor, n_classes: int) -> ReduNet:
        """Build from data (rows of unit norm): the first layer's class statistics, then every layer."""
        moments, counts = class_moments(z.double(), labels, n_classes)
        return self.build(moments, counts)

    def add_classes(self, z: torch.Tensor, labels: torch.Tensor, n_new: int) -> ReduNet:
        """Add ``n_new`` classes (labels ``0..n_new-1`` among the new data) and rebuild from the statistics."""
        moments, counts = class_moments(z.double(), labels, n_new)
        if self.moments is None or self.counts is None:
            return self.build(moments, counts)
        return self.build(torch.cat([self.moments, moments]), torch.cat([self.counts, counts]))

    def build(self, moments: torch.Tensor, counts: torch.Tensor) -> ReduNet:
        """Every layer from the class second moments: ``S_j <- c_j M_j S_j M_j^T``, ``M_j = I + eta (E - gamma_j C_j)``,
        with ``c_j`` rescaling class j to mean squared norm 1 (the class-scalar normalisation)."""
        self.moments, self.counts = moments, counts
        d = moments.shape[-1]
        eye = torch.eye(d, dtype=moments.dtype)
        m = counts.sum()
        alpha, alpha_j, gamma = d / (m * self.eps2), d / (counts * self.eps2), counts / m
        self.layers = []
        s = moments
        for _ in range(self.n_layers):
            E = alpha * torch.linalg.inv(eye + alpha * s.sum(0))
            C = alpha_j[:, None, None] * torch.linalg.inv(eye + alpha_j[:, None, None] * s)
            self.layers.append(ReduLayer(E, C, gamma))
            M = eye + self.eta * (E - gamma[:, None, None] * C)
            s = M @ s @ M.transpose(1, 2)
            s = s * (counts / torch.diagonal(s, dim1=1, dim2=2).sum(1))[:, None, None]
        self.final_moments = s
        return self

    def transform(self, z: torch.Tensor) -> torch.Tensor:
        """Test-time forward: memberships ``softmax_j(-lam ||C_j z||)``, each layer's step, then the unit sphere."""
        z = z.double()
        for layer in self.layers:
            cz = torch.einsum("kde,me->mkd", layer.C, z)
            membership = torch.softmax(-self.lam * cz.norm(dim=2), dim=1)
            step = z @ layer.E.T - torch.einsum("k,mk,mkd->md", layer.gamma, membership, cz)
            z = torch.nn.functional.normalize(z + self.eta * step, dim=1)
        return z

    def propagate_training(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Training samples through the layers with their own labels and the class-scalar normalisation."""
        z = z.double()
        counts = self.counts
        assert counts is not None
        for layer in self.layers:
            cz = torch.einsum("kde,me->mkd", layer.C, z)[torch.arange(len(z)), labels]
            z = z + self.eta * (z @ layer.E.T - layer.gamma[labels, None] * cz)
            norms = torch.zeros(len(counts), dtype=z.dtype).index_add_(0, labels, z.pow(2).sum(1))
            z = z * torch.sqrt(counts / norms)[labels, None]
        return z

    def predict(self, z: torch.Tensor, rank: int = 4) -> torch.Tensor:
        """Nearest subspace: each class's top ``rank`` eigenvectors of its final second moment."""
        assert self.final_moments is not None
        bases = torch.linalg.eigh(self.final_moments)[1][:, :, -rank:]  # (k, d, r)
        features = self.transform(z)
        residual = features.pow(2).sum(1)[:, None] - torch.einsum("md,kdr->mkr", features, bases).pow(2).sum(2)
        return residual.argmin(dim=1)


def nearest_subspace(
    train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, n_classes: int, rank: int = 4
) -> torch.Tensor:
    """Classify ``test`` rows by the smallest residual to each class's top-``rank`` principal subspace of ``train``."""
    moments, _ = class_moments(train.double(), train_labels, n_classes)
    bases = torch.linalg.eigh(moments)[1][:, :, -rank:]
    test = test.double()
    residual = test.pow(2).sum(1)[:, None] - torch.einsum("md,kdr->mkr", test, bases).pow(2).sum(2)
    return residual.argmin(dim=1)
