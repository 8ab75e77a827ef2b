"""The lab's character tokenizer: exact round trips, a clear refusal of foreign characters, padding for generation."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ontheline.research.lm import ALPHABET, BOS_ID, EOS_ID, PAD_ID, CharTokenizer, pad

TOK = CharTokenizer()


@given(st.text(alphabet=ALPHABET, max_size=200))
def test_every_string_over_the_alphabet_round_trips_exactly(text):
    ids = TOK.encode(text)
    assert len(ids) == len(text)
    assert all(3 <= i < TOK.vocab_size for i in ids)
    assert TOK.decode(ids) == text
    assert TOK.decode(TOK.encode(text, bos=True, eos=True)) == text


@given(st.lists(st.text(alphabet=ALPHABET, max_size=30), min_size=1, max_size=6))
def test_a_left_padded_batch_decodes_back_to_its_texts(texts):
    batch = TOK.encode_batch(texts)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape == mask.shape == (len(texts), 1 + max(len(t) for t in texts))
    assert (mask[:, -1] == 1).all()  # every prompt ends in the last column, ready for generation
    assert [TOK.decode(row) for row in ids] == texts
    assert ((ids == PAD_ID) == (mask == 0)).all()


def test_characters_outside_the_alphabet_are_refused_by_name():
    with pytest.raises(
        ValueError, match=r"2 characters outside the tokenizer's alphabet: 'é' \(U\+00E9\), '÷' \(U\+00F7\)"
    ):
        TOK.encode("café ÷ 2")
    with pytest.raises(ValueError, match="outside the tokenizer's alphabet: '\\\\t'"):
        TOK.encode("a\tb")


def test_the_special_tokens_are_the_ids_the_model_is_built_for():
    assert (TOK.pad_id, TOK.bos_id, TOK.eos_id) == (PAD_ID, BOS_ID, EOS_ID) == (0, 1, 2)
    assert TOK.vocab_size == 3 + len(ALPHABET) == 99
    assert TOK.decode([PAD_ID, BOS_ID, EOS_ID]) == ""
    assert {"\n", " ", "0", "9", "+", "-", "*", "=", "a", "Z", "."} <= set(ALPHABET)


def test_ids_outside_the_vocabulary_are_refused():
    with pytest.raises(ValueError, match="Token id 99 is outside the vocabulary"):
        TOK.decode([5, 99])


def test_right_padding_is_for_training_rows():
    ids, mask = pad([[7, 8], [9]], side="right")
    assert ids.tolist() == [[7, 8], [9, 0]] and mask.tolist() == [[1, 1], [1, 0]]
    torch = pytest.importorskip("torch", reason="the torch extra, which make test installs")
    batch = TOK.encode_batch(["ab", "c"], side="right", eos=True, tensors="pt")
    assert isinstance(batch["input_ids"], torch.Tensor) and batch["input_ids"].dtype == torch.int64
    assert np.array_equal(batch["input_ids"].numpy()[1], [BOS_ID, TOK.encode("c")[0], EOS_ID, PAD_ID])
