"""Tiny GPTs built from a config, saved and loaded through safetensors, and interpolated (WiSE-FT) exactly."""

import pytest

torch = pytest.importorskip("torch", reason="the torch extra, which make test installs")
pytest.importorskip("transformers", reason="the hf extra, which make test installs")

from ontheline.research.lm import CharTokenizer, interpolate_models, load, save, tiny_gpt  # noqa: E402

VOCAB = CharTokenizer().vocab_size


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_tiny_gpt_is_built_from_a_config_like_gpt2_without_dropout():
    model = tiny_gpt(VOCAB, n_layer=2, n_embd=32, n_head=4, n_positions=64, seed=0)
    config = model.config
    assert type(model).__name__ == "GPT2LMHeadModel" and not model.training
    assert (config.n_layer, config.n_embd, config.n_head, config.n_positions, config.vocab_size) == (
        2,
        32,
        4,
        64,
        VOCAB,
    )
    assert config.resid_pdrop == config.embd_pdrop == config.attn_pdrop == 0.0
    assert config.tie_word_embeddings and model.lm_head.weight is model.transformer.wte.weight
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (0, 1, 2)
    assert model.generation_config.eos_token_id == 2 and model.generation_config.pad_token_id == 0


def test_the_seed_alone_decides_the_initial_weights_and_the_global_rng_is_untouched():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b, c = (tiny_gpt(VOCAB, n_layer=1, n_embd=16, seed=s) for s in (0, 0, 1))
    assert torch.equal(torch.get_rng_state(), before)
    assert _same(a, b) and not _same(a, c)
    with pytest.raises(ValueError, match="multiple of n_head"):
        tiny_gpt(VOCAB, n_embd=30, n_head=4)


def test_save_then_load_gives_the_same_weights_through_safetensors(tmp_path):
    model = tiny_gpt(VOCAB, n_layer=2, n_embd=32, seed=3)
    folder = save(model, tmp_path / "model")
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    again = load(folder)
    assert _same(model, again) and not again.training
    assert again.lm_head.weight is again.transformer.wte.weight  # still tied after loading
    save(tiny_gpt(VOCAB, n_layer=2, n_embd=32, seed=4), folder)  # replacing a saved model
    assert not _same(model, load(folder))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folder left behind


def test_loading_a_folder_that_is_not_a_model_says_so(tmp_path):
    with pytest.raises(ValueError, match="not a Hugging Face model folder"):
        load(tmp_path)


def test_interpolation_is_exact_at_the_endpoints_and_the_mean_halfway():
    a, b = tiny_gpt(VOCAB, n_layer=2, n_embd=32, seed=0), tiny_gpt(VOCAB, n_layer=2, n_embd=32, seed=1)
    a_state = {k: v.clone() for k, v in a.state_dict().items()}
    assert _same(interpolate_models(a, b, 0.0), a)
    assert _same(interpolate_models(a, b, 1.0), b)
    half = interpolate_models(a, b, 0.5).state_dict()
    floats = [k for k, v in a.state_dict().items() if v.is_floating_point()]
    assert floats
    for key in floats:
        torch.testing.assert_close(half[key], (a.state_dict()[key] + b.state_dict()[key]) / 2, rtol=0, atol=1e-7)
    assert all(torch.equal(a.state_dict()[k], a_state[k]) for k in a_state)  # the inputs are untouched
    wise = interpolate_models(a, b, 0.5)
    assert wise.lm_head.weight is wise.transformer.wte.weight
    with pytest.raises(ValueError, match="alpha must be a number in"):
        interpolate_models(a, b, 1.5)
    with pytest.raises(ValueError, match="has shape"):
        interpolate_models(a, tiny_gpt(VOCAB, n_layer=2, n_embd=64), 0.5)
