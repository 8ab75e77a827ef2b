"""Seeded task generators with checkable answers, and held-out splits that never overlap.

Every generator draws from ``numpy.random.default_rng`` only (never :mod:`random` or
:func:`hash`), so its output depends on the seed alone: not on the Python version, the hash
seed or the platform. Drawing ``n`` examples is a prefix of drawing more with the same seed.

The reasoning tasks return :class:`Example` records whose completion ends in a line
``ANS <answer>``, which :func:`answer_of` reads back from a generated completion:

============  =======================  ============================================
task          prompt                   completion
============  =======================  ============================================
arithmetic    ``7*8+12-5=\\n``          ``7*8=56\\n56+12=68\\n68-5=63\\nANS 63``
digit sums    ``3 1 4 1 5 =\\n``        ``3 4 8 9 4\\nANS 4`` (progressive)
                                       ``GUESS 4\\n. . . . .\\nANS 4`` (premature)
fact world    ``Q: Where does Bako     ``ANS rivertown``
              live?\\n``
============  =======================  ============================================

The text corpora (:func:`markov_text`, :meth:`FactWorld.documents`) are plain strings.

One module per task: :mod:`.records` (the :class:`Example` record, :func:`answer_of`,
:func:`split` and :func:`check_disjoint`), :mod:`.arithmetic`, :mod:`.digits`, :mod:`.markov`
and :mod:`.facts`.
"""

from ontheline.research.lm.tasks.arithmetic import arithmetic
from ontheline.research.lm.tasks.digits import digit_sums
from ontheline.research.lm.tasks.facts import ATTRIBUTES, QUESTIONS, STATEMENTS, FactWorld
from ontheline.research.lm.tasks.markov import DOMAIN_WORDS, WEB_WORDS, MarkovChain, markov_chain, markov_text
from ontheline.research.lm.tasks.records import Example, answer_of, check_disjoint, split

__all__ = [
    "ATTRIBUTES",
    "DOMAIN_WORDS",
    "QUESTIONS",
    "STATEMENTS",
    "WEB_WORDS",
    "Example",
    "FactWorld",
    "MarkovChain",
    "answer_of",
    "arithmetic",
    "check_disjoint",
    "digit_sums",
    "markov_chain",
    "markov_text",
    "split",
]
