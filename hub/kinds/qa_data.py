"""The ``qa`` kind's data (``hub.kinds.qa``): SQuAD examples read from files or
Hub rows and validated (``QAData``); the window geometry (``DEFAULT_MAX_LENGTH``,
``doc_stride_for``); and the training batch: each window's context mask, the
collator that pads windows, and the targets that carry the mask to the adaptor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import squad
from ..data import DataError, hub_splits, read_table

DOC_STRIDE = 128
DEFAULT_MAX_LENGTH = 384
MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


def doc_stride_for(max_length: int, doc_stride: int = DOC_STRIDE) -> int:
    """The window overlap used at ``max_length``: ``doc_stride`` (128), at most a
    third of the window (so that shorter windows still leave room for the context).

    >>> doc_stride_for(384), doc_stride_for(128)
    (128, 42)
    """
    return min(doc_stride, max_length // 3)

# ---------------------------------------------------------------- data


@dataclass
class QAData:
    """Flat SQuAD examples (see ``hub.squad``): ``train`` may be empty (evaluation)."""

    train: list[dict]
    eval: list[dict]
    source: dict = field(default_factory=dict)

    @property
    def eval_size(self) -> int:
        return len(self.eval)


def read_examples(path: str | Path) -> list[dict]:
    """Flat examples from a SQuAD JSON file, or from a table of Hub-style rows
    (``.jsonl``/``.parquet``: id, title, context, question, answers)."""
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".parquet"):
        return squad.squad_from_records(read_table(path), path.name)
    return squad.read_squad(path)


def check_source(source) -> None:
    """A QA data source: exactly one (``DataSource.check``) and no column names (SQuAD's fields are fixed)."""
    source.check()
    if source.text_column or source.label_column:
        raise DataError("question answering reads fixed SQuAD fields (question, context, answers); "
                        "--text-column/--label-column do not apply")


def _hub_examples(task, dataset: str, config: str | None, need_train: bool):
    """Train/eval examples of a Hub data set (``squad``, ``squad_v2``; needs network or the cache)."""
    ds, splits, config = hub_splits(task, dataset, config, need_train, "--data-dir or --train-file/--eval-file (SQuAD JSON)")
    train = squad.squad_from_records(ds[splits[0]], f"{dataset}/{splits[0]}") if need_train else []
    evals = squad.squad_from_records(ds[splits[1]], f"{dataset}/{splits[1]}")
    return train, evals, {"kind": "hub", "dataset": dataset, "config": config}


def _answerable(examples: list[dict]) -> int:
    return sum(1 for ex in examples if ex["answers"]["text"] and not ex.get("is_impossible", False))


# ---------------------------------------------------------------- encoding and batching


def _context_masks(windows: dict) -> list[list[int]]:
    """Per window: 1 on context tokens and on the CLS token (no answer), else 0."""
    masks = []
    for offsets, cls in zip(windows["offset_mapping"], windows["cls_index"]):
        mask = [int(o is not None) for o in offsets]
        mask[cls] = 1
        masks.append(mask)
    return masks


class QACollator:
    """Pads encoded windows into a batch: the tokenizer pads the model inputs,
    ``context_mask`` is padded with 0 on the tokenizer's padding side; other
    scalar columns (positions, ``idx``, ``length``) become (B,) tensors."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, features: list[dict]) -> dict:
        masks = [f["context_mask"] for f in features if "context_mask" in f]
        rest = [{k: v for k, v in f.items() if k != "context_mask"} for f in features]
        batch = dict(self.tokenizer.pad(rest, padding=True, return_tensors="pt"))
        if masks:
            if len(masks) != len(features):
                raise ValueError("some windows of the batch have a context_mask and some do not")
            seq_len = batch["input_ids"].shape[1]
            left = self.tokenizer.padding_side == "left"
            batch["context_mask"] = torch.tensor(
                [[0] * (seq_len - len(m)) + list(m) if left else list(m) + [0] * (seq_len - len(m)) for m in masks],
                dtype=torch.long)  # (B, L)
        return batch


class QATargets(dict):
    """``{"start_positions", "end_positions"}`` (what ``model(**inputs, **targets)``
    takes) plus, as an attribute, the ``context_mask`` (B, L) the adaptor needs."""

    def __init__(self, targets: dict, context_mask: torch.Tensor | None):
        super().__init__(targets)
        self.context_mask = context_mask
