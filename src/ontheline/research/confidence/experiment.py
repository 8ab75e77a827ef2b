"""One seed of the PCS reproduction: data, the SFT base policy, GRPO with and without PCS, and scoring.

:func:`problems` draws the problem sets of a seed; :func:`run_seed` makes the base policy by SFT
on a mixture of progressive and premature (shortcut) digit-sum traces, then, for each task and
arm, runs GRPO from it, scores a checkpoint every few steps on the validation problems, keeps
the best one (validation pass@1) and scores it on the test problems with :func:`score`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ontheline._progress import Progress
from ontheline.research.confidence.scores import classify, overconfidence
from ontheline.research.confidence.shaping import pcs_reward
from ontheline.research.confidence.trajectory import confidence_trajectories
from ontheline.research.lm import (
    CharTokenizer,
    Example,
    check_disjoint,
    digit_sums,
    grpo,
    sample,
    split,
    tiny_gpt,
    train,
)

#: The two tasks: how many digits are summed (a fixed count per task: see the module's docstring).
TASKS = {"hard": 8, "easy": 3}
#: The arms: the PCS weight eta of each (0: outcome reward alone).
ARMS = {"outcome": 0.0, "pcs": 1.0}


@dataclass(frozen=True)
class Settings:
    """Everything one run depends on (the seed aside); ``QUICK`` and ``FULL`` in :mod:`.repro`.

    Examples
    --------
    >>> Settings().progressive_share, Settings().eta
    (0.15, 1.0)
    """

    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    n_positions: int = 64
    progressive_share: float = 0.15  # the "accessibility" knob: the share of progressive SFT traces
    pretrain_problems: int = 20000
    pretrain_chunk: int = 500  # pretraining runs in chunks until validation pass@1 >= pretrain_target
    pretrain_max_steps: int = 5000
    pretrain_target: float = 0.9
    pretrain_lr: float = 2e-3
    forced_share: float = 0.5  # forced-answer examples added to the SFT mixture (the probe's interface)
    sft_problems: int = 4000
    sft_steps: int = 500
    sft_lr: float = 1e-3
    batch_size: int = 32
    grpo_steps: int = 80
    eval_every: int = 20
    group_size: int = 8
    prompts_per_step: int = 8
    grpo_lr: float = 2e-4
    eta: float = 1.0
    probe_points: int = 6  # the training probe (the paper's K = 6)
    analysis_points: int = 11  # the analysis probe (the paper's K = 11)
    tau: float = 0.4
    resolution: float = 0.1  # ranks ignore differences below the paper's Monte-Carlo resolution (M = 10)
    rl_problems: int = 500
    validation_problems: int = 64
    test_problems: int = 100
    samples: int = 4
    max_new_tokens: int = 32

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def problems(seed: int, s: Settings) -> dict[str, dict[str, list[Example]]]:
    """The problem sets of a seed, per task: ``{"hard"|"easy": {"pretrain", "sft", "rl", "validation", "test"}}``.

    ``pretrain`` has progressive traces only; ``sft`` is the mixture (a share
    ``progressive_share`` progressive, the rest premature with the last-digit shortcut); ``rl``
    holds prompts for GRPO. The validation and test problems share no prompt with each other nor
    with any training part (with 3 digits there are only 1,000 prompts: the training parts draw
    from the rest).

    Examples
    --------
    >>> s = Settings(pretrain_problems=50, sft_problems=50, rl_problems=20, validation_problems=5, test_problems=5)
    >>> parts = problems(0, s)
    >>> sorted(parts), sorted(parts["hard"]), len(parts["easy"]["test"])
    (['easy', 'hard'], ['pretrain', 'rl', 'sft', 'test', 'validation'], 5)
    """
    out: dict[str, dict[str, list[Example]]] = {}
    for t, (name, digits) in enumerate(TASKS.items()):
        drawn = digit_sums(4 * (s.validation_problems + s.test_problems), seed=1000 * seed + 10 * t + 1, digits=digits)
        pool = list({e.prompt: e for e in drawn}.values())  # each held-out prompt once
        held = split(pool, {"validation": s.validation_problems, "test": s.test_problems}, seed=seed)
        taken = {e.prompt for part in held.values() for e in part}

        mixture = _draw(
            s.sft_problems, 1000 * seed + 10 * t + 3, digits, taken, trace=s.progressive_share, shortcut=True
        )
        parts = {
            "pretrain": _draw(s.pretrain_problems, 1000 * seed + 10 * t + 2, digits, taken),
            "sft": mixture + forced_answers(mixture, s.forced_share, seed=1000 * seed + 10 * t + 5),
            "rl": _draw(s.rl_problems, 1000 * seed + 10 * t + 4, digits, taken),
            **held,
        }
        check_disjoint(parts["pretrain"] + parts["sft"] + parts["rl"], parts["validation"], parts["test"])
        out[name] = parts
    return out


def _draw(n: int, seed: int, digits: int, taken: set[str], **kw: Any) -> list[Example]:
    """``n`` digit-sum problems whose prompts are not in ``taken``."""
    pool = digit_sums(n + 4 * len(taken), seed=seed, digits=digits, **kw)
    return [e for e in pool if e.prompt not in taken][:n]


def forced_answers(examples: list[Example], share: float, seed: int) -> list[Example]:
    """Forced-answer examples: a trace cut at a random character, then ``ANS`` and what the trace knows so far.

    The probe appends ``"\nANS "`` to a truncated chain of thought; these examples teach the model
    to answer there. The answer is what the trace implies at the cut: a premature trace's guess
    (the last digit), a progressive trace's last complete running sum, or, before the first
    one, the last digit (the shortcut guess). ``round(share * len(examples))`` of them, each from
    a different example.

    Examples
    --------
    >>> ex = digit_sums(1, seed=0, digits=5)[0]
    >>> forced_answers([ex], 1.0, seed=3)[0].completion
    '8 4 9 1 \\nANS 1'
    """
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(examples), size=int(round(share * len(examples))), replace=False)
    out = []
    for i in sorted(chosen.tolist()):
        ex = examples[i]
        cot = ex.completion[: ex.completion.rindex("\nANS ")]
        cut = int(rng.integers(0, len(cot) + 1))
        prefix = cot[:cut]
        last_digit = ex.prompt.split()[-2]
        if ex.info["trace"] == "premature":
            answer = ex.info["guess"]
        else:
            sums = prefix.split()  # each running sum is one digit: written means complete
            answer = sums[-1] if sums else last_digit
        text = f"{prefix}\nANS {answer}" if prefix and not prefix.endswith("\n") else f"{prefix}ANS {answer}"
        out.append(Example(ex.prompt, text, answer, {**ex.info, "forced": str(cut)}))
    return out


def score(
    model: Any, examples: list[Example], s: Settings, seed: int, *, trajectories: bool = True
) -> dict[str, float]:
    """pass@1 (``samples`` completions per problem at temperature 1), and over those completions the
    share with a progressive trajectory (own answer, ``analysis_points`` points, exact probe), the
    mean overconfidence score, and the share whose text is a premature (``GUESS``) trace."""
    drawn = sample(model, examples, n=s.samples, temperature=1.0, max_new_tokens=s.max_new_tokens, seed=seed,
                   batch_size=64)  # fmt: skip
    flat = [c for group in drawn for c in group]
    prompts = [e for e in examples for _ in range(s.samples)]
    correct = np.array([c.answer is not None and c.answer == e.answer for c, e in zip(flat, prompts)], dtype=float)
    out = {
        "pass@1": float(correct.mean()),
        "guess_share": float(np.mean([c.text.startswith("GUESS") for c in flat])),
    }
    if trajectories:
        c, _, _ = confidence_trajectories(model, prompts, flat, points=s.analysis_points)
        labels = classify(c, s.tau, s.resolution)
        out["progressive_fraction"] = float(np.mean([label == "progressive" for label in labels]))
        out["overconfidence"] = float(np.mean(overconfidence(c)))
    return out


def run_seed(seed: int, s: Settings, progress: Progress | None = None) -> dict[str, Any]:
    """Per task: the base policy (pretraining on progressive traces, then SFT on the mixture), then GRPO
    per arm with a checkpoint every ``eval_every`` steps; each arm's checkpoint is the one with the best
    validation pass@1 (the earliest of ties), scored on the test problems."""
    import torch

    parts = problems(seed, s)
    tok = CharTokenizer()
    began = time.perf_counter()
    seconds = {"pretrain": 0.0, "sft": 0.0, "grpo": 0.0, "scoring": 0.0}
    out: dict[str, Any] = {"tasks": {}, "seconds": seconds}
    for t, (name, task) in enumerate(parts.items()):
        t0 = time.perf_counter()
        torch.manual_seed(1000 * seed + t)
        base = tiny_gpt(tok.vocab_size, n_layer=s.n_layer, n_embd=s.n_embd, n_head=s.n_head, n_positions=s.n_positions)
        steps, capable, pre_losses = 0, 0.0, [float("nan")]
        while steps < s.pretrain_max_steps and capable < s.pretrain_target:  # stop on validation, never on test
            pre = train(base, task["pretrain"], steps=s.pretrain_chunk, lr=s.pretrain_lr, batch_size=s.batch_size,
                        seed=1000 * seed + steps, loss_on="completion", warmup=min(50, s.pretrain_chunk // 10),
                        schedule="constant", threads=1)  # fmt: skip
            steps += s.pretrain_chunk
            pre_losses = pre.losses
            capable = score(base, task["validation"], s, seed, trajectories=False)["pass@1"]
        t1 = time.perf_counter()
        sft = train(base, task["sft"], steps=s.sft_steps, lr=s.sft_lr, batch_size=s.batch_size, seed=seed,
                    loss_on="completion", warmup=min(20, s.sft_steps // 10), threads=1)  # fmt: skip
        t2 = time.perf_counter()
        seconds["pretrain"] += t1 - t0
        seconds["sft"] += t2 - t1
        result: dict[str, Any] = {
            "base": score(base, task["test"], s, seed),
            "pretrained_validation_pass@1": capable,
            "pretrain_steps": steps,
            "loss_pretrain_last": float(np.mean(pre_losses[-20:])),
            "loss_sft_last": float(np.mean(sft.losses[-20:])),
        }
        seconds["scoring"] += time.perf_counter() - t2
        if progress is not None:
            progress(f"pcs seed {seed} {name}: base pass@1 {result['base']['pass@1']:.3f}", 0, s.grpo_steps)
        for arm, on in ARMS.items():
            model = copy.deepcopy(base)
            reward = pcs_reward(model, eta=s.eta * on, points=s.probe_points)
            curve, states = [], []
            done = 0
            while done < s.grpo_steps:
                t0 = time.perf_counter()
                chunk = min(s.eval_every, s.grpo_steps - done)
                grpo(model, task["rl"], reward, group_size=s.group_size, prompts_per_step=s.prompts_per_step,
                     steps=chunk, lr=s.grpo_lr, max_new_tokens=s.max_new_tokens, seed=1000 * seed + done,
                     threads=1)  # fmt: skip
                done += chunk
                t1 = time.perf_counter()
                seconds["grpo"] += t1 - t0
                val = score(model, task["validation"], s, seed + 1, trajectories=False)["pass@1"]
                seconds["scoring"] += time.perf_counter() - t1
                curve.append({"step": done, "validation_pass@1": val})
                states.append({k: v.clone() for k, v in model.state_dict().items()})
                if progress is not None:
                    progress(f"pcs seed {seed} {name} {arm}: validation pass@1 {val:.3f}", done, s.grpo_steps)
            best = max(range(len(curve)), key=lambda i: (curve[i]["validation_pass@1"], -i))  # the earliest of ties
            model.load_state_dict(states[best])
            t0 = time.perf_counter()
            result[arm] = {**score(model, task["test"], s, seed), "step": curve[best]["step"], "curve": curve}
            seconds["scoring"] += time.perf_counter() - t0
        out["tasks"][name] = result
    out["parameters"] = sum(p.numel() for p in base.parameters())
    seconds["total"] = time.perf_counter() - began
    return out
