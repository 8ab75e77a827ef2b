"""What a benchmark run covers: its configurations, datasets, splits and shifts."""

from __future__ import annotations

from dataclasses import dataclass

from ontheline.bench.data import DATASETS
from ontheline.bench.text_zoo import SHIFTS as TEXT_SHIFTS
from ontheline.shifts import CORRUPTIONS, FAMILIES

_FAMILY_OF = {kind: family for family, kinds in FAMILIES.items() for kind in kinds}


@dataclass(frozen=True)
class BenchConfig:
    """Which zoo, which datasets and which shifts a benchmark run covers.

    ``domains`` names natural shifts to other domains of the data (the text configuration's
    tweets, Amazon and editorials); without them the natural shift is the other image dataset.
    ``n_eval`` cuts each evaluation set to a stratified sample of that many (text only; None: all).
    ``bootstrap`` is the number of resamples of ALine's intervals on the whole zoo (0: point estimates).
    """

    name: str
    zoo: str
    datasets: tuple[str, ...]
    corruptions: tuple[str, ...]
    severities: tuple[int, ...]
    domains: tuple[str, ...] = ()
    n_eval: int | None = None
    #: Resamples of ALine's bootstrap intervals (95%) on the whole zoo, whose coverage the run measures
    #: (0: none; the demo leaves it to the full suite, to stay quick).
    bootstrap: int = 50

    def shifts(self, dataset: str) -> list[ShiftSpec]:
        """The natural shifts first, then every corruption at every severity."""
        natural = [ShiftSpec(dataset, "natural", 0, d) for d in self.domains] or [ShiftSpec(dataset, "natural", 0)]
        synthetic = [ShiftSpec(dataset, kind, s) for kind in self.corruptions for s in self.severities]
        return [*natural, *synthetic]


@dataclass(frozen=True)
class ShiftSpec:
    """One OOD test set: ``kind`` is a corruption of :mod:`ontheline.shifts` or ``'natural'``; a natural
    shift to another domain of the same data names it in ``domain``."""

    dataset: str
    kind: str
    severity: int
    domain: str = ""

    @property
    def name(self) -> str:
        return (self.domain or "natural") if self.kind == "natural" else f"{self.kind}-{self.severity}"

    @property
    def family(self) -> str:
        return _FAMILY_OF.get(self.kind, "natural")

    def describe(self) -> str:
        if self.domain:
            return _DOMAINS.get(self.domain, f"the {self.domain} domain")
        if self.kind == "natural":
            other = "mnist" if self.dataset == "digits" else "digits"
            return f"{other} images resampled to {self.dataset}'s size"
        return f"{self.kind.replace('_', ' ')} at severity {self.severity} on the ID test images"


CONFIGS: dict[str, BenchConfig] = {
    # Seconds: the miniature the tests run end to end.
    "tiny": BenchConfig("tiny", "tiny", ("digits",), ("gaussian_noise", "rotate", "contrast"), (1, 5)),
    # What `ontheline demo` runs: every corruption at three severities on both datasets.
    "quick": BenchConfig("quick", "quick", DATASETS, tuple(CORRUPTIONS), (1, 3, 5), bootstrap=0),
    # The whole suite: `ontheline bench --config full`.
    "full": BenchConfig("full", "full", DATASETS, tuple(CORRUPTIONS), (1, 2, 3, 4, 5)),
    # Linear probes on sentence embeddings: movie snippets to tweets, Amazon and editorials (bench/text_zoo.py).
    "text": BenchConfig("text", "text", ("movie",), (), (), TEXT_SHIFTS),
}
_DOMAINS = {
    "tweets": "tweets (the half not used to tune the probe recipe)",
    "amazon": "Amazon product-review snippets",
    "editorials": "New York Times editorial snippets",
}
#: Train / ID-validation / ID-test shares. Large evaluation sets make the measured agreements less
#: noisy (with 1,500 MNIST test images the agreement R² reaches 0.99 on mild shifts), and less
#: training data spreads the zoo's accuracies.
SPLIT_FRACTIONS = (0.4, 0.3, 0.3)
SPLIT_SEED = 0
