"""WiSE-FT recovers pass@k: the classifier analogue of Dang, Baek, Wen, Kolter and Raghunathan (2025).

An MLP is trained on a small subset of scikit-learn's digits (20 images per class) for many
epochs, with a checkpoint every few epochs. Sampling a class from its softmax at temperature
1 is a one-token generation; each test image is a problem, answered with n = 32 samples.
Per checkpoint: pass@1 and pass@k (unbiased estimator), and the bias-variance split of pass@k
from each problem's exact pass@1 (the probability of the true class). Each seed splits every
class's images at random into 20 for training, 40 for validation and the rest for the test.
The early checkpoint is the one with the best pass@16 on the validation images (never the
test images it is then reported on), the late one is the last; WiSE interpolates their
weights (alpha 0.25, 0.5, 0.75, all reported); a temperature sweep on the late checkpoint is
the contrast.

Expected (the issue's goals): late pass@16 below early's; a larger variance term late; WiSE(0.5)
above late on pass@16 and above early on pass@1. This is a check of the machinery on a
classifier, not evidence for the paper's language-model claims.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ontheline._optional import extra
from ontheline._progress import Progress
from ontheline.research.passk import maj_at_k, pass_at_k, pass_at_k_decomposition
from ontheline.research.wise_ft import interpolate

KS = (1, 2, 4, 8, 16)
N_SAMPLES = 32
ALPHAS = (0.25, 0.5, 0.75)
TEMPERATURES = (0.5, 1.0, 1.5, 2.0, 3.0)
PER_CLASS = 20
VALIDATION_PER_CLASS = 40  # carved from the images that are neither training nor test images


def run(
    quick: bool = False, *, seeds: tuple[int, ...] | None = None, epochs: int | None = None,
    max_test: int | None = None, every: int = 20, progress: Progress | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Train, checkpoint, sample and score; the JSON object of ``ontheline repro wise-ft``.

    ``quick``: one seed and 600 epochs (about a minute); otherwise three seeds and 1,000
    epochs. ``seeds``, ``epochs``, ``max_test`` (test images used) and ``every`` (epochs between
    checkpoints) shrink it further for tests.
    """
    seeds = seeds or ((0,) if quick else (0, 1, 2))
    epochs = epochs or (600 if quick else 1000)
    per_seed = []
    for k, seed in enumerate(seeds):
        if progress:
            progress(f"seed {seed}: training, sampling, interpolating", k, len(seeds))
        per_seed.append(_one_seed(seed, epochs, every, max_test))
    if progress:
        progress("done", len(seeds), len(seeds))
    rows = {name: _mean([s[name] for s in per_seed]) for name in ("early", "late", "wise")}
    result: dict[str, Any] = {
        **rows,
        "wise_alphas": {a: _mean([s["wise_alphas"][a] for s in per_seed]) for a in per_seed[0]["wise_alphas"]},
        "temperature": {t: _mean([s["temperature"][t] for s in per_seed]) for t in per_seed[0]["temperature"]},
        "checkpoints": [
            {
                "epoch": c["epoch"],
                **{split: _mean([s["checkpoints"][i][split] for s in per_seed]) for split in ("validation", "test")},
            }
            for i, c in enumerate(per_seed[0]["checkpoints"])
        ],
        "early_epoch": [s["early_epoch"] for s in per_seed],
        "early_selected_on": "validation",
        "early_selection": "the checkpoint with the best validation pass@16 (the first of any tie)",
        "seeds": list(seeds),
        "setup": {
            "per_class": PER_CLASS,
            "validation_per_class": VALIDATION_PER_CLASS,
            "validation_images": per_seed[0]["validation_images"],
            "test_images": per_seed[0]["test_images"],
            "epochs": epochs,
            "checkpoint_every": every,
            "n_samples": N_SAMPLES,
        },
    }
    result["goals"] = {
        "late_pass16_below_early": rows["late"]["pass@16"] < rows["early"]["pass@16"],
        "late_variance_above_early": rows["late"]["var_pass@1"] > rows["early"]["var_pass@1"],
        "wise_pass16_above_late": rows["wise"]["pass@16"] > rows["late"]["pass@16"],
        "wise_pass1_above_early": rows["wise"]["pass@1"] > rows["early"]["pass@1"],
    }
    return result


def _one_seed(seed: int, epochs: int, every: int, max_test: int | None) -> dict[str, Any]:
    with extra("torch"):
        import torch

    torch.manual_seed(seed)
    x_train, y_train, x_val, y_val, x_test, y_test = _data(seed)
    x_test, y_test = x_test[:max_test], y_test[:max_test]
    net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.from_numpy(x_train), torch.from_numpy(y_train)
    states = {}
    for epoch in range(1, epochs + 1):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimiser.step()
        if epoch % every == 0:
            states[epoch] = {k: v.detach().clone() for k, v in net.state_dict().items()}

    def logits(state: dict[str, Any], x: np.ndarray = x_test) -> np.ndarray:
        net.load_state_dict(state)
        with torch.no_grad():
            return net(torch.from_numpy(x)).double().numpy()

    rng_seed = [seed, 1]
    validation = {e: _scores(logits(s, x_val), y_val, [seed, 2], with_maj=False) for e, s in states.items()}
    early = max(validation, key=lambda e: validation[e]["pass@16"])  # the first of ties: the earliest
    curve = {epoch: _scores(logits(s), y_test, rng_seed, with_maj=False) for epoch, s in states.items()}
    late = max(states)
    wise = {a: _scores(logits(interpolate(states[early], states[late], a)), y_test, rng_seed) for a in ALPHAS}
    late_logits = logits(states[late])
    return {
        "early": _scores(logits(states[early]), y_test, rng_seed),
        "late": _scores(late_logits, y_test, rng_seed),
        "wise": wise[0.5],
        "wise_alphas": {str(a): v for a, v in wise.items()},
        "temperature": {str(t): _scores(late_logits / t, y_test, rng_seed) for t in TEMPERATURES},
        "checkpoints": [{"epoch": e, "validation": validation[e], "test": curve[e]} for e in states],
        "early_epoch": early,
        "validation_images": len(y_val),
        "test_images": len(y_test),
    }


def _data(seed: int) -> tuple[np.ndarray, ...]:
    """``x_train, y_train, x_val, y_val, x_test, y_test``: per class, a seeded permutation's first 20 images
    train, the next 40 validate, the rest test (disjoint; the training images are those of the old two-way split)."""
    with extra("bench"):
        from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    rng = np.random.default_rng(seed)
    shuffled = [rng.permutation(np.flatnonzero(y == c)) for c in range(10)]
    train = np.concatenate([p[:PER_CLASS] for p in shuffled])
    validation = np.concatenate([p[PER_CLASS : PER_CLASS + VALIDATION_PER_CLASS] for p in shuffled])
    test = np.setdiff1d(np.arange(len(y)), np.concatenate([train, validation]))
    return x[train], y[train], x[validation], y[validation], x[test], y[test]


def _scores(logits: np.ndarray, truth: np.ndarray, seed: list[int], *, with_maj: bool = True) -> dict[str, float]:
    """Sampled pass@k (n = 32 per problem), maj@16 and the decomposition from the exact per-problem pass@1."""
    z = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    cumulative = probs.cumsum(axis=1)
    draws = (rng.random((len(probs), N_SAMPLES, 1)) > cumulative[:, None, :]).sum(axis=2).clip(max=probs.shape[1] - 1)
    correct = draws == truth[:, None]
    c = correct.sum(axis=1)
    n = np.full(len(c), N_SAMPLES)
    out = {f"pass@{k}": float(pass_at_k(n, c, k).mean()) for k in KS}
    out["accuracy"] = float((probs.argmax(axis=1) == truth).mean())
    rho = probs[np.arange(len(truth)), truth]
    for k in (2, 16):
        d = pass_at_k_decomposition(rho, k)
        out[f"bias@{k}"], out[f"jensen_gap@{k}"] = d.bias_term, d.jensen_gap
    out["var_pass@1"] = float(rho.var())
    out["unique_answers"] = float(np.mean([len(np.unique(row)) for row in draws]) / N_SAMPLES)
    if with_maj:
        out["maj@16"] = float(maj_at_k(list(draws), list(correct), 16, seed=seed[0]).mean())
    return out


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}


def text(result: dict[str, Any]) -> str:
    """The tables of the reproduction, for a terminal or a Markdown page."""
    columns = ["pass@1", "pass@2", "pass@4", "pass@8", "pass@16", "maj@16", "var_pass@1", "jensen_gap@16", "accuracy"]
    rows = [("early (best val. pass@16)", result["early"]), ("late (last)", result["late"])]
    rows += [(f"WiSE alpha={a}", v) for a, v in result["wise_alphas"].items()]
    rows += [(f"late, T={t}", v) for t, v in result["temperature"].items()]
    width = max(len(name) for name, _ in rows)
    lines = [" ".join([" " * width, *[f"{c:>13}" for c in columns]])]
    lines += [" ".join([name.ljust(width), *[f"{row[c]:>13.4f}" for c in columns]]) for name, row in rows]
    lines.append("")
    lines += [f"{goal}: {'met' if met else 'not met'}" for goal, met in result["goals"].items()]
    setup = result["setup"]
    lines.append(
        f"\n{setup['per_class']} training images per class, {setup['epochs']} epochs, a checkpoint every "
        f"{setup['checkpoint_every']}; {setup['n_samples']} samples per image; seeds {result['seeds']}; "
        f"early checkpoint at epoch {result['early_epoch']}, chosen by pass@16 on {setup['validation_images']} "
        f"validation images ({setup['validation_per_class']} per class, disjoint from the training images and "
        f"from the {setup['test_images']} test images every number above is measured on)."
    )
    return "\n".join(lines)
