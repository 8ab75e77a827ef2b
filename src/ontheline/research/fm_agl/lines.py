"""Zoos of probes from one (or two) backbones, and their agreement and accuracy lines on each shift.

Saxena et al. (NeurIPS 2024) build a zoo from one pretrained backbone by training many linear
heads on its frozen features, each stopped after its own number of steps, and vary one more
thing between heads: the random initialisation of the head, the data order, or the data subset.
:func:`build_zoo` makes each of those zoos (and one of heads on two backbones together) with
one :class:`~ontheline.bench.text_zoo.ProbeRecipe`; :func:`score_zoo` fits every estimator on
ID validation and reports, per shift, the agreement line (label-free), the accuracy line (fitted
with the OOD labels), every method's MAE and the trust verdict; :func:`paper_finding` tests the
paper's qualitative claim on those numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ontheline.agreement import DEFAULT_KEEP, kept_pairs
from ontheline.bench.score import fit_accuracy_line
from ontheline.bench.text_zoo import ProbeRecipe
from ontheline.estimators import METHODS
from ontheline.evaluate import estimate_all, fit_methods
from ontheline.predictions import Predictions, as_predictions

#: The diversity sources, as the reproduction's JSON names them.
SOURCES = ("random-head", "order", "subset-0.1", "subset-0.3", "subset-0.5", "mixed-backbones")
#: The backbones of the mixed zoo: the first is the one every other source uses.
MIXED = ("minilm", "paraphrase-minilm-l3")
#: The methods scored (all of the library's), in the order of the tables.
SCORED = tuple(METHODS)


def build_zoo(
    source: str,
    features: Mapping[str, Mapping[str, np.ndarray]],
    labels: np.ndarray,
    recipe: ProbeRecipe,
    sets: Sequence[str],
) -> dict[str, Predictions]:
    """One diversity source's zoo, trained with ``recipe``, and its probabilities on each of ``sets``.

    ``features[backbone][set]`` are the embeddings (``'train'`` among the sets); every source
    but ``mixed-backbones`` trains on the first backbone of :data:`MIXED`; ``mixed-backbones``
    trains half the heads (random head) on each of its two backbones, with seeds ``recipe.seed``
    and ``recipe.seed + 1``, and names each head after its backbone.

    References
    ----------
    .. [1] R. Saxena, T. Kim, A. Mehra, C. Baek, Z. Kolter, A. Raghunathan, "Predicting the
       Performance of Foundation Models via Agreement-on-the-Line", NeurIPS 2024,
       arXiv:2404.01542.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 2, 200)
    >>> x = {b: {"train": rng.normal(size=(200, 8)) + labels[:, None], "val": rng.normal(size=(50, 8))} for b in MIXED}
    >>> zoo = build_zoo("subset-0.3", x, labels, ProbeRecipe(n_models=4, steps=(2, 20), n_train=None), ["val"])
    >>> zoo["val"].models[0], zoo["val"].probs.shape
    ('subset-0.3-0-2steps', (4, 50, 2))
    >>> build_zoo("mixed-backbones", x, labels, ProbeRecipe(n_models=4, steps=(2, 20)), ["val"])["val"].models[-1]
    'paraphrase-minilm-l3/random-head-1-20steps'
    """
    if source not in SOURCES:
        raise ValueError(f"Unknown diversity source {source!r}; choose one of {SOURCES}.")
    if source == "mixed-backbones":
        half = recipe.n_models // 2
        parts = [
            _probs(features[backbone], labels, recipe, sets, "random-head", 0.1, n, recipe.seed + k, f"{backbone}/")
            for k, (backbone, n) in enumerate(zip(MIXED, (half, recipe.n_models - half)))
        ]
        return {
            s: as_predictions(
                np.concatenate([p[s][0] for p in parts]), models=[m for p in parts for m in p[s][1]], kind="probs"
            )
            for s in sets
        }
    diversity, fraction = ("subset", float(source.split("-")[1])) if source.startswith("subset") else (source, 0.1)
    probs = _probs(features[MIXED[0]], labels, recipe, sets, diversity, fraction, recipe.n_models, recipe.seed, "")
    return {s: as_predictions(p, models=names, kind="probs") for s, (p, names) in probs.items()}


def _probs(
    features: Mapping[str, np.ndarray], labels: np.ndarray, recipe: ProbeRecipe, sets: Sequence[str],
    diversity: Any, fraction: float, n_models: int, seed: int, prefix: str,
) -> dict[str, tuple[np.ndarray, list[str]]]:  # fmt: skip
    zoo = recipe.train(features["train"], labels, diversity=diversity, subset_fraction=fraction, n_models=n_models,
                       seed=seed)  # fmt: skip
    names = [prefix + m for m in zoo.models]
    return {s: (zoo.predict_proba(features[s]), names) for s in sets}


def score_zoo(
    id_preds: Predictions, id_labels: np.ndarray, shifts: Mapping[str, tuple[Predictions, np.ndarray]],
    *, methods: Sequence[str] = SCORED, min_r2: float = 0.95, points: int = 0,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Fit every method on ID validation once; per shift, the agreement and accuracy lines, each method's MAE
    (accuracy points) and whether the line is trusted.

    ``shifts`` maps a shift's name to the zoo's predictions on it and its labels (used only
    to score: the estimators never see them). The baselines are temperature-scaled on ID
    validation (the library's default); the ALine methods run without bootstrap. With
    ``points``, each row also keeps every model's ID and OOD accuracy (``'models'``) and the
    ID and OOD agreement of up to ``points`` of the pairs the line is fitted on (``'pairs'``,
    an evenly spaced choice), for the figures.

    Examples
    --------
    >>> import ontheline as otl
    >>> id_p, id_y, ood_p, ood_y = otl.make_line_zoo(n_models=12, random_state=0)
    >>> row = score_zoo(as_predictions(id_p), id_y, {"toy": (as_predictions(ood_p), ood_y)})["toy"]
    >>> sorted(row), row["trusted"], row["mae"]["aline-d"] < 2.0  # points
    (['accuracy', 'agreement', 'id_accuracy', 'mae', 'ood_accuracy', 'trust_issues', 'trusted'], True, True)
    """
    fitted = fit_methods(id_preds, id_labels, methods=methods, n_bootstrap=0, min_r2=min_r2)
    out = {}
    for name, (ood_preds, ood_labels) in shifts.items():
        evaluation = estimate_all(fitted, ood_preds, ood_labels=ood_labels)
        assert evaluation.ood_accuracy is not None
        ranked = evaluation.results[evaluation.ranking_method]
        id_accuracy = np.asarray(ranked.id_accuracy)
        slope, bias, r2 = fit_accuracy_line(id_accuracy, evaluation.ood_accuracy, len(id_labels), len(ood_labels))
        line = evaluation.line
        mae = evaluation.mae()
        out[name] = {
            "agreement": None
            if line is None
            else {"slope": line.slope, "bias": line.bias, "r2": line.r2, "n_pairs": line.n_pairs},  # fmt: skip
            "accuracy": {"slope": slope, "bias": bias, "r2": r2},
            "mae": {m: _finite(mae.get(m)) for m in methods},  # None: the method could not estimate this shift
            "trusted": bool(evaluation.trusted),
            "trust_issues": list(ranked.trust_issues),
            "id_accuracy": _range(id_accuracy),
            "ood_accuracy": _range(evaluation.ood_accuracy),
        }
        if points:
            pairs = np.argwhere(kept_pairs(fitted.id_preds.agreement, ood_preds.agreement, DEFAULT_KEEP))
            chosen = pairs[np.unique(np.linspace(0, len(pairs) - 1, min(points, len(pairs))).astype(int))]
            out[name]["models"] = np.stack([id_accuracy, evaluation.ood_accuracy], axis=1).round(5).tolist()
            out[name]["pairs"] = (
                np.stack([fitted.id_preds.agreement[tuple(chosen.T)], ood_preds.agreement[tuple(chosen.T)]], axis=1)
                .round(5)
                .tolist()
                if len(pairs)
                else []
            )
    return out


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def _range(values: np.ndarray) -> dict[str, float]:
    return {"min": float(np.min(values)), "mean": float(np.mean(values)), "max": float(np.max(values))}


def paper_finding(diversity: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The paper's qualitative finding, tested on :func:`score_zoo`'s rows of every source.

    Three claims, each compared between random-head and every one of ``order``, ``subset-0.1``,
    ``subset-0.3`` and ``subset-0.5`` (means over the shifts):

    - ``slopes_match``: random head's agreement slope is closer to its accuracy slope, in
      ``|agreement slope - accuracy slope|``, than each other source's is;
    - ``steeper``: each other source's agreement line is steeper than its accuracy line
      (agreement slope minus accuracy slope above 0) and steeper than random head's is, relative
      to its own accuracy line;
    - ``aline_worse``: each other source's ALine-D and ALine-S MAE is above random head's.

    ``confirmed`` is True when all three hold; each claim keeps its numbers.

    References
    ----------
    .. [1] R. Saxena, T. Kim, A. Mehra, C. Baek, Z. Kolter, A. Raghunathan, "Predicting the
       Performance of Foundation Models via Agreement-on-the-Line", NeurIPS 2024,
       arXiv:2404.01542.

    Examples
    --------
    >>> row = lambda agree, acc, mae: {"agreement": {"slope": agree}, "accuracy": {"slope": acc},
    ...                                "mae": {"aline-d": mae, "aline-s": mae}}
    >>> rows = {"random-head": {"s": row(1.0, 1.0, 1.0)}} | {
    ...     k: {"s": row(1.3, 1.0, 3.0)} for k in ("order", "subset-0.1", "subset-0.3", "subset-0.5")}
    >>> paper_finding(rows)["confirmed"]
    True
    """
    others = [s for s in ("order", "subset-0.1", "subset-0.3", "subset-0.5") if s in diversity]
    if "random-head" not in diversity or not others:
        return {"confirmed": None, "why": "needs random-head and at least one of order and the subsets"}

    def mean(source: str, value: Any) -> float:
        rows = [value(row) for row in diversity[source].values()]
        finite = [v for v in rows if v is not None and np.isfinite(v)]
        return float(np.mean(finite)) if finite else float("nan")

    def gap(row: Mapping[str, Any]) -> float | None:
        agreement = row.get("agreement")
        return None if agreement is None else agreement["slope"] - row["accuracy"]["slope"]

    def aline(row: Mapping[str, Any]) -> float | None:
        values = [row["mae"][m] for m in ("aline-d", "aline-s") if row["mae"].get(m) is not None]
        return float(np.mean(values)) if values else None

    sources = ["random-head", *others]
    gaps = {s: mean(s, gap) for s in sources}
    abs_gaps = {s: mean(s, lambda r: None if gap(r) is None else abs(gap(r))) for s in sources}  # type: ignore[arg-type]
    alines = {s: mean(s, aline) for s in sources}
    aline_d = {s: mean(s, lambda r: r["mae"].get("aline-d")) for s in sources}
    base = "random-head"
    claims = {
        "slopes_match": {
            "holds": all(abs_gaps[base] < abs_gaps[s] for s in others),
            "mean_abs_slope_gap": abs_gaps,
        },
        "steeper": {
            "holds": all(gaps[s] > 0 and gaps[s] > gaps[base] for s in others),
            "mean_slope_gap": gaps,
        },
        "aline_worse": {
            "holds": all(alines[s] > alines[base] for s in others),
            "mean_aline_mae": alines,
            "mean_aline_d_mae": aline_d,
        },
    }
    return {"confirmed": all(c["holds"] for c in claims.values()), **claims}


__all__ = ["MIXED", "SCORED", "SOURCES", "build_zoo", "paper_finding", "score_zoo"]
