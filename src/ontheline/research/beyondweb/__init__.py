"""BeyondWeb: rephrasing web documents into diverse formats at the data wall, on the language-model lab.

Maini, Dorna, Doshi et al. (2025) pretrain on web text plus *source rephrasing*: real
documents rewritten by a small model into dense, diverse, style-matched formats (question-answer
pairs, chat, knowledge lists, tutorials). At the data wall, where the web has run out of new
tokens, this beats repeating the web, and naive synthetic continuations barely help. Here, at
CPU scale, in a synthetic knowledge world:

- :mod:`~ontheline.research.beyondweb.world`: the world (:func:`make_world`), web documents at
  two quality tiers and :func:`web_corpus`, the web built to an exact count of unique tokens
  (:func:`fill`, :func:`corpus_tokens`);
- :mod:`~ontheline.research.beyondweb.facts`: fact triples and :func:`parse_facts`, the parser
  that reads them back from any text the topic writes;
- :mod:`~ontheline.research.beyondweb.rephrase`: the fact-preserving template rephrasers
  (:data:`STRATEGIES`: summary, qa, chat, tutorial; :func:`rephrase`) and the ungrounded
  control, continuations from a word n-gram model fitted on the web (:class:`NgramModel`,
  :func:`continuation`);
- :mod:`~ontheline.research.beyondweb.mixture`: the runs (:data:`RUNS`), the token accounting
  of a mixture at one budget (:func:`shares`, :func:`synthetic`, :func:`mixture`);
- :mod:`~ontheline.research.beyondweb.diversity`: :func:`embedding_diversity` (mean pairwise
  cosine distance of MiniLM embeddings, the ``text`` extra) and :func:`distinct_n`;
- :mod:`~ontheline.research.beyondweb.evaluate`: closed-book chat-format fact QA by the
  log-probability of each value (:func:`choice_accuracy`) and held-out web :func:`perplexity`;
- :mod:`~ontheline.research.beyondweb.repro`: ``ontheline repro beyondweb [--quick]``.

Examples
--------
>>> from ontheline.research.beyondweb import make_world, parse_facts, rephrase, web_corpus
>>> world = make_world(30, seed=0)
>>> web = web_corpus(world, 3000, seed=0)
>>> web.tokens
3000
>>> facts = web.facts[0]
>>> all(set(parse_facts(rephrase(facts, s), world)) == set(facts) for s in ("summary", "qa", "chat", "tutorial"))
True

References
----------
.. [1] P. Maini, V. Dorna, P. Doshi et al., C. Baek, ... and M. Leavitt, "BeyondWeb: Lessons from Scaling
   Synthetic Data for Trillion-scale Pretraining", arXiv 2025, arXiv:2508.10975.
"""

from ontheline.research.beyondweb.diversity import cosine_diversity, distinct_n, embedding_diversity
from ontheline.research.beyondweb.evaluate import chat_prompt, choice_accuracy, cloze_prompt, perplexity
from ontheline.research.beyondweb.facts import Fact, fact_set, parse_facts, question_text
from ontheline.research.beyondweb.mixture import RUNS, Mixture, RunSpec, mixture, shares, synthetic
from ontheline.research.beyondweb.rephrase import CONTROL, STRATEGIES, NgramModel, continuation, rephrase
from ontheline.research.beyondweb.world import WebCorpus, corpus_tokens, doc_tokens, fill, make_world, web_corpus

__all__ = ["CONTROL", "RUNS", "STRATEGIES", "Fact", "Mixture", "NgramModel", "RunSpec", "WebCorpus", "chat_prompt",
           "choice_accuracy", "cloze_prompt", "continuation", "corpus_tokens", "cosine_diversity", "distinct_n",
           "doc_tokens", "embedding_diversity", "fact_set", "fill", "make_world", "mixture", "parse_facts",
           "perplexity", "question_text", "rephrase", "shares", "synthetic", "web_corpus"]  # fmt: skip
