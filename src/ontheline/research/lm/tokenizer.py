"""A character tokenizer over a fixed alphabet, with pad, bos and eos tokens.

Ids 0, 1 and 2 are the special tokens ``<pad>``, ``<bos>`` and ``<eos>``; the characters of
:data:`ALPHABET` follow in order (``'0'`` is id 3). Every string over the alphabet round-trips
exactly (``decode(encode(s)) == s``); any other character is refused with a ValueError that
names it. The ids are what :func:`ontheline.research.lm.tiny_gpt` builds its model for
(``vocab_size``, ``pad_token_id``, ``bos_token_id``, ``eos_token_id``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

#: The characters the tokenizer knows, in id order after the three special tokens: digits,
#: operators, lower- and upper-case ASCII letters, punctuation, space and newline (96 characters).
ALPHABET = "0123456789+-*/=%<>()[]{}^|&~#@$abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,:;?!'\"_`\\ \n"

#: The padding token's id (left padding for generation, right padding for training).
PAD_ID = 0
#: The beginning-of-sequence token's id (put before every prompt and document).
BOS_ID = 1
#: The end-of-sequence token's id (ends every training sequence; stops sampling).
EOS_ID = 2

_SPECIALS = ("<pad>", "<bos>", "<eos>")


class CharTokenizer:
    """One id per character of a fixed alphabet, after the special tokens pad (0), bos (1) and eos (2).

    Parameters
    ----------
    alphabet : str
        The characters, each once; :data:`ALPHABET` by default.

    Attributes
    ----------
    vocab_size : int
        ``3 + len(alphabet)``: what the model's embedding needs.
    pad_id, bos_id, eos_id : int
        0, 1 and 2.

    Examples
    --------
    >>> tok = CharTokenizer()
    >>> ids = tok.encode("7*8=56")
    >>> ids
    [10, 15, 11, 17, 8, 9]
    >>> tok.decode(ids), tok.vocab_size
    ('7*8=56', 99)
    >>> tok.decode([tok.bos_id, *ids, tok.eos_id])  # special tokens are dropped
    '7*8=56'
    >>> tok.encode("7×8")
    Traceback (most recent call last):
    ...
    ValueError: The text has 1 character outside the tokenizer's alphabet: '×' (U+00D7); the alphabet is digits, ASCII letters, space, newline and +-*/=%<>()[]{}^|&~#@$.,:;?!'"_`\\.
    """

    pad_id: int = PAD_ID
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID

    def __init__(self, alphabet: str = ALPHABET) -> None:
        if len(set(alphabet)) != len(alphabet) or not alphabet:
            repeated = sorted({c for c in alphabet if alphabet.count(c) > 1})
            raise ValueError(f"The alphabet must be non-empty with each character once; repeated: {repeated!r}.")
        self.alphabet = alphabet
        self._ids = {c: i + len(_SPECIALS) for i, c in enumerate(alphabet)}
        self._chars = np.array(list(_SPECIALS) + list(alphabet), dtype=object)
        self._chars[: len(_SPECIALS)] = ""

    @property
    def vocab_size(self) -> int:
        return len(_SPECIALS) + len(self.alphabet)

    def __repr__(self) -> str:
        return "CharTokenizer()" if self.alphabet == ALPHABET else f"CharTokenizer({self.alphabet!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and other.alphabet == self.alphabet

    def __hash__(self) -> int:
        return hash(self.alphabet)

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """The ids of ``text``'s characters, optionally after ``<bos>`` and before ``<eos>``.

        Examples
        --------
        >>> CharTokenizer().encode("1+1", bos=True, eos=True)
        [1, 4, 13, 4, 2]
        """
        try:
            ids = [self._ids[c] for c in text]
        except KeyError:
            raise self._foreign(text) from None
        return [self.bos_id] * bos + ids + [self.eos_id] * eos

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``; the special tokens (pad, bos, eos) decode to nothing.

        Examples
        --------
        >>> CharTokenizer().decode([0, 1, 4, 13, 4, 2])
        '1+1'
        """
        idx = np.fromiter((int(i) for i in ids), dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.vocab_size):
            bad = int(idx[(idx < 0) | (idx >= self.vocab_size)][0])
            raise ValueError(f"Token id {bad} is outside the vocabulary (0 to {self.vocab_size - 1}).")
        return "".join(self._chars[idx])

    def piece(self, token_id: int) -> str:
        """The text of one token ('' for a special token).

        Examples
        --------
        >>> tok = CharTokenizer()
        >>> tok.piece(3), tok.piece(tok.eos_id)
        ('0', '')
        """
        return str(self._chars[int(token_id)])

    def encode_batch(
        self, texts: Sequence[str], *, bos: bool = True, eos: bool = False, side: str = "left", tensors: str = "np"
    ) -> dict[str, Any]:
        """Encode and pad several texts to one length: ``{"input_ids", "attention_mask"}``.

        Parameters
        ----------
        texts : sequence of str
        bos, eos : bool
            Put ``<bos>`` before (default) and ``<eos>`` after each text.
        side : {"left", "right"}
            Where the padding goes: left for generation (every prompt ends at the last column),
            right for training.
        tensors : {"np", "pt"}
            int64 numpy arrays or torch tensors.

        Examples
        --------
        >>> batch = CharTokenizer().encode_batch(["1+1=", "7="])
        >>> batch["input_ids"].tolist()
        [[1, 4, 13, 4, 17], [0, 0, 1, 10, 17]]
        >>> batch["attention_mask"].tolist()
        [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]
        """
        if side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right'; got {side!r}.")
        if tensors not in ("np", "pt"):
            raise ValueError(f"tensors must be 'np' or 'pt'; got {tensors!r}.")
        if isinstance(texts, str):
            raise ValueError("encode_batch takes a sequence of texts; for one text, pass [text] or use encode.")
        rows = [self.encode(t, bos=bos, eos=eos) for t in texts]
        ids, mask = pad(rows, self.pad_id, side=side)
        if tensors == "pt":
            import torch

            return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        return {"input_ids": ids, "attention_mask": mask}

    def _foreign(self, text: str) -> ValueError:
        foreign = sorted({c for c in text if c not in self._ids})
        shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in foreign[:10]) + (", ..." if len(foreign) > 10 else "")
        plural = "character" if len(foreign) == 1 else "characters"
        return ValueError(
            f"The text has {len(foreign)} {plural} outside the tokenizer's alphabet: {shown}; "
            f"the alphabet is {_describe(self.alphabet)}."
        )


def pad(rows: Sequence[Sequence[int]], pad_id: int = PAD_ID, *, side: str = "left") -> tuple[np.ndarray, np.ndarray]:
    """Pad id lists to one length: ``(ids, mask)``, int64 arrays of shape ``(len(rows), longest)``.

    Examples
    --------
    >>> ids, mask = pad([[5, 6, 7], [8]], side="right")
    >>> ids.tolist(), mask.tolist()
    ([[5, 6, 7], [8, 0, 0]], [[1, 1, 1], [1, 0, 0]])
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right'; got {side!r}.")
    width = max((len(r) for r in rows), default=0)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        if not row:
            continue
        cols = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        ids[i, cols] = row
        mask[i, cols] = 1
    return ids, mask


def _describe(alphabet: str) -> str:
    if alphabet != ALPHABET:
        return repr(alphabet)
    rest = "".join(c for c in alphabet if not (c.isascii() and c.isalnum()) and c not in " \n")
    return f"digits, ASCII letters, space, newline and {rest}"


__all__ = ["ALPHABET", "BOS_ID", "EOS_ID", "PAD_ID", "CharTokenizer", "pad"]
