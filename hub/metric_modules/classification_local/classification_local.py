"""Accuracy and F1 for Distill Hub's classification tasks, as an ``evaluate`` module.

Loaded offline from its folder: ``evaluate.load(".../classification_local")``.
F1 is the binary F1 of class 1 for two labels (as GLUE reports SST-2) and the
macro F1 over ``num_labels`` classes otherwise; the arithmetic lives in
``hub.metrics`` (doctested there).

One import per line: evaluate's dependency scanner misreads ``import a, b``.
"""

import datasets
import evaluate

from hub import metrics

_DESCRIPTION = "Accuracy and F1 (binary for 2 labels, macro otherwise) of label predictions."
_KWARGS = """
Args:
    predictions (list of int): predicted label ids.
    references (list of int): gold label ids.
    num_labels (int): number of classes (default 2).
Returns:
    accuracy (float), f1 (float), both in [0, 1].
Examples:
    >>> m = evaluate.load("hub/metric_modules/classification_local")
    >>> m.compute(predictions=[1, 0, 0, 1], references=[1, 0, 1, 1])
    {'accuracy': 0.75, 'f1': 0.8}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class ClassificationLocal(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, num_labels=2):
        return metrics.classification_metrics(list(predictions), list(references), int(num_labels))
