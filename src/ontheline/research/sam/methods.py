"""Sharpness-aware minimisation under label noise: batch SAM, per-example 1-SAM, its logit (L-SAM) and
Jacobian (J-SAM) halves, and the cheap explicit regulariser that replaces it (Baek, Kolter, Raghunathan, ICLR 2024).

SAM steps with the gradient at ``w + eps``, ``eps = rho * g / ||g||``. 1-SAM perturbs each
example by its own gradient, ``eps_i = rho * g_i / ||g_i||``, and averages
``grad l_i(w + eps_i)``. Each per-example gradient is ``J_i(w)^T dl/df``: a Jacobian times a
logit-scale term. L-SAM perturbs only the logit term, ``J_i(w)^T dl/df(w + eps_i)``; J-SAM
only the Jacobian, ``J_i(w + eps_i)^T dl/df(w)``. The paper finds that in deep networks the
Jacobian half does the work, and that on a two-layer linear network J-SAM is SGD plus an
example-weighted L2 penalty on the last layer's weights and on the hidden features, hence the
cheap regulariser: ``lambda_w ||W_last||^2 + lambda_f mean_i ||phi(x_i)||^2``.

Per-example perturbations use ``torch.func`` (``vmap`` over ``grad`` and ``functional_call``),
so the model must handle one example at a time (no BatchNorm in training mode). ``rho = 0``
reduces every method to the plain gradient exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ontheline._optional import extra

with extra("torch"):
    import torch
    from torch.func import functional_call, grad, vmap

#: The per-example variants :func:`sam_gradient` computes: 1-SAM, and its logit (L-SAM) and Jacobian (J-SAM) halves.
VARIANTS = ("1-sam", "l-sam", "j-sam")
_EPS = 1e-12


class SAM(torch.optim.Optimizer):
    """Batch SAM around any base optimiser (Foret et al., 2021); ``adaptive=True`` is ASAM's scaling.

    Either call ``first_step()`` after a backward pass at ``w`` and ``second_step()`` after one
    at ``w + eps``, or pass ``step`` a closure that recomputes the loss and calls backward.

    Parameters
    ----------
    params : iterable of tensors or parameter groups
    base_optimizer : type of torch.optim.Optimizer
        The optimiser that takes the step, e.g. ``torch.optim.SGD``.
    rho : float, default 0.05
        The radius of the perturbation.
    adaptive : bool, default False
        Scale the perturbation by each weight's magnitude (ASAM).
    **kwargs
        Passed to ``base_optimizer`` (``lr``, ``momentum``, ...).

    References
    ----------
    .. [1] P. Foret, A. Kleiner, H. Mobahi and B. Neyshabur, "Sharpness-Aware Minimization for Efficiently
       Improving Generalization", ICLR 2021, arXiv:2010.01412.
    .. [2] J. Kwon, J. Kim, H. Park and I. K. Choi, "ASAM: Adaptive Sharpness-Aware Minimization for
       Scale-Invariant Learning of Deep Neural Networks", ICML 2021, arXiv:2102.11600.
    .. [3] C. Baek, J. Z. Kolter and A. Raghunathan, "Why is SAM Robust to Label Noise?", ICLR 2024,
       arXiv:2405.03676.

    Examples
    --------
    >>> model = torch.nn.Linear(3, 2)
    >>> opt = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
    >>> x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = torch.nn.functional.cross_entropy(model(x), y)
    ...     loss.backward()
    ...     return loss
    >>> loss = opt.step(closure)
    """

    def __init__(
        self, params: Iterable[Any], base_optimizer: type[torch.optim.Optimizer], *, rho: float = 0.05,
        adaptive: bool = False, **kwargs: Any,
    ) -> None:  # fmt: skip
        if rho < 0:
            raise ValueError(f"SAM needs rho >= 0; got {rho}.")
        super().__init__(params, dict(rho=rho, adaptive=adaptive, **kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)

    @torch.no_grad()
    def first_step(self, zero_grad: bool = True) -> None:
        """Move to ``w + eps`` along the current gradient (remembering ``eps``)."""
        norm = self._grad_norm()
        for group in self.param_groups:
            scale = group["rho"] / (norm + _EPS)
            for p in group["params"]:
                if p.grad is None:
                    continue
                e = (p.pow(2) if group["adaptive"] else torch.ones_like(p)) * p.grad * scale
                p.add_(e)
                self.state[p]["e"] = e
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = True) -> None:
        """Return to ``w`` and step the base optimiser with the gradient taken at ``w + eps``."""
        for group in self.param_groups:
            for p in group["params"]:
                if "e" in self.state[p]:
                    p.sub_(self.state[p].pop("e"))
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        if closure is None:
            raise ValueError(
                "SAM.step needs a closure that zeroes the gradients, computes the loss and calls backward."
            )
        closure = torch.enable_grad()(closure)
        loss = closure()
        self.first_step(zero_grad=True)
        closure()
        self.second_step()
        return loss

    def _grad_norm(self) -> torch.Tensor:
        norms = [
            ((p.abs() if group["adaptive"] else 1.0) * p.grad).norm(p=2)
            for group in self.param_groups
            for p in group["params"]
            if p.grad is not None
        ]
        return torch.norm(torch.stack(norms), p=2) if norms else torch.tensor(0.0)


def per_example_gradients(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> dict[str, torch.Tensor]:
    """``{name: (batch, *shape)}``: each example's cross-entropy gradient.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> model, x, y = torch.nn.Linear(3, 2), torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    >>> grads = per_example_gradients(model, x, y)
    >>> {name: tuple(g.shape) for name, g in grads.items()}
    {'weight': (4, 2, 3), 'bias': (4, 2)}
    >>> torch.nn.functional.cross_entropy(model(x), y).backward()
    >>> bool(torch.allclose(grads["weight"].mean(dim=0), model.weight.grad))  # their mean is the batch gradient
    True
    """
    params, buffers = _params(model)
    return vmap(grad(_loss(model, buffers)), in_dims=(None, 0, 0))(params, inputs, targets)


def perturbations(per_example: dict[str, torch.Tensor], rho: float) -> dict[str, torch.Tensor]:
    """``eps_i = rho * g_i / ||g_i||`` per example (norm over every parameter); 0 where ``g_i = 0``.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> model, x, y = torch.nn.Linear(3, 2), torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    >>> eps = perturbations(per_example_gradients(model, x, y), rho=0.05)
    >>> norms = torch.sqrt(eps["weight"].flatten(1).pow(2).sum(1) + eps["bias"].pow(2).sum(1))
    >>> norms.round(decimals=4).tolist()  # every example moves by rho
    [0.05000000074505806, 0.05000000074505806, 0.05000000074505806, 0.05000000074505806]
    """
    norms = torch.sqrt(torch.stack([g.flatten(1).pow(2).sum(1) for g in per_example.values()]).sum(0))
    scale = rho / (norms + _EPS)
    return {k: g * scale.view(-1, *[1] * (g.dim() - 1)) for k, g in per_example.items()}


def sam_gradient(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, rho: float, variant: str = "1-sam"
) -> dict[str, torch.Tensor]:
    """The mean over the batch of the per-example 1-SAM, L-SAM or J-SAM gradient, ``{name: tensor}``.

    Parameters
    ----------
    model : torch.nn.Module
        Handles one example at a time (no BatchNorm in training mode).
    inputs : tensor of shape (batch, ...)
    targets : tensor of shape (batch,)
        Class indices.
    rho : float
        The radius of each example's perturbation; 0 gives the plain gradient.
    variant : {'1-sam', 'l-sam', 'j-sam'}
        See the module docstring.

    Returns
    -------
    dict of str to tensor
        One gradient per parameter, shaped like it.

    References
    ----------
    .. [1] C. Baek, J. Z. Kolter and A. Raghunathan, "Why is SAM Robust to Label Noise?", ICLR 2024,
       arXiv:2405.03676.
    .. [2] P. Foret, A. Kleiner, H. Mobahi and B. Neyshabur, "Sharpness-Aware Minimization for Efficiently
       Improving Generalization", ICLR 2021, arXiv:2010.01412.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> model, x, y = torch.nn.Linear(3, 2), torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    >>> grads = sam_gradient(model, x, y, rho=0.1, variant="j-sam")
    >>> {name: tuple(g.shape) for name, g in grads.items()}
    {'weight': (2, 3), 'bias': (2,)}
    >>> torch.nn.functional.cross_entropy(model(x), y).backward()
    >>> bool(torch.allclose(sam_gradient(model, x, y, rho=0.0)["weight"], model.weight.grad))  # rho = 0: SGD
    True
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}; got {variant!r}.")
    if rho < 0:
        raise ValueError(f"rho must be >= 0; got {rho}.")
    params, buffers = _params(model)
    loss = _loss(model, buffers)
    g = vmap(grad(loss), in_dims=(None, 0, 0))(params, inputs, targets)
    eps = perturbations(g, rho)
    perturbed = {k: params[k][None] + eps[k] for k in params}  # (batch, *shape): one copy per example
    if variant == "1-sam":
        grads = vmap(grad(loss), in_dims=(0, 0, 0))(perturbed, inputs, targets)
    else:
        logits = _logits(model, buffers)
        # J-SAM: the logit term at w, the Jacobian at w + eps_i; L-SAM: the other way round.
        at = params if variant == "j-sam" else perturbed
        dims = None if variant == "j-sam" else 0
        outputs = vmap(logits, in_dims=(dims, 0))(at, inputs)
        dl_df = vmap(grad(_ce_of_logits))(outputs.detach(), targets)
        jacobian_at, jacobian_dims = (perturbed, 0) if variant == "j-sam" else (params, None)

        def linearised(p: dict[str, torch.Tensor], x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
            return (logits(p, x) * d).sum()  # its gradient is J(p)^T d

        grads = vmap(grad(linearised), in_dims=(jacobian_dims, 0, 0))(jacobian_at, inputs, dl_df)
    return {k: v.mean(dim=0) for k, v in grads.items()}


def set_gradients(model: torch.nn.Module, gradients: dict[str, torch.Tensor]) -> None:
    """Write ``gradients`` into each parameter's ``.grad``, so that any optimiser can step with them.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> model, x, y = torch.nn.Linear(3, 2), torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> set_gradients(model, sam_gradient(model, x, y, rho=0.05))  # one 1-SAM step
    >>> optimizer.step()
    >>> model.weight.grad.shape
    torch.Size([2, 3])
    """
    for name, p in model.named_parameters():
        p.grad = gradients[name].detach().clone()


def head_penalty(
    features: torch.Tensor, head: torch.nn.Linear, *, lambda_w: float = 1e-2, lambda_f: float = 1e-2
) -> torch.Tensor:
    """The explicit regulariser: ``lambda_w ||W_last||^2 + lambda_f mean_i ||phi(x_i)||^2`` (add it to the loss).

    Parameters
    ----------
    features : tensor of shape (batch, n_features)
        The hidden features ``phi(x_i)`` that ``head`` maps to logits.
    head : torch.nn.Linear
        The last layer.
    lambda_w, lambda_f : float
        The weights of the two penalties.

    References
    ----------
    .. [1] C. Baek, J. Z. Kolter and A. Raghunathan, "Why is SAM Robust to Label Noise?", ICLR 2024,
       arXiv:2405.03676.

    Examples
    --------
    >>> head = torch.nn.Linear(3, 2)
    >>> _ = head.weight.data.fill_(0.5)  # ||W||^2 = 6 * 0.25
    >>> penalty = head_penalty(torch.ones(4, 3), head, lambda_w=0.01, lambda_f=0.01)  # 0.01 * 1.5 + 0.01 * 3
    >>> round(penalty.item(), 4), penalty.requires_grad  # differentiable: add it to the loss
    (0.045, True)
    """
    return lambda_w * head.weight.pow(2).sum() + lambda_f * features.pow(2).sum(dim=1).mean()


def fit_fractions(
    model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, noisy: torch.Tensor
) -> tuple[float, float]:
    """The fraction of clean training examples the model fits, and of noisy ones (their wrong label).

    Examples
    --------
    >>> model = torch.nn.Linear(2, 2)
    >>> with torch.no_grad():  # predicts the larger input
    ...     _ = model.weight.copy_(torch.eye(2)), model.bias.zero_()
    >>> inputs, labels = torch.eye(2).repeat(2, 1), torch.tensor([0, 1, 1, 0])
    >>> fit_fractions(model, inputs, labels, noisy=torch.tensor([False, False, True, True]))  # noisy: flipped labels
    (1.0, 0.0)
    """
    with torch.no_grad():
        fit = model(inputs).argmax(dim=1) == labels
    return float(fit[~noisy].float().mean()), float(fit[noisy].float().mean()) if noisy.any() else float("nan")


def logit_weights(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, rho: float) -> torch.Tensor:
    """``(batch, 2)``: each example's logit-scale weight ``||dl/df||`` at ``w`` and at ``w + eps_i``.

    Their ratio is how much 1-SAM's logit half re-weights the example (in logistic regression,
    ``sigma(-m + rho ||x||) / sigma(-m)``, largest for examples that are already fit).

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> model, x, y = torch.nn.Linear(3, 2), torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    >>> weights = logit_weights(model, x, y, rho=0.1)
    >>> weights.shape, bool((weights > 0).all())
    (torch.Size([4, 2]), True)
    """
    params, buffers = _params(model)
    g = vmap(grad(_loss(model, buffers)), in_dims=(None, 0, 0))(params, inputs, targets)
    eps = perturbations(g, rho)
    logits = _logits(model, buffers)
    before = vmap(logits, in_dims=(None, 0))(params, inputs)
    after = vmap(logits, in_dims=(0, 0))({k: params[k][None] + eps[k] for k in params}, inputs)
    weight = vmap(grad(_ce_of_logits))
    return torch.stack([weight(before, targets).norm(dim=1), weight(after, targets).norm(dim=1)], dim=1).detach()


def _params(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    return {k: v.detach() for k, v in model.named_parameters()}, {k: v.detach() for k, v in model.named_buffers()}


def _logits(model: torch.nn.Module, buffers: dict[str, torch.Tensor]) -> Callable[..., torch.Tensor]:
    def logits(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, (p, buffers), (x[None],))[0]

    return logits


def _ce_of_logits(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(z[None], y[None])


def _loss(model: torch.nn.Module, buffers: dict[str, torch.Tensor]) -> Callable[..., torch.Tensor]:
    logits = _logits(model, buffers)

    def loss(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _ce_of_logits(logits(p, x), y)

    return loss


__all__ = [
    "SAM",
    "VARIANTS",
    "fit_fractions",
    "head_penalty",
    "logit_weights",
    "per_example_gradients",
    "perturbations",
    "sam_gradient",
    "set_gradients",
]
