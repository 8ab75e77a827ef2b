"""Any local Hugging Face causal-LM folder works with the lab: load, sample, score, train, save, interpolate."""

import pytest

torch = pytest.importorskip("torch", reason="the torch extra, which make test installs")
transformers = pytest.importorskip("transformers", reason="the hf extra, which make test installs")

from ontheline.research.lm import (  # noqa: E402
    CharTokenizer,
    arithmetic,
    completion_logprobs,
    interpolate_models,
    load,
    sample,
    samples_table,
    train,
)

TOK = CharTokenizer()


@pytest.fixture
def llama_folder(tmp_path):
    """A tiny Llama (another architecture than the lab's GPT-2: rotary positions, grouped-query attention)."""
    config = transformers.LlamaConfig(
        vocab_size=TOK.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=TOK.pad_id, bos_token_id=TOK.bos_id,
        eos_token_id=TOK.eos_id,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path / "llama")
    return tmp_path / "llama"


def test_a_local_hugging_face_folder_loads_samples_trains_and_saves(llama_folder, tmp_path):
    model = load(llama_folder)
    assert type(model).__name__ == "LlamaForCausalLM"
    problems = arithmetic(2, seed=0)
    out = sample(model, problems, n=2, max_new_tokens=8, seed=0)
    flat = [c for cs in out for c in cs]
    with torch.no_grad():
        logprobs, _ = completion_logprobs(model, [p for p in problems for _ in range(2)], flat)
    for i, c in enumerate(flat):
        torch.testing.assert_close(logprobs[i, : len(c.logprobs)], torch.tensor(c.logprobs), rtol=0, atol=2e-5)
    assert len(samples_table(problems, out)) == 4

    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train(
        model, arithmetic(16, seed=1), steps=2, batch_size=4, checkpoint_every=2, checkpoint_dir=tmp_path / "ckpt"
    )
    assert len(result.losses) == 2 and [p.name for p in result.checkpoints] == ["step-00000002"]
    trained = load(result.checkpoints[0])
    assert type(trained).__name__ == "LlamaForCausalLM"
    assert all(torch.equal(trained.state_dict()[k], v) for k, v in model.state_dict().items())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())

    original = load(llama_folder)
    assert all(torch.equal(interpolate_models(original, trained, 0.0).state_dict()[k], v) for k, v in before.items())
