"""The text benchmark's sets and zoo: linear probes on sentence embeddings, movie snippets to three other kinds of writing.

The sets come from VADER's ground truth (:mod:`ontheline.bench.text`), fetched once with
``ontheline data fetch vader``:

- **movie** (ID): split once, stratified by label with seed 0, into train / ID validation /
  ID test (40% / 30% / 30%: 4,227 / 3,170 / 3,171 snippets); the probes train on
  ``n_train`` of the training part.
- **tweets**: split in two stratified halves with seed 0. *tweets-A* (2,098) was held aside
  to tune the probe recipe (:data:`TEXT_RECIPE`; the search is in
  ``docs/foundation-models.md``) and is never scored; *tweets-B* (2,098) is the reported
  tweets shift.
- **amazon** (3,610) and **editorials** (4,946): whole, never used for tuning.

:class:`ProbeRecipe` is how a zoo of probes is trained; :data:`TEXT_RECIPE` is the one frozen
after the search, which ``ontheline bench --config text`` and ``ontheline repro fm-agl`` run.
:func:`text_sets` makes the sets, :func:`embed_sets` their embeddings (kept in the store),
and :func:`text_zoo_predictions` the benchmark's zoo: the frozen recipe's random-head probes
on each backbone of :data:`BENCH_BACKBONES`, their predictions kept in the store one entry per
probe, as the image zoo's are.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ontheline._progress import Progress
from ontheline._threads import torch_threads
from ontheline._validation import InputError, check_number
from ontheline.bench.text import TextDomain, load_domains, split_domain, vader_folder
from ontheline.store import Store, StoreError

#: Train / ID-validation / ID-test shares of the movie snippets, and the seed of every split.
MOVIE_SPLIT = (0.4, 0.3, 0.3)
SPLIT_SEED = 0
#: The shifts, in order (tweets is the half of the tweets not used for tuning).
SHIFTS = ("tweets", "amazon", "editorials")
#: The backbones of the benchmark's zoo (both packaged: the ``text`` extra).
BENCH_BACKBONES = ("minilm", "paraphrase-minilm-l3")

Diversity = Literal["random-head", "order", "subset"]


@dataclass(frozen=True)
class ProbeRecipe:
    """How a zoo of linear probes is trained on a backbone's embeddings (the arguments of
    :func:`~ontheline.zoo.train_probes`, and the size of the training set).

    ``n_train`` None trains on the whole training part; otherwise on a stratified, seeded
    sample of that many snippets. ``standardize`` trains on features centred and scaled by the
    training set's mean and standard deviation, then folds that map into the heads, so the zoo
    takes the raw embeddings like any other.

    Examples
    --------
    >>> ProbeRecipe(n_models=8, steps=(5, 50)).to_dict()["steps"]
    [5, 50]
    """

    n_models: int = 64
    steps: tuple[int, int] = (10, 300)
    lr: float = 1e-2
    weight_decay: float = 0.0
    batch_size: int = 128
    optimizer: Literal["adam", "sgd"] = "adam"
    init_scale: float = 1.0
    n_train: int | None = 3000
    standardize: bool = False
    seed: int = 0

    def train(
        self, features: Any, labels: Any, *, diversity: Diversity = "random-head", subset_fraction: float = 0.1,
        n_models: int | None = None, seed: int | None = None,
    ) -> Any:  # fmt: skip
        """A :class:`~ontheline.zoo.ProbeZoo` trained on ``features`` with this recipe (``n_models`` and ``seed``
        override the recipe's).

        Trains on one torch thread (restored afterwards): the weights are the same bit for bit
        whatever the number of threads, these small products gain nothing from more, and
        several threads slow down many times over when other work shares the cores.
        """
        from dataclasses import replace

        from ontheline._optional import extra
        from ontheline.zoo.probes import _check_features, train_probes

        with extra("torch"):
            import torch  # noqa: F401 - the torch extra, checked before any work

        x = _check_features(features, "features")
        mean, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        if self.standardize:
            mean, scale = x.mean(axis=0), x.std(axis=0)
            scale[scale == 0] = 1.0
        with torch_threads(1):
            zoo = train_probes(
                (x - mean) / scale, labels, n_models=self.n_models if n_models is None else n_models,
                diversity=diversity, subset_fraction=subset_fraction, steps=self.steps, lr=self.lr,
                weight_decay=self.weight_decay, batch_size=self.batch_size, optimizer=self.optimizer,
                init_scale=self.init_scale, seed=self.seed if seed is None else seed,
            )  # fmt: skip
        if not self.standardize:
            return zoo
        # ((x - mean) / scale) @ w + b == x @ (w / scale) + (b - (mean / scale) @ w)
        weights = zoo.weights.astype(np.float64) / scale[None, :, None]
        bias = zoo.bias.astype(np.float64) - np.einsum("d,mdk->mk", mean, weights)
        return replace(zoo, weights=weights, bias=bias, recipe=zoo.recipe | {"standardize": True})

    def to_dict(self) -> dict[str, Any]:
        entry = asdict(self)
        entry["steps"] = list(self.steps)
        return entry


#: The recipe frozen after the search on tweets-A (ontheline.research.fm_agl.search; its rule and
#: its 47 runs are in docs/foundation-models.md), before tweets-B, Amazon or the editorials were
#: embedded: the naive recipe trained for up to 1,000 steps instead of 300.
TEXT_RECIPE = ProbeRecipe(
    n_models=64, steps=(10, 1000), lr=1e-2, weight_decay=0.0, batch_size=128, optimizer="adam", init_scale=1.0,
    n_train=3000, standardize=False, seed=0,
)  # fmt: skip


@dataclass(frozen=True)
class TextSets:
    """The training set, ID validation, the tuning set (tweets-A) and the three shifts.

    ``shifts`` maps ``'tweets'`` (tweets-B), ``'amazon'`` and ``'editorials'`` to their sentences.
    """

    train: TextDomain
    id_val: TextDomain
    tuning: TextDomain
    shifts: dict[str, TextDomain] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        """The number of sentences of each set."""
        return {"train": len(self.train), "id_val": len(self.id_val), "tuning (tweets-A)": len(self.tuning)} | {
            name: len(domain) for name, domain in self.shifts.items()
        }


def text_sets(
    folder: str | Path | None = None, *, n_train: int | None = None, n_eval: int | None = None, seed: int = SPLIT_SEED
) -> TextSets:
    """The text benchmark's sets from VADER's ground truth in ``folder`` (see the module's list).

    Parameters
    ----------
    folder : path, optional
        The folder :func:`~ontheline.bench.text.fetch_vader` filled (default: the default store's).
    n_train : int, optional
        Train on a stratified sample of this many movie snippets of the training part (default: all of it).
    n_eval : int, optional
        Cut ID validation, tweets-A and each shift to a stratified sample of at most this many
        sentences (a quick run; default: every sentence).
    seed : int
        Seeds every split and sample.
    """
    check_number("text_sets", "seed", seed, low=0, integer=True)
    for name, value in (("n_train", n_train), ("n_eval", n_eval)):
        if value is not None:
            check_number("text_sets", name, value, low=2, integer=True)
    domains = load_domains(folder)
    train, id_val, _ = split_domain(domains["movie"], MOVIE_SPLIT, seed, names=("train", "val", "test"))
    tuning, tweets = split_domain(domains["tweets"], (0.5, 0.5), seed, names=("A", "B"))
    shifts = {"tweets": tweets, "amazon": domains["amazon"], "editorials": domains["editorials"]}
    return TextSets(
        sample(train, n_train, seed),
        sample(id_val, n_eval, seed),
        sample(tuning, n_eval, seed),
        {name: sample(domain, n_eval, seed) for name, domain in shifts.items()},
    )


def sample(domain: TextDomain, n: int | None, seed: int = SPLIT_SEED) -> TextDomain:
    """A stratified, seeded sample of ``n`` sentences of ``domain`` (all of it when ``n`` is None or larger).

    Examples
    --------
    >>> labels = np.array([0, 1] * 50)
    >>> domain = TextDomain("toy", tuple(map(str, range(100))), labels, labels - 0.5, tuple(map(str, range(100))))
    >>> part = sample(domain, 10)
    >>> part.name, len(part), int(part.labels.sum())
    ('toy', 10, 5)
    """
    if n is None or n >= len(domain):
        return domain
    share = n / len(domain)
    part = split_domain(domain, (share, 1.0 - share), seed, names=("sample", "rest"))[0]
    return TextDomain(domain.name, part.texts, part.labels, part.ratings, part.ids)


def embed_sets(
    sets: TextSets, backbone: Any, store: Store, *, names: Sequence[str] = ("train", "id_val", *SHIFTS),
    progress: Progress | None = None, threads: int = 1,
) -> dict[str, np.ndarray]:  # fmt: skip
    """The embeddings of each set in ``names`` (``'train'``, ``'id_val'``, ``'tuning'`` or a shift), kept in ``store``.

    Each set is one store entry per backbone (:func:`~ontheline.zoo.embed`), so a second call
    embeds nothing. The default leaves out the tuning set (tweets-A), which only the recipe
    search reads.
    """
    from ontheline.zoo.embed import embed, load_backbone

    model = backbone if not isinstance(backbone, str) else load_backbone(backbone)
    every = {"train": sets.train, "id_val": sets.id_val, "tuning": sets.tuning} | sets.shifts
    unknown = [n for n in names if n not in every]
    if unknown:
        raise InputError(f"embed_sets: no set named {unknown}; the sets are {list(every)}.")
    report: Any = progress if progress is not None else False
    return {
        name: embed(
            list(every[name].texts), model, store, progress=report, threads=threads, dataset=f"vader-{every[name].name}"
        )  # fmt: skip
        for name in names
    }


# --- the benchmark's zoo --------------------------------------------------------------------------

_BUNDLE = "ontheline text benchmark bundle: ID validation and the shifts, concatenated in order"


def text_zoo_predictions(
    store: Store | None = None, *, recipe: ProbeRecipe | None = None, backbones: Sequence[str] = BENCH_BACKBONES,
    progress: Progress | None = None, n_eval: int | None = None,
) -> tuple[Any, bool]:  # fmt: skip
    """The text zoo's probabilities on ID validation and every shift; returns ``(ZooPredictions, from_store)``.

    The zoo is ``recipe``'s (default :data:`TEXT_RECIPE`) random-head probes on each backbone's embeddings, its parts named
    by backbone. Each probe's float16 probabilities on the bundle (ID validation and the
    shifts, concatenated) are one store entry, keyed by a fingerprint of the code, the
    backbone's weights, the training and evaluation texts and the recipe: a second run reads
    them and trains (and embeds) nothing. Needs VADER's sentences in the store's data folder.
    """
    from ontheline.bench.predict import ZooPredictions
    from ontheline.runners.plan import plan
    from ontheline.zoo.embed import load_backbone

    recipe = recipe if recipe is not None else TEXT_RECIPE
    store = store if store is not None else Store()
    folder = vader_folder(store)
    if not (folder / "MANIFEST.json").is_file():
        raise InputError(
            f"The text benchmark needs VADER's sentences in {str(folder)!r}; fetch them once with "
            f"'ontheline data fetch vader --store {store.path}' (it downloads 2.5 MB with pip)."
        )
    sets = text_sets(folder, n_train=recipe.n_train, n_eval=n_eval)
    evaluation = {"id_val": sets.id_val} | sets.shifts
    bundle = _bundle_fingerprint(evaluation)
    label = "bench-text-movie" + ("" if n_eval is None else f"-{n_eval}")
    models: dict[str, str] = {}
    parts: dict[str, list[str]] = {}
    loaded = {name: load_backbone(name) for name in backbones}
    for name, backbone in loaded.items():
        parts[name] = [f"{name}/{probe}" for probe in _probe_names(recipe)]
        for probe in parts[name]:
            models[probe] = _fingerprint(backbone.fingerprint(), sets.train, recipe, probe)
    todo = plan(models, {label: (bundle, _BUNDLE)}, store)
    stored = _read(store, {name: todo.keys[name][label] for name, _ in todo.cached})
    for name, backbone in loaded.items():
        if all(probe in stored for probe in parts[name]):
            continue
        if progress:
            progress(f"movie: embedding and training {len(parts[name])} probes on {name}", 0, 0)
        features = embed_sets(sets, backbone, store, progress=progress, threads=1)
        start = time.perf_counter()
        zoo = recipe.train(features["train"], sets.train.labels)
        bundle_x = np.concatenate([features[set_name] for set_name in evaluation])
        probs = zoo.predict_proba(bundle_x)
        seconds = (time.perf_counter() - start) / len(zoo)
        for probe, p in zip(parts[name], probs):
            if probe in stored:
                continue
            store.put(
                p.astype(np.float32), model=probe, model_fingerprint=models[probe], dataset=label,
                dataset_fingerprint=bundle, preprocessing=_BUNDLE, dtype="float16", seconds=seconds, device="cpu",
            )  # fmt: skip
            stored[probe] = p.astype(np.float16)  # what the store keeps: a fresh run scores what a stored one reads
    names = [probe for name in loaded for probe in parts[name]]
    stack = np.stack([np.asarray(stored[probe], np.float32) for probe in names])
    probs_by_set, labels, start_row = {}, {}, 0
    for set_name, domain in evaluation.items():
        part = stack[:, start_row : start_row + len(domain)]
        probs_by_set[set_name] = part / part.sum(axis=-1, keepdims=True)  # undo float16 rounding of the row sums
        labels[set_name] = domain.labels.copy()
        start_row += len(domain)
    masks = {name: np.isin(names, parts[name]) for name in loaded}
    preds = ZooPredictions("movie", tuple(names), np.ones(len(names), bool), probs_by_set, labels, masks)
    return preds, not todo.missing


def _probe_names(recipe: ProbeRecipe) -> list[str]:
    """The names :class:`~ontheline.zoo.ProbeZoo` gives the recipe's random-head probes, known before training."""
    from ontheline.zoo.probe_schedule import _head_steps

    steps, _ = _head_steps(recipe.steps, recipe.n_models)
    width = len(str(recipe.n_models - 1))
    return [f"random-head-{i:0{width}d}-{int(s)}steps" for i, s in enumerate(steps)]


def _fingerprint(backbone: str, train: TextDomain, recipe: ProbeRecipe, name: str) -> str:
    from ontheline.zoo.embed import texts_fingerprint

    parts = [
        _code_fingerprint(),
        backbone,
        texts_fingerprint(train.texts),
        train.labels.tolist(),
        recipe.to_dict(),
        name,
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _bundle_fingerprint(sets: Mapping[str, TextDomain]) -> str:
    from ontheline.zoo.embed import texts_fingerprint

    parts = [[name, texts_fingerprint(d.texts), d.labels.tolist()] for name, d in sets.items()]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


@cache
def _code_fingerprint() -> str:
    """The source of the modules that make the probes' numbers, and the versions of the libraries they call."""
    from importlib import import_module
    from importlib.metadata import version

    files = [__file__, *(import_module(f"ontheline.zoo.{name}").__file__ or "" for name in ("embed", "probes"))]
    parts = [hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files]
    parts += [version(name) for name in ("numpy", "torch")]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _read(store: Store, keys: dict[str, str]) -> dict[str, np.ndarray]:
    """The stored probabilities of each entry; a damaged entry is removed, with a warning, to be computed again."""
    import warnings

    found = {}
    for name, key in keys.items():
        try:
            probs = store.get(key).probs
            if probs is None:
                raise StoreError(f"Store entry {key} holds hard labels only; the benchmark stores probabilities.")
            found[name] = probs
        except StoreError as exc:
            warnings.warn(f"Recomputing a damaged benchmark entry: {exc}", stacklevel=3)
            store.rm(key)
    return found


__all__ = [
    "BENCH_BACKBONES",
    "MOVIE_SPLIT",
    "SHIFTS",
    "SPLIT_SEED",
    "TEXT_RECIPE",
    "ProbeRecipe",
    "TextSets",
    "embed_sets",
    "sample",
    "text_sets",
    "text_zoo_predictions",
]
