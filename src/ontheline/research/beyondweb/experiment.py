"""One seed of the reproduction: the world, its web, the seven mixtures, a tiny GPT pretrained on each, scored."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ontheline._progress import Progress
from ontheline.research.beyondweb.diversity import distinct_n, embedding_diversity
from ontheline.research.beyondweb.evaluate import chat_prompt, choice_accuracy, earlier_turns, perplexity
from ontheline.research.beyondweb.facts import fact_set
from ontheline.research.beyondweb.mixture import RUNS, mixture, token_weighted_sample
from ontheline.research.beyondweb.rephrase import NgramModel
from ontheline.research.beyondweb.world import heldout_web, make_world, web_corpus


@dataclass(frozen=True)
class Config:
    """The sizes of one seed: the world, the wall, the budget, the model, the evaluation."""

    n_entities: int = 20
    web_tokens: int = 300_000
    hq_share: float = 0.5
    budget_multiple: int = 3
    ngram: int = 3
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    context: int = 128
    batch_size: int = 8
    lr: float = 3e-3
    warmup: int = 50
    eval_facts: int = 300
    heldout_docs: int = 300
    diversity_docs: int = 128
    distinct_ngrams: int = 2000
    embeddings: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def packed_rows(documents: list[str], context: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Documents (``<bos> text <eos>``) packed into rows of at most ``context`` tokens without cutting one.

    A row takes documents in order while they fit; a document longer than ``context`` is cut
    into rows of ``context`` tokens (the rest starts the next row). Every token is in exactly
    one row, so the rows hold :func:`~ontheline.research.beyondweb.corpus_tokens` tokens.

    Examples
    --------
    >>> [len(ids) for ids, _ in packed_rows(["abc", "de", "fghijkl"], context=8)]
    [5, 4, 8, 1]
    """
    from ontheline.research.lm import CharTokenizer

    tok = CharTokenizer()
    rows: list[np.ndarray] = []
    current: list[int] = []
    for doc in documents:
        seq = [tok.bos_id, *tok.encode(doc), tok.eos_id]
        if len(current) + len(seq) > context and current:
            rows.append(np.array(current, dtype=np.int64))
            current = []
        while len(seq) > context:
            rows.append(np.array(seq[:context], dtype=np.int64))
            seq = seq[context:]
        current += seq
    if current:
        rows.append(np.array(current, dtype=np.int64))
    return [(r, r) for r in rows]


def packed_batches(documents: list[str], context: int, batch_size: int, seed: int) -> tuple[Any, int]:
    """One pass over :func:`packed_rows` in a seeded order, as a batch function for :func:`~ontheline.research.lm.train`.

    Step ``s`` takes rows ``s * batch_size`` onwards of the permutation (the last step takes
    what is left), so ``ceil(rows / batch_size)`` steps train on every token exactly once.
    Returns the batch function and the number of steps.
    """
    from ontheline.research.lm.batches import collate
    from ontheline.research.lm.tokenizer import PAD_ID

    rows = packed_rows(documents, context)
    order = np.random.default_rng([seed, 53]).permutation(len(rows))

    def batch(step: int) -> dict[str, Any]:
        picked = order[step * batch_size : (step + 1) * batch_size]
        if len(picked) == 0:
            raise ValueError(f"step {step} is past the one pass over {len(rows)} rows.")
        return collate([rows[i] for i in picked], PAD_ID)

    return batch, math.ceil(len(rows) / batch_size)


def setup(config: Config, seed: int) -> dict[str, Any]:
    """The world, its web at the wall, the held-out web, the n-gram model and the evaluated facts of one seed."""
    c = config
    world = make_world(c.n_entities, seed)
    web = web_corpus(world, c.web_tokens, seed, hq_share=c.hq_share)
    trained = set(web.documents)
    heldout = [d for d in heldout_web(world, c.heldout_docs, seed) if d not in trained]
    facts = sorted(f for f in web.fact_set() if world.values[f[0], f[1]] == f[2])  # stated right at least once
    rng = np.random.default_rng([seed, 41])
    evaluated = [facts[i] for i in sorted(rng.choice(len(facts), size=min(c.eval_facts, len(facts)), replace=False))]
    return {"world": world, "web": web, "heldout": heldout, "facts": evaluated,
            "ngram": NgramModel(web.documents, n=c.ngram)}  # fmt: skip


def train_run(
    name: str, config: Config, seed: int, data: dict[str, Any], progress: Progress | None = None
) -> dict[str, Any]:
    """Pretrain a fresh tiny GPT on run ``name``'s mixture (one pass over the budget) and score it."""
    from ontheline.research.lm import CharTokenizer, tiny_gpt, train

    c, world, web = config, data["world"], data["web"]
    budget = c.budget_multiple * web.tokens
    began = time.perf_counter()
    mix = mixture(web, world, RUNS[name], budget, seed=seed, ngram=data["ngram"])
    build_seconds = time.perf_counter() - began
    model = tiny_gpt(CharTokenizer().vocab_size, n_layer=c.n_layer, n_embd=c.n_embd, n_head=c.n_head,
                     n_positions=c.context, seed=seed)  # fmt: skip
    batch_of, steps = packed_batches(mix.documents, c.context, c.batch_size, seed)

    def report(message: str, done: int, total: int) -> None:
        if progress is not None:
            progress(f"seed {seed} {name}: {message}", done, total)

    result = train(model, batch_of, steps=steps, lr=c.lr, warmup=c.warmup, batch_size=c.batch_size, seed=seed,
                   threads=1, progress=report)  # fmt: skip
    train_seconds = time.perf_counter() - began - build_seconds
    facts, attributes = data["facts"], world.attributes
    qa = choice_accuracy(model, facts, attributes, prompt="chat")
    cloze = choice_accuracy(model, facts, attributes, prompt="cloze")
    midway = choice_accuracy(model, facts, attributes, prompt="chat", prefixes=earlier_turns(facts))
    synthetic_facts = fact_set([d for part, docs in mix.parts.items() if part != "web" for d in docs], world)
    sample = token_weighted_sample(mix.documents, c.diversity_docs, seed)
    out = {
        "qa_accuracy": qa["accuracy"],
        "web_ppl": perplexity(model, data["heldout"], context=c.context),
        "diversity": embedding_diversity(sample) if c.embeddings else float("nan"),
        "distinct_3": distinct_n(sample, 3, max_ngrams=c.distinct_ngrams),
        "cloze_accuracy": cloze["accuracy"],
        "qa_accuracy_second_turn": midway["accuracy"],
        "synthetic_fact_coverage": float(np.mean([f in synthetic_facts for f in facts])),
        "tokens": mix.tokens,
        "total_tokens": mix.total,
        "trained_tokens": result.tokens,
        "steps": steps,
        "final_train_loss": float(np.mean(result.losses[-20:])),
        "seconds": {"build": build_seconds, "train": train_seconds, "total": time.perf_counter() - began},  # fmt: skip
    }
    return out


def _check_prompts_fit(config: Config, data: dict[str, Any]) -> None:
    """Refuse, before any training, a context too short for the longest evaluation row (second-turn chat QA)."""
    values = data["world"].attributes
    longest = 1 + max(len(turn) + len(chat_prompt(e, a)) + max(map(len, values[a]))
                      for (e, a, _), turn in zip(data["facts"], earlier_turns(data["facts"])))  # fmt: skip
    if longest > config.context:
        raise ValueError(f"context must hold the longest evaluation row, {longest} tokens; got {config.context}. "
                         "Raise Config.context.")  # fmt: skip


def run_seed(
    config: Config, seed: int, runs: tuple[str, ...] = tuple(RUNS), progress: Progress | None = None
) -> dict[str, Any]:
    """Every run of one seed, with what they share (the web, the budget, the evaluated facts)."""
    began = time.perf_counter()
    data = setup(config, seed)
    _check_prompts_fit(config, data)
    web = data["web"]
    out: dict[str, Any] = {
        "web_tokens": web.tokens,
        "web_tier_tokens": {t: web.tier_tokens(t) for t in ("hq", "lq")},
        "web_documents": len(web.documents),
        "web_facts": len(web.fact_set()),
        "web_facts_hq": len(web.fact_set("hq")),
        "web_facts_lq": len(web.fact_set("lq")),
        "web_true_facts": sum(data["world"].values[e, a] == v for e, a, v in web.fact_set()),
        "web_statements": {t: web.statements(t) for t in ("hq", "lq")},
        "web_wrong_statements": {t: sum(data["world"].values[e, a] != v for fs, tt in zip(web.facts, web.tiers)
                                        if tt == t for e, a, v in fs) for t in ("hq", "lq")},
        "world_facts": len(data["world"].values),
        "evaluated_facts": len(data["facts"]),
        "heldout_documents": len(data["heldout"]),
        "budget": config.budget_multiple * web.tokens,
        "chance": float(np.mean([1 / len(data["world"].attributes[a]) for _, a, _ in data["facts"]])),
        "runs": {},
    }  # fmt: skip
    for name in runs:
        out["runs"][name] = train_run(name, config, seed, data, progress)
    out["seconds"] = time.perf_counter() - began
    return out


__all__ = ["Config", "run_seed", "setup", "train_run"]
