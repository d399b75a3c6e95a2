"""The ``generation`` kind's perplexity windows (``hub.kinds.generation``): HF's
strided sliding window over the eval stream, and each window's summed NLL and
top-1 tokens, batched within a budget of logits.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F


LOGIT_BUDGET = 2**26  # floats of logits per evaluation batch (256 MiB): batches shrink for large vocabularies


@dataclass(frozen=True)
class Window:
    """One call of the sliding-window evaluation: tokens ``begin:end`` of the
    stream; its last ``scored`` tokens are scored (the rest is context)."""

    begin: int
    end: int
    scored: int


def stride_windows(n: int, max_length: int, stride: int) -> list[Window]:
    """HF's strided sliding window over ``n`` tokens, exactly as
    :func:`hub.lm_eval.perplexity` walks it: windows start at 0, stride, 2·stride
    ...; each scores the tokens the previous one did not (the first token of the
    stream, which nothing predicts, never), the last reaches the end.

    >>> [(w.begin, w.end, w.scored) for w in stride_windows(10, 4, 2)]
    [(0, 4, 3), (2, 6, 2), (4, 8, 2), (6, 10, 2)]
    """
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2, got {max_length}")
    if not 1 <= stride <= max_length:
        raise ValueError(f"stride must be in [1, max_length={max_length}], got {stride}")
    windows, prev_end = [], 0
    for begin in range(0, n, stride):
        end = min(begin + max_length, n)
        target = end - prev_end
        scored = target - 1 if target == end - begin else target  # position 0 of a window is never predicted
        prev_end = end
        if scored <= 0:
            break
        windows.append(Window(begin, end, scored))
        if end == n:
            break
    return windows


def _keeps_logits(model) -> bool:
    return "logits_to_keep" in inspect.signature(model.forward).parameters


@torch.inference_mode()
def window_scores(model, stream: torch.Tensor, windows: list[Window], batch_size: int = 64) -> list[dict]:
    """Per window: ``{"nll_sum", "scored", "top1"}`` — the summed NLL (nats) of its
    scored tokens and the model's most likely token at each scored position.

    Windows of equal shape are batched (at most ``LOGIT_BUDGET`` logits per
    batch); only the logits of the scored positions are computed when the model
    takes ``logits_to_keep``.
    """
    model.eval()
    device = next(model.parameters()).device
    vocab = model.config.vocab_size
    keep_arg = _keeps_logits(model)
    out: list[dict | None] = [None] * len(windows)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, w in enumerate(windows):
        groups.setdefault((w.end - w.begin, w.scored), []).append(i)
    for (length, scored), members in groups.items():
        per_batch = max(1, min(batch_size, LOGIT_BUDGET // ((scored + 1) * vocab)))
        for start in range(0, len(members), per_batch):
            idx = members[start : start + per_batch]
            ids = torch.stack([stream[windows[i].begin : windows[i].end] for i in idx]).to(device)  # (B, W)
            kwargs = {"logits_to_keep": scored + 1} if keep_arg else {}
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False, **kwargs).logits
            logits = logits[:, -(scored + 1) : -1].float()  # (B, scored, V): predict the last `scored` tokens
            targets = ids[:, length - scored :]  # (B, scored)
            nll = -F.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, scored)
            top1 = logits.argmax(-1)
            for row, i in enumerate(idx):
                out[i] = {"nll_sum": float(nll[row].double().sum()), "scored": scored, "top1": top1[row].tolist()}
    return out
