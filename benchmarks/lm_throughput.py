"""Throughput of the language-model lab: training tokens/s, sampled tokens/s and GRPO steps/s on CPU.

For each model size (``LAYERSxWIDTH``) and each thread count, one child process (so that
torch's thread pool and caches are its own) builds a tiny GPT, trains it with
``ontheline.research.lm.train`` on arithmetic problems (SFT rows of about 40 tokens, batch
32), samples ``--samples`` completions of ``--prompts`` problems with
``ontheline.research.lm.sample`` (the KV cache, temperature 1, up to 48 new tokens), and runs
a few GRPO steps (8 prompts x 8 completions). With ``--trl`` it also times TRL's
``GRPOTrainer`` on the same model, task and batch, and with ``--hf-trainer`` transformers'
``Trainer`` on the same SFT rows (TRL and accelerate must be importable: they are not
dependencies of the project). Prints one JSON object.

    python benchmarks/lm_throughput.py                       # 2x64, 2x128, 4x128 at 1 and 2 threads
    python benchmarks/lm_throughput.py --sizes 2x64 --trl    # also TRL's GRPOTrainer against the lab's loop
    python benchmarks/lm_throughput.py --sizes 2x64 --threads 1 --hf-trainer --grpo-steps 0   # transformers' Trainer
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

WARMUP_STEPS = 5


def _child(size: str, threads: int, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from ontheline.research.lm import CharTokenizer, arithmetic, grpo, sample, tiny_gpt, train

    torch.set_num_threads(threads)
    n_layer, n_embd = (int(x) for x in size.split("x"))
    tok = CharTokenizer()
    model = tiny_gpt(tok.vocab_size, n_layer=n_layer, n_embd=n_embd, n_positions=64, seed=0)
    data = arithmetic(4000, seed=0, corrupt=0.12)
    train(model, data, steps=WARMUP_STEPS, batch_size=32, threads=threads)  # warm-up: allocations, kernels
    trained = train(model, data, steps=args.train_steps, lr=3e-3, batch_size=32, seed=1, threads=threads)
    problems = arithmetic(args.prompts, seed=1)
    sample(model, problems[:2], n=4, max_new_tokens=8, threads=threads)  # warm-up
    began = time.perf_counter()
    drawn = sample(model, problems, n=args.samples, max_new_tokens=48, stop=(), batch_size=16, threads=threads)
    sampling = time.perf_counter() - began
    sampled = sum(len(c.token_ids) for cs in drawn for c in cs)
    out = {
        "size": size,
        "threads": threads,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_steps_per_s": trained.steps_per_second,
        "train_tokens_per_s": trained.tokens_per_second,
        "train_tokens_per_step": trained.tokens / max(trained.steps, 1),
        "sampled_tokens_per_s": sampled / sampling,
        "sampled_tokens": sampled,
        "sampling_seconds": sampling,
    }
    if args.hf_trainer:
        out["hf_trainer_steps_per_s"] = _hf_trainer(tiny_gpt(tok.vocab_size, n_layer=n_layer, n_embd=n_embd,
                                                             n_positions=64, seed=0), data, args.train_steps)  # fmt: skip
    if args.grpo_steps:
        policy = copy.deepcopy(model)
        result = grpo(policy, arithmetic(64, seed=2), group_size=8, prompts_per_step=8, steps=args.grpo_steps,
                      lr=1e-4, max_new_tokens=48, stop=(), threads=threads)  # fmt: skip
        out["grpo_steps_per_s"] = result.steps_per_second
        out["grpo_sampled_tokens_per_step"] = result.sampled_tokens / result.steps
        if args.trl:
            out["trl_grpo_steps_per_s"], out["trl_sampled_tokens_per_step"] = _trl(model, args.grpo_steps)
    return out


def _hf_trainer(model: Any, data: Any, steps: int) -> float:
    """Steps/s of a Hugging Face ``Trainer`` on the lab's SFT rows (batch 32, AdamW, clipping), after a warm-up."""
    import tempfile

    from transformers import Trainer, TrainerCallback, TrainingArguments

    from ontheline.research.lm import CharTokenizer
    from ontheline.research.lm.batches import collate, rows_of

    tok = CharTokenizer()
    rows, _ = rows_of(data, tok, "completion", 64)
    times: dict[str, float] = {}

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            if state.global_step == WARMUP_STEPS:
                times["start"] = time.perf_counter()
            times["end"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as out:
        config = TrainingArguments(
            output_dir=out, per_device_train_batch_size=32, max_steps=steps + WARMUP_STEPS, learning_rate=3e-3,
            weight_decay=0.01, max_grad_norm=1.0, use_cpu=True, report_to="none", save_strategy="no",
            logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0, seed=1,
        )  # fmt: skip
        trainer = Trainer(model=model, args=config, train_dataset=rows, data_collator=lambda b: collate(b, tok.pad_id),
                          callbacks=[Clock()])  # fmt: skip
        trainer.train()
    return steps / (times["end"] - times["start"])


def _trl(model: Any, steps: int) -> tuple[float, float]:
    """TRL's GRPOTrainer on the same task and batch: 8 prompts x 8 completions a step, 48 new tokens, no KL."""
    import tempfile

    from datasets import Dataset
    from datasets.table import InMemoryTable
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    from trl import GRPOConfig, GRPOTrainer

    from ontheline.research.lm import ALPHABET, answer_of, arithmetic

    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, **{c: i + 3 for i, c in enumerate(ALPHABET)}}
    chars = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    chars.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    chars.decoder = decoders.Fuse()
    chars.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=chars, pad_token="<pad>", bos_token="<bos>",
                                        eos_token="<eos>", padding_side="left")  # fmt: skip
    problems = arithmetic(64, seed=2)
    answers = {p.prompt: p.answer for p in problems}

    def reward(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        return [float(answer_of(c) == answers[p]) for p, c in zip(prompts, completions)]

    # a fixed fingerprint: datasets' own hashing of the table fails with some pyarrow versions
    dataset = Dataset(InMemoryTable.from_pydict({"prompt": [p.prompt for p in problems]}), fingerprint="lm-bench")
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out, per_device_train_batch_size=64, num_generations=8, max_completion_length=48,
            learning_rate=1e-4, beta=0.0, max_steps=steps, use_cpu=True, report_to="none", logging_steps=1,
            save_strategy="no", temperature=1.0, top_k=0, top_p=1.0, dataloader_num_workers=0, seed=0,
            disable_tqdm=True,
        )  # fmt: skip
        trainer = GRPOTrainer(model=copy.deepcopy(model), reward_funcs=reward, args=config, train_dataset=dataset,
                              processing_class=tokenizer)  # fmt: skip
        began = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - began
    lengths = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    return steps / seconds, 64 * sum(lengths) / max(len(lengths), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2x64,2x128,4x128", help="LAYERSxWIDTH, comma-separated")
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--prompts", type=int, default=64, help="problems sampled")
    parser.add_argument("--samples", type=int, default=32, help="completions per problem")
    parser.add_argument("--grpo-steps", type=int, default=10, help="GRPO steps timed (0: none)")
    parser.add_argument("--trl", action="store_true", help="also time TRL's GRPOTrainer (needs trl importable)")
    parser.add_argument("--hf-trainer", action="store_true", help="also time transformers' Trainer on the same rows (needs accelerate)")
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child[0], int(args.child[1]), args)))
        return 0
    load = os.getloadavg()
    runs = []
    for size in args.sizes.split(","):
        for threads in (int(t) for t in args.threads.split(",")):
            command = [sys.executable, __file__, "--child", size, str(threads), "--train-steps", str(args.train_steps),
                       "--prompts", str(args.prompts), "--samples", str(args.samples),
                       "--grpo-steps", str(args.grpo_steps), *(["--trl"] if args.trl else []), *(["--hf-trainer"] if args.hf_trainer else [])]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"{size} x {threads} thread(s): done", file=sys.stderr)
    result = {
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python", "benchmarks/lm_throughput.py", *(argv if argv is not None else sys.argv[1:])]),
        "load_average_before": [round(x, 2) for x in load],
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "runs": runs,
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
