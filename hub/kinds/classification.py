"""Sentence classification (SST-2, any labelled table): the ``classification`` kind.

Data: a table with a text and a label column (``hub.data.load_classification``).
Targets: ``labels`` (B,). Adaptor: one ``(B, C)`` logits tensor per batch.
Metrics: accuracy and F1 through our ``evaluate`` module ``classification_local``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import torch

from .. import data as data_mod
from ..metrics import agreement as _agreement
from ..metrics import load_metric


def _encoding(tokenizer, texts: list[str], max_length: int, fixed_len: int | None = None):
    if fixed_len is None:
        return tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    return tokenizer(texts, truncation=True, max_length=fixed_len, padding="max_length", return_tensors="pt")


@torch.inference_mode()
def predict_logits(model, tokenizer, texts: list[str], batch_size: int = 64, max_length: int = 128) -> torch.Tensor:
    """Logits (N, C) in the order of ``texts``; batches are formed by length to
    avoid padding waste, the order is restored at the end."""
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = [None] * len(texts)
    device = getattr(model, "device", torch.device("cpu"))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = _encoding(tokenizer, [texts[i] for i in idx], max_length)
        logits = model(**{k: v.to(device) for k, v in enc.items()}).logits.float().cpu()
        for row, i in enumerate(idx):
            out[i] = logits[row]
    return torch.stack(out) if out else torch.empty(0)


@dataclass
class Prediction:
    label: str
    probabilities: dict[str, float]
    latency_ms: float


class Classifier:
    """A loaded model + tokenizer answering single inputs for the demo."""

    def __init__(self, model, tokenizer, task, max_length: int = 128):
        self.task, self.model, self.tokenizer, self.max_length = task, model.eval(), tokenizer, max_length
        self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]

    @torch.inference_mode()
    def probs(self, texts: list[str]) -> torch.Tensor:
        return self.model(**_encoding(self.tokenizer, texts, self.max_length)).logits.float().softmax(-1)

    def predict(self, text: str) -> Prediction:
        t0 = time.perf_counter()
        p = self.probs([text])[0]
        ms = (time.perf_counter() - t0) * 1000
        return Prediction(self.labels[int(p.argmax())], {n: float(v) for n, v in zip(self.labels, p)}, ms)

    def predict_batch(self, texts: list[str], batch_size: int = 32) -> list[str]:
        labels = []
        for s in range(0, len(texts), batch_size):
            labels += [self.labels[int(i)] for i in self.probs(texts[s : s + batch_size]).argmax(-1)]
        return labels


def kl_divergence(p: dict[str, float], q: dict[str, float]) -> float:
    """KL(p || q) in nats between two label distributions (same label names)."""
    eps = 1e-12
    return float(sum(pv * (math.log(pv + eps) - math.log(q.get(k, 0.0) + eps)) for k, pv in p.items()))


class ClassificationKind:
    name = "classification"
    head = "SequenceClassification"
    target_columns = ("labels",)
    token_level = False  # one distribution per example
    cache_logits = True

    # ------------------------------------------------------------ data
    def load_data(self, task, source, max_train=None, max_eval=None, need_train=True, reference=None):
        """``reference``: a loaded model whose label names fix the vocabulary (evaluation)."""
        label_names = None
        if reference is not None:
            cfg = reference.config
            label_names = [cfg.id2label[i] for i in range(cfg.num_labels)]
        return data_mod.load_classification(
            task, data_dir=source.data_dir, train_file=source.train_file, eval_file=source.eval_file,
            dataset=source.dataset, dataset_config=source.dataset_config, text_column=source.text_column,
            label_column=source.label_column, max_train_samples=max_train, max_eval_samples=max_eval,
            label_names=label_names, need_train=need_train,
        )

    def first_examples(self, data, n: int):
        """The first ``n`` training examples (a stage's share: ``--intermediate-train-samples``)."""
        return replace(data, train_texts=data.train_texts[:n], train_labels=data.train_labels[:n])

    def head_kwargs(self, data) -> dict:
        return {"num_labels": len(data.label_names), "id2label": data.id2label}

    def check_teacher(self, teacher, data) -> None:
        t_labels = [teacher.config.id2label[i] for i in range(teacher.config.num_labels)]
        if t_labels != data.label_names:
            raise ValueError(f"the teacher's labels {t_labels} differ from the data's {data.label_names}")

    # ------------------------------------------------------------ training
    def encode_train(self, tokenizer, data, max_length: int):
        return data_mod.tokenize(tokenizer, data.train_texts, data.train_labels, max_length)

    def collator(self, tokenizer):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def split_targets(self, batch: dict) -> dict:
        return {k: batch.pop(k) for k in self.target_columns if k in batch}

    def adapt(self, outputs, inputs: dict, targets: dict) -> dict:
        return {"logits": [outputs.logits], "labels": [targets.get("labels")], "mask": None}

    # ------------------------------------------------------------ evaluation
    def evaluate(self, model, tokenizer, data, max_length: int = 128, batch_size: int = 64) -> dict:
        logits = predict_logits(model, tokenizer, data.eval_texts, batch_size, max_length)
        preds = logits.argmax(-1).tolist()
        scores = load_metric("classification_local").compute(
            predictions=preds, references=data.eval_labels, num_labels=model.config.num_labels)
        return {**scores, "predictions": preds, "eval_size": len(data.eval_texts)}

    def agreement(self, predictions_a: list, predictions_b: list) -> float:
        return _agreement(predictions_a, predictions_b)

    chance_name = "always predicting the majority class"  # what chance_level scores

    def chance_level(self, data) -> float:
        """Accuracy of always predicting the eval set's most frequent label."""
        labels = list(data.eval_labels)
        return max(labels.count(y) for y in set(labels)) / len(labels)

    def eval_texts(self, data, task) -> list[str]:
        return list(data.eval_texts) if data is not None else list(task.examples) or ["hello world"]

    def latency_inputs(self, tokenizer, data, task, fixed_len: int | None, max_length: int = 128) -> list[dict]:
        return [dict(_encoding(tokenizer, [t], max_length, fixed_len)) for t in self.eval_texts(data, task)]

    def batches(self, tokenizer, data, task, batch_size: int, max_length: int = 128) -> list[dict]:
        texts = sorted(self.eval_texts(data, task), key=len)
        return [dict(_encoding(tokenizer, texts[i : i + batch_size], max_length))
                for i in range(0, len(texts), batch_size)]

    def tokenize_inputs(self, data, task) -> list:
        """What a user sends: the raw texts (tokenization is timed apart)."""
        return self.eval_texts(data, task)

    # ------------------------------------------------------------ demo
    def predictor(self, model, tokenizer, task, max_length: int = 128) -> Classifier:
        return Classifier(model, tokenizer, task, max_length)

    def compare(self, a: Classifier, b: Classifier, text: str) -> dict:
        """Both models on one input: labels, probabilities, latency, agreement, KL(a || b)."""
        pa, pb = a.predict(text), b.predict(text)
        return {"a": pa.__dict__, "b": pb.__dict__, "agree": pa.label == pb.label,
                "kl": kl_divergence(pa.probabilities, pb.probabilities)}

    def compare_batch(self, a: Classifier, b: Classifier, texts: list[str], batch_size: int = 32) -> dict:
        """Agreement rate, each model's throughput, and the lines where they disagree."""
        def run(clf):
            t0 = time.perf_counter()
            labels = clf.predict_batch(texts, batch_size)
            return labels, len(texts) / max(time.perf_counter() - t0, 1e-9)

        la, ta = run(a)
        lb, tb = run(b)
        disagree = [{"line": i + 1, "text": t, "a": x, "b": y}
                    for i, (t, x, y) in enumerate(zip(texts, la, lb)) if x != y]
        return {"n": len(texts), "agreement": 1 - len(disagree) / len(texts) if texts else float("nan"),
                "throughput_a": ta, "throughput_b": tb, "disagreements": disagree}


KIND = ClassificationKind()
