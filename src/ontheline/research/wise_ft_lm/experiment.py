"""One seed of the WiSE-FT language-model reproduction: data, pretraining, SFT with checkpoints, and scoring.

:func:`train_seed` draws the problems, pretrains a tiny character GPT on a broad, imperfect
set (a share of the chains of thought slip), finetunes it on a small clean set for many epochs
with a checkpoint every few steps, and scores every checkpoint on the validation and the test
problems with :func:`score`; once the early checkpoint is chosen on validation,
:func:`finish_seed` scores the WiSE interpolations and the late checkpoint at other
temperatures on the test problems.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ontheline._progress import Progress
from ontheline.research.lm import (
    CharTokenizer,
    Example,
    arithmetic,
    check_disjoint,
    interpolate_models,
    load,
    sample,
    samples_table,
    split,
    tiny_gpt,
    train,
)
from ontheline.research.passk import group_samples, maj_at_k, pass_at_k, pass_at_k_decomposition

#: The k of every pass@k reported.
KS = (1, 2, 4, 8, 16)
#: The WiSE interpolation weights of the late checkpoint.
ALPHAS = (0.25, 0.5, 0.75)


@dataclass(frozen=True)
class Settings:
    """Everything one run depends on (the seed aside); ``QUICK`` and ``FULL`` in :mod:`.repro`.

    Examples
    --------
    >>> Settings().sft_problems, Settings().sft_lr, Settings().corrupt
    (1000, 0.0003, 0.12)
    """

    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    n_positions: int = 64
    ops: tuple[int, int] = (2, 3)
    max_operand: int = 30
    max_factor: int = 9
    corrupt: float = 0.12  # per chain-of-thought line: about 30% of the problems (2-3 lines) have a slip
    pretrain_problems: int = 20_000
    pretrain_steps: int = 3_000
    pretrain_lr: float = 3e-3
    pretrain_loss_on: str = "completion"
    sft_problems: int = 1_000
    sft_steps: int = 1_500
    sft_lr: float = 3e-4
    sft_schedule: str = "constant"
    checkpoint_every: int = 150
    batch_size: int = 32
    validation_problems: int = 100
    test_problems: int = 200
    samples: int = 32
    max_new_tokens: int = 48
    temperatures: tuple[float, ...] = (0.7, 1.0, 1.3, 1.6, 2.0)
    select_k: int = 16

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def problems(seed: int, s: Settings) -> dict[str, list[Example]]:
    """The four parts of one seed, sharing no prompt: ``pretrain`` (with slips), ``sft``, ``validation`` and ``test``.

    The held-out parts are distinct clean problems; the pretraining part is every other problem
    drawn (a prompt may repeat there, as in a large corpus), with its slipped chain of thought.

    Examples
    --------
    >>> parts = problems(0, Settings(pretrain_problems=50, sft_problems=10, validation_problems=5, test_problems=5))
    >>> {name: len(part) for name, part in parts.items()}
    {'pretrain': 50, 'sft': 10, 'validation': 5, 'test': 5}
    """
    wanted = {"sft": s.sft_problems, "validation": s.validation_problems, "test": s.test_problems}
    drawn = s.pretrain_problems + 2 * sum(wanted.values()) + 100
    while True:
        clean, slipped = (
            arithmetic(
                drawn, seed=10_000 + seed, ops=s.ops, max_operand=s.max_operand, max_factor=s.max_factor, corrupt=c
            )
            for c in (0.0, s.corrupt)
        )
        distinct = len({e.prompt for e in clean})
        if distinct < sum(wanted.values()) + 1:
            raise ValueError(f"Only {distinct} distinct problems with these settings; ask for fewer held-out ones.")
        counts = {**wanted, "pretrain": distinct - sum(wanted.values())}
        parts = split(list(zip(clean, slipped)), counts, seed=seed, key=lambda pair: pair[0].prompt)
        if len(parts["pretrain"]) >= s.pretrain_problems:
            break
        drawn = 2 * drawn
    out = {
        "pretrain": [noisy for _, noisy in parts["pretrain"]][: s.pretrain_problems],
        **{name: _distinct([c for c, _ in parts[name]]) for name in wanted},
    }
    check_disjoint(*out.values())
    return out


def _distinct(examples: list[Example]) -> list[Example]:
    seen: set[str] = set()
    return [e for e in examples if not (e.prompt in seen or seen.add(e.prompt))]  # type: ignore[func-returns-value]


def score(
    model: Any, problems: list[Example], s: Settings, *, temperature: float = 1.0, seed: int = 0
) -> dict[str, Any]:
    """pass@k, maj@16, the share of distinct answers and the bias-variance split, from ``s.samples`` samples per problem.

    Every model of a seed is scored with the same sampling seed (common random numbers).
    ``rho`` is each problem's share of correct samples (its estimated pass@1).
    """
    drawn = sample(model, problems, n=s.samples, temperature=temperature, max_new_tokens=s.max_new_tokens,
                   stop=(), seed=seed, batch_size=16)  # fmt: skip
    grouped = group_samples(samples_table(problems, drawn))
    out: dict[str, Any] = {f"pass@{k}": float(pass_at_k(grouped.n, grouped.c, k).mean()) for k in KS}
    out["maj@16"] = float(maj_at_k(list(grouped.answers), list(grouped.correct), 16, seed=seed).mean())
    out["distinct_answers"] = float(np.mean([len(set(a.tolist())) / len(a) for a in grouped.answers]))
    out["no_answer"] = float(np.mean([c.answer is None for cs in drawn for c in cs]))
    rho = grouped.c / grouped.n
    out["var_pass@1"] = float(rho.var())
    for k in (2, 16):
        d = pass_at_k_decomposition(rho, k)
        out[f"bias@{k}"], out[f"jensen_gap@{k}"] = d.bias_term, d.jensen_gap
    out["never_solved"] = float(np.mean(grouped.c == 0))
    out["always_solved"] = float(np.mean(grouped.c == grouped.n))
    return out


def train_seed(seed: int, s: Settings, folder: str | Path, progress: Progress | None = None) -> dict[str, Any]:
    """Pretrain and finetune one seed, writing the SFT checkpoints to ``folder``; score every checkpoint.

    The pretrained model and every checkpoint are scored on the test problems (the curve that
    is reported) and every checkpoint on the validation problems (the curve the early
    checkpoint is chosen on, by :func:`ontheline.research.wise_ft_lm.repro.run`).
    """
    tok = CharTokenizer()
    parts = problems(seed, s)
    say = _say(progress, seed)
    say("pretraining")
    model = tiny_gpt(tok.vocab_size, n_layer=s.n_layer, n_embd=s.n_embd, n_head=s.n_head,
                     n_positions=s.n_positions, seed=seed)  # fmt: skip
    pre = train(model, parts["pretrain"], steps=s.pretrain_steps, lr=s.pretrain_lr, warmup=s.pretrain_steps // 20,
                batch_size=s.batch_size, seed=seed, loss_on=s.pretrain_loss_on)  # fmt: skip
    began = time.perf_counter()
    say("scoring the pretrained model")
    base = score(model, parts["test"], s, seed=seed + 1)
    scoring = time.perf_counter() - began
    say("finetuning")
    sft = train(model, parts["sft"], steps=s.sft_steps, lr=s.sft_lr, schedule=s.sft_schedule,
                warmup=s.checkpoint_every // 5, batch_size=s.batch_size, seed=seed,
                checkpoint_every=s.checkpoint_every, checkpoint_dir=folder)  # fmt: skip
    began = time.perf_counter()
    say(f"scoring {len(sft.checkpoints)} checkpoints on validation and test")
    rows = []
    for path in sft.checkpoints:
        checkpoint = load(path)
        rows.append({
            "step": int(path.name.split("-")[1]),
            "validation": score(checkpoint, parts["validation"], s, seed=seed),
            "test": score(checkpoint, parts["test"], s, seed=seed + 1),
        })  # fmt: skip
    return {
        "seed": seed,
        "pretrained": base,
        "checkpoints": rows,
        "losses": {"pretrain_last": float(np.mean(pre.losses[-20:])), "sft_last": float(np.mean(sft.losses[-20:]))},
        "seconds": {"pretrain": pre.seconds, "sft": sft.seconds, "scoring": scoring + time.perf_counter() - began},
        "sizes": {name: len(part) for name, part in parts.items()},
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def finish_seed(
    seed: int, s: Settings, folder: str | Path, early_step: int, late_step: int, progress: Progress | None = None
) -> dict[str, Any]:
    """WiSE(early, late, alpha) for every alpha and the late checkpoint at every temperature, on the test problems."""
    parts = problems(seed, s)
    began = time.perf_counter()
    _say(progress, seed)(f"WiSE between steps {early_step} and {late_step}, and temperatures")
    early, late = (load(Path(folder) / f"step-{step:08d}") for step in (early_step, late_step))
    wise = {str(a): score(interpolate_models(early, late, a), parts["test"], s, seed=seed + 1) for a in ALPHAS}
    temperature = {
        str(t): score(late, parts["test"], s, temperature=t, seed=seed + 1) for t in s.temperatures if t != 1.0
    }
    return {"wise": wise, "temperature": temperature, "seconds": time.perf_counter() - began}


def _say(progress: Progress | None, seed: int) -> Any:
    def say(message: str) -> None:
        if progress is not None:
            progress(f"seed {seed}: {message}", 0, 0)

    return say


__all__ = ["ALPHAS", "KS", "Settings", "finish_seed", "problems", "score", "train_seed"]
