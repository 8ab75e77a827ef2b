"""ReduNet (Chan, Yu, You, Qi, Wright, Ma; JMLR 2022) built in closed form from class statistics.

Each layer is a gradient-ascent step on ``R - R_c`` whose operators ``E`` and ``C_j`` are
computed from the data, no backprop. Built here with a per-class scalar normalisation, every
layer depends on the data only through each class's second moment and count, so a network
built incrementally from stored class statistics (Wu, Baek, You, Ma; CVPR 2021) equals the
one built jointly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ontheline._optional import extra
from ontheline.research.mcr2.rates import class_moments

with extra("torch"):
    import torch


@dataclass
class ReduLayer:
    """One layer's operators: ``E`` ``(d, d)``, ``C`` ``(k, d, d)`` and class weights ``gamma`` ``(k,)``.

    References
    ----------
    .. [1] K. H. R. Chan, Y. Yu, C. You, H. Qi, J. Wright and Y. Ma, "ReduNet: A White-box Deep Network
       from the Principle of Maximizing Rate Reduction", JMLR 2022, arXiv:2105.10446.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> z, labels = torch.nn.functional.normalize(torch.randn(12, 4, dtype=torch.float64), dim=1), torch.arange(12) % 3
    >>> layer = ReduNet(n_layers=2).fit(z, labels, 3).layers[0]
    >>> layer.E.shape, layer.C.shape, layer.gamma.tolist()  # gamma_j = m_j / m
    (torch.Size([4, 4]), torch.Size([3, 4, 4]), [0.3333333333333333, 0.3333333333333333, 0.3333333333333333])
    """

    E: torch.Tensor
    C: torch.Tensor
    gamma: torch.Tensor


@dataclass
class ReduNet:
    """A ReduNet built in closed form from class statistics.

    ``moments`` ``(k, d, d)`` and ``counts`` ``(k,)`` are the first layer's class second moments
    and sizes: all the network needs, so adding classes needs no old data (``add_classes``).

    Parameters
    ----------
    n_layers : int, default 20
    eta : float, default 0.5
        The step size of each layer.
    eps2 : float, default 0.1
        The squared quantisation error.
    lam : float, default 500.0
        The sharpness of the test-time class memberships.

    References
    ----------
    .. [1] K. H. R. Chan, Y. Yu, C. You, H. Qi, J. Wright and Y. Ma, "ReduNet: A White-box Deep Network
       from the Principle of Maximizing Rate Reduction", JMLR 2022, arXiv:2105.10446.
    .. [2] Z. Wu, C. Baek, C. You and Y. Ma, "Incremental Learning via Rate Reduction", CVPR 2021,
       arXiv:2011.14593.

    Examples
    --------
    A network grown class by class equals the one built on all classes at once:

    >>> _ = torch.manual_seed(0)
    >>> z, labels = torch.nn.functional.normalize(torch.randn(12, 4, dtype=torch.float64), dim=1), torch.arange(12) % 3
    >>> joint = ReduNet(n_layers=5).fit(z, labels, 3)
    >>> grown = ReduNet(n_layers=5).fit(z[labels < 2], labels[labels < 2], 2)
    >>> grown = grown.add_classes(z[labels == 2], labels[labels == 2] - 2, 1)  # no old data needed
    >>> bool(torch.allclose(grown.transform(z), joint.transform(z)))
    True
    >>> joint.transform(z).shape, joint.predict(z, rank=1).shape
    (torch.Size([12, 4]), torch.Size([12]))
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
    """Classify ``test`` rows by the smallest residual to each class's top-``rank`` principal subspace of ``train``.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> labels, axes = torch.arange(12) % 3, torch.eye(3, dtype=torch.float64)
    >>> train = axes[labels] + 0.1 * torch.randn(12, 3, dtype=torch.float64)  # class j along axis j
    >>> nearest_subspace(train, labels, axes, 3, rank=1).tolist()
    [0, 1, 2]
    """
    moments, _ = class_moments(train.double(), train_labels, n_classes)
    bases = torch.linalg.eigh(moments)[1][:, :, -rank:]
    test = test.double()
    residual = test.pow(2).sum(1)[:, None] - torch.einsum("md,kdr->mkr", test, bases).pow(2).sum(2)
    return residual.argmin(dim=1)


__all__ = ["ReduLayer", "ReduNet", "nearest_subspace"]
