"""A small language-model lab: tiny GPTs, seeded reasoning tasks, training, and sampling for pass@k.

The substrate the language-model papers of the programme share (WiSE-FT for reasoning,
progressive confidence shaping, specialized pretraining, BeyondWeb, context-parametric
inversion), sized to pretrain, finetune and sample in minutes on 2 CPU cores:

- :mod:`~ontheline.research.lm.model`: :func:`tiny_gpt` (a GPT-2 from a config), :func:`save`
  / :func:`load` (Hugging Face folders, safetensors; any local causal LM loads) and
  :func:`interpolate_models` (WiSE-FT);
- :mod:`~ontheline.research.lm.tokenizer`: :class:`CharTokenizer` over :data:`ALPHABET`;
- :mod:`~ontheline.research.lm.tasks` (a module per task): :func:`arithmetic`,
  :func:`digit_sums`, :func:`markov_text`, :class:`FactWorld`, :func:`answer_of`, and
  :func:`split` / :func:`check_disjoint` for held-out parts that share no prompt;
- :mod:`~ontheline.research.lm.train`: :func:`train` (AdamW, warm-up and decay, clipping,
  SFT on completions, checkpoints, exact resume, early stopping) and :func:`mean_loss`, with the schedules
  (:mod:`~ontheline.research.lm.schedules`: :func:`lr_factor`), the rows and batches
  (:mod:`~ontheline.research.lm.batches`) and the checkpoint files
  (:mod:`~ontheline.research.lm.checkpoints`) in modules of their own;
- :mod:`~ontheline.research.lm.sample`: :func:`sample` (``generate`` with its KV cache,
  log-probabilities, stop strings, answers), :func:`completion_logprobs` and
  :func:`samples_table`, whose rows feed :func:`ontheline.research.passk.group_samples`;
- :mod:`~ontheline.research.lm.grpo`: :func:`grpo` (group-normalised advantages, the clipped
  policy loss, the k3 KL to a reference, pluggable rewards such as :func:`answer_reward`), with
  its formulas in :mod:`~ontheline.research.lm.grpo_loss`: :func:`group_advantages`,
  :func:`policy_loss`, :func:`clipped_loss`, :func:`kl_k3`.

Everything runs on CPU with ``torch`` and ``transformers`` (the ``torch`` and ``hf`` extras);
the tokenizer and the tasks need only numpy.

Examples
--------
>>> from ontheline.research.lm import CharTokenizer, arithmetic, sample, samples_table, tiny_gpt, train
>>> tok = CharTokenizer()
>>> model = tiny_gpt(tok.vocab_size, n_layer=1, n_embd=32)
>>> _ = train(model, arithmetic(64, seed=0), steps=5, batch_size=8)
>>> problems = arithmetic(2, seed=1)
>>> rows = samples_table(problems, sample(model, problems, n=4, max_new_tokens=40))
>>> len(rows), sorted(rows[0])
(8, ['answer', 'correct', 'logprob', 'problem', 'prompt', 'sample', 'score', 'tokens'])
"""

from ontheline.research.lm.grpo import GRPOResult, answer_reward, grpo
from ontheline.research.lm.grpo_loss import LEVELS, clipped_loss, group_advantages, kl_k3, policy_loss
from ontheline.research.lm.model import interpolate_models, load, save, tiny_gpt
from ontheline.research.lm.sample import Completion, completion_logprobs, sample, samples_table
from ontheline.research.lm.schedules import SCHEDULES, lr_factor
from ontheline.research.lm.tasks import (
    ATTRIBUTES,
    DOMAIN_WORDS,
    QUESTIONS,
    STATEMENTS,
    WEB_WORDS,
    Example,
    FactWorld,
    MarkovChain,
    answer_of,
    arithmetic,
    check_disjoint,
    digit_sums,
    markov_chain,
    markov_text,
    split,
)
from ontheline.research.lm.tokenizer import ALPHABET, BOS_ID, EOS_ID, PAD_ID, CharTokenizer, pad
from ontheline.research.lm.train import TrainResult, mean_loss, train

__all__ = [
    "ALPHABET",
    "ATTRIBUTES",
    "BOS_ID",
    "DOMAIN_WORDS",
    "EOS_ID",
    "LEVELS",
    "PAD_ID",
    "QUESTIONS",
    "SCHEDULES",
    "STATEMENTS",
    "WEB_WORDS",
    "CharTokenizer",
    "Completion",
    "Example",
    "FactWorld",
    "GRPOResult",
    "MarkovChain",
    "TrainResult",
    "answer_of",
    "answer_reward",
    "arithmetic",
    "check_disjoint",
    "clipped_loss",
    "completion_logprobs",
    "digit_sums",
    "grpo",
    "group_advantages",
    "interpolate_models",
    "kl_k3",
    "load",
    "lr_factor",
    "markov_chain",
    "markov_text",
    "mean_loss",
    "pad",
    "policy_loss",
    "sample",
    "samples_table",
    "save",
    "split",
    "tiny_gpt",
    "train",
]
