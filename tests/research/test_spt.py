"""Specialized pretraining: the mixer's token accounting, the epoch count, held-out rows never trained on,
the paper's measures on hand-made curves, and the overfitting law on synthetic curves of known parameters."""

import numpy as np
import pytest

from ontheline.research.lm import CharTokenizer
from ontheline.research.spt import (
    PARAMS,
    Law,
    check_held_out,
    compute_multiplier,
    domain_rows_per_step,
    epochs,
    fit_correction,
    fit_law,
    forgetting,
    make_corpus,
    measured_onset,
    mixed_batches,
    optimal_delta,
    overfitting_onset,
    recommend_delta,
    relative_gain,
    row_hash,
)

TRUE = dict(zip(PARAMS, [1.0, -0.8, -0.2, 1.0, 0.2, 0.05, 1.0, 2.0, 1.0, -2.0, 4.0, -0.4]))
TRUTH = Law(TRUE, t_ref=1e6)
TOKENS = np.geomspace(1e5, 1e7, 12)
DELTAS = np.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5])


def _noisy(deltas, noise=0.001, seed=0):
    t, d = np.meshgrid(TOKENS, deltas)
    rng = np.random.default_rng(seed)
    return (TRUTH.train(t, d) * (1 + noise * rng.standard_normal(t.shape)),
            TRUTH.test(t, d) * (1 + noise * rng.standard_normal(t.shape)))  # fmt: skip


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(0, n_train=60, n_val=20, n_test=40, n_general=20)


@pytest.mark.parametrize("delta", [0.0, 0.02, 0.05, 0.1, 0.2, 0.37, 1.0])
def test_the_mixer_yields_a_domain_token_fraction_within_half_a_row_of_delta(corpus, delta):
    batch_size, steps = 16, 40
    batch = mixed_batches(corpus, delta, batch_size, seed=3)
    domain = {row_hash(r) for r in corpus.domain_train}
    counted = 0
    for step in range(steps):
        ids = batch(step)["input_ids"].numpy()
        assert ids.shape == (batch_size, corpus.length)
        counted += sum(row_hash(r) in domain for r in ids)  # the rows are counted by content, not trusted
        total_rows = (step + 1) * batch_size
        assert abs(counted - delta * total_rows) <= 0.5  # within half a row (one row = length tokens)
    per_step = domain_rows_per_step(delta, batch_size, steps)
    assert (
        counted == per_step.sum()
        and abs(per_step.sum() * corpus.length - delta * steps * batch_size * corpus.length) <= corpus.length
    )


def test_late_insertion_mixes_no_domain_before_its_start(corpus):
    per_step = domain_rows_per_step(0.25, 8, 10, start=6)
    assert per_step[:6].sum() == 0 and per_step[6:].sum() == 8
    batch = mixed_batches(corpus, 0.25, 8, seed=0, start=6)
    domain = {row_hash(r) for r in corpus.domain_train}
    assert not any(row_hash(r) in domain for s in range(6) for r in batch(s)["input_ids"].numpy())
    assert sum(row_hash(r) in domain for r in batch(7)["input_ids"].numpy()) == 2


def test_the_batches_are_a_function_of_seed_and_step(corpus):
    a, b = mixed_batches(corpus, 0.1, 8, seed=1), mixed_batches(corpus, 0.1, 8, seed=1)
    assert (a(5)["input_ids"] == b(5)["input_ids"]).all()
    assert not (a(5)["input_ids"] == mixed_batches(corpus, 0.1, 8, seed=2)(5)["input_ids"]).all()


def test_the_domain_rows_go_through_the_train_split_epoch_by_epoch(corpus):
    batch = mixed_batches(corpus, 0.5, 12, seed=0)  # 6 domain rows a step, 60 train rows: an epoch per 10 steps
    seen = [row_hash(r) for s in range(10) for r in batch.domain_rows(s)]
    assert len(seen) == 60 and len(set(seen)) == 60


def test_the_epoch_count_is_tokens_times_delta_over_the_domain_size():
    assert epochs(200e9, 0.05, 300e6) == pytest.approx(33.333, abs=1e-3)
    assert epochs(1600 * 32 * 32, 0.02, 300 * 32) == pytest.approx(1600 * 32 * 0.02 / 300)
    assert epochs(1e6, 0.0, 10) == 0.0


def test_epochs_rejects_a_percentage_for_delta():
    with pytest.raises(ValueError, match="delta must be a fraction in \\[0, 1\\]; got 5"):
        epochs(1e6, 5, 1000)


def test_held_out_domain_rows_are_never_trained_on(corpus):
    trained = {row_hash(r) for delta in (0.2, 1.0) for s in range(30)
               for r in mixed_batches(corpus, delta, 16, seed=0)(s)["input_ids"].numpy()}  # fmt: skip
    held = {row_hash(r) for r in np.concatenate([corpus.domain_val, corpus.domain_test])}
    assert not trained & held
    assert {row_hash(r) for r in corpus.domain_train} & trained  # the check would see a shared row
    with pytest.raises(ValueError, match="shares 1 rows"):
        check_held_out(corpus.domain_train, corpus.domain_val, corpus.domain_train[:1])


def test_the_corpus_is_text_the_lab_tokenizer_reads_one_token_per_character(corpus):
    tok = CharTokenizer()
    text = "".join(corpus.domain.decode(corpus.domain.sample(4, 32, np.random.default_rng(0))))
    assert len(tok.encode(text)) == len(text) and tok.decode(tok.encode(text)) == text
    assert corpus.domain_train.min() >= 3 and corpus.domain_train.max() < tok.vocab_size
    assert 0 < corpus.domain.entropy_rate() < corpus.general.entropy_rate() < np.log(64)


def test_relative_gain_is_the_percent_drop_from_npt():
    assert relative_gain(4.0, 3.9) == pytest.approx(2.5)
    assert relative_gain(2.0, 2.1) == pytest.approx(-5.0)
    with pytest.raises(ValueError, match="npt_loss must be positive"):
        relative_gain(0.0, 1.0)


def test_compute_multiplier_reads_the_tokens_off_the_curves_in_log_t():
    tokens = [1e3, 1e4, 1e5, 1e6]
    npt = [3.0, 2.5, 2.0, 1.5]
    shifted = [2.5, 2.0, 1.5, 1.0]  # SPT is NPT shifted by one decade: 10x fewer tokens
    assert compute_multiplier(tokens, npt, shifted)["multiplier"] == pytest.approx(10.0)
    half = [2.75, 2.25, 1.75, 1.25]  # half a decade
    r = compute_multiplier(tokens, npt, half)
    assert r["multiplier"] == pytest.approx(10**0.5) and not r["lower_bound"]
    assert compute_multiplier(tokens, npt, npt)["multiplier"] == pytest.approx(1.0)
    assert compute_multiplier(tokens, npt, [1.0] * 4)["lower_bound"]
    assert np.isnan(compute_multiplier(tokens, npt, [4.0] * 4)["multiplier"])
    # NPT does not improve with T: it reaches its own final loss at the first budget, and so does
    # SPT, so no multiplier can be read off these budgets
    flat = compute_multiplier(tokens, [3.0, 3.0, 3.0, 3.0], [2.9, 2.8, 2.7, 2.6])
    assert flat["npt_tokens"] == 1e3 and np.isnan(flat["multiplier"]) and not flat["lower_bound"]
    # NPT's loss rises with T: it is at its final loss from the first budget; SPT gets there two thirds
    # of the way from 1e4 to 1e5 in log T, so it needs more tokens, not fewer
    rising = compute_multiplier(tokens, [2.8, 2.9, 3.0, 3.1], [3.5, 3.2, 3.05, 3.0])
    assert rising["npt_tokens"] == 1e3 and rising["multiplier"] == pytest.approx(10 ** (3 - 4 - 2 / 3))
    assert rising["upper_bound"] and not rising["lower_bound"]  # NPT may need fewer than its first budget
    explicit = compute_multiplier(tokens, npt, half, target=2.0)
    assert explicit["npt_tokens"] == pytest.approx(1e5) and explicit["multiplier"] == pytest.approx(10**0.5)


def test_compute_multiplier_names_a_curve_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"spt_loss must be shape \(3,\).*got shape \(2,\)"):
        compute_multiplier([1, 2, 3], [3, 2, 1], [3, 2])


def test_forgetting_is_the_rise_of_the_general_loss():
    assert forgetting(2.0, 2.5) == pytest.approx(0.5)
    assert forgetting([2.0, 2.0], [1.9, 2.2]).round(6).tolist() == [-0.1, 0.2]


@pytest.mark.parametrize("seed", [0, 1])
def test_the_law_recovers_known_parameters_from_noisy_curves(seed):
    train, test = _noisy(DELTAS, seed=seed)
    law = fit_law(TOKENS, DELTAS, train, test, t_ref=1e6)
    for name, value in TRUE.items():
        assert law.params[name] == pytest.approx(value, rel=0.10), name
    assert law.r2 > 0.99 and law.r2_test > 0.99
    assert overfitting_onset(law, 0.2) == pytest.approx(overfitting_onset(TRUTH, 0.2), rel=0.10)


def test_the_law_is_u_shaped_when_the_gap_exponent_is_positive():
    delta = 0.2
    b_gap = delta * TRUE["b_gap_s"] + (1 - delta) * TRUE["b_gap_g"]
    assert b_gap > 0
    t = np.geomspace(1e4, 1e9, 400)
    loss = TRUTH.test(t, delta)
    i = int(np.argmin(loss))
    assert 0 < i < len(t) - 1  # falls, then rises
    assert t[i] == pytest.approx(overfitting_onset(TRUTH, delta), rel=0.05)
    assert np.isinf(overfitting_onset(TRUTH, 0.05))  # b_gap < 0 there: no onset
    assert np.all(np.diff(TRUTH.test(t, 0.05)) < 0)


def test_the_law_fitted_on_small_deltas_extrapolates_to_twenty_percent():
    small = DELTAS[DELTAS <= 0.1]
    train, test = _noisy(small)
    law = fit_law(TOKENS, small, train, test, t_ref=1e6)
    truth = TRUTH.test(TOKENS, 0.2)
    assert np.max(np.abs(law.test(TOKENS, 0.2) - truth) / truth) < 0.05


def test_fit_law_refuses_delta_zero_and_says_why():
    train, test = _noisy(np.array([0.0, 0.05, 0.1]))
    with pytest.raises(ValueError, match="deltas must be .* in \\(0, 1\\].*drop delta = 0"):
        fit_law(TOKENS, [0.0, 0.05, 0.1], train, test)
    with pytest.raises(ValueError, match=r"train_loss must have shape \(n_deltas, n_budgets\) = \(3, 12\)"):
        fit_law(TOKENS, [0.02, 0.05, 0.1], train.T, test)


def test_the_law_s_functions_name_a_bad_argument():
    with pytest.raises(ValueError, match="t_ref must be a finite positive number"):
        fit_law(TOKENS, DELTAS[:3], *_noisy(DELTAS[:3]), t_ref=0.0)
    with pytest.raises(ValueError, match="delta must be one fraction"):
        overfitting_onset(TRUTH, 1.5)
    with pytest.raises(ValueError, match="delta must be one fraction"):
        overfitting_onset(TRUTH, np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="tokens must be positive and drop finite"):
        fit_correction([1e5, 1e6], [0.1, np.nan])
    with pytest.raises(ValueError, match=r"budget \(tokens\) must be a finite positive number; got '1e7'"):
        recommend_delta(TOKENS, DELTAS[:3], *_noisy(DELTAS[:3]), budget="1e7")


def test_the_measured_onset_is_the_minimum_of_the_curve_refined_in_log_t():
    t = np.geomspace(1e4, 1e9, 30)
    assert measured_onset(t, TRUTH.test(t, 0.2)) == pytest.approx(overfitting_onset(TRUTH, 0.2), rel=0.05)
    assert measured_onset(t, TRUTH.test(t, 0.05)) is None


def test_recommend_delta_finds_the_law_s_optimum_and_it_shrinks_with_the_budget():
    train, test = _noisy(DELTAS)
    small, large = recommend_delta(TOKENS, DELTAS, train, test, 3e5), recommend_delta(TOKENS, DELTAS, train, test, 1e7)
    assert small.delta == pytest.approx(optimal_delta(TRUTH, 3e5)[0], abs=0.011)
    assert large.delta == pytest.approx(optimal_delta(TRUTH, 1e7)[0], abs=0.011)
    assert large.delta < small.delta
    assert large.curve.shape == large.grid.shape and large.predicted_loss == pytest.approx(large.curve.min())


def test_recommend_delta_with_finetuned_losses_subtracts_the_finetuning_drop():
    train, test = _noisy(DELTAS)
    post = test - 0.1  # a constant drop changes the loss, not the argmin
    rec = recommend_delta(TOKENS, DELTAS, train, test, 1e7, post_ft_loss=post)
    plain = recommend_delta(TOKENS, DELTAS, train, test, 1e7)
    assert rec.delta == pytest.approx(plain.delta) and rec.predicted_loss == pytest.approx(
        plain.predicted_loss - 0.1, abs=1e-3
    )
    with pytest.raises(ValueError, match=r"budget \(tokens\) must be a finite positive number"):
        recommend_delta(TOKENS, DELTAS, train, test, 0)
