"""The ``generation`` kind's data (``hub.kinds.generation``): ``TextData``, the
train and eval documents packed lazily into blocks per tokenizer and block size;
the collator that batches blocks with their labels; and the eval text as one
token stream, cut into the batch-1 slices the benchmark times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..data import DataError
from ..models import tokenizer_fingerprint
from ..textdata import Packed, pack_blocks


@dataclass
class TextData:
    """Documents of the train and eval text, tokenized lazily per tokenizer and block size.

    ``max_train``/``max_eval``: blocks to keep (None: all). ``reference_vocab``:
    the vocabulary size every evaluated model must have (the benchmark's first
    model), None when not known. ``source`` is recorded in run cards; packing adds
    ``train_size``/``eval_size`` (blocks), ``block_size`` and token counts to it.
    """

    train_texts: list[str]
    eval_texts: list[str]
    max_train: int | None = None
    max_eval: int | None = None
    source: dict = field(default_factory=dict)
    reference_vocab: int | None = None
    _packed: dict = field(default_factory=dict, repr=False)

    @property
    def eval_size(self) -> int | None:
        """Not known before a tokenizer packs the eval text (``evaluate`` reports
        the tokens it scored as ``eval_size``)."""
        return None

    def packed(self, split: str, tokenizer, block_size: int) -> Packed:
        """The ``split`` ("train" or "eval") packed into blocks of ``block_size``
        tokens with ``tokenizer`` (computed once per tokenizer and size)."""
        texts, limit = (self.train_texts, self.max_train) if split == "train" else (self.eval_texts, self.max_eval)
        if not texts:
            raise DataError(f"no {split} text")
        key = (split, tokenizer_fingerprint(tokenizer), block_size)
        if key not in self._packed:
            try:
                packed = pack_blocks(tokenizer, texts, block_size, max_blocks=limit)
            except DataError as exc:
                raise DataError(f"{split} text: {exc}") from None
            self._packed[key] = packed
            self.source.update({f"{split}_size": len(packed.blocks), f"{split}_tokens": packed.n_block_tokens,
                                "block_size": block_size})
        return self._packed[key]


class LMCollator:
    """Stacks blocks into a batch, right-padding shorter ones (packed blocks are all
    full, but any encoding of ``input_ids`` works): ``input_ids``/``attention_mask``
    (B, L), ``labels`` (B, L) = ``input_ids`` with -100 on padding, and (B,)
    tensors of the scalar columns (``idx``, ``length``)."""

    def __init__(self, tokenizer):
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad) if pad is not None else 0  # masked everywhere it appears

    def __call__(self, features: list[dict]) -> dict:
        longest = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(features), longest), dtype=torch.long)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            ids[row, :n] = torch.as_tensor(f["input_ids"], dtype=torch.long)
            mask[row, :n] = torch.as_tensor(f["attention_mask"], dtype=torch.long) if "attention_mask" in f else 1
        batch = {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}
        for key in ("idx", "length"):
            if key in features[0]:
                batch[key] = torch.tensor([int(f[key]) for f in features], dtype=torch.long)
        return batch


def _stream(tokenizer, data: TextData, max_length: int) -> torch.Tensor:
    """The eval text as one 1-D token stream: its packed blocks, joined back."""
    return _joined(data.packed("eval", tokenizer, max_length))


def _joined(packed: Packed) -> torch.Tensor:
    return torch.tensor([i for block in packed.blocks for i in block], dtype=torch.long)


def _slices(stream: torch.Tensor, length: int, count: int) -> list[dict]:
    """Up to ``count`` consecutive batch-1 encodings of ``length`` tokens from ``stream``."""
    n = max(1, min(count, stream.numel() // length))
    out = []
    for k in range(n):
        ids = stream[k * length : (k + 1) * length]
        if ids.numel() < length:  # a stream shorter than one slice: repeat it
            ids = ids.repeat(math.ceil(length / max(ids.numel(), 1)))[:length]
        ids = ids.unsqueeze(0)  # (1, length)
        out.append({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    return out


def _example_stream(tokenizer, task) -> torch.Tensor:
    """Token ids of the task's example prompts (timing without data)."""
    texts = [t for t in task.examples if isinstance(t, str)] or ["Once upon a time"]
    ids = [i for t in texts for i in tokenizer(t, add_special_tokens=False)["input_ids"]]
    if not ids:
        raise ValueError("the example prompts have no tokens")
    return torch.tensor(ids, dtype=torch.long)
