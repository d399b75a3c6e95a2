"""Teacher-output caching (torchdistill-style): when a distillation stage needs
only the teacher's logits, they are computed once over the training set, longest
batches first, and looked up by example index in every epoch.

* :class:`LogitCache` keeps all of them (per-example logits, or QA's per-token
  start/end scores trimmed to each example's length);
* :class:`TopKLogitCache` keeps the teacher's k largest logits per token, for the
  kinds whose per-token vocabulary is too big to keep (generation, MLM);
* :func:`stage_cache` decides which a stage gets, or none (the teacher then runs
  in every training step).
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from . import losses
from .config import DistillConfig

ProgressHook = Callable[[dict], None]


class LogitCache:
    """Teacher logits of every training example, looked up by ``idx``
    (torchdistill-style: computed once, reused every epoch).

    Per-example logits (C,) are stacked as they are; token-level logits (the
    kind's ``token_level``: QA's (L,) start/end scores, an LM's (L, V)) are
    stored trimmed to the example's length and padded back to the batch's length
    on lookup (padding positions are masked by the kind's adaptor)."""

    def __init__(self, token_level: bool):
        self.token_level = token_level
        self.rows: dict[int, tuple] = {}

    def put(self, idx: list[int], logits: list[torch.Tensor], lengths: list[int]) -> None:
        for row, i in enumerate(idx):
            self.rows[i] = tuple((x[row, : lengths[row]] if self.token_level else x[row]).float().cpu().clone()
                                 for x in logits)

    def get(self, idx: list[int], seq_len: int, device) -> list[torch.Tensor]:
        out = []
        for head in range(len(self.rows[idx[0]])):
            rows = [self.rows[i][head] for i in idx]
            if self.token_level:
                batch = rows[0].new_zeros((len(rows), seq_len, *rows[0].shape[1:]))  # (B, L, ...)
                for k, r in enumerate(rows):
                    batch[k, : r.shape[0]] = r
            else:
                batch = torch.stack(rows)  # (B, C)
            out.append(batch.to(device))
        return out


class TopKLogitCache:
    """The teacher's k largest logits at every token of every training example,
    looked up by ``idx``: fp16 values and int32 indices (a vocabulary of 49,152
    needs more than int16), (length, k) each, trimmed to the example's length.
    ``nbytes`` is what the rows hold: tokens x k x 6 bytes."""

    def __init__(self, k: int):
        self.k = k
        self.rows: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def put(self, idx: list[int], values: torch.Tensor, indices: torch.Tensor, lengths: list[int]) -> None:
        """values, indices (B, L, k) from :func:`hub.losses.topk_logits`."""
        for row, i in enumerate(idx):
            n = lengths[row]
            self.rows[i] = (values[row, :n].to(torch.float16).cpu().clone(),
                            indices[row, :n].to(torch.int32).cpu().clone())

    def get(self, idx: list[int], seq_len: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(values (B, L, k) float32, indices (B, L, k) int64), zero on padding
        positions (which the kind's mask leaves out)."""
        values = torch.zeros((len(idx), seq_len, self.k), dtype=torch.float32)
        indices = torch.zeros((len(idx), seq_len, self.k), dtype=torch.long)
        for row, i in enumerate(idx):
            v, ix = self.rows[i]
            values[row, : v.shape[0]] = v.float()
            indices[row, : ix.shape[0]] = ix.long()
        return values.to(device), indices.to(device)

    @property
    def tokens(self) -> int:
        return sum(v.shape[0] for v, _ in self.rows.values())

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes + ix.nbytes for v, ix in self.rows.values())


def _raw_logits(outputs) -> list[torch.Tensor]:
    """The logits tensors of a model output, before any kind-specific masking."""
    if getattr(outputs, "start_logits", None) is not None:
        return [outputs.start_logits, outputs.end_logits]
    return [outputs.logits]


@torch.inference_mode()
def teacher_logits_for(teacher, dataset, collator, kind=None, batch_size: int = 64,
                       progress: ProgressHook | None = None, by_length: bool = True) -> LogitCache:
    """Teacher logits for every training example, indexed by ``idx`` (see :class:`LogitCache`)."""
    cache = LogitCache(token_level=bool(getattr(kind, "token_level", False)))
    for idx, lengths, outputs in _teacher_passes(teacher, dataset, collator, kind, batch_size, progress, by_length):
        cache.put(idx, _raw_logits(outputs), lengths)
    return cache


@torch.inference_mode()
def teacher_topk_for(teacher, dataset, collator, kind, k: int, batch_size: int = 32,
                     progress: ProgressHook | None = None) -> TopKLogitCache:
    """The teacher's top-k logits at every token of every training example (see
    :class:`TopKLogitCache`). ``batch_size``: the training batch size, whose (B, L, V)
    teacher logits a training step holds anyway."""
    cache = TopKLogitCache(k)
    for idx, lengths, outputs in _teacher_passes(teacher, dataset, collator, kind, batch_size, progress):
        values, indices = losses.topk_logits(outputs.logits, k)  # (B, L, k) each
        cache.put(idx, values, indices, lengths)
    return cache


def _teacher_passes(teacher, dataset, collator, kind, batch_size: int, progress: ProgressHook | None = None,
                    by_length: bool = True):
    """The teacher's outputs over every training example once, as (idx, lengths,
    outputs) per batch, for the logit caches (call under ``torch.inference_mode``).

    Batches are formed longest first (``by_length``): a batch pads to its own
    longest example, so batches of similar lengths carry almost no padding,
    where batches in data order pad every short sentence to the longest of 64
    (about 2-3x the tokens on SST-2). The caches are keyed by ``idx``, so the
    order changes nothing in them. Longest first also puts the largest batch first
    (a memory error shows at once) and makes the ETA (time per token so far x
    tokens left), reported with each batch as ``eta_s``, err on the long side."""
    teacher.eval()
    device = next(teacher.parameters()).device
    lengths = [int(n) for n in dataset["length"]]  # (N,) tokens per example
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i]) if by_length else list(range(len(lengths)))
    tokens_total, tokens_done, t0 = max(sum(lengths), 1), 0, time.perf_counter()
    for start in range(0, len(order), batch_size):
        members = order[start : start + batch_size]
        batch = collator([dataset[i] for i in members])
        idx = batch.pop("idx").tolist()
        batch.pop("length", None)
        kind.split_targets(batch)
        yield idx, [lengths[i] for i in members], teacher(**{k: v.to(device) for k, v in batch.items()})
        tokens_done += sum(lengths[i] for i in members)
        if progress:
            elapsed = time.perf_counter() - t0
            progress({"stage": "teacher-logits", "step": start + len(members), "total": len(order),
                      "eta_s": elapsed * (tokens_total - tokens_done) / max(tokens_done, 1), "losses": {}})


def stage_cache(stage: str, teacher, train_ds, collator, kind, dcfg: DistillConfig,
                progress: ProgressHook | None = None, card: dict | None = None,
                batch_size: int = 32) -> LogitCache | TopKLogitCache | None:
    """What ``stage`` needs of the teacher, computed once, when that is only its
    logits (the prediction stage with a KD term): all of them for a kind that caches
    (``cache_logits``), the top ``dcfg.logit_cache_topk`` per token for a token-level
    kind that asked for it (its size and time recorded in ``card["logit_cache"]``);
    else None (the teacher runs in every step)."""
    if stage != "prediction" or dcfg.alpha >= 1.0:
        return None
    full = getattr(kind, "cache_logits", True)
    if not full and not dcfg.logit_cache_topk:
        return None
    if progress:
        progress({"stage": "teacher-logits", "step": 0, "total": len(train_ds), "losses": {}})
    if full:
        return teacher_logits_for(teacher, train_ds, collator, kind, progress=progress)
    t0 = time.perf_counter()
    cache = teacher_topk_for(teacher, train_ds, collator, kind, dcfg.logit_cache_topk, batch_size, progress)
    if card is not None:
        card["logit_cache"] = {"k": cache.k, "tokens": cache.tokens, "memory_mb": round(cache.nbytes / 2**20, 2),
                               "values": "float16", "indices": "int32", "time_s": round(time.perf_counter() - t0, 2)}
    return cache
