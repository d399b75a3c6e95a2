"""Predictions for evaluation, the side-by-side demo and the benchmark.

The same batched prediction code scores a model in ``run.json``, in
``python -m hub evaluate`` and in the benchmark, so the numbers agree.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from . import metrics
from .models import load_model, load_tokenizer
from .tasks import Task

MAX_LENGTH = 128


@torch.inference_mode()
def predict_logits(model, tokenizer, texts: list[str], batch_size: int = 64, max_length: int = MAX_LENGTH) -> torch.Tensor:
    """Logits (N, C) in the order of ``texts``; batches are formed by length to
    avoid padding waste, the order is restored at the end."""
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = [None] * len(texts)
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        logits = model(**{k: v.to(device) for k, v in enc.items()}).logits.float().cpu()
        for row, i in enumerate(idx):
            out[i] = logits[row]
    return torch.stack(out) if out else torch.empty(0)


def evaluate(model, tokenizer, texts: list[str], labels: list[int], batch_size: int = 64) -> dict:
    """Accuracy and F1 (binary for 2 labels, macro otherwise) plus the predictions."""
    logits = predict_logits(model, tokenizer, texts, batch_size)
    preds = logits.argmax(-1).tolist()
    result = metrics.classification_metrics(preds, labels, model.config.num_labels)
    result["predictions"] = preds
    return result


@dataclass
class Prediction:
    label: str
    probabilities: dict[str, float]
    latency_ms: float


class Classifier:
    """A loaded model + tokenizer answering single inputs for the demo."""

    def __init__(self, ref: str, task: Task, model=None, tokenizer=None):
        self.ref, self.task = ref, task
        if model is None:
            model, _ = load_model(ref, task)
        self.model = model.eval()
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(ref)
        self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]

    @torch.inference_mode()
    def probs(self, texts: list[str]) -> torch.Tensor:
        enc = self.tokenizer(texts, truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")
        return self.model(**enc).logits.float().softmax(-1)

    def predict(self, text: str) -> Prediction:
        t0 = time.perf_counter()
        p = self.probs([text])[0]
        ms = (time.perf_counter() - t0) * 1000
        return Prediction(self.labels[int(p.argmax())], {n: float(v) for n, v in zip(self.labels, p)}, ms)


def kl_divergence(p: dict[str, float], q: dict[str, float]) -> float:
    """KL(p || q) in nats between two label distributions (same label names)."""
    eps = 1e-12
    return float(sum(pv * (math.log(pv + eps) - math.log(q.get(k, 0.0) + eps)) for k, pv in p.items()))


def compare(a: Classifier, b: Classifier, text: str) -> dict:
    """Both models on one input: labels, probabilities, latency, agreement, KL(a || b)."""
    pa, pb = a.predict(text), b.predict(text)
    return {
        "a": pa.__dict__,
        "b": pb.__dict__,
        "agree": pa.label == pb.label,
        "kl": kl_divergence(pa.probabilities, pb.probabilities),
    }


def compare_batch(a: Classifier, b: Classifier, texts: list[str], batch_size: int = 32) -> dict:
    """Agreement rate, each model's throughput, and the lines where they disagree."""
    def run(clf):
        t0 = time.perf_counter()
        labels = []
        for s in range(0, len(texts), batch_size):
            labels += [clf.labels[int(i)] for i in clf.probs(texts[s : s + batch_size]).argmax(-1)]
        return labels, len(texts) / max(time.perf_counter() - t0, 1e-9)

    la, ta = run(a)
    lb, tb = run(b)
    disagree = [{"line": i + 1, "text": t, "a": x, "b": y} for i, (t, x, y) in enumerate(zip(texts, la, lb)) if x != y]
    return {
        "n": len(texts),
        "agreement": 1 - len(disagree) / len(texts) if texts else float("nan"),
        "throughput_a": ta,
        "throughput_b": tb,
        "disagreements": disagree,
    }
