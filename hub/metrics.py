"""Evaluation metrics, computed offline by our own code (no Hub downloads).

Each metric is a small function on plain Python sequences returning floats.

>>> accuracy([1, 0, 1, 1], [1, 0, 0, 1])
0.75
>>> round(f1([1, 0, 1, 1], [1, 0, 0, 1]), 4)   # P = 2/3, R = 1 -> 0.8
0.8
>>> round(f1([0, 1, 2, 2], [0, 2, 2, 1], num_labels=3), 4)   # macro over 3 classes
0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def accuracy(predictions: Sequence[int], references: Sequence[int]) -> float:
    _check(predictions, references)
    return sum(int(p == r) for p, r in zip(predictions, references)) / len(references)


def _f1_for(label: int, predictions: Sequence[int], references: Sequence[int]) -> float:
    tp = sum(1 for p, r in zip(predictions, references) if p == label and r == label)
    fp = sum(1 for p, r in zip(predictions, references) if p == label and r != label)
    fn = sum(1 for p, r in zip(predictions, references) if p != label and r == label)
    if tp == 0:
        return 0.0
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return 2 * precision * recall / (precision + recall)


def f1(predictions: Sequence[int], references: Sequence[int], num_labels: int = 2) -> float:
    """Binary F1 of class 1 for two labels (as GLUE reports it), macro F1 otherwise."""
    _check(predictions, references)
    if num_labels == 2:
        return _f1_for(1, predictions, references)
    return sum(_f1_for(k, predictions, references) for k in range(num_labels)) / num_labels


def agreement(predictions_a: Sequence[int], predictions_b: Sequence[int]) -> float:
    """Share of examples where two models predict the same label."""
    return accuracy(predictions_a, predictions_b)


def classification_metrics(predictions: Sequence[int], references: Sequence[int], num_labels: int) -> dict:
    return {
        "accuracy": accuracy(predictions, references),
        "f1": f1(predictions, references, num_labels),
    }


def _check(predictions: Sequence, references: Sequence) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        raise ValueError("cannot score an empty evaluation set")


METRIC_MODULES = Path(__file__).resolve().parent / "metric_modules"
_LOADED: dict = {}


def load_metric(name: str):
    """An ``evaluate`` metric module of ours (``hub/metric_modules/NAME``), loaded
    offline from its folder and kept for the process (loading takes ~0.1 s)."""
    if name not in _LOADED:
        import evaluate

        folder = METRIC_MODULES / name
        if not (folder / f"{name}.py").is_file():
            raise ValueError(f"no metric module {name!r} under {METRIC_MODULES}")
        _LOADED[name] = evaluate.load(str(folder))
    return _LOADED[name]
