"""The search for the probe recipe, on the tuning set only: ID validation and tweets-A.

The protocol of ``ontheline repro fm-agl``: the tweets are split in two stratified halves
(seed 0); tweets-A, with its labels, and the movie snippets are all the search may read.
tweets-B, the Amazon snippets and the editorials are neither embedded nor scored here: they
are reported once, by the reproduction, with the recipe frozen in
:data:`ontheline.bench.text_zoo.TEXT_RECIPE`.

Every configuration is random-head probes on all-MiniLM-L6-v2 (the source the goal is about);
the other sources run with the same recipe. :data:`ROUNDS` lists every configuration tried,
round by round, in the order they were run, each round chosen after reading the previous
rounds' numbers on tweets-A (and nothing else). ``python -m ontheline.research.fm_agl.search
[ROUND ...]`` runs them again and prints one row per configuration: the spread of ID accuracy,
the agreement and accuracy lines on tweets-A, the trust verdict and every method's MAE.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ontheline.bench.text_zoo import ProbeRecipe, TextSets, embed_sets, sample, text_sets
from ontheline.predictions import as_predictions
from ontheline.research.fm_agl.lines import score_zoo
from ontheline.store import Store

#: The starting point: the issue's naive recipe (64 heads here, 10-300 Adam steps, 3,000 snippets).
NAIVE = ProbeRecipe(n_models=64, steps=(10, 300), lr=1e-2, weight_decay=0.0, batch_size=128, n_train=3000)

#: Every configuration tried, round by round: ``(label, recipe, n_eval)``; ``n_eval`` cuts ID
#: validation and tweets-A to that many sentences (None: all of them). Filled in as the search ran.
ROUNDS: dict[str, list[tuple[str, ProbeRecipe, int | None]]] = {
    "0-naive": [("naive", NAIVE, None)],
}


def variants(base: ProbeRecipe, **grid: Sequence[Any]) -> list[tuple[str, ProbeRecipe, None]]:
    """One configuration per value of one knob, the others as in ``base``."""
    return [
        (f"{knob}={value}", replace(base, **{knob: value}), None) for knob, values in grid.items() for value in values
    ]


# Round 1, one knob at a time from the naive recipe. Reading of round 0: the heads' share of
# positive predictions on tweets-A jumps between neighbouring heads (0.29 to 0.56 at similar
# ID accuracy), so the minibatch noise of Adam at lr 0.01 moves the decision boundary, and the
# OOD accuracy with it: smoother training (smaller steps, larger batches, weight decay,
# standardised features) and longer training are tried.
ROUNDS["1-one-knob"] = [
    ("lr=0.003 steps=30-1000", replace(NAIVE, lr=3e-3, steps=(30, 1000)), None),
    ("lr=0.001 steps=100-3000", replace(NAIVE, lr=1e-3, steps=(100, 3000)), None),
    ("lr=0.03 steps=3-100", replace(NAIVE, lr=3e-2, steps=(3, 100)), None),
    *variants(NAIVE, steps=[(30, 300), (10, 1000), (10, 3000)]),
    *variants(NAIVE, batch_size=[32, 512, 3000]),
    *variants(NAIVE, weight_decay=[1e-3, 1e-2, 1e-1]),
    *variants(NAIVE, standardize=[True]),
    *variants(NAIVE, init_scale=[0.1, 3.0, 10.0]),
    *variants(NAIVE, n_train=[1000, 4227]),
    *variants(NAIVE, n_models=[128]),
    ("n_eval=1000", NAIVE, 1000),
]


# Round 2. Reading of round 1: nothing brings the accuracy line on tweets-A above R² 0.40; the
# agreement R² rises with longer training (0.92 at 10-3000 steps). Per head (full batch, 10-3000
# steps), the OOD accuracy peaks near 90 steps (0.74) and then falls to 0.60 while the ID accuracy
# stays at 0.76: the unregularised optimum predicts 34% positives on tweets-A (69% are), and Adam
# moves every coordinate of the head, those the ID data barely constrains included. Tried: weight
# decay with training to convergence, a smaller initial head, SGD (which moves the head only
# within the span of the training features), and stopping on the rising part only.
LONG = replace(NAIVE, steps=(10, 3000))
ROUNDS["2-converge"] = [
    *[(f"steps=10-3000 weight_decay={wd}", replace(LONG, weight_decay=wd), None) for wd in (1e-3, 3e-3, 1e-2)],
    *[(f"steps=10-3000 init_scale={s}", replace(LONG, init_scale=s), None) for s in (0.3,)],
    *[(f"sgd lr={lr} steps=10-3000", replace(LONG, optimizer="sgd", lr=lr), None) for lr in (0.3, 1.0, 3.0)],
    ("batch=3000 steps=3-100", replace(NAIVE, batch_size=3000, steps=(3, 100)), None),
    ("batch=3000 steps=3-100 init_scale=0.3", replace(NAIVE, batch_size=3000, steps=(3, 100), init_scale=0.3), None),
]

#: How the recipe is chosen (fixed after round 2, before round 3 ran): among the configurations
#: whose tweets-A agreement line is trusted, the lowest ALine-D MAE on tweets-A; when none is,
#: the lowest ALine-D MAE among those whose agreement R² on tweets-A is at least 0.8 (a line at
#: all); ties go to fewer steps.
RULE = (
    "among configurations trusted on tweets-A, the lowest ALine-D MAE on tweets-A; if none is trusted, the "
    "lowest ALine-D MAE among those with agreement R² >= 0.8 on tweets-A; ties to fewer steps"
)

# Round 3. Reading of round 2: weight decay, a smaller initial head and SGD raise the agreement R²
# (to 0.93) but steepen the agreement line towards y = x (slope 1.0) while the accuracy line stays
# at slope 0.3-0.7 and R² <= 0.40: the higher the agreement R², the worse ALine-D. Tried: dropping
# the erratic first heads, more heads, standardised features at a learning rate that spreads the
# ID accuracies, and SGD on the rising part of training.
ROUNDS["3-spread"] = [
    ("steps=30-3000", replace(NAIVE, steps=(30, 3000)), None),
    ("steps=10-1000 n_models=128", replace(NAIVE, steps=(10, 1000), n_models=128), None),
    (
        "batch=3000 steps=10-1000 init_scale=0.3",
        replace(NAIVE, batch_size=3000, steps=(10, 1000), init_scale=0.3),
        None,
    ),
    ("standardize lr=0.001 steps=1-300", replace(NAIVE, standardize=True, lr=1e-3, steps=(1, 300)), None),
    ("standardize lr=0.0001 steps=10-3000", replace(NAIVE, standardize=True, lr=1e-4, steps=(10, 3000)), None),
    ("sgd lr=0.1 steps=10-3000", replace(NAIVE, optimizer="sgd", lr=0.1, steps=(10, 3000)), None),
    (
        "sgd lr=0.1 steps=10-3000 batch=3000",
        replace(NAIVE, optimizer="sgd", lr=0.1, steps=(10, 3000), batch_size=3000),
        None,
    ),
]

# Round 4. Reading of round 3: no configuration is trusted on tweets-A; the best under RULE is
# batch=3000 (ALine-D 7.99, agreement R² 0.83), but a batch of the whole training set makes
# every step see every sample, so the data-order source would vary nothing: full-batch
# configurations are excluded from the choice (a constraint of the comparison of sources, stated
# here; it is not read off any tuning number). The next four under RULE lie within 0.15 points
# of each other (8.12-8.24), closer than one seed's noise, so each runs again with two more probe
# seeds, and RULE is applied to the means over seeds 0-2 (the naive recipe beside them).
CANDIDATES = {
    "weight_decay=0.001": replace(NAIVE, weight_decay=1e-3),
    "steps=10-1000 n_models=128": replace(NAIVE, steps=(10, 1000), n_models=128),
    "init_scale=0.1": replace(NAIVE, init_scale=0.1),
    "steps=10-1000": replace(NAIVE, steps=(10, 1000)),
    "naive": NAIVE,
}
ROUNDS["4-seeds"] = [
    (f"{label} seed={seed}", replace(recipe, seed=seed), None)
    for label, recipe in CANDIDATES.items()
    for seed in (1, 2)
]

#: The means over probe seeds 0-2 of round 4 (seed 0 from rounds 1 and 3): ``(ALine-D MAE, agreement R²)``
#: on tweets-A. RULE picks ``steps=10-1000``: :data:`ontheline.bench.text_zoo.TEXT_RECIPE`.
ROUND_4_MEANS = {
    "weight_decay=0.001": (7.89, 0.820),
    "steps=10-1000 n_models=128": (8.05, 0.903),
    "init_scale=0.1": (9.94, 0.864),
    "steps=10-1000": (7.32, 0.906),
    "naive": (7.25, 0.779),  # below R² 0.8: not a candidate
}


def tuning_features(store: Store, folder: Any = None) -> tuple[TextSets, dict[str, np.ndarray]]:
    """The sets (the whole training part) and MiniLM's embeddings of the training part, ID validation and tweets-A."""
    sets = text_sets(folder, n_train=None)
    return sets, embed_sets(sets, "minilm", store, names=("train", "id_val", "tuning"), progress=None, threads=2)


def evaluate(
    recipe: ProbeRecipe, sets: TextSets, features: dict[str, np.ndarray], n_eval: int | None = None
) -> dict[str, Any]:
    """One configuration's numbers on tweets-A: random-head probes trained with ``recipe``."""
    rows = _rows(sets.train, recipe.n_train, recipe.seed)
    x_train, y_train = features["train"][rows], sets.train.labels[rows]
    val_rows = _rows(sets.id_val, n_eval, 0)
    tune_rows = _rows(sets.tuning, n_eval, 0)
    start = time.perf_counter()
    zoo = recipe.train(x_train, y_train)
    seconds = time.perf_counter() - start
    id_preds = as_predictions(zoo.predict_proba(features["id_val"][val_rows]), models=zoo.models, kind="probs")
    tune = as_predictions(zoo.predict_proba(features["tuning"][tune_rows]), models=zoo.models, kind="probs")
    row = score_zoo(id_preds, sets.id_val.labels[val_rows], {"tweets-A": (tune, sets.tuning.labels[tune_rows])})
    return {"seconds": seconds, **row["tweets-A"]}


def _rows(domain: Any, n: int | None, seed: int) -> np.ndarray:
    """The rows of ``domain`` that :func:`~ontheline.bench.text_zoo.sample` keeps."""
    kept = set(sample(domain, n, seed).ids)
    return np.array([i for i, sentence in enumerate(domain.ids) if sentence in kept])


def line(label: str, recipe: ProbeRecipe, n_eval: int | None, result: dict[str, Any]) -> str:
    """One printed row of the search."""
    agreement, accuracy, mae = result["agreement"] or {}, result["accuracy"], result["mae"]
    best = min((m for m in mae if m not in ("aline-d", "aline-s")), key=lambda m: mae[m])
    return (
        f"{label:<28} ID {result['id_accuracy']['min']:.3f}-{result['id_accuracy']['max']:.3f}  "
        f"agr {agreement.get('slope', float('nan')):.2f}/{agreement.get('bias', float('nan')):+.2f}/"
        f"R² {agreement.get('r2', float('nan')):.3f}  acc {accuracy['slope']:.2f}/{accuracy['bias']:+.2f}/"
        f"R² {accuracy['r2']:.3f}  {'trusted' if result['trusted'] else 'flagged'}  "
        f"ALine-D {mae['aline-d']:.2f} ALine-S {mae['aline-s']:.2f} best baseline {best} {mae[best]:.2f}  "
        f"n_eval {n_eval or 'all'}  {result['seconds']:.0f}s"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the rounds named in ``argv`` (default: all) and print one row per configuration, then the JSON."""
    names = list(argv if argv is not None else sys.argv[1:]) or list(ROUNDS)
    sets, features = tuning_features(Store())
    out = {}
    for name in names:
        for label, recipe, n_eval in ROUNDS[name]:
            result = evaluate(recipe, sets, features, n_eval)
            print(line(f"{name} {label}", recipe, n_eval, result), flush=True)
            out[f"{name} {label}"] = {"recipe": recipe.to_dict(), "n_eval": n_eval, **result}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
