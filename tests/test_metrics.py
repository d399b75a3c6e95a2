"""Metrics against confusion matrices worked out by hand, and the doctests."""

from __future__ import annotations

import doctest

import pytest

import hub.losses
import hub.metrics
from hub.metrics import accuracy, agreement, classification_metrics, f1

# Binary case, 10 examples.
#   refs:  1 1 1 1 0 0 0 0 0 1
#   preds: 1 1 0 1 1 0 0 1 0 0
# class 1: TP = 3 (idx 0, 1, 3), FP = 2 (idx 4, 7), FN = 2 (idx 2, 9), TN = 3
# accuracy = (TP + TN) / 10 = 6/10
# P = 3/5, R = 3/5 -> F1 = 0.6
# class 0 (not reported for binary): TP = 3, FP = 2, FN = 2 -> also 0.6
BIN_REFS = [1, 1, 1, 1, 0, 0, 0, 0, 0, 1]
BIN_PREDS = [1, 1, 0, 1, 1, 0, 0, 1, 0, 0]

# Skewed binary case where class-1 F1 differs from accuracy and from class-0 F1.
#   refs:  1 0 0 0 0 0
#   preds: 1 1 1 0 0 0
# class 1: TP = 1, FP = 2, FN = 0 -> P = 1/3, R = 1 -> F1 = 2 * (1/3) / (4/3) = 0.5
# accuracy = 4/6
SKEW_REFS = [1, 0, 0, 0, 0, 0]
SKEW_PREDS = [1, 1, 1, 0, 0, 0]

# Three classes, 9 examples. Confusion matrix (rows = reference, cols = prediction):
#            pred 0  pred 1  pred 2
#   ref 0      2       1       0
#   ref 1      0       2       1
#   ref 2      1       0       2
# class 0: TP 2, FP 1, FN 1 -> P 2/3, R 2/3, F1 2/3
# class 1: TP 2, FP 1, FN 1 -> F1 2/3
# class 2: TP 2, FP 1, FN 1 -> F1 2/3     macro = 2/3, accuracy = 6/9
MC_REFS = [0, 0, 0, 1, 1, 1, 2, 2, 2]
MC_PREDS = [0, 0, 1, 1, 1, 2, 2, 2, 0]

# Three classes, unequal per-class F1:
#   refs:  0 0 0 0 1 1 2 2
#   preds: 0 0 0 1 1 0 1 1
# class 0: TP 3, FP 1 (idx 5), FN 1 (idx 3) -> P 3/4 R 3/4 -> F1 0.75
# class 1: TP 1 (idx 4), FP 3 (idx 3, 6, 7), FN 1 (idx 5) -> P 1/4, R 1/2 -> F1 = 2*(1/8)/(3/4) = 1/3
# class 2: TP 0 -> F1 0
# macro = (0.75 + 1/3 + 0) / 3 = 13/36; accuracy = 4/8
UNEQ_REFS = [0, 0, 0, 0, 1, 1, 2, 2]
UNEQ_PREDS = [0, 0, 0, 1, 1, 0, 1, 1]


def test_accuracy_by_hand():
    assert accuracy(BIN_PREDS, BIN_REFS) == pytest.approx(0.6)
    assert accuracy(SKEW_PREDS, SKEW_REFS) == pytest.approx(4 / 6)
    assert accuracy(MC_PREDS, MC_REFS) == pytest.approx(6 / 9)
    assert accuracy([1, 2, 3], [1, 2, 3]) == 1.0
    assert accuracy([0, 0], [1, 1]) == 0.0


def test_binary_f1_is_class_one():
    assert f1(BIN_PREDS, BIN_REFS) == pytest.approx(0.6)
    assert f1(SKEW_PREDS, SKEW_REFS) == pytest.approx(0.5)
    assert f1(SKEW_PREDS, SKEW_REFS, num_labels=2) == pytest.approx(0.5)


def test_binary_f1_no_true_positives_is_zero():
    assert f1([0, 0, 0], [1, 1, 0]) == 0.0  # never predicts 1
    assert f1([1, 1], [0, 0]) == 0.0  # no positive references


def test_binary_f1_perfect():
    assert f1([0, 1, 1, 0], [0, 1, 1, 0]) == pytest.approx(1.0)


def test_macro_f1_by_hand():
    assert f1(MC_PREDS, MC_REFS, num_labels=3) == pytest.approx(2 / 3)
    assert f1(UNEQ_PREDS, UNEQ_REFS, num_labels=3) == pytest.approx(13 / 36)


def test_macro_f1_counts_absent_classes_as_zero():
    # num_labels = 4 but class 3 never appears: its F1 is 0 and still averaged in
    assert f1(MC_PREDS, MC_REFS, num_labels=4) == pytest.approx((2 / 3 * 3) / 4)


def test_classification_metrics():
    m = classification_metrics(UNEQ_PREDS, UNEQ_REFS, num_labels=3)
    assert m == {"accuracy": pytest.approx(0.5), "f1": pytest.approx(13 / 36)}
    assert classification_metrics(SKEW_PREDS, SKEW_REFS, 2) == {
        "accuracy": pytest.approx(4 / 6), "f1": pytest.approx(0.5)
    }


def test_agreement():
    # agree at idx 0, 1, 3, 5, 6, 8 -> 6 of 10
    assert agreement(BIN_PREDS, [1, 1, 1, 1, 0, 0, 0, 0, 0, 1]) == pytest.approx(0.6)
    assert agreement([2, 1, 0], [2, 1, 0]) == 1.0
    assert agreement([0, 1], [1, 0]) == 0.0


@pytest.mark.parametrize("fn", [accuracy, f1, agreement])
def test_empty_input_raises(fn):
    with pytest.raises(ValueError, match="empty"):
        fn([], [])


@pytest.mark.parametrize("fn", [accuracy, f1, agreement])
def test_length_mismatch_raises(fn):
    with pytest.raises(ValueError, match="3 predictions for 2 references"):
        fn([0, 1, 1], [0, 1])


def test_macro_f1_length_mismatch_raises():
    with pytest.raises(ValueError, match="predictions for"):
        f1([0, 1, 2], [0, 1], num_labels=3)


def test_metrics_doctests():
    result = doctest.testmod(hub.metrics)
    assert result.attempted >= 3 and result.failed == 0


def test_losses_doctests():
    result = doctest.testmod(hub.losses)
    assert result.attempted >= 3 and result.failed == 0


def test_hub_accuracy_equals_evaluate_evaluator_with_a_pipeline(trained_pair, tiny_data_dir, monkeypatch):
    """Parity: the accuracy the hub reports for a model is what evaluate's own
    text-classification evaluator computes with a transformers pipeline."""
    import evaluate
    import transformers

    # evaluate 0.4.6's evaluator still names transformers' removed TF base class in an isinstance check
    monkeypatch.setattr(transformers, "TFPreTrainedModel", type("TFPreTrainedModel", (), {}), raising=False)
    from datasets import Dataset
    from transformers import pipeline

    from hub.data import DataSource
    from hub.kinds import get_kind
    from hub.metrics import load_metric
    from hub.models import load_model, load_tokenizer
    from hub.tasks import get_task

    task = get_task("sst2")
    kind = get_kind(task)
    student = str(trained_pair[1])
    model, _ = load_model(student, task)
    tok = load_tokenizer(student)
    data = kind.load_data(task, DataSource(data_dir=str(tiny_data_dir)), need_train=False, reference=model)
    ours = kind.evaluate(model, tok, data)["accuracy"]
    pipe = pipeline("text-classification", model=model, tokenizer=tok, device=-1)
    result = evaluate.evaluator("text-classification").compute(
        model_or_pipeline=pipe, data=Dataset.from_dict({"text": data.eval_texts, "label": data.eval_labels}),
        metric=load_metric("classification_local"), label_mapping=model.config.label2id,
        input_column="text", label_column="label")
    assert result["accuracy"] == pytest.approx(ours)
