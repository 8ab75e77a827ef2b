"""Training: the loss falls, SFT trains on completions only, the schedules are as documented, and a
resumed run ends with exactly the weights of an uninterrupted one."""

import json
import math

import pytest

torch = pytest.importorskip("torch", reason="the torch extra, which make test installs")
pytest.importorskip("transformers", reason="the hf extra, which make test installs")

from ontheline.research.lm import (  # noqa: E402
    CharTokenizer,
    arithmetic,
    load,
    lr_factor,
    markov_text,
    mean_loss,
    tiny_gpt,
    train,
)

TOK = CharTokenizer()
DATA = arithmetic(200, seed=0)


def _model(seed=0):
    return tiny_gpt(TOK.vocab_size, n_layer=2, n_embd=32, n_positions=64, seed=seed)


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


class _Stop(Exception):
    pass


def test_a_two_layer_model_learns_arithmetic_in_fifty_steps():
    model = _model()
    before = mean_loss(model, DATA[:50])
    result = train(model, DATA, steps=50, lr=3e-3, warmup=5, batch_size=16, seed=0)
    assert len(result.losses) == len(result.grad_norms) == 50 and result.resumed_from == 0
    assert sum(result.losses[-5:]) / 5 < 0.7 * sum(result.losses[:5]) / 5
    assert mean_loss(model, DATA[:50]) < 0.7 * before
    assert result.tokens > 0 and result.steps_per_second > 0
    assert not model.training  # the mode it came in


def test_pretraining_on_documents_trains_on_every_token_of_fixed_length_rows():
    model = _model()
    docs = markov_text("domain", 40, seed=0)
    result = train(model, docs, steps=10, lr=3e-3, batch_size=8, context=32)
    assert 10 * 8 * 32 - 32 <= result.tokens <= 10 * 8 * 32  # rows of 32 tokens (the last one may be short)
    assert result.losses[-1] < result.losses[0]
    with pytest.raises(ValueError, match="Documents have no completion"):
        train(model, docs, steps=1, loss_on="completion")


def test_the_sft_loss_is_taken_on_the_completion_and_eos_only():
    model = _model(seed=2)
    ex = DATA[0]
    ids = torch.tensor([[TOK.bos_id, *TOK.encode(ex.prompt), *TOK.encode(ex.completion), TOK.eos_id]])
    with torch.no_grad():
        logp = model(input_ids=ids).logits.log_softmax(-1)[0]
    token_logp = logp[:-1].gather(-1, ids[0, 1:, None])[:, 0]  # log p(token t | tokens before t)
    start = len(TOK.encode(ex.prompt))  # predictions of the completion's tokens start here
    assert mean_loss(model, [ex]) == pytest.approx(-token_logp[start:].mean().item(), abs=1e-5)
    assert mean_loss(model, [ex], loss_on="all") == pytest.approx(-token_logp.mean().item(), abs=1e-5)


def test_the_learning_rate_warms_up_then_decays_as_documented():
    assert [lr_factor(s, 10, 4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, 10, 4, "cosine") == 1.0 and lr_factor(8, 10, 4, "cosine") == pytest.approx(0.25)
    assert lr_factor(7, 10, 4, "linear") == pytest.approx(0.5)
    assert lr_factor(9, 10, 4, "constant") == 1.0
    assert lr_factor(9, 10, 0, "cosine", min_lr_ratio=0.1) == pytest.approx(
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.9))
    )
    assert [lr_factor(s, 10, 0, "wsd", decay=0.2) for s in (7, 8, 9)] == [1.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="schedule must be one of"):
        lr_factor(0, 10, 0, "step")


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    settings = dict(steps=6, lr=3e-3, warmup=2, batch_size=8, seed=1, checkpoint_every=2)
    whole = _model()
    full = train(whole, DATA[:40], checkpoint_dir=tmp_path / "whole", **settings)
    assert [p.name for p in full.checkpoints] == ["step-00000002", "step-00000004", "step-00000006"]

    def interrupt(message, done, total):
        if done == 3:
            raise _Stop

    with pytest.raises(_Stop):
        train(_model(), DATA[:40], checkpoint_dir=tmp_path / "cut", progress=interrupt, **settings)
    assert [p.name for p in (tmp_path / "cut").iterdir()] == ["step-00000002"]  # complete checkpoints only
    resumed_model = _model(seed=9)  # other initial weights: the checkpoint's must replace them
    resumed = train(resumed_model, DATA[:40], checkpoint_dir=tmp_path / "cut", **settings)
    assert resumed.resumed_from == 2
    assert _same(resumed_model, whole)
    assert resumed.losses == full.losses and resumed.grad_norms == full.grad_norms
    a = torch.load(tmp_path / "whole/step-00000006/trainer.pt", weights_only=True)["optimizer"]["state"]
    b = torch.load(tmp_path / "cut/step-00000006/trainer.pt", weights_only=True)["optimizer"]["state"]
    assert all(torch.equal(a[i]["exp_avg_sq"], b[i]["exp_avg_sq"]) for i in a)
    assert _same(load(full.checkpoints[-1]), whole)  # every checkpoint is a Hugging Face model folder
    state = json.loads((full.checkpoints[0] / "trainer.json").read_text())
    assert state["step"] == 2 and state["losses"] == full.losses[:2]


def test_resuming_with_other_settings_is_refused(tmp_path):
    train(_model(), DATA[:20], steps=2, batch_size=4, checkpoint_every=1, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"other settings \(lr: 0.001 then, 0.002 now\)"):
        train(_model(), DATA[:20], steps=2, lr=2e-3, batch_size=4, checkpoint_every=1, checkpoint_dir=tmp_path)
    fresh = train(_model(), DATA[:20], steps=2, lr=2e-3, batch_size=4, checkpoint_dir=tmp_path, resume=False)
    assert fresh.resumed_from == 0  # and, without checkpoint_every, it wrote its last step only (over the old one)
    assert [p.name for p in fresh.checkpoints] == ["step-00000001", "step-00000002"]
    assert json.loads((tmp_path / "step-00000002/trainer.json").read_text())["settings"]["lr"] == 2e-3


def test_training_uses_one_thread_by_default_and_restores_the_setting():
    before = torch.get_num_threads()
    seen = []
    train(_model(), DATA[:8], steps=1, batch_size=4, progress=lambda *a: seen.append(torch.get_num_threads()))
    assert seen == [1] and torch.get_num_threads() == before


def test_stop_ends_the_run_after_the_first_step_it_returns_true_with_that_step_s_weights():
    import copy

    asked, seen = [], []
    stopped = _model()
    result = train(stopped, DATA[:8], steps=10, batch_size=4, progress=lambda m, d, t: seen.append(d),
                   stop=lambda done: asked.append(done) or done == 3)  # fmt: skip
    assert len(result.losses) == 3 and asked == seen == [1, 2, 3]
    full, at_three = _model(), {}
    train(full, DATA[:8], steps=10, batch_size=4,
          progress=lambda m, d, t: at_three.update(copy.deepcopy(full.state_dict())) if d == 3 else None)  # fmt: skip
    reference = _model()
    reference.load_state_dict(at_three)
    assert _same(stopped, reference) and not _same(stopped, full)


def test_an_early_stop_checkpoints_the_step_it_stopped_at(tmp_path):
    result = train(_model(), DATA[:8], steps=10, batch_size=4, checkpoint_every=4, checkpoint_dir=tmp_path,
                   stop=lambda done: done == 6)  # fmt: skip
    assert [p.name for p in result.checkpoints] == ["step-00000004", "step-00000006"]


def test_a_batch_function_can_feed_the_loop_directly():
    ids = torch.tensor([[TOK.bos_id, *TOK.encode("abcabcabc"), TOK.eos_id]] * 4)

    def batch(step):
        return {"input_ids": ids, "labels": ids}

    result = train(_model(), batch, steps=15, lr=5e-3)
    assert result.losses[-1] < 0.5 * result.losses[0]


def test_examples_longer_than_the_context_are_refused():
    with pytest.raises(ValueError, match="more than the context of 16"):
        train(_model(), DATA[:4], steps=1, context=16)
