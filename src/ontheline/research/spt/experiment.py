"""The SPT experiment on the lab: pretrain a tiny GPT at each domain fraction, evaluate its checkpoints, finetune.

Per seed: one :func:`~ontheline.research.spt.mixer.make_corpus` (the chains fixed, the rows
seeded), and for each delta one pretraining run (:func:`pretrain`, the lab's
:func:`~ontheline.research.lm.train` on :func:`~ontheline.research.spt.mixer.mixed_batches`,
WSD schedule) whose checkpoints every ``every`` steps serve as the budgets T. The schedule is
constant until its last ``decay`` share (the lab's WSD: 20%), so the checkpoints before the
decay are constant-rate models, evaluated as they are; checkpoints inside the decay are not
used, and the final one (after the decay) is the last budget. At each checkpoint: domain
train, validation and test loss, and general loss. From the checkpoints in
``ft_budgets`` the model is finetuned on the domain train rows alone (:func:`finetune`) at
each learning rate of the grid; the validation loss is measured every ``ft_eval_every``
steps, the run stops after ``patience`` evaluations without improvement, and the weights with
the best validation loss are kept. Across the grid the run with the best validation loss is
chosen. The domain test split is never used to choose anything.
"""

from __future__ import annotations

import copy
import numbers
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ontheline._optional import extra
from ontheline._progress import Progress
from ontheline.research.lm.schedules import wsd_decay_start
from ontheline.research.lm.tokenizer import ALPHABET
from ontheline.research.spt.metrics import forgetting
from ontheline.research.spt.mixer import (
    Corpus,
    domain_batches,
    domain_rows_per_step,
    epochs,
    make_corpus,
    mixed_batches,
)


@dataclass(frozen=True)
class Config:
    """Sizes of one SPT sweep (the model, the corpus, pretraining, finetuning); the defaults are the full run's.

    ``steps`` pretraining steps of ``batch_size`` rows of ``length`` tokens, a checkpoint every
    ``every`` steps (:attr:`budgets`), finetuning from the checkpoints ``ft_budgets`` at each of
    ``ft_lrs`` for at most ``ft_max_steps`` steps (validation every ``ft_eval_every`` steps,
    ``patience`` evaluations without improvement end a run). The corpus sizes and chains are
    those of :func:`~ontheline.research.spt.mixer.make_corpus` (``general_chars`` and
    ``domain_chars`` are slices of the lab's alphabet). The domain set size (150 rows), the
    finetuning grid and step limit were set by pilots on seed 0 (see ``docs/spt.md``).

    Examples
    --------
    >>> c = Config()
    >>> c.budgets[-3:], c.tokens_per_step, c.decay_steps
    ([1100, 1200, 1600], 1024, range(1280, 1600))
    """

    deltas: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.2)
    steps: int = 1600
    every: int = 100
    ft_budgets: tuple[int, ...] = (200, 800, 1600)
    batch_size: int = 32
    length: int = 32
    lr: float = 3e-3
    warmup: int = 50
    ft_lrs: tuple[float, ...] = (1e-3, 3e-3)
    ft_max_steps: int = 600
    ft_eval_every: int = 10
    patience: int = 6
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    n_train: int = 150
    n_val: int = 200
    n_test: int = 400
    n_general: int = 400
    domain_branching: int = 3
    domain_concentration: float = 0.5
    general_branching: int = 8
    general_concentration: float = 0.5
    general_order: int = 1
    domain_order: int = 2
    general_chars: tuple[int, int] = (0, 64)
    domain_chars: tuple[int, int] = (52, 76)
    chain_seed: int = 0
    decay: float = field(default=0.2, init=False)  # the lab's WSD decay share (lr_factor's default)

    def __post_init__(self) -> None:
        if not self.deltas or any(isinstance(d, bool) or not isinstance(d, numbers.Real) or not 0 <= d <= 1
                                  for d in self.deltas):  # fmt: skip
            raise ValueError(f"deltas must be fractions in [0, 1] (0.05 for 5%); got {self.deltas!r}.")
        object.__setattr__(self, "deltas", tuple(float(d) for d in self.deltas))  # 0 and 0.0 name one run
        if self.steps % self.every or any(b % self.every or not 0 < b <= self.steps for b in self.ft_budgets):
            raise ValueError(f"steps and every ft_budget must be multiples of every={self.every} within the run; "
                             f"got steps={self.steps}, ft_budgets={self.ft_budgets}.")  # fmt: skip
        if any(b not in self.budgets for b in self.ft_budgets):
            raise ValueError("ft_budgets must not fall inside the learning-rate decay (other than the last step).")

    @property
    def decay_steps(self) -> range:
        """The 0-based optimizer steps whose learning rate decays (a checkpoint after any of them, but the last, is no budget)."""
        return range(wsd_decay_start(self.steps, self.warmup, self.decay), self.steps)

    @property
    def budgets(self) -> list[int]:
        """The checkpoint steps that serve as budgets: every ``every`` steps before the decay, and the last."""
        start = self.decay_steps[0]
        return [s for s in range(self.every, self.steps + 1, self.every) if s == self.steps or s <= start]

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.length

    def corpus(self, seed: int) -> Corpus:
        return make_corpus(seed, length=self.length, n_train=self.n_train, n_val=self.n_val, n_test=self.n_test,
                           n_general=self.n_general, domain_branching=self.domain_branching,
                           domain_concentration=self.domain_concentration, general_branching=self.general_branching,
                           general_concentration=self.general_concentration, general_order=self.general_order,
                           domain_order=self.domain_order, general_chars=ALPHABET[slice(*self.general_chars)],
                           domain_chars=ALPHABET[slice(*self.domain_chars)], chain_seed=self.chain_seed)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["budgets"] = self.budgets
        return out


def row_loss(model: Any, rows: np.ndarray, batch: int = 200) -> float:
    """Mean next-token loss (nats) of ``model`` on token rows of shape ``(n, length)``, every position after the first."""
    import torch

    was = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for lo in range(0, len(rows), batch):
            ids = torch.from_numpy(np.ascontiguousarray(rows[lo : lo + batch]))
            logits = model(input_ids=ids).logits[:, :-1].float()
            total += float(torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="sum"))
            count += ids[:, 1:].numel()
    model.train(was)
    return total / count


def _losses(model: Any, corpus: Corpus) -> dict[str, float]:
    return {
        "domain_train": row_loss(model, corpus.domain_train),
        "domain_val": row_loss(model, corpus.domain_val),
        "domain_test": row_loss(model, corpus.domain_test),
        "general": row_loss(model, corpus.general_val),
    }


def new_model(config: Config, seed: int) -> Any:
    """A fresh tiny GPT for the lab's character tokenizer, ``length`` positions."""
    from ontheline.research.lm import CharTokenizer, tiny_gpt

    return tiny_gpt(CharTokenizer().vocab_size, n_layer=config.n_layer, n_embd=config.n_embd, n_head=config.n_head,
                    n_positions=config.length, seed=seed)  # fmt: skip


def pretrain(
    corpus: Corpus, delta: float, config: Config, seed: int, *, start: int = 0, progress: Progress | None = None
) -> dict[str, Any]:
    """One pretraining run at domain fraction ``delta``: the losses at each budget and the weights at ``ft_budgets``.

    Returns
    -------
    dict
        ``steps``, ``tokens`` (n_budgets,), ``domain_tokens`` (domain tokens trained on by each
        budget, exact), ``epochs`` (n_budgets,), the losses ``domain_train``, ``domain_val``,
        ``domain_test``, ``general`` (n_budgets,), and ``states`` {step: state dict} (not JSON).
    """
    from ontheline.research.lm import train

    c = config
    model = new_model(c, seed)
    batch = mixed_batches(corpus, delta, c.batch_size, seed, start=start)
    budgets, keep = set(c.budgets), set(c.ft_budgets)
    rows: dict[str, list[float]] = {"domain_train": [], "domain_val": [], "domain_test": [], "general": []}
    states: dict[int, Any] = {}

    def hook(message: str, done: int, total: int) -> None:
        if done in budgets:
            for k, v in _losses(model, corpus).items():
                rows[k].append(v)
            if done in keep:
                states[done] = copy.deepcopy(model.state_dict())
        if progress is not None:
            progress(f"pretrain delta={delta:g}: {message}", done, total)

    train(model, batch, steps=c.steps, lr=c.lr, warmup=c.warmup, schedule="wsd", batch_size=c.batch_size, seed=seed,
          threads=1, progress=hook)  # fmt: skip
    steps = c.budgets
    dom_rows = np.cumsum(domain_rows_per_step(delta, c.batch_size, c.steps, start))
    domain_tokens = [int(dom_rows[s - 1]) * c.length for s in steps]
    tokens = [s * c.tokens_per_step for s in steps]
    return {"steps": steps, "tokens": tokens, "domain_tokens": domain_tokens,
            "epochs": [epochs(max(t - start * c.tokens_per_step, 0), delta, corpus.domain_tokens) for t in tokens],
            **rows, "states": states}  # fmt: skip


def finetune(state: Any, corpus: Corpus, config: Config, seed: int, lr: float) -> dict[str, Any]:
    """Finetune from ``state`` on the domain train rows at ``lr``, early-stopped on the domain validation loss.

    Returns
    -------
    dict
        ``best_step``, ``val``, ``test`` and ``general`` (the losses of the best-validation
        weights), ``general_before``, ``test_before``, ``curve`` [(step, val)], ``stopped_at``.
    """
    from ontheline.research.lm import train

    c = config
    model = new_model(c, seed)
    model.load_state_dict(state)
    before = _losses(model, corpus)
    best = {"val": before["domain_val"], "step": 0, "state": copy.deepcopy(model.state_dict())}
    curve = [(0, before["domain_val"])]

    def evaluate(message: str, done: int, total: int) -> None:
        if done % c.ft_eval_every == 0:
            val = row_loss(model, corpus.domain_val)
            curve.append((done, val))
            if val < best["val"]:
                best.update(val=val, step=done, state=copy.deepcopy(model.state_dict()))

    def patience_spent(done: int) -> bool:
        return done - best["step"] >= c.patience * c.ft_eval_every

    train(model, domain_batches(corpus.domain_train, c.batch_size, seed), steps=c.ft_max_steps, lr=lr,
          warmup=min(10, c.ft_max_steps), schedule="wsd", batch_size=c.batch_size, seed=seed, threads=1,
          progress=evaluate, stop=patience_spent)  # fmt: skip
    model.load_state_dict(best["state"])
    after = _losses(model, corpus)
    return {"lr": lr, "best_step": best["step"], "val": after["domain_val"], "test": after["domain_test"],
            "general": after["general"], "general_before": before["general"], "test_before": before["domain_test"],
            "val_before": before["domain_val"], "stopped_at": curve[-1][0], "curve": curve}  # fmt: skip


def finetune_grid(state: Any, corpus: Corpus, config: Config, seed: int) -> dict[str, Any]:
    """:func:`finetune` at every learning rate of ``ft_lrs``; the run with the best validation loss is chosen."""
    runs = [finetune(state, corpus, config, seed, lr) for lr in config.ft_lrs]
    chosen = min(runs, key=lambda r: (r["val"], r["lr"]))
    return {**{k: v for k, v in chosen.items() if k != "curve"}, "forgetting": forgetting(chosen["general_before"], chosen["general"]),
            "grid": [{k: v for k, v in r.items() if k != "curve"} for r in runs]}  # fmt: skip


def run_seed(seed: int, config: Config, progress: Progress | None = None) -> dict[str, Any]:
    """Every delta of ``config`` on one seed: pretraining curves and the finetuning results per budget.

    Returns
    -------
    dict
        ``{"seed", "domain_tokens", "entropy": {"domain", "general"}, "runs": {delta: {...pretrain,
        "ft": {step: finetune_grid}}}, "seconds"}`` (deltas and steps as strings).
    """
    with extra("torch"), extra("hf"):
        import torch  # noqa: F401 - the torch extra, checked before any work

    began = time.perf_counter()
    corpus = config.corpus(seed)
    runs: dict[str, Any] = {}
    for delta in config.deltas:
        pt = pretrain(corpus, delta, config, seed, progress=progress)
        states = pt.pop("states")
        ft = {}
        for i, step in enumerate(config.ft_budgets):
            ft[str(step)] = finetune_grid(states[step], corpus, config, seed)
            if progress is not None:
                progress(f"finetune delta={delta:g} from step {step}", i + 1, len(config.ft_budgets))
        runs[str(delta)] = {**pt, "ft": ft}
    return {"seed": seed, "domain_tokens": corpus.domain_tokens,
            "entropy": {"domain": corpus.domain.entropy_rate(), "general": corpus.general.entropy_rate()},
            "runs": runs, "seconds": time.perf_counter() - began}  # fmt: skip


__all__ = ["Config", "finetune", "finetune_grid", "new_model", "pretrain", "row_loss", "run_seed"]
