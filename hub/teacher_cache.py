"""Teacher-output caching (torchdistill-style): when a distillation stage needs
only the teacher's logits, they are computed once over the training set, longest
batches first, and looked up by example index in every epoch.

* :class:`LogitCache` keeps all of them (per-example logits, or QA's per-token
  start/end scores trimmed to each example's length);
* :class:`TopKLogitCache` keeps the teacher's k largest logits per token, for the
  kinds whose per-token vocabulary is too big to keep (generation, MLM);
* :func:`stage_cache` decides which a stage gets, or none (the teacher then runs
  in every training step), and with a ``cache_dir`` (``distill --teacher-cache DIR``)
  keeps it on disk for the next run on the same teacher and data (torchdistill's
  cached teacher outputs): a file named by a hash of the teacher's weights and of
  the encoded training set's inputs, so another seed, learning rate, student or
  set of targets skips the teacher pass, and any change to the weights or the
  inputs misses and recomputes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np
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
                batch_size: int = 32, cache_dir: str | Path | None = None) -> LogitCache | TopKLogitCache | None:
    """What ``stage`` needs of the teacher, computed once, when that is only its
    logits (the prediction stage with a KD term): all of them for a kind that caches
    (``cache_logits``), the top ``dcfg.logit_cache_topk`` per token for a token-level
    kind that asked for it (its size and time recorded in ``card["logit_cache"]``);
    else None (the teacher runs in every step).

    With ``cache_dir`` the logits are read from there when an earlier run stored
    them for the same teacher weights, training set and cache kind (see
    :func:`cache_key`), else computed and stored; ``card["teacher_cache"]`` says
    which (the file, ``reused``, seconds)."""
    if stage != "prediction" or dcfg.alpha >= 1.0:
        return None
    full = getattr(kind, "cache_logits", True)
    if not full and not dcfg.logit_cache_topk:
        return None
    t0 = time.perf_counter()
    path = None
    if cache_dir is not None:
        variant = "full" if full else f"top{dcfg.logit_cache_topk}"
        path = Path(cache_dir) / f"{cache_key(teacher, train_ds, kind, variant)}.safetensors"
        cache = load_cache(path, train_ds["idx"])
        if cache is not None:
            if progress:
                progress({"stage": "teacher-logits", "step": len(train_ds), "total": len(train_ds), "losses": {},
                          "cache_file": str(path)})
            os.utime(path)  # recently used: the last to go when the folder is over its budget
            _record(card, cache, path, True, t0, full)
            return cache
    if progress:
        progress({"stage": "teacher-logits", "step": 0, "total": len(train_ds), "losses": {}})
    if full:
        cache = teacher_logits_for(teacher, train_ds, collator, kind, progress=progress)
    else:
        cache = teacher_topk_for(teacher, train_ds, collator, kind, dcfg.logit_cache_topk, batch_size, progress)
    if path is not None:
        save_cache(cache, path)
        evict(path.parent, keep=path)
    _record(card, cache, path, False, t0, full)
    return cache


def _record(card: dict | None, cache, path: Path | None, reused: bool, t0: float, full: bool) -> None:
    if card is None:
        return
    seconds = round(time.perf_counter() - t0, 2)
    if not full:
        card["logit_cache"] = {"k": cache.k, "tokens": cache.tokens, "memory_mb": round(cache.nbytes / 2**20, 2),
                               "values": "float16", "indices": "int32", "time_s": seconds}
    if path is not None:
        card["teacher_cache"] = {"file": str(path), "reused": reused, "time_s": seconds}


# ------------------------------------------------------------ on disk

CACHE_FORMAT = 2  # bump when what a cache file holds, or how its key is made, changes (2: targets left out)
DISK_BUDGET_BYTES = 2 * 2**30  # a cache folder holds at most this much; least recently used files go first
_CACHE_NAME = re.compile(r"^[0-9a-f]{32}\.safetensors$")  # only files named by cache_key are ever deleted


def evict(folder: Path, keep: Path | None = None, budget: int | None = None) -> list[Path]:
    """Deletes the least recently used cache files of ``folder`` (by modification
    time: a reuse touches its file) until the rest fit in ``budget`` bytes
    (``DISK_BUDGET_BYTES``); never ``keep`` and never a file that ``cache_key``
    did not name. Returns the deleted paths."""
    budget = DISK_BUDGET_BYTES if budget is None else budget
    files = [f for f in folder.iterdir() if _CACHE_NAME.match(f.name) and f.is_file()]
    files.sort(key=lambda f: f.stat().st_mtime)
    total = sum(f.stat().st_size for f in files)
    deleted = []
    for f in files:
        if total <= budget:
            break
        if keep is not None and f.resolve() == Path(keep).resolve():
            continue
        total -= f.stat().st_size
        f.unlink(missing_ok=True)
        deleted.append(f)
    return deleted


def cache_key(teacher, dataset, kind, variant: str) -> str:
    """A hex digest naming a cache file: the format, the kind, the ``variant``
    ("full" or "topK"), the teacher's dtype and every tensor of its state dict
    (names and bytes: another fine-tune, even of the same folder, is another key),
    and every column of the encoded training set the teacher's pass reads (the
    windows and their order; not the kind's ``target_columns``, which its
    ``split_targets`` pops before the teacher's pass: a QA file distilled with
    --negative-target label and teacher shares one cache). Measured: the key and
    the read of the file took 2.3 s for 86 MB of weights and 15,475 QA windows of
    384 tokens (2-core CPU), against 574 s for the teacher's pass (tests running
    beside it)."""
    h = hashlib.sha256(f"{CACHE_FORMAT}|{type(kind).__name__}|{variant}|{teacher.dtype}".encode())
    for name, tensor in sorted(teacher.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}".encode())
        h.update(flat.view(torch.uint8).numpy().tobytes())
    h.update(f"rows={len(dataset)}".encode())
    for column in sorted(set(dataset.column_names) - set(kind.target_columns)):
        h.update(f"|{column}".encode())
        for value in dataset[column]:
            a = np.asarray(value)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()[:32]


def save_cache(cache: LogitCache | TopKLogitCache, path: Path) -> None:
    """Writes ``cache`` as one safetensors file (tensors ``"{idx}.{part}"``),
    atomically: a temporary file renamed into place, so a run killed while
    writing leaves no half file that a later run would read."""
    from safetensors.torch import save_file

    if isinstance(cache, TopKLogitCache):
        tensors = {f"{i}.{part}": t for i, row in cache.rows.items() for part, t in zip("vi", row)}
        meta = {"type": "topk", "k": str(cache.k)}
    else:
        tensors = {f"{i}.{head}": t for i, row in cache.rows.items() for head, t in enumerate(row)}
        meta = {"type": "full", "token_level": json.dumps(cache.token_level),
                "heads": str(len(next(iter(cache.rows.values()))) if cache.rows else 0)}
    meta.update(format=str(CACHE_FORMAT), rows=str(len(cache.rows)))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file({k: t.contiguous() for k, t in tensors.items()}, str(tmp), metadata=meta)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_cache(path: Path, idx: list[int]) -> LogitCache | TopKLogitCache | None:
    """The cache stored at ``path``, or None when there is none, it is of another
    format or damaged, or its rows are not exactly the examples ``idx`` (then it is
    recomputed and overwritten)."""
    if not path.is_file():
        return None
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != str(CACHE_FORMAT) or meta.get("rows") != str(len(idx)):
            return None
        tensors = load_file(str(path))
    except Exception:  # noqa: BLE001 - a damaged file is a miss, never a crash
        return None
    grouped: dict[int, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        i, part = key.split(".")
        grouped.setdefault(int(i), {})[part] = t
    if sorted(grouped) != sorted(int(i) for i in idx):
        return None
    if meta.get("type") == "topk":
        cache = TopKLogitCache(int(meta["k"]))
        cache.rows = {i: (p["v"], p["i"]) for i, p in grouped.items()}
    else:
        cache = LogitCache(token_level=json.loads(meta.get("token_level", "false")))
        heads = int(meta.get("heads", 1))
        cache.rows = {i: tuple(p[str(h)] for h in range(heads)) for i, p in grouped.items()}
    return cache
