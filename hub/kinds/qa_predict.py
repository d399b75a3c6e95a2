"""Running a ``qa`` model (``hub.kinds.qa``): the start and end logits of encoded
windows (evaluation and the demo), the demo's ``QAPredictor`` that answers
questions about contexts of any length, and the parsing of Compare's batch items.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .. import squad
from ..squad_postprocess import postprocess
from .qa_data import DEFAULT_MAX_LENGTH, MODEL_INPUTS, doc_stride_for


def _to_device(batch: dict, model) -> dict:
    device = getattr(model, "device", torch.device("cpu"))
    return {k: v.to(device) for k, v in batch.items()}


@torch.inference_mode()
def window_logits(model, tokenizer, windows: dict, batch_size: int = 64) -> tuple[list, list]:
    """Start and end logits of every window of ``encode_eval``, each trimmed to
    its window's length: two lists of W float tensors (L_w,). Batches are formed
    by length (less padding); the window order is kept."""
    model.eval()
    names = [k for k in MODEL_INPUTS if k in windows]
    n = len(windows["input_ids"])
    order = sorted(range(n), key=lambda w: len(windows["input_ids"][w]))
    starts, ends = [None] * n, [None] * n
    for b in range(0, n, batch_size):
        idx = order[b : b + batch_size]
        batch = tokenizer.pad([{k: windows[k][w] for k in names} for w in idx], padding=True, return_tensors="pt")
        out = model(**_to_device(dict(batch), model))
        s, e = out.start_logits.float().cpu(), out.end_logits.float().cpu()  # (B, L)
        for row, w in enumerate(idx):
            length = len(windows["input_ids"][w])
            offset = s.shape[1] - length if tokenizer.padding_side == "left" else 0
            starts[w], ends[w] = s[row, offset : offset + length], e[row, offset : offset + length]
    return starts, ends


# ---------------------------------------------------------------- the demo


@dataclass
class Answer:
    answer: str
    score: float
    start_char: int | None
    end_char: int | None
    no_answer: bool
    latency_ms: float
    null_score: float | None = None


class QAPredictor:
    """A loaded QA model + tokenizer answering questions about contexts of any
    length (every window of the context is read; the best span wins)."""

    def __init__(self, model, tokenizer, task=None, max_length: int = DEFAULT_MAX_LENGTH, null_threshold: float = 0.0,
                 batch_size: int = 32):
        self.model, self.tokenizer, self.task = model.eval(), tokenizer, task
        self.max_length, self.null_threshold, self.batch_size = max_length, null_threshold, batch_size

    def _answers(self, items: list[tuple[str, str]]) -> list[Answer]:
        examples = []
        for i, (question, context) in enumerate(items):
            if not isinstance(question, str) or not question.strip():
                raise ValueError(f"item {i}: empty question")
            if not isinstance(context, str) or not context.strip():
                raise ValueError(f"item {i}: empty context")
            examples.append({"id": str(i), "question": question, "context": context,
                             "answers": {"text": [], "answer_start": []}})
        windows = squad.encode_eval(self.tokenizer, examples, self.max_length, doc_stride_for(self.max_length))
        starts, ends = window_logits(self.model, self.tokenizer, windows, self.batch_size)
        found = postprocess(examples, windows, starts, ends, null_threshold=self.null_threshold)
        out = []
        for ex in examples:
            r = found[ex["id"]]
            out.append(Answer(r["text"], float(r["score"]), r["start_char"], r["end_char"], r["text"] == "", 0.0,
                              float(r["null_score"])))
        return out

    def predict(self, question: str, context: str) -> dict:
        """``{answer, score, start_char, end_char, no_answer, latency_ms, null_score, null_threshold}``;
        ``answer`` is ``context[start_char:end_char]``, or ``""`` with ``no_answer`` (the null
        score beat the best span by more than ``null_threshold``, the model's own)."""
        t0 = time.perf_counter()
        answer = self._answers([(question, context)])[0]
        answer.latency_ms = (time.perf_counter() - t0) * 1000
        return {**answer.__dict__, "null_threshold": self.null_threshold}

    def predict_batch(self, items: list[tuple[str, str]]) -> list[str]:
        """Answer texts (``""`` for no answer) of (question, context) pairs."""
        return [a.answer for a in self._answers(list(items))] if items else []


def _pair_and_gold(item, i: int):
    """(question, context, gold texts or None) of a compare item: a (question,
    context[, answers]) tuple or a dict with question, context and optional answers
    (a list of texts or SQuAD's {"text": [...]}; an empty list means unanswerable)."""
    if isinstance(item, dict):
        q, c, gold = item.get("question"), item.get("context"), item.get("answers")
    elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
        q, c, gold = item[0], item[1], item[2] if len(item) == 3 else None
    else:
        raise ValueError(f"item {i}: expected (question, context[, answers]) or a dict with question and context")
    if isinstance(gold, dict):
        gold = gold.get("text")
    if isinstance(gold, str):
        gold = [gold]
    return q, c, (None if gold is None else list(gold))
